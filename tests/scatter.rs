//! Issue 3's differential suite: every scatter-gather query runs through shardgate and on the
//! oracle (one plain PostgreSQL holding the same rows) and must give the same column names and
//! rows in text format (simple protocol), and the same column names, type OIDs, type modifiers
//! and bytes per value in binary format (extended protocol). Queries whose ORDER BY is a total
//! order are compared in order, the rest as multisets; a query starting with `~` has an ORDER BY
//! with ties (the `~` is stripped, rows compared sorted). `{u0}`..`{u9}` stand for the first user
//! UUIDs of the generated data. Each theme reports all of its mismatches at once; an error from
//! the oracle is always a mismatch here. The comparison machinery is in tests/common/diff.rs.
//! Known bugs are kept at the end as ignored tests named after them
//! (`cargo test --test scatter -- --ignored`).

mod common;

use common::diff::*;
use common::*;
use tokio_postgres::types::ToSql;

// ---------- the queries, by theme ----------

const AGGREGATES: &[&str] = &[
    "SELECT count(*) FROM users",
    "SELECT count(*) FROM user_events",
    "SELECT count(*), count(sales_rep_id), count(1) FROM sales_analytics",
    "SELECT count(username), count(DISTINCT activity_date) FROM user_analytics",
    "SELECT sum(page_views), sum(user_id), sum(actions_count) FROM user_analytics",
    "SELECT sum(quantity), sum(unit_price), sum(total_amount), sum(sales_rep_id) FROM sales_analytics",
    "SELECT min(page_views), max(page_views), min(username), max(username), min(activity_date), max(activity_date) FROM user_analytics",
    "SELECT min(created_at), max(created_at), min(email), max(email), min(username), max(username) FROM users",
    "SELECT min(event_time), max(event_time), min(type), max(type) FROM user_events",
    "SELECT min(unit_price), max(total_amount), min(sales_rep_id), max(sale_date) FROM sales_analytics",
    "SELECT avg(page_views), avg(user_id), avg(session_duration) FROM user_analytics",
    "SELECT avg(quantity), avg(unit_price), avg(total_amount), avg(sales_rep_id) FROM sales_analytics",
    "SELECT avg(amount), avg(sale_id) FROM regional_sales",
    "SELECT bool_and(page_views < 100), bool_or(page_views > 98), bool_and(actions_count > 0), bool_or(session_duration < 0) FROM user_analytics",
    "SELECT bool_and(quantity >= 1), bool_or(sales_rep_id IS NULL), bool_and(sales_rep_id > 0) FROM sales_analytics",
    "SELECT stddev(page_views), stddev_samp(session_duration), stddev_pop(actions_count) FROM user_analytics",
    "SELECT variance(page_views), var_samp(session_duration), var_pop(actions_count) FROM user_analytics",
    "SELECT stddev(user_id), var_pop(user_id), stddev_pop(user_id), var_samp(user_id) FROM user_analytics",
    "SELECT stddev(unit_price), variance(total_amount), stddev_pop(unit_price), var_pop(total_amount) FROM sales_analytics",
    "SELECT stddev(sales_rep_id), var_pop(sales_rep_id), stddev(quantity) FROM sales_analytics",
    "SELECT stddev(amount), var_samp(amount), stddev_pop(amount) FROM regional_sales",
    // stddev of floats: tests/hunt.rs compares it rounded (README, Floats).
    "SELECT avg(page_views::float8), sum(page_views::float8) FROM user_analytics",
    "SELECT stddev(quantity::int2), variance(quantity::smallint), var_pop(product_id::int8) FROM sales_analytics",
    "SELECT count(DISTINCT region) FROM sales_analytics",
    "SELECT count(DISTINCT customer_id), count(*) FROM sales_analytics",
    "SELECT sum(DISTINCT quantity), avg(DISTINCT quantity), count(DISTINCT quantity) FROM sales_analytics",
    "SELECT count(DISTINCT type) FROM user_events",
    "SELECT count(DISTINCT lower(region)) FROM sales_analytics",
    "SELECT count(DISTINCT user_uuid) FROM user_events",
    "SELECT avg(DISTINCT unit_price), sum(DISTINCT unit_price) FROM sales_analytics",
    "SELECT count(DISTINCT sales_rep_id), sum(DISTINCT sales_rep_id) FROM sales_analytics",
    "SELECT count(DISTINCT country), sum(amount) FROM regional_sales",
    "SELECT count(DISTINCT product_id), avg(quantity), stddev(quantity), max(sale_date) FROM sales_analytics",
    "SELECT count(*) FILTER (WHERE page_views > 50), sum(session_duration) FILTER (WHERE actions_count < 10), avg(page_views) FILTER (WHERE user_id % 2 = 0) FROM user_analytics",
    "SELECT count(*) FILTER (WHERE region = 'North'), max(total_amount) FILTER (WHERE region = 'South'), min(sale_date) FILTER (WHERE quantity = 10) FROM sales_analytics",
    "SELECT stddev(quantity) FILTER (WHERE region = 'East'), bool_and(quantity > 1) FILTER (WHERE unit_price > 200), var_pop(unit_price) FILTER (WHERE quantity < 3) FROM sales_analytics",
    "SELECT count(*) FROM sales_analytics WHERE quantity > 5 AND region <> 'North'",
];

const EXPRESSIONS: &[&str] = &[
    "SELECT sum(page_views) / count(*) FROM user_analytics",
    "SELECT sum(quantity) / count(*), sum(quantity) % count(*), count(*) / 7 FROM sales_analytics",
    "SELECT max(event_time) - min(event_time) FROM user_events",
    "SELECT max(sale_date) - min(sale_date) AS days FROM sales_analytics",
    "SELECT max(created_at) - min(created_at) AS span FROM users",
    "SELECT round(avg(page_views), 2) AS a, round(stddev(page_views), 4) FROM user_analytics",
    "SELECT round(avg(unit_price), 3), trunc(avg(total_amount)), round(sum(total_amount) / 3, 1) FROM sales_analytics",
    "SELECT avg(page_views)::int, avg(session_duration)::float8, sum(page_views)::text, count(*)::int4 FROM user_analytics",
    "SELECT sum(total_amount) / sum(quantity) AS avg_price FROM sales_analytics",
    "SELECT count(*) * 2 + 1, -sum(quantity), abs(min(quantity) - max(quantity)) FROM sales_analytics",
    "SELECT CASE WHEN count(*) > 1000 THEN 'big' ELSE 'small' END AS size FROM user_events",
    "SELECT coalesce(max(sales_rep_id), 0), coalesce(sum(sales_rep_id) FILTER (WHERE false), -1) FROM sales_analytics",
    "SELECT 100.0 * count(*) FILTER (WHERE type = 'login') / count(*) AS pct FROM user_events",
    "SELECT sum(page_views)::numeric / nullif(count(*), 0) FROM user_analytics",
    "SELECT max(username) || '/' || min(username) FROM user_analytics",
    "SELECT greatest(max(quantity), 3), least(min(unit_price), 100) FROM sales_analytics",
    "SELECT count(DISTINCT region) * 10 + count(DISTINCT region) FROM sales_analytics",
    "SELECT region, sum(total_amount) / count(*) AS mean, max(sale_date) - min(sale_date) AS days FROM sales_analytics GROUP BY region ORDER BY region",
    "SELECT 1 + 1 AS two, count(*), 'x' AS x FROM users",
    "SELECT date_trunc('day', max(event_time)), extract(epoch FROM max(event_time) - min(event_time)) FROM user_events",
    "SELECT sum(actions_count) / count(DISTINCT activity_date) FROM user_analytics",
    "SELECT avg(quantity) * 2, sum(quantity)::float8 / count(*), stddev(quantity)::int, min(quantity)::numeric(4,1) FROM sales_analytics",
    "SELECT avg(event_time - timestamp '2024-01-01'), sum(event_time - timestamp '2024-01-01'), max(event_time - timestamp '2024-01-01') FROM user_events",
    "SELECT type, avg(event_time - timestamp '2024-01-01') FROM user_events GROUP BY type ORDER BY 1",
    "SELECT sum(quantity * unit_price), avg(CASE WHEN region = 'North' THEN quantity END), max(length(region)) FROM sales_analytics",
    "SELECT CASE WHEN sum(quantity) > 0 THEN avg(quantity) END, sum(quantity) FILTER (WHERE region = 'North') / count(*) FROM sales_analytics",
    "SELECT count(*) AS \"Count\", count(*), sum(quantity) AS \"Σ\" FROM sales_analytics",
    "SELECT max(event_time)::date - min(event_time)::date FROM user_events",
];

