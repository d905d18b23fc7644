//! Scratch PostgreSQL databases for tests and benchmarks: each one created fresh on a server, used by
//! one test or one side of a benchmark, and dropped afterwards.
//!
//! A database is named `cityops_{label}_{pid}_{n}`; databases of processes that are gone (a test run
//! that was killed) are dropped when the next process creates its first one, so nothing piles up.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context as _;
use sqlx::{AnyConnection, Connection as _, Executor as _};
use tokio::sync::OnceCell;

/// The server of this machine's tests: trust authentication on 127.0.0.1:5432.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server named by the environment variable `var`, else [`DEFAULT_ADMIN_URL`].
pub fn admin_url_from_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// A fresh database; dropped (with any connections to it) when this value is dropped.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl ScratchDatabase {
    /// Creates a fresh database on the server of `admin_url` (any database of it: the one to connect
    /// to while creating and dropping). `label` is letters, digits and `_` only.
    pub async fn create(admin_url: &str, label: &str) -> anyhow::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        anyhow::ensure!(
            label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "scratch database label {label:?} must be letters, digits and _"
        );
        let name = format!(
            "cityops_{}_{}_{}",
            label.to_ascii_lowercase(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = admin_connection(admin_url).await?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        admin.close().await.ok();
        Ok(Self {
            admin_url: admin_url.to_string(),
            url: database_url(admin_url, &name),
            name,
            dropped: false,
        })
    }

    /// The URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database now (also closing connections still open to it).
    pub async fn drop_database(mut self) -> anyhow::Result<()> {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name).await
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside a runtime, which cannot block on itself: a thread of its own.
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(drop_database(&admin_url, &name)))
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop a scratch database: {e:#}");
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = admin_connection(admin_url).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .with_context(|| format!("DROP DATABASE {name}"))?;
    admin.close().await.ok();
    Ok(())
}

/// A connection to the server's administrative database; the first one of a process also drops the
/// scratch databases of processes that are gone.
async fn admin_connection(admin_url: &str) -> anyhow::Result<AnyConnection> {
    static CLEANED: OnceCell<()> = OnceCell::const_new();
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {admin_url}"))?;
    CLEANED
        .get_or_init(|| async {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'cityops\\_%' ESCAPE '\\'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            for name in names {
                // cityops_{label}_{pid}_{n}: the pid is the second field from the end.
                let pid = name.rsplit('_').nth(1).and_then(|p| p.parse::<u32>().ok());
                let gone =
                    pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
                if gone {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            }
        })
        .await;
    Ok(conn)
}

/// `url` with its database replaced by `name`.
pub fn database_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    // The server part ends where the path begins: the first '/' after "scheme://".
    let server = match base.find("://") {
        Some(scheme) => match base[scheme + 3..].find('/') {
            Some(path) => &base[..scheme + 3 + path],
            None => base,
        },
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn a_scratch_database_is_usable_then_gone() {
        let admin = admin_url_from_env("CITYOPS_TEST_POSTGRES_URL");
        let db = ScratchDatabase::create(&admin, "scratch_test")
            .await
            .unwrap();
        let name = db.name.clone();
        let store = crate::Store::open(db.url()).await.unwrap();
        assert!(store.devices().await.unwrap().is_empty());
        store.close().await;
        db.drop_database().await.unwrap();
        let mut conn = admin_connection(&admin).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 0);
        assert!(ScratchDatabase::create(&admin, "bad-label").await.is_err());
    }
}
