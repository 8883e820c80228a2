//! certhub storage: the data directory's SQLite database, or a PostgreSQL database shared by
//! several hubs, with secrets encrypted at rest.
//!
//! [`Store::open`] prepares a data directory: it creates the directory (mode 0700) when
//! missing, loads or creates the master key ([`crypto`]), opens `certhub.db` in WAL mode with
//! foreign keys enforced and a busy timeout, and applies the embedded migrations.
//! [`Store::open_database`] does the same with a `postgres://` URL instead of the SQLite file
//! (the master key still comes from the environment or the data directory: every hub sharing
//! the database needs the same key). Each backend has its own migrations
//! (`migrations/sqlite`, `migrations/postgres`) leading to the same schema; PostgreSQL
//! serialises concurrent migrations with an advisory lock.
//!
//! Secret columns (account keys, certificate keys, challenge configurations holding DNS
//! credentials, presented challenge specs) are sealed with envelope encryption before they
//! reach the database and opened on read; a blob that fails to open yields
//! [`Error::Crypto`] naming the table, row and column.
//!
//! The SQL is portable (`$1` placeholders, BIGINT epoch milliseconds and flags, TEXT and
//! byte strings only, `RETURNING` for generated ids, no statement after a failed one inside a
//! transaction) and runs through sqlx's `Any` driver on both backends; only [`Store::open`]
//! and the write-transaction helper know which one is in use.
//!
//! Contract for callers: every method is atomic on its own; methods that touch several rows
//! ([`Store::complete_order`], [`Store::delete_cert`], the inserts of rows with generated ids)
//! run in one transaction. Several [`Store`] handles, also in other processes, may use one data
//! directory at once. Cancelling a method's future rolls back whatever it had not committed.

mod account;
mod agent;
mod agent_challenge;
mod ari;
pub mod audit;
mod cert;
mod changes;
mod credential;
pub mod crypto;
mod deploy;
mod event;
mod issued;
mod job;
mod lease;
mod listing;
mod notify;
mod order;
mod shared;
mod user;
pub mod vocab;

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use certhub_core::time::now_ms;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyPool, ConnectOptions as _, Connection as _, Executor as _, Transaction};

pub use account::AccountRecord;
pub use agent::{AgentAuthority, AgentDeploymentRecord, AgentRecord, AgentTokenRecord, NewAgent};
pub use agent_challenge::AgentChallengeRecord;
pub use ari::RenewalInfoRecord;
pub use audit::{AuditEntry, AuditRecord};
pub use cert::{CertRecord, DEFAULT_FALLBACK_AFTER, RETRY_STOPPED};
pub use changes::Change;
pub use credential::CredentialRecord;
pub use crypto::MasterKey;
pub use deploy::DeployTaskRecord;
pub use event::EventRecord;
pub use issued::IssuedRecord;
pub use job::JobRecord;
pub use lease::CertLease;
pub use listing::{CertFilter, CertSummary, LatestIssued, MetricsSnapshot, Overview, OverviewSpec};
pub use notify::ChannelRecord;
pub use order::{OrderKey, OrderRecord, PlacedOrder, PresentedRecord};
pub use shared::BudgetHold;
pub use user::{TokenKind, TokenRecord, UserChange, UserRecord, same_secret, token_hash};
pub use vocab::{CertState, ChallengeState, EventKind, JobStatus, OrderStatus};

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "certhub.db";

/// The lock file that serialises master key creation and migrations between processes.
const LOCK_FILE: &str = "certhub.lock";

/// How long a SQLite writer waits for another writer's lock before giving up: 10 s.
const BUSY_TIMEOUT_PRAGMA: &str = "PRAGMA busy_timeout = 10000";

/// How long [`Store::open`] waits for another process that is setting up the same directory.
const SETUP_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a caller waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A PostgreSQL connection idle this long is pinged before it is used again: one in steady
/// use is not (it answered a moment ago), one that sat through a quiet spell, when a
/// server restart or a dropped connection goes unseen, is replaced if it does not answer.
const CHECK_IDLE_CONNECTION_AFTER: Duration = Duration::from_secs(1);

