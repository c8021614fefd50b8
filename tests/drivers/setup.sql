-- The table each driver's suite works on, made by the suite itself (through shardgate, or on
-- the oracle): {t} is its name. Three hash partitions, so keys reach every node.
DROP TABLE IF EXISTS {t};
CREATE TABLE {t} (k int8 NOT NULL, v text, n numeric(12,2), f float8, b bool, d date, ts timestamptz, u uuid, j jsonb, ba bytea, arr int4[], PRIMARY KEY (k)) PARTITION BY HASH (k);
CREATE TABLE {t}_0 PARTITION OF {t} FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE {t}_1 PARTITION OF {t} FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE {t}_2 PARTITION OF {t} FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO {t} SELECT g, 'v' || g, g * 1.25, g / 4.0, g % 2 = 0, date '2024-01-01' + g::int, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour', md5(g::text)::uuid, jsonb_build_object('g', g), decode(md5(g::text), 'hex'), ARRAY[g, g + 1] FROM generate_series(1, 1000) g;
