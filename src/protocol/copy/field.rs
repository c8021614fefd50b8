//! One field of a COPY row, read as PostgreSQL reads it: text de-escaping as copyfromparse.c's
//! CopyReadAttributesText, CSV unquoting as CopyReadAttributesCSV (with FORCE_NULL and
//! FORCE_NOT_NULL as NextCopyFrom applies them), binary as CopyReadBinaryAttribute.

use std::borrow::Cow;

use super::{CopyOptions, Format};
use crate::error::SgError;

/// A field's value: None is SQL NULL.
pub type Value<'a> = Option<Cow<'a, [u8]>>;

/// How a field's NULL-ness is forced (CSV's FORCE_NULL / FORCE_NOT_NULL for its column).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Force {
    pub null: bool,
    pub not_null: bool,
}

/// Field `index` of a row's content (its bytes before the end of line); Ok(None) when the row
/// has fewer fields. Err is PostgreSQL's error for the row ("unterminated CSV quoted field").
pub fn read<'a>(
    opts: &CopyOptions,
    row: &'a [u8],
    index: usize,
    force: Force,
) -> Result<Option<Value<'a>>, SgError> {
    match opts.format {
        Format::Text => Ok(text(opts, row, index)),
        Format::Csv => csv(opts, row, index, force),
        Format::Binary => Ok(binary(row, index).map(|v| v.map(Cow::Borrowed))),
    }
}

/// The raw bytes of text field `index`: up to an unescaped delimiter (a backslash takes the
/// next byte with it, so an escaped delimiter is data).
fn text_raw(delim: u8, row: &[u8], index: usize) -> Option<&[u8]> {
    let mut field = 0;
    let mut start = 0;
    let mut i = 0;
    while i < row.len() {
        let c = row[i];
        if c == delim {
            if field == index {
                return Some(&row[start..i]);
            }
            field += 1;
            start = i + 1;
        } else if c == b'\\' {
            i += 1;
        }
        i += 1;
    }
    (field == index).then(|| &row[start..])
}

fn text<'a>(opts: &CopyOptions, row: &'a [u8], index: usize) -> Option<Value<'a>> {
    let raw = text_raw(opts.delimiter, row, index)?;
    // The NULL marker is matched before de-escaping.
    if raw == opts.null.as_slice() {
        return Some(None);
    }
    if !raw.contains(&b'\\') {
        return Some(Some(Cow::Borrowed(raw)));
    }
    Some(Some(Cow::Owned(unescape_text(raw))))
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// copyfromparse.c's de-escaping: `\b \f \n \r \t \v`, octal `\ooo`, hex `\xhh`; any other
/// escaped byte stands for itself; a backslash ending the field is dropped.
pub fn unescape_text(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = raw.get(i) else { break };
        i += 1;
        match e {
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = (v << 3) + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0o377) as u8);
            }
            b'x' => match raw.get(i).copied().and_then(hex) {
                Some(h) => {
                    i += 1;
                    let mut v = h;
                    if let Some(l) = raw.get(i).copied().and_then(hex) {
                        v = (v << 4) + l;
                        i += 1;
                    }
                    out.push(v);
                }
                None => out.push(b'x'),
            },
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            other => out.push(other),
        }
    }
    out
}

fn csv<'a>(
    opts: &CopyOptions,
    row: &'a [u8],
    index: usize,
    force: Force,
) -> Result<Option<Value<'a>>, SgError> {
    let (delim, quote, escape) = (opts.delimiter, opts.quote, opts.escape);
    let mut i = 0;
    let mut field = 0;
    loop {
        let start = i;
        let mut out: Vec<u8> = Vec::new();
        let mut saw_quote = false;
        let mut found_delim = false;
        let end;
        'field: loop {
            // Not in quotes.
            loop {
                if i >= row.len() {
                    end = i;
                    break 'field;
                }
                let c = row[i];
                i += 1;
                if c == delim {
                    end = i - 1;
                    found_delim = true;
                    break 'field;
                }
                if c == quote {
                    saw_quote = true;
                    break;
                }
                out.push(c);
            }
            // In quotes.
            loop {
                if i >= row.len() {
                    return Err(SgError::new("22P04", "unterminated CSV quoted field"));
                }
                let c = row[i];
                i += 1;
                if c == escape {
                    if let Some(&next) = row.get(i) {
                        if next == escape || next == quote {
                            out.push(next);
                            i += 1;
                            continue;
                        }
                    }
                }
                if c == quote {
                    break;
                }
                out.push(c);
            }
        }
        if field == index {
            let raw = &row[start..end];
            let is_null = !saw_quote && raw == opts.null.as_slice();
            // NextCopyFrom: FORCE_NOT_NULL reads the NULL marker as a value, FORCE_NULL reads a
            // (quoted) value equal to the marker as NULL.
            return Ok(Some(if is_null && !force.not_null {
                None
            } else if is_null {
                Some(Cow::Owned(opts.null.clone()))
            } else if force.null && out == opts.null {
                None
            } else if !saw_quote {
                Some(Cow::Borrowed(raw))
            } else {
                Some(Cow::Owned(out))
            }));
        }
        if !found_delim {
            return Ok(None);
        }
        field += 1;
    }
}

