//! SQL → what a statement touches and by which key: its kind, every distributed or reference
//! table it reads or writes, how each is pinned by its distribution key, and what would stop it
//! from running on several nodes. Read-only: plans and rewrites happen downstream.

pub mod aggregates;
pub mod attach;
pub mod cache;
pub mod calls;
pub mod classify;
pub mod copy;
pub mod depth;
pub mod derived;
pub mod explain;
pub mod foreign;
pub mod generic;
pub mod insert;
pub mod matview;
pub mod pins;
pub mod prepass;
pub mod scope;
pub mod shape;
pub mod sticky;
pub mod subquery;

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserOptions};

use crate::error::SgError;
use crate::shardmap::ShardMap;

pub use pins::{Pin, ValueSrc};

/// What a statement is, as far as routing and session state care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Select {
        locking: bool,
    },
    Insert,
    Update,
    Delete,
    CreateTable,
    CreateIndex,
    Drop,
    AlterTable,
    Truncate,
    /// Other DDL: sent to every node when `all_nodes` (schemas, types, extensions, functions that
    /// distributed tables may use), else to the default node.
    OtherDdl {
        all_nodes: bool,
    },
    Begin,
    Commit,
    Rollback,
    /// SAVEPOINT, RELEASE, ROLLBACK TO: inside a transaction, to every node it has touched.
    TxnOther,
    Set(classify::SetAction),
    Show,
    Explain {
        analyze: bool,
    },
    /// COPY FROM (a write) or COPY TO.
    Copy {
        from: bool,
    },
    /// Statements to run on every node (VACUUM, ANALYZE, CHECKPOINT, ...).
    Maintenance,
    /// Anything else: the default node.
    Other,
}

impl Kind {
    /// Whether running the statement changes data or schema (for the one-writer-node rule).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Kind::Select { locking: false }
                | Kind::Show
                | Kind::Set(_)
                | Kind::Begin
                | Kind::Commit
                | Kind::Rollback
                | Kind::TxnOther
                | Kind::Explain { analyze: false }
                | Kind::Copy { from: false }
        )
    }
}

/// One occurrence of a distributed or reference table.
#[derive(Debug, Clone)]
pub struct Access {
    pub table: String,
    /// The name the query refers to it by (its alias, else its table name).
    pub alias: String,
    /// The name its distribution column goes by there (renamed by a column list, or passed
    /// through a subquery); empty when it has none.
    pub key: String,
    pub pin: Pin,
    /// In the FROM of the statement's main SELECT (or the target of an UPDATE/DELETE): rows from
    /// several nodes can be concatenated only for such occurrences.
    pub top: bool,
}

/// An INSERT ... VALUES into a distributed table.
#[derive(Debug, Clone)]
pub struct InsertSpec {
    pub table: String,
    /// Position of the key in the column list; None when the INSERT names no columns (the
    /// table's own column order decides) .
    pub key_index: Option<usize>,
    /// Every value of every VALUES row; None where a value is not a constant.
    pub rows: Vec<Vec<Option<ValueSrc>>>,
}

