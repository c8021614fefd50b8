//! The streaming row splitter for COPY FROM STDIN: CopyData payloads go in as the client cut
//! them, whole rows come out as the raw bytes to forward unchanged, each with the client's line
//! number. Text and CSV follow copyfromparse.c's CopyReadLineText (end of line by the first
//! line's style, backslash escapes in text, quoted newlines in CSV, the `\.` end marker);
//! binary (`split_binary`) follows its header and tuple layout.

use bytes::{Bytes, BytesMut};

use super::{CopyOptions, Format};
use crate::error::SgError;

const BAD_COPY_FILE_FORMAT: &str = "22P04";
/// The binary format's 11-byte signature (copyfromparse.c BinarySignature).
pub const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags and header-extension length.
pub const BINARY_HEADER: usize = 19;

/// One row (or header line) as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub data: Bytes,
    /// Bytes before the end of line (all of `data` for binary, and for a last line without one).
    pub content: usize,
    /// PostgreSQL's line number once the row is read (copyfromparse.c cur_lineno): the row's
    /// last physical line as it counts them; in binary, the tuple's number.
    pub line: u64,
    /// Lines the row adds to that count (more than one for CSV quoted newlines).
    pub span: u64,
    /// The same for a worker that gets the row as its first line: before a first end of line
    /// PostgreSQL counts only quoted carriage returns.
    pub first_span: u64,
}

impl Row {
    pub fn content(&self) -> &[u8] {
        &self.data[..self.content]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// For every node, once, before any row: the binary file header, or the HEADER line.
    Header(Row),
    Row(Row),
    /// Bytes every worker will refuse with PostgreSQL's own error (a truncated or malformed
    /// binary tuple): sent to one node; nothing after them is read.
    Broken(Row),
    /// The end of the data: the binary trailer (for every node), or nothing for text's `\.`.
    /// What the client sends after it is ignored, as PostgreSQL ignores it.
    End(Bytes),
}

/// An error in the data itself, PostgreSQL's for the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub error: SgError,
    pub hint: Option<&'static str>,
    pub line: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    Nl,
    Cr,
    CrNl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Open,
    /// After `\.` or the binary trailer.
    Ended,
    /// After a Broken piece or a fault: input is dropped.
    Dead,
}

pub struct Splitter {
    pub(super) format: Format,
    quote: u8,
    escape: u8,
    pub(super) header: bool,
    max_row: usize,
    pub(super) buf: BytesMut,
    /// Where the scan of the current line resumes.
    pos: usize,
    in_quote: bool,
    last_was_esc: bool,
    /// Quoted newlines of the current line that PostgreSQL counts as lines.
    embedded: u64,
    /// Quoted carriage returns of the current line.
    embedded_cr: u64,
    eol: Option<Eol>,
    pub(super) line: u64,
    pub(super) state: State,
    /// The end, due after the row the line holding `\.` began with.
    pending_end: bool,
}

pub(super) fn fault(message: &str, hint: Option<&'static str>, line: u64) -> Fault {
    Fault {
        error: SgError::new(BAD_COPY_FILE_FORMAT, message),
        hint,
        line,
    }
}

impl Splitter {
    /// `max_row`: the longest row held while waiting for its end.
    pub fn new(opts: &CopyOptions, max_row: usize) -> Splitter {
        Splitter {
            format: opts.format,
            quote: opts.quote,
            // CopyReadLineText: "ignore special escape processing if it's the same as quotec".
            escape: if opts.escape == opts.quote {
                0
            } else {
                opts.escape
            },
            header: opts.header || opts.format == Format::Binary,
            max_row,
            buf: BytesMut::new(),
            pos: 0,
            in_quote: false,
            last_was_esc: false,
            embedded: 0,
            embedded_cr: 0,
            eol: None,
            line: 0,
            state: State::Open,
            pending_end: false,
        }
    }

