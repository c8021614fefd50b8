//! Issue 2's contract against real PostgreSQL workers: placement, routing, results equal to one
//! plain PostgreSQL holding the same rows, refusals, errors, config checks, protocol and
//! transaction behaviour. The harness (tests/common) starts the cluster once per binary.

mod common;
#[path = "common/wire.rs"]
mod wire;

use std::collections::BTreeSet;

use common::*;
use futures::future::try_join_all;

// ---------- 1. placement ----------

#[tokio::test]
async fn placement_hash_tables_follow_postgres_partitioning() {
    env();
    for (table, col, ty, modulus) in [
        ("users", "user_uuid", "uuid", 4u64),
        ("user_events", "user_uuid", "uuid", 4),
        ("user_analytics", "user_id", "int8", 8),
    ] {
        for i in 0..NODES {
            let w = worker(i).await;
            // Every row on worker i is one whose shard shardgate places on node i.
            for r in rows(&w, &format!("SELECT {col}::text FROM {table}")).await {
                let key = r[0].clone().unwrap_or_default();
                assert_eq!(
                    node_of(table, ty, &key),
                    i,
                    "{table} row {key} on worker {i}"
                );
            }
            let parts = partitions(&w, table).await;
            let owned: BTreeSet<String> = (0..modulus)
                .filter(|r| r % 3 == i as u64)
                .map(|r| format!("{table}_{r}"))
                .collect();
            let all = (0..modulus).map(|r| format!("{table}_{r}")).collect();
            whole_tree(&w, &parts, all, &owned).await;
            for (name, bound) in &parts {
                let r = name.rsplit('_').next().unwrap_or("");
                assert_eq!(
                    bound,
                    &format!("FOR VALUES WITH (modulus {modulus}, remainder {r})")
                );
            }
            let per_part = rows(&w, &format!(
                "SELECT tableoid::regclass::text, count(*), count(*) FILTER (WHERE satisfies_hash_partition('{table}'::regclass, {modulus}, \
                 substring(tableoid::regclass::text from '[0-9]+$')::int, {col})) FROM {table} GROUP BY 1"
            )).await;
            assert!(!per_part.is_empty(), "worker {i} holds rows of {table}");
            for r in per_part {
                assert_eq!(
                    r[1], r[2],
                    "{table} on worker {i}: rows of {:?} outside its remainder",
                    r[0]
                );
            }
        }
        assert_rows_split_exactly(table).await;
    }
}

/// Every worker holds the table's whole partition tree (as psql's `\\d+` reads it), the
/// partitions it does not own empty.
async fn whole_tree(
    w: &tokio_postgres::Client,
    parts: &std::collections::BTreeMap<String, String>,
    all: BTreeSet<String>,
    owned: &BTreeSet<String>,
) {
    assert_eq!(parts.keys().cloned().collect::<BTreeSet<_>>(), all);
    for p in all.difference(owned) {
        let n = rows(w, &format!("SELECT count(*)::text FROM {p}")).await;
        assert_eq!(
            n[0][0].as_deref(),
            Some("0"),
            "rows in {p}, owned elsewhere"
        );
    }
}

#[tokio::test]
async fn placement_range_table_follows_bounds() {
    env();
    for i in 0..NODES {
        let w = worker(i).await;
        let parts = partitions(&w, "sales_analytics").await;
        let owned: BTreeSet<String> = SALES_RANGES
            .iter()
            .enumerate()
            .filter(|(_, r)| r.2 == i)
            .map(|(s, _)| format!("sales_analytics_{s}"))
            .collect();
        let all = (0..SALES_RANGES.len())
            .map(|s| format!("sales_analytics_{s}"))
            .collect();
        whole_tree(&w, &parts, all, &owned).await;
        for (s, (from, to, _)) in SALES_RANGES.iter().enumerate().filter(|(_, r)| r.2 == i) {
            let q = |v: &str| {
                if v.ends_with("VALUE") {
                    v.to_string()
                } else {
                    format!("'{v}'")
                }
            };
            let name = format!("sales_analytics_{s}");
            assert_eq!(
                parts[&name],
                format!("FOR VALUES FROM ({}) TO ({})", q(from), q(to))
            );
            let dates = rows(&w, &format!("SELECT sale_date::text FROM {name}")).await;
            assert!(!dates.is_empty(), "{name} has rows");
            for d in dates.into_iter().map(|r| r[0].clone().unwrap_or_default()) {
                assert!(
                    (*from == "MINVALUE" || d.as_str() >= *from)
                        && (*to == "MAXVALUE" || d.as_str() < *to),
                    "{d} in {name}"
                );
            }
        }
    }
    assert_rows_split_exactly("sales_analytics").await;
}

#[tokio::test]
async fn placement_list_table_follows_lists() {
    env();
    let listed: Vec<&str> = REGION_LISTS
        .iter()
        .flat_map(|(v, _)| v.iter().copied())
        .collect();
    for i in 0..NODES {
        let w = worker(i).await;
        let parts = partitions(&w, "regional_sales").await;
        let mut want = BTreeSet::new();
        for (s, (values, node)) in REGION_LISTS.iter().enumerate() {
            if *node == i {
                let name = format!("regional_sales_{s}");
                let list: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
                assert_eq!(
                    parts.get(&name),
                    Some(&format!("FOR VALUES IN ({})", list.join(", ")))
                );
                for r in rows(&w, &format!("SELECT DISTINCT region FROM {name}")).await {
                    assert!(
                        values.contains(&r[0].as_deref().unwrap_or("")),
                        "{r:?} in {name}"
                    );
                }
                want.insert(name);
            }
        }
        if i == REGION_DEFAULT_NODE {
            assert_eq!(
                parts.get("regional_sales_default").map(String::as_str),
                Some("DEFAULT")
            );
            let regions = rows(&w, "SELECT DISTINCT region FROM regional_sales_default").await;
            assert!(!regions.is_empty());
            for r in regions {
                assert!(
                    !listed.contains(&r[0].as_deref().unwrap_or("")),
                    "{r:?} in the default partition"
                );
            }
            want.insert("regional_sales_default".into());
        }
        let mut all: BTreeSet<String> = (0..REGION_LISTS.len())
            .map(|s| format!("regional_sales_{s}"))
            .collect();
        all.insert("regional_sales_default".into());
        whole_tree(&w, &parts, all, &want).await;
    }
    assert_rows_split_exactly("regional_sales").await;
}

#[tokio::test]
async fn reference_table_is_copied_to_every_node() {
    env();
    let want = rows(
        &oracle().await,
        "SELECT * FROM customers ORDER BY customer_id",
    )
    .await;
    for i in 0..NODES {
        let w = worker(i).await;
        assert_eq!(
            scalar(
                &w,
                "SELECT relkind::text FROM pg_class WHERE relname = 'customers'"
            )
            .await,
            "r"
        );
        assert_eq!(
            rows(&w, "SELECT * FROM customers ORDER BY customer_id").await,
            want,
            "customers on worker {i}"
        );
    }
}

#[tokio::test]
async fn hash_int2_matches_postgres() {
    check_hash_type(
        "h_int2",
        "int2",
        4,
        &ints(i16::MIN as i64, i16::MAX as i64, 3000, 1),
    )
    .await;
}

#[tokio::test]
async fn hash_int4_matches_postgres() {
    check_hash_type(
        "h_int4",
        "int4",
        6,
        &ints(i32::MIN as i64, i32::MAX as i64, 3000, 2),
    )
    .await;
}

#[tokio::test]
async fn hash_int8_matches_postgres() {
    check_hash_type("h_int8", "int8", 8, &ints(i64::MIN, i64::MAX, 3000, 3)).await;
}

