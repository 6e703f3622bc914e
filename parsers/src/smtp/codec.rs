//! SMTP line codec: pure functions over one line (without its CRLF).
//!
//! Tolerant by design: commands are matched case-insensitively, a bare LF ends a line as well
//! as CRLF, and 8-bit bytes are carried through as bytes.

use std::borrow::Cow;

/// A server reply line: `DDD-text` (continuation) or `DDD text` / `DDD` (last line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLine<'a> {
    /// Three-digit reply code.
    pub code: u16,
    /// Whether more lines of the same reply follow (`-` after the code).
    pub more: bool,
    /// Text after the separator.
    pub text: &'a [u8],
}

/// Parses a reply line; `None` when it does not start with a three-digit code in 200..=599
/// (or 1xx-5xx) followed by ` `, `-` or the end of the line.
pub fn parse_reply(line: &[u8]) -> Option<ReplyLine<'_>> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'1'..=b'5').contains(&digits[0]) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None => Some(ReplyLine {
            code,
            more: false,
            text: &[],
        }),
        Some(b'-') => Some(ReplyLine {
            code,
            more: true,
            text: &line[4..],
        }),
        Some(b' ') => Some(ReplyLine {
            code,
            more: false,
            text: &line[4..],
        }),
        _ => None,
    }
}

/// SMTP commands the dialogue tracker cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// EHLO.
    Ehlo,
    /// HELO (and LHLO, which behaves like EHLO for capability purposes).
    Helo,
    /// STARTTLS.
    StartTls,
    /// AUTH.
    Auth,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA.
    Data,
    /// BDAT (CHUNKING).
    Bdat,
    /// RSET.
    Rset,
    /// QUIT.
    Quit,
    /// Any other word (NOOP, VRFY, XCLIENT, junk).
    Other,
}

/// A client command line split into its verb and argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    /// The recognised verb.
    pub verb: Verb,
    /// Everything after the verb and its separating spaces.
    pub arg: &'a [u8],
}

/// Splits a command line. Matching is case-insensitive; `MAIL` and `RCPT` need their
/// `FROM:`/`TO:` to count as transactions.
pub fn parse_command(line: &[u8]) -> Command<'_> {
    let end = line.iter().position(|b| *b == b' ').unwrap_or(line.len());
    let word = &line[..end];
    let arg = trim_start(&line[end..]);
    let verb = match word.len() {
        4 if word.eq_ignore_ascii_case(b"EHLO") || word.eq_ignore_ascii_case(b"LHLO") => Verb::Ehlo,
        4 if word.eq_ignore_ascii_case(b"HELO") => Verb::Helo,
        8 if word.eq_ignore_ascii_case(b"STARTTLS") => Verb::StartTls,
        4 if word.eq_ignore_ascii_case(b"AUTH") => Verb::Auth,
        4 if word.eq_ignore_ascii_case(b"MAIL") && starts_with_ci(arg, b"FROM:") => Verb::Mail,
        4 if word.eq_ignore_ascii_case(b"RCPT") && starts_with_ci(arg, b"TO:") => Verb::Rcpt,
        4 if word.eq_ignore_ascii_case(b"DATA") => Verb::Data,
        4 if word.eq_ignore_ascii_case(b"BDAT") => Verb::Bdat,
        4 if word.eq_ignore_ascii_case(b"RSET") => Verb::Rset,
        4 if word.eq_ignore_ascii_case(b"QUIT") => Verb::Quit,
        _ => Verb::Other,
    };
    Command { verb, arg }
}

/// The first whitespace-separated word of `text`.
pub fn first_word(text: &[u8]) -> &[u8] {
    let t = trim_start(text);
    let end = t
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(t.len());
    &t[..end]
}

/// An EHLO capability line: its keyword as sent and its parameters, not copied yet (most
/// lines only need the keyword; only AUTH's parameters are kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability<'a> {
    /// The keyword as sent (any case), empty for an empty line.
    pub keyword: &'a [u8],
    /// The parameters of the `AUTH=LOGIN PLAIN` form, after the `=`.
    inline: Option<&'a [u8]>,
    /// The rest of the line after the first word.
    rest: &'a [u8],
}

impl Capability<'_> {
    /// Whether the keyword is `name` (ASCII, case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.keyword.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The keyword upper-cased (see [`upper_word`]).
    pub fn keyword_upper(&self) -> Word {
        upper_word(self.keyword)
    }

    /// The parameters, upper-cased (see [`upper_word`]).
    pub fn params(&self) -> Vec<Word> {
        self.inline
            .into_iter()
            .filter(|w| !w.is_empty())
            .chain(words(self.rest))
            .map(upper_word)
            .collect()
    }
}

