//! COPY data, pure: the options of a COPY statement (from sqlparser's AST), the streaming
//! splitter that cuts a client's CopyData into whole rows (`split`), reading one field of a row
//! (`field`), the record of which client line each node's line was (`lines`), and the
//! ErrorResponse a COPY error is reported with. Formats follow PostgreSQL's copyfromparse.c and
//! copyto.c and the protocol docs ("COPY Operations", "COPY File Formats" in the COPY page).

pub mod field;
pub mod lines;
pub mod split;
mod split_binary;
#[cfg(test)]
mod split_tests;

use bytes::{BufMut, BytesMut};
use sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use super::backend::ERROR_RESPONSE;
use super::frontend::put_cstr;
use super::Frame;
use crate::error::SgError;

pub use split::{Fault, Piece, Row, Splitter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Csv,
    Binary,
}

/// What shardgate needs of a COPY's options to find rows and read the key. Options it does not
/// read (FREEZE, ENCODING, FORCE_QUOTE) go to the workers in the statement unchanged, and the
/// workers judge every option: a COPY they refuse never reaches the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: Format,
    pub delimiter: u8,
    /// The string that stands for NULL (copy.c: `\N` in text, empty in CSV).
    pub null: Vec<u8>,
    pub header: bool,
    pub quote: u8,
    pub escape: u8,
    /// Columns named in FORCE_NULL / FORCE_NOT_NULL (CSV only), case-folded.
    pub force_null: Vec<String>,
    pub force_not_null: Vec<String>,
}

/// A one-byte option (a multi-byte character is the workers' error to give: "must be a single
/// one-byte character").
fn byte(c: char) -> u8 {
    u8::try_from(u32::from(c)).unwrap_or(0)
}

/// A string option's value: sqlparser keeps a standard string as written, doubled quotes and all.
fn unquote(raw: &str) -> Vec<u8> {
    raw.replace("''", "'").into_bytes()
}

fn fold(id: &sqlparser::ast::Ident) -> String {
    crate::analyze::scope::ident_name(id)
}