const GROUP_BY: &[&str] = &[
    "SELECT region, count(*) FROM sales_analytics GROUP BY region",
    "SELECT region, sum(quantity), avg(unit_price), min(sale_date), max(total_amount) FROM sales_analytics GROUP BY region ORDER BY region",
    "SELECT type, count(*), min(event_time), max(event_time) FROM user_events GROUP BY type ORDER BY type",
    "SELECT activity_date, count(*), sum(page_views) FROM user_analytics GROUP BY activity_date ORDER BY activity_date",
    "SELECT page_views > 50 AS hi, count(*), avg(session_duration) FROM user_analytics GROUP BY page_views > 50",
    "SELECT date_trunc('month', sale_date) AS m, count(*), sum(total_amount) FROM sales_analytics GROUP BY 1 ORDER BY 1",
    "SELECT date_trunc('month', event_time), count(*) FROM user_events GROUP BY date_trunc('month', event_time)",
    "SELECT extract(dow FROM sale_date) AS dow, count(*) FROM sales_analytics GROUP BY 1 ORDER BY 1",
    "SELECT extract(month FROM event_time) m, type, count(*) FROM user_events GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT region, quantity, count(*) FROM sales_analytics GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT sales_rep_id, count(*) FROM sales_analytics GROUP BY sales_rep_id ORDER BY sales_rep_id NULLS FIRST",
    "SELECT customer_id, sum(total_amount) AS t FROM sales_analytics GROUP BY customer_id ORDER BY t DESC, customer_id LIMIT 10",
    "SELECT region, count(*) FROM sales_analytics GROUP BY region HAVING count(*) > 590",
    "SELECT count(*) FROM sales_analytics GROUP BY region ORDER BY region",
    "SELECT region, count(*) FROM sales_analytics GROUP BY region HAVING count(*) FILTER (WHERE quantity > 5) > 300 ORDER BY 1",
    "SELECT region FROM sales_analytics GROUP BY region HAVING avg(quantity) > 5.5",
    "SELECT region, count(*) FROM sales_analytics GROUP BY region HAVING sum(total_amount) > 0 AND min(quantity) = 1 ORDER BY 2 DESC, 1",
    "SELECT type FROM user_events GROUP BY type HAVING count(DISTINCT user_uuid) > 100 ORDER BY type",
    "SELECT count(*) FROM user_analytics HAVING count(*) > 0",
    "SELECT count(*) FROM user_analytics HAVING count(*) > 1000000",
    "SELECT product_id % 10 AS bucket, count(*), avg(quantity) FROM sales_analytics GROUP BY 1 HAVING count(*) > 250 ORDER BY 1",
    "SELECT region, count(DISTINCT customer_id), sum(quantity) FROM sales_analytics GROUP BY region ORDER BY region",
    "SELECT lower(region), count(*) FROM sales_analytics GROUP BY lower(region) ORDER BY 1",
    "SELECT country, count(*), sum(amount), avg(amount) FROM regional_sales GROUP BY country ORDER BY country",
    "SELECT activity_date, count(*) FROM user_analytics GROUP BY activity_date ORDER BY count(*) DESC, activity_date LIMIT 5",
    "SELECT region FROM sales_analytics GROUP BY region ORDER BY sum(quantity) DESC, region",
    "SELECT region, bool_and(quantity > 1), bool_or(sales_rep_id IS NULL), stddev(quantity), var_pop(unit_price) FROM sales_analytics GROUP BY region ORDER BY region",
    "SELECT type, count(*) FILTER (WHERE extract(hour FROM event_time) < 12) AS am, count(*) AS n FROM user_events GROUP BY type ORDER BY type",
    "SELECT quantity, count(*) FROM sales_analytics GROUP BY quantity ORDER BY quantity DESC LIMIT 3 OFFSET 2",
    "SELECT region, avg(quantity)::int AS q, round(avg(total_amount), 2) FROM sales_analytics GROUP BY region HAVING max(quantity) = 10 ORDER BY 3 DESC, 1",
    "SELECT activity_date, count(DISTINCT page_views / 10) FROM user_analytics GROUP BY activity_date ORDER BY 1 DESC LIMIT 7",
    "SELECT extract(isodow FROM event_time)::int AS d, count(*) FROM user_events GROUP BY 1 HAVING count(*) > 10 ORDER BY 2 DESC, 1",
    // GROUP BY including the distribution key: pushed down whole
    "SELECT user_id, sum(page_views) FROM user_analytics GROUP BY user_id ORDER BY user_id LIMIT 20",
    "SELECT user_uuid, count(*) AS n FROM user_events GROUP BY user_uuid ORDER BY n DESC, user_uuid LIMIT 10",
    "SELECT user_uuid, type, count(*) FROM user_events GROUP BY user_uuid, type HAVING count(*) > 2 ORDER BY 1, 2",
    "SELECT region, count(*), sum(amount) FROM regional_sales GROUP BY region ORDER BY region",
    "SELECT sale_date, count(*) FROM sales_analytics GROUP BY sale_date ORDER BY 2 DESC, 1 LIMIT 5",
    "SELECT user_uuid, count(*) FROM user_events GROUP BY 1 HAVING count(*) >= 8",
    "SELECT region, country, count(*) FROM regional_sales GROUP BY region, country ORDER BY 1, 2",
    "SELECT count(*) FROM user_events GROUP BY user_uuid ORDER BY 1 DESC LIMIT 3",
    "SELECT user_id % 3, user_id, max(username) FROM user_analytics GROUP BY user_id HAVING sum(page_views) > 95 ORDER BY 2",
];

const DISTINCT: &[&str] = &[
    "SELECT DISTINCT region FROM sales_analytics ORDER BY region",
    "SELECT DISTINCT region FROM sales_analytics",
    "SELECT DISTINCT type FROM user_events ORDER BY type DESC",
    "SELECT DISTINCT region, quantity FROM sales_analytics ORDER BY quantity, region",
    "SELECT DISTINCT country FROM regional_sales ORDER BY 1",
    "SELECT DISTINCT date_trunc('month', sale_date) AS m FROM sales_analytics ORDER BY m",
    "SELECT DISTINCT sales_rep_id FROM sales_analytics ORDER BY sales_rep_id DESC NULLS LAST LIMIT 10",
    "SELECT DISTINCT activity_date FROM user_analytics ORDER BY activity_date DESC LIMIT 5 OFFSET 3",
    "SELECT DISTINCT page_views / 10 AS d FROM user_analytics ORDER BY d",
    "SELECT DISTINCT extract(isodow FROM event_time) FROM user_events ORDER BY 1",
    "SELECT DISTINCT region FROM sales_analytics WHERE quantity > 9 ORDER BY region LIMIT 2",
    "SELECT DISTINCT lower(type) AS t, length(type) FROM user_events ORDER BY 2, 1",
    "SELECT DISTINCT quantity, sales_rep_id IS NULL AS no_rep FROM sales_analytics",
];

