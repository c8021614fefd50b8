//! Derived tables and CTEs read in a FROM: whether their rows over all nodes are the union of
//! their rows on each node, and which output column carries the distribution key.
//!
//! A subquery that keeps each row on its node (no LIMIT, no aggregate, DISTINCT or window unless
//! it is per key) can run on every node inside the outer query: this is Citus's "subquery
//! pushdown". Its output is then a virtual table distributed like the table behind it, joinable
//! on the key column it passes through.

use std::collections::HashMap;

use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, Ident, JoinOperator, Query, Select, SelectItem, SetExpr,
    TableAlias, TableFactor, TableWithJoins, WindowType,
};

use super::scope::{function_name, ident_name, table_name};
use crate::shardmap::ShardMap;

/// What a subquery in FROM (or a CTE) is, seen from the query that reads it.
#[derive(Debug, Clone)]
pub enum Derived {
    /// The same rows on every node: only reference tables, functions, VALUES.
    Replicated,
    /// Rows are the union of its rows on each node.
    PerNode(PerNode),
    /// Needs rows of several nodes at once, or reads tables outside the shard map.
    Opaque,
}

#[derive(Debug, Clone)]
pub struct PerNode {
    /// Identity of the subquery's SELECT (its entry in `Found::scopes`).
    pub select: usize,
    /// The distributed table behind the anchor (for co-location and pruning).
    pub table: String,
    /// The name the subquery's FROM gives the anchor.
    pub anchor: String,
    /// The output column that carries the anchor's distribution key, if one does.
    pub key: Option<String>,
    /// Its position among the output columns, when known.
    pub key_pos: Option<usize>,
}

/// The column list of `AS a (x, y, ...)`, as written.
pub fn alias_idents(alias: Option<&TableAlias>) -> Vec<Ident> {
    alias
        .map(|a| a.columns.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

/// The name a key column goes by under a column list that renames columns by position:
/// `key_pos` is its position when known; None when the list makes it unknown.
pub fn renamed_key(key: &str, key_pos: Option<usize>, columns: &[Ident]) -> Option<String> {
    let names: Vec<String> = columns.iter().map(ident_name).collect();
    match (names.is_empty(), key_pos) {
        (true, _) => Some(key.to_string()),
        (false, Some(p)) if p < names.len() => Some(names[p].clone()),
        (false, Some(_)) if !names.iter().any(|n| n == key) => Some(key.to_string()),
        _ => None,
    }
}

/// A distributed (or per-node virtual) table in the subquery's FROM.
struct Member {
    alias: String,
    table: String,
    key: Option<String>,
}

/// The single SELECT of a query with no WITH or set operation.
pub fn plain_select(q: &Query) -> Option<&Select> {
    if q.with.is_some() {
        return None;
    }
    match q.body.as_ref() {
        SetExpr::Select(s) => Some(s),
        _ => None,
    }
}

/// Analyses `q` read under the name `alias` (with optional column aliases `columns`); `ctes`
/// holds the CTEs visible to it.
pub fn analyze(
    q: &Query,
    columns: &[Ident],
    map: &ShardMap,
    ctes: &HashMap<String, Derived>,
) -> Derived {
    let Some(sel) = plain_select(q) else {
        return Derived::Opaque;
    };
    let mut members = Vec::new();
    for twj in &sel.from {
        if !from_members(twj, map, ctes, &mut members) {
            return Derived::Opaque;
        }
    }
    // LIMIT picks rows by physical order, which differs between nodes even for reference tables.
    let limited = q.limit_clause.is_some() || q.fetch.is_some();
    if limited {
        return Derived::Opaque;
    }
    if members.is_empty() {
        return Derived::Replicated;
    }
    let keyed = |e: &Expr| keyed_member(e, &members).is_some();
    let mut windows_ok = true;
    let mut aggregates = false;
    // The subquery's own calls (select list, HAVING, ORDER BY), not its subqueries'.
    super::aggregates::top_level_functions(q, &mut |f| match &f.over {
        Some(WindowType::WindowSpec(w)) => windows_ok &= w.partition_by.iter().any(keyed),
        Some(_) => windows_ok = false,
        None => {
            aggregates |= super::aggregates::is_aggregate_name(&function_name(f))
                || !f.within_group.is_empty();
        }
    });
    if !windows_ok || !sel.named_window.is_empty() {
        return Derived::Opaque;
    }
    let group: &[Expr] = match &sel.group_by {
        GroupByExpr::Expressions(v, m) if m.is_empty() => v,
        _ => return Derived::Opaque,
    };
    // GROUP BY may name an output column by position.
    let output = |g: &Expr| -> Option<Expr> {
        match g {
            Expr::Value(v) => {
                let n: usize = v.value.to_string().parse().ok()?;
                match sel.projection.get(n.checked_sub(1)?)? {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        Some(e.clone())
                    }
                    _ => None,
                }
            }
            // An output alias is not followed: PostgreSQL resolves a GROUP BY name to an input
            // column first, and the input columns are not known here.
            _ => None,
        }
    };
    let group_keyed = group
        .iter()
        .any(|g| keyed(g) || output(g).is_some_and(|e| keyed(&e)));
    if (aggregates || sel.having.is_some() || !group.is_empty()) && !group_keyed {
        return Derived::Opaque;
    }
    let keeps_key = |items: &[SelectItem]| {
        items.iter().any(|i| match i {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => keyed(e),
            SelectItem::Wildcard(_) => true,
            _ => false,
        })
    };
    match &sel.distinct {
        None | Some(Distinct::All) => {}
        Some(Distinct::Distinct) if keeps_key(&sel.projection) => {}
        Some(Distinct::On(exprs)) if exprs.iter().any(keyed) => {}
        Some(_) => return Derived::Opaque,
    }
    let (anchor, key, key_pos) = exposed_key(sel, &members, columns);
    let m = &members[anchor];
    Derived::PerNode(PerNode {
        select: sel as *const Select as usize,
        table: m.table.clone(),
        anchor: m.alias.clone(),
        key,
        key_pos,
    })
}

/// Adds the distributed members of one FROM item; false when an item makes the subquery opaque.
fn from_members(
    twj: &TableWithJoins,
    map: &ShardMap,
    ctes: &HashMap<String, Derived>,
    out: &mut Vec<Member>,
) -> bool {
    let first = out.len();
    if !factor_member(&twj.relation, map, ctes, out) {
        return false;
    }
    for j in &twj.joins {
        let before = out.len();
        if !factor_member(&j.relation, map, ctes, out) {
            return false;
        }
        // The NULL-extended side of an outer join has NULL keys on every node: its key
        // cannot keep groups (or DISTINCT rows) on one node.
        let nullable = match &j.join_operator {
            JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_) => None,
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => Some(before..out.len()),
            JoinOperator::Right(_) | JoinOperator::RightOuter(_) => Some(first..before),
            _ => Some(first..out.len()),
        };
        for m in nullable.map(|r| &mut out[r]).into_iter().flatten() {
            m.key = None;
        }
    }
    true
}