impl CopyOptions {
    /// The options as PostgreSQL's ProcessCopyOptions (copy.c) settles them: the format first,
    /// then defaults by format for what is not given.
    pub fn from_ast(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> CopyOptions {
        let mut format = Format::Text;
        let (mut delimiter, mut null, mut quote, mut escape) = (None, None, None, None);
        let mut header = false;
        let (mut force_null, mut force_not_null) = (Vec::new(), Vec::new());
        for o in options {
            match o {
                CopyOption::Format(f) => {
                    format = match f.value.to_ascii_lowercase().as_str() {
                        "csv" => Format::Csv,
                        "binary" => Format::Binary,
                        // "text", or a name the workers will refuse before any data.
                        _ => Format::Text,
                    }
                }
                CopyOption::Delimiter(c) => delimiter = Some(byte(*c)),
                CopyOption::Null(s) => null = Some(unquote(s)),
                CopyOption::Header(h) => header = *h,
                CopyOption::Quote(c) => quote = Some(byte(*c)),
                CopyOption::Escape(c) => escape = Some(byte(*c)),
                CopyOption::ForceNull(cols) => force_null.extend(cols.iter().map(fold)),
                CopyOption::ForceNotNull(cols) => force_not_null.extend(cols.iter().map(fold)),
                _ => {}
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Binary => format = Format::Binary,
                CopyLegacyOption::Delimiter(c) => delimiter = Some(byte(*c)),
                CopyLegacyOption::Null(s) => null = Some(unquote(s)),
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Csv(csv) => {
                    format = Format::Csv;
                    for c in csv {
                        match c {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(q) => quote = Some(byte(*q)),
                            CopyLegacyCsvOption::Escape(e) => escape = Some(byte(*e)),
                            CopyLegacyCsvOption::ForceNotNull(cols) => {
                                force_not_null.extend(cols.iter().map(fold))
                            }
                            CopyLegacyCsvOption::ForceQuote(_) => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let csv = format == Format::Csv;
        let quote = quote.unwrap_or(b'"');
        CopyOptions {
            format,
            delimiter: delimiter.unwrap_or(if csv { b',' } else { b'\t' }),
            null: null.unwrap_or_else(|| if csv { Vec::new() } else { b"\\N".to_vec() }),
            header,
            quote,
            escape: escape.unwrap_or(quote),
            force_null,
            force_not_null,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.format {
            Format::Text => "text",
            Format::Csv => "csv",
            Format::Binary => "binary",
        }
    }
}

/// PostgreSQL's limit_printout_length (copyfromparse.c): values in an error's CONTEXT are cut
/// to 100 bytes, on a character boundary, and marked with "...".
pub fn printout(v: &[u8]) -> String {
    const MAX: usize = 100;
    let s = String::from_utf8_lossy(v);
    if s.len() <= MAX {
        return s.into_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// An ErrorResponse with the fields a COPY error carries: DETAIL, HINT and CONTEXT
/// ("COPY t, line 3: ...", CopyFromErrorCallback in copyfromparse.c).
pub fn error_frame(
    e: &SgError,
    detail: Option<&str>,
    hint: Option<&str>,
    context: Option<&str>,
) -> Frame {
    let mut b = BytesMut::with_capacity(e.message.len() + 64);
    for (k, v) in [(b'S', "ERROR"), (b'V', "ERROR"), (b'C', e.code)] {
        b.put_u8(k);
        put_cstr(&mut b, v);
    }
    b.put_u8(b'M');
    put_cstr(&mut b, &e.message);
    for (k, v) in [(b'D', detail), (b'H', hint), (b'W', context)] {
        if let Some(v) = v {
            b.put_u8(k);
            put_cstr(&mut b, v);
        }
    }
    b.put_u8(0);
    Frame::build(ERROR_RESPONSE, &b)
}

/// The line number in an ErrorResponse's CONTEXT ("COPY t, line N..."), and the frame with it
/// replaced by `map(N)`: a worker counts the lines it was sent, the client the lines it sent.
pub fn map_context_line(f: &Frame, map: impl Fn(u64) -> u64) -> (Option<u64>, Frame) {
    let body = f.body();
    let mut out = BytesMut::with_capacity(body.len() + 8);
    let mut line = None;
    let mut fields = body.split(|b| *b == 0);
    for field in fields.by_ref() {
        let Some((&k, v)) = field.split_first() else {
            break;
        };
        out.put_u8(k);
        match (k, copy_line(v)) {
            (b'W', Some((start, end, n))) if line.is_none() => {
                let m = map(n);
                line = Some(m);
                out.put_slice(&v[..start]);
                out.put_slice(m.to_string().as_bytes());
                out.put_slice(&v[end..]);
            }
            _ => out.put_slice(v),
        }
        out.put_u8(0);
    }
    out.put_u8(0);
    (line, Frame::build(ERROR_RESPONSE, &out))
}

/// Where "COPY <name>, line <N>" puts N in a CONTEXT field: (start, end, N). The context may
/// hold other lines first (a function's or trigger's), so the last COPY line is taken.
fn copy_line(v: &[u8]) -> Option<(usize, usize, u64)> {
    let text = std::str::from_utf8(v).ok()?;
    let at = text.rfind("COPY ")?;
    let rest = &text[at..];
    let l = rest.find(", line ")? + ", line ".len();
    let digits = rest[l..].bytes().take_while(u8::is_ascii_digit).count();
    let n = rest[l..l + digits].parse().ok()?;
    Some((at + l, at + l + digits, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::backend::error_fields;

    fn opts(sql: &str) -> CopyOptions {
        match crate::analyze::parse_sql(sql)
            .ok()
            .and_then(|s| s.into_iter().next())
        {
            Some(sqlparser::ast::Statement::Copy {
                options,
                legacy_options,
                ..
            }) => CopyOptions::from_ast(&options, &legacy_options),
            other => panic!("not a COPY: {other:?}"),
        }
    }

    #[test]
    fn options_default_by_format() {
        let t = opts("COPY t FROM STDIN");
        assert_eq!(
            (t.format, t.delimiter, t.null.as_slice()),
            (Format::Text, b'\t', &b"\\N"[..])
        );
        let c = opts("COPY t FROM STDIN WITH (FORMAT csv, HEADER)");
        assert_eq!(
            (c.format, c.delimiter, c.null.len(), c.header),
            (Format::Csv, b',', 0, true)
        );
        assert_eq!((c.quote, c.escape), (b'"', b'"'));
        let l = opts("COPY t FROM STDIN WITH CSV HEADER ESCAPE '\\'");
        assert_eq!((l.header, l.quote, l.escape), (true, b'"', b'\\'));
        let b = opts("COPY t FROM STDIN WITH BINARY");
        assert_eq!(b.format, Format::Binary);
        let n = opts("COPY t FROM STDIN (DELIMITER '|', NULL 'it''s', FORCE_NULL (\"K\", v))");
        assert_eq!((n.delimiter, n.null.as_slice()), (b'|', &b"it's"[..]));
        assert_eq!(n.force_null, vec!["K".to_string(), "v".to_string()]);
    }

    #[test]
    fn context_lines_are_rewritten() {
        let e = SgError::new("22P02", "bad");
        let f = error_frame(&e, Some("d"), None, Some("COPY t, line 7, column k: \"x\""));
        let (line, g) = map_context_line(&f, |n| n * 10);
        assert_eq!(line, Some(70));
        assert_eq!(error_fields(&g), ("22P02".to_string(), "bad".to_string()));
        assert!(g.raw.windows(9).any(|w| w == b"line 70, "));
        let plain = error_frame(&e, None, None, None);
        assert_eq!(map_context_line(&plain, |n| n).0, None);
        assert_eq!(printout(&[b'a'; 120]).len(), 103);
    }
}