/// An INSERT ... SELECT into a distributed or reference table.
#[derive(Debug, Clone)]
pub struct InsertSelectSpec {
    pub table: String,
    /// The INSERT's column list (empty: all columns in table order).
    pub columns: Vec<String>,
    /// Position of the key in `columns`; None when no column list is given.
    pub key_index: Option<usize>,
    /// The SELECT, as printed from the parsed statement.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Stmt {
    pub kind: Kind,
    /// The statement's own text, as the client sent it (for multi-statement strings, this
    /// statement's slice).
    pub text: String,
    pub ast: Option<Statement>,
    pub accesses: Vec<Access>,
    /// Touches tables the config does not list (they live on the default node).
    pub touches_local: bool,
    /// Pairs of accesses joined by equality of their distribution columns.
    pub key_joins: Vec<(usize, usize)>,
    /// Why the statement cannot simply be concatenated across nodes (aggregate, ORDER BY, ...).
    pub needs_merge: Option<String>,
    /// Why the statement cannot run across nodes at all (outer join preserving a reference
    /// table, a distributed table inside a subquery, ...).
    pub no_scatter: Option<String>,
    pub insert: Option<InsertSpec>,
    pub insert_select: Option<InsertSelectSpec>,
    /// The parser's complaint, for statements it could not read.
    pub unparsed: Option<String>,
    /// Known at analysis time to be refused.
    pub refuse: Option<SgError>,
    /// Tables named by DDL (CREATE/DROP/ALTER/TRUNCATE/CREATE INDEX).
    pub ddl_tables: Vec<String>,
    /// How the main query may name the distribution columns of its tables ("u.user_uuid").
    pub top_keys: Vec<String>,
    /// Window functions partitioned by a distribution key: the query runs whole on each node.
    pub keyed_windows: bool,
    /// The inner statement of EXPLAIN.
    pub explained: Option<Box<Stmt>>,
    /// Leaves state in the worker session (`sticky`): its connections stay with the client.
    pub sticky: bool,
    /// Calls a function name the workers' catalog did not have when last loaded.
    pub unknown_function: bool,
    /// Calls now(), current_date or another function of the transaction's or statement's
    /// instant, on a sharded table (plan::clock).
    pub stable_time: bool,
    /// Orders or groups text under a collation other than C: an explicit COLLATE (outside
    /// WHERE), or a table with such a column (catalog::functions).
    pub collated: bool,
    /// `SELECT set_config(name, value, is_local)` with constants (`calls::set_config_call`,
    /// read from the statement's text when it runs).
    pub set_config: bool,
    /// An UPDATE that assigns the distribution column: its rows may move between nodes
    /// (`plan::moves`).
    pub moves_key: bool,
    /// An INSERT into a distributed or reference table, as the filling of column defaults
    /// in shardgate needs it (`plan::fill`).
    pub insert_into: Option<InsertInto>,
    /// A WARNING the client gets when the statement runs (CREATE FUNCTION over distributed
    /// tables).
    pub warning: Option<String>,
    /// The statement's shape (literals lifted to `$n`) when it may run on its worker as a
    /// prepared statement with its literals bound as parameters (`generic`).
    pub generic: Option<String>,
}

/// What an INSERT names and leaves to defaults, read without the table's definition.
#[derive(Debug, Clone)]
pub struct InsertInto {
    pub table: String,
    /// The column list as written; empty: the table's columns in order.
    pub columns: Vec<String>,
    /// The shortest VALUES row; None when the rows come from a query.
    pub shortest_row: Option<usize>,
    /// Some VALUES item is the keyword DEFAULT.
    pub has_default: bool,
    /// Some VALUES row gives the distribution column an expression rather than a constant or
    /// parameter.
    pub key_computed: bool,
}

impl Stmt {
    pub fn new(kind: Kind, text: &str) -> Stmt {
        Stmt {
            kind,
            text: text.to_string(),
            ast: None,
            accesses: Vec::new(),
            touches_local: false,
            key_joins: Vec::new(),
            needs_merge: None,
            no_scatter: None,
            insert: None,
            insert_select: None,
            unparsed: None,
            refuse: None,
            ddl_tables: Vec::new(),
            top_keys: Vec::new(),
            keyed_windows: false,
            explained: None,
            sticky: false,
            unknown_function: false,
            stable_time: false,
            collated: false,
            set_config: false,
            moves_key: false,
            insert_into: None,
            warning: None,
            generic: None,
        }
    }
}

/// The analysis of one query string (one Parse, or one simple Query with its statements).
#[derive(Debug, Clone)]
pub struct Analysis {
    pub stmts: Vec<Stmt>,
    /// Analysed from the shape text: `$n` in pins refer to the lifted literals.
    pub from_shape: bool,
}

/// Nested parentheses and subqueries the parser follows (its default, 50, refuses queries
/// PostgreSQL answers).
const PARSER_RECURSION_LIMIT: usize = 1000;

