//! The client messages shardgate reads fields of: Query, Parse, Bind, Describe, Execute, Close.
//! Everything else is forwarded or answered without looking inside.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Frame, Reader};
use crate::error::SgResult;

pub const QUERY: u8 = b'Q';
pub const PARSE: u8 = b'P';
pub const BIND: u8 = b'B';
pub const DESCRIBE: u8 = b'D';
pub const EXECUTE: u8 = b'E';
pub const CLOSE: u8 = b'C';
pub const SYNC: u8 = b'S';
pub const FLUSH: u8 = b'H';
pub const TERMINATE: u8 = b'X';
pub const COPY_DATA: u8 = b'd';
pub const COPY_DONE: u8 = b'c';
pub const COPY_FAIL: u8 = b'f';

/// The messages of the extended query protocol, which the session collects up to Sync.
pub fn is_extended(tag: u8) -> bool {
    matches!(
        tag,
        PARSE | BIND | DESCRIBE | EXECUTE | CLOSE | SYNC | FLUSH
    )
}

pub fn query(f: &Frame) -> SgResult<&str> {
    Reader::new(f.body()).cstr()
}

#[derive(Debug, Clone)]
pub struct Parse {
    pub name: String,
    pub sql: String,
    /// The rest of the body: parameter type count and OIDs, forwarded as sent.
    pub types: Bytes,
}

pub fn parse(f: &Frame) -> SgResult<Parse> {
    let mut r = Reader::new(f.body());
    let name = r.cstr()?.to_string();
    let sql = r.cstr()?.to_string();
    Ok(Parse {
        name,
        sql,
        types: Bytes::copy_from_slice(r.rest()),
    })
}

/// A Parse for a backend, under the backend's own statement name.
pub fn build_parse(name: &str, p: &Parse) -> Frame {
    let mut body = BytesMut::with_capacity(name.len() + p.sql.len() + p.types.len() + 2);
    put_cstr(&mut body, name);
    put_cstr(&mut body, &p.sql);
    body.put_slice(&p.types);
    Frame::build(PARSE, &body)
}

#[derive(Debug, Clone)]
pub struct Bind {
    pub portal: String,
    pub statement: String,
    pub param_formats: Vec<i16>,
    pub params: Vec<Option<Bytes>>,
    pub result_formats: Vec<i16>,
    /// Everything after the statement name, forwarded as sent.
    pub tail: Bytes,
}

pub fn bind(f: &Frame) -> SgResult<Bind> {
    let mut r = Reader::new(f.body());
    let portal = r.cstr()?.to_string();
    let statement = r.cstr()?.to_string();
    let tail = Bytes::copy_from_slice(r.rest());
    let n = r.i16()?.max(0) as usize;
    let mut param_formats = Vec::with_capacity(n);
    for _ in 0..n {
        param_formats.push(r.i16()?);
    }
    let n = r.i16()?.max(0) as usize;
    let mut params = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.i32()?;
        params.push(if len < 0 {
            None
        } else {
            Some(Bytes::copy_from_slice(r.bytes(len as usize)?))
        });
    }
    let n = r.i16()?.max(0) as usize;
    let mut result_formats = Vec::with_capacity(n);
    for _ in 0..n {
        result_formats.push(r.i16()?);
    }
    Ok(Bind {
        portal,
        statement,
        param_formats,
        params,
        result_formats,
        tail,
    })
}

/// A Bind for a backend: the client's parameters and formats, the backend's statement name.
pub fn build_bind(portal: &str, statement: &str, b: &Bind) -> Frame {
    let mut body = BytesMut::with_capacity(portal.len() + statement.len() + b.tail.len() + 2);
    put_cstr(&mut body, portal);
    put_cstr(&mut body, statement);
    body.put_slice(&b.tail);
    Frame::build(BIND, &body)
}

/// Describe and Close: a kind byte ('S' statement, 'P' portal) and a name.
pub fn target(f: &Frame) -> SgResult<(u8, String)> {
    let mut r = Reader::new(f.body());
    let kind = r.u8()?;
    Ok((kind, r.cstr()?.to_string()))
}

pub fn build_target(tag: u8, kind: u8, name: &str) -> Frame {
    let mut body = BytesMut::with_capacity(name.len() + 2);
    body.put_u8(kind);
    put_cstr(&mut body, name);
    Frame::build(tag, &body)
}

pub fn execute(f: &Frame) -> SgResult<(String, i32)> {
    let mut r = Reader::new(f.body());
    let portal = r.cstr()?.to_string();
    Ok((portal, r.i32()?))
}

pub fn build_execute(portal: &str, max_rows: i32) -> Frame {
    let mut body = BytesMut::with_capacity(portal.len() + 5);
    put_cstr(&mut body, portal);
    body.put_i32(max_rows);
    Frame::build(EXECUTE, &body)
}

pub fn build_query(sql: &str) -> Frame {
    let mut body = BytesMut::with_capacity(sql.len() + 1);
    put_cstr(&mut body, sql);
    Frame::build(QUERY, &body)
}

pub fn sync() -> Frame {
    Frame::build(SYNC, &[])
}

pub fn flush() -> Frame {
    Frame::build(FLUSH, &[])
}

/// Values as Bind and array_send write them: a length (-1 for NULL), then the bytes.
pub fn put_values(b: &mut BytesMut, values: &[Option<Bytes>]) {
    for v in values {
        match v {
            None => b.put_i32(-1),
            Some(x) => {
                b.put_i32(x.len() as i32);
                b.put_slice(x);
            }
        }
    }
}

pub fn put_cstr(b: &mut BytesMut, s: &str) {
    b.put_slice(s.as_bytes());
    b.put_u8(0);
}

/// A Bind built by shardgate: its own parameters, formats and result formats.
pub fn build_bind_full(
    portal: &str,
    statement: &str,
    param_formats: &[i16],
    params: &[Option<Bytes>],
    result_formats: &[i16],
) -> Frame {
    let mut body = BytesMut::with_capacity(
        portal.len()
            + statement.len()
            + 16
            + params
                .iter()
                .map(|p| p.as_ref().map_or(4, |b| b.len() + 4))
                .sum::<usize>(),
    );
    put_cstr(&mut body, portal);
    put_cstr(&mut body, statement);
    body.put_i16(param_formats.len() as i16);
    for f in param_formats {
        body.put_i16(*f);
    }
    body.put_i16(params.len() as i16);
    put_values(&mut body, params);
    body.put_i16(result_formats.len() as i16);
    for f in result_formats {
        body.put_i16(*f);
    }
    Frame::build(BIND, &body)
}

/// Parameter type OIDs as a Parse carries them (count, then OIDs).
pub fn param_types(oids: &[u32]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + 4 * oids.len());
    b.put_i16(oids.len() as i16);
    for o in oids {
        b.put_u32(*o);
    }
    b.freeze()
}

pub fn read_param_types(types: &[u8]) -> Vec<u32> {
    let mut r = super::Reader::new(types);
    let n = r.i16().unwrap_or(0).max(0) as usize;
    (0..n)
        .map_while(|_| r.i32().ok().map(|v| v as u32))
        .collect()
}