fn factor_member(
    f: &TableFactor,
    map: &ShardMap,
    ctes: &HashMap<String, Derived>,
    out: &mut Vec<Member>,
) -> bool {
    let named = |alias: &Option<sqlparser::ast::TableAlias>, default: String| {
        alias
            .as_ref()
            .map(|a| ident_name(&a.name))
            .unwrap_or(default)
    };
    let derived = |d: &Derived, alias: String, out: &mut Vec<Member>| match d {
        Derived::Replicated => true,
        Derived::Opaque => false,
        Derived::PerNode(p) => {
            out.push(Member {
                alias,
                table: p.table.clone(),
                key: p.key.clone(),
            });
            true
        }
    };
    match f {
        TableFactor::Table {
            name, alias, args, ..
        } if args.is_none() => {
            let table = table_name(name);
            let columns = alias_idents(alias.as_ref());
            let alias_name = named(alias, table.clone());
            // A CTE of that name hides the table (PostgreSQL looks CTEs up first).
            let cte = (name.0.len() == 1).then(|| ctes.get(&table)).flatten();
            if let Some(d) = cte {
                // A column list at the read would rename the key: give up on following it.
                if !columns.is_empty() && matches!(d, Derived::PerNode(_)) {
                    return false;
                }
                derived(d, alias_name, out)
            } else if let Some(d) = map.get(&table) {
                if !d.is_reference() {
                    let key = renamed_key(&d.column, map.key_position(&table), &columns);
                    out.push(Member {
                        alias: alias_name,
                        table,
                        key,
                    });
                }
                true
            } else {
                false
            }
        }
        // Set-returning functions give the same rows everywhere.
        TableFactor::Table { .. }
        | TableFactor::Function { .. }
        | TableFactor::TableFunction { .. }
        | TableFactor::UNNEST { .. } => true,
        TableFactor::Derived {
            lateral: false,
            subquery,
            alias,
            ..
        } => {
            let d = analyze(subquery, &alias_idents(alias.as_ref()), map, ctes);
            derived(&d, named(alias, String::new()), out)
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => from_members(table_with_joins, map, ctes, out),
        _ => false,
    }
}

/// The member whose distribution key `e` names: `alias.key`, or `key` when one member has it.
fn keyed_member(e: &Expr, members: &[Member]) -> Option<usize> {
    match e {
        Expr::Nested(inner) => keyed_member(inner, members),
        Expr::Identifier(id) => {
            let name = ident_name(id);
            let hits: Vec<usize> = (0..members.len())
                .filter(|&i| members[i].key.as_deref() == Some(name.as_str()))
                .collect();
            match hits.as_slice() {
                [one] => Some(*one),
                _ => None,
            }
        }
        Expr::CompoundIdentifier(p) if p.len() >= 2 => {
            let (q, c) = (ident_name(&p[p.len() - 2]), ident_name(&p[p.len() - 1]));
            members
                .iter()
                .position(|m| m.alias == q && m.key.as_deref() == Some(c.as_str()))
        }
        _ => None,
    }
}

/// Which member anchors the subquery, and the output name of its key if the SELECT list passes
/// it through unchanged.
fn exposed_key(
    sel: &Select,
    members: &[Member],
    columns: &[Ident],
) -> (usize, Option<String>, Option<usize>) {
    let has_wildcard = sel.projection.iter().any(|i| {
        matches!(
            i,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    });
    for (pos, item) in sel.projection.iter().enumerate() {
        // Output position: known while no wildcard comes first.
        let out_pos = (!sel.projection[..pos].iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }))
        .then_some(pos);
        let (m, name, out_pos) = match item {
            SelectItem::UnnamedExpr(e) => match keyed_member(e, members) {
                Some(m) => (m, members[m].key.clone(), out_pos),
                None => continue,
            },
            SelectItem::ExprWithAlias { expr, alias } => match keyed_member(expr, members) {
                Some(m) => (m, Some(ident_name(alias)), out_pos),
                None => continue,
            },
            // `*` over one plain table passes its key column through under its own name.
            SelectItem::Wildcard(_)
                if members.len() == 1
                    && columns.is_empty()
                    && pos == 0
                    && sel.projection.len() == 1 =>
            {
                // Its position depends on the table's columns: unknown here.
                (0, members[0].key.clone(), None)
            }
            _ => continue,
        };
        // Column aliases rename by position, which a wildcard makes unknown.
        let name = match (columns.get(pos), columns.is_empty()) {
            (_, true) => name,
            (Some(c), false) if !has_wildcard => Some(ident_name(c)),
            _ => None,
        };
        if name.is_some() {
            return (m, name, out_pos);
        }
    }
    (0, None, None)
}

