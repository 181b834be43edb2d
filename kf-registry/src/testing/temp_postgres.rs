//! [`TempPostgres`]: a throwaway PostgreSQL server for tests and benchmarks.
//!
//! It runs the server binaries installed on the machine (Debian's
//! `postgresql` package, or any installation `pg_config` points at) on a
//! cluster in a fresh temporary directory, listening only on a Unix socket in
//! that directory, and removes both when dropped. Nothing is shared with
//! another server on the machine: not the data, not the socket, not the port.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{Error, Result};

/// The port the server is told; with no TCP listener it only names the socket
/// file (`.s.PGSQL.5432`), which lives in this server's own directory, so it
/// cannot collide with another server.
const PORT: u16 = 5432;

/// The account that owns the cluster when the caller is root (initdb and
/// postgres refuse to run as root). Debian's package creates it.
const SERVICE_USER: &str = "postgres";

/// A PostgreSQL server of its own, stopped and deleted on drop.
///
/// [`TempPostgres::start`] finds the binaries (`KF_PG_BINDIR`, else
/// `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`, else
/// `PATH`), runs `initdb` (trust authentication, UTF-8, `C.UTF-8` locale when
/// the system has it) into a new temporary directory and starts the server
/// with `pg_ctl -w`, which returns once it accepts connections. When the
/// caller is root, every server command runs as the `postgres` account
/// through `runuser`, and the directory is handed to that account.
///
/// ```
/// use kf_registry::testing::TempPostgres;
///
/// let Some(server) = TempPostgres::start()? else {
///     eprintln!("PostgreSQL is not installed: nothing to start");
///     return Ok(());
/// };
/// let url = server.create_database("example")?;
/// assert!(url.starts_with("postgres://"));
/// # Ok::<(), kf_registry::Error>(())
/// ```
pub struct TempPostgres {
    root: PathBuf,
    bin: PathBuf,
    /// `Some(account)` when server commands run as another account.
    run_as: Option<String>,
}

fn fail(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Storage(format!("temporary PostgreSQL: {what}: {detail}"))
}

impl TempPostgres {
    /// The directory holding `initdb`, `pg_ctl`, `postgres` and `createdb`, if there is one.
    pub fn bin_dir() -> Option<PathBuf> {
        let usable = |dir: &Path| ["initdb", "pg_ctl", "postgres", "createdb"].iter().all(|b| dir.join(b).is_file());
        if let Some(dir) = std::env::var_os("KF_PG_BINDIR") {
            return Some(PathBuf::from(dir)).filter(|d| usable(d));
        }
        let from_pg_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        // Debian installs the server under /usr/lib/postgresql/<major>/bin; prefer the newest.
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .collect();
        versions.sort();
        let from_path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
        from_pg_config
            .into_iter()
            .chain(versions.into_iter().rev().map(|(_, dir)| dir))
            .chain(from_path.into_iter().flatten())
            .find(|d| usable(d))
    }

    /// Starts a server, or `Ok(None)` when no PostgreSQL binaries are
    /// installed. Takes a few seconds (initdb dominates).
    pub fn start() -> Result<Option<TempPostgres>> {
        let Some(bin) = Self::bin_dir() else { return Ok(None) };
        let run_as = is_root().then(|| SERVICE_USER.to_owned());
        let root = make_temp_dir()?;
        let server = TempPostgres { root, bin, run_as };
        server.init()?;
        Ok(Some(server))
    }

    fn init(&self) -> Result<()> {
        if let Some(account) = &self.run_as {
            let (uid, gid) = (id_of(account, "-u")?, id_of(account, "-g")?);
            std::os::unix::fs::chown(&self.root, Some(uid), Some(gid))
                .map_err(|e| fail(&format!("handing {} to {account}", self.root.display()), e))?;
        }
        let data = self.data_dir();
        let data = data.to_string_lossy();
        let base = ["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"];
        // C.UTF-8 makes the database's default LOWER fold non-ASCII letters, which
        // is what the store's COLLATE "C" must guard against; fall back if it is missing.
        let first = self.run("initdb", &[&base[..], &["--locale=C.UTF-8"]].concat())?;
        if !first.status.success() {
            let _ = std::fs::remove_dir_all(self.data_dir());
            self.check("initdb", self.run("initdb", &[&base[..], &["--no-locale"]].concat())?)?;
        }
        let socket = self.root.to_string_lossy();
        let options = format!("-k {socket} -p {PORT} -c listen_addresses='' -c max_connections=200");
        let log = self.root.join("server.log");
        let started = self
            .run("pg_ctl", &["start", "-w", "-t", "60", "-D", &data, "-l", &log.to_string_lossy(), "-o", &options])?;
        if !started.status.success() {
            let server_log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(fail("pg_ctl start", format!("{}\n{server_log}", describe(&started))));
        }
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Runs one of the server's programs, as the service account when root.
    fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(account) => {
                let mut c = Command::new("runuser");
                c.args(["-u", account, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        // The caller's directory may be closed to the service account.
        command.args(args).current_dir(&self.root).env_remove("PGDATA");
        command.output().map_err(|e| fail(&format!("running {}", path.display()), e))
    }

    fn check(&self, what: &str, output: Output) -> Result<()> {
        if output.status.success() { Ok(()) } else { Err(fail(what, describe(&output))) }
    }

    /// The URL of `database` on this server: its Unix socket's directory,
    /// percent-encoded, is the host.
    pub fn url(&self, database: &str) -> String {
        let mut host = String::new();
        for byte in self.root.to_string_lossy().bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                host.push(char::from(byte));
            } else {
                host.push_str(&format!("%{byte:02X}"));
            }
        }
        format!("postgres://postgres@{host}:{PORT}/{database}")
    }

    /// Creates an empty database and returns its URL. `name` must be a plain
    /// identifier (letters, digits, `_`).
    pub fn create_database(&self, name: &str) -> Result<String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::invalid("name", format!("expected letters, digits and _, found {name:?}")));
        }
        let socket = self.root.to_string_lossy();
        let port = PORT.to_string();
        self.check("createdb", self.run("createdb", &["-h", &socket, "-p", &port, "-U", "postgres", name])?)?;
        Ok(self.url(name))
    }

    /// The directory holding the cluster, the socket and `server.log`.
    pub fn dir(&self) -> &Path {
        &self.root
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        // "immediate" skips the shutdown checkpoint: the data is about to be deleted.
        let _ = self.run("pg_ctl", &["stop", "-w", "-t", "30", "-m", "immediate", "-D", &data.to_string_lossy()]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn describe(output: &Output) -> String {
    format!(
        "{} (stdout: {}; stderr: {})",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn id_of(account: &str, flag: &str) -> Result<u32> {
    let output = Command::new("id").args([flag, account]).output().map_err(|e| fail("running id", e))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| fail(&format!("looking up the account {account:?}"), describe(&output)))
}

/// A new directory under the system's temporary directory.
fn make_temp_dir() -> Result<PathBuf> {
    let mut suffix = [0u8; 6];
    rand::fill(&mut suffix[..]);
    // Short: a Unix socket path must fit in 107 bytes.
    let dir = std::env::temp_dir().join(format!("kf-pg-{}", hex::encode(suffix)));
    std::fs::create_dir(&dir).map_err(|e| fail(&format!("creating {}", dir.display()), e))?;
    Ok(dir)
}