#[tokio::test]
async fn hash_text_matches_postgres() {
    check_hash_type("h_text", "text", 5, &texts(3000, 4)).await;
}

#[tokio::test]
async fn hash_varchar_matches_postgres() {
    check_hash_type("h_varchar", "varchar(500)", 7, &texts(2000, 5)).await;
}

#[tokio::test]
async fn hash_uuid_matches_postgres() {
    let mut r = Rng(6);
    let mut v: Vec<String> = (0..3000).map(|_| lit(&r.uuid())).collect();
    v.push(lit("00000000-0000-0000-0000-000000000000"));
    v.push(lit("ffffffff-ffff-ffff-ffff-ffffffffffff"));
    check_hash_type("h_uuid", "uuid", 7, &v).await;
}

#[tokio::test]
async fn hash_date_matches_postgres() {
    let mut set: BTreeSet<String> = [
        "0001-01-01",
        "1970-01-01",
        "1999-12-31",
        "2000-01-01",
        "2024-02-29",
        "9999-12-31",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut r = Rng(7);
    while set.len() < 3000 {
        set.insert(date_plus("2000-01-01", r.below(80_000) as i64 - 40_000));
    }
    check_hash_type(
        "h_date",
        "date",
        3,
        &set.iter().map(|d| lit(d)).collect::<Vec<_>>(),
    )
    .await;
}

#[tokio::test]
async fn hash_timestamp_matches_postgres() {
    let mut set = BTreeSet::new();
    let mut r = Rng(8);
    while set.len() < 3000 {
        let us = r.below(3_000_000_000_000_000) as i64 - 1_500_000_000_000_000;
        let us = if r.below(4) == 0 {
            us / 1_000_000 * 1_000_000
        } else {
            us
        };
        set.insert(ts_plus("2000-01-01 00:00:00", us));
    }
    check_hash_type(
        "h_ts",
        "timestamp",
        4,
        &set.iter().map(|d| lit(d)).collect::<Vec<_>>(),
    )
    .await;
}

/// Timestamp literals PostgreSQL reads with rounding or in other forms: the row must be stored
/// and found again by the same literal.
#[tokio::test]
async fn hash_timestamp_literal_forms_route_like_postgres() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    sg.batch_execute("CREATE TABLE h_ts_edge (k timestamp PRIMARY KEY, n integer)")
        .await
        .expect("create");
    let mut forms = vec![
        "2024-03-01T09:00:00".to_string(),
        "2024-03-01 08:00".into(),
        "2024-03-02".into(),
    ];
    forms.extend((0..24).map(|i| format!("2024-03-01 10:00:{i:02}.{:07}", 9_999_995 - i * 1000)));
    let mut failures = Vec::new();
    for (n, f) in forms.iter().enumerate() {
        // The value as PostgreSQL reads it; stored through shardgate in that canonical form.
        let canon = scalar(&or, &format!("SELECT '{f}'::timestamp::text")).await;
        let insert = format!("INSERT INTO h_ts_edge VALUES ('{canon}', {n})");
        sg.batch_execute(&insert).await.expect("canonical form");
        let got = rows(&sg, &format!("SELECT n FROM h_ts_edge WHERE k = '{f}'")).await;
        if got != vec![vec![Some(n.to_string())]] {
            failures.push(format!("SELECT n FROM h_ts_edge WHERE k = '{f}' returned {got:?}; PostgreSQL reads '{canon}' and returns {n}"));
        }
        sg.batch_execute(&format!("DELETE FROM h_ts_edge WHERE k = '{canon}'"))
            .await
            .expect("delete");
        let insert = format!("INSERT INTO h_ts_edge VALUES ('{f}', {n})");
        if let Err(e) = sg.batch_execute(&insert).await {
            failures.push(format!("{insert}: {}", describe(&e)));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn null_keys_follow_postgres_semantics() {
    env();
    let sg = connect().await;
    sg.batch_execute("CREATE TABLE l_null (k text, v integer); CREATE TABLE r_null (k bigint, v integer); CREATE TABLE h_null (k integer, v integer)")
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)));
    // List: NULL goes to the DEFAULT partition (node w3).
    simple1(
        &sg,
        "INSERT INTO l_null (k, v) VALUES (NULL, 1), ('a', 2), ('c', 3), ('zz', 4)",
    )
    .await
    .expect("insert l_null");
    assert_eq!(
        rows(
            &worker(2).await,
            "SELECT v FROM l_null_default WHERE k IS NULL"
        )
        .await,
        vec![vec![Some("1".into())]]
    );
    assert_eq!(
        rows(&sg, "SELECT v FROM l_null WHERE k IS NULL").await,
        vec![vec![Some("1".into())]]
    );
    // Range without DEFAULT: no partition accepts NULL (23514), as PostgreSQL says.
    let e = sg
        .batch_execute("INSERT INTO r_null (k, v) VALUES (NULL, 1)")
        .await
        .expect_err("NULL into range without default");
    assert_eq!(sqlstate(&e), "23514", "{}", describe(&e));
    simple1(&sg, "INSERT INTO r_null (k, v) VALUES (5, 1), (500, 2)")
        .await
        .expect("insert r_null");
    assert!(rows(&sg, "SELECT * FROM r_null WHERE k IS NULL")
        .await
        .is_empty());
    // Hash: NULL hashes to remainder 0 (node w1).
    simple1(&sg, "INSERT INTO h_null (k, v) VALUES (NULL, 7)")
        .await
        .expect("insert h_null");
    assert_eq!(
        rows(&worker(0).await, "SELECT v FROM h_null_0 WHERE k IS NULL").await,
        vec![vec![Some("7".into())]]
    );
    assert_eq!(
        rows(&sg, "SELECT v FROM h_null WHERE k IS NULL").await,
        vec![vec![Some("7".into())]]
    );
}

#[tokio::test]
async fn siphash_table_routes_consistently() {
    env();
    let sg = connect().await;
    sg.batch_execute("CREATE TABLE h_sip (k bigint PRIMARY KEY, v text)")
        .await
        .expect("create h_sip");
    let vals: Vec<String> = (1..=600).map(|k| format!("({k}, 'v{k}')")).collect();
    for sql in inserts("h_sip", "k, v", &vals, 200) {
        assert_eq!(simple1(&sg, &sql).await.expect("insert").count, 200);
    }
    let mut total = 0;
    for i in 0..NODES {
        let n: usize = scalar(&worker(i).await, "SELECT count(*) FROM h_sip")
            .await
            .parse()
            .expect("count");
        assert!(n > 0, "worker {i} holds some of h_sip");
        total += n;
    }
    assert_eq!(total, 600);
    for k in (1..=600).step_by(7) {
        assert_eq!(
            rows(&sg, &format!("SELECT v FROM h_sip WHERE k = {k}")).await,
            vec![vec![Some(format!("v{k}"))]]
        );
    }
}

