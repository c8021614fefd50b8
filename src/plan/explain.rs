//! EXPLAIN in PostgreSQL's machine-readable formats: the distributed plan as a tree beside the
//! node's own plan (asked of the node in JSON), printed as JSON, YAML or XML the way
//! PostgreSQL prints them (explain.c ExplainOpenGroup/ExplainProperty, escape_json,
//! escape_yaml, escape_xml): two-space indentation, YAML strings quoted, XML elements named
//! after the keys with spaces made hyphens, in the 2009 explain namespace.

use serde_json::{json, Map, Value};

/// The formats EXPLAIN (FORMAT ...) names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    Text,
    Json,
    Yaml,
    Xml,
}

impl Format {
    /// The format an option list names (`FORMAT JSON`); TEXT when none.
    pub fn of(options: &[String]) -> Format {
        let named = options.iter().find_map(|o| {
            let u = o.to_ascii_uppercase();
            u.strip_prefix("FORMAT ")
                .map(|f| f.trim().trim_matches('\'').to_string())
        });
        match named.as_deref() {
            Some("JSON") => Format::Json,
            Some("YAML") => Format::Yaml,
            Some("XML") => Format::Xml,
            _ => Format::Text,
        }
    }
}

/// One node's execution under EXPLAIN ANALYZE.
pub struct NodeRun {
    pub node: String,
    pub rows: Option<Value>,
    pub time: Option<Value>,
}

/// The whole EXPLAIN as one value: the distributed plan's lines and runs, and the node's plan
/// (the first element of the node's JSON EXPLAIN).
pub fn tree(steps: &[String], runs: &[NodeRun], node: Option<(&str, Value)>) -> Value {
    let mut d = Map::new();
    d.insert("Steps".into(), json!(steps));
    if !runs.is_empty() {
        let r: Vec<Value> = runs
            .iter()
            .map(|r| {
                json!({
                    "Node": r.node,
                    "Actual Rows": r.rows.clone().unwrap_or(Value::Null),
                    "Execution Time": r.time.clone().unwrap_or(Value::Null),
                })
            })
            .collect();
        d.insert("Node Runs".into(), Value::Array(r));
    }
    if let Some((name, plan)) = node {
        d.insert("Node".into(), json!(name));
        let inner = match plan {
            Value::Array(mut v) if !v.is_empty() => v.swap_remove(0),
            other => other,
        };
        d.insert("Node Plan".into(), inner);
    }
    json!([{ "Distributed Plan": Value::Object(d) }])
}

/// The tree printed in `format` (not Text).
pub fn render(v: &Value, format: Format) -> String {
    match format {
        Format::Yaml => {
            let mut out = String::new();
            yaml(v, 0, &mut out);
            out.trim_end_matches('\n').to_string()
        }
        Format::Xml => {
            let mut out =
                String::from("<explain xmlns=\"http://www.postgresql.org/2009/explain\">\n");
            if let Value::Array(items) = v {
                for i in items {
                    xml_value("Query", i, 1, &mut out);
                }
            }
            out.push_str("</explain>");
            out
        }
        Format::Json | Format::Text => serde_json::to_string_pretty(v).unwrap_or_default(),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Array(items) => {
            for i in items {
                match i {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}- "));
                        let mut inner = String::new();
                        yaml(i, indent + 2, &mut inner);
                        out.push_str(inner.trim_start());
                    }
                    s => out.push_str(&format!("{pad}- {}\n", scalar(s))),
                }
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::Object(_) => {
                        out.push_str(&format!("{pad}{k}: \n"));
                        yaml(x, indent + 2, out);
                    }
                    Value::Array(a) if a.is_empty() => out.push_str(&format!("{pad}{k}: []\n")),
                    Value::Array(_) => {
                        out.push_str(&format!("{pad}{k}: \n"));
                        yaml(x, indent + 2, out);
                    }
                    s => out.push_str(&format!("{pad}{k}: {}\n", scalar(s))),
                }
            }
        }
        s => out.push_str(&format!("{pad}{}\n", scalar(s))),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml_value(name: &str, v: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    let tag = name.replace(' ', "-");
    match v {
        Value::Object(m) => {
            out.push_str(&format!("{pad}<{tag}>\n"));
            for (k, x) in m {
                xml_value(k, x, indent + 1, out);
            }
            out.push_str(&format!("{pad}</{tag}>\n"));
        }
        Value::Array(items) => {
            out.push_str(&format!("{pad}<{tag}>\n"));
            let item = if name == "Plans" { "Plan" } else { "Item" };
            for i in items {
                xml_value(item, i, indent + 1, out);
            }
            out.push_str(&format!("{pad}</{tag}>\n"));
        }
        Value::String(s) => out.push_str(&format!("{pad}<{tag}>{}</{tag}>\n", xml_escape(s))),
        other => out.push_str(&format!("{pad}<{tag}>{other}</{tag}>\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_each_format() {
        let node = json!([{ "Plan": { "Node Type": "Seq Scan", "Total Cost": 1.5 } }]);
        let t = tree(&["Route node=w1".into()], &[], Some(("w1", node)));
        assert_eq!(
            render(&t, Format::Json),
            "[\n  {\n    \"Distributed Plan\": {\n      \"Steps\": [\n        \"Route node=w1\"\n      ],\n      \"Node\": \"w1\",\n      \"Node Plan\": {\n        \"Plan\": {\n          \"Node Type\": \"Seq Scan\",\n          \"Total Cost\": 1.5\n        }\n      }\n    }\n  }\n]"
        );
        assert_eq!(
            render(&t, Format::Yaml),
            "- Distributed Plan: \n    Steps: \n      - \"Route node=w1\"\n    Node: \"w1\"\n    Node Plan: \n      Plan: \n        Node Type: \"Seq Scan\"\n        Total Cost: 1.5"
        );
        let x = render(&t, Format::Xml);
        assert!(x.contains("<Node-Type>Seq Scan</Node-Type>"), "{x}");
        assert_eq!(
            Format::of(&["COSTS OFF".into(), "FORMAT 'yaml'".into()]),
            Format::Yaml
        );
    }
}
