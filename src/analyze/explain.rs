//! EXPLAIN's options (PostgreSQL's `EXPLAIN (option [value], ...)` and the old `EXPLAIN
//! ANALYZE VERBOSE` words): whether the statement runs, and what the nodes' own EXPLAIN gets.

use sqlparser::ast::{AnalyzeFormat, AnalyzeFormatKind, Expr, Statement};

use crate::error::{SgError, SgResult};

/// What an EXPLAIN asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExplainOptions {
    /// The statement runs (ANALYZE).
    pub analyze: bool,
    /// Options passed to each node's EXPLAIN as written (`COSTS OFF`, `BUFFERS`, `VERBOSE`...).
    pub pass: Vec<String>,
}

/// An option's boolean value as PostgreSQL reads it (defGetBoolean): absent means true.
fn is_true(arg: &Option<Expr>) -> bool {
    match arg {
        None => true,
        Some(e) => {
            let t = e.to_string().trim_matches('\'').to_ascii_lowercase();
            matches!(t.as_str(), "true" | "on" | "1" | "yes")
        }
    }
}

/// `FORMAT x` as each node's EXPLAIN gets it; PostgreSQL's own error for other names
/// (explain.c ParseExplainOptionList).
fn format_option(format: &str) -> SgResult<Option<String>> {
    let f = format.trim_matches('\'').to_ascii_lowercase();
    match f.as_str() {
        "text" => Ok(None),
        "json" | "yaml" | "xml" => Ok(Some(format!("FORMAT {}", f.to_ascii_uppercase()))),
        _ => Err(SgError::new(
            "22023",
            format!("unrecognized value for EXPLAIN option \"format\": \"{f}\""),
        )),
    }
}

/// The options of an EXPLAIN statement (None for other statements).
pub fn options(ast: &Statement) -> SgResult<Option<ExplainOptions>> {
    let Statement::Explain {
        analyze,
        verbose,
        format,
        options,
        ..
    } = ast
    else {
        return Ok(None);
    };
    let mut o = ExplainOptions {
        analyze: *analyze,
        pass: Vec::new(),
    };
    if *verbose {
        o.pass.push("VERBOSE".into());
    }
    if let Some(AnalyzeFormatKind::Keyword(f) | AnalyzeFormatKind::Assignment(f)) = format {
        if *f != AnalyzeFormat::TEXT {
            o.pass.extend(format_option(&f.to_string())?);
        }
    }
    for opt in options.iter().flatten() {
        let name = crate::analyze::scope::ident_name(&opt.name);
        match name.as_str() {
            "analyze" => o.analyze = is_true(&opt.arg),
            "format" => o.pass.extend(format_option(
                &opt.arg.as_ref().map(|a| a.to_string()).unwrap_or_default(),
            )?),
            _ => o.pass.push(match &opt.arg {
                Some(a) => format!("{} {a}", name.to_ascii_uppercase()),
                None => name.to_ascii_uppercase(),
            }),
        }
    }
    Ok(Some(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(sql: &str) -> SgResult<Option<ExplainOptions>> {
        options(&crate::analyze::parse_sql(sql).unwrap().remove(0))
    }

    #[test]
    fn reads_explain_options() {
        let o = of("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS) SELECT 1")
            .unwrap()
            .unwrap();
        assert!(o.analyze);
        assert_eq!(o.pass, vec!["COSTS OFF", "BUFFERS"]);
        let o = of("EXPLAIN (ANALYZE false) SELECT 1").unwrap().unwrap();
        assert!(!o.analyze);
        let o = of("EXPLAIN ANALYZE VERBOSE SELECT 1").unwrap().unwrap();
        assert!(o.analyze);
        assert_eq!(o.pass, vec!["VERBOSE"]);
        assert_eq!(
            of("EXPLAIN (FORMAT JSON) SELECT 1").unwrap().unwrap().pass,
            vec!["FORMAT JSON"]
        );
        assert_eq!(
            of("EXPLAIN (FORMAT html) SELECT 1").unwrap_err().code,
            "22023"
        );
        assert!(of("EXPLAIN (FORMAT TEXT) SELECT 1").unwrap().is_some());
        assert_eq!(of("SELECT 1").unwrap(), None);
    }
}