/// PostgreSQL connections per [`Store`].
const POSTGRES_CONNECTIONS: u32 = 16;

/// SQLite connections for reading per [`Store`], beside the one for writing (WAL lets them
/// run together): one per core, at least two and at most eight. sqlx runs each SQLite
/// connection on a thread of its own, where the query's work is done; with more of them
/// than cores, a query waits for the scheduler's next time slice now and then (at 2,000
/// certificates on two cores, four readers gave a pull p99 of 15 ms at half load, two gave
/// 2 ms).
fn sqlite_readers() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8) as u32
}

/// The master key check's row in `meta`.
const KEY_CHECK_NAME: &str = "master_key_check";
const KEY_CHECK_VALUE: &[u8] = b"certhub master key check";

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The newest schema version `migrator` knows.
fn newest(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The schema version of the database behind `pool` (0 before the first migration).
async fn schema_version(pool: &sqlx::AnyPool) -> Result<i64, sqlx::Error> {
    match sqlx::query_scalar::<_, Option<i64>>(
        "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(pool)
    .await
    {
        Ok(v) => Ok(v.unwrap_or(0)),
        // No migration table yet: a new database.
        Err(sqlx::Error::Database(_)) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Migrates the database forward, refusing one a newer certhub migrated further.
async fn migrate(migrator: &Migrator, pool: &sqlx::AnyPool) -> Result<(), Error> {
    let (database, binary) = (schema_version(pool).await?, newest(migrator));
    if database > binary {
        return Err(Error::Newer { database, binary });
    }
    migrator.run(pool).await?;
    Ok(())
}
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`Store`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `certhub.db` in the data directory.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named row does not exist.
    #[error("{what} {name:?} was not found")]
    NotFound {
        /// What kind of thing, e.g. "account".
        what: &'static str,
        /// Its name or id.
        name: String,
    },
    /// A row with this name already exists.
    #[error("{what} {name:?} already exists")]
    AlreadyExists {
        /// What kind of thing, e.g. "account".
        what: &'static str,
        /// Its name or id.
        name: String,
    },
    /// The row cannot be deleted while other rows refer to it.
    #[error("{what} {name:?} cannot be deleted while {by} refer to it")]
    InUse {
        /// What kind of thing, e.g. "account".
        what: &'static str,
        /// Its name or id.
        name: String,
        /// What still refers to it, e.g. "managed certificates".
        by: &'static str,
    },
    /// The values given contradict what is stored.
    #[error("{what} {name:?} cannot be stored: {reason}")]
    Invalid {
        /// What kind of thing, e.g. "issued certificate".
        what: &'static str,
        /// Its name or id.
        name: String,
        /// Why not.
        reason: String,
    },
    /// The database failed. Its cause is in the message, and not given again as the
    /// source, so that a chain of causes says it once.
    #[error("database operation failed: {0}")]
    Database(sqlx::Error),
    /// The database's schema is newer than this binary knows: a newer certhub migrated it.
    #[error(
        "the database was migrated by a newer certhub (its schema is at version {database}, \
         this certhub knows up to {binary}): run the newer certhub, or restore the backup made \
         before the upgrade"
    )]
    Newer {
        /// The schema version of the database.
        database: i64,
        /// The newest this binary knows.
        binary: i64,
    },
    /// Applying the schema migrations failed.
    #[error("migrating the database schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Encryption, decryption or the master key failed.
    #[error(transparent)]
    Crypto {
        /// The cause.
        #[from]
        source: crypto::Error,
    },
    /// A file or directory operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "create the data directory".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A stored JSON column does not parse.
    #[error("the stored {column} of {table} row {row:?} cannot be read: {source}")]
    Json {
        /// The table.
        table: &'static str,
        /// The row's key.
        row: String,
        /// The column.
        column: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The database URL is not one certhub can use.
    #[error("{0}")]
    Url(String),
    /// Stored data, or data given to check against it (an audit anchor), that cannot be
    /// read; the message names it.
    #[error("{0}")]
    Unreadable(String),
    /// Another process kept the data directory's setup lock too long.
    #[error("timed out after {}s waiting for the lock on {path}", .waited.as_secs())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}

impl Error {
    /// Whether the database's disk (or its quota) is full: nothing was written, and the same
    /// operation succeeds once there is room.
    pub fn is_storage_full(&self) -> bool {
        match self {
            // SQLITE_FULL; PostgreSQL's disk_full.
            Error::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("13" | "53100"))
            }
            Error::Database(sqlx::Error::Io(e)) | Error::Io { source: e, .. } => {
                e.kind() == io::ErrorKind::StorageFull
            }
            _ => false,
        }
    }

    /// Whether the database could not be reached, or ended the connection (a server
    /// restarting or shutting down): nothing may have been written, and the same operation
    /// may succeed once it is back.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed,
            ) => true,
            Error::Database(sqlx::Error::Io(_)) => !self.is_storage_full(),
            // PostgreSQL's connection exceptions (08…) and operator interventions (57P…).
            Error::Database(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
            }
            _ => false,
        }
    }
}

