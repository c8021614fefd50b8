-- Tutorial 002's EXPLAINs and statistics queries through shardgate: each answers (the plan
-- and the statistics are each server's own, so they are not compared). The tutorial's own
-- bugs fixed as PostgreSQL requires: pg_stat_user_tables and pg_stat_user_indexes name their
-- columns relname and indexrelname, not tablename and indexname.
EXPLAIN
SELECT c.name, c.country, COUNT(o.order_id) as order_count
FROM customers c
LEFT JOIN orders o ON c.customer_id = o.customer_id
WHERE c.country = 'US'
GROUP BY c.customer_id, c.name, c.country;

EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT)
SELECT c.name, c.country, COUNT(o.order_id) as order_count
FROM customers c
LEFT JOIN orders o ON c.customer_id = o.customer_id
WHERE c.country = 'US'
GROUP BY c.customer_id, c.name, c.country;

EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
SELECT c.name, o.order_date, o.total_amount
FROM customers c
JOIN orders o ON c.customer_id = o.customer_id
WHERE c.country = 'US'
  AND o.order_date >= '2024-01-01'
  AND o.total_amount > 500
ORDER BY o.order_date DESC
LIMIT 10;

SET enable_hashjoin = off;
SET enable_mergejoin = off;
EXPLAIN ANALYZE
SELECT c.name, o.total_amount
FROM customers c
JOIN orders o ON c.customer_id = o.customer_id
WHERE c.country = 'US'
LIMIT 1000;
SET enable_hashjoin = on;
SET enable_mergejoin = off;
EXPLAIN ANALYZE
SELECT c.name, o.total_amount
FROM customers c
JOIN orders o ON c.customer_id = o.customer_id
WHERE c.country = 'US'
LIMIT 1000;
RESET enable_hashjoin;
RESET enable_mergejoin;

EXPLAIN (ANALYZE, BUFFERS)
SELECT * FROM orders WHERE order_date BETWEEN '2024-01-01' AND '2024-01-31';

EXPLAIN (ANALYZE, BUFFERS)
SELECT region, COUNT(*), SUM(total_amount)
FROM sales_analytics
WHERE sale_date BETWEEN '2024-03-01' AND '2024-03-31'
GROUP BY region;

EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT * FROM sales_analytics
WHERE sale_date = '2024-02-15';

EXPLAIN (ANALYZE, BUFFERS)
SELECT region, AVG(total_amount)
FROM sales_analytics
WHERE sale_date BETWEEN '2024-01-15' AND '2024-04-15'
GROUP BY region;

SET enable_partition_pruning = off;
EXPLAIN (ANALYZE, BUFFERS)
SELECT * FROM sales_analytics
WHERE sale_date = '2024-02-15';
SET enable_partition_pruning = on;

PREPARE partition_query AS
SELECT COUNT(*), AVG(total_amount)
FROM sales_analytics
WHERE sale_date BETWEEN $1 AND $2;

EXPLAIN (ANALYZE, BUFFERS)
EXECUTE partition_query('2024-01-01', '2024-01-31');

EXPLAIN (ANALYZE, BUFFERS)
EXECUTE partition_query('2024-03-01', '2024-05-31');

EXPLAIN (ANALYZE, BUFFERS)
SELECT c.name, s.total_amount
FROM customers c
JOIN sales_analytics s ON c.customer_id = s.customer_id
WHERE c.country = 'US'
  AND s.sale_date >= '2024-02-01'
  AND s.sale_date < '2024-03-01';

WITH partition_stats AS (
    SELECT
        schemaname,
        relname AS tablename,
        n_tup_ins as inserts,
        n_tup_upd as updates,
        n_tup_del as deletes,
        seq_scan,
        idx_scan,
        n_live_tup as live_tuples
    FROM pg_stat_user_tables
    WHERE relname LIKE 'sales_analytics_%'
)
SELECT
    tablename,
    live_tuples,
    seq_scan,
    idx_scan,
    CASE
        WHEN seq_scan + idx_scan = 0 THEN 0
        ELSE ROUND(100.0 * idx_scan / (seq_scan + idx_scan), 2)
    END as index_usage_percent
