//! Geofences drawn through the API, kept as their GeoJSON Feature with the listing columns beside it.
//! Ids are unique; one given by the caller is kept, otherwise the store names the fence `gf-<n>`.
//! Checking the geometry is the caller's (cityops-gis reads the feature before it comes here).

use anyhow::Context as _;
use cityops_core::UnixMillis;
use sqlx::Row;

use crate::Store;

/// Prefix of the ids the store gives fences created without one.
pub const GENERATED_ID_PREFIX: &str = "gf-";

/// A fence to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeofenceWrite {
    pub name: String,
    /// `key_project`, `no_stall`, `construction_site`, `other`.
    pub kind: String,
    pub required_visits_per_day: Option<i64>,
    pub min_dwell_ms: Option<i64>,
    /// The GeoJSON Feature (WGS-84) as text.
    pub feature: String,
    pub at: UnixMillis,
    /// The username making the change.
    pub by: String,
}

/// A stored fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeofenceRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub required_visits_per_day: Option<i64>,
    pub min_dwell_ms: Option<i64>,
    pub feature: String,
    pub created_at: UnixMillis,
    pub created_by: String,
    pub updated_at: UnixMillis,
    pub updated_by: String,
}

impl Store {
    /// Stores a new fence under `id`, or under a generated `gf-<n>` when `id` is `None`. Returns the
    /// id, or `None` (nothing stored) when `id` is already taken.
    pub async fn insert_geofence(
        &self,
        id: Option<&str>,
        fence: &GeofenceWrite,
    ) -> anyhow::Result<Option<String>> {
        let mut tx = self.write_tx().await?;
        // Without an id, the row is inserted under the empty id (never a valid one, and held only
        // inside this transaction) and renamed after its sequence number.
        let row = sqlx::query(
            "INSERT INTO geofences (id, name, kind, required_visits_per_day, min_dwell_ms, feature, \
             created_at, created_by, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $8) \
             ON CONFLICT (id) DO NOTHING RETURNING seq",
        )
        .bind(id.unwrap_or(""))
        .bind(&fence.name)
        .bind(&fence.kind)
        .bind(fence.required_visits_per_day)
        .bind(fence.min_dwell_ms)
        .bind(&fence.feature)
        .bind(fence.at)
        .bind(&fence.by)
        .fetch_optional(&mut *tx)
        .await
        .context("Failed to store a geofence")?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id = match id {
            Some(id) => id.to_string(),
            None => {
                let seq: i64 = row.get("seq");
                let id = format!("{GENERATED_ID_PREFIX}{seq}");
                sqlx::query("UPDATE geofences SET id = $1 WHERE seq = $2")
                    .bind(&id)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .context("Failed to name a new geofence")?;
                id
            }
        };
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Replaces the fence `id` (keeping when and by whom it was created); false when there is none.
    pub async fn update_geofence(&self, id: &str, fence: &GeofenceWrite) -> anyhow::Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE geofences SET name = $1, kind = $2, required_visits_per_day = $3, \
             min_dwell_ms = $4, feature = $5, updated_at = $6, updated_by = $7 WHERE id = $8",
        )
        .bind(&fence.name)
        .bind(&fence.kind)
        .bind(fence.required_visits_per_day)
        .bind(fence.min_dwell_ms)
        .bind(&fence.feature)
        .bind(fence.at)
        .bind(&fence.by)
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("Failed to update a geofence")?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes the fence `id`; false when there is none.
    pub async fn delete_geofence(&self, id: &str) -> anyhow::Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM geofences WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context("Failed to delete a geofence")?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every stored fence, oldest first.
    pub async fn geofence_rows(&self) -> anyhow::Result<Vec<GeofenceRow>> {
        let rows = sqlx::query(
            "SELECT id, name, kind, required_visits_per_day, min_dwell_ms, feature, created_at, \
             created_by, updated_at, updated_by FROM geofences ORDER BY seq",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| GeofenceRow {
                id: r.get("id"),
                name: r.get("name"),
                kind: r.get("kind"),
                required_visits_per_day: r.get("required_visits_per_day"),
                min_dwell_ms: r.get("min_dwell_ms"),
                feature: r.get("feature"),
                created_at: r.get("created_at"),
                created_by: r.get("created_by"),
                updated_at: r.get("updated_at"),
                updated_by: r.get("updated_by"),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestDb, conformance};

    fn write(name: &str, at: i64) -> GeofenceWrite {
        GeofenceWrite {
            name: name.into(),
            kind: "key_project".into(),
            required_visits_per_day: Some(3),
            min_dwell_ms: None,
            feature: format!(r#"{{"type":"Feature","properties":{{"name":"{name}"}}}}"#),
            at,
            by: "lead".into(),
        }
    }

    async fn fences_get_ids_and_are_updated_and_deleted(db: TestDb) {
        let store = db.open().await;
        let first = store.insert_geofence(None, &write("a", 1)).await.unwrap();
        let second = store.insert_geofence(None, &write("b", 2)).await.unwrap();
        assert_eq!(first.as_deref(), Some("gf-1"));
        assert_eq!(second.as_deref(), Some("gf-2"));
        let named = store
            .insert_geofence(Some("site-9"), &write("c", 3))
            .await
            .unwrap();
        assert_eq!(named.as_deref(), Some("site-9"));
        assert_eq!(
            store
                .insert_geofence(Some("site-9"), &write("d", 4))
                .await
                .unwrap(),
            None,
            "an id is used once"
        );

        let mut changed = write("a2", 10);
        changed.kind = "no_stall".into();
        changed.required_visits_per_day = None;
        changed.min_dwell_ms = Some(120_000);
        changed.by = "admin".into();
        assert!(store.update_geofence("gf-1", &changed).await.unwrap());
        assert!(!store.update_geofence("gf-404", &changed).await.unwrap());
        assert!(store.delete_geofence("gf-2").await.unwrap());
        assert!(!store.delete_geofence("gf-2").await.unwrap());

        let rows = store.geofence_rows().await.unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["gf-1", "site-9"]);
        assert_eq!(
            rows[0],
            GeofenceRow {
                id: "gf-1".into(),
                name: "a2".into(),
                kind: "no_stall".into(),
                required_visits_per_day: None,
                min_dwell_ms: Some(120_000),
                feature: changed.feature.clone(),
                created_at: 1,
                created_by: "lead".into(),
                updated_at: 10,
                updated_by: "admin".into(),
            }
        );
        // A deleted fence's number is not given again, even the highest one (numbers may skip: a
        // PostgreSQL identity also spends one on an insert that found its id taken).
        assert!(store.delete_geofence("site-9").await.unwrap());
        let third = store.insert_geofence(None, &write("e", 11)).await.unwrap();
        let n: u32 = third.unwrap().strip_prefix("gf-").unwrap().parse().unwrap();
        assert!(n >= 4, "gf-{n} was given before");
    }

    async fn fences_survive_reopening_the_database(db: TestDb) {
        let store = db.open().await;
        let id = store
            .insert_geofence(None, &write("a", 1))
            .await
            .unwrap()
            .unwrap();
        store.close().await;
        let store = db.open().await;
        let rows = store.geofence_rows().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].id.as_str(), rows[0].name.as_str()),
            (id.as_str(), "a")
        );
    }

    conformance!(
        fences_get_ids_and_are_updated_and_deleted,
        fences_survive_reopening_the_database,
    );
}
