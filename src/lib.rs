//! shardgate: a sharding coordinator that speaks the PostgreSQL wire protocol.
//!
//! Data flows: `server` (accept, drain) → `session` (startup, auth, transaction state,
//! protocol loops) → `protocol` (frames) → `analyze` (SQL → tables and key pins) → `shardmap`
//! (value → shard → node, pure) → `plan` (a value: nodes and how replies combine) → `execute`
//! (pools and worker connections). `config` reads the TOML, `catalog` learns key types from the
//! workers, `local` runs throwaway PostgreSQL workers for `shardgate local` and the tests.

pub mod analyze;
pub mod catalog;
pub mod config;
pub mod error;
pub mod execute;
pub mod local;
pub mod plan;
pub mod protocol;
pub mod quote;
pub mod server;
pub mod session;
pub mod shardmap;
