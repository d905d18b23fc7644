//! Test databases of the conformance suite: every store test runs once on SQLite and once on
//! PostgreSQL, each run on a database of its own.
//!
//! SQLite databases are files in a temporary directory (so a test can reopen one, as after a restart).
//! PostgreSQL databases are created fresh for each test on the server named by
//! `CITYOPS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`, the machine's
//! server with trust authentication; `scripts/test.sh` starts it) and dropped when the test ends.
//! A server that cannot be reached fails the PostgreSQL half of the suite: it is never skipped.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AnyConnection, Connection as _, Executor as _};
use tokio::sync::OnceCell;

use crate::{Dialect, Store};

/// The server the PostgreSQL half of the suite runs on.
pub(crate) fn postgres_admin_url() -> String {
    std::env::var("CITYOPS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Runs each listed `async fn name(db: TestDb)` of the enclosing module twice, as
/// `sqlite::name` and `postgres::name`. Names after `multi_thread:` get a two-worker runtime.
macro_rules! conformance {
    ($($name:ident),* $(,)? $(; multi_thread: $($multi:ident),* $(,)?)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::testing::TestDb::new($crate::Dialect::Sqlite).await).await
                }
            )*
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $multi() {
                    super::$multi($crate::testing::TestDb::new($crate::Dialect::Sqlite).await).await
                }
            )*)?
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::testing::TestDb::new($crate::Dialect::Postgres).await).await
                }
            )*
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $multi() {
                    super::$multi($crate::testing::TestDb::new($crate::Dialect::Postgres).await).await
                }
            )*)?
        }
    };
}
pub(crate) use conformance;

/// A database of one test: a SQLite file or a fresh PostgreSQL database, removed when dropped.
pub(crate) struct TestDb {
    dialect: Dialect,
    url: String,
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

impl TestDb {
    pub async fn new(dialect: Dialect) -> Self {
        match dialect {
            Dialect::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Self {
                    dialect,
                    url,
                    _dir: Some(dir),
                    postgres_name: None,
                }
            }
            Dialect::Postgres => {
                static SEQ: AtomicU32 = AtomicU32::new(0);
                let name = format!(
                    "cityops_t_{}_{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed)
                );
                let mut admin = admin_connection().await;
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
                admin.close().await.ok();
                Self {
                    dialect,
                    url: database_url(&postgres_admin_url(), &name),
                    _dir: None,
                    postgres_name: Some(name),
                }
            }
        }
    }

    /// Opens (again, after a restart) the store on this database.
    pub async fn open(&self) -> Store {
        Store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e:#}", self.url))
    }

    /// Statements that make every insert into `table` fail, by a trigger named `trigger`.
    pub fn break_inserts(&self, table: &str, trigger: &str) -> Vec<String> {
        match self.dialect {
            Dialect::Sqlite => vec![format!(
                "CREATE TRIGGER {trigger} BEFORE INSERT ON {table} \
                 BEGIN SELECT RAISE(ABORT, '{table} is broken'); END"
            )],
            Dialect::Postgres => vec![
                format!(
                    "CREATE FUNCTION {trigger}_fn() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION '{table} is broken'; END $$"
                ),
                format!(
                    "CREATE TRIGGER {trigger} BEFORE INSERT ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION {trigger}_fn()"
                ),
            ],
        }
    }

    /// The statement dropping trigger `trigger` of `table`.
    pub fn drop_trigger(&self, table: &str, trigger: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("DROP TRIGGER {trigger}"),
            Dialect::Postgres => format!("DROP TRIGGER {trigger} ON {table}"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot block on itself: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut admin = admin_connection().await;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map(|_| ())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop a test database: {e}");
        }
    }
}

/// A connection to the server's administrative database; the first one of a test process also drops
/// databases left behind by test processes that died.
async fn admin_connection() -> AnyConnection {
    static CLEANED: OnceCell<()> = OnceCell::const_new();
    sqlx::any::install_default_drivers();
    let url = postgres_admin_url();
    let mut conn = AnyConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "the PostgreSQL half of the store tests needs a server at {url} (set \
             CITYOPS_TEST_POSTGRES_URL; scripts/test.sh starts the local one): {e}"
        )
    });
    CLEANED
        .get_or_init(|| async {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'cityops_t_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            for name in names {
                let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
                let alive =
                    pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
                if !alive {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            }
        })
        .await;
    conn
}

/// `url` with its database replaced by `name`.
fn database_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let server = match base.rsplit_once('/') {
        Some((server, _))
            if server.contains("//") && server.len() > server.find("//").unwrap() + 2 =>
        {
            server
        }
        _ => base.trim_end_matches('/'),
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[test]
fn database_urls_swap_only_the_database() {
    assert_eq!(
        database_url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        database_url("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(database_url("postgres://u@h", "x"), "postgres://u@h/x");
}
