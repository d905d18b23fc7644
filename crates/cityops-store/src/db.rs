//! The two databases behind one store: SQLite (the default, embedded) and PostgreSQL, through sqlx's
//! `Any` driver, with the few places where their SQL differs named here.
//!
//! Every statement of the store is written once, in the SQL both understand: `$1, $2, …` placeholders
//! (sqlx's SQLite driver numbers them like PostgreSQL does), `ON CONFLICT … DO …` instead of
//! `INSERT OR …`, `RETURNING` instead of `last_insert_rowid()`, integers for flags, Unix milliseconds
//! for instants and TEXT for JSON. What is left differs by [`Dialect`]: how a write transaction starts
//! (SQLite takes the write lock up front with `BEGIN IMMEDIATE`; PostgreSQL locks the rows it reads for
//! change with `FOR UPDATE`, except case transitions, which write one statement guarded by what they
//! read: `cases/mod.rs`), the migrations, and the connection settings.

use std::fmt::{Display, Write as _};
use std::sync::Once;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::error::BoxDynError;
use sqlx::query::{Query, QueryScalar};
use sqlx::{
    Any, AnyConnection, AnyPool, Arguments as _, Connection as _, Encode, Executor as _, Type,
};

use crate::migrations;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The dialect of a database URL, or an error naming the URLs that are understood.
    pub fn of_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            anyhow::bail!(
                "database URL {url:?} is neither sqlite://PATH (or sqlite::memory:) nor postgres://USER@HOST/DB"
            )
        }
    }

    /// What a `SELECT` that reads a row the transaction is about to change ends with: nothing on
    /// SQLite (the transaction already holds the write lock), `FOR UPDATE OF {table}` on PostgreSQL.
    pub(crate) fn lock_rows_of(self, table: &str) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!(" FOR UPDATE OF {table}"),
        }
    }
}

pub(crate) use crate::group::{Tx, WriteTurn, begin_write};

/// How long a PostgreSQL connection may sit idle in the pool and still be handed out untested. sqlx
/// pings every connection it hands out by default, one round trip more for every statement or
/// transaction: on a shared two-core machine a round trip costs more than the statement, most of it in
/// waking the server's process and ours (bench S3). A connection used within this window is taken to be
/// alive, as connection pools such as HikariCP do (500 ms there); one that broke inside it fails the
/// statement that meets it, and the pool opens a new one for the next.
pub(crate) const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Opens the pool for `url` in its dialect and brings its schema up to date.
pub(crate) async fn connect(url: &str, dialect: Dialect) -> anyhow::Result<AnyPool> {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
    let pool = match dialect {
        Dialect::Sqlite => {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let url = if in_memory || url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            if !in_memory {
                // WAL is a property of the file: set once, on a connection of its own, before the
                // pool opens several. Set by each new connection, it raced the pool's others and
                // failed with "database is locked" whatever the busy timeout (SQLite does not wait
                // where waiting could deadlock); the pool retried, but logged it as an error.
                let mut conn = AnyConnection::connect(&url)
                    .await
                    .with_context(|| format!("Failed to open database {url}"))?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                    .fetch_one(&mut conn)
                    .await
                    .with_context(|| format!("Failed to put database {url} in WAL mode"))?;
                anyhow::ensure!(
                    mode.eq_ignore_ascii_case("wal"),
                    "database {url} stays in {mode} journal mode, not WAL"
                );
                conn.close().await?;
            }
            AnyPoolOptions::new()
                // An in-memory database exists once per connection: keep exactly one.
                .max_connections(if in_memory { 1 } else { 4 })
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL (set above) with FULL sync: a committed incident or case change
                        // survives a crash.
                        for pragma in [
                            "PRAGMA busy_timeout = 10000",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            conn.execute(pragma).await?;
                        }
                        Ok(())
                    })
                })
                .connect(&url)
                .await
                .with_context(|| format!("Failed to open database {url}"))?
        }
        Dialect::Postgres => AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE_AFTER {
                        // A dead connection is an error here: the pool drops it and checks out
                        // another (or opens one).
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .with_context(|| format!("Failed to connect to PostgreSQL at {url}"))?,
    };
    migrations::migrator(dialect)
        .run(&pool)
        .await
        .with_context(|| format!("Failed to migrate database {url}"))?;
    Ok(pool)
}