FROM partition_stats
ORDER BY live_tuples DESC;

EXPLAIN (ANALYZE, BUFFERS)
SELECT month, region, total_revenue
FROM monthly_sales_summary
WHERE month >= '2024-01-01' AND month < '2024-06-01'
ORDER BY total_revenue DESC;

EXPLAIN (ANALYZE, BUFFERS)
SELECT
    DATE_TRUNC('month', sale_date) as month,
    region,
    SUM(total_amount) as total_revenue
FROM sales_analytics
WHERE sale_date >= '2024-01-01' AND sale_date < '2024-06-01'
GROUP BY DATE_TRUNC('month', sale_date), region
ORDER BY total_revenue DESC;

SET max_parallel_workers_per_gather = 4;
SET force_parallel_mode = on;
EXPLAIN (ANALYZE, BUFFERS)
SELECT region, COUNT(*), SUM(total_amount)
FROM sales_analytics
WHERE total_amount > 100
GROUP BY region;
EXPLAIN (ANALYZE, BUFFERS)
SELECT c.country, COUNT(s.sale_id), SUM(s.total_amount)
FROM customers c
JOIN sales_analytics s ON c.customer_id = s.customer_id
WHERE s.sale_date >= '2024-01-01'
GROUP BY c.country;
SET force_parallel_mode = off;

SET log_temp_files = 0;
EXPLAIN (ANALYZE, BUFFERS)
SELECT customer_id, sale_date, total_amount
FROM sales_analytics
ORDER BY total_amount DESC, sale_date;
SET work_mem = '256MB';
EXPLAIN (ANALYZE, BUFFERS)
SELECT customer_id, sale_date, total_amount
FROM sales_analytics
ORDER BY total_amount DESC, sale_date;
RESET work_mem;

SELECT
    temp_files,
    temp_bytes,
    pg_size_pretty(temp_bytes) as temp_size
FROM pg_stat_database
WHERE datname = current_database();

CREATE VIEW partition_performance AS
SELECT
    schemaname,
    relname AS tablename,
    seq_scan,
    seq_tup_read,
    idx_scan,
    idx_tup_fetch,
    n_tup_ins,
    n_tup_upd,
    n_tup_del,
    pg_size_pretty(pg_relation_size(relid)) as size
FROM pg_stat_user_tables
WHERE relname LIKE 'sales_analytics_%'
   OR relname LIKE 'transaction_log_%'
ORDER BY pg_relation_size(relid) DESC;

SELECT
    tablename,
    seq_scan + idx_scan as total_scans,
    seq_tup_read + idx_tup_fetch as total_tuples_read,
    n_tup_ins + n_tup_upd + n_tup_del as total_modifications,
    size
FROM partition_performance
WHERE seq_scan + idx_scan > 0
ORDER BY total_scans DESC;

EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
SELECT COUNT(*)
FROM sales_analytics
WHERE sale_date BETWEEN '2024-02-01' AND '2024-02-29';

SELECT
    schemaname,
    relname AS tablename,
    indexrelname AS indexname,
    idx_scan,
    idx_tup_read,
    idx_tup_fetch,
    pg_size_pretty(pg_relation_size(indexrelid)) as index_size
FROM pg_stat_user_indexes
WHERE relname LIKE 'sales_analytics_%'
ORDER BY idx_scan DESC;

SELECT
    schemaname,
    relname AS tablename,
    indexrelname AS indexname,
    pg_size_pretty(pg_relation_size(indexrelid)) as wasted_size
FROM pg_stat_user_indexes
WHERE idx_scan = 0
  AND relname LIKE 'sales_analytics_%'
ORDER BY pg_relation_size(indexrelid) DESC;
