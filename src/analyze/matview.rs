//! Statements that make a table or materialized view out of a query's rows, read here in the
//! grammar of PostgreSQL's gram.y (CreateAsStmt, CreateMatViewStmt, RefreshMatViewStmt) where
//! sqlparser does not: `CREATE MATERIALIZED VIEW ... AS query WITH [NO] DATA` and `REFRESH
//! MATERIALIZED VIEW [CONCURRENTLY] name [WITH [NO] DATA]`.

use sqlparser::ast::{CreateView, Expr, Ident, ObjectName, Query, SetExpr, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// What the statement makes from its query.
#[derive(Debug, Clone, PartialEq)]
pub enum Made {
    /// CREATE TABLE ... AS, SELECT ... INTO: a table filled once.
    Table {
        /// The CREATE TABLE ... AS, with the query as written (SELECT INTO becomes one).
        create: Box<sqlparser::ast::CreateTable>,
        query: Box<Query>,
    },
    /// CREATE MATERIALIZED VIEW: filled now (unless WITH NO DATA) and by each REFRESH.
    View {
        create: Box<CreateView>,
        query: Box<Query>,
        with_data: bool,
    },
    /// REFRESH MATERIALIZED VIEW.
    Refresh { name: ObjectName, with_data: bool },
}

/// The tokens of `text` without comments, whitespace and trailing semicolons.
fn tokens(text: &str) -> Option<Vec<Token>> {
    let dialect = PostgreSqlDialect {};
    let mut t: Vec<Token> = Tokenizer::new(&dialect, text)
        .tokenize()
        .ok()?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    while matches!(t.last(), Some(Token::SemiColon)) {
        t.pop();
    }
    Some(t)
}

fn is_word(t: Option<&Token>, k: Keyword) -> bool {
    matches!(t, Some(Token::Word(w)) if w.keyword == k)
}

/// Takes a trailing `WITH [NO] DATA` off; Some(with data) when there was one.
fn with_data(t: &mut Vec<Token>) -> Option<bool> {
    let n = t.len();
    if n >= 2 && is_word(t.get(n - 1), Keyword::DATA) {
        if is_word(t.get(n - 2), Keyword::WITH) {
            t.truncate(n - 2);
            return Some(true);
        }
        if n >= 3 && is_word(t.get(n - 2), Keyword::NO) && is_word(t.get(n - 3), Keyword::WITH) {
            t.truncate(n - 3);
            return Some(false);
        }
    }
    None
}

fn parse(tokens: Vec<Token>) -> Option<Statement> {
    let dialect = PostgreSqlDialect {};
    let mut tokens = tokens;
    tokens.push(Token::EOF);
    let mut p = Parser::new(&dialect).with_tokens(tokens);
    let s = p.parse_statement().ok()?;
    (p.peek_token().token == Token::EOF).then_some(s)
}

/// A template CREATE TABLE ... AS, for SELECT ... INTO.
fn table_as(name: ObjectName, query: Query, temporary: bool, unlogged: bool) -> Option<Made> {
    let Some(Statement::CreateTable(mut ct)) = parse(tokens("CREATE TABLE t AS SELECT 1")?) else {
        return None;
    };
    ct.name = name;
    ct.temporary = temporary;
    ct.unlogged = unlogged;
    ct.query = Some(Box::new(query.clone()));
    Some(Made::Table {
        create: Box::new(ct),
        query: Box::new(query),
    })
}

/// What `text` makes from a query, when it is one of these statements.
pub fn read(text: &str) -> Option<Made> {
    let mut t = tokens(text)?;
    let first = t.first()?.clone();
    if is_word(Some(&first), Keyword::REFRESH) {
        let data = with_data(&mut t).unwrap_or(true);
        let mut p = Parser::new(&PostgreSqlDialect {}).with_tokens({
            t.push(Token::EOF);
            t
        });
        p.expect_keywords(&[Keyword::REFRESH, Keyword::MATERIALIZED, Keyword::VIEW])
            .ok()?;
        let _ = p.parse_keyword(Keyword::CONCURRENTLY);
        let name = p.parse_object_name(false).ok()?;
        return (p.peek_token().token == Token::EOF).then_some(Made::Refresh {
            name,
            with_data: data,
        });
    }
    let data = with_data(&mut t);
    match parse(t)? {
        Statement::CreateView(v) if v.materialized => {
            let query = v.query.clone();
            Some(Made::View {
                create: Box::new(v),
                query,
                with_data: data.unwrap_or(true),
            })
        }
        Statement::CreateTable(ct) if data.is_none() => {
            let query = ct.query.clone()?;
            Some(Made::Table {
                create: Box::new(ct),
                query,
            })
        }
        Statement::Query(q) => {
            let SetExpr::Select(s) = q.body.as_ref() else {
                return None;
            };
            let into = s.into.clone()?;
            let mut bare = q.clone();
            if let SetExpr::Select(s) = bare.body.as_mut() {
                s.into = None;
            }
            let name = match into.targets.as_slice() {
                [Expr::Identifier(i)] => ObjectName::from(vec![i.clone()]),
                [Expr::CompoundIdentifier(parts)] => ObjectName::from(parts.clone()),
                _ => return None,
            };
            table_as(name, *bare, into.temporary, into.unlogged)
        }
        _ => None,
    }
}

/// The relation name a statement gave, as PostgreSQL folds it (the last part).
pub fn relname(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(fold)
        .unwrap_or_default()
}

fn fold(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

/// The materialized views a `DROP MATERIALIZED VIEW` names.
pub fn dropped_views(text: &str) -> Vec<String> {
    match tokens(text).and_then(parse) {
        Some(Statement::Drop {
            object_type: sqlparser::ast::ObjectType::MaterializedView,
            names,
            ..
        }) => names.iter().map(relname).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_form() {
        let Some(Made::View {
            create,
            query,
            with_data,
        }) = read(
            "CREATE MATERIALIZED VIEW m AS SELECT region, count(*) FROM s GROUP BY 1 WITH NO DATA;",
        )
        else {
            panic!("not a view");
        };
        assert_eq!(create.name.to_string(), "m");
        assert_eq!(
            query.to_string(),
            "SELECT region, count(*) FROM s GROUP BY 1"
        );
        assert!(!with_data);
        let Some(Made::Table { create, query }) =
            read("SELECT a, b INTO TEMP t2 FROM t WHERE a > 1")
        else {
            panic!("not select into");
        };
        assert!(create.temporary);
        assert_eq!(
            create.to_string(),
            "CREATE TEMPORARY TABLE t2 AS SELECT a, b FROM t WHERE a > 1"
        );
        assert_eq!(query.to_string(), "SELECT a, b FROM t WHERE a > 1");
        assert!(matches!(
            read("CREATE TABLE x AS SELECT * FROM t"),
            Some(Made::Table { .. })
        ));
        assert_eq!(
            read("refresh materialized view concurrently public.\"M\" with no data"),
            Some(Made::Refresh {
                name: ObjectName::from(vec![Ident::new("public"), Ident::with_quote('"', "M")]),
                with_data: false
            })
        );
        assert_eq!(read("SELECT 1"), None);
        assert_eq!(read("CREATE VIEW v AS SELECT 1"), None);
        assert_eq!(
            dropped_views("DROP MATERIALIZED VIEW IF EXISTS a, S.\"B\" CASCADE"),
            vec!["a".to_string(), "B".to_string()]
        );
    }
}
