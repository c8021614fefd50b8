//! Config mistakes and their messages (no workers needed): unknown keys name the key and the
//! section or table; TLS, log format and the new server keys are checked and defaulted.

use shardgate::config::{parse, LogFormat};

const BASE: &str =
    "[server]\nlisten = \"127.0.0.1:6432\"\n\n[[users]]\nname = \"app\"\npassword = \"s\"\n\n\
                    [[nodes]]\nname = \"w1\"\nurl = \"postgresql://postgres@127.0.0.1:1/app\"\n\n\
                    [[nodes]]\nname = \"w2\"\nurl = \"postgresql://postgres@127.0.0.1:2/app\"\n\n";

const USERS: &str =
    "[[tables]]\nname = \"users\"\nmethod = \"hash\"\ncolumn = \"user_uuid\"\nshards = 2\n";

fn refused(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(e) => e,
    }
}

fn assert_names(msg: &str, needles: &[&str]) {
    for n in needles {
        assert!(msg.contains(n), "message should name {n:?}: {msg}");
    }
}

#[test]
fn misspelled_table_key_names_key_and_table() {
    let msg = refused(&format!("{BASE}{USERS}placment = [\"w1\", \"w2\"]\n"));
    assert_names(&msg, &["placment", "table \"users\"", "placement"]);
}

#[test]
fn misspelled_key_in_a_range_names_the_table() {
    let t = "[[tables]]\nname = \"sales\"\nmethod = \"range\"\ncolumn = \"d\"\n\
             ranges = [ { from = 1, too = 10, node = \"w1\" } ]\n";
    let msg = refused(&format!("{BASE}{USERS}\n{t}"));
    assert_names(&msg, &["too", "table \"sales\""]);
}

#[test]
fn unnamed_table_entry_is_named_by_position() {
    let msg = refused(&format!(
        "{BASE}{USERS}\n[[tables]]\nnmae = \"x\"\nmethod = \"reference\"\n"
    ));
    assert_names(&msg, &["[[tables]] entry 2", "nmae"]);
}

#[test]
fn misspelled_server_user_node_and_top_level_keys() {
    let msg = refused(&BASE.replace("listen =", "listen = \"x:1\"\nmax_client = 3\n#"));
    assert_names(&msg, &["[server]", "max_client"]);
    let msg = refused(&BASE.replace("password = \"s\"", "password = \"s\"\nmax_conections = 3"));
    assert_names(&msg, &["user \"app\"", "max_conections"]);
    let msg = refused(&BASE.replacen("name = \"w1\"", "name = \"w1\"\nport = 5432", 1));
    assert_names(&msg, &["node \"w1\"", "port"]);
    let msg = refused(&format!(
        "{BASE}[[table]]\nname = \"t\"\nmethod = \"reference\"\n"
    ));
    assert_names(&msg, &["top-level", "\"table\""]);
}

#[test]
fn tls_needs_cert_and_key() {
    let with = |extra: &str| BASE.replace("[server]\n", &format!("[server]\n{extra}\n"));
    assert_names(&refused(&with("tls_cert = \"c.pem\"")), &["tls_key"]);
    assert_names(&refused(&with("tls_key = \"k.pem\"")), &["tls_cert"]);
    assert_names(&refused(&with("tls_required = true")), &["tls_required"]);
    let cfg = parse(&with(
        "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_required = true",
    ))
    .expect("cert, key and required");
    assert!(cfg.tls_required);
    assert_eq!(cfg.tls_cert.as_deref(), Some("c.pem"));
    assert_eq!(cfg.tls_key.as_deref(), Some("k.pem"));
}

#[test]
fn log_format_is_text_or_json() {
    let with = |f: &str| BASE.replace("[server]\n", &format!("[server]\nlog_format = \"{f}\"\n"));
    assert_eq!(
        parse(&with("json")).expect("json").log_format,
        LogFormat::Json
    );
    assert_eq!(
        parse(&with("text")).expect("text").log_format,
        LogFormat::Text
    );
    assert_names(&refused(&with("xml")), &["log_format", "xml"]);
}

#[test]
fn worker_plan_cache_mode_is_a_postgres_value_or_empty() {
    let with = |m: &str| {
        BASE.replace(
            "[server]\n",
            &format!("[server]\nworker_plan_cache_mode = \"{m}\"\n"),
        )
    };
    let mode = |text: &str| parse(text).expect("mode").worker_plan_cache_mode;
    assert_eq!(mode(BASE).as_deref(), Some("force_generic_plan"));
    assert_eq!(mode(&with("auto")).as_deref(), Some("auto"));
    assert_eq!(mode(&with("")), None);
    assert_names(
        &refused(&with("generic")),
        &["worker_plan_cache_mode", "generic"],
    );
}

#[test]
fn server_keys_default_and_users_carry_limits() {
    let cfg = parse(BASE).expect("base");
    assert_eq!(cfg.log_format, LogFormat::Text);
    assert!(!cfg.tls_required && cfg.tls_cert.is_none() && cfg.tls_key.is_none());
    assert_eq!(cfg.auth_timeout_secs, 10);
    assert_eq!(cfg.max_message_bytes, 64 << 20);
    assert_eq!(cfg.analysis_cache_bytes, 64 << 20);
    assert_eq!(cfg.max_expression_depth, 10_000);
    assert_eq!(cfg.health_check_interval_ms, 1000);
    assert_eq!(cfg.health_check_timeout_ms, 2000);
    assert_eq!(cfg.tcp_keepalive_secs, 10);
    assert!(!cfg.start_degraded);
    assert!(cfg.user_limits.is_empty());
    let text = BASE.replace("password = \"s\"", "password = \"s\"\nmax_connections = 7")
        + "[[users]]\nname = \"ro\"\npassword = \"r\"\n";
    let cfg = parse(&text).expect("limits");
    assert_eq!(cfg.user_limits.get("app"), Some(&7));
    assert_eq!(cfg.user_limits.get("ro"), None);
    assert_eq!(cfg.users.len(), 2);
}

#[test]
fn shipped_configs_parse() {
    for f in ["config/example.toml", "config/docker.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        if let Err(e) = shardgate::config::load(&path) {
            panic!("{f}: {e}");
        }
    }
}
