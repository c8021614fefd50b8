//! The splitter cut at every byte: whatever the CopyData boundaries, the same rows, lines and
//! errors come out as when the data arrives in one message.

use super::split::{Piece, Splitter, BINARY_SIGNATURE};
use super::{CopyOptions, Format};

fn opts(format: Format, header: bool) -> CopyOptions {
    let csv = format == Format::Csv;
    CopyOptions {
        format,
        delimiter: if csv { b',' } else { b'\t' },
        null: if csv { Vec::new() } else { b"\\N".to_vec() },
        header,
        quote: b'"',
        escape: b'"',
        force_null: Vec::new(),
        force_not_null: Vec::new(),
    }
}

/// What came out, as text: "H:" header, "R<line>/<span>:" row, "B:" broken, "E:" end,
/// "F<line>:" fault with its message.
fn run(o: &CopyOptions, chunks: &[&[u8]]) -> Vec<String> {
    let mut s = Splitter::new(o, 1 << 20);
    let mut out = Vec::new();
    let show = |p: Piece| match p {
        Piece::Header(r) => format!("H:{}", String::from_utf8_lossy(&r.data)),
        Piece::Row(r) => format!(
            "R{}/{}:{}",
            r.line,
            r.span,
            String::from_utf8_lossy(&r.data)
        ),
        Piece::Broken(r) => format!("B:{}", r.data.len()),
        Piece::End(b) => format!("E:{}", b.len()),
    };
    let drain = |s: &mut Splitter, eof: bool, out: &mut Vec<String>| loop {
        match s.next(eof) {
            Ok(Some(p)) => out.push(show(p)),
            Ok(None) => return true,
            Err(f) => {
                out.push(format!("F{}:{}", f.line, f.error.message));
                return false;
            }
        }
    };
    for c in chunks {
        if let Err(f) = s.push(c) {
            out.push(format!("F{}:{}", f.line, f.error.message));
            return out;
        }
        if !drain(&mut s, false, &mut out) {
            return out;
        }
    }
    drain(&mut s, true, &mut out);
    out
}

/// Runs whole, then cut in two at every byte, then a byte at a time: all must agree.
fn same_at_every_cut(o: &CopyOptions, data: &[u8]) -> Vec<String> {
    let whole = run(o, &[data]);
    for cut in 0..=data.len() {
        let (a, b) = data.split_at(cut);
        assert_eq!(run(o, &[a, b]), whole, "cut at {cut} of {data:?}");
    }
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(run(o, &bytes), whole, "byte at a time: {data:?}");
    whole
}

#[test]
fn text_rows_escapes_and_end_marker() {
    let t = opts(Format::Text, false);
    assert_eq!(
        same_at_every_cut(&t, b"1\ta\n2\tb\\\nc\n3\t\\\\.\n\\.\n4\tignored\n"),
        vec!["R1/1:1\ta\n", "R2/1:2\tb\\\nc\n", "R3/1:3\t\\\\.\n", "E:0"]
    );
    // The last line needs no end of line; data before `\.` on its line is a row.
    assert_eq!(
        same_at_every_cut(&t, b"1\ta\n2\tb"),
        vec!["R1/1:1\ta\n", "R2/1:2\tb"]
    );
    assert_eq!(
        same_at_every_cut(&t, b"1\ta\n2\tb\\.\n"),
        vec!["R1/1:1\ta\n", "R2/1:2\tb\n", "E:0"]
    );
    assert_eq!(same_at_every_cut(&t, b""), Vec::<String>::new());
    assert_eq!(same_at_every_cut(&t, b"1\\"), vec!["R1/1:1\\"]);
}

#[test]
fn text_line_endings_follow_the_first_line() {
    let t = opts(Format::Text, false);
    assert_eq!(
        same_at_every_cut(&t, b"1\r\n2\r\n\\.\r\n"),
        vec!["R1/1:1\r\n", "R2/1:2\r\n", "E:0"]
    );
    assert_eq!(
        same_at_every_cut(&t, b"1\r2\r"),
        vec!["R1/1:1\r", "R2/1:2\r"]
    );
    assert_eq!(
        same_at_every_cut(&t, b"1\n2\r\n"),
        vec!["R1/1:1\n", "F2:literal carriage return found in data"]
    );
    assert_eq!(
        same_at_every_cut(&t, b"1\r\n2\n"),
        vec!["R1/1:1\r\n", "F2:literal newline found in data"]
    );
    assert_eq!(
        same_at_every_cut(&t, b"1\r\n2\rx"),
        vec!["R1/1:1\r\n", "F2:literal carriage return found in data"]
    );
    assert_eq!(
        same_at_every_cut(&t, b"1\n\\.x\n"),
        vec!["R1/1:1\n", "F2:end-of-copy marker corrupt"]
    );
    assert_eq!(
        same_at_every_cut(&t, b"1\n\\."),
        vec!["R1/1:1\n", "F2:end-of-copy marker corrupt"]
    );
    assert_eq!(
        same_at_every_cut(&t, b"1\r\n\\.\n"),
        vec![
            "R1/1:1\r\n",
            "F2:end-of-copy marker does not match previous newline style"
        ]
    );
}

