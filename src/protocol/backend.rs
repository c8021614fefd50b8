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

/// What becomes of an error's position (field `P`, characters from 1 into the query string,
/// protocol-error-fields.html) on its way to the client: the worker counted in the text it
/// ran, which is the client's own, one statement of the client's string, or shardgate's
/// rewrite of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Position {
    /// The worker ran the client's whole text.
    #[default]
    Keep,
    /// The worker ran one statement of the client's string, this many characters into it.
    Shift(usize),
    /// The worker ran a rewrite: its positions point at nothing the client wrote.
    Drop,
}

/// `f` (an ErrorResponse or NoticeResponse) with its position made the client's; None when
/// it needs no change.
pub fn reposition(f: &Frame, p: Position) -> Option<Frame> {
    if p == Position::Keep || !matches!(f.tag, ERROR_RESPONSE | NOTICE_RESPONSE) {
        return None;
    }
    let mut r = Reader::new(f.body());
    let mut body = BytesMut::with_capacity(f.body().len());
    let mut changed = false;
    while let Ok(k) = r.u8() {
        if k == 0 {
            break;
        }
        let v = r.cstr().ok()?;
        if k == b'P' {
            changed = true;
            let Position::Shift(by) = p else { continue };
            let at = v.parse::<usize>().ok()?.saturating_add(by);
            body.put_u8(k);
            put_cstr(&mut body, &at.to_string());
            continue;
        }
        body.put_u8(k);
        put_cstr(&mut body, v);
    }
    body.put_u8(0);
    changed.then(|| Frame::build(f.tag, &body))
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

#[cfg(test)]
mod position_tests {
    use super::*;

    fn error_at(p: Option<&str>) -> Frame {
        let mut b = BytesMut::new();
        for (k, v) in [(b'S', Some("ERROR")), (b'C', Some("42703")), (b'P', p)] {
            if let Some(v) = v {
                b.put_u8(k);
                put_cstr(&mut b, v);
            }
        }
        b.put_u8(0);
        Frame::build(ERROR_RESPONSE, &b)
    }

    #[test]
    fn positions_shift_into_the_clients_string_or_go() {
        let f = error_at(Some("8"));
        assert!(reposition(&f, Position::Keep).is_none());
        let shifted = reposition(&f, Position::Shift(10)).map(|f| f.raw);
        assert_eq!(shifted, Some(error_at(Some("18")).raw));
        let dropped = reposition(&f, Position::Drop).map(|f| f.raw);
        assert_eq!(dropped, Some(error_at(None).raw));
        assert!(reposition(&error_at(None), Position::Drop).is_none());
    }
}
