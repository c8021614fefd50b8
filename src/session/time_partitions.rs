//! Time partitions kept ahead and dropped behind, built in (as Citus's
//! `create_time_partitions` and `drop_old_time_partitions`), so tutorial 002's maintenance
//! functions are not needed:
//!
//! - `SELECT shardgate.create_time_partitions('sales', interval '1 month', now() + interval
//!   '6 months' [, start_from])` creates the range partitions `sales_pYYYY_MM` (`_pYYYY`,
//!   `_pYYYY_MM_DD`, `_pYYYY_MM_DD_HH24MI` by interval) from the table's last upper bound (or
//!   `start_from`, default now(), truncated to the interval's unit) until one holds `end_at`;
//!   true when it created any.
//! - `SELECT shardgate.drop_time_partitions('sales', older_than => now() - interval '2
//!   years')` drops the range partitions whose upper bound is at or before `older_than`;
//!   the number dropped.
//!
//! Each partition is created or dropped as the DDL a client would send (`session::partition`),
//! one transaction each; PostgreSQL on the default node evaluates the arguments and the bounds.

use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SetExpr, Statement};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::analyze::{Kind, Stmt};
use crate::error::{SgError, SgResult};
use crate::protocol::backend as be;
use crate::quote::{ident, literal};
use crate::shardmap::{Bound, KeyType, KeyValue, TableKind};

/// At most this many partitions per call.
const MAX_PARTITIONS: usize = 1000;

const FORMAT: &str = "'YYYY-MM-DD HH24:MI:SS.US'";

enum Call {
    Create {
        table: String,
        interval: String,
        end_at: String,
        start_from: Option<String>,
    },
    Drop {
        table: String,
        older_than: String,
    },
}

