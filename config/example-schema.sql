-- The example cluster's tables (the partitioning tutorials' schemas) and deterministic sample
-- rows. `shardgate local` loads this through shardgate when the tables do not exist yet; the
-- tests load it into shardgate and into one plain PostgreSQL, the oracle.
CREATE TABLE customers (
    customer_id integer PRIMARY KEY,
    name text NOT NULL,
    country text NOT NULL,
    lifetime_value numeric(10,2) DEFAULT 0
);
CREATE TABLE users (
    user_uuid uuid PRIMARY KEY,
    username text NOT NULL,
    email text NOT NULL,
    country text,
    created_at timestamp NOT NULL
);
CREATE TABLE user_events (
    user_uuid uuid NOT NULL,
    event_id bigint NOT NULL,
    event_type text NOT NULL,
    amount numeric(10,2),
    created_at timestamp NOT NULL,
    PRIMARY KEY (user_uuid, event_id)
);
CREATE TABLE user_analytics (
    user_id bigint NOT NULL,
    username text NOT NULL,
    activity_date date NOT NULL,
    page_views integer DEFAULT 0,
    session_duration integer DEFAULT 0,
    actions_count integer DEFAULT 0,
    PRIMARY KEY (user_id, activity_date)
);
CREATE TABLE sales_analytics (
    sale_id bigint NOT NULL,
    sale_date date NOT NULL,
    product_id integer NOT NULL,
    customer_id integer NOT NULL,
    quantity integer NOT NULL,
    unit_price numeric(10,2) NOT NULL,
    total_amount numeric(10,2) GENERATED ALWAYS AS (quantity * unit_price) STORED,
    region text NOT NULL,
    sales_rep_id integer,
    PRIMARY KEY (sale_id, sale_date)
);
CREATE TABLE regional_sales (
    sale_id bigint NOT NULL,
    region text NOT NULL,
    sale_date date NOT NULL,
    amount numeric(10,2) NOT NULL,
    PRIMARY KEY (sale_id, region)
);
INSERT INTO customers (customer_id, name, country, lifetime_value)
SELECT g, 'Customer ' || g, (ARRAY['US', 'UK', 'DE', 'FR', 'CA', 'AU'])[1 + g % 6], ((g * 7919) % 1000000)::numeric / 100
FROM generate_series(1, 1000) g;
INSERT INTO users (user_uuid, username, email, country, created_at)
SELECT md5('user' || g)::uuid, 'user' || g, 'user' || g || '@example.com',
       (ARRAY['US', 'UK', 'DE', 'FR', 'CA', 'AU', NULL])[1 + g % 7],
       timestamp '2024-01-01' + (g * 3671 % 86400) * interval '1 minute'
FROM generate_series(1, 2000) g;
INSERT INTO user_events (user_uuid, event_id, event_type, amount, created_at)
SELECT md5('user' || (1 + g % 2000))::uuid, g, (ARRAY['login', 'view', 'purchase', 'logout'])[1 + g % 4],
       CASE WHEN g % 4 = 2 THEN ((g * 31) % 50000)::numeric / 100 END,
       timestamp '2024-01-01' + (g * 997 % 525600) * interval '1 minute'
FROM generate_series(1, 10000) g;
INSERT INTO user_analytics (user_id, username, activity_date, page_views, session_duration, actions_count)
SELECT 1 + g % 1000, 'user' || (1 + g % 1000), date '2024-01-01' + g / 1000,
       (g * 13) % 200, (g * 17) % 3600, CASE WHEN g % 11 <> 0 THEN (g * 7) % 50 END
FROM generate_series(0, 9999) g;
INSERT INTO sales_analytics (sale_id, sale_date, product_id, customer_id, quantity, unit_price, region, sales_rep_id)
SELECT g, date '2023-12-01' + g % 180, 1 + g % 1000, 1 + (g * 7) % 1000, 1 + g % 10,
       ((g * 37) % 20000)::numeric / 100 + 10, (ARRAY['North', 'South', 'East', 'West', 'Central'])[1 + g % 5],
       CASE WHEN g % 10 <> 0 THEN 1 + g % 50 END
FROM generate_series(1, 20000) g;
INSERT INTO regional_sales (sale_id, region, sale_date, amount)
SELECT g, (ARRAY['US', 'CA', 'UK', 'DE', 'FR', 'JP', 'BR'])[1 + g % 7], date '2024-01-01' + g % 120,
       ((g * 53) % 100000)::numeric / 100
FROM generate_series(1, 5000) g;
