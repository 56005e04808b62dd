//! Logging: `tracing` set-up (human or JSON lines) and the one redaction helper for caller numbers.
//! Runtime layer.
//!
//! Callers of 111 are often children; their numbers must never reach a log line, at any level.
//! Two guards do that: code that logs anything derived from a caller (a URI, a header, a number) passes
//! it through [`redact`], and, as a backstop for anything forgotten, every formatted log line is passed
//! through the same function by [`RedactingWriter`] before it is written. The rule: a run of seven or
//! more digits, with an optional leading `+` (after which single `-`, `.` or ` ` separators between
//! digits are allowed, as `tel:` URIs write them), becomes `[number]`. Vietnamese numbers have 9 to
//! 12 digits (`0901234567`, `84901234567`, `+84 90 123 4567`); service numbers (111, 113, 115), ports and
//! times are shorter and stay readable.

use std::borrow::Cow;
use std::io::{self, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Digit runs at least this long are treated as phone numbers.
const MIN_NUMBER_DIGITS: usize = 7;

/// The text that replaces a phone number.
pub const REDACTED: &str = "[number]";

/// Replaces every phone-number-shaped run in `text` with [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() && bytes[i] != b'+' {
            i += 1;
            continue;
        }
        let (end, digits) = number_run(bytes, i);
        if digits >= MIN_NUMBER_DIGITS {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..i]);
            o.push_str(REDACTED);
            copied = end;
        }
        i = end.max(i + 1);
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

/// The end of the number-shaped run starting at `start`, and how many digits it holds. Visual
/// separators (`-`, `.`, ` `, as `tel:` URIs and display names write them) count only in a run that
/// starts with `+`, and only between two digits, so dates, times and versions are not mistaken for
/// numbers.
fn number_run(bytes: &[u8], start: usize) -> (usize, usize) {
    let international = bytes[start] == b'+';
    let mut i = start + usize::from(international);
    let mut digits = 0;
    let mut end = i;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => {
                digits += 1;
                i += 1;
                end = i;
            }
            b'-' | b'.' | b' '
                if international
                    && digits > 0
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) =>
            {
                i += 1;
            }
            _ => break,
        }
    }
    (end, digits)
}

/// A writer that redacts each formatted log line before passing it on. `tracing-subscriber` formats
/// one event into one buffer and writes it with one call, so each `write` sees whole lines.
pub struct RedactingWriter<W: Write> {
    inner: W,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.inner.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Makes [`RedactingWriter`]s around another `MakeWriter`.
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter { inner: self.0.make_writer() }
    }
}

/// Installs the global subscriber: `level` (a filter directive) unless `RUST_LOG` is set, the given
/// format, to standard error, through the redacting writer. A second call (tests) is a no-op.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = Redacting(io::stderr);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let result = match format {
        LogFormat::Human => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    // Already installed (tests starting several daemons in one process): keep the first.
    drop(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_form_are_redacted() {
        for n in ["0901234567", "84901234567", "+84901234567", "+84 90 123 4567", "+84-90-123-4567"]
        {
            let line = format!("INVITE from sip:{n}@10.0.0.1:5060 tel:{n};x=1");
            let red = redact(&line);
            assert!(!red.contains("0123"), "{red}");
            assert!(!red.contains("4567"), "{red}");
            assert_eq!(red.matches(REDACTED).count(), 2, "{red}");
        }
    }

    #[test]
    fn short_numbers_ports_and_times_stay() {
        let line = "2026-11-28T18:06:45.123456Z call to 111 via 127.0.0.1:5060 took 1500 ms v1.2.3";
        assert_eq!(redact(line), line);
    }

    #[test]
    fn the_writer_redacts_what_it_passes_on() {
        let mut out = Vec::new();
        let mut w = RedactingWriter { inner: &mut out };
        w.write_all(b"caller=0901234567 queue=main\n").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "caller=[number] queue=main\n");
    }
}
