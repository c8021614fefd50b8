//! COPY ... TO STDOUT over the nodes of a distributed table (or of a query whose rows are every
//! node's rows concatenated): one CopyOutResponse, each node's CopyData in node order, one
//! `COPY n` with the sum. A worker sends each row in its own CopyData (protocol docs, CopyData:
//! "messages sent from the backend will always correspond to single data rows"), so the CSV or
//! text HEADER line is a node's first message and is kept from the first node only; in binary
//! (copyto.c) the file header leads a node's first message and the trailer (-1) is a message of
//! its own: the header is kept from the first node, the trailer sent once at the end.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{SgError, SgResult};
use crate::plan::copy::CopyPlan;
use crate::protocol::backend as be;
use crate::protocol::copy::split::{BINARY_HEADER, BINARY_SIGNATURE};
use crate::protocol::copy::Format;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;
use crate::session::Session;

const TRAILER: &[u8] = b"\xff\xff";

/// The length of the binary header a node's first message begins with.
fn header_len(body: &[u8]) -> SgResult<usize> {
    let ext = body
        .get(15..BINARY_HEADER)
        .filter(|_| body.starts_with(BINARY_SIGNATURE))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes)
        .and_then(|e| usize::try_from(e).ok())
        .ok_or_else(|| SgError::internal("a worker's binary COPY data has no file header"))?;
    Ok(BINARY_HEADER + ext)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn copy_out(&mut self, plan: &CopyPlan) -> SgResult<()> {
        let q = fe::build_query(&plan.sql);
        for n in &plan.nodes {
            self.backend(*n)
                .await?
                .send(std::slice::from_ref(&q))
                .await?;
        }
        let binary = plan.options.format == Format::Binary;
        let header_line = plan.options.header && !binary;
        let mut started = false;
        let mut error: Option<Frame> = None;
        let mut total = 0u64;
        for (i, n) in plan.nodes.iter().enumerate() {
            let mut first = true;
            loop {
                let f = self.backend(*n).await?.read().await?;
                match f.tag {
                    be::READY_FOR_QUERY => break,
                    be::COPY_OUT if !started && error.is_none() => {
                        self.push(&f);
                        started = true;
                    }
                    fe::COPY_DATA if error.is_none() => {
                        let mut body = f.body();
                        if std::mem::take(&mut first) {
                            if header_line && i > 0 {
                                continue;
                            }
                            if binary && i > 0 {
                                body = body.get(header_len(body)?..).unwrap_or_default();
                            } else if binary && body.ends_with(TRAILER) {
                                // The first node's header and, with no rows, its trailer.
                                let h = header_len(body)?;
                                if body.len() == h + TRAILER.len() {
                                    body = &body[..h];
                                }
                            }
                        }
                        if body.is_empty() || (binary && body == TRAILER) {
                            continue;
                        }
                        if body.len() == f.body().len() {
                            self.push_flushing(&f).await?;
                        } else {
                            self.push_flushing(&Frame::build(fe::COPY_DATA, body))
                                .await?;
                        }
                    }
                    be::COMMAND_COMPLETE => {
                        total += be::split_tag(be::command_tag(&f)?).1.unwrap_or(0);
                    }
                    be::ERROR_RESPONSE => {
                        error.get_or_insert(f);
                    }
                    be::NOTICE_RESPONSE => self.push_flushing(&f).await?,
                    _ => {}
                }
            }
        }
        if let Some(e) = error {
            // In copy-out mode an ErrorResponse ends the copy (no CopyDone), as a worker's does.
            self.push(&e);
            self.errored = true;
            if let Some(t) = self.txn.txn.as_mut() {
                t.failed = true;
            }
            return Ok(());
        }
        if binary {
            self.push(&Frame::build(fe::COPY_DATA, TRAILER));
        }
        self.push(&be::simple(fe::COPY_DONE));
        self.push(&be::command_complete(&format!("COPY {total}")));
        Ok(())
    }
}
