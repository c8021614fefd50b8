//! `ALTER TABLE parent ATTACH PARTITION p FOR VALUES ... | DEFAULT` and `ALTER TABLE parent
//! DETACH PARTITION p [CONCURRENTLY | FINALIZE]`, which sqlparser's PostgreSQL dialect does not
//! read (it knows ClickHouse's ATTACH only): read here with its parser's public pieces, in
//! the grammar of PostgreSQL's gram.y (partition_cmd, PartitionBoundSpec).

use sqlparser::ast::{ForValues, ObjectName, PartitionBoundValue};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// A partition attached to or detached from a partitioned table.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionCmd {
    Attach {
        parent: ObjectName,
        partition: ObjectName,
        bound: ForValues,
    },
    Detach {
        parent: ObjectName,
        partition: ObjectName,
        /// CONCURRENTLY or FINALIZE: they run outside a transaction block.
        concurrently: bool,
    },
}

fn bound_value(p: &mut Parser) -> Result<PartitionBoundValue, ParserError> {
    if p.parse_keyword(Keyword::MINVALUE) {
        Ok(PartitionBoundValue::MinValue)
    } else if p.parse_keyword(Keyword::MAXVALUE) {
        Ok(PartitionBoundValue::MaxValue)
    } else {
        Ok(PartitionBoundValue::Expr(p.parse_expr()?))
    }
}

fn in_parens<T>(
    p: &mut Parser,
    f: impl FnMut(&mut Parser) -> Result<T, ParserError>,
) -> Result<Vec<T>, ParserError> {
    p.expect_token(&Token::LParen)?;
    let v = p.parse_comma_separated(f)?;
    p.expect_token(&Token::RParen)?;
    Ok(v)
}

/// `DEFAULT | FOR VALUES IN (...) | FROM (...) TO (...) | WITH (MODULUS m, REMAINDER r)`.
fn for_values(p: &mut Parser) -> Result<ForValues, ParserError> {
    if p.parse_keyword(Keyword::DEFAULT) {
        return Ok(ForValues::Default);
    }
    p.expect_keywords(&[Keyword::FOR, Keyword::VALUES])?;
    if p.parse_keyword(Keyword::IN) {
        Ok(ForValues::In(in_parens(p, |p| p.parse_expr())?))
    } else if p.parse_keyword(Keyword::FROM) {
        let from = in_parens(p, bound_value)?;
        p.expect_keyword(Keyword::TO)?;
        let to = in_parens(p, bound_value)?;
        Ok(ForValues::From { from, to })
    } else {
        p.expect_keyword(Keyword::WITH)?;
        p.expect_token(&Token::LParen)?;
        p.expect_keyword(Keyword::MODULUS)?;
        let modulus = p.parse_literal_uint()?;
        p.expect_token(&Token::Comma)?;
        p.expect_keyword(Keyword::REMAINDER)?;
        let remainder = p.parse_literal_uint()?;
        p.expect_token(&Token::RParen)?;
        Ok(ForValues::With { modulus, remainder })
    }
}

/// FINALIZE, which sqlparser has no keyword for.
fn finalize(p: &mut Parser) -> bool {
    match p.peek_token().token {
        Token::Word(w) if w.value.eq_ignore_ascii_case("finalize") => {
            p.next_token();
            true
        }
        _ => false,
    }
}

fn command(p: &mut Parser) -> Result<Option<PartitionCmd>, ParserError> {
    if !p.parse_keywords(&[Keyword::ALTER, Keyword::TABLE]) {
        return Ok(None);
    }
    let _ = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let _ = p.parse_keyword(Keyword::ONLY);
    let parent = p.parse_object_name(false)?;
    let cmd = if p.parse_keywords(&[Keyword::ATTACH, Keyword::PARTITION]) {
        let partition = p.parse_object_name(false)?;
        let bound = for_values(p)?;
        PartitionCmd::Attach {
            parent,
            partition,
            bound,
        }
    } else if p.parse_keywords(&[Keyword::DETACH, Keyword::PARTITION]) {
        let partition = p.parse_object_name(false)?;
        let concurrently = p.parse_keyword(Keyword::CONCURRENTLY) || finalize(p);
        PartitionCmd::Detach {
            parent,
            partition,
            concurrently,
        }
    } else {
        return Ok(None);
    };
    while p.consume_token(&Token::SemiColon) {}
    if p.peek_token().token != Token::EOF {
        return Ok(None);
    }
    Ok(Some(cmd))
}

/// The command `text` is, when it is one ALTER TABLE ... ATTACH/DETACH PARTITION.
pub fn parse(text: &str) -> Option<PartitionCmd> {
    let dialect = PostgreSqlDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(text).ok()?;
    command(&mut p).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_attach_and_detach() {
        let a = parse(
            "ALTER TABLE sales ATTACH PARTITION sales_2024_04 FOR VALUES FROM ('2024-04-01') TO (MAXVALUE);",
        )
        .unwrap();
        let PartitionCmd::Attach {
            parent,
            partition,
            bound,
        } = a
        else {
            panic!()
        };
        assert_eq!(parent.to_string(), "sales");
        assert_eq!(partition.to_string(), "sales_2024_04");
        assert_eq!(
            bound.to_string(),
            "FOR VALUES FROM ('2024-04-01') TO (MAXVALUE)"
        );
        assert!(matches!(
            parse("alter table h attach partition h3 for values with (modulus 4, remainder 3)"),
            Some(PartitionCmd::Attach {
                bound: ForValues::With {
                    modulus: 4,
                    remainder: 3
                },
                ..
            })
        ));
        assert!(matches!(
            parse("ALTER TABLE r ATTACH PARTITION r_x DEFAULT"),
            Some(PartitionCmd::Attach {
                bound: ForValues::Default,
                ..
            })
        ));
        assert!(matches!(
            parse("ALTER TABLE IF EXISTS ONLY s DETACH PARTITION s_1 CONCURRENTLY"),
            Some(PartitionCmd::Detach {
                concurrently: true,
                ..
            })
        ));
        assert_eq!(parse("ALTER TABLE s DETACH PARTITION s_1 garbage"), None);
        assert_eq!(parse("ALTER TABLE s ADD COLUMN x int"), None);
    }
}