impl super::scope::Found {
    /// Joins each derived table or CTE read in the main query to the anchor table inside it,
    /// and makes the subquery's tables part of the main query (they run per node with it).
    /// False when a subquery's SELECT was never walked (its tables are unknown).
    pub fn resolve_derived(&mut self) -> bool {
        let mut done = vec![false; self.derived.len()];
        // A CTE read twice is two tables: its body is joined to its first read only, and no
        // read's pin narrows the body (the other read may need other keys).
        let reads = |select: usize, all: &[(usize, usize, String)]| {
            all.iter().filter(|(_, s, _)| *s == select).count()
        };
        let mut linked: Vec<usize> = Vec::new();
        loop {
            let mut progress = false;
            for (n, (v, select, anchor)) in self.derived.iter().enumerate() {
                if done[n] || !self.accesses[*v].top {
                    continue;
                }
                done[n] = true;
                progress = true;
                let Some(range) = self
                    .scopes
                    .iter()
                    .find(|(p, _)| p == select)
                    .map(|(_, r)| r.clone())
                else {
                    return false;
                };
                let Some(inner) = range.clone().find(|&i| self.accesses[i].alias == *anchor) else {
                    return false;
                };
                for i in range.clone() {
                    self.accesses[i].top = true;
                }
                if reads(*select, &self.derived) > 1 {
                    let inner_pin = self.accesses[inner].pin.clone();
                    self.accesses[*v].pin = self.accesses[*v].pin.clone().and(inner_pin);
                    if !linked.contains(select) {
                        linked.push(*select);
                        self.key_joins.push((*v, inner));
                    }
                    continue;
                }
                // Only rows with keys the outer query keeps matter inside, and every row of the
                // derived table comes from the anchor's rows: each pin holds for the other.
                let (outer_pin, inner_pin) = (
                    self.accesses[*v].pin.clone(),
                    self.accesses[inner].pin.clone(),
                );
                self.accesses[*v].pin = outer_pin.clone().and(inner_pin);
                self.accesses[inner].pin = self.accesses[inner].pin.clone().and(outer_pin);
                let inner_pin = self.accesses[inner].pin.clone();
                for &(a, b) in &self.key_joins {
                    for (x, y) in [(a, b), (b, a)] {
                        if x == inner && range.contains(&y) {
                            self.accesses[y].pin =
                                self.accesses[y].pin.clone().and(inner_pin.clone());
                        }
                    }
                }
                self.key_joins.push((*v, inner));
            }
            if !progress {
                return true;
            }
        }
    }
}