const ORDER_LIMIT: &[&str] = &[
    // A bare ORDER BY name is first an output column's name, implicit ones included: these
    // order by the text of the cast and by the count (parse_clause.c).
    "SELECT sale_id, total_amount::text FROM sales_analytics ORDER BY total_amount DESC, sale_id LIMIT 20",
    "SELECT sale_id, total_amount::text FROM sales_analytics ORDER BY total_amount, sale_id",
    "SELECT region, count(*) FROM sales_analytics GROUP BY region ORDER BY count DESC, region",
    "SELECT sale_id, sale_date, total_amount FROM sales_analytics ORDER BY total_amount DESC, sale_id LIMIT 20",
    "SELECT sale_id AS s, quantity * unit_price AS v FROM sales_analytics ORDER BY v DESC, s LIMIT 15",
    "SELECT sale_id, region, quantity FROM sales_analytics ORDER BY 3, 2, 1 LIMIT 25",
    "SELECT sale_id, quantity FROM sales_analytics ORDER BY quantity * product_id % 97, sale_id LIMIT 30",
    "SELECT sale_id FROM sales_analytics ORDER BY total_amount, sale_id LIMIT 10",
    "SELECT username FROM user_analytics ORDER BY page_views DESC, user_id LIMIT 10",
    "SELECT sale_id, sales_rep_id FROM sales_analytics ORDER BY sales_rep_id NULLS FIRST, sale_id LIMIT 30",
    "SELECT sale_id, sales_rep_id FROM sales_analytics ORDER BY sales_rep_id DESC NULLS LAST, sale_id LIMIT 30",
    "SELECT sale_id, sales_rep_id FROM sales_analytics ORDER BY sales_rep_id DESC, sale_id LIMIT 200",
    "SELECT sale_id, sales_rep_id FROM sales_analytics ORDER BY sales_rep_id, sale_id DESC OFFSET 2800",
    "SELECT sale_id, sales_rep_id FROM sales_analytics ORDER BY sales_rep_id ASC NULLS LAST, sale_id",
    "SELECT * FROM sales_analytics ORDER BY sale_id",
    "SELECT * FROM user_analytics ORDER BY activity_date DESC, page_views, user_id DESC",
    "SELECT * FROM user_events ORDER BY event_time, id LIMIT 50",
    // SELECT * with a LIMIT: the nodes' top rows found with * alone, the keys added to those
    "SELECT * FROM sales_analytics s WHERE s.region <> 'West' ORDER BY s.sales_rep_id DESC NULLS LAST, s.sale_id LIMIT 25 OFFSET 3",
    "SELECT * FROM user_analytics ORDER BY username DESC, user_id LIMIT 7",
    "SELECT * FROM regional_sales ORDER BY amount, sale_id FETCH FIRST 5 ROWS ONLY",
    "SELECT * FROM users ORDER BY created_at NULLS FIRST, user_uuid LIMIT 3 OFFSET 1",
    "SELECT id, user_uuid FROM user_events ORDER BY user_uuid, id LIMIT 40",
    "SELECT id FROM user_events ORDER BY id DESC LIMIT 10",
    "SELECT user_uuid, created_at FROM users ORDER BY created_at DESC, user_uuid LIMIT 10",
    "SELECT sale_id, amount FROM regional_sales ORDER BY amount DESC, sale_id LIMIT 10 OFFSET 5",
    "SELECT sale_id, region FROM sales_analytics ORDER BY sale_id LIMIT 0",
    "SELECT user_id, page_views FROM user_analytics ORDER BY page_views, user_id LIMIT ALL",
    "SELECT sale_id FROM sales_analytics ORDER BY sale_id OFFSET 5000",
    "SELECT sale_id FROM sales_analytics ORDER BY sale_id DESC LIMIT 20 OFFSET 2990",
    "SELECT user_id FROM user_analytics ORDER BY user_id OFFSET 995",
    "SELECT sale_id, sale_date FROM sales_analytics ORDER BY sale_date DESC, sale_id DESC LIMIT 15",
    "SELECT sale_id, region FROM regional_sales ORDER BY region, sale_id LIMIT 30 OFFSET 400",
    "SELECT unit_price, sale_date, sale_id FROM sales_analytics ORDER BY unit_price DESC, sale_date, sale_id LIMIT 25",
    "SELECT sale_id, quantity > 5 AS big FROM sales_analytics ORDER BY quantity > 5, sale_id LIMIT 10",
    "SELECT sale_id FROM sales_analytics ORDER BY sale_date - date '2024-01-01', sale_id DESC LIMIT 12",
    "SELECT id, event_time FROM user_events ORDER BY date_trunc('hour', event_time) DESC, id LIMIT 20",
    "SELECT sale_id, quantity FROM sales_analytics ORDER BY nullif(quantity, 5) NULLS FIRST, sale_id LIMIT 40",
    "SELECT sale_id, quantity FROM sales_analytics ORDER BY nullif(quantity, 5) DESC NULLS LAST, sale_id DESC LIMIT 40 OFFSET 10",
    "SELECT user_id FROM user_analytics ORDER BY user_id LIMIT 100000",
    "SELECT sale_id, total_amount FROM sales_analytics WHERE region = 'West' AND quantity > 8 ORDER BY total_amount DESC, sale_id LIMIT 10",
    "SELECT user_id, page_views::float8 / (session_duration + 1) AS r FROM user_analytics ORDER BY r, user_id LIMIT 20",
    "SELECT sale_id, amount FROM regional_sales ORDER BY sale_id",
    "SELECT user_uuid, id, event_time FROM user_events ORDER BY event_time DESC, id LIMIT 5 OFFSET 5995",
    "~SELECT region, quantity FROM sales_analytics WHERE quantity = 10 ORDER BY region",
    "~SELECT type FROM user_events ORDER BY type",
    // text order: the workers (and the oracle) use the C collation, i.e. byte order
    "SELECT username FROM user_analytics ORDER BY username LIMIT 30",
    "SELECT username, user_id FROM user_analytics ORDER BY username DESC LIMIT 30",
    "SELECT email FROM users ORDER BY email DESC LIMIT 20",
    "SELECT username FROM users ORDER BY username",
    "SELECT region, sale_id FROM sales_analytics ORDER BY CASE WHEN sale_id % 2 = 0 THEN lower(region) ELSE region END, sale_id LIMIT 40",
    "SELECT sale_id, CASE sale_id % 5 WHEN 0 THEN 'é' || region WHEN 1 THEN 'Z' || region WHEN 2 THEN 'a' || region WHEN 3 THEN '_' || region ELSE ' ' || region END AS t FROM sales_analytics ORDER BY t, sale_id LIMIT 60",
    "SELECT sale_id, CASE sale_id % 5 WHEN 0 THEN 'é' || region WHEN 1 THEN 'Z' || region WHEN 2 THEN 'a' || region WHEN 3 THEN '_' || region ELSE ' ' || region END AS t FROM sales_analytics ORDER BY t DESC, sale_id LIMIT 60",
    "SELECT country, region, sale_id FROM regional_sales ORDER BY country DESC, region, sale_id LIMIT 25",
    "SELECT type, id FROM user_events ORDER BY upper(substr(type, 2)) || type, id LIMIT 30",
    "SELECT username FROM user_analytics ORDER BY username COLLATE \"C\" DESC LIMIT 5",
    "SELECT sale_id FROM sales_analytics ORDER BY (CASE WHEN sale_id % 2 = 0 THEN region || chr(9) ELSE region END)::char(12), sale_id LIMIT 50",
    // binary merge keys: numeric scales and NaN, float NaN/-Infinity, negative ints, dates and
    // timestamps before 2000, intervals (1 month = 30 days)
    "SELECT sale_id, round(unit_price, (sale_id % 3)::int) AS r FROM sales_analytics ORDER BY r, sale_id LIMIT 40",
    "SELECT sale_id FROM sales_analytics ORDER BY CASE WHEN sale_id % 50 = 0 THEN 'NaN'::numeric ELSE unit_price - 100 END DESC, sale_id LIMIT 70",
    "SELECT user_id FROM user_analytics ORDER BY CASE WHEN user_id % 10 = 0 THEN 'NaN'::float8 WHEN user_id % 10 = 1 THEN '-Infinity' ELSE (page_views - 50)::float8 / 7 END, user_id LIMIT 150",
    "SELECT user_id FROM user_analytics ORDER BY CASE WHEN user_id % 10 = 0 THEN 'NaN'::float8 WHEN user_id % 10 = 1 THEN '-Infinity' ELSE (page_views - 50)::float8 / 7 END DESC, user_id LIMIT 150",
    "SELECT user_id, page_views - 50 AS d FROM user_analytics ORDER BY d, user_id LIMIT 30",
    "SELECT user_uuid FROM users ORDER BY created_at - interval '30 years', user_uuid LIMIT 20",
    "SELECT sale_id FROM sales_analytics ORDER BY sale_date - 10000 DESC, sale_id LIMIT 20",
    "SELECT id, event_time - timestamp '2024-02-01 12:00' AS d FROM user_events ORDER BY d DESC, id LIMIT 20",
    "SELECT user_id FROM user_analytics ORDER BY CASE WHEN user_id % 2 = 0 THEN interval '1 month' ELSE interval '29 days' + page_views * interval '1 hour' END, user_id LIMIT 60",
];

