//! A session's settings: startup parameters and `options` made into SET statements, and the
//! transaction rules they follow across nodes (ROLLBACK undoes them, `set_config` is SET's
//! function form). `Session::settings` holds them; each worker connection is brought to them
//! when the session uses it (`Backend::sync_settings`).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::error::{code, SgError, SgResult};
use crate::execute::backend::Settings;

/// Startup parameters that are not settings.
const NOT_SETTINGS: [&str; 5] = [
    "user",
    "database",
    "replication",
    "options",
    "client_encoding",
];

/// Startup parameters that are session settings, as the SET statements that give a worker
/// connection the same setting. The name and value come from the client: the name must be a
/// parameter name and is quoted as an identifier, the value as a literal, so nothing a client
/// sends becomes SQL of its own (PostgreSQL answers an unknown name with FATAL 42704).
pub fn startup_settings<'a>(
    params: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<BTreeMap<String, String>, SgError> {
    let mut settings = BTreeMap::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in params {
        let name = k.to_lowercase();
        if name == "options" {
            pairs.extend(command_line_settings(v)?);
            continue;
        }
        if NOT_SETTINGS.contains(&name.as_str()) || name.starts_with("_pq_") {
            continue;
        }
        pairs.push((name, v.clone()));
    }
    for (name, v) in pairs {
        if !crate::quote::is_setting_name(&name) {
            return Err(SgError::new(
                code::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
            ));
        }
        let sql = format!(
            "SET {} = {}",
            crate::quote::ident(&name),
            crate::quote::literal(&v)
        );
        settings.insert(name, sql);
    }
    Ok(settings)
}

/// The settings in a startup packet's `options` (`-c name=value`, `-cname=value`,
/// `--name=value`), split as PostgreSQL splits them (postinit.c, pg_split_opts: whitespace
/// separates arguments, a backslash keeps the next character) and named as its
/// ParseLongOption names them (`-` in a name is `_`).
fn command_line_settings(options: &str) -> Result<Vec<(String, String)>, SgError> {
    let mut args: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    let mut in_arg = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_arg = true;
            }
            c if c.is_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            c => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        args.push(cur);
    }
    let invalid = |a: &str| {
        SgError::new(
            code::SYNTAX_ERROR,
            format!("invalid command-line argument for server process: {a}"),
        )
    };
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let setting = if a == "-c" {
            it.next().ok_or_else(|| invalid(a))?.as_str()
        } else if let Some(s) = a.strip_prefix("-c").or_else(|| a.strip_prefix("--")) {
            s
        } else {
            return Err(invalid(a));
        };
        let (name, value) = setting.split_once('=').ok_or_else(|| {
            SgError::new(code::SYNTAX_ERROR, format!("-c {setting} requires a value"))
        })?;
        out.push((name.replace('-', "_").to_lowercase(), value.to_string()));
    }
    Ok(out)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Brings the session's settings back to `before` (a rollback): every worker connection of
    /// the block has the settings changed since marked unknown, so the next use sets them
    /// again to what the session has (PostgreSQL undid them on some connections, not on those
    /// that got them before their BEGIN).
    pub(super) fn restore_settings(&mut self, before: Settings) {
        let changed: Vec<String> = before
            .keys()
            .chain(self.settings.keys())
            .filter(|k| before.get(*k) != self.settings.get(*k))
            .cloned()
            .collect();
        for c in self.txn.conns.values_mut() {
            for k in &changed {
                Arc::make_mut(&mut c.settings).insert(k.clone(), String::new());
            }
        }
        self.settings = before;
    }

    /// After `SELECT set_config(name, value, is_local)` ran on `node`: the session's settings
    /// take it as they take a SET (and SET LOCAL), so every node the session uses gets it,
    /// not just the one that ran it.
    pub async fn record_set_config(
        &mut self,
        node: usize,
        (name, value, local): &(String, String, bool),
    ) -> SgResult<()> {
        let sql = format!(
            "SET {}{} = {}",
            if *local { "LOCAL " } else { "" },
            crate::quote::ident(name),
            crate::quote::literal(value)
        );
        if *local && self.txn.txn.is_none() {
            // Outside a block a local setting ends with the statement's implicit transaction.
            return Ok(());
        }
        let others = self.txn.block_nodes_except(node);
        for n in &others {
            if let Err(e) = self.backend(*n).await?.run(&sql).await {
                self.error(&e);
                return Ok(());
            }
        }
        if *local {
            if let Some(t) = self.txn.txn.as_mut() {
                t.savepoints.push(sql);
            }
            return Ok(());
        }
        Arc::make_mut(&mut self.settings).insert(name.clone(), sql);
        let wanted = self.settings.clone();
        for n in others.iter().chain(std::iter::once(&node)) {
            if let Some(c) = self.txn.conns.get_mut(n) {
                c.settings = wanted.clone();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod options_tests {
    use super::command_line_settings;

    #[test]
    fn options_split_as_postgresql_splits_them() {
        let s = command_line_settings(
            "-c TimeZone=UTC -c DateStyle=SQL,DMY --search-path=a\\ b -cwork_mem=64kB",
        )
        .unwrap();
        assert_eq!(
            s,
            vec![
                ("timezone".to_string(), "UTC".to_string()),
                ("datestyle".to_string(), "SQL,DMY".to_string()),
                ("search_path".to_string(), "a b".to_string()),
                ("work_mem".to_string(), "64kB".to_string()),
            ]
        );
        assert!(command_line_settings("-x").is_err());
        assert!(command_line_settings("-c").is_err());
    }
}
