-- Tutorial 003: range partitions with a DEFAULT, pruning, retention by DROP TABLE, run
-- through psql. Scaled down; a 2022 partition added (the tutorial's "logs_2022") so that
-- retention has something to drop.
CREATE TABLE access_logs (
    id SERIAL,
    log_date DATE NOT NULL,
    message TEXT
) PARTITION BY RANGE (log_date);

CREATE TABLE access_logs_2022 PARTITION OF access_logs
    FOR VALUES FROM ('2022-01-01') TO ('2023-01-01');

CREATE TABLE access_logs_2023 PARTITION OF access_logs
    FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');

CREATE TABLE access_logs_default PARTITION OF access_logs DEFAULT;

INSERT INTO access_logs (log_date, message)
SELECT '2022-06-01'::date + g, 'message ' || g FROM generate_series(0, 999) g;

SELECT * FROM access_logs WHERE log_date = '2023-05-01';
SELECT count(*), min(log_date), max(log_date) FROM access_logs_2023;
SELECT count(*), min(log_date), max(log_date) FROM access_logs_default;
SELECT extract(year FROM log_date) AS year, count(*) FROM access_logs GROUP BY 1 ORDER BY 1;

-- The slow way, then the fast one.
DELETE FROM access_logs WHERE log_date < '2022-09-01';
SELECT count(*) FROM access_logs;
DROP TABLE access_logs_2022;
SELECT count(*), min(log_date) FROM access_logs;
\d+ access_logs