const PRUNING: &[&str] = &[
    "SELECT * FROM user_analytics WHERE user_id IN (1, 2, 3, 500, 999) ORDER BY user_id",
    "SELECT count(*), sum(page_views), avg(session_duration) FROM user_analytics WHERE user_id IN (10, 20, 30, 40, 50, 60)",
    "SELECT user_id, page_views FROM user_analytics WHERE user_id = 5 OR user_id = 600 OR user_id = 777 ORDER BY 1",
    "SELECT * FROM users WHERE user_uuid IN ('{u0}', '{u1}', '{u2}') ORDER BY username",
    "SELECT count(*) FROM user_events WHERE user_uuid IN ('{u3}', '{u4}', '{u5}', '{u6}')",
    "SELECT type, count(*) FROM user_events WHERE user_uuid = '{u0}' OR user_uuid = '{u1}' GROUP BY type ORDER BY type",
    "SELECT count(*), min(sale_date), max(sale_date) FROM sales_analytics WHERE sale_date BETWEEN '2024-01-15' AND '2024-02-15'",
    "SELECT region, count(*) FROM sales_analytics WHERE sale_date >= '2024-03-01' GROUP BY region ORDER BY region",
    "SELECT sale_id, sale_date FROM sales_analytics WHERE sale_date < '2023-12-01' ORDER BY sale_date, sale_id LIMIT 20",
    "SELECT sum(total_amount), avg(quantity) FROM sales_analytics WHERE sale_date > '2024-01-31' AND sale_date < '2024-03-02'",
    "SELECT count(*) FROM sales_analytics WHERE sale_date BETWEEN '2024-02-01' AND '2024-02-29'",
    "SELECT count(*), sum(quantity) FROM sales_analytics WHERE sale_date IN ('2024-01-05', '2024-03-05')",
    "SELECT sale_id FROM sales_analytics WHERE sale_date <= '2024-01-01' AND sale_date >= '2023-12-31' ORDER BY sale_id",
    "SELECT region, sum(amount) FROM regional_sales WHERE region IN ('US', 'JP', 'UK') GROUP BY region ORDER BY region",
    "SELECT count(*) FROM regional_sales WHERE region = 'CA' OR region = 'FR'",
    // contradictions: no rows, the right columns
    "SELECT * FROM user_analytics WHERE user_id = 1 AND user_id = 2",
    "SELECT user_id, username FROM user_analytics WHERE false",
    "SELECT * FROM user_analytics WHERE user_id = NULL",
    "SELECT count(*), sum(page_views), avg(page_views) FROM user_analytics WHERE user_id = 1 AND user_id = 2",
    "SELECT region, count(*) FROM sales_analytics WHERE false GROUP BY region",
    "SELECT * FROM sales_analytics WHERE sale_date = NULL",
    "SELECT sale_id FROM sales_analytics WHERE sale_date < '2024-01-01' AND sale_date >= '2024-03-01' ORDER BY sale_id",
    "SELECT * FROM users WHERE user_uuid = '{u0}' AND user_uuid = '{u1}'",
    "SELECT * FROM regional_sales WHERE region = 'US' AND region = 'UK'",
    "SELECT count(*) FROM regional_sales WHERE region = NULL",
    "SELECT DISTINCT region FROM sales_analytics WHERE false ORDER BY region",
    "SELECT u.username, e.type FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid WHERE false",
    "SELECT sum(amount), max(sale_date) FROM regional_sales WHERE false",
];

const EMPTY: &[&str] = &[
    "SELECT count(*), count(owner), sum(balance), avg(balance), min(id), max(updated_at) FROM accounts",
    "SELECT bool_and(balance > 0), bool_or(balance > 0), stddev(balance), var_pop(id), variance(balance), stddev_pop(id) FROM accounts",
    "SELECT count(DISTINCT owner), count(owner) FROM accounts",
    "SELECT sum(DISTINCT balance), avg(DISTINCT balance) FROM accounts",
    "SELECT owner, count(*) FROM accounts GROUP BY owner",
    "SELECT DISTINCT owner FROM accounts ORDER BY owner",
    "SELECT * FROM accounts ORDER BY id LIMIT 5",
    "SELECT count(*) FROM accounts HAVING count(*) > 0",
    "SELECT sum(balance) / count(*), coalesce(sum(balance), 0), count(*) + 1 FROM accounts",
    "SELECT count(*) FILTER (WHERE page_views > 1000), sum(page_views) FILTER (WHERE page_views > 1000) FROM user_analytics",
    "SELECT max(sales_rep_id), sum(sales_rep_id), avg(sales_rep_id), stddev(sales_rep_id), var_pop(sales_rep_id), count(sales_rep_id) FROM sales_analytics WHERE sales_rep_id IS NULL",
    "SELECT count(sales_rep_id), count(*) FROM sales_analytics WHERE sale_id % 17 = 0",
    "SELECT stddev(page_views), stddev_pop(page_views), var_samp(page_views), var_pop(page_views) FROM user_analytics WHERE user_id IN (1, 2)",
    "SELECT stddev(page_views), var_pop(page_views), avg(page_views) FROM user_analytics WHERE user_id IN (1, 5)",
    "SELECT stddev(unit_price), var_pop(unit_price) FROM sales_analytics WHERE sale_id IN (1, 2, 3) AND sale_date >= '2023-01-01'",
    "SELECT count(*), max(amount) FROM regional_sales WHERE amount < 0",
    "SELECT type, count(*) FROM user_events WHERE event_time < '2000-01-01' GROUP BY type",
    "SELECT min(username), max(activity_date), sum(user_id) FROM user_analytics WHERE page_views < 0",
    "SELECT count(*) FROM accounts",
];

const JOINS: &[&str] = &[
    "SELECT count(*) FROM users u JOIN user_events e ON u.user_uuid = e.user_uuid",
    "SELECT u.username, e.type, e.event_time FROM users u JOIN user_events e ON u.user_uuid = e.user_uuid WHERE u.user_uuid = '{u0}' ORDER BY e.event_time, e.id",
    "SELECT u.username, count(*) FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid WHERE u.user_uuid IN ('{u1}', '{u2}', '{u3}') GROUP BY u.username ORDER BY u.username",
    "SELECT u.username, count(*) AS n FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid GROUP BY u.username ORDER BY n DESC, u.username LIMIT 10",
    "SELECT u.user_uuid, max(e.event_time) AS last FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid GROUP BY u.user_uuid ORDER BY last DESC, u.user_uuid LIMIT 5",
    "SELECT u.email, e.id FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid WHERE e.type = 'purchase' ORDER BY e.event_time DESC, e.id LIMIT 20",
    "SELECT count(*), count(e.id), count(DISTINCT u.user_uuid) FROM users u LEFT JOIN user_events e ON e.user_uuid = u.user_uuid",
    "SELECT u.username FROM users u LEFT JOIN user_events e ON e.user_uuid = u.user_uuid WHERE e.id IS NULL ORDER BY u.username LIMIT 20",
    "SELECT date_trunc('month', e.event_time) AS m, count(DISTINCT e.user_uuid) FROM user_events e JOIN users u ON u.user_uuid = e.user_uuid GROUP BY 1 ORDER BY 1",
    "SELECT e.type, min(u.created_at), max(e.event_time - u.created_at) FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid GROUP BY e.type ORDER BY 1",
    "SELECT count(*) FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid AND e.type = 'login' WHERE u.created_at > '2023-06-01'",
    "SELECT u.username, e.type FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid WHERE u.user_uuid = '{u4}' OR u.user_uuid = '{u5}'",
    "SELECT DISTINCT e.type FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid WHERE u.username LIKE 'user_1%' ORDER BY 1",
    // subqueries and CTEs pinned to one node or correlated on the key
    "WITH e AS (SELECT * FROM user_events WHERE user_uuid = '{u0}') SELECT type, count(*) FROM e GROUP BY type",
    "SELECT u.username, (SELECT count(*) FROM user_events e WHERE e.user_uuid = '{u1}') FROM users u WHERE u.user_uuid = '{u1}'",
    "SELECT count(*) FROM users u WHERE u.user_uuid = '{u1}' AND EXISTS (SELECT 1 FROM user_events e WHERE e.user_uuid = '{u1}')",
    "SELECT * FROM (SELECT type, count(*) AS n FROM user_events WHERE user_uuid = '{u2}' GROUP BY type) s ORDER BY n DESC, type",
    "WITH u AS (SELECT * FROM users WHERE user_uuid = '{u3}') SELECT u.username, e.type FROM u JOIN user_events e ON e.user_uuid = u.user_uuid WHERE e.user_uuid = '{u3}'",
    "SELECT count(*) FROM users u WHERE EXISTS (SELECT 1 FROM user_events e WHERE e.user_uuid = u.user_uuid AND e.type = 'login')",
    // with the reference table
    "SELECT c.country, count(*), sum(s.total_amount) FROM sales_analytics s JOIN customers c ON c.customer_id = s.customer_id GROUP BY c.country ORDER BY c.country",
    "SELECT s.sale_id, c.name FROM sales_analytics s JOIN customers c ON c.customer_id = s.customer_id ORDER BY s.total_amount DESC, s.sale_id LIMIT 10",
    "SELECT r.region, c.country, count(*) FROM regional_sales r JOIN customers c ON c.country = r.country GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT a.user_id, c.name, a.page_views FROM user_analytics a JOIN customers c ON c.customer_id = a.user_id ORDER BY a.page_views DESC, a.user_id LIMIT 10",
    "SELECT c.country, avg(a.session_duration) FROM user_analytics a JOIN customers c ON c.customer_id = a.user_id GROUP BY c.country ORDER BY 1",
    "SELECT s.region, count(DISTINCT c.country) FROM sales_analytics s JOIN customers c ON c.customer_id = s.customer_id GROUP BY s.region ORDER BY 1",
    "SELECT s.sale_id, c.country FROM sales_analytics s JOIN customers c ON c.customer_id = s.customer_id WHERE s.sale_date BETWEEN '2024-02-10' AND '2024-03-10' AND c.lifetime_value > 5000",
];