/// The data directory's database. Cloning is cheap: clones share one connection pool and the
/// master key.
#[derive(Clone, Debug)]
pub struct Store {
    /// Reads, and on PostgreSQL writes too.
    pool: AnyPool,
    /// Writes. On SQLite one connection of its own: the database has one write lock, and
    /// with several connections the process's writers would wait for it in SQLite's busy
    /// handler, which sleeps 1, 2, 5, 10… ms between tries and leaves the lock idle
    /// meanwhile; this pool queues them in order instead. On PostgreSQL the same pool.
    writer: AnyPool,
    backend: Backend,
    key: Arc<MasterKey>,
    tokens: Arc<user::TokenCache>,
    changes: changes::Changes,
}

impl Store {
    /// Opens (and on first use creates) the store in `data_dir`, taking the master key from
    /// [`crypto::MASTER_KEY_ENV`] when set, otherwise from `data_dir/master.key`, which is
    /// created with mode 0600 when missing.
    pub async fn open(data_dir: &Path) -> Result<Store, Error> {
        Self::open_inner(data_dir, None, None).await
    }

    /// Opens the store with the database at `url` (`postgres://…`), or the data directory's
    /// SQLite file when `url` is `None`. The master key is found as by [`Store::open`].
    pub async fn open_database(data_dir: &Path, url: Option<&str>) -> Result<Store, Error> {
        Self::open_inner(data_dir, url, None).await
    }

    /// Opens (and on first use creates) the store in `data_dir` with the given master key; the
    /// environment and the key file are not consulted.
    pub async fn open_with_master_key(data_dir: &Path, key: MasterKey) -> Result<Store, Error> {
        Self::open_inner(data_dir, None, Some(key)).await
    }

    /// [`Store::open_database`] with the given master key.
    pub async fn open_database_with_master_key(
        data_dir: &Path,
        url: Option<&str>,
        key: MasterKey,
    ) -> Result<Store, Error> {
        Self::open_inner(data_dir, url, Some(key)).await
    }