#[tokio::test]
async fn ddl_reaches_every_node_holding_the_table() {
    env();
    let sg = connect().await;
    for sql in [
        "CREATE TABLE ddl_t (id bigint PRIMARY KEY, a text)",
        "CREATE INDEX ddl_t_a_idx ON ddl_t (a)",
        "ALTER TABLE ddl_t ADD COLUMN b integer DEFAULT 7",
    ] {
        sg.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
    }
    simple1(
        &sg,
        "INSERT INTO ddl_t (id, a) VALUES (1, 'x'), (2, 'y'), (3, 'z'), (4, 'w')",
    )
    .await
    .expect("insert");
    assert_eq!(scalar(&sg, "SELECT b FROM ddl_t WHERE id = 3").await, "7");
    for i in 0..NODES {
        let w = worker(i).await;
        assert_eq!(
            scalar(
                &w,
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'ddl_t_a_idx'"
            )
            .await,
            "1",
            "index on worker {i}"
        );
        assert_eq!(scalar(&w, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'ddl_t'::regclass AND attname = 'b'").await, "1");
        assert_eq!(
            scalar(
                &w,
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'user_events_user_uuid_idx'"
            )
            .await,
            "1"
        );
    }
    sg.batch_execute("TRUNCATE ddl_t").await.expect("truncate");
    for i in 0..NODES {
        assert_eq!(
            scalar(&worker(i).await, "SELECT count(*) FROM ddl_t").await,
            "0"
        );
    }
    sg.batch_execute("DROP TABLE ddl_t").await.expect("drop");
    for i in 0..NODES {
        assert_eq!(
            scalar(
                &worker(i).await,
                "SELECT count(*) FROM pg_class WHERE relname = 'ddl_t'"
            )
            .await,
            "0"
        );
    }
}

#[tokio::test]
async fn unlisted_table_lives_on_the_default_node() {
    env();
    let sg = connect().await;
    sg.batch_execute("CREATE TABLE local_notes (id int PRIMARY KEY, note text); INSERT INTO local_notes VALUES (1, 'one'), (2, 'two')")
        .await
        .expect("local table");
    assert_eq!(
        rows(&sg, "SELECT note FROM local_notes WHERE id = 2").await,
        vec![vec![Some("two".into())]]
    );
    assert_eq!(
        scalar(&worker(0).await, "SELECT count(*) FROM local_notes").await,
        "2"
    );
    for i in 1..NODES {
        assert_eq!(
            scalar(
                &worker(i).await,
                "SELECT count(*) FROM pg_class WHERE relname = 'local_notes'"
            )
            .await,
            "0"
        );
    }
}

// ---------- 2. a keyed lookup reaches exactly one worker ----------

/// Simple-protocol keyed lookups: each reaches exactly the worker holding the key.
#[tokio::test]
async fn keyed_simple_query_reaches_one_worker() {
    env();
    let sg = connect().await;
    for u in data().users.iter().take(6) {
        let sql = format!("SELECT username, 11 AS sg_probe_a, 12 AS sg_probe_b FROM users WHERE user_uuid = '{u}'");
        let worker = probe(async { assert_eq!(rows(&sg, &sql).await.len(), 1) }).await;
        assert_eq!(worker, node_of("users", "uuid", u), "{sql}");
    }
    let sql = "SELECT sale_id, 11 AS sg_probe_a, 12 AS sg_probe_b FROM sales_analytics WHERE sale_date = '2024-02-14'";
    assert_eq!(
        probe(async {
            rows(&sg, sql).await;
        })
        .await,
        1,
        "{sql}"
    );
    let sql = "SELECT sale_id, 11 AS sg_probe_a, 12 AS sg_probe_b FROM regional_sales WHERE region = 'JP'";
    assert_eq!(
        probe(async {
            rows(&sg, sql).await;
        })
        .await,
        REGION_DEFAULT_NODE,
        "{sql}"
    );
}

/// Extended-protocol lookups with the key as a (binary) parameter reach exactly one worker.
#[tokio::test]
async fn keyed_extended_query_reaches_one_worker() {
    env();
    let sg = connect().await;
    let sql = "SELECT username, 21 AS sg_probe_a, 22 AS sg_probe_b FROM user_analytics WHERE user_id = $1";
    for id in [1i64, 2, 3, 77, 500] {
        let w =
            probe(async { assert_eq!(sg.query(sql, &[&id]).await.expect("query").len(), 1) }).await;
        assert_eq!(
            w,
            node_of("user_analytics", "int8", &id.to_string()),
            "user_id {id}"
        );
    }
    let sql = "SELECT username, 21 AS sg_probe_a, 22 AS sg_probe_b FROM users WHERE user_uuid = $1";
    let u: uuid::Uuid = data().users[10].parse().expect("uuid");
    let w = probe(async { assert_eq!(sg.query(sql, &[&u]).await.expect("query").len(), 1) }).await;
    assert_eq!(w, node_of("users", "uuid", &data().users[10]));
    let sql = "SELECT sale_id, 21 AS sg_probe_a, 22 AS sg_probe_b FROM sales_analytics WHERE sale_date = $1";
    let d = chrono::NaiveDate::from_ymd_opt(2024, 3, 10).expect("date");
    assert_eq!(
        probe(async {
            sg.query(sql, &[&d]).await.expect("query");
        })
        .await,
        2
    );
    let sql =
        "SELECT sale_id, 21 AS sg_probe_a, 22 AS sg_probe_b FROM regional_sales WHERE region = $1";
    assert_eq!(
        probe(async {
            sg.query(sql, &[&"UK"]).await.expect("query");
        })
        .await,
        1
    );
}

// ---------- 3. results equal the oracle's ----------

#[tokio::test]
async fn reads_equal_the_oracle() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    for sql in read_queries() {
        assert_same(&sg, &or, &sql).await;
    }
}

#[tokio::test]
async fn writes_equal_the_oracle() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    let rows: Vec<String> = (1000..1040)
        .map(|k| format!("({k}, 'owner{}', {k}.50)", k % 4))
        .collect();
    assert_same(
        &sg,
        &or,
        &format!(
            "INSERT INTO accounts (id, owner, balance) VALUES {}",
            rows.join(", ")
        ),
    )
    .await;
    for sql in [
        "UPDATE accounts SET balance = balance + 10 WHERE id = 1003 RETURNING *",
        "UPDATE accounts SET updated_at = '2024-05-05 10:00' WHERE id IN (1004, 1005, 1006)",
        "DELETE FROM accounts WHERE id = 1007 RETURNING id, owner",
        "DELETE FROM accounts WHERE id = 99999",
        "UPDATE accounts SET balance = 0 WHERE owner = 'owner2' AND id BETWEEN 1000 AND 1039",
        "INSERT INTO accounts (id, owner) VALUES (1100, 'solo') RETURNING id, balance, updated_at",
        "INSERT INTO accounts (id, owner) VALUES (1101, 'a'), (1102, 'b'), (1103, 'c') RETURNING id",
        "INSERT INTO accounts VALUES (1110, 'nocols', 1.5, NULL), (1111, 'nocols', 2.5, '2024-01-01')",
        "INSERT INTO accounts (id, owner) VALUES (1100, 'again') ON CONFLICT (id) DO UPDATE SET owner = excluded.owner",
        "INSERT INTO accounts (id, owner) VALUES (1101, 'skip') ON CONFLICT DO NOTHING",
        "SELECT * FROM accounts WHERE id BETWEEN 1000 AND 1199",
        "INSERT INTO tags (tag_id, label) VALUES (1, 'red'), (2, 'green'), (3, 'blue')",
        "UPDATE tags SET label = 'crimson' WHERE tag_id = 1",
        "SELECT * FROM tags",
    ] {
        assert_same(&sg, &or, sql).await;
    }
    for i in 0..NODES {
        assert_eq!(
            scalar(
                &worker(i).await,
                "SELECT string_agg(label, ',' ORDER BY tag_id) FROM tags"
            )
            .await,
            "crimson,green,blue",
            "tags on worker {i}"
        );
    }
}