fn words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| *b == b' ' || *b == b'\t')
        .filter(|w| !w.is_empty())
}

/// Splits an EHLO capability line into its keyword and parameters.
/// `AUTH=LOGIN PLAIN` (the pre-RFC 4954 form) yields keyword `AUTH` too.
pub fn parse_capability(text: &[u8]) -> Capability<'_> {
    let start = text
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(text.len());
    let text = &text[start..];
    // One pass over the first word finds both its end and its first `=` (it was scanned
    // twice, once for each).
    let mut end = text.len();
    let mut equals = None;
    for (i, b) in text.iter().enumerate() {
        match b {
            b' ' | b'\t' => {
                end = i;
                break;
            }
            b'=' if equals.is_none() => equals = Some(i),
            _ => {}
        }
    }
    let (first, rest) = text.split_at(end);
    let (keyword, inline) = match equals {
        Some(i) => (&first[..i], Some(&first[i + 1..])),
        None => (first, None),
    };
    Capability {
        keyword,
        inline,
        rest,
    }
}

/// Upper-cases ASCII and makes the rest valid UTF-8 (capped at 64 bytes: capability words
/// are short, anything longer is junk).
pub fn upper_lossy(word: &[u8]) -> String {
    let cut = &word[..word.len().min(64)];
    if cut.is_ascii() {
        // The common case (every capability of every server seen so far), with one exact
        // allocation: `from_utf8_lossy(..).to_ascii_uppercase()` grew its string as it went
        // (perf: 3 % of all-mail traffic, nine capabilities a session).
        let upper: Vec<u8> = cut.iter().map(u8::to_ascii_uppercase).collect();
        return String::from_utf8(upper).unwrap_or_default();
    }
    String::from_utf8_lossy(cut).to_ascii_uppercase()
}

/// An upper-cased word of the dialogue (capability keyword, AUTH mechanism, greeting verb):
/// borrowed from [`KNOWN_WORDS`] when it is one of them, owned otherwise.
pub type Word = Cow<'static, str>;

/// The words servers and clients use (capability keywords of the IANA "SMTP Service
/// Extensions" registry and common private ones, SASL mechanisms, greeting verbs),
/// upper-cased and sorted by length, then by their bytes, for [`upper_word`]'s binary search
/// (a test checks it).
pub const KNOWN_WORDS: [&str; 58] = [
    "DSN",
    "ATRN",
    "AUTH",
    "BURL",
    "EHLO",
    "ETRN",
    "EXPN",
    "HELO",
    "HELP",
    "LHLO",
    "MTRK",
    "NTLM",
    "ONEX",
    "RRVS",
    "SAML",
    "SEND",
    "SIZE",
    "SOML",
    "TURN",
    "VERB",
    "VRFY",
    "XUSR",
    "LOGIN",
    "PLAIN",
    "XRDST",
    "CONNEG",
    "GSSAPI",
    "LIMITS",
    "X-EXPS",
    "CONPERM",
    "XCLIENT",
    "XEXCH50",
    "XOAUTH2",
    "8BITMIME",
    "CHUNKING",
    "CRAM-MD5",
    "EXTERNAL",
    "SMTPUTF8",
    "STARTTLS",
    "XFORWARD",
    "ANONYMOUS",
    "DELIVERBY",
    "BINARYMIME",
    "CHECKPOINT",
    "DIGEST-MD5",
    "PIPELINING",
    "REQUIRETLS",
    "MT-PRIORITY",
    "OAUTHBEARER",
    "SCRAM-SHA-1",
    "X-LINK2STATE",
    "FUTURERELEASE",
    "NO-SOLICITING",
    "SCRAM-SHA-256",
    "X-ANONYMOUSTLS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256-PLUS",
    "ENHANCEDSTATUSCODES",
];

/// Length of the longest of [`KNOWN_WORDS`] (the last one: they are sorted by length).
const LONGEST_KNOWN: usize = KNOWN_WORDS[KNOWN_WORDS.len() - 1].len();

