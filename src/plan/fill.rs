//! Column defaults shardgate evaluates itself before an INSERT is routed: the distribution
//! column's (its value picks the node) and every default that draws from a sequence (serial,
//! identity, `nextval(...)`). Left to the nodes, each node's copy of the sequence would hand
//! out the same ids. Citus evaluates nextval on its coordinator for the same reason; here the
//! default node, which holds the sequences every session sees (`currval` included), computes
//! the values in the rows' order and the INSERT is rewritten with them in place. Pure: the
//! session runs the query this module writes and passes the values back.

use sqlparser::ast::{
    DollarQuotedString, Expr, Ident, Insert, ObjectName, ObjectNamePart, Parens, Query, SelectItem,
    SetExpr, Statement, TableFactor, Value,
};

use crate::analyze::InsertInto;
use crate::error::{SgError, SgResult};

/// One column of a table as the default node's catalog describes it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// `format_type` of the column: the type its filled value is cast to.
    pub ty: String,
    /// The default expression as PostgreSQL deparses it; for identity columns, the nextval
    /// of their sequence.
    pub default: Option<String>,
    /// `attidentity`: b'a' (ALWAYS), b'd' (BY DEFAULT) or 0.
    pub identity: u8,
    /// A generated (stored) column: PostgreSQL computes it from the row on the node.
    pub generated: bool,
}

impl Column {
    fn sequenced(&self) -> bool {
        self.identity != 0
            || self
                .default
                .as_deref()
                .is_some_and(|d| d.contains("nextval("))
    }
}

/// A table's columns in order, and which of them shardgate fills.
#[derive(Debug, Clone)]
pub struct TableColumns {
    pub columns: Vec<Column>,
    /// Indexes of the columns filled in shardgate: the distribution column and every column
    /// whose default draws from a sequence.
    pub filled: Vec<usize>,
    /// The distribution column's index.
    pub key: Option<usize>,
}

impl TableColumns {
    pub fn new(columns: Vec<Column>, key: Option<&str>) -> TableColumns {
        let filled = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.generated && (c.sequenced() || Some(c.name.as_str()) == key))
            .map(|(i, _)| i)
            .collect();
        let key = key.and_then(|k| columns.iter().position(|c| c.name == k));
        TableColumns {
            columns,
            filled,
            key,
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The first column shardgate would fill that a column list (empty: every column)
    /// leaves to a default of its own: COPY cannot have it filled.
    pub fn left_to_default(&self, listed: &[String]) -> Option<&str> {
        if listed.is_empty() {
            return None;
        }
        self.filled
            .iter()
            .map(|&i| &self.columns[i])
            .find(|c| (c.identity != 0 || c.default.is_some()) && !listed.contains(&c.name))
            .map(|c| c.name.as_str())
    }

    /// Whether the INSERT gives every filled column a value of its own, so nothing is to be
    /// computed: the common case, decided without parsing.
    pub fn covered_by(&self, ins: &InsertInto) -> bool {
        if ins.has_default || ins.key_computed {
            return false;
        }
        self.filled.iter().all(|&i| {
            if ins.columns.is_empty() {
                ins.shortest_row.is_none_or(|n| i < n)
            } else {
                ins.columns.iter().any(|c| *c == self.columns[i].name)
            }
        })
    }
}

/// The DEFAULT keyword as a VALUES item.
pub fn is_default_keyword(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
}

/// An INSERT ... VALUES with the places its filled values go.
pub struct Fill {
    ins: Insert,
    /// (row, item) of each value, in the order of `need`.
    slots: Vec<(usize, usize)>,
    /// The column each value is computed for.
    pub need: Vec<usize>,
    /// The client's expression a value is computed from, or None for the column's default.
    exprs: Vec<Option<Expr>>,
}

/// A key expression shardgate can compute on the default node as PostgreSQL would compute
/// it in the row: one that reads no table and has no parameter.
fn computable(e: &Expr) -> bool {
    use sqlparser::ast::{Visit, Visitor};
    use std::ops::ControlFlow;
    struct Closed;
    impl Visitor for Closed {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => {
                    ControlFlow::Break(())
                }
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    crate::analyze::pins::value_src(e).is_none()
        && !is_default_keyword(e)
        && e.visit(&mut Closed).is_continue()
}

fn unsupported_always(table: &str, c: &Column) -> SgError {
    SgError::unsupported(format!(
        "filling GENERATED ALWAYS AS IDENTITY column \"{}\" of \"{table}\" (shardgate cannot write OVERRIDING SYSTEM VALUE yet; declare it GENERATED BY DEFAULT AS IDENTITY or serial)",
        c.name
    ))
}

fn column_ident(name: &str) -> ObjectName {
    ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
        '"', name,
    ))])
}

