//! PostgreSQL protocol frames after startup: reading whole messages as raw bytes (so they can be
//! forwarded untouched), reading the few fields shardgate routes on, and building the messages
//! it answers itself. Formats follow PostgreSQL's "Message Formats" (protocol-message-formats).

pub mod backend;
pub mod copy;
pub mod frontend;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{SgError, SgResult};

/// Largest message accepted from a client or worker (PostgreSQL's own limit is 1 GB).
pub const MAX_MESSAGE: usize = 1 << 30;

/// One message: its type byte and the whole frame (type, length, body).
#[derive(Debug, Clone)]
pub struct Frame {
    pub tag: u8,
    pub raw: Bytes,
}

impl Frame {
    pub fn body(&self) -> &[u8] {
        &self.raw[5..]
    }

    pub fn build(tag: u8, body: &[u8]) -> Frame {
        let mut b = BytesMut::with_capacity(body.len() + 5);
        b.put_u8(tag);
        b.put_i32(body.len() as i32 + 4);
        b.put_slice(body);
        Frame {
            tag,
            raw: b.freeze(),
        }
    }
}

/// Takes one complete frame off the front of `buf`, if it holds one. A length past `max` is an
/// error before any of the message is read; room for a long message is reserved as its bytes
/// arrive (at most `READ_CHUNK` ahead), never on the word of its length field alone.
pub fn take_frame(buf: &mut BytesMut, max: usize) -> SgResult<Option<Frame>> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(SgError::protocol(format!("invalid message length {len}")));
    }
    if len as usize > max {
        return Err(SgError::new(
            crate::error::code::PROGRAM_LIMIT_EXCEEDED,
            format!(
                "message of {len} bytes exceeds the limit of {max} bytes (server.max_message_bytes)"
            ),
        ));
    }
    let total = len as usize + 1;
    if buf.len() < total {
        let want = (total - buf.len()).min(READ_CHUNK);
        if buf.capacity() - buf.len() < want {
            buf.reserve(want);
        }
        return Ok(None);
    }
    let raw = buf.split_to(total).freeze();
    Ok(Some(Frame { tag: raw[0], raw }))
}

/// The most a read reserves ahead of the bytes it has.
const READ_CHUNK: usize = 1 << 20;

/// Reads the next frame from a worker; Ok(None) at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
) -> SgResult<Option<Frame>> {
    read_frame_max(r, buf, MAX_MESSAGE).await
}

/// Reads the next frame of at most `max` bytes; Ok(None) at a clean end of stream.
pub async fn read_frame_max<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> SgResult<Option<Frame>> {
    loop {
        if let Some(f) = take_frame(buf, max)? {
            return Ok(Some(f));
        }
        if buf.capacity() - buf.len() < 8192 {
            buf.reserve(8192);
        }
        let n = r
            .read_buf(buf)
            .await
            .map_err(|e| SgError::protocol("connection read failed").with_detail(e))?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(SgError::protocol("connection closed mid-message"));
        }
    }
}

/// A cursor over a message body.
pub struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b }
    }

    fn short() -> SgError {
        SgError::protocol("message is shorter than its fields")
    }

    pub fn cstr(&mut self) -> SgResult<&'a str> {
        let end = self
            .b
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(Self::short)?;
        let s = std::str::from_utf8(&self.b[..end])
            .map_err(|_| SgError::protocol("invalid UTF-8 in message"))?;
        self.b = &self.b[end + 1..];
        Ok(s)
    }

    pub fn i16(&mut self) -> SgResult<i16> {
        if self.b.len() < 2 {
            return Err(Self::short());
        }
        Ok(self.b.get_i16())
    }

    pub fn i32(&mut self) -> SgResult<i32> {
        if self.b.len() < 4 {
            return Err(Self::short());
        }
        Ok(self.b.get_i32())
    }

    pub fn u8(&mut self) -> SgResult<u8> {
        if self.b.is_empty() {
            return Err(Self::short());
        }
        Ok(self.b.get_u8())
    }

    pub fn bytes(&mut self, n: usize) -> SgResult<&'a [u8]> {
        if self.b.len() < n {
            return Err(Self::short());
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_length_field_reserves_only_what_arrives() {
        let mut buf = BytesMut::new();
        buf.put_u8(b'Q');
        buf.put_i32(60 << 20);
        buf.put_slice(b"SELECT");
        assert!(take_frame(&mut buf, 64 << 20)
            .expect("under the limit")
            .is_none());
        assert!(buf.capacity() <= READ_CHUNK + 64, "{}", buf.capacity());
        let mut big = BytesMut::new();
        big.put_u8(b'Q');
        big.put_i32(1 << 30);
        let e = take_frame(&mut big, 64 << 20).expect_err("past the limit");
        assert_eq!(e.code, crate::error::code::PROGRAM_LIMIT_EXCEEDED);
    }
}
