//! UPDATE of the distribution column: each row leaves the node it is on and arrives at the
//! node of its new key, as PostgreSQL moves a row between partitions (a DELETE and an INSERT,
//! nodeModifyTable.c ExecCrossPartitionUpdate). Citus refuses such an UPDATE.
//!
//! The UPDATE becomes, on every node its WHERE may reach, `DELETE ... RETURNING *` plus the
//! SET expressions evaluated on the old row (as an UPDATE evaluates them); shardgate puts the
//! new values in place of the assigned columns and copies each row into its key's node. The
//! statement's transaction (implicit, or the client's block) makes it atomic.

use sqlparser::ast::{
    AssignmentTarget, FromTable, Ident, SelectItem, Statement, WildcardAdditionalOptions,
};

use super::route::{plan, reparse, table, Values};
use super::Plan;
use crate::analyze::scope::table_name;
use crate::analyze::Stmt;
use crate::error::{SgError, SgResult};
use crate::shardmap::ShardMap;

/// Columns holding the new values are named this, then the assignment's position.
pub const NEW_VALUE: &str = "__sg_set_";

pub fn moves(stmt: &Stmt, text: &str, values: &Values, map: &ShardMap) -> SgResult<Plan> {
    if !values.params.is_empty() {
        return Err(SgError::unsupported(
            "UPDATE of the distribution column with parameters (send the values as literals)",
        ));
    }
    // Where the rows are now: where the same UPDATE would run if it kept its key.
    let mut kept = stmt.clone();
    kept.moves_key = false;
    let sources = plan(&kept, text, values, map)?.nodes();
    let Statement::Update(u) = reparse(text)? else {
        return Err(SgError::internal("UPDATE did not re-parse as one"));
    };
    let sqlparser::ast::TableFactor::Table { name, .. } = &u.table.relation else {
        return Err(SgError::internal("UPDATE of something other than a table"));
    };
    let t = table(map, &table_name(name))?;
    let mut returning = vec![SelectItem::Wildcard(WildcardAdditionalOptions::default())];
    let mut assigned = Vec::new();
    for (i, a) in u.assignments.iter().enumerate() {
        let AssignmentTarget::ColumnName(n) = &a.target else {
            return Err(SgError::internal("a column tuple in a moving UPDATE"));
        };
        assigned.push(table_name(n));
        returning.push(SelectItem::ExprWithAlias {
            expr: a.value.clone(),
            alias: Ident::new(format!("{NEW_VALUE}{i}")),
        });
    }
    let Statement::Delete(mut delete) = reparse("DELETE FROM t")? else {
        return Err(SgError::internal("DELETE template did not parse"));
    };
    delete.from = FromTable::WithFromKeyword(vec![u.table.clone()]);
    delete.selection = u.selection.clone();
    delete.returning = Some(returning);
    let mut delete_sql = Statement::Delete(delete).to_string();
    if let Some(clock) = values.clock {
        delete_sql = super::clock::rewrite(&delete_sql, clock)?;
    }
    Ok(Plan::MoveRows {
        table: t.name.clone(),
        column: t.column.clone(),
        delete_sql,
        sources,
        targets: t.nodes(map.node_count),
        assigned,
    })
}
