//! Reading rows back (for `mailtls report`): one query over the sink's own client (http or
//! https with the system roots and `ca_file`, credentials, LZ4-compressed answers), its
//! answer handed over line by line as it streams in, so a large time window never has to
//! fit in memory at once.

use super::client::ChClient;
use super::config::ClickhouseConfig;
use super::healthcheck::startup_error;
use super::retry::{classify, Failure};
use crate::Error;
use std::time::Duration;

/// Runs `sql` (its answer in a line-based `format` such as `JSONEachRow` or `TabSeparated`)
/// from a plain thread and calls `on_line` for every line of the answer, without its `\n`.
/// `settings` are sent with the query; `timeout` bounds the wait for each piece of the
/// answer. An error from `on_line` stops the reading and comes back as [`Error::Server`].
pub fn query_lines_blocking(
    cfg: &ClickhouseConfig,
    sql: &str,
    format: &str,
    settings: &[(&str, &str)],
    timeout: Duration,
    on_line: &mut dyn FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), Error> {
    cfg.validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = ChClient::new(cfg)?;
    let context = sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    let to_error = |failure: Failure| match failure {
        // Unknown database or table: the server's own words say which.
        Failure::MissingSchema(message) => Error::Server {
            context: context.clone(),
            message,
        },
        other => startup_error(cfg, &context, other),
    };
    let from_callback = |message: String| Error::Server {
        context: context.clone(),
        message,
    };
    runtime.block_on(async {
        let mut cursor = client
            .query_lines(sql, format, settings)
            .map_err(&to_error)?;
        let mut lines = Lines::default();
        loop {
            match tokio::time::timeout(timeout, cursor.next()).await {
                Ok(Ok(Some(chunk))) => lines.feed(&chunk, on_line).map_err(from_callback)?,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(to_error(classify(&e))),
                Err(_) => {
                    return Err(to_error(Failure::Unreachable(format!(
                        "no data for {} s",
                        timeout.as_secs()
                    ))))
                }
            }
        }
        lines.finish(on_line).map_err(from_callback)
    })
}

/// Cuts a byte stream that arrives in arbitrary pieces into `\n`-terminated lines.
#[derive(Debug, Default)]
struct Lines {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
}

impl Lines {
    /// Hands over every line that `chunk` completes.
    fn feed(
        &mut self,
        mut chunk: &[u8],
        on_line: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
            let (line, rest) = chunk.split_at(nl);
            if self.partial.is_empty() {
                on_line(line)?;
            } else {
                self.partial.extend_from_slice(line);
                let whole = std::mem::take(&mut self.partial);
                on_line(&whole)?;
            }
            chunk = rest.get(1..).unwrap_or_default();
        }
        self.partial.extend_from_slice(chunk);
        Ok(())
    }

    /// Hands over a last line without `\n`, if any.
    fn finish(self, on_line: &mut dyn FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
        if self.partial.is_empty() {
            Ok(())
        } else {
            on_line(&self.partial)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[&[u8]]) -> Vec<String> {
        let mut got = Vec::new();
        let mut on_line = |l: &[u8]| {
            got.push(String::from_utf8_lossy(l).into_owned());
            Ok(())
        };
        let mut lines = Lines::default();
        for p in pieces {
            lines.feed(p, &mut on_line).unwrap();
        }
        lines.finish(&mut on_line).unwrap();
        got
    }

    #[test]
    fn lines_across_any_piece_boundaries() {
        let text = b"{\"a\":1}\n{\"b\":22}\n\n{\"c\":333}\n";
        let whole = split(&[text]);
        assert_eq!(whole, ["{\"a\":1}", "{\"b\":22}", "", "{\"c\":333}"]);
        for cut in 0..text.len() {
            for cut2 in cut..text.len() {
                let (a, rest) = text.split_at(cut);
                let (b, c) = rest.split_at(cut2 - cut);
                assert_eq!(split(&[a, b, c]), whole, "cuts at {cut} and {cut2}");
            }
        }
        assert_eq!(split(&[b"x\ny", b"z"]), ["x", "yz"]);
        assert!(split(&[b"", b""]).is_empty());
    }

    #[test]
    fn an_error_from_the_callback_stops_the_reading() {
        let mut seen = 0;
        let mut lines = Lines::default();
        let r = lines.feed(b"1\n2\n3\n", &mut |l: &[u8]| {
            seen += 1;
            if l == b"2" {
                Err("bad row".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err("bad row".to_string()));
        assert_eq!(seen, 2);
    }
}
