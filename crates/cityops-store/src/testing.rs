//! Test databases of the conformance suite: every store test runs once on SQLite and once on
//! PostgreSQL, each run on a database of its own.
//!
//! SQLite databases are files in a temporary directory (so a test can reopen one, as after a restart).
//! PostgreSQL databases are created fresh for each test on the server named by
//! `CITYOPS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`, the machine's
//! server with trust authentication; `scripts/test.sh` starts it) and dropped when the test ends.
//! A server that cannot be reached fails the PostgreSQL half of the suite: it is never skipped.

use crate::scratch::{ScratchDatabase, admin_url_from_env};
use crate::{Dialect, Store};

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
    _scratch: Option<ScratchDatabase>,
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
                    _scratch: None,
                }
            }
            Dialect::Postgres => {
                let admin = admin_url_from_env("CITYOPS_TEST_POSTGRES_URL");
                let scratch = ScratchDatabase::create(&admin, "t")
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "the PostgreSQL half of the store tests needs a server (set \
                         CITYOPS_TEST_POSTGRES_URL; scripts/test.sh starts the local one): {e:#}"
                        )
                    });
                Self {
                    dialect,
                    url: scratch.url().to_string(),
                    _dir: None,
                    _scratch: Some(scratch),
                }
            }
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
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

    /// On PostgreSQL, statements that make every transaction inserting into `table` fail at its commit
    /// (a deferred constraint trigger named `trigger`); `None` on SQLite, which has no deferred triggers.
    pub fn break_commits_inserting(&self, table: &str, trigger: &str) -> Option<Vec<String>> {
        match self.dialect {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(vec![
                format!(
                    "CREATE FUNCTION {trigger}_fn() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION '{table} is broken at commit'; END $$"
                ),
                format!(
                    "CREATE CONSTRAINT TRIGGER {trigger} AFTER INSERT ON {table} \
                     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {trigger}_fn()"
                ),
            ]),
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
