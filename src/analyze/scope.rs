//! Walks every SELECT (and the target of an UPDATE/DELETE) and records, per occurrence of a
//! distributed or reference table, the pin its scope's WHERE and inner-join ONs put on its key,
//! and which occurrences are joined on their keys.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, JoinConstraint, JoinOperator, ObjectName, Query, Select,
    TableFactor, TableWithJoins, Visit, Visitor,
};

use super::derived::Derived;
use super::pins::{pin_of, KeyMatcher, Pin};
use super::Access;
use crate::shardmap::ShardMap;

pub fn ident_name(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

/// A function call's unqualified, case-folded name.
pub fn function_name(f: &sqlparser::ast::Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(ident_name)
        .unwrap_or_default()
}

/// The unqualified, case-folded name the shard map knows a table by.
pub fn table_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(ident_name)
        .unwrap_or_default()
}

struct Binding {
    alias: String,
    table: String,
    /// Empty for a derived table that does not pass its key through.
    key: String,
    reference: bool,
    /// A derived table or CTE read per node: its SELECT and the alias of its anchor there.
    link: Option<(usize, String)>,
}

/// What a FROM item contributes to the outer-join check: rows of some nodes, or the same rows
/// on every node (which a per-node outer join would repeat).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    Distributed,
    Replicated,
}

struct Matcher<'a> {
    alias: &'a str,
    key: &'a str,
    unqualified_ok: bool,
}

impl KeyMatcher for Matcher<'_> {
    fn is_key(&self, e: &Expr) -> bool {
        match e {
            Expr::Identifier(id) => self.unqualified_ok && ident_name(id) == self.key,
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                ident_name(&parts[parts.len() - 1]) == self.key
                    && ident_name(&parts[parts.len() - 2]) == self.alias
            }
            _ => false,
        }
    }
}

/// What the walk found.
#[derive(Default)]
pub struct Found {
    pub accesses: Vec<Access>,
    pub key_joins: Vec<(usize, usize)>,
    pub touches_local: bool,
    /// An outer join that would repeat or lose rows if run per node.
    pub outer_join_risk: bool,
    /// How the main query may name distribution columns: "alias.key", and "key" when only one
    /// table of the scope has that key column.
    pub top_keys: Vec<String>,
    /// Each SELECT visited (by address) and the range of `accesses` its FROM produced.
    pub scopes: Vec<(usize, std::ops::Range<usize>)>,
    /// Derived tables and CTE reads run per node: (the virtual access, its SELECT, the alias of
    /// its anchor there).
    pub derived: Vec<(usize, usize, String)>,
    /// A subquery or CTE in FROM that needs rows of several nodes at once (or reads local
    /// tables).
    pub opaque_from: bool,
}

pub struct Collector<'a> {
    map: &'a ShardMap,
    /// Bindings of the scope being built joined by USING on their keys (indexes into it).
    using_eqs: Vec<(usize, usize)>,
    top: Option<*const Select>,
    ctes: HashMap<String, Derived>,
    pub found: Found,
}

