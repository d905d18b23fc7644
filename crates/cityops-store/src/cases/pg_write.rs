//! Group commit of case changes on PostgreSQL: the changes planned by concurrent callers are written
//! by ONE statement, committed (and flushed to the WAL) once for all of them.
//!
//! A transition on PostgreSQL is read without a lock, decided, and written guarded by what was read
//! (`cases/mod.rs`). Written one statement per change, each change pays a commit: a WAL flush, and on a
//! small shared machine the wake-ups of a round trip cost more than the statement itself (bench S3: the
//! server's single-change statement ran at about a third of the rate of the same changes eight to a
//! statement). So a caller hands its planned change, as one JSON object, to the store's [`Writer`]:
//!
//! 1. the change joins a queue;
//! 2. a caller that gets one of [`WRITERS`] turns takes up to [`MAX_BATCH`] queued changes (never two
//!    of one case: a second waits for the next statement) and writes them in one statement, run in a
//!    task of its own so that a caller going away cannot cut a statement in half;
//! 3. each caller gets its own change's outcome: written, or not written because its guard no longer
//!    held (the case moved on: the caller decides again on a fresh read).
//!
//! A lone caller finds a free turn and writes its change alone at once: no waiting for company. Every
//! part of the statement writes only the rows of changes whose guard held, so one change that moved on
//! costs the others nothing; a statement that fails (a constraint checked at commit) is written again
//! one change at a time, so only the change at fault gets the error. A caller that goes away before
//! its change was taken takes it out of the queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, AnyPool, Row as _};
use tokio::sync::oneshot;

use super::batcher::{Batcher, Waited};
use super::{Case, CaseId, CaseStoreError, ClosureType, NewOutboxEvent, audit, clocks, outbox};
use crate::Dialect;
use crate::db::SqlBuilder;

/// The most changes one statement writes.
pub(super) const MAX_BATCH: usize = 32;

/// How many statements of changes run at once: two server processes, as this machine has two cores.
pub(super) const WRITERS: usize = 2;

/// The fields of a change (`v`, one JSON object each) as the statement reads them.
const FIELDS: &str = "case_id BIGINT, g_version BIGINT, g_state TEXT, g_audit_seq BIGINT, \
     state TEXT, state_code BIGINT, department TEXT, inspector TEXT, version BIGINT, \
     updated_at BIGINT, closed_at BIGINT, closure_type TEXT, satisfaction BIGINT, \
     rework_count BIGINT, wrong_dispatch_count BIGINT, extension_count BIGINT, reopen_count BIGINT, \
     audit_seq BIGINT, audit_hash TEXT, \
     a_seq BIGINT, a_at BIGINT, a_actor TEXT, a_role TEXT, a_action TEXT, a_from TEXT, a_to TEXT, \
     a_note TEXT, a_evidence TEXT, a_payload TEXT, a_prev_hash TEXT, a_hash TEXT, \
     kc_id BIGINT, kc_clock TEXT, kc_deadline_at BIGINT, kc_warning_at BIGINT, \
     kc_keep_warned BOOLEAN, kc_keep_overdue BOOLEAN, kc_active BIGINT, \
     ks_id BIGINT, ks_stage TEXT, ks_clock TEXT, ks_started_at BIGINT, ks_deadline_at BIGINT, \
     ks_warning_at BIGINT, ks_active BIGINT, \
     o_created_at BIGINT, o_event_type TEXT, o_payload TEXT";

