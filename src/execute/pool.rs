//! The pools of raw worker connections: bb8's manager for a node (connect, and drop what a
//! statement left broken or a panic left behind) and TCP keepalive on every socket.

use std::time::Duration;

use tokio::net::TcpStream;

use super::backend::{Backend, Target};
use crate::error::SgError;

/// TCP keepalive on a socket, so a peer that vanished without a FIN (a frozen or unplugged
/// host) is noticed by the kernel within about `secs` × 4 even while nothing is being sent.
pub fn keepalive(s: &TcpStream, secs: u64) -> std::io::Result<()> {
    if secs == 0 {
        return Ok(());
    }
    let d = Duration::from_secs(secs);
    let ka = socket2::TcpKeepalive::new()
        .with_time(d)
        .with_interval(d)
        .with_retries(3);
    socket2::SockRef::from(s).set_tcp_keepalive(&ka)
}

/// bb8's view of a node: how to open a connection and whether one is still usable.
pub struct Manager {
    pub target: Target,
}

impl bb8::ManageConnection for Manager {
    type Connection = Backend;
    type Error = SgError;

    async fn connect(&self) -> Result<Backend, SgError> {
        Backend::connect(&self.target).await
    }

    async fn is_valid(&self, _conn: &mut Backend) -> Result<(), SgError> {
        Ok(())
    }

    fn has_broken(&self, conn: &mut Backend) -> bool {
        // Given back while a panic unwinds the session that held it: its state is unknown.
        conn.broken || std::thread::panicking()
    }
}

pub type Pool = bb8::Pool<Manager>;
pub type Pooled = bb8::PooledConnection<'static, Manager>;
