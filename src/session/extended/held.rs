//! Execute with a row limit over a result of several nodes (asyncpg's and pgjdbc's cursors,
//! `setFetchSize`, psycopg's server-side cursors): the result is read once into a spool (in
//! memory up to `spool_memory_bytes`, then in a temporary file; in the formats the Bind asked
//! for) and handed out `max_rows` at a time, each batch ending in PortalSuspended until the
//! last, as PostgreSQL runs a portal (pquery.c PortalRunSelect; protocol-flow.html, "Extended
//! Query").

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{SgError, SgResult};
use crate::protocol::backend as be;
use crate::protocol::Frame;
use crate::session::materialize::Capture;
use crate::session::spool::Spool;
use crate::session::Session;

/// A portal's rows not yet fetched, and the command tag of the whole result.
pub struct Held {
    pub(super) rows: Spool,
    tag: String,
    /// The rows' RowDescription, for a FETCH in SQL (`portal_sql`).
    pub(super) description: Option<Frame>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// The rows of what runs next are kept for the portal instead of sent.
    pub(super) fn capture_rows(&mut self) {
        self.capture = Some(Capture {
            rows: self.spool(),
            ..Capture::default()
        });
    }

    /// Keeps the captured rows with portal `name` and sends the first `max_rows`; false when
    /// the result failed (its error already reached the client) or was too large.
    pub(super) async fn hold_rows(
        &mut self,
        name: &str,
        max_rows: i32,
        failed: bool,
    ) -> SgResult<bool> {
        let cap = self.capture.take().unwrap_or_default();
        if failed || self.errored {
            return Ok(false);
        }
        if let Some(e) = cap.rows.failure() {
            self.error(e);
            return Ok(false);
        }
        let tag = cap.tag.unwrap_or_else(|| "SELECT 0".into());
        if let Some(p) = self.portals.get_mut(name) {
            p.held = Some(Held {
                rows: cap.rows,
                tag,
                description: cap.description,
            });
        }
        self.serve_held(name, max_rows).await?;
        Ok(true)
    }

    /// The next `max_rows` held rows of portal `name` (all when 0), then PortalSuspended, or
    /// CommandComplete once none are left.
    pub(super) async fn serve_held(&mut self, name: &str, max_rows: i32) -> SgResult<()> {
        let limit = match usize::try_from(max_rows) {
            Ok(m) if m > 0 => m,
            _ => usize::MAX,
        };
        let mut n = 0;
        while n < limit {
            let Some(f) = self.held_mut(name)?.rows.pop()? else {
                break;
            };
            self.push_flushing(&f).await?;
            n += 1;
        }
        let h = self.held_mut(name)?;
        let end = match h.rows.is_empty() {
            false => be::simple(be::PORTAL_SUSPENDED),
            // A SELECT's tag counts the rows of this Execute, as PostgreSQL's does; other
            // commands (INSERT ... RETURNING) ran whole and keep theirs.
            true if be::split_tag(&h.tag).0 == "SELECT" => {
                be::command_complete(&format!("SELECT {n}"))
            }
            true => be::command_complete(&h.tag),
        };
        self.push(&end);
        Ok(())
    }

    /// The rows shardgate holds for portal `name`.
    pub(super) fn held_mut(&mut self, name: &str) -> SgResult<&mut Held> {
        self.portals
            .get_mut(name)
            .and_then(|p| p.held.as_mut())
            .ok_or_else(|| SgError::internal("a portal without held rows"))
    }
}
