//! The fields of a plain log line (`--log-format pretty` without colours):
//! what tracing-subscriber's `DefaultFields` writes, made cheaper for the
//! common field, a string that `Debug` prints unchanged.
//!
//! `DefaultFields` writes every field as `name="value"` through
//! `write!("{}{}{:?}", ...)`, painting the name and the `=` with
//! nu-ansi-term even when colours are off, and escapes the value one
//! character at a time: about 800 instructions a field, most of the audit
//! line's 17k per Issue (BENCHMARKS.md, "Issue and Refresh won back"). A
//! string of printable ASCII without `"` or `\` is written here as the
//! same bytes with a few `write_str`s; anything else (the message, numbers,
//! errors, escapes, colours) goes to `DefaultFields`' own visitor, so every
//! line reads exactly as before and stays as safe against log injection (a
//! unit test compares the lines of both formatters).

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::FormatFields;

/// The field formatter of the plain log format.
#[derive(Debug, Default)]
pub struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// One field the way `DefaultFields` writes it.
    fn default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut v);
        self.result = v.finish();
        // `DefaultFields` skips the `log.` metadata of bridged `log` records.
        self.is_empty &= field.name().starts_with("log.");
    }
}

/// Does `Debug` print `s` as `"` `s` `"`?
fn debug_is_verbatim(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let verbatim = !self.writer.has_ansi_escapes()
            && name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
            && debug_is_verbatim(value);
        if !verbatim {
            return self.default(field, |v| v.record_str(field, value));
        }
        let w = &mut self.writer;
        let pad = if self.is_empty { "" } else { " " };
        self.is_empty = false;
        self.result = (|| {
            w.write_str(pad)?;
            w.write_str(name)?;
            w.write_str("=\"")?;
            w.write_str(value)?;
            w.write_char('"')
        })();
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() {
            self.default(field, |v| v.record_error(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.default(field, |v| v.record_debug(field, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::PlainFields;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// What `emit` logs under a plain fmt layer with field formatter `F`,
    /// without the timestamp.
    fn lines<F>(fields: F, emit: impl Fn()) -> String
    where
        F: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let out = Buffer::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(out.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = out.0.lock().expect("buffer").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    /// Every kind of field, and strings that must be escaped (quotes,
    /// backslashes, newlines, escape codes, non-ASCII), inside a span with
    /// fields: the same lines as tracing-subscriber's own formatter.
    #[test]
    fn lines_read_as_with_the_default_formatter() {
        let emit = || {
            let span = tracing::info_span!("call", rpc = "Issue", n = 3, quoted = "a \"b\"");
            let _in = span.enter();
            tracing::info!(
                target: "tessera::audit",
                event = "issued",
                outcome = "ok",
                tenant = "",
                subject = "alice@example.com",
                ua = "Mozilla/5.0 (X11; Linux x86_64) 'quoted'",
                "audit"
            );
            let hostile = "x\" admin=\"yes\nfake line \u{1b}[31m \\ é";
            tracing::warn!(
                subject = hostile,
                n = 42_i64,
                ok = true,
                f = 1.5_f64,
                "with {}",
                "args"
            );
            let error = std::io::Error::other("boom \"x\"");
            tracing::error!(
                error = &error as &dyn std::error::Error,
                r#type = "t",
                "failed"
            );
            tracing::info!(message = "explicit \"message\"", empty = "");
        };
        let ours = lines(PlainFields, emit);
        let theirs = lines(DefaultFields::new(), emit);
        assert_eq!(ours.lines().count(), 4, "{ours}");
        assert_eq!(ours, theirs);
        assert!(ours.contains(r#"subject="alice@example.com""#), "{ours}");
        assert!(ours.contains(r#"subject="x\" admin=\"yes\nfake"#), "{ours}");
    }
}
