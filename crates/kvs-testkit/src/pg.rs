//! A PostgreSQL of a test's own.
//!
//! With `KVS_TEST_DATABASE_URL` set, a fresh database is created in that
//! server and dropped afterwards. Otherwise a throwaway cluster is made with
//! the server binaries (`KVS_TEST_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `initdb` on `PATH`): initdb into a
//! temporary directory, a free loopback port, and `pg_ctl stop` plus removal
//! at the end. PostgreSQL refuses to run as root, so as root the cluster runs
//! as the user `postgres` (or `KVS_TEST_PG_USER`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct PgCluster {
    url: String,
    kind: Kind,
}

enum Kind {
    Own {
        dir: tempfile::TempDir,
        bin: PathBuf,
        user: Option<String>,
        port: u16,
    },
    External {
        admin_url: String,
        database: String,
    },
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("KVS_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(newest) = versions.pop() {
        return newest;
    }
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        && out.status.success()
        && let Some(dir) = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).parent()
    {
        return dir.to_path_buf();
    }
    panic!(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH): \
         install PostgreSQL's server package, set KVS_TEST_PG_BIN, or point KVS_TEST_DATABASE_URL at a server"
    );
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn id_of(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

impl PgCluster {
    /// A ready, empty database.
    pub async fn start() -> PgCluster {
        match std::env::var("KVS_TEST_DATABASE_URL") {
            Ok(admin_url) => PgCluster::external(admin_url).await,
            Err(_) => PgCluster::own(),
        }
    }

    async fn external(admin_url: String) -> PgCluster {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let database = format!("kvs_test_{}_{n}", std::process::id());
        run_sql(&admin_url, &format!("CREATE DATABASE {database}")).await;
        let mut config: tokio_postgres::Config = admin_url
            .parse()
            .expect("KVS_TEST_DATABASE_URL is not a valid URL");
        config.dbname(&database);
        let url = config_url(&config);
        PgCluster {
            url,
            kind: Kind::External {
                admin_url,
                database,
            },
        }
    }

    fn own() -> PgCluster {
        let bin = bin_dir();
        let user = running_as_root()
            .then(|| std::env::var("KVS_TEST_PG_USER").unwrap_or_else(|_| "postgres".into()));
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(user) = &user {
            let (Some(uid), Some(gid)) = (id_of(user, "-u"), id_of(user, "-g")) else {
                panic!(
                    "running as root, PostgreSQL needs an unprivileged user: create the user {user:?} or set KVS_TEST_PG_USER"
                );
            };
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown the cluster's directory");
        }
        let data = dir.path().join("data");
        let initdb = bin.join("initdb");
        let status = as_user(&user, &initdb)
            .arg("-D")
            .arg(&data)
            .args(["-U", "kvs", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", initdb.display()));
        assert!(status.success(), "initdb failed ({status})");
        let mut cluster = PgCluster {
            url: String::new(),
            kind: Kind::Own {
                dir,
                bin,
                user,
                port: 0,
            },
        };
        // PostgreSQL cannot pick a port itself: a free one is picked for it,
        // and picked again if another process took it before PostgreSQL bound it.
        for _ in 0..10 {
            let port = free_port();
            if let Kind::Own { port: p, .. } = &mut cluster.kind {
                *p = port;
            }
            cluster.url = format!("postgres://kvs@127.0.0.1:{port}/postgres");
            match cluster.try_start() {
                Ok(()) => return cluster,
                Err(log) if log.contains("could not bind") => continue,
                Err(log) => panic!("PostgreSQL did not start; server log:\n{log}"),
            }
        }
        panic!("PostgreSQL found no free port in 10 tries");
    }

    /// The URL of the test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server abruptly, as a crash would (own clusters only).
    pub fn stop_immediately(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }

    /// Starts the server (again) and waits until it takes connections.
    pub fn start_again(&self) {
        if let Err(log) = self.try_start() {
            panic!("PostgreSQL did not start again; server log:\n{log}");
        }
    }

    /// Starts the server; on failure, the server log.
    fn try_start(&self) -> Result<(), String> {
        let Kind::Own { dir, port, .. } = &self.kind else {
            panic!(
                "only a cluster of the test's own can be restarted; unset KVS_TEST_DATABASE_URL"
            );
        };
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            dir.path().display()
        );
        let log = dir.path().join("server.log");
        // A new log for each start, so that a failure shows only its own.
        let _ = std::fs::remove_file(&log);
        self.try_pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-o",
            &options,
            "-l",
            log.to_str().unwrap(),
        ])
    }

    fn pg_ctl(&self, args: &[&str]) {
        if let Err(log) = self.try_pg_ctl(args) {
            panic!("pg_ctl {args:?} failed; server log:\n{log}");
        }
    }

    /// Runs pg_ctl; on failure, the server log.
    fn try_pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let Kind::Own { dir, bin, user, .. } = &self.kind else {
            panic!("only a cluster of the test's own can be started or stopped");
        };
        let status = as_user(user, &bin.join("pg_ctl"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("cannot run pg_ctl");
        if status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        Err(format!("({status})\n{log}"))
    }

    /// Runs SQL in the test's database (for setting up and inspecting it).
    pub async fn sql(&self, sql: &str) {
        run_sql(&self.url, sql).await;
    }

    /// The first column of the first row of `query`, as an i64.
    pub async fn count(&self, query: &str) -> i64 {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
            .query_one(query, &[])
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .get(0)
    }
}

fn as_user(user: &Option<String>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn config_url(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    format!(
        "postgres://{user}{password}@{host}:{port}/{}",
        config.get_dbname().unwrap_or("postgres")
    )
}

async fn run_sql(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        match &self.kind {
            Kind::Own { .. } => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.stop_immediately()
                }));
            }
            Kind::External {
                admin_url,
                database,
            } => {
                let (admin_url, database) = (admin_url.clone(), database.clone());
                // Drop cannot await; a thread with a runtime of its own can.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(run_sql(
                        &admin_url,
                        &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
                    ));
                })
                .join();
            }
        }
    }
}
