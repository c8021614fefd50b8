//! COPY → Stmt: its direction and the distributed or reference table it names, and what
//! shardgate refuses at once: files and programs (they live on the workers, not here) and
//! options written as E'' strings (they would not print back to the workers as written).
//! The plan (`plan::copy`) reads the rest from the statement's text.

use sqlparser::ast::{CopySource, CopyTarget, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::scope::table_name;
use super::{Kind, Stmt};
use crate::error::SgError;
use crate::shardmap::ShardMap;

pub fn copy(ast: &Statement, text: &str, map: &ShardMap) -> Stmt {
    let Statement::Copy {
        source, to, target, ..
    } = ast
    else {
        return Stmt::new(Kind::Other, text);
    };
    let mut s = Stmt::new(Kind::Copy { from: !*to }, text);
    let sharded: Vec<String> = match source {
        CopySource::Table { table_name: t, .. } => {
            let t = table_name(t);
            s.ddl_tables.push(t.clone());
            map.get(&t).map(|_| t).into_iter().collect()
        }
        CopySource::Query(q) => {
            let mut found = Vec::new();
            let _ = sqlparser::ast::visit_relations(q.as_ref(), |r| {
                let t = table_name(r);
                if map.get(&t).is_some() {
                    found.push(t);
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            found
        }
    };
    let Some(first) = sharded.first() else {
        s.touches_local = true;
        return s;
    };
    if !matches!(target, CopyTarget::Stdin | CopyTarget::Stdout) {
        s.refuse = Some(SgError::unsupported(format!(
            "COPY {} a file or PROGRAM of table \"{first}\", which is sharded (files live on the workers; use STDIN/STDOUT, or psql's \\copy)",
            if *to { "to" } else { "from" }
        )));
    } else if escaped_strings(text) {
        s.refuse = Some(SgError::unsupported(format!(
            "COPY of table \"{first}\" with options written as E'' strings (write them as standard strings)"
        )));
    }
    s
}

fn escaped_strings(text: &str) -> bool {
    Tokenizer::new(&PostgreSqlDialect {}, text)
        .with_unescape(false)
        .tokenize()
        .map(|t| {
            t.iter()
                .any(|t| matches!(t, Token::EscapedStringLiteral(_)))
        })
        .unwrap_or(true)
}
