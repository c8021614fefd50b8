//! Worker → client messages: the ones shardgate builds itself, and the fields it reads from
//! workers' replies (error codes, command tags, transaction status).

use bytes::{BufMut, BytesMut};

use super::frontend::put_cstr;
use super::{Frame, Reader};
use crate::error::{SgError, SgResult};

pub const AUTHENTICATION: u8 = b'R';
pub const BACKEND_KEY_DATA: u8 = b'K';
pub const BIND_COMPLETE: u8 = b'2';
pub const CLOSE_COMPLETE: u8 = b'3';
pub const COMMAND_COMPLETE: u8 = b'C';
pub const COPY_IN: u8 = b'G';
pub const COPY_OUT: u8 = b'H';
pub const COPY_BOTH: u8 = b'W';
pub const DATA_ROW: u8 = b'D';
pub const EMPTY_QUERY: u8 = b'I';
pub const ERROR_RESPONSE: u8 = b'E';
pub const NO_DATA: u8 = b'n';
pub const NOTICE_RESPONSE: u8 = b'N';
pub const NOTIFICATION: u8 = b'A';
pub const PARAMETER_DESCRIPTION: u8 = b't';
pub const PARAMETER_STATUS: u8 = b'S';
pub const PARSE_COMPLETE: u8 = b'1';
pub const PORTAL_SUSPENDED: u8 = b's';
pub const READY_FOR_QUERY: u8 = b'Z';
pub const ROW_DESCRIPTION: u8 = b'T';

pub fn error(e: &SgError) -> Frame {
    let mut b = BytesMut::with_capacity(e.message.len() + 32);
    for (k, v) in [(b'S', "ERROR"), (b'V', "ERROR"), (b'C', e.code)] {
        b.put_u8(k);
        put_cstr(&mut b, v);
    }
    b.put_u8(b'M');
    put_cstr(&mut b, &e.message);
    b.put_u8(0);
    Frame::build(ERROR_RESPONSE, &b)
}

/// A FATAL error, for failures that end the session.
pub fn fatal(e: &SgError) -> Frame {
    let mut b = BytesMut::new();
    for (k, v) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', e.code)] {
        b.put_u8(k);
        put_cstr(&mut b, v);
    }
    b.put_u8(b'M');
    put_cstr(&mut b, &e.message);
    b.put_u8(0);
    Frame::build(ERROR_RESPONSE, &b)
}

pub fn notice(message: &str) -> Frame {
    warning("01000", message)
}

/// A WARNING with its SQLSTATE, as PostgreSQL's own warnings carry one.
pub fn warning(code: &str, message: &str) -> Frame {
    let mut b = BytesMut::new();
    for (k, v) in [
        (b'S', "WARNING"),
        (b'V', "WARNING"),
        (b'C', code),
        (b'M', message),
    ] {
        b.put_u8(k);
        put_cstr(&mut b, v);
    }
    b.put_u8(0);
    Frame::build(NOTICE_RESPONSE, &b)
}

pub fn command_complete(tag: &str) -> Frame {
    let mut b = BytesMut::with_capacity(tag.len() + 1);
    put_cstr(&mut b, tag);
    Frame::build(COMMAND_COMPLETE, &b)
}

pub fn ready(status: u8) -> Frame {
    Frame::build(READY_FOR_QUERY, &[status])
}

pub fn simple(tag: u8) -> Frame {
    Frame::build(tag, &[])
}

pub fn parameter_status(name: &str, value: &str) -> Frame {
    let mut b = BytesMut::new();
    put_cstr(&mut b, name);
    put_cstr(&mut b, value);
    Frame::build(PARAMETER_STATUS, &b)
}

/// The SQLSTATE and message of a worker's ErrorResponse.
pub fn error_fields(f: &Frame) -> (String, String) {
    let mut r = Reader::new(f.body());
    let (mut code, mut msg) = (String::new(), String::new());
    while let Ok(k) = r.u8() {
        if k == 0 {
            break;
        }
        let Ok(v) = r.cstr() else { break };
        match k {
            b'C' => code = v.to_string(),
            b'M' => msg = v.to_string(),
            _ => {}
        }
    }
    (code, msg)
}

/// A worker's error as shardgate's own (when it must be re-raised rather than forwarded).
pub fn to_sg_error(f: &Frame) -> SgError {
    let (code, msg) = error_fields(f);
    SgError::new(crate::error::intern_code(&code), msg)
}

/// A CommandComplete's tag ("SELECT 5", "INSERT 0 3").
pub fn command_tag(f: &Frame) -> SgResult<&str> {
    Reader::new(f.body()).cstr()
}

/// Splits a tag into its verb and row count: ("INSERT 0", 3), ("SELECT", 5).
pub fn split_tag(tag: &str) -> (&str, Option<u64>) {
    match tag.rsplit_once(' ') {
        Some((verb, n)) => match n.parse() {
            Ok(n) => (verb, Some(n)),
            Err(_) => (tag, None),
        },
        None => (tag, None),
    }
}

pub fn ready_status(f: &Frame) -> u8 {
    f.body().first().copied().unwrap_or(b'I')
}