/// For each length `n` up to [`LONGEST_KNOWN`], the range of [`KNOWN_WORDS`] of that length:
/// `[WORDS_OF_LEN[n], WORDS_OF_LEN[n + 1])`. Computed at compile time from the table.
const WORDS_OF_LEN: [usize; LONGEST_KNOWN + 2] = {
    let mut starts = [0usize; LONGEST_KNOWN + 2];
    let mut n = 0;
    while n < LONGEST_KNOWN + 2 {
        // The first word at least `n` long.
        let mut i = 0;
        while i < KNOWN_WORDS.len() && KNOWN_WORDS[i].len() < n {
            i += 1;
        }
        starts[n] = i;
        n += 1;
    }
    starts
};

/// [`upper_lossy`] of `word`, without allocating when that is one of [`KNOWN_WORDS`]
/// (every capability and mechanism of nearly every session: nine words a session that each
/// cost an allocation, and in the sink stage a free, before).
pub fn upper_word(word: &[u8]) -> Word {
    // Only the words of the same length are searched (their range comes from a table made
    // at compile time), and each probe compares three integers: the word is upper-cased
    // once and packed big-endian (so integer order is byte order) like the table's
    // [`PACKED_KNOWN`]. Callgrind, all-mail: 147 instructions a word, against 273 when the
    // binary search went through the other lengths too and upper-cased the word again at
    // every probe. A word with a non-ASCII byte matches nothing (the known words are
    // ASCII), so a hit is exactly what `upper_lossy` would have made.
    let n = word.len();
    if n <= LONGEST_KNOWN {
        let mut buf = [0u8; PACKED_LEN];
        buf[..n].copy_from_slice(word);
        // The whole buffer (a fixed length: vector instructions), not the word alone.
        buf.make_ascii_uppercase();
        let key = pack(&buf);
        let (start, end) = (WORDS_OF_LEN[n], WORDS_OF_LEN[n + 1]);
        if let Ok(i) = PACKED_KNOWN[start..end].binary_search(&key) {
            return Cow::Borrowed(KNOWN_WORDS[start + i]);
        }
    }
    Cow::Owned(upper_lossy(word))
}

/// Bytes of a packed word: [`LONGEST_KNOWN`] rounded up to whole `u64`s.
const PACKED_LEN: usize = LONGEST_KNOWN.div_ceil(8) * 8;

/// A word of at most [`PACKED_LEN`] bytes, zero-padded, as big-endian integers.
type Packed = [u64; PACKED_LEN / 8];

/// Packs a zero-padded word: eight bytes to an integer, read big-endian (a load and a byte
/// swap each at run time).
const fn pack(buf: &[u8; PACKED_LEN]) -> Packed {
    let mut out = [0u64; PACKED_LEN / 8];
    let mut i = 0;
    while i < PACKED_LEN / 8 {
        let b = 8 * i;
        out[i] = u64::from_be_bytes([
            buf[b],
            buf[b + 1],
            buf[b + 2],
            buf[b + 3],
            buf[b + 4],
            buf[b + 5],
            buf[b + 6],
            buf[b + 7],
        ]);
        i += 1;
    }
    out
}

/// [`KNOWN_WORDS`] packed (same order: by length, then bytes, which for words of one length
/// is the order of their packed integers).
const PACKED_KNOWN: [Packed; KNOWN_WORDS.len()] = {
    let mut out = [[0u64; PACKED_LEN / 8]; KNOWN_WORDS.len()];
    let mut w = 0;
    while w < KNOWN_WORDS.len() {
        let bytes = KNOWN_WORDS[w].as_bytes();
        let mut buf = [0u8; PACKED_LEN];
        let mut i = 0;
        while i < bytes.len() {
            buf[i] = bytes[i];
            i += 1;
        }
        out[w] = pack(&buf);
        w += 1;
    }
    out
};

fn trim_start(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| *c != b' ').unwrap_or(b.len());
    &b[start..]
}

