//! Cursors over rows of several nodes (`DECLARE c CURSOR FOR <query>`, as psql's
//! `FETCH_COUNT` sends it): the query runs once through shardgate (merged as any client query,
//! its rows spooled: in memory up to `spool_memory_bytes`, then in a temporary file), its rows
//! go into a temporary table on the default node, and the cursor is PostgreSQL's own over that table, in the rows' order. FETCH, MOVE
//! and CLOSE then reach the default node like any statement naming no table, and every cursor
//! option (SCROLL, BINARY, WITH HOLD) is PostgreSQL's.
//!
//! Without HOLD the table goes with the transaction (ON COMMIT DROP); with HOLD it stays with
//! the session's default-node connection, which stays with the session until it ends.

use sqlparser::ast::{Declare, Ident, Statement};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::error::{SgError, SgResult};
use crate::quote::ident;

/// A cursor's name as PostgreSQL stores it.
fn fold(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

/// The temporary table holding cursor `name`'s rows.
fn table_of(name: &str) -> String {
    format!("pg_temp.{}", ident(&format!("sg_cursor_{name}")))
}

/// Column `i` of that table (the first, `__sg_n`, numbers the rows).
fn column(i: usize) -> String {
    format!("c{}", i + 1)
}

/// The statement creating `table`, which holds `query`'s rows (named `names`) after their
/// number; dropped at commit unless `hold`.
pub(super) fn holding_table(table: &str, names: &[String], query: &str, hold: bool) -> String {
    let mut cols = vec!["__sg_n".to_string()];
    cols.extend((0..names.len()).map(column));
    let on_commit = if hold { "" } else { " ON COMMIT DROP" };
    format!(
        "CREATE TEMP TABLE {table} ({}){on_commit} AS SELECT 0::int8, s.* FROM ({query}) AS s WITH NO DATA",
        cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
    )
}

/// The query reading `table`'s rows back in their order, under their names.
pub(super) fn reading(table: &str, names: &[String]) -> SgResult<Box<sqlparser::ast::Query>> {
    let list: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{} AS {}", ident(&column(i)), ident(n)))
        .collect();
    let select = format!(
        "SELECT {} FROM {table} ORDER BY \"__sg_n\"",
        if list.is_empty() {
            String::new()
        } else {
            list.join(", ")
        }
    );
    let parsed = crate::analyze::parse_sql(&select).map_err(SgError::internal)?;
    match parsed.into_iter().next() {
        Some(Statement::Query(q)) => Ok(q),
        _ => Err(SgError::internal("a holding table's query did not parse")),
    }
}

/// The cursor's DECLARE and the statement that creates its table, given the result's names.
fn statements(d: &Declare, names: &[String]) -> SgResult<(String, String)> {
    let cursor = d
        .names
        .first()
        .map(fold)
        .ok_or_else(|| SgError::internal("a cursor without a name"))?;
    let query = d
        .for_query
        .as_ref()
        .ok_or_else(|| SgError::internal("a cursor without a query"))?;
    let table = table_of(&cursor);
    let create = holding_table(&table, names, &query.to_string(), d.hold == Some(true));
    let mut declared = d.clone();
    declared.for_query = Some(reading(&table, names)?);
    declared.names = vec![Ident::with_quote('"', cursor)];
    let declare = Statement::Declare {
        stmts: vec![declared],
    }
    .to_string();
    Ok((create, declare))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Runs `DECLARE ... CURSOR` over rows of several nodes; None when the statement is not a
    /// cursor or PostgreSQL on the default node reads all of its rows itself.
    pub(in crate::session) async fn declare_cursor(
        &mut self,
        text: &str,
    ) -> SgResult<Option<bool>> {
        let Some(Statement::Declare { stmts }) = crate::analyze::parse_sql(text)
            .ok()
            .and_then(|mut v| v.pop())
        else {
            return Ok(None);
        };
        let [d] = stmts.as_slice() else {
            return Ok(None);
        };
        let Some(query) = d.for_query.as_ref() else {
            return Ok(None);
        };
        if self.on_default(query) {
            return Ok(None);
        }
        if !query.locks.is_empty() {
            // Its rows would be copies: nothing locked, no WHERE CURRENT OF.
            self.error(&SgError::unsupported(
                "a FOR UPDATE/FOR SHARE cursor over rows of several nodes",
            ));
            return Ok(Some(false));
        }
        let hold = d.hold == Some(true);
        if !hold && self.txn.txn.is_none() {
            // portalcmds.c PerformCursorOpen via RequireTransactionBlock (a multi-statement
            // string's implicit block counts as one).
            self.error(&SgError::new(
                "25P01",
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
            return Ok(Some(false));
        }
        let q = query.to_string();
        let Some((names, rows)) = self.captured_with_names(&q).await? else {
            return Ok(Some(false));
        };
        let (create, declare) = statements(d, &names)?;
        let node = self.shared.config.default_node;
        if hold {
            // The table (and the held cursor) live in this connection's session.
            self.txn.sticky.insert(node);
        }
        let implicit = self.txn.txn.is_none();
        if implicit {
            self.begin_implicit();
        }
        let cursor = d.names.first().map(fold).unwrap_or_default();
        let table = table_of(&cursor);
        for sql in [format!("DROP TABLE IF EXISTS {table}"), create] {
            if !self.on_default_node(&sql).await? {
                return Ok(Some(false));
            }
        }
        if self.copy_rows(&table, rows, true).await?.is_none() {
            return Ok(Some(false));
        }
        self.forward_default(&declare).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_its_table_in_order() {
        let Some(Statement::Declare { stmts }) =
            crate::analyze::parse_sql("DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT id, id FROM t")
                .ok()
                .and_then(|mut v| v.pop())
        else {
            panic!("not a DECLARE");
        };
        let (create, declare) =
            statements(&stmts[0], &["id".into(), "id".into()]).unwrap_or_default();
        assert_eq!(
            create,
            "CREATE TEMP TABLE pg_temp.\"sg_cursor_c\" (\"__sg_n\", \"c1\", \"c2\") AS SELECT 0::int8, s.* FROM (SELECT id, id FROM t) AS s WITH NO DATA"
        );
        assert_eq!(
            declare,
            "DECLARE \"c\" SCROLL CURSOR WITH HOLD FOR SELECT \"c1\" AS \"id\", \"c2\" AS \"id\" FROM pg_temp.\"sg_cursor_c\" ORDER BY \"__sg_n\""
        );
    }
}
