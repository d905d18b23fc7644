//! Persistence of cityops: devices, last values, incidents with their evidence and the bus event log.
//!
//! SQLite by default (a file in the data directory, WAL mode, `synchronous=FULL` so a committed incident
//! survives a crash) or PostgreSQL (`postgres://…`), through sqlx with one SQL text for both ([`db`]).
//! Writes come in batches from one writer task, never one transaction per reading. Migrations of both
//! dialects are embedded in the binary and run at open.

pub mod cases;
pub mod components;
mod db;
pub mod fixes;
pub mod geofences;
mod group;
mod migrations;
mod rows;
pub mod run_cards;
pub mod scratch;
pub mod users;

use std::sync::Arc;

use anyhow::Context as _;
use cityops_core::{
    Device, DeviceId, GridPlace, Incident, IncidentId, IncidentState, UnixMillis, Value,
    incident::IncidentCleared,
};
use sqlx::{AnyPool, Row};

pub use db::Dialect;
use db::SqlBuilder;
pub use rows::{DeviceRecord, LastValue};

/// Errors the store reports to callers that must tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("device {0} already exists with a different kind or location")]
    DeviceConflict(DeviceId),
    #[error("username {0:?} is already taken")]
    UsernameTaken(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unexpected(e.into())
    }
}

/// Where a device registration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSource {
    Config,
    Api,
}

impl DeviceSource {
    fn as_str(self) -> &'static str {
        match self {
            DeviceSource::Config => "config",
            DeviceSource::Api => "api",
        }
    }
}

/// What a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    /// The same device was already there: nothing changed.
    Unchanged,
    /// Moved or re-kinded (only registrations from config may do this).
    Updated,
}

/// One batch of writes, committed in one transaction.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub opened: Vec<Incident>,
    pub cleared: Vec<IncidentCleared>,
    pub last_values: Vec<LastValue>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty() && self.cleared.is_empty() && self.last_values.is_empty()
    }

    pub fn len(&self) -> usize {
        self.opened.len() + self.cleared.len() + self.last_values.len()
    }
}

/// Filters and paging of the incident list.
#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    pub device: Option<DeviceId>,
    pub state: Option<IncidentState>,
    /// Opened at or after (Unix ms).
    pub from: Option<UnixMillis>,
    /// Opened before (Unix ms).
    pub to: Option<UnixMillis>,
    /// Cell, community or street code: incidents whose cell code starts with it.
    pub grid: Option<String>,
    /// Return incidents with an id below this one (keyset paging, newest first).
    pub before_id: Option<IncidentId>,
    pub limit: u32,
}

/// One page of incidents, newest first.
#[derive(Debug, Clone)]
pub struct IncidentPage {
    pub items: Vec<Incident>,
    /// Pass as `before_id` to get the next page; `None` on the last page.
    pub next_cursor: Option<IncidentId>,
}

/// An event of the log as stored: its sequence number and its wire JSON.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: u64,
    pub event_type: String,
    pub json: String,
}

/// An event to append to the log.
#[derive(Debug, Clone, Copy)]
pub struct EventRow<'a> {
    pub seq: u64,
    pub event_type: &'a str,
    pub time: UnixMillis,
    pub json: &'a str,
    /// The outbox id of a relayed case event: unique in the log, so a second copy is skipped.
    pub outbox_id: Option<i64>,
}

/// The store handle: cheap to clone. Write transactions start with `BEGIN IMMEDIATE` on SQLite, so two
/// writers queue on the busy timeout instead of failing on a read-to-write lock upgrade; on PostgreSQL
/// a transaction locks the rows it reads for change.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    turn: db::WriteTurn,
    /// Case changes on PostgreSQL, written together ([`cases::pg_write`]), and the reads they are
    /// decided on, read together ([`cases::pg_read`]).
    changes: Arc<cases::pg_write::Writer>,
    reads: Arc<cases::pg_read::Reader>,
}

const META_SEQ_RESERVED: &str = "bus_seq_reserved";

