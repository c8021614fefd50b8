//! Range shards: half-open `[from, to)` bounds with MINVALUE/MAXVALUE and an optional DEFAULT,
//! as PostgreSQL's range partitioning (partbounds.c) defines them.

use std::cmp::Ordering;

use super::{KeyType, KeyValue, ShardId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Min,
    Value(KeyValue),
    Max,
}

impl Bound {
    fn cmp_value(&self, v: &KeyValue) -> Ordering {
        match self {
            Bound::Min => Ordering::Less,
            Bound::Max => Ordering::Greater,
            Bound::Value(b) => b.cmp(v),
        }
    }

    fn cmp_bound(&self, other: &Bound) -> Ordering {
        match (self, other) {
            (Bound::Min, Bound::Min) | (Bound::Max, Bound::Max) => Ordering::Equal,
            (Bound::Min, _) | (_, Bound::Max) => Ordering::Less,
            (_, Bound::Min) | (Bound::Max, _) => Ordering::Greater,
            (Bound::Value(a), Bound::Value(b)) => a.cmp(b),
        }
    }

    fn retype(&self, ty: KeyType) -> Result<Bound, String> {
        Ok(match self {
            Bound::Value(v) => Bound::Value(v.retype(ty).map_err(|e| e.message)?),
            b => b.clone(),
        })
    }

    pub fn to_sql_text(&self) -> String {
        match self {
            Bound::Min => "MINVALUE".into(),
            Bound::Max => "MAXVALUE".into(),
            Bound::Value(v) => v.to_text(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RangeShard {
    pub from: Bound,
    pub to: Bound,
    pub node: usize,
}

#[derive(Debug, Clone)]
pub struct RangeLayout {
    /// In config order; shard id = index. The DEFAULT shard, if any, is id `ranges.len()`.
    pub ranges: Vec<RangeShard>,
    pub default: Option<usize>,
}

/// One side of a pruning interval: the value and whether it is included.
pub type Edge<'a> = Option<(&'a KeyValue, bool)>;

impl RangeLayout {
    pub fn new(ranges: Vec<(Bound, Bound, usize)>, default: Option<usize>) -> Result<Self, String> {
        let layout = RangeLayout {
            ranges: ranges
                .into_iter()
                .map(|(from, to, node)| RangeShard { from, to, node })
                .collect(),
            default,
        };
        layout.check()?;
        Ok(layout)
    }

    fn check(&self) -> Result<(), String> {
        let mut sorted: Vec<&RangeShard> = self.ranges.iter().collect();
        for r in &sorted {
            if r.from.cmp_bound(&r.to) != Ordering::Less {
                return Err(format!(
                    "empty range [{}, {}): from must be below to",
                    r.from.to_sql_text(),
                    r.to.to_sql_text()
                ));
            }
        }
        sorted.sort_by(|a, b| a.from.cmp_bound(&b.from));
        for w in sorted.windows(2) {
            if w[1].from.cmp_bound(&w[0].to) == Ordering::Less {
                return Err(format!(
                    "overlapping ranges [{}, {}) and [{}, {})",
                    w[0].from.to_sql_text(),
                    w[0].to.to_sql_text(),
                    w[1].from.to_sql_text(),
                    w[1].to.to_sql_text()
                ));
            }
        }
        Ok(())
    }

    pub fn retype(&self, ty: KeyType) -> Result<Self, String> {
        let ranges = self
            .ranges
            .iter()
            .map(|r| {
                Ok(RangeShard {
                    from: r.from.retype(ty)?,
                    to: r.to.retype(ty)?,
                    node: r.node,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let layout = RangeLayout {
            ranges,
            default: self.default,
        };
        layout.check()?;
        Ok(layout)
    }

    pub fn shard_count(&self) -> u32 {
        (self.ranges.len() + usize::from(self.default.is_some())) as u32
    }

    pub fn is_default(&self, shard: ShardId) -> bool {
        self.default.is_some() && shard as usize == self.ranges.len()
    }

    pub fn node_of(&self, shard: ShardId) -> usize {
        match self.ranges.get(shard as usize) {
            Some(r) => r.node,
            None => self.default.unwrap_or(0),
        }
    }

    fn default_id(&self) -> Option<ShardId> {
        self.default.map(|_| self.ranges.len() as ShardId)
    }

    /// NULL keys belong to the DEFAULT partition only (a range bound never contains NULL).
    pub fn shard_of(&self, key: Option<&KeyValue>) -> Option<ShardId> {
        let Some(v) = key else {
            return self.default_id();
        };
        self.ranges
            .iter()
            .position(|r| {
                r.from.cmp_value(v) != Ordering::Greater && r.to.cmp_value(v) == Ordering::Greater
            })
            .map(|i| i as ShardId)
            .or_else(|| self.default_id())
    }

    /// Shards that may hold keys in the interval (lo, hi): partprune.c's rules, with the DEFAULT
    /// shard kept since values in gaps land there.
    pub fn shards_overlapping(&self, lo: Edge, hi: Edge) -> Vec<ShardId> {
        let mut out: Vec<ShardId> = self
            .ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                let below_hi = match hi {
                    None => true,
                    Some((b, incl)) => match r.from.cmp_value(b) {
                        Ordering::Less => true,
                        Ordering::Equal => incl,
                        Ordering::Greater => false,
                    },
                };
                let above_lo = match lo {
                    None => true,
                    Some((a, _)) => r.to.cmp_value(a) == Ordering::Greater,
                };
                below_hi && above_lo
            })
            .map(|(i, _)| i as ShardId)
            .collect();
        out.extend(self.default_id());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> KeyValue {
        KeyValue::parse_text(KeyType::Date, s).unwrap_or(KeyValue::Date(0))
    }

    fn months() -> RangeLayout {
        RangeLayout::new(
            vec![
                (Bound::Min, Bound::Value(d("2024-02-01")), 0),
                (
                    Bound::Value(d("2024-02-01")),
                    Bound::Value(d("2024-03-01")),
                    1,
                ),
                (Bound::Value(d("2024-03-01")), Bound::Max, 2),
            ],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn lower_bound_inclusive_upper_exclusive() {
        let m = months();
        assert_eq!(m.shard_of(Some(&d("2024-02-01"))), Some(1));
        assert_eq!(m.shard_of(Some(&d("2024-01-31"))), Some(0));
        assert_eq!(m.shard_of(Some(&d("2024-03-01"))), Some(2));
        assert_eq!(m.shard_of(None), None);
    }

    #[test]
    fn pruning_by_interval() {
        let m = months();
        let (a, b) = (d("2024-02-01"), d("2024-03-01"));
        assert_eq!(
            m.shards_overlapping(Some((&a, true)), Some((&b, false))),
            vec![1]
        );
        assert_eq!(
            m.shards_overlapping(Some((&a, true)), Some((&b, true))),
            vec![1, 2]
        );
        assert_eq!(m.shards_overlapping(None, Some((&a, false))), vec![0]);
        assert_eq!(m.shards_overlapping(Some((&b, true)), None), vec![2]);
    }

    #[test]
    fn overlaps_are_refused() {
        let r = RangeLayout::new(
            vec![
                (Bound::Min, Bound::Value(KeyValue::Int(10)), 0),
                (Bound::Value(KeyValue::Int(5)), Bound::Max, 1),
            ],
            None,
        );
        assert!(r.is_err());
    }
}
