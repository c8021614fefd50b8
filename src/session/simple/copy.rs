//! COPY FROM STDIN into a distributed or reference table: every node of the table gets the same
//! COPY, the client's CopyData is cut into whole rows (`protocol::copy::Splitter`), each row
//! goes to its key's node (every node for a reference table) in CopyData chunks of about
//! 64 KB, and the client sees one `COPY n` or the error PostgreSQL alone would have given for
//! the first bad row, with the client's line number. Message flow as in the protocol docs'
//! "COPY Operations": a node that fails drops the CopyData that follows, up to CopyDone/Fail.
//! COPY TO STDOUT is in `copy_out`.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{code, SgError, SgResult};
use crate::plan::copy::{CopyPlan, Dest, Dir, Rows};
use crate::protocol::backend as be;
use crate::protocol::copy::lines::LineLog;
use crate::protocol::copy::{error_frame, map_context_line, Fault, Piece, Row, Splitter};
use crate::protocol::frontend as fe;
use crate::protocol::{Frame, Reader, MAX_MESSAGE};
use crate::session::Session;
use crate::shardmap::{KeyType, TableDist};

/// CopyData goes to a node once this much is buffered for it.
const COPY_CHUNK: usize = 64 * 1024;
/// What shardgate's own CopyFail says: the nodes' echo of it is never the client's error.
const ABORTED: &str = "shardgate: the COPY failed on another node";

/// One node's part of a COPY FROM.
#[derive(Default)]
struct Part {
    buf: BytesMut,
    lines: LineLog,
}

/// Why the rows stopped before CopyDone.
enum Stop {
    /// shardgate's own error for the row at this client line.
    Refused(Frame, u64),
    /// A row sent to this node, which will refuse it with PostgreSQL's error.
    NodeRefuses(usize),
    /// The client's CopyFail, with its message.
    ClientFail(String),
}

struct CopyIn<'a> {
    plan: &'a CopyPlan,
    table: &'a TableDist,
    key_type: KeyType,
    splitter: Splitter,
    parts: Vec<(usize, Part)>,
    stop: Option<Stop>,
}