/// Splits `items` into statements' worth of rows: chunks of `max` while that many are left, then the
/// largest power of two that fits. Every chunk size is `max` or a power of two, so a multi-row
/// statement built per chunk has a handful of shapes, each prepared once per connection and kept in
/// its statement cache. (With one statement per batch, every batch size was another cached statement,
/// and SQLite's compiled form of one with thousands of parameters takes hundreds of kilobytes: bench
/// S7 under heaptrack found 62 MB of cached statements; not caching them made the incident writer
/// compile each batch's statement under the write lock, S6's p99 at 5,000/s went from 8 to 108 ms.)
pub(crate) fn statement_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= max {
            max
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// A statement built piece by piece with its arguments (sqlx's own `QueryBuilder` writes `?` for the
/// `Any` driver, which PostgreSQL refuses). Placeholders are `$1, $2, …` on PostgreSQL and anonymous
/// `?` on SQLite: SQLite looks a named or numbered parameter up by a linear scan of the statement's
/// parameter names, once per parameter per execution, which makes a multi-row insert of thousands of
/// `$N` parameters quadratic (S3 measured 3,400 incidents/s instead of 77,000).
pub(crate) struct SqlBuilder<'q> {
    dialect: Dialect,
    sql: String,
    args: AnyArguments<'q>,
    error: Option<BoxDynError>,
}

impl<'q> SqlBuilder<'q> {
    pub fn new(dialect: Dialect, sql: impl Into<String>) -> Self {
        Self {
            dialect,
            sql: sql.into(),
            args: AnyArguments::default(),
            error: None,
        }
    }

    pub fn push(&mut self, sql: impl Display) -> &mut Self {
        write!(self.sql, "{sql}").expect("writing to a String cannot fail");
        self
    }

    /// Adds a placeholder for `value` and binds it.
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        match self.dialect {
            Dialect::Sqlite => self.sql.push('?'),
            Dialect::Postgres => {
                let n = self.args.len();
                write!(self.sql, "${n}").expect("writing to a String cannot fail");
            }
        }
        self
    }

    /// `VALUES (…), (…)`: one parenthesised row per item, its values pushed by `row`.
    pub fn push_values<I, F>(&mut self, items: I, mut row: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(&mut Row<'_, 'q>, I::Item),
    {
        self.sql.push_str("VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.sql.push('(');
            row(
                &mut Row {
                    builder: self,
                    first: true,
                },
                item,
            );
            self.sql.push(')');
        }
        self
    }

    /// One row to insert: `VALUES (…)`, or with `from` (a CTE of the same statement)
    /// `SELECT … FROM {from}`, which inserts the row once for each row `from` returns: none when the
    /// part of the statement it depends on wrote nothing.
    pub fn push_row<F>(&mut self, from: Option<&str>, row: F) -> &mut Self
    where
        F: FnOnce(&mut Row<'_, 'q>),
    {
        match from {
            None => {
                self.sql.push_str("VALUES (");
                row(&mut Row {
                    builder: self,
                    first: true,
                });
                self.sql.push(')');
                self
            }
            Some(from) => {
                self.sql.push_str("SELECT ");
                row(&mut Row {
                    builder: self,
                    first: true,
                });
                write!(self.sql, " FROM {from}").expect("writing to a String cannot fail");
                self
            }
        }
    }

    /// Placeholders for `values`, separated by commas (for `IN (…)`).
    pub fn push_list<T, I>(&mut self, values: I) -> &mut Self
    where
        I: IntoIterator<Item = T>,
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.push_bind(value);
        }
        self
    }

    /// The statement, ready to run, or the error of an argument that could not be encoded.
    pub fn build(&mut self) -> sqlx::Result<Query<'_, Any, AnyArguments<'_>>> {
        let args = std::mem::take(&mut self.args);
        match self.error.take() {
            None => Ok(sqlx::query_with(&self.sql, args)),
            Some(e) => Err(sqlx::Error::Encode(e)),
        }
    }

    /// Puts `before` in front of the SQL and `after` behind it: statements without placeholders, so
    /// the arguments stay in their places.
    pub fn wrap(&mut self, before: &str, after: &str) {
        self.sql.insert_str(0, before);
        self.sql.push_str(after);
    }

    /// The statement, returning one column.
    pub fn build_scalar<O>(&mut self) -> sqlx::Result<QueryScalar<'_, Any, O, AnyArguments<'_>>>
    where
        (O,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let args = std::mem::take(&mut self.args);
        match self.error.take() {
            None => Ok(sqlx::query_scalar_with(&self.sql, args)),
            Some(e) => Err(sqlx::Error::Encode(e)),
        }
    }

    #[cfg(test)]
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// The values of one row of a `VALUES` list.
pub(crate) struct Row<'b, 'q> {
    builder: &'b mut SqlBuilder<'q>,
    first: bool,
}

impl<'q> Row<'_, 'q> {
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        if !self.first {
            self.builder.sql.push_str(", ");
        }
        self.first = false;
        self.builder.push_bind(value);
        self
    }
}

