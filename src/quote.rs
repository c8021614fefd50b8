//! Quoting of identifiers and literals that came from outside (clients, config, workers) for
//! the few statements shardgate writes as text itself, following PostgreSQL's `quote_ident`
//! and `quote_literal` (src/backend/utils/adt/quote.c, ruleutils.c).

/// An identifier, always double-quoted: `"a""b"`. Quoting even plain names keeps one rule and
/// no keyword list; PostgreSQL folds nothing inside quotes, so callers pass the name as stored.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A string literal that reads back as `s` whatever `standard_conforming_strings` is: quotes
/// are doubled, and a value holding a backslash is written as an `E''` string with backslashes
/// doubled (what quote_literal does).
pub fn literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// A string is a valid run-time parameter name to PostgreSQL's GUC code: letters, digits,
/// `_`, `$` and dots for custom (extension) names (guc.c valid_custom_variable_name).
pub fn is_setting_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("datestyle"), "\"datestyle\"");
        assert_eq!(ident("a\"; DROP"), "\"a\"\"; DROP\"");
        assert_eq!(literal("ISO"), "'ISO'");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\'b"), "E'a\\\\''b'");
        assert!(is_setting_name("datestyle"));
        assert!(is_setting_name("myext.setting"));
        assert!(!is_setting_name(
            "datestyle = 'ISO'; CREATE TABLE x(x int); SET datestyle"
        ));
    }
}
