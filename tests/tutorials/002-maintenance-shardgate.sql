-- Tutorial 002's maintenance through shardgate: its functions would run inside PostgreSQL on
-- one node (see the README, "What a function sees"); the built-in calls create the six
-- monthly partitions ahead (placed on the nodes) and drop those past the two-year retention.
SELECT shardgate.drop_time_partitions('sales_analytics', older_than => now() - interval '2 years');
SELECT shardgate.create_time_partitions('sales_analytics', interval '1 month',
    date_trunc('month', now()) + interval '6 months', date_trunc('month', now()) + interval '1 month');
CREATE INDEX ON sales_analytics (sale_date, region);