    /// The client's line count so far (PostgreSQL's cur_lineno).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Takes one CopyData payload. Data after the end marker is dropped (text), or an error
    /// (binary: "received copy data after EOF marker").
    pub fn push(&mut self, data: &[u8]) -> Result<(), Fault> {
        match self.state {
            State::Open => {
                self.buf.extend_from_slice(data);
                Ok(())
            }
            State::Ended if self.format == Format::Binary && !data.is_empty() => {
                self.state = State::Dead;
                Err(fault(
                    "received copy data after EOF marker",
                    None,
                    self.line,
                ))
            }
            _ => Ok(()),
        }
    }

    /// The next complete piece; with `eof` (the client's CopyDone), the last, incomplete one.
    pub fn next(&mut self, eof: bool) -> Result<Option<Piece>, Fault> {
        if std::mem::take(&mut self.pending_end) {
            return Ok(Some(Piece::End(Bytes::new())));
        }
        if self.state != State::Open {
            return Ok(None);
        }
        let r = match self.format {
            Format::Binary => self.next_binary(eof),
            _ => self.next_line(eof),
        };
        match r {
            Ok(None) if self.buf.len() > self.max_row => {
                self.state = State::Dead;
                Err(Fault {
                    error: SgError::new(
                        crate::error::code::PROGRAM_LIMIT_EXCEEDED,
                        format!("COPY row longer than {} bytes", self.max_row),
                    ),
                    hint: None,
                    line: self.line + 1,
                })
            }
            Err(f) => {
                self.state = State::Dead;
                Err(f)
            }
            r => r,
        }
    }

    pub(super) fn take(&mut self, n: usize, content: usize, span: u64) -> Row {
        self.line += span;
        self.pos = 0;
        self.in_quote = false;
        self.last_was_esc = false;
        self.embedded = 0;
        Row {
            data: self.buf.split_to(n).freeze(),
            content,
            line: self.line,
            span,
            first_span: 1 + std::mem::take(&mut self.embedded_cr),
        }
    }

    fn piece(&mut self, row: Row) -> Piece {
        if std::mem::take(&mut self.header) {
            Piece::Header(row)
        } else {
            Piece::Row(row)
        }
    }

    /// One logical line of text or CSV, as CopyReadLineText reads it.
    fn next_line(&mut self, eof: bool) -> Result<Option<Piece>, Fault> {
        let csv = self.format == Format::Csv;
        let text_or = |t: &'static str, c: &'static str| if csv { c } else { t };
        let mut i = self.pos;
        loop {
            let len = self.buf.len();
            if i >= len {
                if !eof {
                    self.pos = i;
                    return Ok(None);
                }
                if len == 0 {
                    return Ok(None);
                }
                // The last line, without an end of line.
                let row = self.take(len, len, 1 + self.embedded);
                return Ok(Some(self.piece(row)));
            }
            let c = self.buf[i];
            let first = i == 0;
            // Look ahead before any state changes, so a scan resumed with more data redoes
            // this character from the same state (PostgreSQL's IF_NEED_REFILL_AND_NOT_EOF).
            if !eof {
                let need = match c {
                    b'\r' => 1,
                    b'\\' if !csv || first => match self.buf.get(i + 1) {
                        Some(b'.') if self.eol == Some(Eol::CrNl) => 3,
                        Some(b'.') => 2,
                        _ => 1,
                    },
                    b'\\' => 1,
                    _ => 0,
                };
                if i + need >= len {
                    self.pos = i;
                    return Ok(None);
                }
            }
            let at = |k: usize| self.buf.get(k).copied().unwrap_or(0);
            i += 1;
            if csv {
                if self.in_quote && c == self.escape {
                    self.last_was_esc = !self.last_was_esc;
                }
                if c == self.quote && !self.last_was_esc {
                    self.in_quote = !self.in_quote;
                }
                if c != self.escape {
                    self.last_was_esc = false;
                }
                let counted = if self.eol == Some(Eol::Nl) {
                    b'\n'
                } else {
                    b'\r'
                };
                if self.in_quote && c == counted {
                    self.embedded += 1;
                }
                if self.in_quote && c == b'\r' {
                    self.embedded_cr += 1;
                }
            }
            if c == b'\r' && (!csv || !self.in_quote) {
                let content = i - 1;
                match self.eol {
                    None | Some(Eol::CrNl) => {
                        if at(i) == b'\n' {
                            i += 1;
                            self.eol = Some(Eol::CrNl);
                        } else if self.eol == Some(Eol::CrNl) {
                            return Err(self.cr_fault(csv));
                        } else {
                            self.eol = Some(Eol::Cr);
                        }
                    }
                    Some(Eol::Nl) => return Err(self.cr_fault(csv)),
                    Some(Eol::Cr) => {}
                }
                let row = self.take(i, content, 1 + self.embedded);
                return Ok(Some(self.piece(row)));
            }
            if c == b'\n' && (!csv || !self.in_quote) {
                if matches!(self.eol, Some(Eol::Cr | Eol::CrNl)) {
                    return Err(fault(
                        text_or(
                            "literal newline found in data",
                            "unquoted newline found in data",
                        ),
                        Some(text_or(
                            "Use \"\\n\" to represent newline.",
                            "Use quoted CSV field to represent newline.",
                        )),
                        self.line + 1 + self.embedded,
                    ));
                }
                self.eol = Some(Eol::Nl);
                let row = self.take(i, i - 1, 1 + self.embedded);
                return Ok(Some(self.piece(row)));
            }
            if c == b'\\' && (!csv || first) {
                if i >= len {
                    // A backslash ending the data ends the line (IF_NEED_REFILL_AND_EOF_BREAK).
                    continue;
                }
                if at(i) == b'.' {
                    if let Some(end) = self.end_marker(i + 1, csv)? {
                        return Ok(Some(end));
                    }
                } else if !csv {
                    // Anything after a backslash is data in text: `\\.` is not the marker.
                    i += 1;
                }
            }
        }
    }

