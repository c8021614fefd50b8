//! Rows as the coordinator must see them to merge: RowDescription fields, DataRow columns split
//! without copying, binary-format values compared as PostgreSQL orders them, and binary arrays
//! that carry partial results to the merge node.

use std::cmp::Ordering;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{SgError, SgResult};
use crate::plan::merge::SortKey;
use crate::protocol::backend as be;
use crate::protocol::frontend::put_cstr;
use crate::protocol::{Frame, Reader};

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub table_oid: i32,
    pub column: i16,
    pub type_oid: u32,
    pub type_len: i16,
    pub type_mod: i32,
    pub format: i16,
}

impl Field {
    /// The column's type as SQL that keeps its modifier (`numeric(10,2)`, `bit(8)`,
    /// `varchar(20)`, `timestamp(3)`), as PostgreSQL's format_type_extended prints it; None for
    /// a type shardgate does not know by OID. A modifier shardgate cannot print (interval
    /// fields) is left out.
    pub fn type_sql(&self) -> Option<String> {
        type_sql(self.type_oid, self.type_mod)
    }
}

/// See [`Field::type_sql`].
pub fn type_sql(oid: u32, typmod: i32) -> Option<String> {
    let t = postgres_types::Type::from_oid(oid)?;
    let name = t.name();
    // Modifiers as PostgreSQL's typmodout functions read them (numeric.c numerictypmodout,
    // varchar.c, varbit.c, timestamp.c).
    let m = match oid {
        1700 if typmod >= 4 => {
            let v = typmod - 4;
            let precision = (v >> 16) & 0xffff;
            // PostgreSQL 15 keeps the scale as an 11-bit signed field (negative scales).
            let scale = ((v & 0x7ff) ^ 1024) - 1024;
            format!("({precision},{scale})")
        }
        1042 | 1043 if typmod >= 4 => format!("({})", typmod - 4),
        1560 | 1562 if typmod >= 0 => format!("({typmod})"),
        1083 | 1114 | 1184 | 1266 if typmod >= 0 => format!("({typmod})"),
        // Unquoted, `bit` is bit(1) (SQL's rule); PostgreSQL's format_type quotes the name to
        // mean bit without a length.
        1560 => return Some("\"bit\"".into()),
        _ => String::new(),
    };
    Some(format!("{name}{m}"))
}

pub fn parse_row_description(f: &Frame) -> SgResult<Vec<Field>> {
    let mut r = Reader::new(f.body());
    let n = r.i16()?.max(0) as usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Field {
            name: r.cstr()?.to_string(),
            table_oid: r.i32()?,
            column: r.i16()?,
            type_oid: r.i32()? as u32,
            type_len: r.i16()?,
            type_mod: r.i32()?,
            format: r.i16()?,
        });
    }
    Ok(out)
}

/// A RowDescription of the first `n` fields with the result formats a Bind asked for
/// (none: text; one: for all; else one per column).
pub fn row_description(fields: &[Field], n: usize, formats: &[i16]) -> Frame {
    let n = n.min(fields.len());
    let mut b = BytesMut::new();
    b.put_i16(n as i16);
    for (i, f) in fields[..n].iter().enumerate() {
        put_cstr(&mut b, &f.name);
        b.put_i32(f.table_oid);
        b.put_i16(f.column);
        b.put_i32(f.type_oid as i32);
        b.put_i16(f.type_len);
        b.put_i32(f.type_mod);
        b.put_i16(format_of(formats, i));
    }
    Frame::build(be::ROW_DESCRIPTION, &b)
}

pub fn format_of(formats: &[i16], i: usize) -> i16 {
    match formats.len() {
        0 => 0,
        1 => formats[0],
        _ => formats.get(i).copied().unwrap_or(0),
    }
}

