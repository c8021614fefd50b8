//! The host side of local clusters: where PostgreSQL's programs are and how they run (as user
//! `postgres` when shardgate runs as root), free and open loopback ports, live postmaster PIDs.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Command for PostgreSQL tool `tool` from `bindir`, run as user `postgres` when `as_postgres`.
pub(super) fn pg_cmd(bindir: &Path, as_postgres: bool, cwd: &Path, tool: &str) -> Command {
    let prog = Some(bindir.join(tool))
        .filter(|p| p.exists())
        .unwrap_or_else(|| tool.into());
    let mut c = match (as_postgres, find_exe("runuser")) {
        (false, _) => Command::new(prog),
        (true, Some(runuser)) => {
            let mut c = Command::new(runuser);
            c.args(["-u", "postgres", "--"]).arg(prog);
            c
        }
        (true, None) => {
            let mut c = Command::new("su");
            c.args([
                "-s",
                "/bin/sh",
                "-c",
                "exec \"$0\" \"$@\"",
                "--",
                "postgres",
            ])
            .arg(prog);
            c
        }
    };
    c.current_dir(cwd)
        .env_remove("PGOPTIONS")
        .env_remove("PGSERVICE");
    c
}

pub(super) fn pg_ctl_stop(
    bindir: &Path,
    as_postgres: bool,
    cwd: &Path,
    data: &Path,
) -> io::Result<()> {
    let mut c = pg_cmd(bindir, as_postgres, cwd, "pg_ctl");
    c.arg("-D")
        .arg(data)
        .args(["-m", "fast", "-w", "-t", "30", "stop"]);
    check(run(&mut c)?, "pg_ctl stop")
}

/// Ask the OS for n free loopback TCP ports (bind 127.0.0.1:0, read the port, release).
pub fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    // All listeners are held at once so the n ports are distinct.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<_>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The `pg_config` to ask for the server's directories: `SHARDGATE_PG_CONFIG` when set (the
/// tests point it at nothing to play a machine without PostgreSQL), else the one on PATH.
fn pg_config() -> PathBuf {
    std::env::var_os("SHARDGATE_PG_CONFIG").map_or_else(|| "pg_config".into(), PathBuf::from)
}

/// Where Debian keeps one bin/ per PostgreSQL version: `SHARDGATE_PG_LIBDIR` when set.
pub fn pg_libdir() -> PathBuf {
    std::env::var_os("SHARDGATE_PG_LIBDIR")
        .map_or_else(|| "/usr/lib/postgresql".into(), PathBuf::from)
}

/// Directory holding initdb/pg_ctl/postgres: PATH first (if `initdb` found there; symlinks
/// resolved), else `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin.
pub fn pg_bindir() -> io::Result<PathBuf> {
    let on_path = find_exe("initdb").and_then(|p| p.canonicalize().ok());
    if let Some(dir) = on_path.as_deref().and_then(Path::parent) {
        return Ok(dir.to_path_buf());
    }
    if let Ok(o) = Command::new(pg_config()).arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        if o.status.success() && dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in std::fs::read_dir(pg_libdir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        let ver: Vec<u32> = name.split('.').map(|p| p.parse().unwrap_or(0)).collect();
        let bin = entry.path().join("bin");
        if bin.join("initdb").exists() && best.as_ref().is_none_or(|(v, _)| ver > *v) {
            best = Some((ver, bin));
        }
    }
    let missing = || {
        io::Error::new(
            io::ErrorKind::NotFound,
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed: not on PATH, not \
             in pg_config --bindir, not under /usr/lib/postgresql/*/bin. `bash scripts/local.sh` \
             installs them (Debian packages) and starts `local`; or install the `postgresql` \
             package yourself",
        )
    };
    best.map(|(_, bin)| bin).ok_or_else(missing)
}

fn find_exe(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/sbin"].map(PathBuf::from));
    let is_exe = |p: &PathBuf| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    dirs.map(|d| d.join(name)).find(is_exe)
}

pub(super) fn run(c: &mut Command) -> io::Result<Output> {
    c.stdin(Stdio::null()).output()
}

pub(super) fn check(o: Output, what: &str) -> io::Result<()> {
    if o.status.success() {
        return Ok(());
    }
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    Err(io::Error::other(format!(
        "{what} failed ({}): {} {}",
        o.status,
        out.trim(),
        err.trim()
    )))
}

pub(super) fn port_open(port: u16) -> bool {
    let addr = (Ipv4Addr::LOCALHOST, port).into();
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

pub(super) fn euid_is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match status.lines().find(|l| l.starts_with("Uid:")) {
        Some(line) => line.split_whitespace().nth(2) == Some("0"), // Uid: real effective saved fs
        None => Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0"),
    }
}

/// chown the tree to postgres and make every ancestor directory traversable for it.
pub(super) fn prepare_root_for_postgres(root: &Path) -> io::Result<()> {
    let chown = Command::new("chown")
        .args(["-R", "postgres:"])
        .arg(root)
        .output()?;
    check(chown, "chown -R postgres (does the `postgres` user exist?)")?;
    for dir in root.ancestors().skip(1) {
        let mut perms = std::fs::metadata(dir)?.permissions();
        if perms.mode() & 0o001 == 0 {
            tracing::warn!(
                "chmod o+x {} so user postgres can reach {}",
                dir.display(),
                root.display()
            );
            perms.set_mode(perms.mode() | 0o001);
            std::fs::set_permissions(dir, perms)?;
        }
    }
    Ok(())
}

/// Whether the PID in postmaster.pid is a live postgres process (not a stale, reused PID).
pub(super) fn pid_is_postgres(pidfile: &Path) -> bool {
    let text = std::fs::read_to_string(pidfile).unwrap_or_default();
    let pid = text.lines().next().unwrap_or("").trim();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !pid.is_empty() && String::from_utf8_lossy(&cmdline).contains("postgres")
}

pub(super) fn has_pg_stat_statements(bindir: &Path) -> bool {
    let mut shares = vec![bindir.join("../share")];
    for prog in [bindir.join("pg_config"), pg_config()] {
        match Command::new(prog).arg("--sharedir").output() {
            Ok(o) if o.status.success() && !o.stdout.trim_ascii().is_empty() => {
                shares.push(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            }
            _ => {}
        }
    }
    shares
        .iter()
        .any(|s| s.join("extension/pg_stat_statements.control").is_file())
}