#[tokio::test]
async fn binary_results_equal_the_oracle() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    let u: uuid::Uuid = data().users[3].parse().expect("uuid");
    let d = chrono::NaiveDate::from_ymd_opt(2024, 2, 20).expect("date");
    let min_amount = rust_decimal::Decimal::new(50000, 2);
    let cases: Vec<(&str, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>)> = vec![
        ("SELECT user_id, username, page_views::float8 / 3 AS ratio, activity_date FROM user_analytics WHERE user_id = $1", vec![&5i64]),
        ("SELECT * FROM users WHERE user_uuid = $1", vec![&u]),
        ("SELECT * FROM sales_analytics WHERE sale_date = $1", vec![&d]),
        ("SELECT * FROM regional_sales WHERE region = $1 AND amount > $2", vec![&"CA", &min_amount]),
        ("SELECT * FROM user_events WHERE user_uuid = $1", vec![&u]),
        ("SELECT * FROM customers WHERE customer_id < $1", vec![&30i32]),
    ];
    for (sql, params) in cases {
        let got = sg
            .query(sql, &params)
            .await
            .unwrap_or_else(|e| panic!("shardgate: {sql}: {}", describe(&e)));
        let want = or
            .query(sql, &params)
            .await
            .unwrap_or_else(|e| panic!("oracle: {sql}: {}", describe(&e)));
        assert!(!want.is_empty(), "{sql} returns rows");
        assert_eq!(typed(&got), typed(&want), "{sql}");
    }
}

// ---------- 4. refusals ----------

/// A query needing a merge: refused with 0A000 naming the feature, or answered as the oracle.
#[tokio::test]
async fn merges_are_refused_or_correct() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    for (sql, feature, ordered) in [
        ("SELECT count(*) FROM users", "aggregate", false),
        (
            "SELECT * FROM user_analytics ORDER BY user_id",
            "ORDER BY",
            true,
        ),
        (
            "SELECT region, count(*) FROM sales_analytics GROUP BY region",
            "GROUP BY",
            false,
        ),
        ("SELECT DISTINCT type FROM user_events", "DISTINCT", false),
        (
            "SELECT user_id FROM user_analytics ORDER BY user_id LIMIT 5",
            "ORDER BY",
            true,
        ),
    ] {
        match simple1(&sg, sql).await {
            Err(e) => {
                assert_eq!(sqlstate(&e), "0A000", "{sql}: {}", describe(&e));
                let msg = describe(&e);
                assert!(
                    msg.to_lowercase().contains(&feature.to_lowercase()),
                    "{sql}: message should name {feature}: {msg}"
                );
            }
            Ok(got) => {
                let want = simple1(&or, sql).await.expect("oracle");
                let (got, want) = if ordered {
                    (got, want)
                } else {
                    (got.sorted(), want.sorted())
                };
                assert_eq!(got, want, "{sql}");
            }
        }
    }
    assert_eq!(
        scalar(&sg, "SELECT 41 + 1").await,
        "42",
        "the session lives on"
    );
}

#[tokio::test]
async fn non_colocated_join_is_refused() {
    env();
    let sg = connect().await;
    let e = simple1(&sg, "SELECT u.email, a.page_views FROM users u JOIN user_analytics a ON a.username = u.username")
        .await
        .expect_err("non-co-located join");
    assert_eq!(sqlstate(&e), "0A000", "{}", describe(&e));
    assert!(describe(&e).contains("join"), "{}", describe(&e));
    assert_eq!(scalar(&sg, "SELECT 1").await, "1");
}

#[tokio::test]
async fn transaction_writing_on_two_nodes_commits_or_rolls_back_on_both() {
    env();
    let sg = connect().await;
    let (a, b) = keys_on_two_nodes(5000);
    let count = format!("SELECT count(*) FROM accounts WHERE id IN ({a}, {b})");
    for (end, want) in [("ROLLBACK", "0"), ("COMMIT", "2")] {
        sg.batch_execute("BEGIN").await.expect("begin");
        for k in [a, b] {
            sg.batch_execute(&format!(
                "INSERT INTO accounts (id, owner) VALUES ({k}, 'txn')"
            ))
            .await
            .expect("write");
        }
        sg.batch_execute(end).await.expect(end);
        assert_eq!(scalar(&sg, &count).await, want, "after {end}");
    }
    sg.batch_execute(&format!("DELETE FROM accounts WHERE id IN ({a}, {b})"))
        .await
        .expect("clean up");
    assert_eq!(scalar(&sg, "SELECT 2").await, "2", "the session lives on");
}

// ---------- 5. errors ----------

#[tokio::test]
async fn errors_carry_sqlstates_and_sessions_live_on() {
    env();
    let sg = connect().await;
    let u = &data().users[0];
    for (sql, code) in [
        ("SELEC 1".to_string(), "42601"),
        ("SELECT * FROM user_analytics WHERE user_id =".to_string(), "42601"),
        ("SELECT * FROM no_such_table".to_string(), "42P01"),
        ("SELECT no_such_column FROM user_analytics WHERE user_id = 1".to_string(), "42703"),
        ("SELECT 1 / 0 FROM user_analytics WHERE user_id = 1".to_string(), "22012"),
        ("SELECT * FROM users WHERE user_uuid = 'not-a-uuid'".to_string(), "22P02"),
        (format!("INSERT INTO users (user_uuid, username, email, created_at) VALUES ('{u}', 'dup', 'dup@x', now())"), "23505"),
    ] {
        let e = simple1(&sg, &sql).await.expect_err(&sql);
        assert_eq!(sqlstate(&e), code, "{sql}: {}", describe(&e));
        assert_eq!(scalar(&sg, "SELECT 'alive'").await, "alive", "after {sql}");
    }
}

#[tokio::test]
async fn wrong_password_is_28p01() {
    env();
    for (user, pw) in [("app", "wrong"), ("nobody", "app-secret")] {
        let e = connect_as(user, pw).await.expect_err("login must fail");
        assert_eq!(sqlstate(&e), "28P01", "{user}: {}", describe(&e));
    }
    assert_eq!(scalar(&connect().await, "SELECT 1").await, "1");
}

// ---------- 6. bad config ----------

#[test]
fn bad_config_is_refused_naming_table_and_problem() {
    let base = "[server]\nlisten = \"127.0.0.1:6432\"\n[[nodes]]\nname = \"w1\"\nurl = \"postgresql://postgres@127.0.0.1:1/app\"\n\
                [[nodes]]\nname = \"w2\"\nurl = \"postgresql://postgres@127.0.0.1:2/app\"\n";
    for (table, problem, needle) in [
        ("bad_node", "method = \"list\"\ncolumn = \"r\"\nlists = [ { values = [\"a\"], node = \"w9\" } ]", "w9"),
        ("bad_ranges", "method = \"range\"\ncolumn = \"d\"\nranges = [ { from = 1, to = 10, node = \"w1\" }, { from = 5, to = 20, node = \"w2\" } ]", "overlap"),
        ("no_column", "method = \"hash\"\nshards = 4", "column"),
        ("dup_value", "method = \"list\"\ncolumn = \"r\"\nlists = [ { values = [\"a\", \"b\"], node = \"w1\" }, { values = [\"b\"], node = \"w2\" } ]", "more than one list"),
        ("no_shards", "method = \"hash\"\ncolumn = \"id\"", "shards"),
        ("bad_method", "method = \"round-robin\"\ncolumn = \"id\"", "round-robin"),
        ("bad_placement", "method = \"hash\"\ncolumn = \"id\"\nshards = 2\nplacement = [\"w1\", \"w3\"]", "w3"),
    ] {
        let text = format!("{base}[[tables]]\nname = \"{table}\"\n{problem}\n");
        match shardgate::config::parse(&text) {
            Ok(_) => panic!("{table}: config accepted"),
            Err(e) => {
                assert!(e.contains(table), "{table}: message should name the table: {e}");
                assert!(e.to_lowercase().contains(needle), "{table}: message should name the problem ({needle}): {e}");
            }
        }
    }
}

