//! What to do after a failed request: the retry logic as a type, Vector-style.

use std::time::Duration;

/// The verdict on a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing answered (refused, reset, DNS, TLS, timeout): retry later, spool meanwhile.
    Unreachable(String),
    /// The server refused the credentials: retry later (an operator may fix the user), log
    /// loudly; at start this is fatal.
    Auth(String),
    /// The database or table is missing: recreate the schema if allowed, retry.
    MissingSchema(String),
    /// An earlier attempt with the same query id is still running: wait, then check.
    StillRunning(String),
    /// The server rejected the data itself: retrying cannot help; the batch is set aside.
    BadData(String),
    /// Any other server error (too many parts, memory, overload, …): retry later.
    Server(String),
}

impl Failure {
    /// One line for logs and errors.
    pub fn message(&self) -> &str {
        match self {
            Failure::Unreachable(m)
            | Failure::Auth(m)
            | Failure::MissingSchema(m)
            | Failure::StillRunning(m)
            | Failure::BadData(m)
            | Failure::Server(m) => m,
        }
    }

    /// Whether retrying the same request later can succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Failure::BadData(_))
    }
}

/// Exception codes that mean "this data can never be inserted into this table".
const BAD_DATA_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    33,  // CANNOT_READ_ALL_DATA
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
];

/// `Code: 193` in a ClickHouse error text (both `Code: 193, e.displayText()` of 18.16 and
/// `Code: 193. DB::Exception` of modern servers), or a bare numeric exception-code header.
pub fn exception_code(text: &str) -> Option<u32> {
    let trimmed = text.trim();
    if let Ok(code) = trimmed.parse::<u32>() {
        return Some(code);
    }
    let start = text.find("Code: ")? + "Code: ".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The first line of a server message, without the stack trace or version suffix.
pub fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let line = line
        .split(", e.what() = ")
        .next()
        .unwrap_or(line)
        .trim_end_matches(',');
    let mut out: String = line.chars().take(300).collect();
    if out.is_empty() {
        out = "(empty answer)".to_string();
    }
    out
}

/// Classifies an error from the `clickhouse` crate.
pub fn classify(err: &clickhouse::error::Error) -> Failure {
    use clickhouse::error::Error as E;
    match err {
        E::Network(_) | E::TimedOut => Failure::Unreachable(first_line(&chain(err))),
        E::BadResponse(text) => classify_server_text(text),
        other => Failure::Server(first_line(&chain(other))),
    }
}

/// Classifies a server error text by its exception code.
pub fn classify_server_text(text: &str) -> Failure {
    let msg = first_line(text);
    match exception_code(text) {
        Some(192..=194) | Some(516) => Failure::Auth(msg),
        Some(81) | Some(60) => Failure::MissingSchema(msg),
        Some(216) => Failure::StillRunning(msg),
        Some(code) if BAD_DATA_CODES.contains(&code) => Failure::BadData(msg),
        _ => Failure::Server(msg),
    }
}

/// An error and its sources on one line (hyper hides the useful part in `source()`).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Exponential backoff: 250 ms doubling to `max`, with ±20 % jitter from a cheap counter.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    max: Duration,
    jitter_state: u64,
}

impl Backoff {
    /// A backoff that never waits longer than `max`.
    pub fn new(max: Duration) -> Self {
        Backoff {
            failures: 0,
            max,
            jitter_state: u64::from(std::process::id()) | 1,
        }
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = Duration::from_millis(250).saturating_mul(1u32 << self.failures.min(10));
        self.failures = self.failures.saturating_add(1);
        let base = base.min(self.max);
        // xorshift for jitter
        self.jitter_state ^= self.jitter_state << 13;
        self.jitter_state ^= self.jitter_state >> 7;
        self.jitter_state ^= self.jitter_state << 17;
        let permille = 800 + (self.jitter_state % 400);
        base.saturating_mul(permille as u32) / 1000
    }

    /// Records a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_both_generations() {
        let old = "Code: 193, e.displayText() = DB::Exception: Wrong password for user mailtls, e.what() = DB::Exception\n";
        assert_eq!(exception_code(old), Some(193));
        assert_eq!(
            first_line(old),
            "Code: 193, e.displayText() = DB::Exception: Wrong password for user mailtls"
        );
        assert!(matches!(classify_server_text(old), Failure::Auth(_)));
        let new = "Code: 81. DB::Exception: Database nope does not exist. (UNKNOWN_DATABASE) (version 26.1.1)";
        assert!(matches!(
            classify_server_text(new),
            Failure::MissingSchema(_)
        ));
        assert!(matches!(
            classify_server_text("Code: 27. DB::Exception: Cannot parse input"),
            Failure::BadData(_)
        ));
        assert!(matches!(
            classify_server_text("Code: 252. Too many parts"),
            Failure::Server(_)
        ));
        assert_eq!(exception_code("516"), Some(516));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(5));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(200) && first <= Duration::from_millis(300));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(6));
        }
        b.reset();
        assert_eq!(b.failures(), 0);
    }
}
