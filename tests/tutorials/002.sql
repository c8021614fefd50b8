-- Tutorial 002: the planner, then range (monthly, with a DEFAULT), hash (MODULUS 8), list
-- (with a DEFAULT) and two-level range/list partitioning, pruning with BETWEEN and prepared
-- statements, joins, a materialized summary. Run through psql; psql prints the same text
-- through shardgate as on one PostgreSQL.
--
-- Scaled down (600 customers, 3,000 orders and sales), random() replaced by deterministic
-- expressions; the EXPLAINs and statistics queries are in 002-explain.sql (their output is
-- each server's own), the maintenance functions in 002-maintenance-*.sql. The tutorial's own
-- bugs fixed as PostgreSQL requires: `SUM(amount)` of sales_analytics (no such column, now
-- `total_amount`), and results in no particular order (ORDER BY added).

CREATE TABLE customers (
    customer_id SERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT UNIQUE,
    country TEXT NOT NULL,
    signup_date DATE DEFAULT CURRENT_DATE,
    lifetime_value NUMERIC(10,2) DEFAULT 0
);

CREATE TABLE orders (
    order_id BIGSERIAL PRIMARY KEY,
    customer_id INTEGER REFERENCES customers(customer_id),
    order_date DATE NOT NULL,
    total_amount NUMERIC(10,2) NOT NULL,
    status TEXT NOT NULL,
    shipping_country TEXT
);

CREATE TABLE order_items (
    item_id BIGSERIAL PRIMARY KEY,
    order_id BIGINT REFERENCES orders(order_id),
    product_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price NUMERIC(10,2) NOT NULL
);

INSERT INTO customers (name, email, country, signup_date, lifetime_value)
SELECT
    'Customer ' || n,
    'customer' || n || '@example.com',
    (ARRAY['US', 'UK', 'DE', 'FR', 'CA', 'AU'])[1 + (n % 6)],
    DATE '2026-01-01' - (n * 37 % 1000),
    ((n * 7919) % 1000000 / 100.0)::NUMERIC(10,2)
FROM generate_series(1, 600) n;

INSERT INTO orders (customer_id, order_date, total_amount, status, shipping_country)
SELECT
    1 + (g * 7) % 600,
    DATE '2024-12-31' - (g % 365),
    ((g * 31) % 100000 / 100.0 + 10)::NUMERIC(10,2),
    (ARRAY['pending', 'processing', 'shipped', 'delivered'])[1 + g % 4],
    (ARRAY['US', 'UK', 'DE', 'FR', 'CA', 'AU'])[1 + g % 6]
FROM generate_series(1, 3000) g;

CREATE INDEX idx_customers_country ON customers (country);
CREATE INDEX idx_customers_signup_date ON customers (signup_date);
CREATE INDEX idx_orders_customer_id ON orders (customer_id);
CREATE INDEX idx_orders_order_date ON orders (order_date);
CREATE INDEX idx_orders_status ON orders (status);

ANALYZE customers;
ANALYZE orders;
ANALYZE order_items;

SELECT c.name, c.country, COUNT(o.order_id) as order_count
FROM customers c
LEFT JOIN orders o ON c.customer_id = o.customer_id
WHERE c.country = 'US'
GROUP BY c.customer_id, c.name, c.country
ORDER BY c.customer_id LIMIT 5;

SELECT c.name, o.order_date, o.total_amount
FROM customers c
JOIN orders o ON c.customer_id = o.customer_id
WHERE c.country = 'US'
  AND o.order_date >= '2024-01-01'
  AND o.total_amount > 500
ORDER BY o.order_date DESC, o.order_id
LIMIT 10;

CREATE INDEX idx_orders_date_covering ON orders (order_date)
INCLUDE (customer_id, total_amount, status);

SELECT count(*), sum(total_amount) FROM orders WHERE order_date BETWEEN '2024-01-01' AND '2024-01-31';

CREATE OR REPLACE FUNCTION analyze_query_performance(query_text TEXT)
RETURNS TABLE(
    operation TEXT,
    time_ms NUMERIC,
    rows_estimate BIGINT,
    rows_actual BIGINT,
    accuracy_ratio NUMERIC
) AS $$
DECLARE
    plan_json JSONB;
    explain_query TEXT;
BEGIN
    explain_query := 'EXPLAIN (ANALYZE, FORMAT JSON) ' || query_text;
    RETURN QUERY
    SELECT
        'Hash Join'::TEXT,
        15.23::NUMERIC,
        1000::BIGINT,
        1200::BIGINT,
        1.2::NUMERIC;
END;
$$ LANGUAGE plpgsql;

CREATE TABLE query_performance_log (
    log_id SERIAL PRIMARY KEY,
    query_hash TEXT,
    query_text TEXT,
    execution_time_ms NUMERIC,
    rows_examined BIGINT,
    rows_returned BIGINT,
    execution_date TIMESTAMP DEFAULT NOW()
);

CREATE OR REPLACE FUNCTION log_slow_query(
    p_query TEXT,
    p_execution_time NUMERIC,
    p_rows_examined BIGINT,
    p_rows_returned BIGINT
) RETURNS VOID AS $$
BEGIN
    INSERT INTO query_performance_log (
        query_hash, query_text, execution_time_ms,
        rows_examined, rows_returned
    ) VALUES (
        md5(p_query), p_query, p_execution_time,
        p_rows_examined, p_rows_returned
    );
END;
$$ LANGUAGE plpgsql;

SELECT * FROM analyze_query_performance('SELECT 1');
SELECT log_slow_query('SELECT count(*) FROM orders', 12.5, 3000, 1);
SELECT log_id, query_hash, execution_time_ms FROM query_performance_log;

CREATE TABLE sales_analytics (
    sale_id BIGSERIAL,
    sale_date DATE NOT NULL,
    product_id INTEGER NOT NULL,
    customer_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price NUMERIC(10,2) NOT NULL,
    total_amount NUMERIC(10,2) GENERATED ALWAYS AS (quantity * unit_price) STORED,
    region TEXT NOT NULL,
    sales_rep_id INTEGER,

    PRIMARY KEY (sale_id, sale_date)
) PARTITION BY RANGE (sale_date);

CREATE TABLE sales_analytics_2024_01 PARTITION OF sales_analytics
FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');

CREATE TABLE sales_analytics_2024_02 PARTITION OF sales_analytics
FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');

CREATE TABLE sales_analytics_2024_03 PARTITION OF sales_analytics
FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');

CREATE TABLE sales_analytics_2024_04 PARTITION OF sales_analytics
FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');

CREATE TABLE sales_analytics_2024_05 PARTITION OF sales_analytics
FOR VALUES FROM ('2024-05-01') TO ('2024-06-01');

CREATE TABLE sales_analytics_2024_06 PARTITION OF sales_analytics
FOR VALUES FROM ('2024-06-01') TO ('2024-07-01');

CREATE TABLE sales_analytics_default PARTITION OF sales_analytics DEFAULT;

INSERT INTO sales_analytics (sale_date, product_id, customer_id, quantity, unit_price, region, sales_rep_id)
SELECT
    '2024-01-01'::DATE + (g * 7) % 190,
    1 + g % 1000,
    1 + (g * 13) % 600,
    1 + g % 10,
    ((g * 17) % 20000 / 100.0 + 10)::NUMERIC(10,2),
    (ARRAY['North', 'South', 'East', 'West', 'Central'])[1 + g % 5],
    1 + g % 50
FROM generate_series(1, 3000) g;

CREATE TABLE user_analytics (
    user_id BIGINT NOT NULL,
    username TEXT NOT NULL,
    activity_date DATE NOT NULL,
    page_views INTEGER DEFAULT 0,
    session_duration INTEGER DEFAULT 0,
    actions_count INTEGER DEFAULT 0,

    PRIMARY KEY (user_id, username)
) PARTITION BY HASH (user_id);

CREATE TABLE user_analytics_p0 PARTITION OF user_analytics
FOR VALUES WITH (modulus 8, remainder 0);
CREATE TABLE user_analytics_p1 PARTITION OF user_analytics
FOR VALUES WITH (modulus 8, remainder 1);
CREATE TABLE user_analytics_p2 PARTITION OF user_analytics
FOR VALUES WITH (modulus 8, remainder 2);
CREATE TABLE user_analytics_p3 PARTITION OF user_analytics
FOR VALUES WITH (modulus 8, remainder 3);
CREATE TABLE user_analytics_p4 PARTITION OF user_analytics
FOR VALUES WITH (modulus 8, remainder 4);
CREATE TABLE user_analytics_p5 PARTITION OF user_analytics
FOR VALUES WITH (modulus 8, remainder 5);
CREATE TABLE user_analytics_p6 PARTITION OF user_analytics
FOR VALUES WITH (modulus 8, remainder 6);
CREATE TABLE user_analytics_p7 PARTITION OF user_analytics
FOR VALUES WITH (modulus 8, remainder 7);

INSERT INTO user_analytics (user_id, username, activity_date, page_views, session_duration, actions_count)
SELECT
    n,
    'user_' || n,
    DATE '2024-06-30' - (n % 30),
    (n * 13) % 100,
    (n * 17) % 3600,
    (n * 7) % 50
FROM generate_series(1, 2000) n;

CREATE TABLE regional_sales (
    sale_id BIGSERIAL,
    region TEXT NOT NULL,
    country TEXT NOT NULL,
    sale_date DATE NOT NULL,
    amount NUMERIC(10,2) NOT NULL,

    PRIMARY KEY (sale_id, region)
) PARTITION BY LIST (region);

CREATE TABLE regional_sales_americas PARTITION OF regional_sales
FOR VALUES IN ('US', 'CA', 'MX', 'BR', 'AR');

CREATE TABLE regional_sales_europe PARTITION OF regional_sales
FOR VALUES IN ('UK', 'DE', 'FR', 'IT', 'ES', 'NL');

CREATE TABLE regional_sales_asia PARTITION OF regional_sales
FOR VALUES IN ('JP', 'CN', 'IN', 'SG', 'KR', 'AU');

CREATE TABLE regional_sales_other PARTITION OF regional_sales DEFAULT;

INSERT INTO regional_sales (region, country, sale_date, amount)
SELECT
    (ARRAY['US', 'UK', 'DE', 'JP', 'CA', 'FR', 'ZA'])[1 + g % 7],
    (ARRAY['US', 'UK', 'DE', 'JP', 'CA', 'FR'])[1 + g % 6],
    DATE '2024-12-31' - (g % 365),
    ((g * 53) % 100000 / 100.0 + 10)::NUMERIC(10,2)
FROM generate_series(1, 1500) g;

CREATE TABLE transaction_log (
    transaction_id BIGSERIAL,
    transaction_date DATE NOT NULL,
    region TEXT NOT NULL,
    customer_id INTEGER NOT NULL,
    amount NUMERIC(12,2) NOT NULL,

    PRIMARY KEY (transaction_id, transaction_date, region)
) PARTITION BY RANGE (transaction_date);

CREATE TABLE transaction_log_2024 PARTITION OF transaction_log
FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')
PARTITION BY LIST (region);

CREATE TABLE transaction_log_2024_us PARTITION OF transaction_log_2024
FOR VALUES IN ('US');

CREATE TABLE transaction_log_2024_eu PARTITION OF transaction_log_2024
FOR VALUES IN ('UK', 'DE', 'FR', 'IT', 'ES');

CREATE TABLE transaction_log_2024_asia PARTITION OF transaction_log_2024
FOR VALUES IN ('JP', 'CN', 'IN', 'SG');

CREATE TABLE transaction_log_2024_other PARTITION OF transaction_log_2024 DEFAULT;

INSERT INTO transaction_log (transaction_date, region, customer_id, amount)
SELECT DATE '2024-01-01' + g % 366, (ARRAY['US', 'UK', 'JP', 'BR'])[1 + g % 4], 1 + g % 600, g
FROM generate_series(1, 1000) g;

-- The tutorial's pruning queries, run (002-explain.sql explains them).
SET enable_partition_pruning = on;

SELECT region, COUNT(*), SUM(total_amount)
FROM sales_analytics
WHERE sale_date BETWEEN '2024-03-01' AND '2024-03-31'
GROUP BY region ORDER BY region;

SELECT * FROM sales_analytics
WHERE sale_date = '2024-02-15' ORDER BY sale_id;

SELECT region, AVG(total_amount)
FROM sales_analytics
WHERE sale_date BETWEEN '2024-01-15' AND '2024-04-15'
GROUP BY region ORDER BY region;

SET enable_partition_pruning = off;
SELECT count(*) FROM sales_analytics WHERE sale_date = '2024-02-15';
SET enable_partition_pruning = on;

PREPARE partition_query AS
SELECT COUNT(*), AVG(total_amount)
FROM sales_analytics
WHERE sale_date BETWEEN $1 AND $2;

EXECUTE partition_query('2024-01-01', '2024-01-31');
EXECUTE partition_query('2024-03-01', '2024-05-31');

SELECT c.name, s.total_amount
FROM customers c
JOIN sales_analytics s ON c.customer_id = s.customer_id
WHERE c.country = 'US'
  AND s.sale_date >= '2024-02-01'
  AND s.sale_date < '2024-03-01'
ORDER BY c.name, s.total_amount;

SELECT count(*), sum(total_amount) FROM sales_analytics_default;
SELECT count(*), min(user_id), max(user_id) FROM user_analytics_p3;
SELECT page_views FROM user_analytics WHERE user_id = 1234;
SELECT region, count(*), sum(amount) FROM regional_sales GROUP BY region ORDER BY region;
SELECT count(*) FROM regional_sales_other;
SELECT region, count(*) FROM transaction_log WHERE transaction_date < '2024-07-01' GROUP BY region ORDER BY region;
SELECT count(*) FROM transaction_log_2024_other;

CREATE INDEX idx_sales_analytics_2024_01_region ON sales_analytics_2024_01 (region, total_amount);
CREATE INDEX idx_sales_analytics_2024_01_product ON sales_analytics_2024_01 (product_id, sale_date);

CREATE INDEX idx_sales_analytics_customer ON sales_analytics (customer_id);

CREATE MATERIALIZED VIEW monthly_sales_summary AS
SELECT
    DATE_TRUNC('month', sale_date) as month,
    region,
    COUNT(*) as sale_count,
    SUM(total_amount) as total_revenue,
    AVG(total_amount) as avg_sale_amount,
    COUNT(DISTINCT customer_id) as unique_customers
FROM sales_analytics
GROUP BY DATE_TRUNC('month', sale_date), region;

CREATE INDEX idx_monthly_sales_summary_month_region
ON monthly_sales_summary (month, region);

INSERT INTO sales_analytics (sale_date, product_id, customer_id, quantity, unit_price, region)
VALUES ('2024-03-03', 1, 1, 2, 100.00, 'North');

REFRESH MATERIALIZED VIEW monthly_sales_summary;

SELECT month, region, total_revenue
FROM monthly_sales_summary
WHERE month >= '2024-01-01' AND month < '2024-06-01'
ORDER BY total_revenue DESC, month, region;

SELECT
    DATE_TRUNC('month', sale_date) as month,
    region,
    SUM(total_amount) as total_revenue
FROM sales_analytics
WHERE sale_date >= '2024-01-01' AND sale_date < '2024-06-01'
GROUP BY DATE_TRUNC('month', sale_date), region
ORDER BY total_revenue DESC, month, region;

SELECT * FROM monthly_sales_summary ORDER BY month, region LIMIT 6;
\dm

SET max_parallel_workers_per_gather = 4;
SET parallel_tuple_cost = 0.1;
SET parallel_setup_cost = 1000;
SET force_parallel_mode = on;

SELECT region, COUNT(*), SUM(total_amount)
FROM sales_analytics
WHERE total_amount > 100
GROUP BY region ORDER BY region;

SELECT c.country, COUNT(s.sale_id), SUM(s.total_amount)
FROM customers c
JOIN sales_analytics s ON c.customer_id = s.customer_id
WHERE s.sale_date >= '2024-01-01'
GROUP BY c.country ORDER BY c.country;

SET force_parallel_mode = off;

SET work_mem = '256MB';
SELECT customer_id, sale_date, total_amount
FROM sales_analytics
ORDER BY total_amount DESC, sale_date, sale_id LIMIT 5;
RESET work_mem;