/// Field `index` of a binary tuple (count, then length-prefixed values, -1 for NULL); None when
/// the tuple has fewer fields or is cut short.
pub fn binary(tuple: &[u8], index: usize) -> Option<Option<&[u8]>> {
    let count = i16::from_be_bytes([*tuple.first()?, *tuple.get(1)?]);
    if index >= usize::try_from(count).ok()? {
        return None;
    }
    let mut off = 2;
    for i in 0..=index {
        let size = i32::from_be_bytes(tuple.get(off..off + 4)?.try_into().ok()?);
        off += 4;
        let value = if size < 0 {
            None
        } else {
            let v = tuple.get(off..off + size as usize)?;
            off += size as usize;
            Some(v)
        };
        if i == index {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::copy::CopyOptions;

    fn opts(format: Format) -> CopyOptions {
        let csv = format == Format::Csv;
        CopyOptions {
            format,
            delimiter: if csv { b',' } else { b'\t' },
            null: if csv { Vec::new() } else { b"\\N".to_vec() },
            header: false,
            quote: b'"',
            escape: b'"',
            force_null: Vec::new(),
            force_not_null: Vec::new(),
        }
    }

    fn get(o: &CopyOptions, row: &str, i: usize) -> Option<Option<String>> {
        read(o, row.as_bytes(), i, Force::default())
            .expect("field")
            .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    #[test]
    fn text_fields_unescape_after_null_check() {
        let t = opts(Format::Text);
        assert_eq!(get(&t, "1\tb\\tc\t\\N", 0), Some(Some("1".into())));
        assert_eq!(get(&t, "1\tb\\tc\t\\N", 1), Some(Some("b\tc".into())));
        assert_eq!(get(&t, "1\tb\\tc\t\\N", 2), Some(None));
        assert_eq!(get(&t, "1\tb\\tc\t\\N", 3), None);
        // An escaped delimiter is data; `\\N` is a backslash and N, not NULL.
        assert_eq!(get(&t, "a\\\tb\tc", 0), Some(Some("a\tb".into())));
        assert_eq!(get(&t, "a\\\tb\tc", 1), Some(Some("c".into())));
        assert_eq!(get(&t, "\\\\N", 0), Some(Some("\\N".into())));
        assert_eq!(get(&t, "", 0), Some(Some("".into())));
        assert_eq!(
            unescape_text(b"\\101\\x41\\x4g\\xz\\q\\0\\"),
            b"AA\x04gxzq\0".to_vec()
        );
    }

    #[test]
    fn csv_fields_unquote_and_force() {
        let c = opts(Format::Csv);
        assert_eq!(get(&c, "1,\"a,b\",", 1), Some(Some("a,b".into())));
        assert_eq!(get(&c, "1,\"a,b\",", 2), Some(None));
        assert_eq!(get(&c, "\"\",x", 0), Some(Some("".into())));
        assert_eq!(
            get(&c, "\"say \"\"hi\"\"\"", 0),
            Some(Some("say \"hi\"".into()))
        );
        assert_eq!(get(&c, "ab\"c\"d,e", 0), Some(Some("abcd".into())));
        assert_eq!(get(&c, "\"a\nb\"", 0), Some(Some("a\nb".into())));
        assert!(read(&c, b"\"open", 0, Force::default()).is_err());
        let mut e = c.clone();
        e.escape = b'\\';
        assert_eq!(get(&e, "\"a\\\"b\\\\\"", 0), Some(Some("a\"b\\".into())));
        let forced = |row: &str, f: Force| {
            read(&c, row.as_bytes(), 0, f)
                .expect("field")
                .map(|v| v.map(|b| b.into_owned()))
        };
        let not_null = Force {
            null: false,
            not_null: true,
        };
        let null = Force {
            null: true,
            not_null: false,
        };
        assert_eq!(forced(",x", not_null), Some(Some(Vec::new())));
        assert_eq!(forced("\"\",x", null), Some(None));
        assert_eq!(forced("\"\",x", Force::default()), Some(Some(Vec::new())));
    }

    #[test]
    fn binary_fields() {
        let mut t = vec![0, 3];
        t.extend_from_slice(&4i32.to_be_bytes());
        t.extend_from_slice(&7i32.to_be_bytes());
        t.extend_from_slice(&(-1i32).to_be_bytes());
        t.extend_from_slice(&2i32.to_be_bytes());
        t.extend_from_slice(b"hi");
        assert_eq!(binary(&t, 0), Some(Some(&7i32.to_be_bytes()[..])));
        assert_eq!(binary(&t, 1), Some(None));
        assert_eq!(binary(&t, 2), Some(Some(&b"hi"[..])));
        assert_eq!(binary(&t, 3), None);
        assert_eq!(binary(&t[..9], 2), None);
    }
}