/// Where an INSERT ... VALUES (or DEFAULT VALUES) needs values computed; None when it does
/// not, or when it is not one PostgreSQL would accept (PostgreSQL's error then stands).
pub fn fill_values(stmt: &Statement, table: &str, cols: &TableColumns) -> SgResult<Option<Fill>> {
    let Statement::Insert(ins) = stmt else {
        return Ok(None);
    };
    let mut ins = ins.clone();
    let mut rows: Vec<Vec<Expr>> = match ins.source.as_ref().map(|q| q.body.as_ref()) {
        Some(SetExpr::Values(v)) => v.rows.iter().map(|r| r.content.clone()).collect(),
        Some(_) => return Ok(None),
        None => vec![Vec::new()],
    };
    let width = rows.first().map_or(0, |r| r.len());
    if rows.iter().any(|r| r.len() != width) {
        return Ok(None);
    }
    // The columns the rows' items go to, by table position.
    let mut listed: Vec<usize> = Vec::new();
    if ins.columns.is_empty() {
        if width > cols.columns.len() {
            return Ok(None);
        }
        listed.extend(0..width);
    } else {
        for c in &ins.columns {
            let name = crate::analyze::scope::table_name(c);
            match cols.position(&name) {
                Some(i) => listed.push(i),
                None => return Ok(None),
            }
        }
        if listed.len() != width {
            return Ok(None);
        }
    }
    let mut slots = Vec::new();
    let mut need = Vec::new();
    let mut exprs = Vec::new();
    for &i in &cols.filled {
        let c = &cols.columns[i];
        match listed.iter().position(|&l| l == i) {
            Some(item) => {
                for (r, row) in rows.iter().enumerate() {
                    if is_default_keyword(&row[item]) {
                        if c.identity == b'a' {
                            return Err(unsupported_always(table, c));
                        }
                        slots.push((r, item));
                        need.push(i);
                        exprs.push(None);
                    } else if Some(i) == cols.key && computable(&row[item]) {
                        slots.push((r, item));
                        need.push(i);
                        exprs.push(Some(row[item].clone()));
                    }
                }
            }
            None => {
                if c.identity == b'a' {
                    return Err(unsupported_always(table, c));
                }
                listed.push(i);
                let item = listed.len() - 1;
                for (r, row) in rows.iter_mut().enumerate() {
                    row.push(Expr::Value(Value::Null.into()));
                    slots.push((r, item));
                    need.push(i);
                    exprs.push(None);
                }
            }
        }
    }
    if need.is_empty() {
        return Ok(None);
    }
    // Values in the rows' order, as PostgreSQL evaluates defaults row by row.
    let mut order: Vec<usize> = (0..slots.len()).collect();
    order.sort_by_key(|&k| slots[k]);
    let slots: Vec<(usize, usize)> = order.iter().map(|&k| slots[k]).collect();
    let need: Vec<usize> = order.iter().map(|&k| need[k]).collect();
    let exprs: Vec<Option<Expr>> = order.iter().map(|&k| exprs[k].clone()).collect();
    ins.columns = listed
        .iter()
        .map(|&i| column_ident(&cols.columns[i].name))
        .collect();
    let mut query = match ins.source.take() {
        Some(q) => q,
        None => match crate::analyze::parse_sql("VALUES (1)")
            .ok()
            .and_then(|mut v| v.pop())
        {
            Some(Statement::Query(q)) => q,
            _ => return Err(SgError::internal("VALUES did not parse")),
        },
    };
    if let SetExpr::Values(v) = query.body.as_mut() {
        v.rows = rows.into_iter().map(Parens::with_empty_span).collect();
    }
    ins.source = Some(query);
    Ok(Some(Fill {
        ins,
        slots,
        need,
        exprs,
    }))
}

/// A computed value as an SQL literal: a number as written, text in quotes that need no
/// escaping, or else dollar quotes with a tag the text does not hold.
fn literal(v: Option<&str>) -> Expr {
    let Some(v) = v else {
        return Expr::Value(Value::Null.into());
    };
    let numeric = !v.is_empty()
        && v.strip_prefix('-')
            .unwrap_or(v)
            .bytes()
            .all(|b| b.is_ascii_digit());
    if numeric {
        return Expr::Value(Value::Number(v.to_string(), false).into());
    }
    if !v.contains('\'') && !v.contains('\\') {
        return Expr::Value(Value::SingleQuotedString(v.to_string()).into());
    }
    let mut tag = String::from("sg");
    while v.contains(&format!("${tag}$")) {
        tag.push('x');
    }
    Expr::Value(
        Value::DollarQuotedString(DollarQuotedString {
            value: v.to_string(),
            tag: Some(tag),
        })
        .into(),
    )
}