/// The statement writing a JSON array of changes. `c` updates each case whose id, version, state and
/// audit head are still the ones its change was decided on; `g` is the changes whose guard held; the
/// audit record, the changed and the started clock and the outbox event are written for those only.
/// The changed clock's notified flags stay as stored where the change allows (a scheduler may have
/// marked them after the read). One row per change, in order: whether it was written and the changed
/// clock's flags as written (-1: no clock changed). The one-active-clock constraint is checked at
/// commit, so the order of the parts does not matter.
static STATEMENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH v AS (SELECT e.ord, r.* FROM json_array_elements(CAST($1 AS JSON)) WITH ORDINALITY \
         AS e(value, ord), LATERAL json_to_record(e.value) AS r({FIELDS})), \
         c AS (UPDATE cases SET state = v.state, state_code = v.state_code, \
         department = v.department, inspector = v.inspector, version = v.version, \
         updated_at = v.updated_at, closed_at = v.closed_at, closure_type = v.closure_type, \
         satisfaction = v.satisfaction, rework_count = v.rework_count, \
         wrong_dispatch_count = v.wrong_dispatch_count, extension_count = v.extension_count, \
         reopen_count = v.reopen_count, audit_seq = v.audit_seq, audit_hash = v.audit_hash \
         FROM v WHERE cases.id = ANY(CAST($2 AS BIGINT[])) AND cases.id = v.case_id \
         AND cases.version = v.g_version \
         AND cases.state = v.g_state AND cases.audit_seq = v.g_audit_seq RETURNING cases.id), \
         g AS (SELECT v.* FROM v JOIN c ON c.id = v.case_id), \
         a AS (INSERT INTO case_audit (case_id, seq, at, actor, role, action, from_state, to_state, \
         note, evidence, payload, prev_hash, hash) SELECT case_id, a_seq, a_at, a_actor, a_role, \
         a_action, a_from, a_to, a_note, a_evidence, a_payload, a_prev_hash, a_hash FROM g), \
         kc AS (UPDATE case_clocks SET clock = g.kc_clock, deadline_at = g.kc_deadline_at, \
         warning_at = g.kc_warning_at, \
         warned = CASE WHEN g.kc_keep_warned THEN case_clocks.warned ELSE 0 END, \
         overdue_notified = CASE WHEN g.kc_keep_overdue THEN case_clocks.overdue_notified ELSE 0 END, \
         active = g.kc_active FROM g WHERE case_clocks.id = g.kc_id \
         RETURNING case_clocks.id, case_clocks.warned, case_clocks.overdue_notified), \
         ks AS (INSERT INTO case_clocks (id, case_id, stage, clock, started_at, deadline_at, \
         warning_at, warned, overdue_notified, active) SELECT ks_id, case_id, ks_stage, ks_clock, \
         ks_started_at, ks_deadline_at, ks_warning_at, 0, 0, ks_active FROM g \
         WHERE ks_id IS NOT NULL), \
         o AS (INSERT INTO outbox (created_at, event_type, case_id, payload) \
         SELECT o_created_at, o_event_type, case_id, o_payload FROM g ORDER BY ord) \
         SELECT v.ord, CAST(CASE WHEN c.id IS NULL THEN 0 ELSE 1 END AS BIGINT), \
         COALESCE(kc.warned, -1), COALESCE(kc.overdue_notified, -1) \
         FROM v LEFT JOIN c ON c.id = v.case_id LEFT JOIN kc ON kc.id = v.kc_id ORDER BY v.ord"
    )
});

/// One change, planned: everything it writes, guarded by the case and audit head it was decided on.
pub(super) struct Row {
    pub case_id: CaseId,
    before: Case,
    head: audit::Head,
    record: audit::Chained,
    after: Case,
    clock_rows: clocks::Rows,
    event: NewOutboxEvent,
}

/// What the statement did with one change.
#[derive(Debug, Clone, Copy)]
pub(super) struct Written {
    /// The guard held and everything was written; `false`: nothing was (the case moved on).
    pub held: bool,
    /// The changed clock's flags as written (-1 when no clock changed).
    pub warned: i64,
    pub overdue_notified: i64,
}

impl Row {
    /// A change: the case update guarded by `before` and `head`, its audit `record`, the clock rows
    /// (a started clock with its reserved id) and its outbox `event`.
    pub fn new(
        before: Case,
        head: audit::Head,
        record: audit::Chained,
        after: Case,
        clock_rows: clocks::Rows,
        event: NewOutboxEvent,
    ) -> anyhow::Result<Self> {
        if let Some(started) = &clock_rows.started {
            anyhow::ensure!(started.id > 0, "a started clock has no reserved id");
        }
        Ok(Self {
            case_id: before.id,
            before,
            head,
            record,
            after,
            clock_rows,
            event,
        })
    }

