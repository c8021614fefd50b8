//! The binary COPY format for the splitter: the file header (signature, flags, extension),
//! then tuples (a field count, then each field's length, -1 for NULL, and bytes), then the
//! trailer (-1), as copyfromparse.c's ReceiveCopyBinaryHeader, CopyReadBinaryTupleHeader and
//! CopyReadBinaryAttribute read them ("Binary Format" on the COPY page). Malformed data goes to a
//! worker whole, whose error is PostgreSQL's.

use super::split::{fault, Fault, Piece, Row, Splitter, State, BINARY_HEADER, BINARY_SIGNATURE};

impl Splitter {
    pub(super) fn next_binary(&mut self, eof: bool) -> Result<Option<Piece>, Fault> {
        let len = self.buf.len();
        if self.header {
            let ext = (len >= BINARY_HEADER && self.buf.starts_with(BINARY_SIGNATURE)).then(|| {
                i32::from_be_bytes([self.buf[15], self.buf[16], self.buf[17], self.buf[18]])
            });
            let whole = match ext {
                Some(e) if e >= 0 => BINARY_HEADER + e as usize,
                _ => BINARY_HEADER,
            };
            if len < whole && !eof {
                return Ok(None);
            }
            let n = whole.min(len);
            let row = Row {
                data: self.buf.split_to(n).freeze(),
                content: n,
                line: 0,
                span: 0,
                first_span: 0,
            };
            self.header = false;
            // A header the workers will refuse: each says so, with PostgreSQL's words.
            if n < whole || ext.is_none_or(|e| e < 0) {
                self.state = State::Dead;
            }
            return Ok(Some(Piece::Header(row)));
        }
        if len < 2 {
            // At the end, fewer than two bytes read as the end of the data (CopyGetInt16).
            return Ok(None);
        }
        let count = i16::from_be_bytes([self.buf[0], self.buf[1]]);
        if count == -1 {
            self.line += 1;
            self.state = State::Ended;
            let trailer = self.buf.split_to(2).freeze();
            if !self.buf.is_empty() {
                self.state = State::Dead;
                return Err(fault(
                    "received copy data after EOF marker",
                    None,
                    self.line,
                ));
            }
            return Ok(Some(Piece::End(trailer)));
        }
        let broken = |s: &mut Splitter, n: usize| {
            s.state = State::Dead;
            let row = s.take(n, n, 1);
            Ok(Some(Piece::Broken(row)))
        };
        if count < 0 {
            return broken(self, 2);
        }
        let mut off = 2;
        for _ in 0..count {
            if off + 4 > len {
                return if eof { broken(self, len) } else { Ok(None) };
            }
            let size = i32::from_be_bytes([
                self.buf[off],
                self.buf[off + 1],
                self.buf[off + 2],
                self.buf[off + 3],
            ]);
            off += 4;
            if size < -1 {
                return broken(self, off);
            }
            let size = size.max(0) as usize;
            if off + size > len {
                return if eof { broken(self, len) } else { Ok(None) };
            }
            off += size;
        }
        let row = self.take(off, off, 1);
        Ok(Some(Piece::Row(row)))
    }
}
