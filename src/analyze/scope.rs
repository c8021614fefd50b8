//! Walks every SELECT (and the target of an UPDATE/DELETE) and records, per occurrence of a
//! distributed or reference table, the pin its scope's WHERE and inner-join ONs put on its key,
//! and which occurrences are joined on their keys.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, JoinConstraint, JoinOperator, ObjectName, Query, Select,
    TableAlias, TableFactor, TableWithJoins, Visit, Visitor,
};

use super::derived::{alias_idents, renamed_key, Derived};
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
    /// On the NULL-extended side of an outer join: its key is NULL in rows of every node.
    nullable: bool,
}

/// An outer join's ON condition and the bindings on its NULL-extended side (None: both sides,
/// as in a FULL join). A pin may cross its key equalities only towards that side.
type OuterCond<'e> = (&'e Expr, Option<std::ops::Range<usize>>);

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
    /// `FROM ONLY t` of a sharded table (the parser reads it as table `only` aliased `t`).
    pub only: Option<String>,
}

pub struct Collector<'a> {
    map: &'a ShardMap,
    /// Bindings of the scope being built joined by USING on their keys (indexes into it), and
    /// whether a pin may cross from the right one to the left one (not into a preserved side).
    using_eqs: Vec<(usize, usize, bool)>,
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
        let mut outer_conds: Vec<OuterCond> = Vec::new();
        for twj in from {
            self.flatten(twj, &mut bindings, &mut conds, &mut outer_conds, top);
        }
        self.finish_scope(bindings, conds, outer_conds, top);
    }

    fn binding(&self, name: &ObjectName, alias: Option<&TableAlias>) -> Option<Binding> {
        let table = table_name(name);
        // A CTE of that name hides the table (PostgreSQL looks CTEs up first).
        if name.0.len() == 1 && self.ctes.contains_key(&table) {
            return None;
        }
        let dist = self.map.get(&table)?;
        // `AS a (x, y, ...)` renames columns by position: follow the key's position when known.
        let key = renamed_key(
            &dist.column,
            self.map.key_position(&table),
            &alias_idents(alias),
        )
        .unwrap_or_default();
        Some(Binding {
            alias: alias
                .map(|a| ident_name(&a.name))
                .unwrap_or_else(|| table.clone()),
            key,
            reference: dist.is_reference(),
            table,
            link: None,
            nullable: false,
        })
    }

    fn flatten<'e>(
        &mut self,
        twj: &'e TableWithJoins,
        bindings: &mut Vec<Binding>,
        conds: &mut Vec<&'e Expr>,
        outer: &mut Vec<OuterCond<'e>>,
        top: bool,
    ) {
        let first = bindings.len();
        let leftmost_is_reference =
            self.factor(&twj.relation, bindings, conds, outer, top) == Rows::Replicated;
        for j in &twj.joins {
            let before = bindings.len();
            self.factor(&j.relation, bindings, conds, outer, top);
            let after = bindings.len();
            // The NULL-extended side of an outer join, if any (None inside: both sides).
            let (constraint, nulls) = match &j.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::CrossJoin(c) => {
                    (Some(c), None)
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
                    if leftmost_is_reference {
                        self.found.outer_join_risk = true;
                    }
                    (Some(c), Some(Some(before..after)))
                }
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => {
                    self.found.outer_join_risk = true;
                    (Some(c), Some(Some(first..before)))
                }
                JoinOperator::FullOuter(c) => {
                    self.found.outer_join_risk = true;
                    (Some(c), Some(None))
                }
                _ => {
                    self.found.outer_join_risk = true;
                    (None, Some(None))
                }
            };
            if let Some(side) = &nulls {
                let range = side.clone().unwrap_or(first..after);
                for b in &mut bindings[range] {
                    b.nullable = true;
                }
            }
            match constraint {
                Some(JoinConstraint::On(e)) => match nulls {
                    Some(side) => outer.push((e, side)),
                    None => conds.push(e),
                },
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
                            // Only an inner USING lets a pin on the right cross to the left.
                            self.using_eqs.push((l, r, nulls.is_none()));
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
        outer: &mut Vec<OuterCond<'e>>,
        top: bool,
    ) -> Rows {
        match f {
            TableFactor::Table {
                name, alias, args, ..
            } if args.is_none() => {
                // On the workers a sharded table is a partitioned table: ONLY sees none of its rows.
                if let (Some(id), Some(a)) = (name.0.first().and_then(|p| p.as_ident()), alias) {
                    let t = ident_name(&a.name);
                    if name.0.len() == 1
                        && id.quote_style.is_none()
                        && id.value.eq_ignore_ascii_case("only")
                        && self.map.get(&t).is_some()
                    {
                        self.found.only = Some(t);
                    }
                }
                if let Some(b) = self.binding(name, alias.as_ref()) {
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
                    Some(d) => self.derived_binding(&d, alias.as_ref(), table, bindings),
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
                let cols = alias_idents(alias.as_ref());
                let d = super::derived::analyze(subquery, &cols, self.map, &self.ctes);
                // The column list was applied by the analysis itself.
                let name = alias
                    .as_ref()
                    .map(|a| ident_name(&a.name))
                    .unwrap_or_default();
                self.derived_binding(&d, None, name, bindings)
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
    fn derived_binding(
        &mut self,
        d: &Derived,
        alias: Option<&TableAlias>,
        default_alias: String,
        bindings: &mut Vec<Binding>,
    ) -> Rows {
        let alias_name = alias.map(|a| ident_name(&a.name)).unwrap_or(default_alias);
        match d {
            Derived::Replicated => Rows::Replicated,
            Derived::Opaque => {
                self.found.opaque_from = true;
                Rows::Replicated
            }
            Derived::PerNode(p) => {
                // A column list at the read renames by position, as for a table.
                let key = p
                    .key
                    .as_deref()
                    .and_then(|k| renamed_key(k, p.key_pos, &alias_idents(alias)))
                    .unwrap_or_default();
                bindings.push(Binding {
                    alias: alias_name,
                    table: p.table.clone(),
                    key,
                    reference: false,
                    link: Some((p.select, p.anchor.clone())),
                    nullable: false,
                });
                Rows::Distributed
            }
        }
    }

    fn finish_scope(
        &mut self,
        bindings: Vec<Binding>,
        conds: Vec<&Expr>,
        outer: Vec<OuterCond>,
        top: bool,
    ) {
        let base = self.found.accesses.len();
        let using = std::mem::take(&mut self.using_eqs);
        // An unqualified name of a column joined with USING is the merged column: it names the
        // key of every binding the USING joined.
        let merged = |i: usize| using.iter().any(|&(l, r, _)| l == i || r == i);
        let unqualified_ok = |i: usize| {
            let b = &bindings[i];
            let same_key = bindings.iter().filter(|o| o.key == b.key).count();
            same_key == 1 || (merged(i) && using.len() + 1 == same_key)
        };
        if top {
            for (i, b) in bindings
                .iter()
                .enumerate()
                .filter(|(_, b)| !b.reference && !b.key.is_empty() && !b.nullable)
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
                let pin = conds.iter().fold(Pin::All, |p, c| p.and(pin_of(c, &m)));
                // `e.k IS NULL` on the NULL-extended side holds for rows of every node.
                if b.nullable && pin.may_be_null() {
                    Pin::All
                } else {
                    pin
                }
            };
            if let Some((select, anchor)) = &b.link {
                self.found
                    .derived
                    .push((self.found.accesses.len(), *select, anchor.clone()));
            }
            self.found.accesses.push(Access {
                table: b.table.clone(),
                alias: b.alias.clone(),
                key: b.key.clone(),
                pin,
                top,
            });
        }
        // Equalities between two bindings' distribution columns, from USING and from AND-ed
        // conditions, with whether a pin may cross them both ways (else only a → b).
        let mut eqs: Vec<(usize, usize, bool)> = using
            .iter()
            .map(|&(l, r, both)| (base + l, base + r, both))
            .collect();
        let key_of = |x: &Expr| {
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
        let inner = conds.iter().map(|c| (*c, None, true));
        let outer_ons = outer.iter().map(|(c, side)| (*c, side.clone(), false));
        for (c, side, strict) in inner.chain(outer_ons) {
            conjuncts(c, &mut |e| {
                if let Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } = e
                {
                    if let (Some(a), Some(b)) = (key_of(left), key_of(right)) {
                        if a == b {
                            return;
                        }
                        // In an outer join's ON, a pin crosses only into the NULL-extended
                        // side: the preserved side keeps its rows whatever matches.
                        let into = |i: usize| side.as_ref().is_some_and(|r| r.contains(&i));
                        if strict {
                            eqs.push((base + a, base + b, true));
                        } else if into(b) && !into(a) {
                            eqs.push((base + a, base + b, false));
                        } else if into(a) && !into(b) {
                            eqs.push((base + b, base + a, false));
                        } else {
                            // Both sides nullable (FULL JOIN): co-located, but no pin crosses.
                            self.found.key_joins.push((base + a, base + b));
                        }
                    }
                }
            });
        }
        // A pin on one side of a key equality pins the other side too. An IS NULL pin never
        // crosses: NULL keys match nothing, so the other side's rows are not limited by it.
        let direct: Vec<Pin> = self.found.accesses[base..]
            .iter()
            .map(|a| a.pin.clone())
            .collect();
        for &(a, b, both) in &eqs {
            let (pa, pb) = (direct[a - base].clone(), direct[b - base].clone());
            let acc = &mut self.found.accesses;
            if !pa.may_be_null() {
                acc[b].pin = acc[b].pin.clone().and(pa);
            }
            if both && !pb.may_be_null() {
                acc[a].pin = acc[a].pin.clone().and(pb);
            }
        }
        let eqs: Vec<(usize, usize)> = eqs.into_iter().map(|(a, b, _)| (a, b)).collect();
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