#[tokio::test]
async fn create_table_without_the_distribution_column_is_refused() {
    env();
    let sg = connect().await;
    let e = sg
        .batch_execute("CREATE TABLE missing_col (id integer)")
        .await
        .expect_err("no column k");
    let msg = describe(&e);
    assert!(
        msg.contains("missing_col") && msg.contains("\"k\""),
        "{msg}"
    );
    for i in 0..NODES {
        assert_eq!(
            scalar(
                &worker(i).await,
                "SELECT count(*) FROM pg_class WHERE relname = 'missing_col'"
            )
            .await,
            "0"
        );
    }
}

// ---------- 7. extended protocol ----------

#[tokio::test]
async fn prepared_statement_reused_with_many_keys() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    let sql = "SELECT * FROM user_analytics WHERE user_id = $1";
    let (s1, s2) = (
        sg.prepare(sql).await.expect("prepare"),
        or.prepare(sql).await.expect("prepare"),
    );
    for id in (1..=1000i64).step_by(9).chain([0, -1, 5000]) {
        let got = sg.query(&s1, &[&id]).await.expect("query");
        assert_eq!(
            typed(&got),
            typed(&or.query(&s2, &[&id]).await.expect("oracle")),
            "user_id {id}"
        );
    }
    let sql = "SELECT username, email FROM users WHERE user_uuid = $1";
    let (s1, s2) = (
        sg.prepare(sql).await.expect("prepare"),
        or.prepare(sql).await.expect("prepare"),
    );
    for u in data().users.iter().step_by(40) {
        let u: uuid::Uuid = u.parse().expect("uuid");
        let got = sg.query(&s1, &[&u]).await.expect("query");
        assert_eq!(got.len(), 1);
        assert_eq!(
            typed(&got),
            typed(&or.query(&s2, &[&u]).await.expect("oracle"))
        );
    }
}

#[tokio::test]
async fn pipelined_inserts_and_selects() {
    env();
    let sg = connect().await;
    let ins = sg
        .prepare("INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3)")
        .await
        .expect("prepare");
    let sel = sg
        .prepare("SELECT owner FROM accounts WHERE id = $1")
        .await
        .expect("prepare");
    let ids: Vec<i64> = (3000..3060).collect();
    let owners: Vec<String> = ids.iter().map(|i| format!("pipe{i}")).collect();
    let bal = rust_decimal::Decimal::new(100, 0);
    let (sg, ins, sel, bal) = (&sg, &ins, &sel, &bal);
    let inserts = ids
        .iter()
        .zip(&owners)
        .map(|(id, o)| async move { sg.execute(ins, &[id, o, bal]).await });
    let done = try_join_all(inserts).await.expect("pipelined inserts");
    assert!(done.iter().all(|n| *n == 1));
    let selects = ids
        .iter()
        .map(|id| async move { sg.query(sel, &[id]).await });
    let got = try_join_all(selects).await.expect("pipelined selects");
    for (rows, o) in got.iter().zip(&owners) {
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>(0), *o);
    }
    // Inserts and selects interleaved in one pipeline: each select sees the insert before it.
    let mixed = ids.iter().map(|id| async move {
        sg.execute(ins, &[&(id + 10000), &"mixed", bal]).await?;
        sg.query(sel, &[&(id + 10000)]).await
    });
    for rows in try_join_all(mixed).await.expect("mixed pipeline") {
        assert_eq!(rows.len(), 1);
    }
}

#[tokio::test]
async fn null_parameters() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    let none: Option<i64> = None;
    let sql = "SELECT * FROM user_analytics WHERE user_id = $1";
    assert!(sg.query(sql, &[&none]).await.expect("NULL key").is_empty());
    let ins = "INSERT INTO accounts (id, owner, balance, updated_at) VALUES ($1, $2, $3, $4)";
    let ts: Option<chrono::NaiveDateTime> = None;
    let bal = rust_decimal::Decimal::new(1, 0);
    for c in [&sg, &or] {
        c.execute(ins, &[&6001i64, &"nul", &bal, &ts])
            .await
            .expect("insert with NULL value");
    }
    assert_same(&sg, &or, "SELECT * FROM accounts WHERE id = 6001").await;
    let e = sg
        .execute(ins, &[&none, &"nul", &bal, &ts])
        .await
        .expect_err("NULL primary key");
    assert_eq!(sqlstate(&e), "23502", "{}", describe(&e));
}

// ---------- 8. transactions ----------

#[tokio::test]
async fn transaction_rollback_discards_the_write() {
    env();
    let sg = connect().await;
    sg.batch_execute("BEGIN").await.expect("begin");
    sg.batch_execute("INSERT INTO accounts (id, owner) VALUES (2001, 'tx')")
        .await
        .expect("insert");
    assert_eq!(
        rows(&sg, "SELECT owner FROM accounts WHERE id = 2001").await,
        vec![vec![Some("tx".into())]]
    );
    sg.batch_execute("ROLLBACK").await.expect("rollback");
    assert!(rows(&sg, "SELECT owner FROM accounts WHERE id = 2001")
        .await
        .is_empty());
    // An error inside a block aborts it until ROLLBACK, as in PostgreSQL.
    sg.batch_execute("BEGIN").await.expect("begin");
    sg.batch_execute("INSERT INTO accounts (id, owner) VALUES (2002, 'tx')")
        .await
        .expect("insert");
    assert_eq!(
        sqlstate(
            &sg.batch_execute("SELECT 1/0")
                .await
                .expect_err("div by zero")
        ),
        "22012"
    );
    let e = sg
        .batch_execute("SELECT * FROM accounts WHERE id = 2002")
        .await
        .expect_err("aborted block");
    assert_eq!(sqlstate(&e), "25P02", "{}", describe(&e));
    sg.batch_execute("ROLLBACK").await.expect("rollback");
    assert!(rows(&sg, "SELECT owner FROM accounts WHERE id = 2002")
        .await
        .is_empty());
}

#[tokio::test]
async fn transaction_reading_many_nodes_writing_one_commits() {
    env();
    let sg = connect().await;
    sg.batch_execute("BEGIN").await.expect("begin");
    for u in data().users.iter().take(4) {
        assert_eq!(
            rows(&sg, &format!("SELECT 1 FROM users WHERE user_uuid = '{u}'"))
                .await
                .len(),
            1
        );
    }
    assert_eq!(
        rows(
            &sg,
            "SELECT * FROM user_analytics WHERE user_id IN (1, 2, 3, 4, 5, 6)"
        )
        .await
        .len(),
        6
    );
    sg.batch_execute("INSERT INTO accounts (id, owner, balance) VALUES (2100, 'committed', 5)")
        .await
        .expect("write");
    sg.batch_execute("UPDATE accounts SET balance = balance * 2 WHERE id = 2100")
        .await
        .expect("update");
    sg.batch_execute("COMMIT").await.expect("commit");
    let other = connect().await;
    assert_eq!(
        rows(
            &other,
            "SELECT owner, balance FROM accounts WHERE id = 2100"
        )
        .await,
        vec![vec![Some("committed".into()), Some("10.00".into())]]
    );
    let w = worker(node_of("accounts", "int8", "2100")).await;
    assert_eq!(
        scalar(&w, "SELECT count(*) FROM accounts WHERE id = 2100").await,
        "1"
    );
}