/// Subqueries in FROM and CTEs that keep each row on its node, pushed down whole (Citus's
/// subquery pushdown): joined on the key they pass through, or read alone under a merge.
const PUSHDOWN: &[&str] = &[
    "SELECT count(*) FROM (SELECT * FROM user_events WHERE type = 'login') e",
    "SELECT type, count(*) FROM (SELECT * FROM user_events WHERE event_time > '2024-01-01') e GROUP BY type ORDER BY type",
    "SELECT u.username, s.n FROM users u JOIN (SELECT user_uuid, count(*) AS n FROM user_events GROUP BY user_uuid) s ON s.user_uuid = u.user_uuid ORDER BY s.n DESC, u.username LIMIT 10",
    "WITH s AS (SELECT user_uuid, count(*) AS n FROM user_events GROUP BY user_uuid) SELECT avg(n), max(n), count(*) FROM users JOIN s USING (user_uuid)",
    "WITH s AS (SELECT user_uuid, count(*) AS n, max(event_time) AS last FROM user_events GROUP BY user_uuid) SELECT n, count(*) FROM s GROUP BY n ORDER BY n",
    "WITH s AS (SELECT user_uuid AS who, count(*) AS n FROM user_events GROUP BY 1) SELECT u.username, s.n FROM users u JOIN s ON s.who = u.user_uuid WHERE s.n >= 3 ORDER BY 2 DESC, 1 LIMIT 5",
    "SELECT s.* FROM (SELECT user_uuid, min(event_time) AS first FROM user_events GROUP BY user_uuid) s WHERE s.user_uuid = '{u0}'",
    "SELECT u.username, s.first FROM users u JOIN (SELECT user_uuid, min(event_time) AS first FROM user_events GROUP BY user_uuid) s USING (user_uuid) WHERE u.user_uuid IN ('{u1}', '{u2}') ORDER BY 1",
    "SELECT count(*) FROM (SELECT DISTINCT user_uuid, type FROM user_events) d",
    "SELECT type, count(*) FROM (SELECT DISTINCT ON (user_uuid) user_uuid, type FROM user_events ORDER BY user_uuid, event_time, id) f GROUP BY type ORDER BY type",
    "SELECT count(*) FROM users u JOIN (SELECT e.user_uuid, e.type FROM user_events e JOIN users u2 ON u2.user_uuid = e.user_uuid WHERE u2.username LIKE 'user_1%') x ON x.user_uuid = u.user_uuid",
    "WITH t AS (SELECT user_uuid, type FROM user_events), c AS (SELECT user_uuid, count(*) AS n FROM t GROUP BY user_uuid) SELECT sum(n) FROM c",
    "SELECT x.user_uuid, x.r FROM (SELECT user_uuid, id, row_number() OVER (PARTITION BY user_uuid ORDER BY event_time, id) AS r FROM user_events) x WHERE x.r = 1 ORDER BY x.user_uuid LIMIT 10",
    "SELECT c.country, count(*) FROM (SELECT customer_id, country FROM customers) c JOIN sales_analytics s ON s.customer_id = c.customer_id GROUP BY c.country ORDER BY 1",
    "WITH big AS (SELECT * FROM customers WHERE lifetime_value > 5000) SELECT count(*) FROM sales_analytics s JOIN big ON big.customer_id = s.customer_id",
    "SELECT count(*), sum(v) FROM (SELECT page_views + session_duration AS v FROM user_analytics WHERE actions_count > 3) a",
    "SELECT a.user_id, a.total FROM (SELECT user_id, sum(page_views) AS total FROM user_analytics GROUP BY user_id) a ORDER BY a.total DESC, a.user_id LIMIT 5",
    "SELECT region, sum(amount) FROM (SELECT region, amount FROM regional_sales WHERE amount > 100) r GROUP BY region ORDER BY region",
    "SELECT count(*) FROM (SELECT * FROM sales_analytics WHERE sale_date >= '2024-03-01') s",
];

const RANGE_LIST: &[&str] = &[
    "SELECT date_trunc('month', sale_date) AS m, region, count(*), sum(total_amount) FROM sales_analytics GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT extract(year FROM sale_date) y, extract(month FROM sale_date) m, avg(quantity) FROM sales_analytics GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT region, count(*), avg(amount), stddev(amount) FROM regional_sales GROUP BY region ORDER BY region",
    "SELECT date_trunc('month', sale_date)::date AS m, sum(amount) FROM regional_sales GROUP BY 1 ORDER BY 1",
    "SELECT count(*), sum(amount), min(sale_date), max(sale_date) FROM regional_sales",
    "SELECT region, max(amount) - min(amount) AS spread FROM regional_sales GROUP BY region HAVING count(*) > 200 ORDER BY 2 DESC, 1",
    "SELECT sale_date, sum(quantity) FROM sales_analytics WHERE sale_date BETWEEN '2024-01-25' AND '2024-02-05' GROUP BY sale_date ORDER BY sale_date",
    "SELECT count(*), sum(total_amount), avg(unit_price), var_samp(quantity) FROM sales_analytics",
    "SELECT country, count(DISTINCT region) FROM regional_sales GROUP BY country ORDER BY 1",
    "SELECT region, sale_id, amount FROM regional_sales ORDER BY amount, sale_id LIMIT 12",
    "SELECT sale_id, sale_date, region FROM sales_analytics WHERE sale_date >= '2024-03-25' ORDER BY sale_date, sale_id LIMIT 20 OFFSET 10",
    "SELECT count(*) FILTER (WHERE region IN ('US', 'CA')), count(*) FILTER (WHERE region NOT IN ('US', 'CA', 'UK', 'DE', 'FR')) FROM regional_sales",
];

