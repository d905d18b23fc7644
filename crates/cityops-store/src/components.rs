//! Components (部件) as stored: each one's JSON with its category and cell for filtering. Imports replace
//! components by id in one transaction.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::Store;
use crate::db::SqlBuilder;

/// A component to store: its id, category, cell and the JSON of the whole record.
#[derive(Debug, Clone)]
pub struct ComponentRow {
    pub id: String,
    pub category_code: String,
    pub cell: Option<String>,
    pub data: String,
}

impl Store {
    /// Inserts or replaces components (by id), all in one transaction.
    pub async fn upsert_components(
        &self,
        rows: &[ComponentRow],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        for chunk in crate::db::statement_chunks(rows, 500) {
            let mut qb = SqlBuilder::new(
                self.dialect(),
                "INSERT INTO components (id, data, category_code, cell, updated_at) ",
            );
            qb.push_values(chunk, |b, row| {
                b.push_bind(&row.id)
                    .push_bind(&row.data)
                    .push_bind(&row.category_code)
                    .push_bind(&row.cell)
                    .push_bind(now.timestamp_millis());
            });
            qb.push(
                " ON CONFLICT (id) DO UPDATE SET data = excluded.data, category_code = excluded.category_code, \
                 cell = excluded.cell, updated_at = excluded.updated_at",
            );
            qb.build()?
                .execute(&mut *tx)
                .await
                .context("Failed to store components")?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The JSON of every stored component, by id.
    pub async fn component_rows(&self) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT data FROM components ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>("data")).collect())
    }
}
