//! Run cards (责任卡) set through the API: grid code → the responsible team of inspectors, in order.
//! They survive restarts and override the configured card for the same code; the merging and the
//! checks (code shape, users that exist and are inspectors) are the caller's.

use anyhow::Context as _;
use cityops_core::UnixMillis;
use sqlx::Row;

use crate::Store;

/// One stored run card entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCardRow {
    /// A grid code of 6, 9, 12 or 15 digits.
    pub code: String,
    /// Usernames of the team, in the order they are offered.
    pub team: Vec<String>,
    pub updated_at: UnixMillis,
    pub updated_by: String,
}

impl Store {
    /// Sets (inserting or replacing) the team of `row.code`.
    pub async fn put_run_card(&self, row: &RunCardRow) -> anyhow::Result<()> {
        let team = serde_json::to_string(&row.team)?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO run_cards (code, team, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (code) DO UPDATE SET team = excluded.team, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
        )
        .bind(&row.code)
        .bind(team)
        .bind(row.updated_at)
        .bind(&row.updated_by)
        .execute(&mut *tx)
        .await
        .context("Failed to store a run card")?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes the entry of `code`; false when there was none.
    pub async fn delete_run_card(&self, code: &str) -> anyhow::Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM run_cards WHERE code = $1")
            .bind(code)
            .execute(&mut *tx)
            .await
            .context("Failed to delete a run card")?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every stored entry, by code.
    pub async fn run_card_rows(&self) -> anyhow::Result<Vec<RunCardRow>> {
        let rows =
            sqlx::query("SELECT code, team, updated_at, updated_by FROM run_cards ORDER BY code")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                let code: String = r.get("code");
                let team: String = r.get("team");
                Ok(RunCardRow {
                    team: serde_json::from_str(&team)
                        .with_context(|| format!("run card {code}: stored team is not a list"))?,
                    code,
                    updated_at: r.get("updated_at"),
                    updated_by: r.get("updated_by"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestDb, conformance};

    fn row(code: &str, team: &[&str], at: i64) -> RunCardRow {
        RunCardRow {
            code: code.into(),
            team: team.iter().map(|s| s.to_string()).collect(),
            updated_at: at,
            updated_by: "lead".into(),
        }
    }

    async fn entries_are_set_replaced_and_deleted(db: TestDb) {
        let store = db.open().await;
        assert!(store.run_card_rows().await.unwrap().is_empty());
        store
            .put_run_card(&row("110101001", &["b", "a"], 1))
            .await
            .unwrap();
        store
            .put_run_card(&row("110101001001", &["c"], 2))
            .await
            .unwrap();
        store
            .put_run_card(&row("110101001", &["a"], 3))
            .await
            .unwrap();
        assert_eq!(
            store.run_card_rows().await.unwrap(),
            [row("110101001", &["a"], 3), row("110101001001", &["c"], 2)]
        );
        assert!(store.delete_run_card("110101001").await.unwrap());
        assert!(!store.delete_run_card("110101001").await.unwrap());
        assert_eq!(
            store.run_card_rows().await.unwrap(),
            [row("110101001001", &["c"], 2)]
        );
    }

    async fn entries_survive_reopening_the_database(db: TestDb) {
        let store = db.open().await;
        store
            .put_run_card(&row("110101001", &["x", "y"], 5))
            .await
            .unwrap();
        store.close().await;
        let store = db.open().await;
        assert_eq!(
            store.run_card_rows().await.unwrap(),
            [row("110101001", &["x", "y"], 5)]
        );
    }

    conformance!(
        entries_are_set_replaced_and_deleted,
        entries_survive_reopening_the_database,
    );
}
