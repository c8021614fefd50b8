-- Tutorial 000: hash partitioning a users table on a uuid (MODULUS 4), run through psql.
-- Scaled down, deterministic uuids; the tutorial's own bug fixed as PostgreSQL requires: its
-- PRIMARY KEY (id) on a table partitioned by user_uuid is refused by PostgreSQL (0A000 "unique
-- constraint on partitioned table must include all partitioning columns").
CREATE TABLE users (
  id SERIAL,
  user_uuid UUID NOT NULL,
  username TEXT NOT NULL,
  email TEXT NOT NULL,
  created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
  PRIMARY KEY (id, user_uuid)
) PARTITION BY HASH (user_uuid);

CREATE TABLE users_part1 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE users_part2 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE users_part3 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE users_part4 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 3);

INSERT INTO users (user_uuid, username, email, created_at)
SELECT md5('user' || g)::uuid, 'user' || g, 'user' || g || '@example.com',
       '2024-01-01'::timestamp + g * interval '1 hour'
FROM generate_series(1, 1000) g;
INSERT INTO users (user_uuid, username, email, created_at)
VALUES (md5('late')::uuid, 'late', 'late@example.com', '2024-06-01') RETURNING id, username;

-- Homework: typical queries, and how evenly the rows spread.
SELECT count(*), count(DISTINCT id), min(id), max(id) FROM users;
SELECT count(*) FROM users_part1;
SELECT count(*) FROM users_part2;
SELECT count(*) FROM users_part3;
SELECT count(*) FROM users_part4;
SELECT id, username, email FROM users WHERE user_uuid = md5('user42')::uuid;
SELECT username FROM users WHERE user_uuid IN (md5('user1')::uuid, md5('user999')::uuid) ORDER BY 1;
SELECT date_trunc('month', created_at) AS month, count(*) FROM users GROUP BY 1 ORDER BY 1;
SELECT username, created_at FROM users ORDER BY created_at DESC LIMIT 3;
UPDATE users SET email = 'new42@example.com' WHERE user_uuid = md5('user42')::uuid;
DELETE FROM users WHERE username LIKE 'user1__';
SELECT count(*), max(email) FROM users;
\d+ users

-- Beyond the tutorial: cursors over the distributed table, as psql's FETCH_COUNT declares
-- them, a SCROLL cursor and a held one.
\set FETCH_COUNT 7
SELECT username, created_at FROM users ORDER BY created_at LIMIT 20;
SELECT date_trunc('month', created_at) AS month, count(*) FROM users GROUP BY 1 ORDER BY 1;
\unset FETCH_COUNT
BEGIN;
DECLARE c SCROLL CURSOR FOR SELECT id, username FROM users ORDER BY id;
FETCH 3 FROM c;
FETCH PRIOR FROM c;
MOVE FORWARD 10 IN c;
FETCH 2 FROM c;
FETCH LAST FROM c;
CLOSE c;
COMMIT;
DECLARE h CURSOR WITH HOLD FOR SELECT count(*), max(username) FROM users;
FETCH ALL FROM h;
CLOSE h;

-- Beyond the tutorial: the rest of a psql session over the distributed table (\d, \dt, \x,
-- FETCH_COUNT 100, a line of several statements, \copy in and out).
\d users
\dt users*
\x on
SELECT username, email, created_at FROM users WHERE user_uuid = md5('user42')::uuid;
\x off
\set FETCH_COUNT 100
SELECT id, username FROM users ORDER BY id;
\unset FETCH_COUNT
SELECT count(*) FROM users; SELECT username FROM users WHERE user_uuid = md5('user7')::uuid; SELECT 3;
\copy users (id, user_uuid, username, email, created_at) FROM stdin
5001	d1b5f4e5-52d4-4b49-8d2f-0e5a0c8e0a01	copied1	c1@example.com	2024-07-01 00:00:00
5002	d1b5f4e5-52d4-4b49-8d2f-0e5a0c8e0a02	copied2	c2@example.com	2024-07-02 00:00:00
5003	d1b5f4e5-52d4-4b49-8d2f-0e5a0c8e0a03	copied3	c3@example.com	2024-07-03 00:00:00
\.
\copy (SELECT username, email FROM users WHERE username LIKE 'copied%' ORDER BY 1) TO stdout
\copy (SELECT date_trunc('month', created_at) AS month, count(*) FROM users GROUP BY 1 ORDER BY 1) TO stdout WITH (FORMAT csv, HEADER)
BEGIN;
COPY (SELECT username FROM users ORDER BY created_at DESC LIMIT 2) TO STDOUT;
COPY (SELECT username FROM users ORDER BY created_at LIMIT 2) TO STDOUT (FORMAT csv);
COMMIT;
