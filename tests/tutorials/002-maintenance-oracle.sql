-- Tutorial 002's maintenance functions, on one PostgreSQL (through shardgate the built-in
-- calls of 002-maintenance-shardgate.sql do the same). The tutorial's own bug fixed as
-- PostgreSQL requires: its call passes a timestamptz where the function takes a date
-- (42883 "function create_monthly_partition(unknown, timestamp with time zone) does not
-- exist"), now cast.
CREATE OR REPLACE FUNCTION create_monthly_partition(
    table_name TEXT,
    start_date DATE
) RETURNS TEXT AS $$
DECLARE
    partition_name TEXT;
    end_date DATE;
    sql_command TEXT;
BEGIN
    partition_name := table_name || '_' || to_char(start_date, 'YYYY_MM');
    end_date := start_date + INTERVAL '1 month';
    sql_command := format(
        'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
        partition_name, table_name, start_date, end_date
    );
    EXECUTE sql_command;
    EXECUTE format(
        'CREATE INDEX %I ON %I (sale_date, region)',
        'idx_' || partition_name || '_date_region', partition_name
    );
    EXECUTE format(
        'CREATE INDEX %I ON %I (customer_id)',
        'idx_' || partition_name || '_customer', partition_name
    );
    RETURN partition_name;
END;
$$ LANGUAGE plpgsql;

SELECT create_monthly_partition(
    'sales_analytics',
    (date_trunc('month', CURRENT_DATE) + (n || ' month')::INTERVAL)::date
)
FROM generate_series(1, 6) n;

CREATE OR REPLACE FUNCTION drop_old_partitions(
    table_name TEXT,
    retention_period INTERVAL
) RETURNS INTEGER AS $$
DECLARE
    partition_record RECORD;
    cutoff_date DATE;
    dropped_count INTEGER := 0;
BEGIN
    cutoff_date := CURRENT_DATE - retention_period;
    FOR partition_record IN
        SELECT
            schemaname,
            tablename
        FROM pg_tables
        WHERE tablename LIKE table_name || '_%'
          AND tablename ~ '\d{4}_\d{2}$'
          AND to_date(
              substring(tablename from '.+_(\d{4}_\d{2})$'),
              'YYYY_MM'
          ) < cutoff_date
    LOOP
        EXECUTE format('DROP TABLE %I.%I',
                      partition_record.schemaname,
                      partition_record.tablename);
        dropped_count := dropped_count + 1;
        RAISE NOTICE 'Dropped partition: %', partition_record.tablename;
    END LOOP;
    RETURN dropped_count;
END;
$$ LANGUAGE plpgsql;

SELECT drop_old_partitions('sales_analytics', INTERVAL '2 years');