/// Finals shardgate computes itself (count, and sum/min/max of integers, grouped by integer
/// columns; plan::merge::local): NULL groups and NULL inputs, empty inputs, every ORDER BY form,
/// LIMIT/OFFSET, int2/int4/int8, and outputs PostgreSQL types otherwise (numeric sums, text
/// groups) that must fall back to the merge node.
const INTEGER_FINALS: &[&str] = &[
    "SELECT quantity, count(*), sum(product_id), min(sales_rep_id), max(sales_rep_id) FROM sales_analytics GROUP BY quantity ORDER BY 1",
    "SELECT sales_rep_id, count(*) AS n, min(quantity) FROM sales_analytics GROUP BY sales_rep_id ORDER BY n DESC, sales_rep_id NULLS FIRST",
    "SELECT count(*) AS n, sales_rep_id FROM sales_analytics GROUP BY 2 ORDER BY 2 DESC NULLS LAST LIMIT 4 OFFSET 1",
    "SELECT page_views, count(*) FROM user_analytics GROUP BY page_views ORDER BY count(*) DESC, page_views LIMIT 5",
    "SELECT count(*), sum(page_views), min(session_duration), max(actions_count) FROM user_analytics WHERE page_views < -5",
    "SELECT page_views, sum(session_duration) FROM user_analytics WHERE page_views < -5 GROUP BY page_views",
    "SELECT min(quantity::int2), max(quantity::int2), count(quantity), sum(quantity::int2) FROM sales_analytics",
    "SELECT quantity % 3 AS q, count(*) FROM sales_analytics GROUP BY 1 ORDER BY q",
    "SELECT sum(quantity) FROM sales_analytics GROUP BY product_id % 4 ORDER BY 1",
    "SELECT product_id % 5, quantity, count(*) FROM sales_analytics GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 7",
    "SELECT page_views FROM user_analytics GROUP BY page_views ORDER BY 1 DESC LIMIT 3",
    "SELECT max(sale_id), min(sale_id), count(DISTINCT quantity) FROM sales_analytics",
    "SELECT quantity, sum(sale_id), max(region) FROM sales_analytics GROUP BY quantity ORDER BY 1",
    "SELECT region, count(*) FROM sales_analytics GROUP BY region ORDER BY 2 DESC, 1",
    "SELECT count(*) FROM sales_analytics GROUP BY sales_rep_id IS NULL ORDER BY 1",
];

// ---------- one test per theme ----------

suite! { run_theme:
    aggregates = AGGREGATES;
    expressions_over_aggregates = EXPRESSIONS;
    group_by_and_having = GROUP_BY;
    select_distinct = DISTINCT;
    order_by_limit_offset = ORDER_LIMIT;
    pruning_and_contradictions = PRUNING;
    empty_inputs = EMPTY;
    co_located_and_reference_joins = JOINS;
    subqueries_and_ctes_pushed_down = PUSHDOWN;
    range_and_list_tables = RANGE_LIST;
    row_locks_keep_the_merge = LOCKING;
    distinct_over_key_groups = DISTINCT_OVER_KEY_GROUPS;
    integer_finals = INTEGER_FINALS;
}

/// DISTINCT above a GROUP BY that holds the key (issue 12): each node's groups are whole, the
/// DISTINCT over them is merged.
const DISTINCT_OVER_KEY_GROUPS: &[&str] = &[
    "SELECT DISTINCT count(*) FROM user_events GROUP BY user_uuid",
    "SELECT DISTINCT count(*) AS n FROM user_events GROUP BY user_uuid ORDER BY n",
    "SELECT DISTINCT count(*) FROM user_events GROUP BY user_uuid HAVING count(*) > 1 ORDER BY 1 LIMIT 2",
    "SELECT DISTINCT sum(page_views) / 10 FROM user_analytics GROUP BY user_id ORDER BY 1",
    "SELECT DISTINCT user_id % 3, count(*) FROM user_analytics GROUP BY user_id ORDER BY 1, 2",
    "SELECT DISTINCT count(*) FROM sales_analytics GROUP BY sale_date ORDER BY 1",
    "SELECT DISTINCT count(*), max(type) FROM user_events GROUP BY user_uuid, type ORDER BY 1, 2 OFFSET 1",
];

/// Row locks over several nodes (issue 12): each node locks the rows it returns, the merge
/// orders them; a LIMIT/OFFSET would lock rows PostgreSQL does not, so those are refused.
const LOCKING: &[&str] = &[
    "SELECT user_uuid FROM users ORDER BY user_uuid FOR UPDATE",
    "SELECT user_id, activity_date FROM user_analytics ORDER BY user_id DESC, activity_date FOR SHARE",
    "SELECT u.user_uuid, u.username FROM users u WHERE u.email LIKE '%1%' ORDER BY u.username, u.user_uuid FOR UPDATE OF u",
    "SELECT e.id, e.type FROM user_events e JOIN users u ON u.user_uuid = e.user_uuid ORDER BY e.id FOR SHARE OF e",
    "SELECT user_uuid FROM users ORDER BY user_uuid FOR SHARE SKIP LOCKED",
    "SELECT user_uuid FROM users ORDER BY user_uuid FOR UPDATE NOWAIT",
    "SELECT sale_id, sale_date FROM sales_analytics WHERE sale_date < '2024-03-15' ORDER BY sale_date, sale_id FOR UPDATE",
    "SELECT user_uuid FROM users WHERE user_uuid = '{u0}' ORDER BY user_uuid LIMIT 1 FOR UPDATE",
];

#[test]
fn at_least_150_queries() {
    let themes = [
        AGGREGATES,
        EXPRESSIONS,
        GROUP_BY,
        DISTINCT,
        ORDER_LIMIT,
        PRUNING,
        EMPTY,
    ];
    let n: usize = themes
        .iter()
        .chain(&[JOINS, RANGE_LIST])
        .map(|t| t.len())
        .sum();
    println!("{n} differential queries (+ parameters, refusals, EXPLAIN, known bugs)");
    assert!(n >= 150, "{n}");
}

#[tokio::test]
async fn with_parameters() {
    let (sg, or) = (connect().await, oracle().await);
    let mut fails = Vec::new();
    let d1 = chrono::NaiveDate::from_ymd_opt(2024, 1, 20).unwrap();
    let d2 = chrono::NaiveDate::from_ymd_opt(2024, 3, 10).unwrap();
    let ids: Vec<i64> = vec![1, 2, 3, 400, 999];
    let cases: Vec<(&str, Vec<&(dyn ToSql + Sync)>)> = vec![
        ("SELECT * FROM user_analytics WHERE user_id = $1", vec![&5i64]),
        ("SELECT count(*), sum(page_views), avg(page_views) FROM user_analytics WHERE user_id > $1", vec![&500i64]),
        ("SELECT sale_id, total_amount FROM sales_analytics ORDER BY total_amount DESC, sale_id LIMIT $1", vec![&7i64]),
        ("SELECT sale_id FROM sales_analytics ORDER BY sale_id DESC LIMIT $1 OFFSET $2", vec![&10i64, &25i64]),
        ("SELECT region, count(*) FROM sales_analytics WHERE quantity > $1 GROUP BY region HAVING count(*) > $2 ORDER BY region", vec![&3i32, &10i64]),
        ("SELECT count(*), min(sale_date), max(sale_date) FROM sales_analytics WHERE sale_date BETWEEN $1 AND $2", vec![&d1, &d2]),
        ("SELECT sale_id, amount FROM regional_sales WHERE region = $1 ORDER BY amount DESC, sale_id LIMIT 5", vec![&"US"]),
        ("SELECT user_id, page_views FROM user_analytics WHERE user_id = ANY($1) ORDER BY user_id", vec![&ids]),
        ("SELECT type, count(*) FROM user_events WHERE type <> $1 GROUP BY type ORDER BY 2 DESC, 1", vec![&"view"]),
    ];
    for (sql, params) in &cases {
        check(&sg, &or, sql, params, OracleError::Mismatch, &mut fails).await;
    }
    report("with_parameters (binary only)", cases.len(), &fails);
}