/// Parses SQL keeping string literals exactly as written (no unescaping): printing the AST then
/// gives back the client's strings byte for byte, which sqlparser's unescaping does not
/// (it reads `\'` as an escape, where PostgreSQL's standard strings do not). Readers of literal
/// values use `pins::string_value`.
pub fn parse_sql(sql: &str) -> Result<Vec<Statement>, String> {
    let parser = || {
        Parser::new(&PostgreSqlDialect {})
            // The parser grows its own stack (sqlparser's recursive-protection); the levels it
            // allows are bounded again by `depth::estimate` before anything else walks the tree.
            .with_recursion_limit(PARSER_RECURSION_LIMIT)
            .with_options(ParserOptions::new().with_unescape(false))
    };
    let first = parser()
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    match first {
        Ok(s) => Ok(s),
        // PostgreSQL syntax sqlparser lacks, rewritten on tokens; the parser's first complaint
        // stands when that does not help.
        Err(e) => match sqlparser::tokenizer::Tokenizer::new(&PostgreSqlDialect {}, sql)
            .with_unescape(false)
            .tokenize_with_location()
            .ok()
            .and_then(|t| prepass::rewrite(&t))
        {
            Some(t) => match parser().with_tokens_with_locations(t).parse_statements() {
                Ok(mut s) => {
                    prepass::expand(&mut s);
                    Ok(s)
                }
                Err(_) => Err(e.to_string()),
            },
            None => Err(e.to_string()),
        },
    }
}

/// Analyses a query string. `original` is the client's text (kept for forwarding); `parse_text`
/// is what gets parsed (the shape, or the original).
/// A statement nesting deeper than `max_depth` (see `depth::estimate`) is not parsed: it is
/// refused with PostgreSQL's 54001.
pub fn analyze(
    original: &str,
    parse_text: &str,
    map: &ShardMap,
    max_depth: usize,
    funcs: &crate::catalog::functions::Functions,
) -> Vec<Stmt> {
    let originals = shape::split_statements(original);
    let parsed = shape::split_statements(parse_text);
    if originals.is_empty() {
        return Vec::new();
    }
    originals
        .iter()
        .enumerate()
        .map(|(i, orig)| {
            let text = parsed.get(i).copied().unwrap_or(orig);
            if depth::estimate(text) > max_depth {
                let mut s = Stmt::new(Kind::Other, orig);
                s.refuse = Some(too_deep(max_depth));
                return s;
            }
            let mut s = analyze_one(orig, text, map, funcs);
            s.sticky = sticky::keeps_session_state(text);
            if text != *orig
                && matches!(s.kind, Kind::Select { .. })
                && s.ast.as_ref().is_some_and(|a| generic::qualifies(text, a))
            {
                s.generic = Some(text.to_string());
            }
            s
        })
        .collect()
}

/// PostgreSQL's answer to a statement nested too deeply, naming the limit that refused it.
pub fn too_deep(max_depth: usize) -> SgError {
    SgError::new(
        crate::error::code::STACK_DEPTH,
        format!(
            "stack depth limit exceeded: the statement nests expressions deeper than \
             server.max_expression_depth ({max_depth})"
        ),
    )
}

fn analyze_one(
    original: &str,
    text: &str,
    map: &ShardMap,
    funcs: &crate::catalog::functions::Functions,
) -> Stmt {
    match parse_sql(text) {
        Ok(mut stmts) if stmts.len() == 1 => {
            let ast = stmts.remove(0);
            let mut s = classify::statement(&ast, original, map);
            if s.refuse.is_none() {
                s.refuse = foreign::refuse(&ast, map)
                    .or_else(|| calls::system_column(&ast, &mut s, map))
                    // An INSERT ... SELECT is evaluated once and copied to every node.
                    .or_else(|| {
                        s.insert_select
                            .is_none()
                            .then(|| calls::volatile_reference_write(&ast, map))
                            .flatten()
                    });
                calls::calls(&ast, &mut s, map, funcs);
                s.set_config = calls::set_config_call(&ast, true).is_some();
            }
            s.ast = Some(ast);
            s
        }
        Ok(_) => classify::fallback(original, map, "statement splits differently"),
        Err(e) => classify::fallback(original, map, &e),
    }
}