fn starts_with_ci(b: &[u8], prefix: &[u8]) -> bool {
    b.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(
            parse_reply(b"250-STARTTLS"),
            Some(ReplyLine {
                code: 250,
                more: true,
                text: b"STARTTLS"
            })
        );
        assert_eq!(parse_reply(b"220").map(|r| r.more), Some(false));
        assert_eq!(parse_reply(b"2500 x"), None);
        assert_eq!(parse_reply(b"hello"), None);
        assert_eq!(parse_reply(b"650 x"), None);
    }

    #[test]
    fn commands_are_case_insensitive() {
        assert_eq!(parse_command(b"ehlo client.test").verb, Verb::Ehlo);
        assert_eq!(parse_command(b"ehlo client.test").arg, b"client.test");
        assert_eq!(parse_command(b"StartTLS").verb, Verb::StartTls);
        assert_eq!(parse_command(b"mail from:<a@b>").verb, Verb::Mail);
        assert_eq!(parse_command(b"MAIL xyz").verb, Verb::Other);
        assert_eq!(parse_command(b"RCPT TO:<x@y>").verb, Verb::Rcpt);
        assert_eq!(parse_command(b"\xff\xfe junk").verb, Verb::Other);
    }

    #[test]
    fn capabilities() {
        let both = |t: &[u8]| {
            let c = parse_capability(t);
            (c.keyword_upper(), c.params())
        };
        assert_eq!(
            both(b"AUTH PLAIN login"),
            ("AUTH".into(), vec!["PLAIN".into(), "LOGIN".into()])
        );
        assert_eq!(
            both(b"AUTH=LOGIN PLAIN"),
            ("AUTH".into(), vec!["LOGIN".into(), "PLAIN".into()])
        );
        assert_eq!(
            both(b" \tauth=  plain\t\tx "),
            ("AUTH".into(), vec!["PLAIN".into(), "X".into()])
        );
        assert_eq!(both(b"AUTH="), ("AUTH".into(), vec![]));
        assert_eq!(both(b"size 10240000").0, "SIZE");
        assert!(parse_capability(b"StartTLS").is("STARTTLS"));
        assert!(!parse_capability(b"STARTTLSX").is("STARTTLS"));
        assert_eq!(both(b""), (Word::from(""), vec![]));
        assert_eq!(both(b"   "), (Word::from(""), vec![]));
    }

    #[test]
    fn words_of_len_brackets_each_length() {
        for n in 0..=LONGEST_KNOWN {
            let range = WORDS_OF_LEN[n]..WORDS_OF_LEN[n + 1];
            let expected: Vec<&str> = KNOWN_WORDS
                .iter()
                .copied()
                .filter(|w| w.len() == n)
                .collect();
            assert_eq!(KNOWN_WORDS[range].to_vec(), expected, "length {n}");
        }
        assert_eq!(WORDS_OF_LEN[LONGEST_KNOWN + 1], KNOWN_WORDS.len());
    }

    #[test]
    fn known_words_are_sorted_and_upper_case() {
        let key = |w: &'static str| (w.len(), w);
        assert!(KNOWN_WORDS.windows(2).all(|w| key(w[0]) < key(w[1])));
        for w in KNOWN_WORDS {
            assert_eq!(upper_lossy(w.as_bytes()), *w);
        }
    }

    #[test]
    fn upper_word_is_upper_lossy_and_borrows_only_known_words() {
        let words: [&[u8]; 12] = [
            b"AUTH\0",
            b"\0",
            b"pipelining",
            b"StartTLS",
            b"SCRAM-SHA-256-PLUS",
            b"scram-sha-256-plusx",
            b"X-CUSTOM",
            b"",
            b"size\xff",
            b"\xe9tendu",
            b"ENHANCEDSTATUSCODESENHANCEDSTATUSCODES",
            b"auth",
        ];
        for w in words {
            let got = upper_word(w);
            assert_eq!(got, upper_lossy(w), "{w:?}");
            let known = KNOWN_WORDS.contains(&got.as_ref());
            assert_eq!(matches!(got, Cow::Borrowed(_)), known, "{w:?}");
        }
        for w in KNOWN_WORDS {
            let lower = w.to_ascii_lowercase();
            assert!(matches!(upper_word(lower.as_bytes()), Cow::Borrowed(k) if *k == *w));
        }
    }

    #[test]
    fn upper_lossy_is_the_lossy_upper_case_of_the_first_64_bytes() {
        // The ASCII fast path and the general path must agree with the definition.
        let reference =
            |w: &[u8]| String::from_utf8_lossy(&w[..w.len().min(64)]).to_ascii_uppercase();
        let long = [b'a'; 100];
        // A two-byte character cut by the 64-byte limit, invalid bytes, mixed case.
        let mut cut = vec![b'x'; 63];
        cut.extend_from_slice("é".as_bytes());
        let words: [&[u8]; 7] = [
            b"",
            b"8bitmime",
            b"X-Exps",
            &long,
            &cut,
            b"caf\xc3\xa9",
            b"a\xffb",
        ];
        for w in words {
            assert_eq!(upper_lossy(w), reference(w), "{w:?}");
        }
        assert_eq!(upper_lossy(&long).len(), 64);
        assert_eq!(upper_lossy(b"a\xffb"), "A\u{fffd}B");
    }
}
