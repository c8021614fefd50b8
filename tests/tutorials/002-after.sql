-- After the maintenance: the same partition bounds, rows and answers on both.
SELECT pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'sales_analytics'::regclass ORDER BY 1;
SELECT count(*), sum(total_amount) FROM sales_analytics;
SELECT (date_trunc('month', CURRENT_DATE) + interval '2 months')::date AS ahead \gset
INSERT INTO sales_analytics (sale_date, product_id, customer_id, quantity, unit_price, region)
VALUES (:'ahead', 7, 7, 1, 10.00, 'East'),
       ('2020-01-01', 8, 8, 1, 20.00, 'West');
SELECT region, count(*), sum(total_amount) FROM sales_analytics GROUP BY region ORDER BY region;
SELECT count(*) FROM sales_analytics_default;
SELECT count(*) FROM sales_analytics WHERE sale_date >= date_trunc('month', CURRENT_DATE);
