//! A database of its own on the local PostgreSQL server for one test, dropped afterwards.

use sqlx::Connection as _;

/// Where the test databases are created: a URL whose user may create databases.
pub const ADMIN_URL_ENV: &str = "CERTHUB_TEST_POSTGRES";
/// The default: the local server's superuser over TCP (trust authentication on loopback).
pub const ADMIN_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, empty database; dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// Creates the database on the shared server, or fails the test naming the install step.
    pub async fn create() -> TestDatabase {
        let admin = std::env::var(ADMIN_URL_ENV).unwrap_or_else(|_| ADMIN_URL_DEFAULT.into());
        Self::create_on(&admin).await
    }

    /// Creates the database on the server at `admin` (a URL whose user may create
    /// databases).
    pub async fn create_on(admin: &str) -> TestDatabase {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let admin = admin.to_string();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Digits and underscores only: safe to splice into the statements below.
        let name = format!("certhub_test_{}_{n}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin} ({e}): apt-get install postgresql and \
                 start it (scripts/test does both), or point {ADMIN_URL_ENV} at a server where \
                 this user may create databases"
            )
        });
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("set up a database");
        }
        let mut url: reqwest::Url = admin.parse().expect("the admin URL parses");
        url.set_path(&name);
        TestDatabase { url: url.to_string(), admin, name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop cannot wait on the test's runtime; a thread with its own does the cleanup.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// A PostgreSQL server of the test's own (Debian's binaries, a fresh cluster in a temporary
/// directory, a free port on 127.0.0.1, trust authentication), so that a test can stop and
/// start the server process itself without touching the other tests' databases. It runs as
/// the `postgres` user, which the server insists on when started by root. Stopped when
/// dropped.
pub struct PostgresServer {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
    pg_ctl: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

const POSTGRES_INSTALL: &str = "apt-get install postgresql (scripts/test does)";

impl PostgresServer {
    /// Makes a cluster and starts the server.
    pub async fn start() -> PostgresServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions.filter_map(Result::ok).map(|v| v.path().join("bin")).max()
            })
            .filter(|bin| bin.join("initdb").exists())
            .unwrap_or_else(|| {
                panic!("PostgreSQL's server binaries are missing: {POSTGRES_INSTALL}")
            });
        let dir = tempfile::TempDir::new().expect("a temporary directory");
        let chown = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .output()
            .expect("chown runs");
        assert!(
            chown.status.success(),
            "the server's directory must belong to the postgres user: run the suite as root \
             ({})",
            String::from_utf8_lossy(&chown.stderr).trim()
        );
        let port = crate::free_port();
        let server = PostgresServer {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            pg_ctl: bin.join("pg_ctl"),
            dir,
            port,
        };
        as_postgres(
            &bin.join("initdb"),
            &["-D", &server.data(), "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        server.up();
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// Starts the server and waits until it accepts connections.
    pub fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").to_string_lossy().into_owned();
        as_postgres(&self.pg_ctl, &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    /// Stops the server as an administrator's restart does (`-m fast`: every client's
    /// connection is ended, open transactions rolled back), and waits until it is gone.
    pub fn down(&self) {
        as_postgres(&self.pg_ctl, &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = runuser(&self.pg_ctl, &["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}

/// Runs `program` with `args` as the `postgres` user; fails the test with its output unless
/// it succeeds.
fn as_postgres(program: &std::path::Path, args: &[&str]) {
    let out = runuser(program, args).unwrap_or_else(|e| {
        panic!("runuser {}: {e} ({POSTGRES_INSTALL}; run as root)", program.display())
    });
    assert!(
        out.status.success(),
        "{} {} failed:\n{}{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `program` with `args` as the `postgres` user.
fn runuser(program: &std::path::Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
}