    /// The change alone, as one statement of data-modifying CTEs: `c` returns one row if the guard
    /// holds, none if the case moved on, and every other part writes once per row of `c`. Cheaper for
    /// the server than the batch statement with one change (bench S3: a lone caller's changes ran at
    /// half the rate through the batch statement).
    fn single(&self) -> anyhow::Result<SqlBuilder<'static>> {
        const GUARD: &str = "c";
        let (clock_rows, event) = (&self.clock_rows, &self.event);
        let mut b = SqlBuilder::new(Dialect::Postgres, "WITH c AS (");
        super::push_case_update(&mut b, &self.before, &self.head, &self.record, &self.after);
        b.push(" RETURNING 1 AS guard_held), a AS (");
        self.record.push_insert(&mut b, Some(GUARD))?;
        b.push(")");
        if let Some(changed) = &clock_rows.changed {
            b.push(", k_changed AS (");
            clocks::push_update(&mut b, changed, clock_rows.keep, Some(GUARD))?;
            b.push(" RETURNING case_clocks.warned, case_clocks.overdue_notified)");
        }
        if let Some(started) = &clock_rows.started {
            b.push(", k_started AS (");
            clocks::push_insert(&mut b, started, Some(started.id), Some(GUARD))?;
            b.push(")");
        }
        b.push(", o AS (");
        outbox::push_insert(&mut b, event, self.after.updated_at, Some(GUARD))?;
        b.push(if clock_rows.changed.is_some() {
            ") SELECT 1, (SELECT COUNT(*) FROM c), COALESCE((SELECT warned FROM k_changed), -1), \
             COALESCE((SELECT overdue_notified FROM k_changed), -1)"
        } else {
            ") SELECT 1, (SELECT COUNT(*) FROM c), CAST(-1 AS BIGINT), CAST(-1 AS BIGINT)"
        });
        Ok(b)
    }

    /// The change as one JSON object of [`FIELDS`], for the batch statement.
    fn json(&self) -> anyhow::Result<String> {
        let (before, head, record, after, clock_rows, event) = (
            &self.before,
            &self.head,
            &self.record,
            &self.after,
            &self.clock_rows,
            &self.event,
        );
        let new_head = record.head();
        let mut row = Map::new();
        for (key, value) in [
            ("case_id", json!(before.id)),
            ("g_version", json!(before.version)),
            ("g_state", json!(before.state.as_str())),
            ("g_audit_seq", json!(head.seq)),
            ("state", json!(after.state.as_str())),
            ("state_code", json!(i64::from(after.state.code()))),
            ("department", json!(after.department)),
            ("inspector", json!(after.inspector)),
            ("version", json!(after.version)),
            ("updated_at", json!(after.updated_at)),
            ("closed_at", json!(after.closed_at)),
            (
                "closure_type",
                json!(after.closure.map(ClosureType::as_str)),
            ),
            ("satisfaction", json!(after.satisfaction.map(i64::from))),
            ("rework_count", json!(after.rework_count)),
            ("wrong_dispatch_count", json!(after.wrong_dispatch_count)),
            ("extension_count", json!(after.extension_count)),
            ("reopen_count", json!(after.reopen_count)),
            ("audit_seq", json!(new_head.seq)),
            ("audit_hash", json!(new_head.hash)),
            ("o_created_at", json!(after.updated_at)),
            ("o_event_type", json!(event.event_type)),
            ("o_payload", json!(serde_json::to_string(&event.payload)?)),
        ] {
            row.insert(key.to_string(), value);
        }
        record.put_columns(&mut row)?;
        if let Some(changed) = &clock_rows.changed {
            for (key, value) in [
                ("kc_id", json!(changed.id)),
                ("kc_clock", json!(serde_json::to_string(&changed.clock)?)),
                ("kc_deadline_at", json!(changed.deadline_at)),
                ("kc_warning_at", json!(changed.warning_at)),
                ("kc_keep_warned", json!(clock_rows.keep.warned)),
                ("kc_keep_overdue", json!(clock_rows.keep.overdue)),
                ("kc_active", json!(i64::from(changed.active))),
            ] {
                row.insert(key.to_string(), value);
            }
        }
        if let Some(started) = &clock_rows.started {
            for (key, value) in [
                ("ks_id", json!(started.id)),
                ("ks_stage", json!(started.stage.as_str())),
                ("ks_clock", json!(serde_json::to_string(&started.clock)?)),
                (
                    "ks_started_at",
                    json!(started.clock.started_at().timestamp_millis()),
                ),
                ("ks_deadline_at", json!(started.deadline_at)),
                ("ks_warning_at", json!(started.warning_at)),
                ("ks_active", json!(i64::from(started.active))),
            ] {
                row.insert(key.to_string(), value);
            }
        }
        Ok(Value::Object(row).to_string())
    }
}

