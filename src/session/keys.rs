//! Keys PostgreSQL reads but shardgate's own parser does not: dates and timestamps in every
//! input form and DateStyle PostgreSQL accepts ('01/02/2024', 'March 5, 2024', '20240210',
//! 'infinity', '4713-01-01 BC'). Rather than re-implement datetime.c, shardgate asks the
//! default node to read the text under the session's settings and plans again with the value
//! it got; PostgreSQL's own error (22007, 22008) is the statement's error for text it rejects.

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::analyze::Stmt;
use crate::error::{code, SgError, SgResult};
use crate::plan::route::{plan, Values};
use crate::plan::Plan;
use crate::protocol::backend as be;
use crate::shardmap::{KeyType, KeyValue};

/// At most this many keys of one statement are read by PostgreSQL (a multi-row INSERT of
/// unusual dates is read in one round trip per distinct text up to this bound).
const MAX_READS: usize = 64;

/// The key type and text of a parse failure shardgate's parser reports for a datetime key.
fn unreadable(e: &SgError) -> Option<(KeyType, String)> {
    if e.code != code::INVALID_TEXT_REPRESENTATION {
        return None;
    }
    let rest = e.message.strip_prefix("invalid input syntax for type ")?;
    let ty = [KeyType::Date, KeyType::Timestamp]
        .into_iter()
        .find(|t| rest.starts_with(&format!("{}: \"", t.sql_name())))?;
    let text = rest.split_once(": \"")?.1.strip_suffix('"')?.to_string();
    Some((ty, text))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Plans `stmt`, reading through PostgreSQL any datetime key shardgate cannot read.
    pub async fn plan_reading_keys(
        &mut self,
        stmt: &Stmt,
        text: &str,
        values: &Values<'_>,
    ) -> SgResult<Plan> {
        let mut keys: Vec<(KeyType, String, KeyValue)> = Vec::new();
        loop {
            let v = Values {
                keys: &keys,
                ..*values
            };
            let e = match plan(stmt, text, &v, &self.shared.config.shardmap) {
                Ok(p) => return Ok(p),
                Err(e) => e,
            };
            match unreadable(&e) {
                Some((ty, s))
                    if keys.len() < MAX_READS && !keys.iter().any(|k| k.0 == ty && k.1 == s) =>
                {
                    let v = self.read_key(ty, &s).await?;
                    keys.push((ty, s, v));
                }
                _ => return Err(e),
            }
        }
    }

    /// The value PostgreSQL reads `text` as, on a default-node connection in the session's
    /// settings (DateStyle). Infinite values map to PostgreSQL's own representations
    /// (DATEVAL_NOBEGIN/NOEND, DT_NOBEGIN/NOEND in datatype/timestamp.h).
    pub(crate) async fn read_key(&mut self, ty: KeyType, text: &str) -> SgResult<KeyValue> {
        let lit = crate::quote::literal(text);
        let sql = match ty {
            KeyType::Date => format!(
                "SELECT CASE WHEN isfinite(d) THEN (d - date '2000-01-01')::int8 \
                 WHEN d > date '2000-01-01' THEN 2147483647 ELSE -2147483648 END \
                 FROM (SELECT {lit}::date AS d) s"
            ),
            _ => format!(
                "SELECT CASE WHEN isfinite(t) \
                 THEN (extract(epoch FROM t - timestamp '2000-01-01') * 1000000)::int8 \
                 WHEN t > timestamp '2000-01-01' THEN 9223372036854775807 \
                 ELSE -9223372036854775808 END \
                 FROM (SELECT {lit}::timestamp AS t) s"
            ),
        };
        let node = self.shared.config.default_node;
        let mut c = self.shared.acquire_for(&self.user, node).await?;
        c.sync_settings(&self.settings).await?;
        let frames = c.run(&sql).await?;
        let n: i64 = frames
            .iter()
            .find(|f| f.tag == be::DATA_ROW)
            .and_then(|f| crate::execute::rows::columns(f).ok())
            .and_then(|cols| cols.into_iter().next().flatten())
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
            .ok_or_else(|| SgError::internal("reading a key through PostgreSQL gave no value"))?;
        Ok(match ty {
            KeyType::Date => KeyValue::Date(
                i32::try_from(n).map_err(|_| SgError::internal("date out of range"))?,
            ),
            _ => KeyValue::Timestamp(n),
        })
    }
}