/// A DataRow's columns (None for NULL), sharing the frame's bytes.
pub fn columns(f: &Frame) -> SgResult<Vec<Option<Bytes>>> {
    let body = f.raw.slice(5..);
    let mut r = Reader::new(&body);
    let n = r.i16()?.max(0) as usize;
    let mut out = Vec::with_capacity(n);
    let mut pos = 2usize;
    for _ in 0..n {
        let len = r.i32()?;
        pos += 4;
        if len < 0 {
            out.push(None);
        } else {
            r.bytes(len as usize)?;
            out.push(Some(body.slice(pos..pos + len as usize)));
            pos += len as usize;
        }
    }
    Ok(out)
}

/// The first `n` columns of a DataRow as a DataRow of their own (hidden sort keys dropped).
pub fn truncate_row(f: &Frame, n: usize) -> SgResult<Frame> {
    let body = f.body();
    let mut r = Reader::new(body);
    let total = r.i16()?.max(0) as usize;
    if n >= total {
        return Ok(f.clone());
    }
    let mut end = 2usize;
    for _ in 0..n {
        let len = r.i32()?;
        end += 4;
        if len > 0 {
            r.bytes(len as usize)?;
            end += len as usize;
        }
    }
    let mut b = BytesMut::with_capacity(end);
    b.put_i16(n as i16);
    b.put_slice(&body[2..end]);
    Ok(Frame::build(be::DATA_ROW, &b))
}

/// One column of buffered binary DataRows, kept as the elements of a one-dimensional binary
/// array: array_recv (arrayfuncs.c) reads each element as its length (-1 for NULL) and bytes,
/// exactly as a DataRow carries a column, so a column's bytes are copied once and never split.
#[derive(Default)]
pub struct ArrayColumn {
    elems: BytesMut,
    n: i32,
    nulls: bool,
}

impl ArrayColumn {
    /// The array (array_send's layout) of elements of type `elem_oid`.
    pub fn finish(&self, elem_oid: u32) -> Bytes {
        let mut b = BytesMut::with_capacity(20 + self.elems.len());
        if self.n == 0 {
            b.put_i32(0);
            b.put_i32(0);
            b.put_u32(elem_oid);
            return b.freeze();
        }
        b.put_i32(1);
        b.put_i32(i32::from(self.nulls));
        b.put_u32(elem_oid);
        b.put_i32(self.n);
        b.put_i32(1);
        b.put_slice(&self.elems);
        b.freeze()
    }
}

/// Appends a DataRow's columns to their arrays; the row must have one column per array.
pub fn append_row(f: &Frame, arrays: &mut [ArrayColumn]) -> SgResult<()> {
    let mut r = Reader::new(f.body());
    let n = r.i16()?.max(0) as usize;
    if n != arrays.len() {
        return Err(SgError::protocol(format!(
            "a row of {n} columns where {} were described",
            arrays.len()
        )));
    }
    for a in arrays.iter_mut() {
        let len = r.i32()?;
        a.elems.put_i32(len);
        if len < 0 {
            a.nulls = true;
        } else {
            a.elems.put_slice(r.bytes(len as usize)?);
        }
        a.n =
            a.n.checked_add(1)
                .ok_or_else(|| SgError::protocol("too many rows for one array"))?;
    }
    Ok(())
}

/// Text types, which PostgreSQL compares under a collation.
pub fn is_text(oid: u32) -> bool {
    matches!(oid, 25 | 1043 | 1042 | 19)
}

/// The refusal for merging text that a collation other than C orders: shardgate compares text
/// bytewise (and the merge node in its default collation), which is not that order.
pub fn collated_text() -> SgError {
    SgError::unsupported(
        "ordering, grouping or comparing text under a collation other than C (a COLLATE clause, or a column declared with one) over rows of several nodes",
    )
}