/// Writes `rows` in one statement on `conn` (committed with it when `conn` is outside a
/// transaction); one outcome per row, in order.
pub(super) async fn write(conn: &mut AnyConnection, rows: &[&Row]) -> anyhow::Result<Vec<Written>> {
    let mut single;
    let query = if let [row] = rows {
        single = row.single()?;
        single.build()?
    } else {
        let mut param = String::from("[");
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                param.push(',');
            }
            param.push_str(&row.json()?);
        }
        param.push(']');
        // The cases' ids again, as an array: the update looks each one up by its key, where a join
        // with the changes alone may scan the whole table (the planner cannot tell how many there are).
        let ids = super::rows::pg_array(rows.iter().map(|row| row.case_id.to_string()));
        sqlx::query(STATEMENT.as_str()).bind(param).bind(ids)
    };
    // `fetch_all`, never `fetch_one`: sqlx's `Any` driver answers `fetch_one` at the first row, before
    // the server's ReadyForQuery, so an autocommit statement would be reported before its commit is
    // durable, and a constraint failing at that commit would go unseen.
    let out = query.fetch_all(&mut *conn).await?;
    anyhow::ensure!(
        out.len() == rows.len(),
        "a statement of {} case changes answered {} rows",
        rows.len(),
        out.len()
    );
    out.iter()
        .map(|r| {
            Ok(Written {
                held: r.try_get::<i64, _>(1)? == 1,
                warned: r.try_get(2)?,
                overdue_notified: r.try_get(3)?,
            })
        })
        .collect()
}

pub(super) struct Job {
    ticket: u64,
    row: Row,
    reply: oneshot::Sender<Result<Written, String>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "case change {} of case {}",
            self.ticket, self.row.case_id
        )
    }
}

/// The changes of one store waiting to be written, and the turns to write them.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(super) batches: Batcher<Job>,
    tickets: AtomicU64,
    /// Statements that wrote changes, and the changes they carried (written or not).
    statements: AtomicU64,
    changes: AtomicU64,
    /// Optimistic writes that found their case moved on, and changes that then took the row lock.
    moved_on: AtomicU64,
    locked: AtomicU64,
    /// SQL run before each optimistic write is queued: a test's stand-in for another change of the
    /// case landing between the read and the write.
    #[cfg(test)]
    interference: std::sync::Mutex<Option<String>>,
}

/// How case changes were written: `changes / statements` is the mean group size. `statements` are
/// PostgreSQL's statements of changes, or SQLite's commits of grouped changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub statements: u64,
    pub changes: u64,
    /// PostgreSQL: optimistic writes whose case had moved on since their read (decided again), and
    /// changes that moved on at every optimistic try and were written under the row lock. A rising
    /// `locked` means callers keep changing the same cases at once. SQLite: 0 (changes read under the
    /// write lock).
    pub moved_on: u64,
    pub locked: u64,
}

impl Default for Writer {
    fn default() -> Self {
        Self {
            batches: Batcher::new(WRITERS),
            tickets: AtomicU64::new(0),
            statements: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            moved_on: AtomicU64::new(0),
            locked: AtomicU64::new(0),
            #[cfg(test)]
            interference: std::sync::Mutex::new(None),
        }
    }
}

/// Takes a caller's job out of the queue if it goes away before the job was taken.
struct Queued<'a> {
    writer: &'a Writer,
    ticket: u64,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.writer.batches.retain(|job| job.ticket != self.ticket);
    }
}

impl Writer {
    /// Runs `sql` before every optimistic write from now on (`None`: no more), as if another change
    /// of the case were committed between each read and its write (tests).
    #[cfg(test)]
    pub(super) fn interfere(&self, sql: Option<String>) {
        *self
            .interference
            .lock()
            .expect("the interference is never poisoned") = sql;
    }

