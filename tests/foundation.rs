//! Issue 2's contract against real PostgreSQL workers: placement, routing, results equal to one
//! plain PostgreSQL holding the same rows, refusals, errors, config checks, protocol and
//! transaction behaviour. The harness (tests/common) starts the cluster once per binary.

mod common;

use std::collections::BTreeSet;

use common::*;
use futures::future::try_join_all;

// ---------- 1. placement ----------

#[tokio::test]
async fn placement_hash_tables_follow_postgres_partitioning() {
    env();
    for (table, col, modulus) in [
        ("users", "user_uuid", 4u64),
        ("user_events", "user_uuid", 4),
        ("user_analytics", "user_id", 8),
    ] {
        for i in 0..NODES {
            let w = worker(i).await;
            let parts = partitions(&w, table).await;
            let want: BTreeSet<String> = (0..modulus)
                .filter(|r| r % 3 == i as u64)
                .map(|r| format!("{table}_{r}"))
                .collect();
            assert_eq!(
                parts.keys().cloned().collect::<BTreeSet<_>>(),
                want,
                "{table} partitions on worker {i}"
            );
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

#[tokio::test]
async fn placement_range_table_follows_bounds() {
    env();
    for i in 0..NODES {
        let w = worker(i).await;
        let parts = partitions(&w, "sales_analytics").await;
        let want: BTreeSet<String> = SALES_RANGES
            .iter()
            .enumerate()
            .filter(|(_, r)| r.2 == i)
            .map(|(s, _)| format!("sales_analytics_{s}"))
            .collect();
        assert_eq!(
            parts.keys().cloned().collect::<BTreeSet<_>>(),
            want,
            "partitions on worker {i}"
        );
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
        assert_eq!(
            parts.keys().cloned().collect::<BTreeSet<_>>(),
            want,
            "partitions on worker {i}"
        );
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
    let sg = connect().await;
    sg.batch_execute("CREATE TABLE h_ts_edge (k timestamp PRIMARY KEY, n integer)")
        .await
        .expect("create");
    let mut forms = vec![
        "2024-03-01T10:00:00".to_string(),
        "2024-03-01 10:00".into(),
        "2024-03-02".into(),
    ];
    forms.extend((0..24).map(|i| format!("2024-03-01 10:00:{i:02}.{:07}", 9_999_995 - i * 1000)));
    let mut failures = Vec::new();
    for (n, f) in forms.iter().enumerate() {
        if let Err(e) = sg
            .batch_execute(&format!("INSERT INTO h_ts_edge VALUES ('{f}', {n})"))
            .await
        {
            failures.push(format!("INSERT '{f}': {}", describe(&e)));
            continue;
        }
        let got = rows(&sg, &format!("SELECT n FROM h_ts_edge WHERE k = '{f}'")).await;
        if got != vec![vec![Some(n.to_string())]] {
            failures.push(format!("SELECT WHERE k = '{f}' returned {got:?}"));
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

/// The one worker that ran statements marked `marker`; asserts exactly one did, once.
async fn sole_worker(marker: &str) -> usize {
    let calls = calls_per_worker(marker).await;
    assert_eq!(
        calls.iter().sum::<i64>(),
        1,
        "{marker}: calls per worker {calls:?}"
    );
    calls.iter().position(|c| *c == 1).unwrap_or(0)
}

#[tokio::test]
async fn keyed_simple_query_reaches_one_worker() {
    env();
    let sg = connect().await;
    for (n, u) in data().users.iter().take(6).enumerate() {
        let marker = format!("sg_probe_simple_{n}");
        let got = rows(
            &sg,
            &format!("SELECT username, 1 AS {marker} FROM users WHERE user_uuid = '{u}'"),
        )
        .await;
        assert_eq!(got.len(), 1);
        assert_eq!(
            sole_worker(&marker).await,
            node_of("users", "uuid", u),
            "{u}"
        );
    }
    let marker = "sg_probe_simple_range";
    rows(
        &sg,
        &format!("SELECT sale_id AS {marker} FROM sales_analytics WHERE sale_date = '2024-02-14'"),
    )
    .await;
    assert_eq!(sole_worker(marker).await, 1);
    let marker = "sg_probe_simple_list";
    rows(
        &sg,
        &format!("SELECT sale_id AS {marker} FROM regional_sales WHERE region = 'JP'"),
    )
    .await;
    assert_eq!(sole_worker(marker).await, REGION_DEFAULT_NODE);
}

#[tokio::test]
async fn keyed_extended_query_reaches_one_worker() {
    env();
    let sg = connect().await;
    for id in [1i64, 2, 3, 77, 500] {
        let marker = format!("sg_probe_ext_{id}");
        let got = sg
            .query(
                &format!("SELECT username, 2 AS {marker} FROM user_analytics WHERE user_id = $1"),
                &[&id],
            )
            .await
            .expect("query");
        assert_eq!(got.len(), 1);
        assert_eq!(
            sole_worker(&marker).await,
            node_of("user_analytics", "int8", &id.to_string()),
            "user_id {id}"
        );
    }
    let u: uuid::Uuid = data().users[10].parse().expect("uuid");
    let got = sg
        .query(
            "SELECT username, 3 AS sg_probe_ext_uuid FROM users WHERE user_uuid = $1",
            &[&u],
        )
        .await
        .expect("query");
    assert_eq!(got.len(), 1);
    assert_eq!(
        sole_worker("sg_probe_ext_uuid").await,
        node_of("users", "uuid", &data().users[10])
    );
    let d = chrono::NaiveDate::from_ymd_opt(2024, 3, 10).expect("date");
    sg.query(
        "SELECT sale_id AS sg_probe_ext_date FROM sales_analytics WHERE sale_date = $1",
        &[&d],
    )
    .await
    .expect("query");
    assert_eq!(sole_worker("sg_probe_ext_date").await, 2);
    sg.query(
        "SELECT sale_id AS sg_probe_ext_region FROM regional_sales WHERE region = $1",
        &[&"UK"],
    )
    .await
    .expect("query");
    assert_eq!(sole_worker("sg_probe_ext_region").await, 1);
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
    let cases: Vec<(&str, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>)> = vec![
        ("SELECT user_id, username, page_views::float8 / 3 AS ratio, activity_date FROM user_analytics WHERE user_id = $1", vec![&5i64]),
        ("SELECT * FROM users WHERE user_uuid = $1", vec![&u]),
        ("SELECT * FROM sales_analytics WHERE sale_date = $1", vec![&d]),
        ("SELECT * FROM regional_sales WHERE region = $1 AND amount > $2", vec![&"CA", &rust_decimal::Decimal::new(50000, 2)]),
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
async fn transaction_writing_on_two_nodes_is_refused() {
    env();
    let sg = connect().await;
    let (a, b) = keys_on_two_nodes(5000);
    sg.batch_execute("BEGIN").await.expect("begin");
    sg.batch_execute(&format!(
        "INSERT INTO accounts (id, owner) VALUES ({a}, 'txn-a')"
    ))
    .await
    .expect("first write");
    let e = sg
        .batch_execute(&format!(
            "INSERT INTO accounts (id, owner) VALUES ({b}, 'txn-b')"
        ))
        .await
        .expect_err("second node");
    assert_eq!(sqlstate(&e), "0A000", "{}", describe(&e));
    sg.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(
        scalar(
            &sg,
            &format!("SELECT count(*) FROM accounts WHERE id IN ({a}, {b})")
        )
        .await,
        "0"
    );
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
        let e = connect_as(user, pw).await.err().expect("login must fail");
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
        ("dup_value", "method = \"list\"\ncolumn = \"r\"\nlists = [ { values = [\"a\", \"b\"], node = \"w1\" }, { values = [\"b\"], node = \"w2\" } ]", "\"b\""),
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
    let done = try_join_all(
        ids.iter()
            .zip(&owners)
            .map(|(id, o)| sg.execute(&ins, &[id, o, &bal])),
    )
    .await
    .expect("pipelined inserts");
    assert!(done.iter().all(|n| *n == 1));
    let got = try_join_all(ids.iter().map(|id| sg.query(&sel, &[id])))
        .await
        .expect("pipelined selects");
    for (rows, o) in got.iter().zip(&owners) {
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>(0), *o);
    }
    // Inserts and selects interleaved in one pipeline: each select sees the insert before it.
    let (sg, ins, sel, bal) = (&sg, &ins, &sel, &bal);
    let mixed = ids.iter().map(|id| async move {
        sg.execute(ins, &[&(id + 1000), &"mixed", bal]).await?;
        sg.query(sel, &[&(id + 1000)]).await
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
    // A syntax error anywhere in the string: nothing runs, as in PostgreSQL.
    let sql = "INSERT INTO accounts (id, owner) VALUES (4001, 'multi'); SELEC 1";
    assert_eq!(
        sqlstate(&sg.batch_execute(sql).await.expect_err("syntax")),
        "42601"
    );
    assert!(rows(&sg, "SELECT * FROM accounts WHERE id = 4001")
        .await
        .is_empty());
}

/// One string is one implicit transaction in PostgreSQL: a later error undoes an earlier write,
/// even when the failing statement runs on another node (the write is on one node only).
#[tokio::test]
async fn multi_statement_string_is_atomic() {
    env();
    let sg = connect().await;
    let (a, b) = keys_on_two_nodes(4100);
    for (key, other) in [(a, b), (b, a)] {
        let sql = format!("INSERT INTO accounts (id, owner) VALUES ({key}, 'implicit'); SELECT * FROM accounts WHERE id = {other} AND 1 / 0 = 1");
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