/// Whether rows can be ordered by a column of this type here (binary comparison below).
pub fn sortable(oid: u32, c_collation: bool) -> SgResult<()> {
    match oid {
        16 | 20 | 21 | 23 | 26 | 700 | 701 | 1700 | 1082 | 1083 | 1114 | 1184 | 2950 | 1186 => Ok(()),
        25 | 1043 | 1042 | 19 if c_collation => Ok(()),
        25 | 1043 | 1042 | 19 => Err(SgError::unsupported(
            "ORDER BY text across shards when the workers' collation is not C (merge order would differ)",
        )),
        other => Err(SgError::unsupported(format!("ORDER BY a column of type oid {other} across shards"))),
    }
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[8 - n..].copy_from_slice(&b[..n]);
    if n < 8 && n > 0 && b[0] & 0x80 != 0 {
        for x in a.iter_mut().take(8 - n) {
            *x = 0xff;
        }
    }
    i64::from_be_bytes(a)
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    // PostgreSQL sorts NaN above every other value and equal to itself (float.c).
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// numeric's binary form (numeric_send): ndigits, weight, sign, dscale, base-10000 digits.
fn numeric_cmp(a: &[u8], b: &[u8]) -> Ordering {
    fn parse(x: &[u8]) -> (i32, i16, Vec<i16>) {
        let rd = |i: usize| {
            i16::from_be_bytes([
                x.get(i).copied().unwrap_or(0),
                x.get(i + 1).copied().unwrap_or(0),
            ])
        };
        let nd = rd(0).max(0) as usize;
        let weight = rd(2);
        let sign = u16::from_be_bytes([
            x.get(4).copied().unwrap_or(0),
            x.get(5).copied().unwrap_or(0),
        ]);
        let digits: Vec<i16> = (0..nd).map(|i| rd(8 + 2 * i)).collect();
        // class: -2 -inf, -1 negative, 0 zero, 1 positive, 2 +inf, 3 NaN
        let class = match sign {
            0xC000 => 3,
            0xD000 => 2,
            0xF000 => -2,
            _ if digits.iter().all(|d| *d == 0) => 0,
            0x4000 => -1,
            _ => 1,
        };
        (class, weight, digits)
    }
    let (ca, wa, da) = parse(a);
    let (cb, wb, db) = parse(b);
    if ca != cb || ca.abs() != 1 {
        return ca.cmp(&cb);
    }
    let mag = wa.cmp(&wb).then_with(|| {
        let n = da.len().max(db.len());
        (0..n)
            .map(|i| {
                da.get(i)
                    .copied()
                    .unwrap_or(0)
                    .cmp(&db.get(i).copied().unwrap_or(0))
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    if ca < 0 {
        mag.reverse()
    } else {
        mag
    }
}

fn interval_cmp(a: &[u8], b: &[u8]) -> Ordering {
    // interval_cmp_value (timestamp.c): months as 30 days, days as 24 hours.
    let span = |x: &[u8]| -> i128 {
        if x.len() < 16 {
            return 0;
        }
        let us = be_i64(&x[0..8]) as i128;
        let days = i32::from_be_bytes([x[8], x[9], x[10], x[11]]) as i128;
        let months = i32::from_be_bytes([x[12], x[13], x[14], x[15]]) as i128;
        us + (days + months * 30) * 86_400_000_000
    };
    span(a).cmp(&span(b))
}

/// Compares two non-NULL binary values of one type as PostgreSQL's default btree opclass does
/// (text: C collation, byte order).
pub fn value_cmp(oid: u32, a: &[u8], b: &[u8]) -> Ordering {
    match oid {
        16 | 21 | 23 | 20 | 1082 | 1083 | 1114 | 1184 => be_i64(a).cmp(&be_i64(b)),
        26 => u32::from_be_bytes(a.try_into().unwrap_or([0; 4]))
            .cmp(&u32::from_be_bytes(b.try_into().unwrap_or([0; 4]))),
        700 => float_cmp(
            f32::from_be_bytes(a.try_into().unwrap_or([0; 4])) as f64,
            f32::from_be_bytes(b.try_into().unwrap_or([0; 4])) as f64,
        ),
        701 => float_cmp(
            f64::from_be_bytes(a.try_into().unwrap_or([0; 8])),
            f64::from_be_bytes(b.try_into().unwrap_or([0; 8])),
        ),
        1700 => numeric_cmp(a, b),
        1186 => interval_cmp(a, b),
        // bpchar compares without trailing blanks (bpcharcmp).
        1042 => {
            let trim = |x: &[u8]| x.len() - x.iter().rev().take_while(|c| **c == b' ').count();
            a[..trim(a)].cmp(&b[..trim(b)])
        }
        _ => a.cmp(b),
    }
}

/// Orders two values of one ORDER BY item: NULLs placed as the item asks (PostgreSQL: NULLS
/// LAST is the default ascending, NULLS FIRST descending), the rest by `cmp`, reversed for DESC.
pub fn key_cmp<T>(
    k: SortKey,
    a: Option<T>,
    b: Option<T>,
    cmp: impl FnOnce(T, T) -> Ordering,
) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) if k.nulls_first => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) if k.nulls_first => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) if k.desc => cmp(x, y).reverse(),
        (Some(x), Some(y)) => cmp(x, y),
    }
}