    fn cr_fault(&self, csv: bool) -> Fault {
        fault(
            if csv {
                "unquoted carriage return found in data"
            } else {
                "literal carriage return found in data"
            },
            Some(if csv {
                "Use quoted CSV field to represent carriage return."
            } else {
                "Use \"\\r\" to represent carriage return."
            }),
            self.line + 1 + self.embedded,
        )
    }

    /// After `\.` (at `after`): the end of the data if an end of line of the data's style
    /// follows; in CSV anything else makes it data, in text an error. Bytes of the line before
    /// the marker are its last row (sent with an end of line of the data's style).
    fn end_marker(&mut self, after: usize, csv: bool) -> Result<Option<Piece>, Fault> {
        let at = |k: usize| self.buf.get(k).copied().unwrap_or(0);
        let mut k = after;
        let line = self.line + 1;
        let corrupt = || fault("end-of-copy marker corrupt", None, line);
        let style = || {
            fault(
                "end-of-copy marker does not match previous newline style",
                None,
                line,
            )
        };
        if self.eol == Some(Eol::CrNl) {
            let c2 = at(k);
            k += 1;
            if c2 == b'\n' {
                return if csv { Ok(None) } else { Err(style()) };
            } else if c2 != b'\r' {
                return if csv { Ok(None) } else { Err(corrupt()) };
            }
        }
        let c2 = at(k);
        if c2 != b'\r' && c2 != b'\n' {
            return if csv { Ok(None) } else { Err(corrupt()) };
        }
        let want = match self.eol {
            Some(Eol::Cr) => b'\r',
            Some(_) => b'\n',
            None => c2,
        };
        if c2 != want {
            return Err(style());
        }
        // The marker's backslash sits two bytes before `after`.
        let before = after - 2;
        self.state = State::Ended;
        if before == 0 {
            self.buf.clear();
            return Ok(Some(Piece::End(Bytes::new())));
        }
        let mut data = BytesMut::from(&self.buf[..before]);
        data.extend_from_slice(match self.eol {
            Some(Eol::Cr) => b"\r",
            Some(Eol::CrNl) => b"\r\n",
            _ => b"\n",
        });
        self.buf.clear();
        self.pending_end = true;
        self.line += 1 + self.embedded;
        let row = Row {
            data: data.freeze(),
            content: before,
            line: self.line,
            span: 1 + self.embedded,
            first_span: 1 + self.embedded_cr,
        };
        Ok(Some(self.piece(row)))
    }
}
