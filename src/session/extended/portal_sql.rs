//! SQL-level FETCH and MOVE on a protocol-level portal, which PostgreSQL allows since both are
//! portals of one kind (portalcmds.c PerformPortalFetch): asyncpg's `Cursor.forward` sends
//! `MOVE FORWARD n "<portal>"`. A portal whose rows shardgate holds (`held`) is read here; a
//! portal that lives on one node gets the statement there.

use tokio::io::{AsyncRead, AsyncWrite};

use super::PortalRun;
use crate::error::{SgError, SgResult};
use crate::protocol::backend as be;
use crate::session::Session;

/// `FETCH`/`MOVE` as PostgreSQL's grammar reads its forward forms (gram.y fetch_args).
#[derive(Debug, PartialEq)]
struct Command {
    fetch: bool,
    /// None: ALL.
    count: Option<usize>,
    portal: String,
}

/// Reads `FETCH|MOVE [NEXT | FORWARD [n | ALL] | n | ALL] [FROM | IN] name`; None for other
/// statements and for directions that move backwards or jump (left to PostgreSQL).
fn command(text: &str) -> Option<Command> {
    let t = text.trim().trim_end_matches(';').trim();
    let (verb, rest) = t.split_once(char::is_whitespace)?;
    let fetch = match verb.to_ascii_lowercase().as_str() {
        "fetch" => true,
        "move" => false,
        _ => return None,
    };
    let mut words: Vec<&str> = Vec::new();
    let mut rest = rest.trim();
    // The name may be quoted (and hold spaces): it is the last word.
    let portal = if let Some(stripped) = rest.strip_suffix('"') {
        let start = stripped.rfind('"')?;
        let name = stripped[start + 1..].to_string();
        if name.contains('"') {
            return None;
        }
        rest = stripped[..start].trim();
        name
    } else {
        let (head, last) = rest.rsplit_once(char::is_whitespace).unwrap_or(("", rest));
        rest = head.trim();
        last.to_ascii_lowercase()
    };
    words.extend(rest.split_whitespace());
    if matches!(
        words.last().map(|w| w.to_ascii_lowercase()).as_deref(),
        Some("from" | "in")
    ) {
        words.pop();
    }
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let count = match lower
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["next"] | ["forward"] => Some(1),
        ["all"] | ["forward", "all"] => None,
        [n] | ["forward", n] => Some(n.parse::<usize>().ok()?),
        _ => return None,
    };
    Some(Command {
        fetch,
        count,
        portal,
    })
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Runs FETCH/MOVE on a protocol-level portal; None when `text` names none.
    pub(in crate::session) async fn portal_sql(&mut self, text: &str) -> SgResult<Option<bool>> {
        let Some(cmd) = command(text) else {
            return Ok(None);
        };
        let Some(portal) = self.portals.get_mut(&cmd.portal) else {
            return Ok(None);
        };
        if let Some(h) = portal.held.as_ref() {
            if cmd.fetch {
                if let Some(d) = h.description.clone() {
                    self.push(&d);
                }
            }
            let mut n = 0;
            while n < cmd.count.unwrap_or(usize::MAX) {
                let Some(r) = self.held_mut(&cmd.portal)?.rows.pop()? else {
                    break;
                };
                if cmd.fetch {
                    self.push_flushing(&r).await?;
                }
                n += 1;
            }
            let verb = if cmd.fetch { "FETCH" } else { "MOVE" };
            self.push(&be::command_complete(&format!("{verb} {n}")));
            return Ok(Some(true));
        }
        match &portal.run {
            PortalRun::Nodes { nodes, .. } if nodes.len() == 1 => {
                let node = nodes[0];
                self.route_text(node, text).await?;
                Ok(Some(!self.errored))
            }
            _ => {
                self.error(&SgError::unsupported(format!(
                    "FETCH or MOVE in SQL on portal \"{}\" before it was executed",
                    cmd.portal
                )));
                Ok(Some(false))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(fetch: bool, count: Option<usize>, portal: &str) -> Option<Command> {
        Some(Command {
            fetch,
            count,
            portal: portal.into(),
        })
    }

    #[test]
    fn forward_fetches_and_moves_are_read() {
        assert_eq!(
            command("MOVE FORWARD 3 \"__asyncpg_portal_1f__\""),
            c(false, Some(3), "__asyncpg_portal_1f__")
        );
        assert_eq!(command("fetch 10 from Cur"), c(true, Some(10), "cur"));
        assert_eq!(command("FETCH ALL IN c;"), c(true, None, "c"));
        assert_eq!(command("FETCH c"), c(true, Some(1), "c"));
        assert_eq!(
            command("FETCH FORWARD ALL FROM \"a b\""),
            c(true, None, "a b")
        );
        assert_eq!(command("FETCH BACKWARD 2 FROM c"), None);
        assert_eq!(command("FETCH ABSOLUTE 2 FROM c"), None);
        assert_eq!(command("SELECT 1"), None);
    }
}
