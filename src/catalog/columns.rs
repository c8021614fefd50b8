//! The columns of distributed and reference tables as the default node's catalog describes
//! them, for the defaults shardgate fills itself (`plan::fill`). Kept a few seconds and
//! forgotten after DDL, so a column added through another shardgate process is seen soon.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{SgError, SgResult};
use crate::execute::backend::Backend;
use crate::plan::fill::{Column, TableColumns};
use crate::protocol::backend as be;

/// How long a table's columns are trusted without asking again.
const FRESH: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct ColumnCache {
    tables: Mutex<HashMap<String, (Instant, Arc<TableColumns>)>>,
}

impl ColumnCache {
    /// The table's columns and whether they were read within the last few seconds.
    pub fn get(&self, table: &str) -> Option<(bool, Arc<TableColumns>)> {
        let m = self.tables.lock().ok()?;
        let (at, cols) = m.get(table)?;
        Some((at.elapsed() < FRESH, cols.clone()))
    }

    pub fn put(&self, table: &str, cols: Arc<TableColumns>) {
        if let Ok(mut m) = self.tables.lock() {
            m.insert(table.to_string(), (Instant::now(), cols));
        }
    }

    pub fn forget(&self) {
        if let Ok(mut m) = self.tables.lock() {
            m.clear();
        }
    }
}

/// Reads `table`'s columns: name, type, default (identity columns as the nextval of their
/// sequence), identity kind and whether it is generated.
pub async fn load(c: &mut Backend, table: &str, key: Option<&str>) -> SgResult<TableColumns> {
    let name = crate::quote::literal(&crate::quote::ident(table));
    let sql = format!(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), \
           CASE WHEN a.attidentity IN ('a', 'd') THEN 'nextval(' || \
             quote_literal(pg_get_serial_sequence(c.oid::regclass::text, a.attname)) || '::regclass)' \
           ELSE pg_get_expr(d.adbin, d.adrelid) END, \
           a.attidentity::text, (a.attgenerated <> '')::text \
         FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE c.oid = to_regclass({name}) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum"
    );
    let frames = c.run(&sql).await?;
    let text =
        |v: &Option<bytes::Bytes>| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    let mut columns = Vec::new();
    for f in frames.iter().filter(|f| f.tag == be::DATA_ROW) {
        let v = crate::execute::rows::columns(f)?;
        let get = |i: usize| v.get(i).and_then(text);
        columns.push(Column {
            name: get(0).ok_or_else(|| SgError::internal("column without a name"))?,
            ty: get(1).unwrap_or_default(),
            default: get(2),
            identity: get(3).and_then(|s| s.bytes().next()).unwrap_or(0),
            generated: get(4).as_deref() == Some("true"),
        });
    }
    // A table the node does not have fills nothing: the INSERT gets the node's own error.
    Ok(TableColumns::new(columns, key))
}