fn fault_frame(table: &str, f: &Fault) -> Frame {
    let context = format!("COPY {table}, line {}", f.line);
    error_frame(&f.error, None, f.hint, Some(&context))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub async fn copy(&mut self, plan: &CopyPlan) -> SgResult<()> {
        if plan.dir == Dir::Out {
            return self.copy_out(plan).await;
        }
        let map = &self.shared.config.shardmap;
        let table = map
            .get(&plan.table)
            .ok_or_else(|| SgError::internal("COPY target vanished from the shard map"))?;
        let cols = self.table_columns(&plan.table).await?;
        if let Some(c) = cols.left_to_default(&plan.columns) {
            return Err(SgError::unsupported(format!(
                "COPY into \"{}\" leaving column \"{c}\" to its default (shardgate computes serial, identity and distribution-column defaults for INSERT, not yet for COPY): list the column, or INSERT",
                plan.table
            )));
        }
        let key_type = match &plan.dir {
            Dir::In(Rows::Key { .. }) => table.key_type()?,
            _ => KeyType::Text,
        };
        // Every node commits its rows or none does: `before_run` opened an implicit
        // transaction for a COPY into several nodes outside a block, ended with the statement.
        let mut c = CopyIn {
            plan,
            table: &table,
            key_type,
            splitter: Splitter::new(&plan.options, MAX_MESSAGE),
            parts: plan.nodes.iter().map(|n| (*n, Part::default())).collect(),
            stop: None,
        };
        let r = self.copy_in_rows(&mut c).await;
        if r.is_err() {
            self.errored = true;
        }
        r
    }

    async fn copy_in_rows(&mut self, c: &mut CopyIn<'_>) -> SgResult<()> {
        let Some(response) = self.open_copies(c).await? else {
            return Ok(());
        };
        self.push(&response);
        self.flush().await?;
        loop {
            let Some(f) = self.read_client().await? else {
                return Err(SgError::new(
                    code::CLIENT_GONE,
                    "client went away during COPY",
                ));
            };
            match f.tag {
                fe::COPY_DATA if c.stop.is_none() => match c.splitter.push(f.body()) {
                    Ok(()) => self.route_pieces(c, false).await?,
                    Err(fault) => {
                        let line = fault.line;
                        c.stop = Some(Stop::Refused(fault_frame(&c.plan.table, &fault), line));
                    }
                },
                fe::COPY_DATA | fe::FLUSH | fe::SYNC => {}
                fe::COPY_DONE => {
                    if c.stop.is_none() {
                        self.route_pieces(c, true).await?;
                    }
                    break;
                }
                fe::COPY_FAIL => {
                    let msg = Reader::new(f.body()).cstr().unwrap_or("").to_string();
                    c.stop = Some(Stop::ClientFail(msg));
                    break;
                }
                other => {
                    // copyfromparse.c CopyGetData.
                    let e = SgError::protocol(format!(
                        "unexpected message type 0x{other:02X} during COPY from stdin"
                    ));
                    let line = c.splitter.line() + 1;
                    c.stop = Some(Stop::Refused(be::error(&e), line));
                    break;
                }
            }
        }
        self.finish_copies(c).await
    }

    /// Sends the COPY to every node; the first node's CopyInResponse, or None when a node
    /// refused it (its error is reported, the others' COPYs are ended).
    async fn open_copies(&mut self, c: &CopyIn<'_>) -> SgResult<Option<Frame>> {
        let q = fe::build_query(&c.plan.sql);
        for (n, _) in &c.parts {
            self.backend(*n)
                .await?
                .send(std::slice::from_ref(&q))
                .await?;
        }
        let mut response = None;
        let mut error = None;
        let mut opened = Vec::new();
        for (n, _) in &c.parts {
            let conn = self.backend(*n).await?;
            loop {
                let f = conn.read().await?;
                match f.tag {
                    be::COPY_IN => {
                        opened.push(*n);
                        response.get_or_insert(f);
                        break;
                    }
                    be::ERROR_RESPONSE => {
                        error.get_or_insert(f);
                        while conn.read().await?.tag != be::READY_FOR_QUERY {}
                        break;
                    }
                    _ => {}
                }
            }
        }
        let Some(e) = error else {
            return Ok(response);
        };
        let mut b = BytesMut::new();
        fe::put_cstr(&mut b, ABORTED);
        let fail = Frame::build(fe::COPY_FAIL, &b);
        for n in opened {
            let conn = self.backend(n).await?;
            conn.send(std::slice::from_ref(&fail)).await?;
            while conn.read().await?.tag != be::READY_FOR_QUERY {}
        }
        self.fail_with(&e);
        Ok(None)
    }

    fn fail_with(&mut self, f: &Frame) {
        self.push(f);
        self.errored = true;
        if let Some(t) = self.txn.txn.as_mut() {
            t.failed = true;
        }
    }

    /// Routes the complete rows the splitter holds (with `eof`, the last one too).
    async fn route_pieces(&mut self, c: &mut CopyIn<'_>, eof: bool) -> SgResult<()> {
        while c.stop.is_none() {
            let piece = match c.splitter.next(eof) {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(fault) => {
                    let line = fault.line;
                    c.stop = Some(Stop::Refused(fault_frame(&c.plan.table, &fault), line));
                    return Ok(());
                }
            };
            match piece {
                Piece::Header(r) => {
                    for i in 0..c.parts.len() {
                        self.send_row(c, i, &r).await?;
                    }
                }
                Piece::Row(r) => match c.plan.route(c.table, c.key_type, &r) {
                    Dest::Every => {
                        for i in 0..c.parts.len() {
                            self.send_row(c, i, &r).await?;
                        }
                    }
                    Dest::Node(n) => match c.parts.iter().position(|(p, _)| *p == n) {
                        Some(i) => self.send_row(c, i, &r).await?,
                        None => return Err(SgError::internal("a row's node holds no shard")),
                    },
                    Dest::AnyNode => {
                        self.send_row(c, 0, &r).await?;
                        c.stop = Some(Stop::NodeRefuses(0));
                    }
                    Dest::Refuse {
                        error,
                        detail,
                        context,
                    } => {
                        let f = error_frame(&error, detail.as_deref(), None, Some(&context));
                        c.stop = Some(Stop::Refused(f, r.line));
                    }
                },
                Piece::Broken(r) => {
                    self.send_row(c, 0, &r).await?;
                    c.stop = Some(Stop::NodeRefuses(0));
                }
                Piece::End(trailer) => {
                    if !trailer.is_empty() {
                        for (_, part) in c.parts.iter_mut() {
                            part.buf.extend_from_slice(&trailer);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds a row to the buffer of part `i`, sending the buffer once it is a chunk.
    async fn send_row(&mut self, c: &mut CopyIn<'_>, i: usize, r: &Row) -> SgResult<()> {
        let Some((node, part)) = c.parts.get_mut(i) else {
            return Err(SgError::internal("COPY part out of range"));
        };
        part.buf.extend_from_slice(&r.data);
        if r.span > 0 {
            let first = part.lines.is_empty();
            part.lines
                .push(r.line, if first { r.first_span } else { r.span });
        }
        if part.buf.len() >= COPY_CHUNK {
            let data = Frame::build(fe::COPY_DATA, &part.buf);
            part.buf.clear();
            let node = *node;
            self.backend(node).await?.send(&[data]).await?;
        }
        Ok(())
    }

    /// Ends the COPY on every node (CopyDone, or CopyFail when it failed) and reports one
    /// outcome: the summed count, or the error of the earliest client line any node or
    /// shardgate refused.
    async fn finish_copies(&mut self, c: &mut CopyIn<'_>) -> SgResult<()> {
        let fail = |msg: &str| {
            let mut b = BytesMut::new();
            fe::put_cstr(&mut b, msg);
            Frame::build(fe::COPY_FAIL, &b)
        };
        let aborted = format!("COPY from stdin failed: {ABORTED}");
        let mut counts = Vec::new();
        let mut errors: Vec<(u64, Frame)> = Vec::new();
        if let Some(Stop::Refused(f, line)) = &c.stop {
            errors.push((*line, f.clone()));
        }
        for (i, (node, part)) in c.parts.iter_mut().enumerate() {
            let mut frames = Vec::new();
            if !part.buf.is_empty() {
                frames.push(Frame::build(fe::COPY_DATA, &part.buf));
                part.buf.clear();
            }
            frames.push(match &c.stop {
                None => Frame::build(fe::COPY_DONE, &[]),
                Some(Stop::NodeRefuses(k)) if *k == i => Frame::build(fe::COPY_DONE, &[]),
                Some(Stop::ClientFail(msg)) => fail(msg),
                Some(_) => fail(ABORTED),
            });
            self.backend(*node).await?.send(&frames).await?;
        }
        let client_lines = c.splitter.line();
        for (node, part) in &c.parts {
            let conn = self.backend(*node).await?;
            loop {
                let f = conn.read().await?;
                match f.tag {
                    be::READY_FOR_QUERY => break,
                    be::COMMAND_COMPLETE => {
                        counts.push(be::split_tag(be::command_tag(&f)?).1.unwrap_or(0));
                    }
                    be::ERROR_RESPONSE => {
                        if be::error_fields(&f).1 == aborted {
                            continue;
                        }
                        let (line, f) =
                            map_context_line(&f, |n| part.lines.client_line(n, client_lines));
                        errors.push((line.unwrap_or(u64::MAX), f));
                    }
                    _ => {}
                }
            }
        }
        // The earliest line is the one PostgreSQL would have stopped at; ties keep node order.
        if let Some((_, f)) = errors.into_iter().min_by_key(|(line, _)| *line) {
            self.fail_with(&f);
            return Ok(());
        }
        if matches!(c.stop, Some(Stop::NodeRefuses(_))) {
            self.fail_with(&be::error(&SgError::internal(
                "a worker accepted a COPY row expected to fail",
            )));
            return Ok(());
        }
        let n: u64 = match &c.plan.dir {
            Dir::In(Rows::Every) => counts.first().copied().unwrap_or(0),
            _ => counts.iter().sum(),
        };
        self.push(&be::command_complete(&format!("COPY {n}")));
        Ok(())
    }
}
