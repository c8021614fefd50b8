//! Opens N client connections (tokio-postgres, SCRAM) and holds them idle, for bench/run.sh's
//! memory-per-idle-client figure: `idle_clients HOST PORT USER PASSWORD DBNAME N`. Prints
//! "open N" once all are connected, runs `SELECT 1` on every hundredth to show they serve, then
//! holds them until stdin closes.

use std::io::Read;

use futures::stream::{self, StreamExt};
use tokio_postgres::NoTls;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, host, port, user, password, dbname, n] = args.as_slice() else {
        return Err("usage: idle_clients HOST PORT USER PASSWORD DBNAME N".into());
    };
    let n: usize = n.parse()?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(host)
        .port(port.parse()?)
        .user(user)
        .password(password)
        .dbname(dbname);
    // A few dozen handshakes at a time, as a pool warming up would open them.
    let clients: Vec<_> = stream::iter(0..n)
        .map(|_| {
            let cfg = cfg.clone();
            async move {
                let (c, conn) = cfg.connect(NoTls).await?;
                tokio::spawn(conn);
                Ok::<_, tokio_postgres::Error>(c)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let clients: Vec<_> = clients.into_iter().collect::<Result<_, _>>()?;
    for c in clients.iter().step_by(100) {
        c.simple_query("SELECT 1").await?;
    }
    println!("open {}", clients.len());
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    drop(clients);
    Ok(())
}
