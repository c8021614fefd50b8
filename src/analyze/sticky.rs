//! Statements that leave state in the worker session that runs them, beyond the statement and
//! its transaction: temporary tables, session advisory locks, LISTEN, SQL-level prepared
//! statements and held cursors, sequence values behind currval/lastval, settings made with
//! set_config, loaded libraries. The worker connection that ran one stays with its client
//! session (and is closed, not pooled, when the session ends), so nothing of it reaches
//! another session and the session finds it again.

/// Reads the words of the statement (string literals already lifted out by the shape, or
/// harmlessly matched): a false positive only keeps a connection out of the pool longer.
pub fn keeps_session_state(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| {
            let w = w.to_ascii_lowercase();
            matches!(
                w.as_str(),
                "temp"
                    | "temporary"
                    | "listen"
                    | "prepare"
                    | "declare"
                    | "nextval"
                    | "setval"
                    | "currval"
                    | "lastval"
                    | "set_config"
                    | "load"
            ) || w.starts_with("pg_temp")
                || w.starts_with("pg_advisory")
                || w.starts_with("pg_try_advisory")
        })
}

#[cfg(test)]
mod tests {
    use super::keeps_session_state as k;

    #[test]
    fn session_state_words() {
        assert!(k("CREATE TEMP TABLE tt (x int)"));
        assert!(k("create temporary table tt (x int)"));
        assert!(k("SELECT pg_advisory_lock(42)"));
        assert!(k("SELECT pg_try_advisory_lock(42)"));
        assert!(k("SELECT nextval('s')"));
        assert!(k("INSERT INTO pg_temp.tt VALUES (1)"));
        assert!(!k("SELECT template, temperature FROM t"));
        assert!(!k("SELECT * FROM users WHERE user_uuid = $1"));
    }
}