impl Store {
    /// Opens the database at `url` and migrates it: `sqlite://PATH` (created if missing),
    /// `sqlite::memory:`, or `postgres://USER@HOST:PORT/DB` (the database must exist).
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let dialect = Dialect::of_url(url)?;
        let pool = db::connect(url, dialect).await?;
        Ok(Self {
            pool,
            dialect,
            turn: db::WriteTurn::default(),
            changes: Arc::default(),
            reads: Arc::default(),
        })
    }

    /// Which database this store talks to.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Starts a case change (see [`group`]): grouped with concurrent ones into one commit on SQLite.
    pub(crate) async fn change_tx(&self) -> sqlx::Result<group::ChangeTx> {
        group::ChangeTx::begin(&self.pool, self.dialect, &self.turn).await
    }

    /// Starts a case change that sends all its writes in one call ([`group::ChangeTx::write`]).
    pub(crate) async fn bundled_change_tx(&self) -> sqlx::Result<group::ChangeTx> {
        group::ChangeTx::begin_bundled(&self.pool, self.dialect, &self.turn).await
    }

    /// Starts a write transaction (see [`Store`]).
    pub(crate) async fn write_tx(&self) -> sqlx::Result<db::Tx> {
        db::begin_write(&self.pool, self.dialect, &self.turn).await
    }

    /// Closes every connection, waiting for work in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- devices ----

    /// Registers a device. From the API the same body again is `Unchanged`, a different one a conflict;
    /// from config (the operator's file is the truth) it updates.
    pub async fn register_device(
        &self,
        device: &Device,
        grid: Option<&GridPlace>,
        source: DeviceSource,
        now: UnixMillis,
    ) -> Result<Registered, StoreError> {
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query("SELECT kind, lon, lat FROM devices WHERE id = $1")
            .bind(device.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match existing {
            None => {
                sqlx::query("INSERT INTO devices (id, kind, lon, lat, source, created_at, updated_at, grid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(device.id.as_str())
                    .bind(device.kind.as_str())
                    .bind(device.lon)
                    .bind(device.lat)
                    .bind(source.as_str())
                    .bind(now)
                    .bind(now)
                    .bind(grid.map(grid_json))
                    .execute(&mut *tx)
                    .await?;
                Registered::Created
            }
            Some(row) => {
                let same = row.get::<String, _>("kind") == device.kind.as_str()
                    && row.get::<f64, _>("lon") == device.lon
                    && row.get::<f64, _>("lat") == device.lat;
                if same {
                    Registered::Unchanged
                } else if source == DeviceSource::Api {
                    return Err(StoreError::DeviceConflict(device.id.clone()));
                } else {
                    sqlx::query("UPDATE devices SET kind = $1, lon = $2, lat = $3, source = $4, updated_at = $5, grid = $6 WHERE id = $7")
                        .bind(device.kind.as_str())
                        .bind(device.lon)
                        .bind(device.lat)
                        .bind(source.as_str())
                        .bind(now)
                        .bind(grid.map(grid_json))
                        .bind(device.id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    Registered::Updated
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Every registered device.
    pub async fn devices(&self) -> anyhow::Result<Vec<Device>> {
        let rows = sqlx::query("SELECT id, kind, lon, lat FROM devices ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::device_from_row).collect()
    }

    /// Every registered device with its last stored values (as of the last batch).
    pub async fn device_records(&self) -> anyhow::Result<Vec<DeviceRecord>> {
        rows::device_records(&self.pool).await
    }

    // ---- the write path ----

    /// Commits a batch of incident changes and last values in one transaction: a small one on SQLite
    /// in one call, `BEGIN IMMEDIATE` to `COMMIT` ([`db::Statements`]: under load every call to the
    /// connection's thread waits for a core, and the ingest writer's commits were mostly those waits).
    pub async fn apply(&self, batch: &WriteBatch) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut statements = db::Statements::new(self.dialect, batch.len());
        rows::push_incident_inserts(&mut statements, &batch.opened)?;
        // Clearings as multi-row `UPDATE … FROM (VALUES …)`: one statement, not one per incident
        // (at 5,000 changes/s half of them are clearings). The first clearing of an incident wins,
        // as it would one statement at a time.
        let mut seen = std::collections::HashSet::with_capacity(batch.cleared.len());
        let cleared: Vec<&IncidentCleared> =
            batch.cleared.iter().filter(|c| seen.insert(c.id)).collect();
        for chunk in crate::db::statement_chunks(&cleared, 300) {
            let qb = statements.next();
            qb.push(
                "UPDATE incidents SET state = 'cleared', cleared_at = v.column2, clear_value = v.column3 FROM (",
            );
            qb.push_values(chunk, |b, c| {
                b.push_bind(c.id)
                    .push_bind(c.cleared_at)
                    .push_bind(value_json(&c.value));
            });
            qb.push(") AS v WHERE incidents.id = v.column1 AND incidents.state = 'open'");
        }
        // Multi-row upserts; 5 parameters a row keeps each statement far below SQLite's parameter limit.
        // One row per device and measurement (PostgreSQL refuses an upsert touching a row twice).
        let last_values = newest_per_measurement(&batch.last_values);
        for chunk in crate::db::statement_chunks(&last_values, 500) {
            let qb = statements.next();
            qb.push("INSERT INTO device_last_values (device_id, name, value, unit, time) ");
            qb.push_values(chunk, |b, lv| {
                b.push_bind(lv.device_id.as_str())
                    .push_bind(lv.name.as_str())
                    .push_bind(value_json(&lv.value))
                    .push_bind(lv.unit.as_deref())
                    .push_bind(lv.time);
            });
            qb.push(
                " ON CONFLICT (device_id, name) DO UPDATE SET value = excluded.value, unit = excluded.unit, \
                 time = excluded.time WHERE excluded.time >= device_last_values.time",
            );
        }
        self.write_statements(statements).await.with_context(|| {
            format!(
                "Failed to commit a write batch ({} opened, {} cleared, {} last values)",
                batch.opened.len(),
                batch.cleared.len(),
                batch.last_values.len()
            )
        })
    }

    /// Runs `statements` as one transaction of their own: bundled, in one call
    /// ([`group::write_alone`]), else one statement after another.
    async fn write_statements(&self, statements: db::Statements<'_>) -> anyhow::Result<()> {
        if statements.bundled() {
            for mut all in statements.into_builders() {
                group::write_alone(&self.pool, &self.turn, &mut all).await?;
            }
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for mut qb in statements.into_builders() {
            qb.build()?.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- incidents ----

    pub async fn incident(&self, id: IncidentId) -> anyhow::Result<Option<Incident>> {
        let row = sqlx::query("SELECT * FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::incident_from_row).transpose()
    }

    /// Every open incident (to restore the rule engine's state after a restart).
    pub async fn open_incidents(&self) -> anyhow::Result<Vec<Incident>> {
        let rows = sqlx::query("SELECT * FROM incidents WHERE state = 'open' ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::incident_from_row).collect()
    }

    /// The highest incident id ever used (0 when none).
    pub async fn max_incident_id(&self) -> anyhow::Result<IncidentId> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM incidents")
                .fetch_one(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    pub async fn incidents(&self, query: &IncidentQuery) -> anyhow::Result<IncidentPage> {
        let limit = query.limit.clamp(1, 1000);
        let mut qb = SqlBuilder::new(self.dialect, "SELECT * FROM incidents WHERE 1 = 1");
        if let Some(device) = &query.device {
            qb.push(" AND device_id = ")
                .push_bind(device.as_str().to_string());
        }
        if let Some(state) = query.state {
            qb.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(from) = query.from {
            qb.push(" AND opened_at >= ").push_bind(from);
        }
        if let Some(to) = query.to {
            qb.push(" AND opened_at < ").push_bind(to);
        }
        if let Some(grid) = &query.grid {
            // Codes are digits only (checked by the caller), so they are safe inside a LIKE pattern.
            qb.push(" AND cell LIKE ").push_bind(format!("{grid}%"));
        }
        if let Some(before) = query.before_id {
            qb.push(" AND id < ").push_bind(before);
        }
        // One more than asked tells whether there is a next page.
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = qb.build()?.fetch_all(&self.pool).await?;
        let mut items = rows
            .iter()
            .map(rows::incident_from_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|i| i.id)
        } else {
            None
        };
        Ok(IncidentPage { items, next_cursor })
    }

    /// Open incidents per cell code.
    pub async fn open_incident_counts_by_cell(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT cell, COUNT(*) AS n FROM incidents WHERE state = 'open' AND cell IS NOT NULL GROUP BY cell")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>("cell"), r.get::<i64, _>("n")))
            .collect())
    }

    // ---- the event log ----

    /// Appends events to the log (idempotent: an event already there, by sequence number or by outbox
    /// id, is left alone).
    pub async fn append_events(&self, events: &[EventRow<'_>]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut statements = db::Statements::new(self.dialect, events.len());
        for chunk in crate::db::statement_chunks(events, 500) {
            let qb = statements.next();
            qb.push("INSERT INTO events (seq, type, time, json, outbox_id) ");
            qb.push_values(chunk, |b, e| {
                b.push_bind(e.seq as i64)
                    .push_bind(e.event_type)
                    .push_bind(e.time)
                    .push_bind(e.json)
                    .push_bind(e.outbox_id);
            });
            qb.push(" ON CONFLICT DO NOTHING");
        }
        self.write_statements(statements)
            .await
            .context("Failed to commit events to the log")
    }

    /// Which of these outbox ids the event log already holds (the relay's proof that an event is durable
    /// before it marks it published, and its recovery after a crash).
    pub async fn logged_outbox_ids(&self, ids: &[i64]) -> anyhow::Result<Vec<i64>> {
        let mut logged = Vec::new();
        // Chunks keep each statement far below the database's parameter limit.
        for chunk in crate::db::statement_chunks(ids, 500) {
            let mut qb = SqlBuilder::new(
                self.dialect,
                "SELECT outbox_id FROM events WHERE outbox_id IN (",
            );
            qb.push_list(chunk.iter().copied())
                .push(") ORDER BY outbox_id");
            let rows: Vec<i64> = qb.build_scalar()?.fetch_all(&self.pool).await?;
            logged.extend(rows);
        }
        Ok(logged)
    }

    /// Up to `limit` logged events with a sequence number above `after`, in order.
    pub async fn events_after(&self, after: u64, limit: u32) -> anyhow::Result<Vec<StoredEvent>> {
        let rows =
            sqlx::query("SELECT seq, type, json FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(after as i64)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| StoredEvent {
                seq: r.get::<i64, _>("seq") as u64,
                event_type: r.get("type"),
                json: r.get("json"),
            })
            .collect())
    }

    /// The sequence number the bus must continue after: the highest logged or reserved one.
    pub async fn bus_seq_floor(&self) -> anyhow::Result<u64> {
        let logged: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&self.pool)
            .await?;
        let reserved: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(META_SEQ_RESERVED)
            .fetch_optional(&self.pool)
            .await?;
        let reserved = reserved.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok((logged.unwrap_or(0) as u64).max(reserved))
    }

    /// Records that sequence numbers up to `seq` may have been handed out, so a restart after a crash
    /// never reuses one a client has already seen.
    pub async fn reserve_bus_seq(&self, seq: u64) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(META_SEQ_RESERVED)
            .bind(seq.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes logged events older than `before` (Unix ms); returns how many.
    pub async fn prune_events(&self, before: UnixMillis) -> anyhow::Result<u64> {
        Ok(sqlx::query("DELETE FROM events WHERE time < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// The pool, for the store's own modules and for tests that must change rows behind the
    /// application's back.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// The newest of each device's measurements in `values` (the later one on equal times), in first-seen
/// order.
fn newest_per_measurement(values: &[LastValue]) -> Vec<&LastValue> {
    let mut index: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::with_capacity(values.len());
    let mut out: Vec<&LastValue> = Vec::with_capacity(values.len());
    for lv in values {
        match index.entry((lv.device_id.as_str(), lv.name.as_str())) {
            std::collections::hash_map::Entry::Occupied(slot) => {
                let kept = &mut out[*slot.get()];
                if lv.time >= kept.time {
                    *kept = lv;
                }
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(out.len());
                out.push(lv);
            }
        }
    }
    out
}

pub(crate) fn grid_json(grid: &GridPlace) -> String {
    serde_json::to_string(grid).unwrap_or_else(|_| "null".into())
}

pub(crate) fn value_json(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