// ---------- 9. several statements in one simple query ----------

#[tokio::test]
async fn multi_statement_simple_query() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    let got = simple(&sg, "SELECT 1; SELECT 2")
        .await
        .expect("two statements");
    assert_eq!(
        got.iter().map(|r| r.rows.clone()).collect::<Vec<_>>(),
        vec![vec![vec![Some("1".into())]], vec![vec![Some("2".into())]]]
    );
    let sql = "SELECT * FROM user_analytics WHERE user_id = 1; SELECT * FROM user_analytics WHERE user_id = 2; SELECT * FROM customers WHERE customer_id = 3";
    let (got, want) = (
        simple(&sg, sql).await.expect("shardgate"),
        simple(&or, sql).await.expect("oracle"),
    );
    assert_eq!(got, want);
}

/// A syntax error anywhere in the string: PostgreSQL parses the whole string first and runs
/// nothing.
#[tokio::test]
async fn multi_statement_syntax_error_runs_nothing() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    let (a, _) = keys_on_two_nodes(4001);
    let sql = format!("INSERT INTO accounts (id, owner) VALUES ({a}, 'multi'); SELEC 1");
    for c in [&sg, &or] {
        let e = c.batch_execute(&sql).await.expect_err("syntax error");
        assert_eq!(sqlstate(&e), "42601");
    }
    let check = format!("SELECT * FROM accounts WHERE id = {a}");
    assert!(rows(&or, &check).await.is_empty(), "PostgreSQL ran nothing");
    assert!(
        rows(&sg, &check).await.is_empty(),
        "{sql}: the INSERT ran through shardgate"
    );
}

/// One string is one implicit transaction in PostgreSQL: a later error undoes an earlier write,
/// even when the failing statement runs on another node (the write is on one node only).
#[tokio::test]
async fn multi_statement_string_is_atomic() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    let (a, b) = keys_on_two_nodes(4100);
    for (key, other) in [(a, b), (b, a)] {
        let sql = format!("INSERT INTO accounts (id, owner) VALUES ({key}, 'implicit'); SELECT * FROM accounts WHERE id = {other} AND 1 / 0 = 1");
        assert_eq!(
            sqlstate(&or.batch_execute(&sql).await.expect_err("oracle")),
            "22012"
        );
        assert!(
            rows(&or, &format!("SELECT * FROM accounts WHERE id = {key}"))
                .await
                .is_empty()
        );
        assert_eq!(
            sqlstate(&sg.batch_execute(&sql).await.expect_err("division by zero")),
            "22012"
        );
        assert!(
            rows(&sg, &format!("SELECT * FROM accounts WHERE id = {key}"))
                .await
                .is_empty(),
            "{sql}: the INSERT must be undone"
        );
    }
}