/// The statements of one write of `rows` rows. A small write on SQLite is written into ONE builder,
/// separated by `;`, to be sent in one call to the connection's thread
/// ([`crate::group::write_alone`]): each call waits for the thread, and for a core under load. A
/// larger one (and any on PostgreSQL, whose extended protocol takes one statement at a time) is a
/// builder per statement, each kept in the connection's statement cache: a bundle's text changes
/// with its row counts and is prepared anew each time, which costs more than the calls it saves
/// once statements hold hundreds of rows (bench S1, last values: +1.5 µs a reading).
pub(crate) struct Statements<'q> {
    dialect: Dialect,
    bundled: bool,
    list: Vec<SqlBuilder<'q>>,
}

/// The most rows a write sent in one call holds.
const BUNDLE_MAX_ROWS: usize = 64;

impl<'q> Statements<'q> {
    pub fn new(dialect: Dialect, rows: usize) -> Self {
        Self {
            dialect,
            bundled: dialect == Dialect::Sqlite && rows <= BUNDLE_MAX_ROWS,
            list: Vec::new(),
        }
    }

    /// Whether the statements go in one call.
    pub fn bundled(&self) -> bool {
        self.bundled
    }

    /// Where the next statement is written.
    pub fn next(&mut self) -> &mut SqlBuilder<'q> {
        if self.bundled && !self.list.is_empty() {
            let all = self.list.last_mut().expect("one builder");
            all.push("; ");
            return all;
        }
        self.list.push(SqlBuilder::new(self.dialect, ""));
        self.list.last_mut().expect("a builder was just made")
    }

    /// The builders: when bundled at most one, holding every statement.
    pub fn into_builders(self) -> Vec<SqlBuilder<'q>> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order_across_rows_and_lists() {
        for (dialect, values, list) in [
            (
                Dialect::Postgres,
                "VALUES ($1, $2), ($3, $4)",
                "a = $1 AND b IN ($2, $3, $4)",
            ),
            (
                Dialect::Sqlite,
                "VALUES (?, ?), (?, ?)",
                "a = ? AND b IN (?, ?, ?)",
            ),
        ] {
            let mut b = SqlBuilder::new(dialect, "INSERT INTO t (a, b) ");
            b.push_values([(1_i64, "x"), (2, "y")], |row, (a, s)| {
                row.push_bind(a).push_bind(s);
            });
            assert_eq!(b.sql(), format!("INSERT INTO t (a, b) {values}"));
            let mut b = SqlBuilder::new(dialect, "SELECT 1 WHERE ");
            b.push("a = ")
                .push_bind(7_i64)
                .push(" AND b IN (")
                .push_list([1_i64, 2, 3])
                .push(")");
            assert_eq!(b.sql(), format!("SELECT 1 WHERE {list}"));
        }
        let mut b = SqlBuilder::new(Dialect::Postgres, "INSERT INTO t (a, b) ");
        b.push_row(Some("c"), |row| {
            row.push_bind(1_i64).push_bind("x");
        });
        assert_eq!(b.sql(), "INSERT INTO t (a, b) SELECT $1, $2 FROM c");
        let mut b = SqlBuilder::new(Dialect::Sqlite, "INSERT INTO t (a) ");
        b.push_row(None, |row| {
            row.push_bind(1_i64);
        });
        assert_eq!(b.sql(), "INSERT INTO t (a) VALUES (?)");
    }

    #[test]
    fn urls_name_their_dialect_or_get_a_clear_error() {
        assert_eq!(Dialect::of_url("sqlite::memory:").unwrap(), Dialect::Sqlite);
        assert_eq!(
            Dialect::of_url("postgres://u@h/db").unwrap(),
            Dialect::Postgres
        );
        let err = Dialect::of_url("mysql://h/db").unwrap_err().to_string();
        assert!(
            err.contains("sqlite://") && err.contains("postgres://"),
            "{err}"
        );
    }

    #[test]
    fn statement_chunks_are_max_or_powers_of_two_and_cover_everything() {
        let items: Vec<u32> = (0..1_337).collect();
        let chunks: Vec<&[u32]> = super::statement_chunks(&items, 500).collect();
        let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![500, 500, 256, 64, 16, 1]);
        let joined: Vec<u32> = chunks.concat();
        assert_eq!(joined, items);
        assert_eq!(super::statement_chunks::<u32>(&[], 500).count(), 0);
        assert_eq!(
            super::statement_chunks(&items[..3], 1)
                .map(|c| c.len())
                .collect::<Vec<_>>(),
            vec![1, 1, 1]
        );
    }
}