const REFUSED: &[&str] = &[
    "SELECT user_uuid FROM users ORDER BY user_uuid LIMIT 3 FOR SHARE",
    "SELECT user_uuid FROM users ORDER BY user_uuid LIMIT 7 FOR UPDATE",
    "SELECT user_uuid FROM users ORDER BY user_uuid OFFSET 598 FOR SHARE",
    "SELECT user_uuid FROM users ORDER BY user_uuid FETCH FIRST 3 ROWS ONLY FOR UPDATE",
    // NATURAL JOIN's columns are only known from the catalog.
    "SELECT count(*) FROM users u NATURAL JOIN user_events e",
    // PostgreSQL averages real in float8; the nodes' float4 sums have lost those digits.
    "SELECT avg(unit_price::real) FROM sales_analytics",
    "SELECT region, count(*) FROM sales_analytics GROUP BY ROLLUP (region)",
    "SELECT count(DISTINCT (region, quantity)) FROM sales_analytics",
    "SELECT count(*) FROM users u JOIN user_analytics a ON a.username = u.username",
    "SELECT s.sale_id, r.region FROM sales_analytics s JOIN regional_sales r ON r.sale_id = s.sale_id",
    "SELECT e.id, a.user_id FROM user_events e JOIN user_analytics a ON a.username = e.type",
    "SELECT sale_id, row_number() OVER (ORDER BY sale_id) FROM sales_analytics",
    "SELECT user_id, rank() OVER (PARTITION BY activity_date ORDER BY page_views) FROM user_analytics",
    "SELECT sum(page_views) OVER () FROM user_analytics",
    "SELECT region FROM sales_analytics UNION SELECT region FROM regional_sales",
    "SELECT user_id FROM user_analytics UNION ALL SELECT user_id FROM user_analytics",
    "SELECT region FROM sales_analytics INTERSECT SELECT region FROM sales_analytics",
    "SELECT array_agg(user_id) FROM user_analytics",
    "SELECT region, array_agg(sale_id) FROM sales_analytics GROUP BY region",
    "SELECT string_agg(username, ',') FROM user_analytics",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY page_views) FROM user_analytics",
    "SELECT DISTINCT ON (region) region, sale_id FROM sales_analytics ORDER BY region, sale_id",
    "SELECT count(DISTINCT region), count(DISTINCT product_id) FROM sales_analytics",
    "SELECT count(DISTINCT owner), sum(DISTINCT balance) FROM accounts",
    // subqueries in FROM that need rows of several nodes at once
    "SELECT count(*) FROM (SELECT type, count(*) FROM user_events GROUP BY type) s",
    "SELECT count(*) FROM (SELECT * FROM user_events LIMIT 10) e",
    "WITH s AS (SELECT type FROM user_events UNION SELECT type FROM user_events) SELECT count(*) FROM s",
    "SELECT count(*) FROM (SELECT DISTINCT type FROM user_events) d",
    "SELECT count(*) FROM users u JOIN (SELECT user_uuid, count(*) AS n FROM user_events GROUP BY user_uuid) s ON s.n = 3",
    "SELECT count(*) FROM (SELECT * FROM customers LIMIT 3) c JOIN sales_analytics s ON s.customer_id = c.customer_id",
    // outer joins that keep rows present on every node
    "SELECT count(*) FROM (SELECT * FROM customers) c LEFT JOIN sales_analytics s ON s.customer_id = c.customer_id",
    "WITH c AS (SELECT * FROM customers) SELECT count(*) FROM c LEFT JOIN sales_analytics s ON s.customer_id = c.customer_id",
    "SELECT g, count(s.sale_id) FROM generate_series(1, 3) g LEFT JOIN sales_analytics s ON s.quantity = g GROUP BY g",
    "SELECT count(*) FROM (VALUES (1), (2)) v (x) LEFT JOIN user_analytics a ON a.user_id = v.x",
    // writes inside WITH
    "WITH d AS (DELETE FROM user_analytics WHERE false RETURNING *) SELECT count(*) FROM d",
];

/// Refused queries must get 0A000 in both protocols (a refusal is fine, a wrong answer is not).
#[tokio::test]
async fn refused_with_0a000() {
    let sg = connect().await;
    let mut fails = Vec::new();
    for sql in REFUSED {
        let text = text(&sg, sql).await.map(|t| t.1.len());
        let bin = binary(&sg, sql, &[]).await.map(|b| b.1.len());
        for (how, r) in [("text", text), ("binary", bin)] {
            match r {
                Err(e) if e.code == "0A000" => {}
                Err(e) => fails.push(format!("[{how}] {sql}: {}", e.text)),
                Ok(n) => fails.push(format!("[{how}] {sql}: answered with {n} rows")),
            }
        }
    }
    report("refused_with_0a000", REFUSED.len(), &fails);
}

/// Queries the issue neither lists as answered nor as refused: either 0A000 or the right answer.
const REFUSED_OR_RIGHT: &[&str] = &[
    "~SELECT user_uuid, id, row_number() OVER (PARTITION BY user_uuid ORDER BY event_time, id) FROM user_events",
    "SELECT count(*) FROM (SELECT DISTINCT region FROM sales_analytics) s",
    "SELECT bit_and(quantity), bit_or(quantity) FROM sales_analytics",
];

suite! { run_refused_or_right:
    refused_or_right = REFUSED_OR_RIGHT;
}

/// Row locks PostgreSQL itself refuses (with aggregates, DISTINCT, GROUP BY): the same error.
const LOCKING_REFUSED_BY_POSTGRES: &[&str] = &[
    "SELECT count(*) FROM users FOR UPDATE",
    "SELECT DISTINCT username FROM users FOR SHARE",
    "SELECT username, count(*) FROM users GROUP BY username ORDER BY 1 FOR UPDATE",
    "SELECT user_uuid, count(*) FROM user_events GROUP BY user_uuid ORDER BY 1 FOR SHARE",
];

suite! { run_refused_or_right_or_same_error:
    row_locks_postgres_refuses = LOCKING_REFUSED_BY_POSTGRES;
}

#[tokio::test]
async fn explain_shows_the_nodes() {
    let sg = connect().await;
    let mut fails = Vec::new();
    let queries = [
        "EXPLAIN SELECT count(*), avg(page_views) FROM user_analytics",
        "EXPLAIN SELECT region, sum(quantity) FROM sales_analytics GROUP BY region HAVING count(*) > 1 ORDER BY 2 DESC",
        "EXPLAIN SELECT sale_id FROM sales_analytics ORDER BY total_amount DESC, sale_id LIMIT 10",
        "EXPLAIN ANALYZE SELECT count(DISTINCT type) FROM user_events",
        "EXPLAIN SELECT u.username, count(*) FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid GROUP BY 1",
    ];
    for sql in queries {
        match text(&sg, sql).await {
            Ok((_, rows, _)) => {
                let plan: Vec<String> = rows.into_iter().flatten().flatten().collect();
                let plan = plan.join("\n");
                if plan.is_empty() || !["w1", "w2", "w3"].iter().all(|n| plan.contains(n)) {
                    fails.push(format!("{sql}: the plan does not name every node:\n{plan}"));
                }
            }
            Err(e) => fails.push(format!("{sql}: {}", e.text)),
        }
    }
    report("explain_shows_the_nodes", queries.len(), &fails);
}

/// EXPLAIN's options reach the nodes' EXPLAIN, `(ANALYZE)` runs the statement, and a format
/// shardgate cannot print is refused rather than answered in text.
#[tokio::test]
async fn explain_honours_its_options() {
    let sg = connect().await;
    let plan = |r: Res<String, Vec<Option<String>>>| -> String {
        match r {
            Ok((_, rows, _)) => rows
                .into_iter()
                .flatten()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => panic!("{}", e.text),
        }
    };
    let costs_off = plan(
        text(
            &sg,
            "EXPLAIN (COSTS OFF) SELECT count(*) FROM user_analytics",
        )
        .await,
    );
    assert!(!costs_off.contains("cost="), "{costs_off}");
    let analyzed = plan(
        text(
            &sg,
            "EXPLAIN (ANALYZE, TIMING OFF) SELECT count(*) FROM user_analytics",
        )
        .await,
    );
    assert!(analyzed.contains("actual rows="), "{analyzed}");
    assert!(analyzed.contains("Node w3: rows="), "{analyzed}");
    let buffers = plan(
        text(
            &sg,
            "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM user_analytics WHERE user_id = 5",
        )
        .await,
    );
    assert!(buffers.contains("Buffers:"), "{buffers}");
    // JSON: one json value, the distributed plan beside the node's own; ANALYZE gives each
    // node's rows and time. The extended protocol describes the column as json (114).
    let json = plan(
        text(
            &sg,
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM user_analytics",
        )
        .await,
    );
    assert!(json.starts_with('['), "{json}");
    for want in [
        "\"Distributed Plan\"",
        "\"Node Runs\"",
        "\"Node Plan\"",
        "\"Node Type\": \"Aggregate\"",
    ] {
        assert!(json.contains(want), "{want}: {json}");
    }
    let st = sg
        .prepare("EXPLAIN (FORMAT JSON) SELECT count(*) FROM user_analytics")
        .await
        .expect("prepare");
    assert_eq!(st.columns()[0].type_().oid(), 114);
    let yaml = plan(
        text(
            &sg,
            "EXPLAIN (FORMAT YAML, COSTS OFF) SELECT * FROM user_analytics WHERE user_id = 5",
        )
        .await,
    );
    assert!(yaml.starts_with("- Distributed Plan: "), "{yaml}");
    assert!(!yaml.contains("Total Cost"), "{yaml}");
    let xml = plan(text(&sg, "EXPLAIN (FORMAT XML) SELECT 1 FROM user_analytics").await);
    assert!(xml.contains("<Node-Type>"), "{xml}");
    match text(&sg, "EXPLAIN (FORMAT html) SELECT 1").await {
        Err(e) => assert_eq!(e.code, "22023", "{}", e.text),
        Ok((_, rows, _)) => panic!("FORMAT html answered: {rows:?}"),
    }
}