/// Orders two rows' sort keys by the ORDER BY spec, NULLs placed as asked.
pub fn keys_cmp(
    spec: &[SortKey],
    oids: &[u32],
    a: &[Option<Bytes>],
    b: &[Option<Bytes>],
) -> Ordering {
    for (i, k) in spec.iter().enumerate() {
        let oid = oids.get(i).copied().unwrap_or(25);
        let o = key_cmp(
            *k,
            a.get(i).and_then(|x| x.as_ref()),
            b.get(i).and_then(|x| x.as_ref()),
            |x, y| value_cmp(oid, x, y),
        );
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(ndigits.to_be_bytes());
        b.extend(weight.to_be_bytes());
        b.extend(sign.to_be_bytes());
        b.extend(0i16.to_be_bytes());
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_order_by_sign_weight_digits() {
        let one = numeric(1, 0, 0, &[1]);
        let ten_k = numeric(1, 1, 0, &[1]);
        let minus_one = numeric(1, 0, 0x4000, &[1]);
        let minus_two = numeric(1, 0, 0x4000, &[2]);
        let zero = numeric(0, 0, 0, &[]);
        let nan = numeric(0, 0, 0xC000, &[]);
        assert_eq!(numeric_cmp(&one, &ten_k), Ordering::Less);
        assert_eq!(numeric_cmp(&minus_two, &minus_one), Ordering::Less);
        assert_eq!(numeric_cmp(&zero, &minus_one), Ordering::Greater);
        assert_eq!(numeric_cmp(&nan, &ten_k), Ordering::Greater);
    }

    #[test]
    fn nulls_and_direction() {
        let spec = [SortKey {
            desc: true,
            nulls_first: true,
        }];
        let a = vec![Some(Bytes::from_static(&[0, 0, 0, 5]))];
        let b = vec![Some(Bytes::from_static(&[0, 0, 0, 9]))];
        assert_eq!(keys_cmp(&spec, &[23], &a, &b), Ordering::Greater);
        assert_eq!(keys_cmp(&spec, &[23], &[None], &b), Ordering::Less);
        assert_eq!(
            value_cmp(701, &f64::NAN.to_be_bytes(), &1e300f64.to_be_bytes()),
            Ordering::Greater
        );
        assert_eq!(
            value_cmp(20, &(-5i64).to_be_bytes(), &3i64.to_be_bytes()),
            Ordering::Less
        );
    }

    #[test]
    fn rows_split_and_truncate() {
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i32(1);
        b.put_u8(b'a');
        b.put_i32(-1);
        b.put_i32(2);
        b.put_slice(b"zz");
        let f = Frame::build(be::DATA_ROW, &b);
        let cols = columns(&f).unwrap_or_default();
        assert_eq!(
            cols,
            vec![
                Some(Bytes::from_static(b"a")),
                None,
                Some(Bytes::from_static(b"zz"))
            ]
        );
        let t = truncate_row(&f, 2).unwrap_or_else(|_| f.clone());
        assert_eq!(columns(&t).unwrap_or_default().len(), 2);
    }
}