impl Fill {
    /// The query that computes the values on the default node, one text value (or NULL) per
    /// row, in the rows' order. CASE evaluates only the branch taken, so each sequence
    /// advances once per value, in order. The defaults are PostgreSQL's own deparsed ones
    /// (pg_get_expr); a key the client wrote as an expression is printed from its AST.
    pub fn values_sql(&self, cols: &TableColumns) -> String {
        let mut codes = Vec::with_capacity(self.need.len());
        let mut branches = String::new();
        let mut defaults: Vec<usize> = Vec::new();
        for (k, (&i, e)) in self.need.iter().zip(&self.exprs).enumerate() {
            let c = &cols.columns[i];
            match e {
                Some(e) => {
                    let code = -(k as i64) - 1;
                    codes.push(code);
                    branches.push_str(&format!(" WHEN {code} THEN (({e})::{})::text", c.ty));
                }
                None => {
                    codes.push(i as i64);
                    if !defaults.contains(&i) {
                        defaults.push(i);
                        let expr = c.default.as_deref().unwrap_or("NULL");
                        branches.push_str(&format!(" WHEN {i} THEN (({expr})::{})::text", c.ty));
                    }
                }
            }
        }
        let list: Vec<String> = codes.iter().map(|i| i.to_string()).collect();
        format!(
            "SELECT CASE u.c{branches} END FROM unnest('{{{}}}'::int8[]) WITH ORDINALITY AS u(c, o) ORDER BY u.o",
            list.join(",")
        )
    }

    /// The INSERT with the values in place: literals, or with `params` the parameters
    /// `$params+1...` (the extended protocol, so one statement text serves every execution).
    pub fn render(mut self, values: &[Option<String>], params: Option<usize>) -> String {
        if let Some(SetExpr::Values(v)) = self.ins.source.as_mut().map(|q| q.body.as_mut()) {
            for (k, &(r, item)) in self.slots.iter().enumerate() {
                let e = match params {
                    Some(base) => {
                        Expr::Value(Value::Placeholder(format!("${}", base + k + 1)).into())
                    }
                    None => literal(values.get(k).and_then(|v| v.as_deref())),
                };
                if let Some(slot) = v.rows.get_mut(r).and_then(|row| row.content.get_mut(item)) {
                    *slot = e;
                }
            }
        }
        Statement::Insert(self.ins).to_string()
    }
}

/// An INSERT ... SELECT that leaves filled columns out, rewritten so that the SELECT computes
/// them: `INSERT INTO t (a, id) SELECT s.*, (nextval(...))::int FROM (<select>) AS s`. The
/// caller runs it only where that SELECT runs on the default node. None when nothing is left
/// out, or when the INSERT names no columns (the SELECT's width is known only as it runs).
pub fn fill_select(stmt: &Statement, cols: &TableColumns) -> SgResult<Option<String>> {
    let Statement::Insert(ins) = stmt else {
        return Ok(None);
    };
    let Some(source) = ins.source.as_ref() else {
        return Ok(None);
    };
    if ins.columns.is_empty() {
        return Ok(None);
    }
    let listed: Vec<String> = ins
        .columns
        .iter()
        .map(crate::analyze::scope::table_name)
        .collect();
    let missing: Vec<&Column> = cols
        .filled
        .iter()
        .map(|&i| &cols.columns[i])
        .filter(|c| !listed.contains(&c.name))
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let mut wrapper = match crate::analyze::parse_sql("SELECT s.* FROM (SELECT 1) AS s")
        .ok()
        .and_then(|mut v| v.pop())
    {
        Some(Statement::Query(q)) => q,
        _ => {
            return Err(SgError::internal(
                "the INSERT ... SELECT wrapper did not parse",
            ))
        }
    };
    let SetExpr::Select(sel) = wrapper.body.as_mut() else {
        return Err(SgError::internal(
            "the INSERT ... SELECT wrapper is not a SELECT",
        ));
    };
    if let Some(TableFactor::Derived { subquery, .. }) =
        sel.from.first_mut().map(|t| &mut t.relation)
    {
        *subquery = source.clone();
    }
    let mut ins = ins.clone();
    for c in missing {
        // PostgreSQL's deparsed default, read back as an expression (not client text).
        let expr = c.default.as_deref().unwrap_or("NULL");
        let e = parse_expr(&format!("({expr})::{}", c.ty)).ok_or_else(|| {
            SgError::unsupported(format!(
                "filling column \"{}\" whose default shardgate cannot read ({expr})",
                c.name
            ))
        })?;
        sel.projection.push(SelectItem::UnnamedExpr(e));
        ins.columns.push(column_ident(&c.name));
    }
    ins.source = Some(wrapper);
    Ok(Some(Statement::Insert(ins).to_string()))
}

