//! The routing hot path: a statement on one distributed table pinned to one key value
//! (`WHERE k = $1`) goes to that shard's node without the general planner's sets and notes.

use super::route::Values;
use super::Plan;
use crate::analyze::{Pin, Stmt};
use crate::shardmap::ShardMap;

/// The plan `route::accesses` would build for a statement whose only table access is a
/// distributed table pinned by `k = value`, when the value reads as a key and its shard is
/// placed: `Plan::Route` to the shard's node, with the same note. None for everything else,
/// which the general path plans (and explains why it cannot route, where it cannot).
///
/// A prepared lookup spent more of shardgate's time in the general path's shard sets and
/// notes than in forwarding the query (perf, BENCHMARKS.md); the unit tests hold the two
/// paths to the same plans.
pub(super) fn keyed(stmt: &Stmt, values: &Values, map: &ShardMap) -> Option<Plan> {
    if stmt.touches_local {
        return None;
    }
    let [access] = stmt.accesses.as_slice() else {
        return None;
    };
    let Pin::Eq(src) = &access.pin else {
        return None;
    };
    let t = map.get(&access.table)?;
    // A table of one shard: the general path notes it as "all 1 shards".
    if t.is_reference() || t.shard_count() < 2 {
        return None;
    }
    let key = values.resolve(src, t.key_type?).ok()??;
    let shard = t.shard_of(Some(&key)).ok()??;
    if !t.has_shard(shard) {
        return None;
    }
    Some(Plan::Route {
        node: t.node_of(shard),
        why: format!(
            "key pins one node: {} shards [{}]",
            t.name,
            t.shard_name(shard)
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::analyze::cache::{AnalysisCache, Limits};
    use crate::analyze::Kind;
    use crate::plan::route::{general_accesses, Values};
    use crate::shardmap::ShardMap;

    fn map() -> ShardMap {
        crate::config::parse(
            r#"
            [server]
            listen = "127.0.0.1:0"
            [[nodes]]
            name = "a"
            url = "postgresql://u@127.0.0.1:1/d"
            [[nodes]]
            name = "b"
            url = "postgresql://u@127.0.0.1:2/d"
            [[nodes]]
            name = "c"
            url = "postgresql://u@127.0.0.1:3/d"
            [[tables]]
            name = "kv"
            method = "hash"
            column = "k"
            type = "int4"
            shards = 6
            [[tables]]
            name = "one"
            method = "hash"
            column = "k"
            type = "int4"
            shards = 1
            [[tables]]
            name = "ev"
            method = "range"
            column = "d"
            type = "int8"
            ranges = [ { from = "MINVALUE", to = 10, node = "a" }, { from = 10, to = 20, node = "b" } ]
            [[tables]]
            name = "ref"
            method = "reference"
            "#,
        )
        .map(|c| c.shardmap)
        .unwrap_or_else(|e| panic!("config: {e}"))
    }

    /// Every statement and parameter here plans the same through the hot path as through
    /// the general one (`route::general_accesses`); where the hot path declines, the general
    /// plan decides.
    #[test]
    fn keyed_plans_are_the_general_plans() {
        let map = map();
        let cache = AnalysisCache::new(Limits::default());
        let sql = [
            "SELECT v FROM kv WHERE k = $1",
            "SELECT * FROM kv WHERE k = $1 FOR UPDATE",
            "UPDATE kv SET v = 'x' WHERE k = $1",
            "DELETE FROM kv WHERE k = $1 RETURNING *",
            "SELECT v FROM kv WHERE k = -$1",
            "SELECT v FROM kv WHERE k = $1 OR k = 2",
            "SELECT v FROM kv k1 JOIN kv k2 USING (k) WHERE k1.k = $1",
            "SELECT v FROM kv WHERE k = $1 AND v IN (SELECT v FROM ref)",
            "SELECT * FROM one WHERE k = $1",
            "SELECT * FROM ev WHERE d = $1",
            "SELECT * FROM ref WHERE k = $1",
            "SELECT count(*) FROM kv WHERE k = $1",
            "WITH w AS (SELECT * FROM kv WHERE k = $1) SELECT * FROM w",
        ];
        let params: [Option<&str>; 6] = [
            Some("1"),
            Some("17"),
            Some("-3"),
            None,
            Some("x"),
            Some("15"),
        ];
        let mut routed = 0;
        for s in sql {
            let analyzed = cache.extended(s, &map);
            let Some(stmt) = analyzed.analysis.stmts.first() else {
                panic!("no statement in {s}");
            };
            // The kinds `route::plan_statement` plans by their table accesses.
            assert!(
                matches!(stmt.kind, Kind::Select { .. } | Kind::Update | Kind::Delete),
                "{s}"
            );
            for p in params {
                let ps = [p.map(|v| bytes::Bytes::from(v.to_string()))];
                let values = Values {
                    params: &ps,
                    ..Values::NONE
                };
                let general = general_accesses(stmt, s, &values, &map);
                if let Some(fast) = super::keyed(stmt, &values, &map) {
                    routed += 1;
                    match general {
                        Ok(g) => assert_eq!(fast, g, "{s} with {p:?}"),
                        Err(e) => panic!("{s} with {p:?}: hot path {fast:?}, general {e}"),
                    }
                }
            }
        }
        assert!(routed >= 8, "the hot path routed only {routed} cases");
    }
}