/// A multi-row INSERT split by node is re-printed per node: every value must reach the worker
/// unchanged (compared with the oracle, which ran the client's text).
#[tokio::test]
async fn split_insert_keeps_string_values() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    // SQL literal bodies (quotes already doubled).
    let owners = [
        "it''s",
        "x''''y",
        "''''''",
        "back\\slash",
        "q\\''q",
        "$$dollar$$",
        "semi;colon",
    ];
    let mut failures = Vec::new();
    for (i, o) in owners.iter().enumerate() {
        let (a, b) = keys_on_two_nodes(7000 + 100 * i as i64);
        let sql = format!("INSERT INTO accounts (id, owner) VALUES ({a}, '{o}'), ({b}, 'other')");
        or.batch_execute(&sql).await.expect("oracle");
        if let Err(e) = sg.batch_execute(&sql).await {
            failures.push(format!("{sql}: {}", describe(&e)));
            continue;
        }
        let q = format!("SELECT id, owner FROM accounts WHERE id IN ({a}, {b})");
        let (got, want) = (rows(&sg, &q).await, rows(&or, &q).await);
        if sorted(got.clone()) != sorted(want.clone()) {
            failures.push(format!(
                "{sql}: shardgate stored {got:?}, PostgreSQL {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Range predicates and IN lists reach only the nodes that may hold matching rows.
#[tokio::test]
async fn predicates_prune_to_the_nodes_that_may_match() {
    env();
    let sg = connect().await;
    let cases = [
        (
            "sales_analytics WHERE sale_date BETWEEN '2024-01-20' AND '2024-02-10'",
            vec![1, 1, 0],
        ),
        (
            "sales_analytics WHERE sale_date < '2024-01-01'",
            vec![1, 0, 0],
        ),
        (
            "sales_analytics WHERE sale_date >= '2024-03-01'",
            vec![0, 0, 1],
        ),
        (
            "sales_analytics WHERE sale_date > '2024-02-28' AND sale_date <= '2024-03-02'",
            vec![0, 1, 1],
        ),
        ("regional_sales WHERE region IN ('UK', 'FR')", vec![0, 1, 0]),
        ("regional_sales WHERE region IN ('US', 'JP')", vec![1, 0, 1]),
        (
            "regional_sales WHERE region = 'US' OR region = 'DE'",
            vec![1, 1, 0],
        ),
    ];
    for (from, want) in cases {
        let sql = format!("SELECT 31 AS sg_probe_a, 32 AS sg_probe_b, * FROM {from}");
        let got = executions(async {
            rows(&sg, &sql).await;
        })
        .await;
        assert_eq!(got, want, "{sql}");
    }
    // Two user_ids on one node: one worker, one statement.
    let (a, b) = (1..)
        .flat_map(|a| (a + 1..a + 50).map(move |b| (a, b)))
        .find(|(a, b)| {
            node_of("user_analytics", "int8", &a.to_string())
                == node_of("user_analytics", "int8", &b.to_string())
        })
        .expect("two keys on one node");
    let sql = format!("SELECT 31 AS sg_probe_a, 32 AS sg_probe_b, * FROM user_analytics WHERE user_id IN ({a}, {b})");
    let w = probe(async { assert_eq!(rows(&sg, &sql).await.len(), 2) }).await;
    assert_eq!(
        w,
        node_of("user_analytics", "int8", &a.to_string()),
        "{sql}"
    );
}

/// Session settings (SET) apply on every node a session's statements reach.
#[tokio::test]
async fn session_settings_reach_every_node() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    both(
        &sg,
        &or,
        "SET DateStyle = 'German'; SET extra_float_digits = 0",
    )
    .await;
    assert_same(&sg, &or, "SHOW DateStyle").await;
    for sql in [
        "SELECT sale_id, sale_date FROM sales_analytics WHERE sale_date = '2023-12-01'",
        "SELECT sale_id, sale_date FROM sales_analytics WHERE sale_date = '2024-02-15'",
        "SELECT sale_id, sale_date FROM sales_analytics WHERE sale_date = '2024-04-20'",
        "SELECT user_id, activity_date, page_views / 7.0::float8 AS f FROM user_analytics WHERE user_id IN (1, 2, 3, 4, 5, 6, 7, 8)",
    ] {
        assert_same(&sg, &or, sql).await;
    }
}

/// RESET undoes a SET for every node the session reaches, as in PostgreSQL.
#[tokio::test]
async fn reset_undoes_a_setting_on_every_node() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    let mut failures = Vec::new();
    for reset in ["RESET DateStyle", "RESET ALL"] {
        both(&sg, &or, "SET DateStyle = 'German'").await;
        both(&sg, &or, reset).await;
        for d in ["2023-12-01", "2024-02-15", "2024-04-20"] {
            let sql =
                format!("SELECT sale_date FROM sales_analytics WHERE sale_date = '{d}' LIMIT 1");
            let (got, want) = (rows(&sg, &sql).await, rows(&or, &sql).await);
            if got != want {
                failures.push(format!("SET DateStyle = 'German'; {reset}; {sql}: shardgate {got:?}, PostgreSQL {want:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Many sessions at once, each checking its own keyed answers (pooled backends must never mix
/// replies).
#[tokio::test]
async fn concurrent_sessions_get_their_own_answers() {
    env();
    let sessions = (0..16).map(|s| async move {
        let sg = connect().await;
        let st = sg
            .prepare("SELECT username FROM user_analytics WHERE user_id = $1")
            .await?;
        for i in 0..60i64 {
            let id = 1 + (s * 61 + i * 7) % N_ANALYTICS;
            let want = format!("user_{id}");
            if i % 2 == 0 {
                assert_eq!(sg.query_one(&st, &[&id]).await?.get::<_, String>(0), want);
            } else {
                let sql = format!("SELECT username FROM user_analytics WHERE user_id = {id}");
                assert_eq!(rows(&sg, &sql).await, vec![vec![Some(want)]]);
            }
        }
        Ok::<_, tokio_postgres::Error>(())
    });
    try_join_all(sessions).await.expect("sessions");
}

/// More extended-protocol shapes: keys in IN lists, BETWEEN and ANY as parameters; a failed
/// Parse leaves the session usable.
#[tokio::test]
async fn extended_protocol_parameters_and_errors() {
    env();
    let (sg, or) = (connect().await, oracle().await);
    let d1 = chrono::NaiveDate::from_ymd_opt(2024, 1, 25).expect("date");
    let d2 = chrono::NaiveDate::from_ymd_opt(2024, 2, 5).expect("date");
    let ids: Vec<i64> = vec![3, 33, 333, 999];
    let cases: Vec<(&str, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>)> = vec![
        (
            "SELECT * FROM user_analytics WHERE user_id IN ($1, $2, $3)",
            vec![&10i64, &20i64, &30i64],
        ),
        (
            "SELECT * FROM user_analytics WHERE user_id = ANY($1)",
            vec![&ids],
        ),
        (
            "SELECT sale_id, sale_date FROM sales_analytics WHERE sale_date BETWEEN $1 AND $2",
            vec![&d1, &d2],
        ),
        (
            "SELECT * FROM regional_sales WHERE region = $1 AND country = $2",
            vec![&"FR", &"US"],
        ),
    ];
    for (sql, params) in cases {
        let got = sg
            .query(sql, &params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
        let want = or.query(sql, &params).await.expect("oracle");
        assert!(!want.is_empty(), "{sql} returns rows");
        assert_eq!(typed(&got), typed(&want), "{sql}");
    }
    let e = sg
        .prepare("SELEC * FROM user_analytics WHERE user_id = $1")
        .await
        .expect_err("syntax");
    assert_eq!(sqlstate(&e), "42601", "{}", describe(&e));
    let e = sg
        .prepare("SELECT * FROM no_such_table WHERE id = $1")
        .await
        .expect_err("no table");
    assert_eq!(sqlstate(&e), "42P01", "{}", describe(&e));
    let row = sg
        .query_one(
            "SELECT username FROM user_analytics WHERE user_id = $1",
            &[&5i64],
        )
        .await
        .expect("alive");
    assert_eq!(row.get::<_, String>(0), "user_5");
    let (got, want) = (simple(&sg, "").await, simple(&or, "").await);
    assert_eq!(got.expect("empty query"), want.expect("oracle"));
}

/// A user mapped to a worker role runs as that role on every node: its `current_user`, its
/// privileges (a superuser-only setting and an ungranted write are refused as PostgreSQL
/// refuses them), and the `session_authorization` and `is_superuser` it is told at startup.
#[tokio::test]
async fn a_users_statements_run_as_its_worker_role() {
    env();
    for w in 0..NODES {
        worker(w)
            .await
            .batch_execute("GRANT SELECT ON user_analytics TO sg_reader")
            .await
            .expect("grant");
    }
    let r = connect_as("reader", "reader-secret")
        .await
        .expect("reader logs in");
    assert_eq!(scalar(&r, "SELECT current_user").await, "sg_reader");
    assert_eq!(scalar(&r, "SHOW session_authorization").await, "sg_reader");
    assert_eq!(scalar(&r, "SHOW is_superuser").await, "off");
    // Keyed reads on every node, and a scatter aggregate, as the role.
    for id in 1..=12 {
        let got = r
            .query(
                "SELECT current_user, username FROM user_analytics WHERE user_id = $1",
                &[&(id as i64)],
            )
            .await
            .expect("granted read");
        for row in got {
            assert_eq!(row.get::<_, String>(0), "sg_reader");
        }
    }
    let sg = connect().await;
    let all = "SELECT count(*) FROM user_analytics";
    assert_eq!(scalar(&r, all).await, scalar(&sg, all).await);
    let e = r
        .simple_query("SHOW data_directory")
        .await
        .expect_err("superuser only");
    assert_eq!(sqlstate(&e), "42501", "{}", describe(&e));
    let e = r
        .simple_query("UPDATE user_analytics SET username = 'x' WHERE user_id = 3")
        .await
        .expect_err("not granted");
    assert_eq!(sqlstate(&e), "42501", "{}", describe(&e));
    let e = r
        .simple_query("SELECT count(*) FROM users")
        .await
        .expect_err("not granted");
    assert_eq!(sqlstate(&e), "42501", "{}", describe(&e));
    // The `app` user, without a role, keeps the nodes' URL role.
    assert_eq!(scalar(&sg, "SELECT current_user").await, "postgres");
}

/// A user configured with `auth = "md5"` logs in with md5 (libpq's answer to
/// AuthenticationMD5Password), and a wrong password gets PostgreSQL's 28P01.
#[tokio::test]
async fn md5_users_log_in_with_md5() {
    env();
    let c = connect_as("md5user", "md5-secret")
        .await
        .expect("md5 login");
    assert_eq!(scalar(&c, "SELECT 1").await, "1");
    let e = connect_as("md5user", "wrong")
        .await
        .expect_err("wrong password");
    assert_eq!(sqlstate(&e), "28P01", "{}", describe(&e));
    let o = std::process::Command::new("psql")
        .args([
            "-X",
            "-At",
            "-h",
            "127.0.0.1",
            "-p",
            &env().port.to_string(),
            "-U",
            "md5user",
            "-d",
            "app",
            "-c",
            "SELECT 2",
        ])
        .env("PGPASSWORD", "md5-secret")
        .output()
        .expect("psql");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "2",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

// ---------- protocol: cancel, drain ----------

/// A CancelRequest with the BackendKeyData shardgate sent stops a running keyed statement.
#[tokio::test]
async fn cancel_request_stops_a_running_statement() {
    env();
    let sg = connect().await;
    let token = sg.cancel_token();
    let cancel = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    };
    let sql = "SELECT pg_sleep(20) FROM user_analytics WHERE user_id = 9";
    let started = std::time::Instant::now();
    let (res, cancelled) = futures::join!(sg.batch_execute(sql), cancel);
    cancelled.expect("cancel request sent");
    let e = res.expect_err("cancelled");
    assert_eq!(sqlstate(&e), "57014", "{}", describe(&e));
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        scalar(&sg, "SELECT username FROM user_analytics WHERE user_id = 9").await,
        "user_9"
    );
}

/// Ctrl-C during a scatter read (psql's simple protocol, and a driver's extended one): the
/// cancel reaches every node's part, the client gets 57014 once (the next statement gets its
/// own answer, not a second error), and no node keeps running its part.
#[tokio::test]
async fn cancel_of_a_scatter_read_reaches_every_node() {
    env();
    for (i, extended) in [(1, false), (2, true)] {
        let sg = connect().await;
        let token = sg.cancel_token();
        let marker = format!("cancel-marker-{i}");
        let sql = format!(
            "SELECT '{marker}', u.user_id, g FROM user_analytics u, generate_series(1, 5000000) g"
        );
        let cancel = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            token.cancel_query(tokio_postgres::NoTls).await
        };
        let run = async {
            match extended {
                false => sg.simple_query(&sql).await.map(|_| ()),
                true => sg.query(&sql, &[]).await.map(|_| ()),
            }
        };
        let (res, cancelled) = futures::join!(run, cancel);
        cancelled.expect("cancel request sent");
        let e = res.expect_err("cancelled");
        assert_eq!(sqlstate(&e), "57014", "{}", describe(&e));
        assert_eq!(
            scalar(&sg, "SELECT username FROM user_analytics WHERE user_id = 9").await,
            "user_9"
        );
        let running = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%{marker}%'"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        for w in 0..NODES {
            let c = worker(w).await;
            loop {
                let n = scalar(&c, &running).await;
                if n == "0" {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "node {w} still runs its part of the cancelled statement"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Shutdown drains: no new sessions; an idle session is told to go; a session inside a
/// transaction block finishes it; then serve returns.
#[tokio::test]
async fn shutdown_drains_sessions() {
    env();
    let (port, stop, task) = extra_server().await;
    let (busy, idle) = (
        connect_to(port).await.expect("busy"),
        connect_to(port).await.expect("idle"),
    );
    busy.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(
        scalar(
            &busy,
            "SELECT username FROM user_analytics WHERE user_id = 11"
        )
        .await,
        "user_11"
    );
    stop.send(()).expect("trigger shutdown");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while connect_to(port).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "new sessions still accepted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The idle session is told to go as soon as the drain starts; give its task a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        idle.batch_execute("SELECT 1").await.is_err(),
        "the idle session is ended"
    );
    assert_eq!(
        scalar(
            &busy,
            "SELECT username FROM user_analytics WHERE user_id = 12"
        )
        .await,
        "user_12"
    );
    busy.batch_execute("COMMIT")
        .await
        .expect("the open transaction finishes");
    tokio::time::timeout(std::time::Duration::from_secs(20), task)
        .await
        .expect("serve returns after draining")
        .expect("serve task");
    assert!(
        busy.batch_execute("SELECT 1").await.is_err(),
        "the session ended after its transaction"
    );
}

/// An error's position points into the client's own text as PostgreSQL's does: counted from
/// the start of a multi-statement string, and absent (never pointing elsewhere) where the
/// nodes ran shardgate's rewrite of the statement.
#[tokio::test]
async fn error_positions_point_into_the_clients_text() {
    let (sg, or) = (connect().await, oracle().await);
    let position = |e: tokio_postgres::Error| match e.as_db_error().and_then(|d| d.position()) {
        Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p),
        _ => None,
    };
    // As PostgreSQL points: the client's text reached a node unchanged.
    for sql in [
        "SELECT nosuch FROM accounts",
        "SELECT nosuch FROM accounts WHERE id = 1",
        "SELECT 1; SELECT nosuch FROM accounts WHERE id = 1",
        "SELECT 'é'; SELECT 2; SELECT nosuch FROM accounts",
        "SELECT 1; SELEC 2",
        "SELECT 1 FROM accounts WHERE id = 1; SELECT id FROM accounts WHERE nosuch = 1",
    ] {
        let mine = sg.batch_execute(sql).await.map_err(position);
        let theirs = or.batch_execute(sql).await.map_err(position);
        assert!(theirs.as_ref().is_err_and(|p| p.is_some()), "{sql}");
        assert_eq!(mine, theirs, "{sql}");
    }
    // Rewritten for the nodes (a merge's worker part, a multi-row INSERT split by node): no
    // position, as the rewrite's would point at something else.
    for sql in [
        "SELECT id FROM accounts ORDER BY nosuch LIMIT 2",
        "INSERT INTO accounts (id, owner) VALUES (1, 'a'), (2, 'b'::int)",
    ] {
        let e = sg.batch_execute(sql).await.map_err(position);
        assert_eq!(e, Err(None), "{sql}");
    }
    // The extended protocol: the statement's own text, parsed by a node.
    let e = sg
        .query("SELECT nosuch FROM accounts WHERE id = $1", &[&1i64])
        .await
        .map_err(position);
    let o = or
        .query("SELECT nosuch FROM accounts WHERE id = $1", &[&1i64])
        .await
        .map_err(position);
    assert_eq!(e.map(|_| ()), o.map(|_| ()));
}

/// Protocol messages for [`portals_end_with_their_transaction`].
mod frames {
    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }
    fn cstr(b: &mut Vec<u8>, s: &str) {
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    }
    pub fn parse_bind(portal: &str, sql: &str) -> Vec<u8> {
        let mut p = Vec::new();
        cstr(&mut p, "");
        cstr(&mut p, sql);
        p.extend_from_slice(&0i16.to_be_bytes());
        let mut b = Vec::new();
        cstr(&mut b, portal);
        cstr(&mut b, "");
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        [msg(b'P', &p), msg(b'B', &b)].concat()
    }
    pub fn execute(portal: &str, rows: i32) -> Vec<u8> {
        let mut e = Vec::new();
        cstr(&mut e, portal);
        e.extend_from_slice(&rows.to_be_bytes());
        msg(b'E', &e)
    }
    pub fn sync() -> Vec<u8> {
        msg(b'S', &[])
    }
    pub fn query(sql: &str) -> Vec<u8> {
        let mut q = Vec::new();
        cstr(&mut q, sql);
        msg(b'Q', &q)
    }
}

/// A protocol-level portal lives as long as its transaction, as PostgreSQL's (portalmem.c
/// AtCommit_Portals): fetched in batches across Syncs inside a block, gone (34000) once the
/// block or the implicit transaction of its Sync ended, whether its rows came from one node
/// or several.
#[tokio::test]
async fn portals_end_with_their_transaction() {
    use frames::*;
    let e = env();
    let mut sg = wire::Conn::connect(e.port, "app", "app-secret", "app")
        .await
        .expect("shardgate");
    let mut or = wire::Conn::connect(e.worker_ports[0], "postgres", "", "oracle")
        .await
        .expect("oracle");
    for sql in [
        "SELECT user_id FROM user_analytics ORDER BY user_id",
        "SELECT user_id FROM user_analytics WHERE user_id = 7",
    ] {
        let steps: Vec<Vec<u8>> = vec![
            // Outside a block: the Sync's implicit transaction ends the portal.
            [parse_bind("p", sql), execute("p", 2), sync()].concat(),
            [execute("p", 2), sync()].concat(),
            // Inside one: it lives across Syncs until COMMIT.
            query("BEGIN"),
            [parse_bind("p", sql), execute("p", 2), sync()].concat(),
            [execute("p", 2), sync()].concat(),
            query("COMMIT"),
            [execute("p", 2), sync()].concat(),
            // ROLLBACK ends it too.
            query("BEGIN"),
            [parse_bind("q", sql), execute("q", 1), sync()].concat(),
            query("ROLLBACK"),
            [execute("q", 1), sync()].concat(),
        ];
        for (i, step) in steps.iter().enumerate() {
            let mine = sg.exchange(step).await.expect("shardgate answers");
            let theirs = or.exchange(step).await.expect("oracle answers");
            assert_eq!(mine, theirs, "{sql}: step {i}");
        }
    }
}
