//! List shards: explicit value sets and an optional DEFAULT, as PostgreSQL's list partitioning.

use std::collections::HashMap;

use super::{KeyType, KeyValue, ShardId};

#[derive(Debug, Clone)]
pub struct ListLayout {
    /// In config order; shard id = index. The DEFAULT shard, if any, is id `lists.len()`.
    pub lists: Vec<(Vec<KeyValue>, usize)>,
    pub default: Option<usize>,
    index: HashMap<KeyValue, ShardId>,
}

impl ListLayout {
    pub fn new(lists: Vec<(Vec<KeyValue>, usize)>, default: Option<usize>) -> Result<Self, String> {
        let mut index = HashMap::new();
        for (i, (values, _)) in lists.iter().enumerate() {
            for v in values {
                if index.insert(v.clone(), i as ShardId).is_some() {
                    return Err(format!(
                        "list value '{}' appears in more than one list",
                        v.to_text()
                    ));
                }
            }
        }
        Ok(ListLayout {
            lists,
            default,
            index,
        })
    }

    pub fn retype(&self, ty: KeyType) -> Result<Self, String> {
        let lists = self
            .lists
            .iter()
            .map(|(vals, node)| {
                let vals = vals
                    .iter()
                    .map(|v| v.retype(ty).map_err(|e| e.message))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((vals, *node))
            })
            .collect::<Result<Vec<_>, String>>()?;
        ListLayout::new(lists, self.default)
    }

    pub fn shard_count(&self) -> u32 {
        (self.lists.len() + usize::from(self.default.is_some())) as u32
    }

    pub fn is_default(&self, shard: ShardId) -> bool {
        self.default.is_some() && shard as usize == self.lists.len()
    }

    pub fn node_of(&self, shard: ShardId) -> usize {
        match self.lists.get(shard as usize) {
            Some((_, n)) => *n,
            None => self.default.unwrap_or(0),
        }
    }

    /// NULL matches no list here (the config cannot list NULL), so it goes to DEFAULT.
    pub fn shard_of(&self, key: Option<&KeyValue>) -> Option<ShardId> {
        key.and_then(|v| self.index.get(v).copied())
            .or_else(|| self.default.map(|_| self.lists.len() as ShardId))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_default_and_duplicates() {
        let t = |s: &str| KeyValue::Text(s.into());
        let l = ListLayout::new(
            vec![(vec![t("US"), t("CA")], 0), (vec![t("UK")], 1)],
            Some(2),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.shard_of(Some(&t("CA"))), Some(0));
        assert_eq!(l.shard_of(Some(&t("JP"))), Some(2));
        assert_eq!(l.shard_of(None), Some(2));
        assert_eq!(l.node_of(2), 2);
        assert!(ListLayout::new(vec![(vec![t("US")], 0), (vec![t("US")], 1)], None).is_err());
    }
}