    /// With an interference set, starts it on another connection while a change holds its case's
    /// row lock and gives it time to reach the lock: it must wait for the change's commit (tests).
    #[cfg(test)]
    pub(super) async fn interfere_under_lock(&self, pool: &AnyPool) {
        if let Some(sql) = self.interference() {
            let pool = pool.clone();
            tokio::spawn(async move { sqlx::raw_sql(&sql).execute(&pool).await });
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The interference set, if any (tests).
    #[cfg(test)]
    fn interference(&self) -> Option<String> {
        self.interference
            .lock()
            .expect("the interference is never poisoned")
            .clone()
    }

    pub fn stats(&self) -> WriteStats {
        WriteStats {
            statements: self.statements.load(Ordering::Relaxed),
            changes: self.changes.load(Ordering::Relaxed),
            moved_on: self.moved_on.load(Ordering::Relaxed),
            locked: self.locked.load(Ordering::Relaxed),
        }
    }

    /// An optimistic write found its case moved on.
    pub(super) fn count_moved_on(&self) {
        self.moved_on.fetch_add(1, Ordering::Relaxed);
    }

    /// A change takes the row lock after its optimistic tries.
    pub(super) fn count_locked(&self) {
        self.locked.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self, changes: usize) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(changes as u64, Ordering::Relaxed);
    }

    /// Writes one planned change, with whatever others are queued; returns once its statement is
    /// committed (or failed).
    pub(super) async fn write(
        self: &Arc<Self>,
        pool: &AnyPool,
        row: Row,
    ) -> Result<Written, CaseStoreError> {
        #[cfg(test)]
        if let Some(sql) = self.interference() {
            sqlx::raw_sql(&sql).execute(pool).await?;
        }
        let case_id = row.case_id;
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.batches.push(Job { ticket, row, reply });
        let _queued = Queued {
            writer: self.as_ref(),
            ticket,
        };
        let waited = self
            .batches
            .wait(
                answer,
                || self.take_batch(),
                |batch, turn| {
                    let pool = pool.clone();
                    let writer = self.clone();
                    tokio::spawn(async move {
                        write_batch(&writer, &pool, batch).await;
                        drop(turn);
                    })
                },
            )
            .await;
        match waited {
            Waited::Answer(answer) => answered(case_id, answer),
            Waited::Closed => Err(anyhow::anyhow!("the case writer is closed").into()),
        }
    }

    /// Up to [`MAX_BATCH`] queued changes, oldest first, at most one per case.
    fn take_batch(&self) -> Vec<Job> {
        self.batches.take(MAX_BATCH, |batch, job| {
            batch.iter().all(|b| b.row.case_id != job.row.case_id)
        })
    }
}

/// A caller's change as its writer answered it.
fn answered(
    case_id: CaseId,
    answer: Result<Result<Written, String>, oneshot::error::RecvError>,
) -> Result<Written, CaseStoreError> {
    match answer {
        Ok(Ok(written)) => Ok(written),
        Ok(Err(e)) => {
            Err(anyhow::anyhow!("Failed to record a change of case {case_id}: {e}").into())
        }
        Err(_) => Err(anyhow::anyhow!(
            "the statement holding a change of case {case_id} was given up"
        )
        .into()),
    }
}

/// Writes a batch and answers each job: a failed statement of several changes is written again one
/// change at a time, so only a change at fault fails.
async fn write_batch(writer: &Writer, pool: &AnyPool, batch: Vec<Job>) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            for job in batch {
                let _ = job.reply.send(Err(e.to_string()));
            }
            return;
        }
    };
    let rows: Vec<&Row> = batch.iter().map(|job| &job.row).collect();
    writer.count(rows.len());
    match write(&mut conn, &rows).await {
        Ok(written) => {
            for (job, written) in batch.into_iter().zip(written) {
                let _ = job.reply.send(Ok(written));
            }
        }
        Err(e) if batch.len() == 1 => {
            for job in batch {
                let _ = job.reply.send(Err(format!("{e:#}")));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, changes = batch.len(), "a statement of case changes failed; writing them one by one");
            for job in batch {
                writer.count(1);
                let outcome = write(&mut conn, &[&job.row]).await;
                let _ = job.reply.send(match outcome {
                    Ok(written) => written
                        .into_iter()
                        .next()
                        .ok_or_else(|| "no outcome".to_string()),
                    Err(e) => Err(format!("{e:#}")),
                });
            }
        }
    }
}