    /// Which database this store uses.
    /// Whether this store can serve: the database answers and its schema is the one this
    /// binary knows; else what is wrong.
    pub async fn ready(&self) -> Result<(), String> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        let database = schema_version(&self.pool)
            .await
            .map_err(|e| format!("the database does not answer: {e}"))?;
        let binary = newest(migrator);
        match database.cmp(&binary) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(Error::Newer { database, binary }.to_string()),
            std::cmp::Ordering::Less => Err(format!(
                "the database's schema is at version {database}, and this certhub needs \
                 {binary}: restart it to migrate"
            )),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn open_inner(
        data_dir: &Path,
        url: Option<&str>,
        key: Option<MasterKey>,
    ) -> Result<Store, Error> {
        static DRIVERS: std::sync::Once = std::sync::Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        DirBuilder::new().recursive(true).mode(0o700).create(data_dir).map_err(|source| {
            Error::Io { action: "create the data directory", path: data_dir.to_owned(), source }
        })?;

        // Held until setup is done, so concurrent openers never race on migrations.
        let _lock = setup_lock(&data_dir.join(LOCK_FILE)).await?;

        let key = match key {
            Some(key) => key,
            None => MasterKey::from_env_or_file(data_dir)?,
        };

        if let Some(url) = url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(Error::Url(format!(
                    "unsupported database URL {:?}: expected postgres://USER@HOST/DATABASE \
                     (or no URL for the data directory's SQLite file)",
                    redact_url(url)
                )));
            }
            let options = AnyConnectOptions::from_url(
                &url.parse().map_err(|e| Error::Url(format!("{}: {e}", redact_url(url))))?,
            )?;
            // Checking a connection costs a round trip, so it is checked only after it sat
            // idle (see CHECK_IDLE_CONNECTION_AFTER), not before every query.
            let pool = AnyPoolOptions::new()
                .max_connections(POSTGRES_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= CHECK_IDLE_CONNECTION_AFTER {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await?;
            migrate(&POSTGRES_MIGRATOR, &pool).await?;
            let store = Store {
                writer: pool.clone(),
                pool,
                backend: Backend::Postgres,
                key: Arc::new(key),
                tokens: Default::default(),
                changes: changes::Changes::new(Some(url)),
            };
            store.check_master_key().await?;
            return Ok(store);
        }

        let db_path = data_dir.join(DATABASE_FILE);
        // Create the file private before SQLite does it with the umask's mode; SQLite gives
        // its -wal and -shm files the same mode.
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&db_path) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Io {
                    action: "create the database file",
                    path: db_path,
                    source,
                });
            }
        }

        // The Any driver takes a URL, which carries no pragmas: each connection sets them.
        let url =
            SqliteConnectOptions::new().filename(&db_path).create_if_missing(true).to_url_lossy();
        let options = AnyConnectOptions::from_url(&url)?;
        let sqlite_pool = |connections: u32| {
            // A SQLite connection is a file handle in this process: nothing can hang up on it,
            // so it is not pinged before each use.
            AnyPoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        for pragma in [
                            BUSY_TIMEOUT_PRAGMA,
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                        ] {
                            conn.execute(pragma).await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(options.clone())
        };
        let writer = sqlite_pool(1).await?;
        migrate(&SQLITE_MIGRATOR, &writer).await?;
        let pool = sqlite_pool(sqlite_readers()).await?;

        let store = Store {
            pool,
            writer,
            backend: Backend::Sqlite,
            key: Arc::new(key),
            tokens: Default::default(),
            changes: changes::Changes::new(None),
        };
        store.check_master_key().await?;
        Ok(store)
    }

    /// Stores a sealed check value on first use, and verifies on every later open that the
    /// master key still opens it, so a wrong key fails at start, not at the first secret.
    async fn check_master_key(&self) -> Result<(), Error> {
        let binding = crypto::Binding::new("meta", KEY_CHECK_NAME, "value");
        let sealed = self.key.seal(&binding, KEY_CHECK_VALUE)?;
        sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(KEY_CHECK_NAME)
            .bind(sealed)
            .execute(&self.writer)
            .await?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM meta WHERE name = $1")
            .bind(KEY_CHECK_NAME)
            .fetch_one(&self.pool)
            .await?;
        match self.key.open(&binding, &stored) {
            Ok(value) if value.as_slice() == KEY_CHECK_VALUE => Ok(()),
            _ => Err(crypto::Error::WrongMasterKey.into()),
        }
    }

    /// The value of `meta` row `name`.
    pub(crate) async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Sets `meta` row `name` to `value`.
    pub(crate) async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Closes the connection pools (reads and writes), waiting for running queries; every
    /// clone is closed too.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Begins a transaction that takes the write lock at once. SQLite's deferred transactions
    /// may fail with "database is locked" without waiting when they upgrade from reading to
    /// writing; an immediate one waits for the busy timeout instead.
    ///
    /// When a disk fills up, SQLite may roll a transaction back by itself, and sqlx, whose
    /// rollback then fails, goes on counting it as open: the writer connection is closed
    /// and a new one begins, so writing works again as soon as there is room.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, Error> {
        Ok(match self.backend {
            Backend::Sqlite => match self.writer.begin_with("BEGIN IMMEDIATE").await {
                Err(sqlx::Error::InvalidSavePointStatement) => {
                    tracing::warn!(
                        "the database connection lost track of a transaction; reopening it"
                    );
                    let _ = self.writer.acquire().await?.close().await;
                    self.writer.begin_with("BEGIN IMMEDIATE").await?
                }
                begun => begun?,
            },
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    fn seal(
        &self,
        table: &str,
        row: &str,
        column: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        Ok(self.key.seal(&crypto::Binding::new(table, row, column), plaintext)?)
    }

    fn open_blob(
        &self,
        table: &str,
        row: &str,
        column: &str,
        blob: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
        Ok(self.key.open(&crypto::Binding::new(table, row, column), blob)?)
    }

    /// Seals a value as JSON.
    fn seal_json<T: serde::Serialize + ?Sized>(
        &self,
        table: &'static str,
        row: &str,
        column: &'static str,
        value: &T,
    ) -> Result<Vec<u8>, Error> {
        let text = zeroize::Zeroizing::new(to_json(table, row, column, value)?.into_bytes());
        self.seal(table, row, column, &text)
    }

    /// Opens a sealed JSON value, decoded as `T`.
    fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        row: &str,
        column: &'static str,
        blob: &[u8],
    ) -> Result<T, Error> {
        let plain = self.open_blob(table, row, column, blob)?;
        serde_json::from_slice(&plain).map_err(|source| Error::Json {
            table,
            row: row.to_owned(),
            column,
            source,
        })
    }
}