impl<'a> Collector<'a> {
    pub fn new(map: &'a ShardMap, top: Option<&Select>) -> Collector<'a> {
        Collector {
            map,
            using_eqs: Vec::new(),
            top: top.map(|s| s as *const Select),
            ctes: HashMap::new(),
            found: Found::default(),
        }
    }

    /// Records one scope: its FROM items, its WHERE, and `target` (an UPDATE/DELETE's table).
    pub fn scope(&mut self, from: &[TableWithJoins], selection: Option<&Expr>, top: bool) {
        let mut bindings = Vec::new();
        let mut conds: Vec<&Expr> = selection.into_iter().collect();
        let mut outer_conds: Vec<&Expr> = Vec::new();
        for twj in from {
            self.flatten(twj, &mut bindings, &mut conds, &mut outer_conds, top);
        }
        self.finish_scope(bindings, conds, outer_conds, top);
    }

    fn binding(&self, name: &ObjectName, alias: Option<&Ident>) -> Option<Binding> {
        let table = table_name(name);
        let dist = self.map.get(&table)?;
        Some(Binding {
            alias: alias.map(ident_name).unwrap_or_else(|| table.clone()),
            key: dist.column.clone(),
            reference: dist.is_reference(),
            table,
            link: None,
        })
    }

    fn flatten<'e>(
        &mut self,
        twj: &'e TableWithJoins,
        bindings: &mut Vec<Binding>,
        conds: &mut Vec<&'e Expr>,
        outer: &mut Vec<&'e Expr>,
        top: bool,
    ) {
        let first = bindings.len();
        let leftmost_is_reference =
            self.factor(&twj.relation, bindings, conds, outer, top) == Rows::Replicated;
        for j in &twj.joins {
            let before = bindings.len();
            self.factor(&j.relation, bindings, conds, outer, top);
            let (constraint, outer_join) = match &j.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::CrossJoin(c) => {
                    (Some(c), false)
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
                    if leftmost_is_reference {
                        self.found.outer_join_risk = true;
                    }
                    (Some(c), true)
                }
                JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c) => {
                    self.found.outer_join_risk = true;
                    (Some(c), true)
                }
                _ => {
                    self.found.outer_join_risk = true;
                    (None, true)
                }
            };
            match constraint {
                Some(JoinConstraint::On(e)) => {
                    if outer_join {
                        outer.push(e);
                    } else {
                        conds.push(e);
                    }
                }
                // USING (key): the joined table's key equals the same-named key on the left.
                Some(JoinConstraint::Using(cols)) if bindings.len() == before + 1 => {
                    let r = before;
                    for c in cols {
                        let name = table_name(c);
                        if bindings[r].reference || bindings[r].key != name {
                            continue;
                        }
                        if let Some(l) =
                            (first..r).find(|&i| !bindings[i].reference && bindings[i].key == name)
                        {
                            self.using_eqs.push((l, r));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Records one FROM item's bindings; says whether its rows are the same on every node.
    fn factor<'e>(
        &mut self,
        f: &'e TableFactor,
        bindings: &mut Vec<Binding>,
        conds: &mut Vec<&'e Expr>,
        outer: &mut Vec<&'e Expr>,
        top: bool,
    ) -> Rows {
        match f {
            TableFactor::Table {
                name, alias, args, ..
            } if args.is_none() => {
                let alias_name = alias.as_ref().map(|a| &a.name);
                if let Some(b) = self.binding(name, alias_name) {
                    let rows = if b.reference {
                        Rows::Replicated
                    } else {
                        Rows::Distributed
                    };
                    bindings.push(b);
                    return rows;
                }
                let table = table_name(name);
                match self.ctes.get(&table).cloned() {
                    Some(d) => {
                        let alias = alias_name.map(ident_name).unwrap_or(table);
                        self.derived_binding(&d, alias, bindings)
                    }
                    None => {
                        self.found.touches_local = true;
                        Rows::Distributed
                    }
                }
            }
            TableFactor::Derived {
                lateral: false,
                subquery,
                alias,
                ..
            } => {
                let cols: Vec<Ident> = alias
                    .as_ref()
                    .map(|a| a.columns.iter().map(|c| c.name.clone()).collect())
                    .unwrap_or_default();
                let d = super::derived::analyze(subquery, &cols, self.map, &self.ctes);
                let alias = alias
                    .as_ref()
                    .map(|a| ident_name(&a.name))
                    .unwrap_or_default();
                self.derived_binding(&d, alias, bindings)
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                let first = bindings.len();
                self.flatten(table_with_joins, bindings, conds, outer, top);
                if bindings[first..].iter().all(|b| b.reference) {
                    Rows::Replicated
                } else {
                    Rows::Distributed
                }
            }
            // Set-returning functions, VALUES: the same rows on every node.
            TableFactor::Table { .. }
            | TableFactor::Function { .. }
            | TableFactor::TableFunction { .. }
            | TableFactor::UNNEST { .. } => Rows::Replicated,
            // LATERAL and the rest: their tables are seen as subquery scopes; for outer joins,
            // assume the worst.
            _ => Rows::Replicated,
        }
    }

    /// A derived table or CTE read: a per-node one becomes a virtual binding distributed like
    /// its anchor table.
    fn derived_binding(&mut self, d: &Derived, alias: String, bindings: &mut Vec<Binding>) -> Rows {
        match d {
            Derived::Replicated => Rows::Replicated,
            Derived::Opaque => {
                self.found.opaque_from = true;
                Rows::Replicated
            }
            Derived::PerNode(p) => {
                bindings.push(Binding {
                    alias,
                    table: p.table.clone(),
                    key: p.key.clone().unwrap_or_default(),
                    reference: false,
                    link: Some((p.select, p.anchor.clone())),
                });
                Rows::Distributed
            }
        }
    }

    fn finish_scope(
        &mut self,
        bindings: Vec<Binding>,
        conds: Vec<&Expr>,
        outer: Vec<&Expr>,
        top: bool,
    ) {
        let base = self.found.accesses.len();
        let using = std::mem::take(&mut self.using_eqs);
        // An unqualified name of a column joined with USING is the merged column: it names the
        // key of every binding the USING joined.
        let merged = |i: usize| using.iter().any(|&(l, r)| l == i || r == i);
        let unqualified_ok = |i: usize| {
            let b = &bindings[i];
            let same_key = bindings.iter().filter(|o| o.key == b.key).count();
            same_key == 1 || (merged(i) && using.len() + 1 == same_key)
        };
        if top {
            for (i, b) in bindings
                .iter()
                .enumerate()
                .filter(|(_, b)| !b.reference && !b.key.is_empty())
            {
                self.found.top_keys.push(format!("{}.{}", b.alias, b.key));
                if unqualified_ok(i) {
                    self.found.top_keys.push(b.key.clone());
                }
            }
        }
        for (i, b) in bindings.iter().enumerate() {
            let pin = if b.reference {
                Pin::All
            } else {
                let m = Matcher {
                    alias: &b.alias,
                    key: &b.key,
                    unqualified_ok: unqualified_ok(i),
                };
                conds.iter().fold(Pin::All, |p, c| p.and(pin_of(c, &m)))
            };
            if let Some((select, anchor)) = &b.link {
                self.found
                    .derived
                    .push((self.found.accesses.len(), *select, anchor.clone()));
            }
            self.found.accesses.push(Access {
                table: b.table.clone(),
                alias: b.alias.clone(),
                pin,
                top,
            });
        }
        // Equalities between two bindings' distribution columns, from USING and from AND-ed
        // conditions.
        let mut eqs: Vec<(usize, usize)> =
            using.iter().map(|&(l, r)| (base + l, base + r)).collect();
        for c in conds.iter().chain(outer.iter()) {
            conjuncts(c, &mut |e| {
                if let Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } = e
                {
                    let side = |x: &Expr| {
                        bindings.iter().position(|b| {
                            !b.reference
                                && !b.key.is_empty()
                                && Matcher {
                                    alias: &b.alias,
                                    key: &b.key,
                                    unqualified_ok: false,
                                }
                                .is_key(x)
                        })
                    };
                    if let (Some(a), Some(b)) = (side(left), side(right)) {
                        if a != b {
                            eqs.push((base + a, base + b));
                        }
                    }
                }
            });
        }
        // A pin on one side of a key equality pins the other side too.
        let direct: Vec<Pin> = self.found.accesses[base..]
            .iter()
            .map(|a| a.pin.clone())
            .collect();
        for &(a, b) in &eqs {
            let (pa, pb) = (direct[a - base].clone(), direct[b - base].clone());
            let acc = &mut self.found.accesses;
            acc[a].pin = acc[a].pin.clone().and(pb);
            acc[b].pin = acc[b].pin.clone().and(pa);
        }
        self.found.key_joins.extend(eqs);
    }
}

/// Calls `f` on each AND-ed part of a condition.
pub fn conjuncts<'e>(e: &'e Expr, f: &mut dyn FnMut(&'e Expr)) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, f);
            conjuncts(right, f);
        }
        Expr::Nested(inner) => conjuncts(inner, f),
        other => f(other),
    }
}

impl Visitor for Collector<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(w) = &q.with {
            for cte in &w.cte_tables {
                let cols: Vec<Ident> = cte.alias.columns.iter().map(|c| c.name.clone()).collect();
                let d = super::derived::analyze(&cte.query, &cols, self.map, &self.ctes);
                self.ctes.insert(ident_name(&cte.alias.name), d);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        let top = self.top.is_some_and(|t| std::ptr::eq(t, s));
        let start = self.found.accesses.len();
        self.scope(&s.from, s.selection.as_ref(), top);
        let end = self.found.accesses.len();
        self.found
            .scopes
            .push((s as *const Select as usize, start..end));
        ControlFlow::Continue(())
    }
}

/// Walks a whole statement.
pub fn collect<V: Visit>(node: &V, map: &ShardMap, top: Option<&Select>) -> Found {
    let mut c = Collector::new(map, top);
    let _ = node.visit(&mut c);
    c.found
}