// ---------- known bugs: kept in the suite, ignored until fixed ----------

/// WRONG ANSWERS: the final query substitutes avg's `sum / count` (and variance's `numer /
/// denom`) without parentheses (src/plan/merge/ `finish`), so `::`, `^` or a division by the
/// aggregate apply to the denominator only.
const BUG_AVG_PARENS: &[&str] = &[
    "SELECT avg(quantity) * 2, avg(quantity)::numeric(10,1), sum(quantity)::float8 / count(*) FROM sales_analytics",
    "SELECT region, avg(quantity)::numeric(10,1) FROM sales_analytics GROUP BY region ORDER BY region",
    "SELECT 100 / avg(quantity) FROM sales_analytics",
    "SELECT count(*) / avg(quantity) FROM sales_analytics",
    "SELECT avg(quantity) ^ 2 FROM sales_analytics",
    "SELECT var_pop(quantity)::numeric(10,2), variance(unit_price)::numeric(10,1) FROM sales_analytics",
    "SELECT region FROM sales_analytics GROUP BY region HAVING 100 / avg(quantity) < 18 ORDER BY 1",
    "SELECT avg(quantity)::text FROM sales_analytics",
];

// Queries that once gave wrong answers or were refused though the issue says they must be
// answered; kept as regressions.
suite! { run_theme:
    regression_avg_and_variance_keep_parentheses = BUG_AVG_PARENS;
    regression_distinct_on_key_with_order_by = &[
        "SELECT DISTINCT region FROM regional_sales ORDER BY 1",
        "SELECT DISTINCT user_uuid FROM user_events ORDER BY user_uuid LIMIT 25",
        "SELECT DISTINCT region, country FROM regional_sales WHERE amount > 900 ORDER BY country DESC, region",
        "SELECT DISTINCT user_id FROM user_analytics ORDER BY 1 LIMIT 3",
        "SELECT DISTINCT sale_date FROM sales_analytics ORDER BY 1 LIMIT 3",
    ];
    regression_join_using_on_key = &[
        "SELECT e.type, count(*) FROM users u JOIN user_events e USING (user_uuid) GROUP BY e.type ORDER BY e.type",
        "SELECT e.type, count(*) FROM users u JOIN user_events e USING (user_uuid) WHERE user_uuid = '{u0}' GROUP BY e.type",
    ];
    regression_fetch_first = &[
        "SELECT user_id, session_duration FROM user_analytics ORDER BY session_duration DESC, user_id FETCH FIRST 5 ROWS ONLY",
    ];
    regression_distinct_aggregates = &[
        "SELECT count(DISTINCT customer_id) FILTER (WHERE quantity > 5) FROM sales_analytics",
        "SELECT stddev(DISTINCT quantity), count(DISTINCT quantity) FROM sales_analytics",
    ];
    regression_correlated_subquery_on_key = &[
        "SELECT u.username, (SELECT count(*) FROM user_events e WHERE e.user_uuid = u.user_uuid) FROM users u WHERE u.user_uuid = '{u1}'",
    ];
    regression_reference_subquery = &[
        "SELECT count(*) FROM sales_analytics s WHERE s.customer_id IN (SELECT customer_id FROM customers WHERE country = 'US')",
        "SELECT count(*) FROM sales_analytics s WHERE EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = s.customer_id AND c.country = 'US')",
    ];
}

suite! { run_theme ignored:
    // float aggregates over non-integral values differ from PostgreSQL's in the last digits
    // (summation order; PostgreSQL's Youngs-Cramer variance vs shardgate's exact one). Not a
    // bug; the comparison is not loosened, the queries are kept here as a record.
    floats_last_digit ("float aggregates differ in the last digit (summation order), not a bug") = &[
        "SELECT var_pop(session_duration::float8) FROM user_analytics",
        "SELECT stddev(unit_price::float8), variance(unit_price::float8), avg(unit_price::float8), sum(unit_price::float8) FROM sales_analytics",
        "SELECT sum(unit_price::real), stddev_pop(unit_price::real) FROM sales_analytics",
    ];
}

/// Partial rows a merge must hold are bounded by server.max_buffered_rows: past it the query
/// fails with 53000 and the session lives on; streamed merges (ORDER BY) are not bounded.
#[tokio::test]
async fn merge_buffer_bound_gives_53000() {
    let toml = common::env().toml.replacen(
        "pool_size = 16\n",
        "pool_size = 16\nmax_buffered_rows = 10\n",
        1,
    );
    assert!(
        toml.contains("max_buffered_rows = 10"),
        "config has a [server] pool_size line"
    );
    let (port, stop, _task) = common::extra_server_with(toml).await;
    let sg = common::connect_to(port).await.expect("connect");
    let many_groups = "SELECT username, count(*) FROM user_analytics GROUP BY username";
    match sg.simple_query(many_groups).await {
        Err(e) => assert_eq!(sqlstate(&e), "53000", "{}", describe(&e)),
        Ok(_) => panic!("more than 10 partial rows were merged"),
    }
    let n = sg
        .simple_query("SELECT count(*) FROM user_analytics")
        .await
        .expect("3 partial rows fit");
    assert!(!n.is_empty());
    let all = sg
        .query(
            "SELECT user_id FROM user_analytics ORDER BY user_id, activity_date",
            &[],
        )
        .await
        .expect("a streamed merge is not bounded");
    assert!(all.len() > 10);
    let _ = stop.send(());
}

/// One row as text, whatever its int or text columns.
fn row_text(r: &tokio_postgres::Row) -> String {
    (0..r.len())
        .map(|i| {
            r.try_get::<_, Option<i64>>(i)
                .map(|v| format!("{v:?}"))
                .or_else(|_| r.try_get::<_, Option<i32>>(i).map(|v| format!("{v:?}")))
                .or_else(|_| r.try_get::<_, Option<String>>(i).map(|v| format!("{v:?}")))
                .unwrap_or_else(|e| panic!("column {i}: {e}"))
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Execute with a row limit (tokio-postgres's portals, as asyncpg's and pgjdbc's cursors
/// fetch): merged and concatenated results come in batches of 7, each but the last ending in
/// PortalSuspended, together the oracle's rows in the oracle's order.
#[tokio::test]
async fn portals_fetch_a_multi_node_result_in_batches() {
    let (mut sg, or) = (connect().await, oracle().await);
    for sql in [
        "SELECT sale_id, total_amount::text FROM sales_analytics ORDER BY total_amount DESC, sale_id",
        "SELECT region, count(*), sum(quantity) FROM sales_analytics GROUP BY region ORDER BY region",
        "SELECT user_id, page_views FROM user_analytics WHERE page_views > $1 ORDER BY user_id, activity_date",
    ] {
        let params: Vec<&(dyn ToSql + Sync)> = if sql.contains("$1") {
            vec![&50i32]
        } else {
            vec![]
        };
        let tx = sg.transaction().await.expect("begin");
        let portal = tx.bind(sql, &params).await.expect(sql);
        let (mut got, mut batches) = (Vec::new(), 0);
        loop {
            let rows = tx.query_portal(&portal, 7).await.expect("fetch");
            if rows.is_empty() {
                break;
            }
            batches += 1;
            assert!(rows.len() <= 7, "{sql}: a batch of {}", rows.len());
            got.extend(rows.iter().map(row_text));
        }
        tx.commit().await.expect("commit");
        let want: Vec<String> = or
            .query(sql, &params)
            .await
            .expect(sql)
            .iter()
            .map(row_text)
            .collect();
        assert!(!want.is_empty(), "{sql}: no rows");
        assert_eq!(batches, want.len().div_ceil(7), "{sql}");
        assert_eq!(got, want, "{sql}");
    }
}