/// A `shardgate.*` function's name and its arguments by parameter.
pub(super) type CallArgs = (&'static str, Vec<Option<Expr>>);

/// The arguments of a call to one of `known` (name, parameter names), when the statement is
/// exactly `SELECT shardgate.<function>(...)`: the function's name and each parameter's
/// argument, by position or by name.
pub(super) fn shardgate_call(
    text: &str,
    known: &[(&'static str, &'static [&'static str])],
) -> SgResult<Option<CallArgs>> {
    let Some(Statement::Query(q)) = crate::analyze::parse_sql(text)
        .ok()
        .and_then(|mut v| v.pop())
    else {
        return Ok(None);
    };
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Ok(None);
    };
    let [sqlparser::ast::SelectItem::UnnamedExpr(Expr::Function(f))] = sel.projection.as_slice()
    else {
        return Ok(None);
    };
    let called = f.name.to_string().to_ascii_lowercase();
    let Some((name, params)) = known.iter().find(|(n, _)| *n == called).copied() else {
        return Ok(None);
    };
    if !sel.from.is_empty() {
        return Err(SgError::unsupported(format!("{name} over a FROM clause")));
    }
    let FunctionArguments::List(list) = &f.args else {
        return Err(SgError::new(
            "42883",
            format!("function {name}() does not exist"),
        ));
    };
    let mut got: Vec<Option<Expr>> = vec![None; params.len()];
    for (i, a) in list.args.iter().enumerate() {
        let (slot, e) = match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (i, e),
            FunctionArg::Named {
                name: n,
                arg: FunctionArgExpr::Expr(e),
                ..
            }
            | FunctionArg::ExprNamed {
                name: Expr::Identifier(n),
                arg: FunctionArgExpr::Expr(e),
                ..
            } => {
                let n = crate::analyze::scope::ident_name(n);
                match params.iter().position(|p| *p == n) {
                    Some(i) => (i, e),
                    None => {
                        return Err(SgError::new(
                            "42883",
                            format!("{name}() has no parameter named \"{n}\""),
                        ))
                    }
                }
            }
            _ => return Err(SgError::unsupported(format!("this argument of {name}()"))),
        };
        match got.get_mut(slot) {
            Some(s) => *s = Some(e.clone()),
            None => {
                return Err(SgError::new(
                    "42883",
                    format!("too many arguments to {name}()"),
                ))
            }
        }
    }
    Ok(Some((name, got)))
}

/// A table name given as a string constant.
pub(super) fn table_arg(name: &str, e: Option<&Expr>) -> SgResult<String> {
    match e {
        Some(Expr::Value(v)) => match &v.value {
            sqlparser::ast::Value::SingleQuotedString(s) => Ok(s.replace("''", "'").to_lowercase()),
            _ => Err(SgError::unsupported(format!(
                "{name}(): the table as a string constant"
            ))),
        },
        _ => Err(SgError::unsupported(format!(
            "{name}(): the table as a string constant"
        ))),
    }
}

/// The call, when the statement calls one of the time-partition functions.
fn call(text: &str) -> SgResult<Option<Call>> {
    let known: &[(&str, &[&str])] = &[
        (
            "shardgate.create_time_partitions",
            &["table_name", "partition_interval", "end_at", "start_from"],
        ),
        (
            "shardgate.drop_time_partitions",
            &["table_name", "older_than"],
        ),
    ];
    let Some((name, got)) = shardgate_call(text, known)? else {
        return Ok(None);
    };
    let which = if name == "shardgate.create_time_partitions" {
        "create"
    } else {
        "drop"
    };
    let table = table_arg(name, got.first().and_then(|e| e.as_ref()))?;
    let arg = |i: usize| got.get(i).cloned().flatten().map(|e| e.to_string());
    let missing = |p: &str| SgError::new("42883", format!("{name}(): {p} is required"));
    Ok(Some(match which {
        "create" => Call::Create {
            table,
            interval: arg(1).ok_or_else(|| missing("partition_interval"))?,
            end_at: arg(2).ok_or_else(|| missing("end_at"))?,
            start_from: arg(3),
        },
        _ => Call::Drop {
            table,
            older_than: arg(1).ok_or_else(|| missing("older_than"))?,
        },
    }))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Runs `text` if it calls one of the time-partition functions: Some(succeeded).
    pub async fn time_partitions(&mut self, text: &str) -> SgResult<Option<bool>> {
        let c = match call(text) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.error(&e);
                return Ok(Some(false));
            }
        };
        let table = match &c {
            Call::Create { table, .. } | Call::Drop { table, .. } => table.clone(),
        };
        let map = &self.shared.config.shardmap;
        let t = match map.get(&table) {
            Some(t) if map.is_managed(&table) && matches!(t.kind, TableKind::Range(_)) => t,
            _ => {
                self.error(&SgError::new(
                    "22023",
                    format!("\"{table}\" is not a table partitioned by range through shardgate"),
                ));
                return Ok(Some(false));
            }
        };
        let ty = t.key_type()?;
        if !matches!(ty, KeyType::Date | KeyType::Timestamp) {
            self.error(&SgError::new(
                "22023",
                format!(
                    "\"{table}\" is partitioned on a column of type {}, not a date or timestamp",
                    ty.sql_name()
                ),
            ));
            return Ok(Some(false));
        }
        let TableKind::Range(r) = &t.kind else {
            return Ok(Some(false));
        };
        let node = self.shared.config.default_node;
        match c {
            Call::Create {
                interval,
                end_at,
                start_from,
                ..
            } => {
                let last = r
                    .ranges
                    .iter()
                    .filter_map(|x| match &x.to {
                        Bound::Value(v) => Some(v.clone()),
                        _ => None,
                    })
                    .max();
                let start = match (last, start_from) {
                    (Some(v), _) => format!("{}::timestamp", literal(&v.to_text())),
                    (None, from) => format!(
                        "date_trunc(CASE WHEN extract(month FROM p.i) > 0 OR extract(year FROM p.i) > 0 THEN 'month' ELSE 'day' END, ({})::timestamp)",
                        from.unwrap_or_else(|| "now()".into())
                    ),
                };
                // Arguments as the client wrote them, printed from the parsed statement.
                let sql = format!(
                    "SELECT to_char(g, {FORMAT}), to_char(g + p.i, {FORMAT}), to_char(g, p.f) \
                     FROM (SELECT i, CASE WHEN extract(day FROM i) = 0 AND extract(hour FROM i) = 0 \
                                   AND extract(minute FROM i) = 0 AND extract(month FROM i) = 0 THEN 'YYYY' \
                                 WHEN extract(day FROM i) = 0 AND extract(hour FROM i) = 0 \
                                   AND extract(minute FROM i) = 0 THEN 'YYYY_MM' \
                                 WHEN extract(hour FROM i) = 0 AND extract(minute FROM i) = 0 THEN 'YYYY_MM_DD' \
                                 ELSE 'YYYY_MM_DD_HH24MI' END AS f \
                           FROM (SELECT ({interval})::interval AS i) q) p, \
                          generate_series({start}, ({end_at})::timestamp, p.i) g \
                     LIMIT {}",
                    MAX_PARTITIONS + 1
                );
                let rows = match self.rows_on(node, &sql).await? {
                    Some(r) => r,
                    None => return Ok(Some(false)),
                };
                if rows.len() > MAX_PARTITIONS {
                    self.error(&SgError::new(
                        "54000",
                        format!("create_time_partitions would create more than {MAX_PARTITIONS} partitions"),
                    ));
                    return Ok(Some(false));
                }
                let mut created = false;
                for row in rows {
                    let [from, to, suffix] = row.as_slice() else {
                        continue;
                    };
                    let day = |s: &str| s.get(..10).unwrap_or(s).to_string();
                    let (from, to) = match ty {
                        KeyType::Date => (day(from), day(to)),
                        _ => (from.clone(), to.clone()),
                    };
                    if from == to {
                        continue;
                    }
                    let sql = format!(
                        "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})",
                        ident(&format!("{table}_p{suffix}")),
                        ident(&table),
                        literal(&from),
                        literal(&to)
                    );
                    if !self.quietly(&sql, Kind::CreateTable).await? {
                        return Ok(Some(false));
                    }
                    created = true;
                }
                self.route_text(node, &format!("SELECT {created} AS create_time_partitions"))
                    .await?;
            }
            Call::Drop { older_than, .. } => {
                let sql = format!("SELECT to_char(({older_than})::timestamp, {FORMAT})");
                let rows = match self.rows_on(node, &sql).await? {
                    Some(r) => r,
                    None => return Ok(Some(false)),
                };
                let Some(text) = rows.first().and_then(|r| r.first()) else {
                    return Ok(Some(false));
                };
                let text = match ty {
                    KeyType::Date => text.get(..10).unwrap_or(text),
                    _ => text.as_str(),
                };
                let older = KeyValue::parse_text(ty, text)?;
                let names: Vec<String> = r
                    .ranges
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| matches!(&x.to, Bound::Value(v) if *v <= older))
                    .map(|(i, _)| t.shard_name(i as u32))
                    .collect();
                for name in &names {
                    if !self
                        .quietly(&format!("DROP TABLE {}", ident(name)), Kind::Drop)
                        .await?
                    {
                        return Ok(Some(false));
                    }
                }
                self.route_text(
                    node,
                    &format!("SELECT {} AS drop_time_partitions", names.len()),
                )
                .await?;
            }
        }
        Ok(Some(!self.errored))
    }

    /// Runs partitioning DDL shardgate wrote itself; its command tag is not the client's
    /// (an error is).
    pub(super) async fn quietly(&mut self, sql: &str, kind: Kind) -> SgResult<bool> {
        let mark = self.out.len();
        let stmt = Stmt::new(kind, sql);
        let ok = self.partition_ddl(&stmt, sql).await?.unwrap_or(false);
        if ok && self.out.len() >= mark {
            self.out.truncate(mark);
        }
        Ok(ok)
    }

    /// The text rows of a query shardgate runs on a node for its own purposes; None after
    /// reporting the node's error to the client.
    pub(super) async fn rows_on(
        &mut self,
        node: usize,
        sql: &str,
    ) -> SgResult<Option<Vec<Vec<String>>>> {
        let frames = match self.backend(node).await?.run(sql).await {
            Ok(f) => f,
            Err(e) => {
                self.error(&e);
                return Ok(None);
            }
        };
        let mut rows = Vec::new();
        for f in frames.iter().filter(|f| f.tag == be::DATA_ROW) {
            rows.push(
                crate::execute::rows::columns(f)?
                    .into_iter()
                    .map(|v| {
                        v.map(|b| String::from_utf8_lossy(&b).into_owned())
                            .unwrap_or_default()
                    })
                    .collect(),
            );
        }
        self.txn.release();
        Ok(Some(rows))
    }
}
