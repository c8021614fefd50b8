//! A local final (`plan::merge::local`) run in shardgate: the nodes' binary partial rows folded
//! per group as they arrive, then ordered, limited and encoded as the merge node's final query
//! would have answered them.

use std::cmp::Ordering;
use std::collections::HashMap;

use bytes::{BufMut, BytesMut};

use crate::error::{SgError, SgResult};
use crate::execute::rows::{self, Field};
use crate::plan::merge::{Combine, LocalFinal, Out, SortKey};
use crate::protocol::backend as be;
use crate::protocol::{Frame, Reader};

const INT2: u32 = 21;
const INT4: u32 = 23;
const INT8: u32 = 20;

fn is_int(oid: u32) -> bool {
    matches!(oid, INT2 | INT4 | INT8)
}

/// How one aggregate folds its partial column (index into the worker row).
#[derive(Debug, Clone, Copy)]
enum Fold {
    /// coalesce(sum(counts), 0)
    Count(usize),
    Sum(usize),
    Min(usize),
    Max(usize),
}

/// A group's key: most GROUP BYs have one column, kept without an allocation per row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    One(Option<i64>),
    Many(Vec<Option<i64>>),
}

impl Key {
    fn get(&self, k: usize) -> Option<i64> {
        match self {
            Key::One(v) if k == 0 => *v,
            Key::One(_) => None,
            Key::Many(v) => v.get(k).copied().flatten(),
        }
    }
}

/// Integer partial rows folded per group. Sums are kept in i128, as PostgreSQL sums int8
/// partials in numeric and only the final cast to bigint can overflow (22003).
pub struct Combiner {
    outputs: Vec<Out>,
    order: Vec<(usize, SortKey)>,
    limit: Option<u64>,
    offset: u64,
    folds: Vec<Fold>,
    groups: usize,
    /// Worker column count and each output column's type.
    columns: usize,
    out_types: Vec<u32>,
    map: HashMap<Key, Vec<Option<i128>>>,
    /// One row's values, reused.
    values: Vec<Option<i64>>,
}

impl Combiner {
    /// A combiner when the worker columns (`types`) and the client's columns as the merge node
    /// described them are all integers of the kinds the plan folds; None otherwise, and the
    /// merge node finishes as usual.
    pub fn new(
        plan: &LocalFinal,
        aggs: &[Combine],
        groups: usize,
        types: &[u32],
        described: &[Field],
    ) -> Option<Combiner> {
        if described.len() != plan.outputs.len() || types.len() < groups {
            return None;
        }
        if !types.iter().all(|t| is_int(*t)) {
            return None;
        }
        let partial = |j: usize| types.get(groups + j).copied();
        let mut folds = Vec::with_capacity(aggs.len());
        let mut agg_types = Vec::with_capacity(aggs.len());
        for c in aggs {
            let (fold, ty) = match c {
                Combine::Count(j) => (Fold::Count(groups + j), partial(*j).filter(|t| *t == INT8)?),
                // sum of int2/int4 partials is int8; sum(int8) is numeric and stays remote.
                Combine::Same(n, j) if n == "sum" => {
                    (Fold::Sum(groups + j), partial(*j).filter(|t| *t == INT8)?)
                }
                Combine::Same(n, j) if n == "min" => (Fold::Min(groups + j), partial(*j)?),
                Combine::Same(n, j) if n == "max" => (Fold::Max(groups + j), partial(*j)?),
                _ => return None,
            };
            folds.push(fold);
            agg_types.push(ty);
        }
        let mut out_types = Vec::with_capacity(plan.outputs.len());
        for (o, d) in plan.outputs.iter().zip(described) {
            let t = match o {
                Out::Group(k) => *types.get(*k)?,
                Out::Agg(a) => *agg_types.get(*a)?,
            };
            if d.type_oid != t {
                return None;
            }
            out_types.push(t);
        }
        Some(Combiner {
            outputs: plan.outputs.clone(),
            order: plan.order.clone(),
            limit: plan.limit,
            offset: plan.offset,
            folds,
            groups,
            columns: types.len(),
            out_types,
            map: HashMap::new(),
            values: Vec::new(),
        })
    }

    /// Folds one binary partial row into its group.
    pub fn add(&mut self, f: &Frame) -> SgResult<()> {
        let mut r = Reader::new(f.body());
        let n = r.i16()?.max(0) as usize;
        if n != self.columns {
            return Err(SgError::protocol(format!(
                "a row of {n} columns where {} were described",
                self.columns
            )));
        }
        let values = &mut self.values;
        values.clear();
        for _ in 0..n {
            let len = r.i32()?;
            values.push(if len < 0 {
                None
            } else {
                Some(int(r.bytes(len as usize)?)?)
            });
        }
        let key = match self.groups {
            1 => Key::One(values[0]),
            g => Key::Many(values[..g].to_vec()),
        };
        let accs = self
            .map
            .entry(key)
            .or_insert_with(|| vec![None; self.folds.len()]);
        for (acc, fold) in accs.iter_mut().zip(&self.folds) {
            let (Fold::Count(c) | Fold::Sum(c) | Fold::Min(c) | Fold::Max(c)) = *fold;
            let Some(v) = values[c].map(i128::from) else {
                continue;
            };
            *acc = Some(match (*fold, *acc) {
                (_, None) => v,
                (Fold::Count(_) | Fold::Sum(_), Some(a)) => a + v,
                (Fold::Min(_), Some(a)) => a.min(v),
                (Fold::Max(_), Some(a)) => a.max(v),
            });
        }
        Ok(())
    }