fn parse_expr(text: &str) -> Option<Expr> {
    let stmt = crate::analyze::parse_sql(&format!("SELECT {text}"))
        .ok()?
        .pop()?;
    let Statement::Query(q) = stmt else {
        return None;
    };
    let Query { body, .. } = *q;
    let SetExpr::Select(sel) = *body else {
        return None;
    };
    match sel.projection.into_iter().next()? {
        SelectItem::UnnamedExpr(e) => Some(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> TableColumns {
        let col = |name: &str, ty: &str, default: Option<&str>| Column {
            name: name.into(),
            ty: ty.into(),
            default: default.map(str::to_string),
            identity: 0,
            generated: false,
        };
        TableColumns::new(
            vec![
                col("id", "integer", Some("nextval('users_id_seq'::regclass)")),
                col("name", "text", None),
                col("k", "bigint", None),
            ],
            Some("k"),
        )
    }

    fn parse(sql: &str) -> Statement {
        crate::analyze::parse_sql(sql).unwrap().pop().unwrap()
    }

    #[test]
    fn omitted_and_default_columns_get_values_in_row_order() {
        let t = users();
        let s = parse("INSERT INTO users (name, k) VALUES ('a', 1), ('b', DEFAULT)");
        let f = fill_values(&s, "users", &t).unwrap().unwrap();
        assert_eq!(f.need, vec![0, 2, 0]);
        assert!(f.need.len() == 3);
        let sql = f.values_sql(&t);
        assert!(sql.contains("unnest('{0,2,0}'::int8[])"), "{sql}");
        let out = f.render(&[Some("7".into()), None, Some("it's".into())], None);
        assert_eq!(
            out,
            "INSERT INTO users (\"name\", \"k\", \"id\") VALUES ('a', 1, 7), ('b', NULL, $sg$it's$sg$)"
        );
    }

    #[test]
    fn a_key_written_as_an_expression_is_computed() {
        let t = users();
        let s = parse(
            "INSERT INTO users (id, name, k) VALUES (1, 'a', abs(-5)), (2, 'b', 3), (3, 'c', $1)",
        );
        let f = fill_values(&s, "users", &t).unwrap().unwrap();
        assert_eq!(f.need, vec![2]);
        assert_eq!(
            f.values_sql(&t),
            "SELECT CASE u.c WHEN -1 THEN ((abs(-5))::bigint)::text END FROM unnest('{-1}'::int8[]) WITH ORDINALITY AS u(c, o) ORDER BY u.o"
        );
        assert_eq!(
            f.render(&[Some("5".into())], None),
            "INSERT INTO users (\"id\", \"name\", \"k\") VALUES (1, 'a', 5), (2, 'b', 3), (3, 'c', $1)"
        );
    }

    #[test]
    fn covered_inserts_need_nothing() {
        let t = users();
        let s = parse("INSERT INTO users VALUES (1, 'a', 2)");
        assert!(fill_values(&s, "users", &t).unwrap().is_none());
        let s = parse("INSERT INTO users (name, k) VALUES ($1, $2)");
        let f = fill_values(&s, "users", &t).unwrap().unwrap();
        assert_eq!(
            f.render(&[], Some(2)),
            "INSERT INTO users (\"name\", \"k\", \"id\") VALUES ($1, $2, $3)"
        );
    }

    #[test]
    fn insert_select_computes_the_left_out_columns() {
        let t = users();
        let s =
            parse("INSERT INTO users (name, k) SELECT 'n' || g, g FROM generate_series(1, 3) g");
        let out = fill_select(&s, &t).unwrap().unwrap();
        assert_eq!(
            out,
            "INSERT INTO users (name, k, \"id\") SELECT s.*, (nextval('users_id_seq'::REGCLASS))::INTEGER FROM (SELECT 'n' || g, g FROM generate_series(1, 3) g) AS s"
        );
    }
}
