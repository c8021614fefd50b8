//! EXPLAIN through shardgate: the distributed plan first (route or scatter, nodes and shards,
//! the SQL each node gets, the merge steps), then a node's own plan as Citus shows one task's;
//! EXPLAIN ANALYZE adds each node's row count and execution time.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::error::SgResult;
use crate::execute::rows::{row_description, Field};
use crate::plan::{Display, Plan};
use crate::protocol::backend as be;
use crate::protocol::Frame;

fn text_row(s: &str) -> Frame {
    let mut b = BytesMut::with_capacity(s.len() + 6);
    b.put_i16(1);
    b.put_i32(s.len() as i32);
    b.put_slice(s.as_bytes());
    Frame::build(be::DATA_ROW, &b)
}

pub fn description() -> Frame {
    description_for(&[])
}

/// EXPLAIN's one column, typed as PostgreSQL types it for the format the options name: json
/// for JSON, xml for XML, else text (explain.c ExplainResultDesc).
pub fn description_for(options: &[String]) -> Frame {
    use crate::plan::explain::Format;
    let f = Field {
        name: "QUERY PLAN".into(),
        table_oid: 0,
        column: 0,
        type_oid: match Format::of(options) {
            Format::Json => 114,
            Format::Xml => 142,
            _ => 25,
        },
        type_len: -1,
        type_mod: -1,
        format: 0,
    };
    row_description(&[f], 1, &[])
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Runs `sql` on a node with the simple protocol and returns the first column of each row.
    async fn text_rows(&mut self, node: usize, sql: &str) -> SgResult<Result<Vec<String>, Frame>> {
        let frames = match self.backend(node).await?.run(sql).await {
            Ok(f) => f,
            Err(e) if e.code == crate::error::code::CONNECTION_FAILURE => return Err(e),
            Err(e) => return Ok(Err(be::error(&e))),
        };
        let mut out = Vec::new();
        for f in frames.iter().filter(|f| f.tag == be::DATA_ROW) {
            if let Some(Some(v)) = crate::execute::rows::columns(f)?.first() {
                out.push(String::from_utf8_lossy(v).into_owned());
            }
        }
        Ok(Ok(out))
    }

    pub async fn explain(
        &mut self,
        inner: &Plan,
        (analyze, options): (bool, &[String]),
        sql: &str,
        describe: bool,
        has_params: bool,
        prepared: Option<String>,
    ) -> SgResult<()> {
        let names = self.shared.node_names.clone();
        let mut lines = vec!["Distributed Plan".to_string()];
        for l in (Display {
            plan: inner,
            node_names: &names,
        })
        .to_string()
        .lines()
        {
            lines.push(format!("  {l}"));
        }
        if let Some(shape) = prepared {
            // The node's plan below is planned for the values given, as PostgreSQL's EXPLAIN
            // plans it; the statement itself runs under a generic plan of its shape.
            lines.push(format!("  Runs prepared on the node as: {shape}"));
        }
        let format = crate::plan::explain::Format::of(options);
        if format != crate::plan::explain::Format::Text {
            return self
                .explain_tree(inner, (analyze, options), sql, describe, has_params)
                .await;
        }
        let parts = inner.node_sql(sql);
        let mut node_plan: Option<(usize, Vec<String>)> = None;
        if !has_params {
            for (i, (node, node_sql)) in parts.iter().enumerate() {
                if !analyze && i > 0 {
                    break;
                }
                // The client's options reach every node's EXPLAIN; with ANALYZE, shardgate
                // reads each node's execution time from the summary, so it keeps it on.
                let q = if analyze {
                    let mut o = vec!["ANALYZE".to_string(), "SUMMARY ON".to_string()];
                    o.extend(
                        options
                            .iter()
                            .filter(|x| !x.to_ascii_uppercase().starts_with("SUMMARY"))
                            .cloned(),
                    );
                    format!("EXPLAIN ({}) {node_sql}", o.join(", "))
                } else if options.is_empty() {
                    format!("EXPLAIN {node_sql}")
                } else {
                    format!("EXPLAIN ({}) {node_sql}", options.join(", "))
                };
                let rows = match self.text_rows(*node, &q).await? {
                    Ok(r) => r,
                    Err(e) => {
                        self.push(&e);
                        self.errored = true;
                        return Ok(());
                    }
                };
                if analyze {
                    let actual = rows
                        .first()
                        .and_then(|l| l.split("actual ").nth(1))
                        .and_then(|a| a.split("rows=").nth(1))
                        .and_then(|r| r.split_whitespace().next())
                        .unwrap_or("?")
                        .to_string();
                    let time = rows
                        .iter()
                        .find_map(|l| l.trim().strip_prefix("Execution Time: "))
                        .unwrap_or("?")
                        .to_string();
                    let name = names.get(*node).cloned().unwrap_or_default();
                    lines.push(format!(
                        "  Node {name}: rows={actual} execution time={time}"
                    ));
                }
                if node_plan.is_none() {
                    node_plan = Some((*node, rows));
                }
            }
        }
        if let Some((node, rows)) = node_plan {
            lines.push(format!(
                "  Plan on node {}:",
                names.get(node).cloned().unwrap_or_default()
            ));
            for r in rows {
                lines.push(format!("    {r}"));
            }
        }
        if describe {
            self.push(&description());
        }
        for l in &lines {
            self.push(&text_row(l));
        }
        self.push(&be::command_complete("EXPLAIN"));
        Ok(())
    }

    /// EXPLAIN (FORMAT JSON|YAML|XML): the node's plan asked in JSON, the distributed plan
    /// beside it, all printed in the client's format as one row.
    async fn explain_tree(
        &mut self,
        inner: &Plan,
        (analyze, options): (bool, &[String]),
        sql: &str,
        describe: bool,
        has_params: bool,
    ) -> SgResult<()> {
        use crate::plan::explain::{render, tree, Format, NodeRun};
        let format = Format::of(options);
        let names = self.shared.node_names.clone();
        let steps: Vec<String> = (Display {
            plan: inner,
            node_names: &names,
        })
        .to_string()
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect();
        let mut o: Vec<String> = options
            .iter()
            .filter(|x| !x.to_ascii_uppercase().starts_with("FORMAT"))
            .cloned()
            .collect();
        o.push("FORMAT JSON".into());
        if analyze {
            o.retain(|x| !x.to_ascii_uppercase().starts_with("SUMMARY"));
            o.insert(0, "ANALYZE".into());
            o.insert(1, "SUMMARY ON".into());
        }
        let mut runs = Vec::new();
        let mut node_plan = None;
        if !has_params {
            for (i, (node, node_sql)) in inner.node_sql(sql).iter().enumerate() {
                if !analyze && i > 0 {
                    break;
                }
                let q = format!("EXPLAIN ({}) {node_sql}", o.join(", "));
                let text = match self.text_rows(*node, &q).await? {
                    Ok(r) => r.concat(),
                    Err(e) => {
                        self.push(&e);
                        self.errored = true;
                        return Ok(());
                    }
                };
                let v: serde_json::Value =
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
                let name = names.get(*node).cloned().unwrap_or_default();
                if analyze {
                    runs.push(NodeRun {
                        node: name.clone(),
                        rows: v.pointer("/0/Plan/Actual Rows").cloned(),
                        time: v.pointer("/0/Execution Time").cloned(),
                    });
                }
                if node_plan.is_none() {
                    node_plan = Some((name, v));
                }
            }
        }
        let t = tree(
            &steps,
            &runs,
            node_plan.as_ref().map(|(n, v)| (n.as_str(), v.clone())),
        );
        if describe {
            self.push(&description_for(options));
        }
        self.push(&text_row(&render(&t, format)));
        self.push(&be::command_complete("EXPLAIN"));
        Ok(())
    }
}