    /// The reply: RowDescription when asked, the rows, CommandComplete. Err 22003 when a value
    /// does not fit its column, for any group, as the final query's cast would raise it.
    pub fn finish(
        mut self,
        fields: &[Field],
        result_formats: &[i16],
        describe: bool,
    ) -> SgResult<Vec<Frame>> {
        // An aggregate without GROUP BY has one row even over no rows (nodeAgg.c).
        if self.groups == 0 && self.map.is_empty() {
            self.map
                .insert(Key::Many(Vec::new()), vec![None; self.folds.len()]);
        }
        let mut rows: Vec<Vec<Option<i128>>> = Vec::with_capacity(self.map.len());
        for (key, accs) in self.map.drain() {
            let mut row = Vec::with_capacity(self.outputs.len());
            for (o, ty) in self.outputs.iter().zip(&self.out_types) {
                let v = match o {
                    Out::Group(k) => key.get(*k).map(i128::from),
                    Out::Agg(a) => match (self.folds.get(*a), accs.get(*a).copied().flatten()) {
                        (Some(Fold::Count(_)), v) => Some(v.unwrap_or(0)),
                        (_, v) => v,
                    },
                };
                if let Some(v) = v {
                    check_range(v, *ty)?;
                }
                row.push(v);
            }
            rows.push(row);
        }
        let order = &self.order;
        let cmp = |a: &Vec<Option<i128>>, b: &Vec<Option<i128>>| {
            for (i, k) in order {
                let c = compare(a[*i], b[*i], *k);
                if c != Ordering::Equal {
                    return c;
                }
            }
            Ordering::Equal
        };
        let skip = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let take = self
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        if !order.is_empty() {
            // A top-N needs its first offset + limit rows in order, not all of them.
            let wanted = skip.saturating_add(take);
            if wanted > 0 && wanted < rows.len() {
                rows.select_nth_unstable_by(wanted - 1, cmp);
                rows.truncate(wanted);
            }
            rows.sort_by(cmp);
        }
        let mut out = Vec::new();
        if describe {
            out.push(rows::row_description(
                fields,
                self.outputs.len(),
                result_formats,
            ));
        }
        let mut sent = 0usize;
        for row in rows.iter().skip(skip).take(take) {
            out.push(data_row(row, &self.out_types, result_formats));
            sent += 1;
        }
        out.push(be::command_complete(&format!("SELECT {sent}")));
        Ok(out)
    }
}

/// A binary int2, int4 or int8.
fn int(b: &[u8]) -> SgResult<i64> {
    Ok(match b.len() {
        2 => i64::from(i16::from_be_bytes([b[0], b[1]])),
        4 => i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        8 => i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        n => return Err(SgError::protocol(format!("an integer of {n} bytes"))),
    })
}

/// PostgreSQL's error for a value past its integer type (int8.c, numeric.c casts).
fn check_range(v: i128, ty: u32) -> SgResult<()> {
    let (lo, hi, name) = match ty {
        INT2 => (i128::from(i16::MIN), i128::from(i16::MAX), "smallint"),
        INT4 => (i128::from(i32::MIN), i128::from(i32::MAX), "integer"),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX), "bigint"),
    };
    if v < lo || v > hi {
        return Err(SgError::new("22003", format!("{name} out of range")));
    }
    Ok(())
}

fn compare(a: Option<i128>, b: Option<i128>, k: SortKey) -> Ordering {
    rows::key_cmp(k, a, b, |x, y| x.cmp(&y))
}

fn data_row(row: &[Option<i128>], types: &[u32], formats: &[i16]) -> Frame {
    let mut b = BytesMut::with_capacity(2 + row.len() * 12);
    b.put_i16(row.len() as i16);
    for (i, (v, ty)) in row.iter().zip(types).enumerate() {
        let Some(v) = v else {
            b.put_i32(-1);
            continue;
        };
        if rows::format_of(formats, i) == 1 {
            // Values were range-checked against their type in finish.
            match *ty {
                INT2 => {
                    b.put_i32(2);
                    b.put_i16(*v as i16);
                }
                INT4 => {
                    b.put_i32(4);
                    b.put_i32(*v as i32);
                }
                _ => {
                    b.put_i32(8);
                    b.put_i64(*v as i64);
                }
            }
        } else {
            let t = v.to_string();
            b.put_i32(t.len() as i32);
            b.put_slice(t.as_bytes());
        }
    }
    Frame::build(be::DATA_ROW, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(desc: bool, nulls_first: bool) -> SortKey {
        SortKey { desc, nulls_first }
    }

    #[test]
    fn nulls_order_as_postgresql_orders_them() {
        assert_eq!(compare(None, Some(1), key(false, false)), Ordering::Greater);
        assert_eq!(compare(None, Some(1), key(true, true)), Ordering::Less);
        assert_eq!(compare(Some(2), Some(1), key(true, true)), Ordering::Less);
        assert_eq!(compare(Some(1), Some(2), key(false, false)), Ordering::Less);
    }

    #[test]
    fn past_bigint_is_22003() {
        assert!(check_range(i128::from(i64::MAX), INT8).is_ok());
        let e = check_range(i128::from(i64::MAX) + 1, INT8).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("22003", "bigint out of range")
        );
        assert!(check_range(40_000, INT2).is_err());
    }

    #[test]
    fn integers_read_by_width() {
        assert_eq!(int(&(-5i16).to_be_bytes()).unwrap(), -5);
        assert_eq!(int(&7i32.to_be_bytes()).unwrap(), 7);
        assert_eq!(int(&i64::MIN.to_be_bytes()).unwrap(), i64::MIN);
        assert!(int(&[1, 2, 3]).is_err());
    }
}
