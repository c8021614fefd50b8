//! Small constructors for the AST nodes shardgate adds when it rewrites a query.

use sqlparser::ast::{
    DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, SetExpr, Statement, TableAliasColumnDef, TableFactor,
    TableWithJoins,
};

pub fn ident(name: &str) -> Expr {
    Expr::Identifier(Ident::new(name))
}

pub fn func(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// A type by its PostgreSQL name (`int8`, `numeric`, `text[]`), printed as written.
pub fn type_named(name: &str) -> DataType {
    DataType::Custom(ObjectName::from(vec![Ident::new(name)]), vec![])
}

/// `unnest(args...) AS _sg(names...)`, from a parsed skeleton.
pub fn unnest_from(args: Vec<Expr>, names: Vec<Ident>) -> Option<TableWithJoins> {
    let parsed = crate::analyze::parse_sql("SELECT 1 FROM unnest(NULL) AS _sg(x)").ok()?;
    let mut twj = match parsed.into_iter().next()? {
        Statement::Query(q) => match *q.body {
            SetExpr::Select(s) => s.from.into_iter().next()?,
            _ => return None,
        },
        _ => return None,
    };
    match &mut twj.relation {
        TableFactor::UNNEST {
            alias: Some(alias),
            array_exprs,
            ..
        } => {
            *array_exprs = args;
            alias.columns = names
                .into_iter()
                .map(|n| TableAliasColumnDef {
                    name: n,
                    data_type: None,
                })
                .collect();
            Some(twj)
        }
        _ => None,
    }
}
