// node-postgres against one database (shardgate or the oracle): prints a transcript that must
// be the same for both. Usage: node suite.js HOST PORT USER PASSWORD DBNAME TABLE BIG_TABLE
'use strict';
const fs = require('fs');
const path = require('path');
const { Client } = require('pg');
const Cursor = require('pg-cursor');

const [host, port, user, password, database, table, big] = process.argv.slice(2, 9);
const COLS = 'k, v, n, f, b, d, ts, u, j, ba, arr';
const cfg = { host, port: Number(port), user, password: password || undefined, database, connectionTimeoutMillis: 10000 };

function show(v) {
  return JSON.stringify(v, (k, x) => (x && x.type === 'Buffer' ? 'bytes:' + Buffer.from(x.data).toString('hex') : x));
}
function out(label, v) { console.log(`${label}: ${show(v)}`); }

async function connect(extra) {
  const c = new Client({ ...cfg, ...(extra || {}) });
  await c.connect();
  // Dates print the same whatever the machine's zone.
  return c;
}

async function setup(c) {
  const text = fs.readFileSync(path.join(__dirname, '..', 'setup.sql'), 'utf8').split('{t}').join(table);
  for (const stmt of text.split(';\n')) {
    const lines = stmt.split('\n').filter((l) => !l.startsWith('--'));
    if (lines.join('').trim()) await c.query(lines.join('\n'));
  }
}

async function scenario(c, mode) {
  const base = { text: 10000, binary: 20000 }[mode];
  const binary = mode === 'binary';
  for (let k = 1; k <= 12; k++) {
    const r = await c.query({ name: 'lookup', text: `SELECT ${COLS} FROM ${table} WHERE k = $1`, values: [k], binary });
    out(`${mode} lookup ${k}`, r.rows);
  }
  for (let i = 0; i < 3; i++) {
    const r = await c.query({ name: 'agg', text: `SELECT count(*), sum(n), min(d), max(ts), avg(f) FROM ${table} WHERE k > $1`, values: [100], binary });
    out(`${mode} scatter aggregate`, r.rows);
  }
  out(`${mode} group by`, (await c.query({ text: `SELECT b, count(*), sum(k) FROM ${table} WHERE k < $1 GROUP BY b ORDER BY b`, values: [500], binary })).rows);
  out(`${mode} insert returning`, (await c.query({
    text: `INSERT INTO ${table} (k, v, n, d) VALUES ($1, $2, $3, $4), ($5, $6, $7, $8) RETURNING k, v, n, d`,
    values: [base + 1, 'a', 1.5, '2025-01-02', base + 2, 'b', 2.5, '2025-01-03'],
  })).rows);
  await c.query('BEGIN');
  for (let i = 3; i < 9; i++) {
    await c.query({ name: 'ins', text: `INSERT INTO ${table} (k, v) VALUES ($1, $2)`, values: [base + i, `t${i}`] });
  }
  const u = await c.query(`UPDATE ${table} SET v = v || '!' WHERE k IN ($1, $2, $3)`, [base + 3, base + 4, base + 5]);
  out(`${mode} update in txn`, u.rowCount);
  await c.query('COMMIT');
  await c.query('BEGIN');
  for (let i = 10; i < 16; i++) {
    await c.query({ name: 'ins', text: `INSERT INTO ${table} (k, v) VALUES ($1, $2)`, values: [base + i, `r${i}`] });
  }
  await c.query(`DELETE FROM ${table} WHERE k IN ($1, $2)`, [base + 3, base + 6]);
  await c.query('ROLLBACK');
  out(`${mode} after commit and rollback`, (await c.query(`SELECT k, v FROM ${table} WHERE k > $1 ORDER BY k`, [base])).rows);
  for (const [sql, args] of [
    [`SELECT k / (k - k) FROM ${table} WHERE k = $1`, [7]],
    [`SELECT k / (k - k) FROM ${table} WHERE k > $1`, [0]],
    [`SELECT no_such_column FROM ${table} WHERE k = $1`, [7]],
  ]) {
    try {
      await c.query(sql, args);
      out(`${mode} error`, 'no error');
    } catch (e) {
      out(`${mode} error`, [e.code, e.message]);
    }
    out(`${mode} after error`, (await c.query({ name: 'v', text: `SELECT v FROM ${table} WHERE k = $1`, values: [7] })).rows);
  }
}

async function twoSessions() {
  const a = await connect();
  const b = await connect();
  await a.query('CREATE TEMP TABLE drv_tt (x int)');
  await a.query('INSERT INTO drv_tt VALUES (1), (2)');
  try {
    await b.query('SELECT * FROM drv_tt');
    out('temp in other session', 'visible');
  } catch (e) {
    out('temp in other session', e.code);
  }
  for (const k of [1, 2, 3]) await a.query(`SELECT v FROM ${table} WHERE k = $1`, [k]);
  out('temp in own session', (await a.query('SELECT sum(x) FROM drv_tt')).rows);
  await a.query(`SELECT pg_advisory_lock(hashtext('${table}'))`);
  out('b tries', (await b.query(`SELECT pg_try_advisory_lock(hashtext('${table}'))`)).rows);
  out('a unlocks', (await a.query(`SELECT pg_advisory_unlock(hashtext('${table}'))`)).rows);
  out('b tries again', (await b.query(`SELECT pg_try_advisory_lock(hashtext('${table}'))`)).rows);
  out('b unlocks', (await b.query(`SELECT pg_advisory_unlock(hashtext('${table}'))`)).rows);
  await a.end();
  await b.end();
}

async function cursor(c) {
  const cur = c.query(new Cursor(`SELECT k, v FROM ${big} WHERE k > $1 ORDER BY k`, [0]));
  let n = 0, s = 0n, first = null, last = null;
  for (;;) {
    const rows = await cur.read(1000);
    if (rows.length === 0) break;
    for (const r of rows) {
      n += 1; s += BigInt(r.k);
      first = first || r; last = r;
    }
  }
  await cur.close();
  out('cursor', [n, s.toString(), first, last]);
  const small = c.query(new Cursor(`SELECT ${COLS} FROM ${table} WHERE k < $1 ORDER BY k`, [20]));
  out('cursor read', await small.read(5));
  out('cursor read more', (await small.read(100)).length);
  await small.close();
}

(async () => {
  const c = await connect();
  await setup(c);
  await scenario(c, 'text');
  await scenario(c, 'binary');
  await twoSessions();
  await cursor(c);
  await c.end();
  console.log('done');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