#[test]
fn csv_quotes_span_lines_and_messages() {
    let c = opts(Format::Csv, true);
    assert_eq!(
        same_at_every_cut(
            &c,
            b"id,v\n1,\"a\nb\"\n2,\"say \"\"x\"\"\"\n3,\"\\.\n\"\n4,x\n"
        ),
        vec![
            "H:id,v\n",
            "R3/2:1,\"a\nb\"\n",
            "R4/1:2,\"say \"\"x\"\"\"\n",
            "R6/2:3,\"\\.\n\"\n",
            "R7/1:4,x\n"
        ]
    );
    // In CSV `\.` ends the data only alone on its line; elsewhere it is data.
    assert_eq!(
        same_at_every_cut(&c, b"h\n\\.x\n\\.\nlost\n"),
        vec!["H:h\n", "R2/1:\\.x\n", "E:0"]
    );
    // The first line's quoted newlines are counted only as carriage returns (its end of line
    // is not known yet), as copyfromparse.c counts them.
    assert_eq!(
        same_at_every_cut(&opts(Format::Csv, false), b"\"a\nb\"\n\"c\nd\"\r"),
        vec![
            "R1/1:\"a\nb\"\n",
            "F3:unquoted carriage return found in data"
        ]
    );
    assert_eq!(
        same_at_every_cut(&opts(Format::Csv, false), b"1,\"open\n"),
        vec!["R1/1:1,\"open\n"]
    );
    let mut e = opts(Format::Csv, false);
    e.escape = b'\\';
    assert_eq!(
        same_at_every_cut(&e, b"\"a\\\"\nb\"\n2\n"),
        vec!["R1/1:\"a\\\"\nb\"\n", "R2/1:2\n"]
    );
}

fn tuple(fields: &[Option<&[u8]>]) -> Vec<u8> {
    let mut t = (fields.len() as i16).to_be_bytes().to_vec();
    for f in fields {
        match f {
            None => t.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                t.extend_from_slice(&(v.len() as i32).to_be_bytes());
                t.extend_from_slice(v);
            }
        }
    }
    t
}

fn header(ext: &[u8]) -> Vec<u8> {
    let mut h = BINARY_SIGNATURE.to_vec();
    h.extend_from_slice(&0i32.to_be_bytes());
    h.extend_from_slice(&(ext.len() as i32).to_be_bytes());
    h.extend_from_slice(ext);
    h
}

#[test]
fn binary_header_tuples_trailer() {
    let b = opts(Format::Binary, false);
    let mut data = header(b"xy");
    data.extend(tuple(&[Some(b"1234"), None]));
    data.extend(tuple(&[Some(b""), Some(b"z")]));
    data.extend_from_slice(&(-1i16).to_be_bytes());
    let got = same_at_every_cut(&b, &data);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got[0].starts_with("H:PGCOPY"));
    assert!(got[1].starts_with("R1/1:"));
    assert!(got[2].starts_with("R2/1:"));
    assert_eq!(got[3], "E:2");
    let mut extra = data.clone();
    extra.push(0);
    assert_eq!(
        run(&b, &[&extra]).last().map(String::as_str),
        Some("F3:received copy data after EOF marker")
    );
    assert_eq!(
        run(&b, &[&data, b"x"]).last().map(String::as_str),
        Some("F3:received copy data after EOF marker")
    );
    // Without a trailer the data ends at CopyDone; a tuple cut short goes to a worker whole.
    let mut cut = header(b"");
    cut.extend(tuple(&[Some(b"12")]));
    assert_eq!(same_at_every_cut(&b, &cut).len(), 2);
    cut.extend(&tuple(&[Some(b"1234")])[..7]);
    assert_eq!(
        same_at_every_cut(&b, &cut).last().map(String::as_str),
        Some("B:7")
    );
    let mut neg = header(b"");
    neg.extend_from_slice(&1i16.to_be_bytes());
    neg.extend_from_slice(&(-2i32).to_be_bytes());
    neg.extend_from_slice(b"rest");
    assert_eq!(
        same_at_every_cut(&b, &neg).last().map(String::as_str),
        Some("B:6")
    );
    // A wrong signature is every worker's error to give: the header goes out and nothing more.
    assert_eq!(
        same_at_every_cut(&b, b"1\tabc\n2\tdef\n3\tghi\n4\tjkl\n"),
        vec!["H:1\tabc\n2\tdef\n3\tghi\n4"]
    );
    assert_eq!(same_at_every_cut(&b, b"PGCOPY\n"), vec!["H:PGCOPY\n"]);
}

#[test]
fn long_rows_are_refused() {
    let t = opts(Format::Text, false);
    let mut s = Splitter::new(&t, 8);
    assert!(s.push(b"0123456789").is_ok());
    let f = s.next(false).expect_err("too long");
    assert_eq!(f.error.code, "54000");
    assert_eq!(s.next(true), Ok(None));
}
