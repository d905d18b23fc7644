//! Inspectors' accepted position fixes: appended in batches, read back by time window for patrol
//! coverage.

use cityops_core::UnixMillis;
use sqlx::Row;

use crate::Store;
use crate::db::SqlBuilder;

/// One accepted fix.
#[derive(Debug, Clone, PartialEq)]
pub struct FixRow {
    pub inspector: String,
    pub time: UnixMillis,
    pub lon: f64,
    pub lat: f64,
    pub accuracy: Option<f64>,
}

impl Store {
    /// Appends fixes in one transaction.
    pub async fn append_fixes(&self, fixes: &[FixRow]) -> anyhow::Result<()> {
        if fixes.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for chunk in crate::db::statement_chunks(fixes, 500) {
            let mut qb = SqlBuilder::new(
                self.dialect(),
                "INSERT INTO inspector_fixes (inspector, time, lon, lat, accuracy) ",
            );
            qb.push_values(chunk, |b, f| {
                b.push_bind(&f.inspector)
                    .push_bind(f.time)
                    .push_bind(f.lon)
                    .push_bind(f.lat)
                    .push_bind(f.accuracy);
            });
            qb.build()?.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Fixes with `from <= time < to`, in time order.
    pub async fn fixes_between(
        &self,
        from: UnixMillis,
        to: UnixMillis,
    ) -> anyhow::Result<Vec<FixRow>> {
        let rows = sqlx::query("SELECT inspector, time, lon, lat, accuracy FROM inspector_fixes WHERE time >= $1 AND time < $2 ORDER BY time")
            .bind(from)
            .bind(to)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| FixRow {
                inspector: r.get("inspector"),
                time: r.get("time"),
                lon: r.get("lon"),
                lat: r.get("lat"),
                accuracy: r.get("accuracy"),
            })
            .collect())
    }
}