/// Takes the exclusive lock on `path`, polling until [`SETUP_LOCK_TIMEOUT`].
async fn setup_lock(path: &Path) -> Result<File, Error> {
    let io_err = |source| Error::Io { action: "lock", path: path.to_owned(), source };
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) => {
                if started.elapsed() >= SETUP_LOCK_TIMEOUT {
                    return Err(Error::LockTimeout {
                        path: path.to_owned(),
                        waited: started.elapsed(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(TryLockError::Error(source)) => return Err(io_err(source)),
        }
    }
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match url.parse::<url::Url>() {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparseable)".into(),
    }
}

/// Serialises a value as JSON for a TEXT column.
fn to_json<T: serde::Serialize + ?Sized>(
    table: &'static str,
    row: &str,
    column: &'static str,
    value: &T,
) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|source| Error::Json {
        table,
        row: row.to_owned(),
        column,
        source,
    })
}

/// Parses a JSON TEXT column as `T`: what cannot be read is an error naming the table, the
/// row and the column, never a default.
fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    row: &str,
    column: &'static str,
    text: &str,
) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|source| Error::Json {
        table,
        row: row.to_owned(),
        column,
        source,
    })
}

/// The kind of constraint a database error violated, if any.
fn violation(err: &sqlx::Error) -> Option<sqlx::error::ErrorKind> {
    match err {
        sqlx::Error::Database(db) => Some(db.kind()),
        _ => None,
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(violation(err), Some(sqlx::error::ErrorKind::UniqueViolation))
}

fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(violation(err), Some(sqlx::error::ErrorKind::ForeignKeyViolation))
}
