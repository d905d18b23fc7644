//! The case repository: cases of the GB/T 30428 workflow with their SLA clocks, a hash-chained audit
//! trail and an outbox of events, every change in one transaction.
//!
//! The workflow decisions are made elsewhere: the caller (the API or the workflow layer) runs the pure
//! state machine [`cityops_core::case::transition`] on a [`Case`] (its [`Case::context`]) and hands the
//! resulting [`Transition`] to [`Store::apply_transition`]. This module only records it, and refuses to
//! record what no longer fits: a case whose version or state moved on since the caller read it is a
//! [`CaseStoreError::Conflict`] and nothing is written. It also runs the machine again on the stored
//! facts and refuses a transition that differs from the caller's (a bug, [`CaseStoreError::Invalid`]),
//! so the audit trail holds only steps the workflow allows.
//!
//! Instants go in as `DateTime<Utc>` (what the SLA clocks use) and are stored, and read back on the
//! records, as Unix milliseconds like every other stored time.
//!
//! # One transaction per change
//! [`Store::create_case`] and [`Store::apply_transition`] each write, in one transaction: the case row
//! (version + 1), exactly one audit record (and the chain head on the case), the clock changes, and
//! exactly one outbox event. Either all of it is committed or none of it. On SQLite that transaction is
//! `BEGIN IMMEDIATE` (a savepoint of a group commit, [`crate::group`]). On PostgreSQL a transition is
//! written by ONE statement of data-modifying CTEs, committed on its own or together with the
//! concurrent changes of other cases ([`pg_write`]): the case is read without a lock, and the
//! statement's update of the case is guarded by the version, state and audit head read, every other
//! write depending on that update's row, so a case that moved on meanwhile gets nothing written and
//! the change is decided again on a fresh read (optimistic concurrency; after two tries it takes the
//! row lock, `FOR UPDATE`, as every change did before).
//!
//! # Event names
//! `case.created` for a new case, then one event per action ([`event_type_for`]): the action's past
//! participle, so a subscriber reads what happened to the case:
//!
//! | action | event | | action | event |
//! |---|---|---|---|---|
//! | accept | `case.accepted` | | request_extension | `case.extension_requested` |
//! | request_verification | `case.verification_requested` | | approve_extension | `case.extended` |
//! | report_verification | `case.verified` | | reject_extension | `case.extension_rejected` |
//! | register | `case.registered` | | request_suspension | `case.suspension_requested` |
//! | decline | `case.declined` | | approve_suspension | `case.suspended` |
//! | request_void | `case.void_requested` | | reject_suspension | `case.suspension_rejected` |
//! | approve_void | `case.voided` | | resume | `case.resumed` |
//! | reject_void | `case.void_rejected` | | handle | `case.handled` |
//! | dispatch | `case.dispatched` | | check_pass | `case.checked` |
//! | return | `case.returned` | | check_fail | `case.check_failed` |
//! | close | `case.closed` | | callback | `case.evaluated` |
//! | reopen | `case.reopened` | | | |
//!
//! The SLA scheduler adds `case.sla_warning` and `case.sla_overdue` ([`DueClock::event`]). Every case
//! event's payload carries the case as it is after the change (`case`, with its running clock), the
//! actor, role, time and the audit sequence number.
//!
//! # Outbox: exactly once onto the bus
//! A change and its event are committed together, so an event exists if and only if its change does.
//! The relay then moves events to the bus:
//!
//! 1. read [`Store::pending_outbox`] (oldest first);
//! 2. publish each with its `outbox_id` ([`OutboxEvent::envelope`]) — the bus's persistent event log
//!    keeps the outbox id with a uniqueness constraint and skips an id it already has;
//! 3. once the bus has them durably, [`Store::mark_published`].
//!
//! A crash before 3 publishes the same events again after the restart, and step 2 drops them: delivery
//! is at least once, the effect exactly once. Outbox ids are never reused (`AUTOINCREMENT`), and with
//! SQLite's single writer they increase in commit order, so a consumer may also keep just the highest id
//! it has seen. (PostgreSQL sequences do not follow commit order: there the consumer must keep the ids, or
//! the relay must publish only below the oldest transaction still in flight.) Only one relay may run at
//! a time; with several nodes it is owned through the database like every once-only job.
//!
//! # SLA clocks
//! Each stage a case runs has a row in `case_clocks` with the persisted [`StageClock`] and the deadline
//! and warning instants computed from it with the
//! [`WorkCalendar`](cityops_core::sla::WorkCalendar) of the [`SlaPolicy`], so timers survive
//! restarts. [`Store::due_clock_events`] lists the warnings and overdues that fell due;
//! [`Store::mark_clock_notified`] marks one and commits its outbox event in one transaction, so a timer
//! fires once even with several schedulers. An extension or a resumption that moves an instant back into
//! the future re-arms its notification.
//!
//! # Audit chain
//! Each record's hash is `sha256(prev_hash || canonical record)` with a per-case chain starting from 64
//! zeros, and the head (last seq and hash) is kept on the case; see [`AuditRecord`] and
//! [`Store::verify_audit`].

/// The columns of a stage clock joined as `k`, aliased `clock_*` (read by `clocks::clock_from_row`).
macro_rules! clock_columns {
    () => {
        "k.id AS clock_id, k.case_id AS clock_case_id, k.clock AS clock_json, \
         k.deadline_at AS clock_deadline_at, k.warning_at AS clock_warning_at, k.warned AS clock_warned, \
         k.overdue_notified AS clock_overdue_notified, k.active AS clock_active"
    };
}

mod audit;
mod batcher;
mod clocks;
mod outbox;
pub(crate) mod pg_read;
pub(crate) mod pg_write;
mod query;
mod rows;
mod sensor;

#[cfg(test)]
mod tests;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use cityops_core::case::{
    Action, CaseContext, CaseNumber, CaseState, Change, ClosureType, MAX_ID_CHARS, MAX_TEXT_CHARS,
    Role, Source, Transition, case_number, transition,
};
use cityops_core::category::parse_code;
use cityops_core::sla::{ClockEffect, StageClock};
use cityops_core::{CategoryClass, DeviceId, GeoPoint, GridPlace, IncidentId, UnixMillis};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::AnyConnection;
use std::fmt;

use crate::db::SqlBuilder;
use crate::{Dialect, Store};

pub use audit::{AuditFault, AuditRecord, AuditVerdict, GENESIS_HASH};
pub use clocks::{CaseClock, ClockChanges, DueClock, DueKind, SlaPolicy};
pub use outbox::{
    CASE_CREATED, CASE_SLA_OVERDUE, CASE_SLA_WARNING, NewOutboxEvent, OutboxEvent, event_type_for,
};
pub use pg_read::ReadStats;
pub use pg_write::WriteStats;
pub use query::{CaseCursor, CasePage, CaseQuery, CaseSort, MAX_PAGE};
pub use sensor::SensorEvidence;

/// Case ids are positive integers, unique in one store.
pub type CaseId = i64;

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Why the repository refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum CaseStoreError {
    /// No such case (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The case moved on since the caller read it (409): read it again and decide again.
    #[error("the case changed meanwhile: expected {expected}, found {found}")]
    Conflict {
        expected: CaseRevision,
        found: CaseRevision,
    },
    /// The request itself is wrong (422); nothing was written.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for CaseStoreError {
    fn from(e: sqlx::Error) -> Self {
        CaseStoreError::Unexpected(e.into())
    }
}

fn invalid(message: impl Into<String>) -> CaseStoreError {
    CaseStoreError::Invalid(message.into())
}

/// Which revision of a case a change was meant for, or was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRevision {
    /// `None` when the caller did not name a version (it then only expects the state).
    pub version: Option<i64>,
    pub state: CaseState,
}

impl fmt::Display for CaseRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(version) => write!(f, "version {version} in state {}", self.state),
            None => write!(f, "state {}", self.state),
        }
    }
}

/// A case as stored. Times are Unix milliseconds, like every stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: CaseId,
    pub number: CaseNumber,
    pub category_code: String,
    pub class: CategoryClass,
    pub state: CaseState,
    pub source: Source,
    pub title: String,
    pub description: String,
    pub address: String,
    pub lon: f64,
    pub lat: f64,
    pub grid: Option<GridPlace>,
    /// The user name of the reporting user, or the id of the reporting device.
    pub reporter: String,
    pub verification_required: bool,
    pub department: Option<String>,
    pub inspector: Option<String>,
    pub incident_id: Option<IncidentId>,
    pub device_id: Option<DeviceId>,
    /// Starts at 1 and grows by one with every change: the optimistic-concurrency token.
    pub version: i64,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub closed_at: Option<UnixMillis>,
    pub closure: Option<ClosureType>,
    /// The citizen's satisfaction (1-5) from the callback.
    pub satisfaction: Option<u8>,
    pub rework_count: i64,
    pub wrong_dispatch_count: i64,
    pub extension_count: i64,
    pub reopen_count: i64,
    /// The running stage clock, if the case's state has one.
    pub clock: Option<CaseClock>,
}

impl Case {
    /// The facts the state machine needs about this case; add the actor with [`CaseContext::acting`].
    pub fn context(&self) -> CaseContext {
        CaseContext {
            source: self.source,
            verification_required: self.verification_required,
            department: self.department.clone(),
            inspector: self.inspector.clone(),
            actor: None,
            actor_department: None,
        }
    }

    /// The revision a change to this case should expect.
    pub fn revision(&self) -> CaseRevision {
        CaseRevision {
            version: Some(self.version),
            state: self.state,
        }
    }
}

/// A case to file.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCase {
    /// Category code (`C0101`, `E0503`): class, major and minor class are read from it.
    pub category: String,
    pub source: Source,
    /// May be empty (the category names the case); at most [`MAX_TITLE_CHARS`].
    pub title: String,
    pub description: String,
    pub address: String,
    pub lon: f64,
    pub lat: f64,
    pub grid: Option<GridPlace>,
    /// User name or device id.
    pub reporter: String,
    /// The reporter's role when a user reports (an inspector's patrol report); `None` for citizens,
    /// hotline callers and devices.
    pub reporter_role: Option<Role>,
    pub verification_required: bool,
    pub incident_id: Option<IncidentId>,
    pub device_id: Option<DeviceId>,
    /// [`CaseState::Reported`], or [`CaseState::Registered`] for emergencies registered automatically.
    pub initial: CaseState,
    /// The clock of the initial state's stage (acceptance, or dispatch when registered), started at the
    /// creation instant; `None` when that stage has no time limit.
    pub clock: Option<StageClock>,
}

/// One recorded step of the workflow: what the caller decided with the state machine, and by whom.
#[derive(Debug, Clone)]
pub struct CaseChange<'a> {
    pub case_id: CaseId,
    /// The version the caller read; `None` to accept any version as long as the state is still
    /// `transition.from`.
    pub expected_version: Option<i64>,
    pub action: &'a Action,
    /// What [`cityops_core::case::transition`] answered for `action`.
    pub transition: &'a Transition,
    pub actor: &'a str,
    pub role: Role,
    /// A note for the timeline; `None` takes the action's own text (reason, feedback, note).
    pub note: Option<&'a str>,
    /// SHA-256 digests (hex) of photos or files; empty takes the action's own evidence (handling).
    pub evidence: &'a [String],
    pub clocks: ClockChanges<'a>,
    pub at: DateTime<Utc>,
}

impl Store {
    /// Files a new case: allocates its number (sequence per category and local day), inserts it, starts
    /// its clock, writes the `report` audit record and the `case.created` event, in one transaction.
    pub async fn create_case(
        &self,
        new: &NewCase,
        sla: &SlaPolicy<'_>,
        at: DateTime<Utc>,
    ) -> Result<Case, CaseStoreError> {
        let (class, major, minor) = check_new_case(new, at)?;
        sla.check()?;
        let at_ms = at.timestamp_millis();
        let date = at.with_timezone(&sla.calendar.utc_offset()).date_naive();
        let prefix = format!("{}{}", new.category, date.format("%Y%m%d"));

        let mut tx = self.change_tx().await?;
        let result: Result<Case, CaseStoreError> = async {
        let sequence: i64 = sqlx::query_scalar(
            "INSERT INTO case_sequences (prefix, last) VALUES ($1, 1) \
             ON CONFLICT (prefix) DO UPDATE SET last = case_sequences.last + 1 RETURNING last",
        )
        .bind(&prefix)
        .fetch_one(&mut *tx)
        .await?;
        let sequence = u32::try_from(sequence)
            .with_context(|| format!("case sequence {sequence} of {prefix} is out of range"))?;
        let number = case_number(class, major, minor, date, sequence)
            .map_err(|e| invalid(format!("case number: {e}")))?;

        let id: CaseId = sqlx::query_scalar(
            "INSERT INTO cases (number, category_code, class, state, state_code, source, title, description, \
             address, lon, lat, grid, cell, reporter, verification_required, incident_id, device_id, version, \
             created_at, updated_at, audit_seq, audit_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1, $18, $19, 0, $20) RETURNING id",
        )
        .bind(&number)
        .bind(&new.category)
        .bind(rows::class_str(class))
        .bind(new.initial.as_str())
        .bind(i64::from(new.initial.code()))
        .bind(new.source.as_str())
        .bind(&new.title)
        .bind(&new.description)
        .bind(&new.address)
        .bind(new.lon)
        .bind(new.lat)
        .bind(new.grid.as_ref().map(crate::grid_json))
        .bind(new.grid.as_ref().and_then(GridPlace::cell))
        .bind(&new.reporter)
        .bind(i64::from(new.verification_required))
        .bind(new.incident_id)
        .bind(new.device_id.as_ref().map(DeviceId::as_str))
        .bind(at_ms)
        .bind(at_ms)
        .bind(GENESIS_HASH)
        .fetch_one(&mut *tx)
        .await
        .with_context(|| format!("Failed to insert case {number}"))?;

        if let Some(clock) = &new.clock {
            clocks::insert(&mut tx, self.dialect, id, clock, sla).await?;
        }
        let payload = json!({
            "number": number,
            "category": new.category,
            "source": new.source,
            "title": new.title,
            "description": new.description,
            "address": new.address,
            "lon": new.lon,
            "lat": new.lat,
            "grid": new.grid,
            "reporter": new.reporter,
            "verification_required": new.verification_required,
            "incident_id": new.incident_id,
            "device_id": new.device_id,
            "initial": new.initial,
            "clock": new.clock,
        });
        let head = audit::append(
            &mut tx,
            self.dialect,
            &audit::Head::genesis(),
            &audit::Entry {
                case_id: id,
                at: at_ms,
                actor: &new.reporter,
                role: new.reporter_role,
                action: audit::REPORT_ACTION,
                from: None,
                to: new.initial,
                note: None,
                evidence: &[],
                payload: &payload,
            },
        )
        .await?;
        audit::move_head(&mut tx, id, &head).await?;
        let seq = head.seq;
        let case = load(&mut tx, id).await?;
        outbox::insert(
            &mut tx,
            self.dialect,
            &NewOutboxEvent {
                event_type: CASE_CREATED.to_string(),
                case_id: Some(id),
                payload: json!({
                    "case": case,
                    "actor": new.reporter,
                    "role": new.reporter_role,
                    "at": at_ms,
                    "audit_seq": seq,
                }),
            },
            at_ms,
        )
        .await?;
        Ok(case)
        }
        .await;
        tx.finish(result, |e| {
            anyhow::anyhow!("Failed to commit case {prefix}…: {e}").into()
        })
        .await
    }

    /// Records one workflow step the caller decided with the state machine: state, assignments,
    /// counters, version, clocks, one audit record and one outbox event, in one transaction. A version
    /// or state that moved on is a [`CaseStoreError::Conflict`]; nothing is written then, nor on any
    /// other error.
    ///
    /// SQLite runs the change in the group-committed write transaction ([`crate::group`]), the case
    /// read under the write lock. PostgreSQL reads the case without a lock and writes everything in one
    /// statement guarded by what was read (see `apply_transition_optimistic`).
    pub async fn apply_transition(&self, change: &CaseChange<'_>) -> Result<Case, CaseStoreError> {
        let note = check_change(change)?;
        let evidence = evidence_of(change)?;
        match self.dialect {
            Dialect::Sqlite => {
                self.apply_transition_locked(change, note.as_deref(), &evidence)
                    .await
            }
            Dialect::Postgres => {
                self.apply_transition_optimistic(change, note.as_deref(), &evidence)
                    .await
            }
        }
    }

    /// SQLite: read and decide under the write lock, in the group-committed transaction
    /// ([`crate::group`]), then send every write in ONE call ([`write_planned`]): each call is a
    /// hand-off to the connection's thread and back, which cost more than the statements.
    async fn apply_transition_locked(
        &self,
        change: &CaseChange<'_>,
        note: Option<&str>,
        evidence: &[String],
    ) -> Result<Case, CaseStoreError> {
        let mut tx = self.bundled_change_tx().await?;
        let result: Result<Case, CaseStoreError> = async {
            let (case, head, reserved_clock_id) =
                load_for_change(&mut tx, self.dialect, change.case_id, true, true).await?;
            let planned = plan_change(change, case, &head, note, evidence, reserved_clock_id)?;
            write_planned(&mut tx, change, note, &head, planned).await
        }
        .await;
        tx.finish(result, |e| {
            anyhow::anyhow!("Failed to commit a change of case {}: {e}", change.case_id).into()
        })
        .await
    }

    /// PostgreSQL: optimistic concurrency in two round trips. The case and its audit head are read
    /// without a lock (one statement, which also reserves the id of a clock the change starts, and
    /// may also carry the reads of other changes that came at the same time: [`pg_read`]); the
    /// change is decided on what was read; then every write goes in ONE statement, committed on its own
    /// (autocommit: a statement is its own transaction, atomic and durable at commit), which may also
    /// carry the changes of other cases that came at the same time ([`pg_write`]). The statement's
    /// update of the case happens only if its id, version, state and audit head are still the ones
    /// read; every other write of the change (audit record, clocks, outbox event) depends on that
    /// update's row, so if the guard matches nothing, nothing of the change is written.
    ///
    /// Two concurrent changes of one case: the second's update waits for the first's row lock, finds
    /// the row changed when the first commits, and writes nothing. It then reads again and decides
    /// again: a change that named the version it read (or whose state moved on) is the same
    /// [`CaseStoreError::Conflict`] as under a lock. One that still fits (it named no version, or the
    /// case only got sensor evidence) is retried; after [`OPTIMISTIC_ATTEMPTS`] it runs as before the
    /// optimistic path existed, read `FOR UPDATE` in a transaction, so a busy case cannot starve it.
    async fn apply_transition_optimistic(
        &self,
        change: &CaseChange<'_>,
        note: Option<&str>,
        evidence: &[String],
    ) -> Result<Case, CaseStoreError> {
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let loaded = self
                .reads
                .read(&self.pool, change.case_id, starts_clock(change))
                .await?;
            let PlannedPg { outcome, row } = plan_loaded_pg(change, note, evidence, loaded)?;
            let written = self.changes.write(&self.pool, row).await?;
            if let Some(after) = outcome.after_written(written) {
                return Ok(after);
            }
            self.changes.count_moved_on();
        }
        self.changes.count_locked();
        let mut tx = self.pool.begin().await?;
        let planned = plan_change_pg(&mut tx, change, note, evidence, true).await?;
        #[cfg(test)]
        self.changes.interfere_under_lock(&self.pool).await;
        let written = pg_write::write(&mut tx, &[&planned.row])
            .await
            .with_context(|| format!("Failed to record a change of case {}", change.case_id))?;
        let Some(after) = written
            .first()
            .and_then(|w| planned.outcome.after_written(*w))
        else {
            // Cannot happen: the row lock is held since the read. Dropping `tx` rolls it back.
            return Err(anyhow::anyhow!("case {} changed under a row lock", change.case_id).into());
        };
        tx.commit()
            .await
            .with_context(|| format!("Failed to commit a change of case {}", change.case_id))?;
        Ok(after)
    }

    /// How case changes were written: on PostgreSQL the statements that carried them, on SQLite the
    /// grouped commits ([`crate::group`]; changes written by other paths are not counted there).
    pub fn case_write_stats(&self) -> WriteStats {
        match self.dialect {
            Dialect::Postgres => self.changes.stats(),
            Dialect::Sqlite => self.turn.stats(),
        }
    }

    /// How cases were read for changes on PostgreSQL ([`pg_read`]; SQLite reads under its write turn,
    /// one by one: zeros).
    pub fn case_read_stats(&self) -> ReadStats {
        self.reads.stats()
    }

    /// The case with this id.
    pub async fn case(&self, id: CaseId) -> Result<Case, CaseStoreError> {
        let row = sqlx::query(&format!("{} WHERE c.id = $1", rows::CASE_SELECT))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(rows::case_from_row(&row)?),
            None => Err(CaseStoreError::NotFound(format!("case {id}"))),
        }
    }

    /// The case with this number (`E05032026041001`).
    pub async fn case_by_number(&self, number: &str) -> Result<Case, CaseStoreError> {
        let row = sqlx::query(&format!("{} WHERE c.number = $1", rows::CASE_SELECT))
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(rows::case_from_row(&row)?),
            None => Err(CaseStoreError::NotFound(format!("case {number}"))),
        }
    }
}

/// Reads a case inside a transaction.
async fn load(conn: &mut AnyConnection, id: CaseId) -> Result<Case, CaseStoreError> {
    let row = sqlx::query(&format!("{} WHERE c.id = $1", rows::CASE_SELECT))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(rows::case_from_row(&row)?),
        None => Err(CaseStoreError::NotFound(format!("case {id}"))),
    }
}

/// Writes a planned change on SQLite in ONE call ([`crate::group::ChangeTx::write`]): the audit record,
/// the case, the clocks (the changed one before a started one: a started clock must not meet an
/// active one; a started one's id reserved with the read) and the event last. Returns the case as
/// written.
async fn write_planned(
    tx: &mut crate::group::ChangeTx,
    change: &CaseChange<'_>,
    note: Option<&str>,
    head: &audit::Head,
    planned: Planned,
) -> Result<Case, CaseStoreError> {
    let Planned {
        before,
        mut after,
        record,
        clock_rows,
    } = planned;
    let mut b = SqlBuilder::new(Dialect::Sqlite, "");
    record.push_insert(&mut b, None)?;
    b.push("; ");
    push_case_update(&mut b, &before, head, &record, &after);
    if let Some(changed) = &clock_rows.changed {
        b.push("; ");
        clocks::push_update(&mut b, changed, clock_rows.keep, None)?;
    }
    if let Some(started) = &clock_rows.started {
        b.push("; ");
        clocks::push_insert(&mut b, started, Some(started.id), None)?;
    }
    after.clock = clock_rows.running_after(before.clock.as_ref());
    let event = transition_event(change, note, &record, &after);
    b.push("; ");
    outbox::push_insert(&mut b, &event, after.updated_at, None)?;
    let done = tx
        .write(&mut b)
        .await
        .with_context(|| format!("Failed to record a change of case {}", before.number))?;
    let expected =
        3 + usize::from(clock_rows.changed.is_some()) + usize::from(clock_rows.started.is_some());
    if done.len() != expected || done[1] != 1 {
        // Cannot happen: the transaction holds SQLite's write lock since the read.
        return Err(anyhow::anyhow!(
            "case {} changed under the write lock ({} of {expected} statements ran, the case update \
             changed {} rows)",
            before.number,
            done.len(),
            done.get(1).copied().unwrap_or(0)
        )
        .into());
    }
    Ok(after)
}

/// Reads a case and the head of its audit chain for a change. With `lock`, inside a write transaction,
/// it locks the case against concurrent changes until the commit (SQLite's transaction already holds
/// the database's write lock); without, the change must guard its write with what was read. With
/// `reserve_clock_id` it also reserves the id of a clock the change will start, so all its writes can
/// be sent at once: PostgreSQL from the sequence; SQLite the next rowid, which only a transaction
/// holding the write lock (`lock`) may take, as nobody else can insert before it commits.
async fn load_for_change(
    conn: &mut AnyConnection,
    dialect: Dialect,
    id: CaseId,
    lock: bool,
    reserve_clock_id: bool,
) -> Result<(Case, audit::Head, Option<i64>), CaseStoreError> {
    let reserve = reserve_clock_id && (dialect == Dialect::Postgres || lock);
    let select = if reserve {
        let next = match dialect {
            Dialect::Postgres => "nextval(pg_get_serial_sequence('case_clocks', 'id'))",
            // What SQLite itself gives an INTEGER PRIMARY KEY without AUTOINCREMENT.
            Dialect::Sqlite => "(SELECT COALESCE(MAX(id), 0) + 1 FROM case_clocks)",
        };
        rows::CASE_SELECT.replacen(
            " FROM cases c ",
            &format!(", {next} AS reserved_clock_id FROM cases c "),
            1,
        )
    } else {
        rows::CASE_SELECT.to_string()
    };
    let sql = if lock {
        format!("{select} WHERE c.id = $1{}", dialect.lock_rows_of("c"))
    } else {
        format!("{select} WHERE c.id = $1")
    };
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok((
            rows::case_from_row(&row)?,
            audit::Head::from_case_row(&row)?,
            if reserve {
                Some(sqlx::Row::try_get(&row, "reserved_clock_id")?)
            } else {
                None
            },
        )),
        None => Err(CaseStoreError::NotFound(format!("case {id}"))),
    }
}

/// How often a PostgreSQL change tries its optimistic write before it takes the case's row lock: a
/// change is retried only when its case moved on without making it a conflict.
const OPTIMISTIC_ATTEMPTS: usize = 2;

/// A PostgreSQL change decided on a read, ready for [`pg_write`].
struct PlannedPg {
    outcome: Outcome,
    row: pg_write::Row,
}

/// What a PostgreSQL change makes of the case once written.
struct Outcome {
    /// The case after the change, if it is written.
    after: Case,
    /// The clock the change alters (its flags come back as written).
    changed_clock: Option<i64>,
}

impl Outcome {
    /// The case after the change, if the change was written (its guard held).
    fn after_written(self, written: pg_write::Written) -> Option<Case> {
        if !written.held {
            return None;
        }
        let mut after = self.after;
        if let (Some(clock), Some(changed)) = (after.clock.as_mut(), self.changed_clock)
            && clock.id == changed
            && written.warned >= 0
        {
            clock.warned = written.warned != 0;
            clock.overdue_notified = written.overdue_notified != 0;
        }
        Some(after)
    }
}

/// Reads the case (with `lock`, `FOR UPDATE` inside the caller's transaction) and decides a
/// PostgreSQL change on it; the write is guarded by what was read (see [`pg_write`]).
async fn plan_change_pg(
    conn: &mut AnyConnection,
    change: &CaseChange<'_>,
    note: Option<&str>,
    evidence: &[String],
    lock: bool,
) -> Result<PlannedPg, CaseStoreError> {
    let loaded = load_for_change(
        conn,
        Dialect::Postgres,
        change.case_id,
        lock,
        starts_clock(change),
    )
    .await?;
    plan_loaded_pg(change, note, evidence, loaded)
}

/// Whether the change starts a clock (its read reserves the clock's id).
fn starts_clock(change: &CaseChange<'_>) -> bool {
    matches!(change.transition.clock, ClockEffect::Start(_))
}

/// A PostgreSQL change decided on the case as read.
fn plan_loaded_pg(
    change: &CaseChange<'_>,
    note: Option<&str>,
    evidence: &[String],
    (case, head, reserved_clock_id): pg_read::Loaded,
) -> Result<PlannedPg, CaseStoreError> {
    let Planned {
        before,
        mut after,
        record,
        clock_rows,
    } = plan_change(change, case, &head, note, evidence, reserved_clock_id)?;
    after.clock = clock_rows.running_after(before.clock.as_ref());
    let event = transition_event(change, note, &record, &after);
    let changed_clock = clock_rows.changed.as_ref().map(|c| c.id);
    let row = pg_write::Row::new(before, head, record, after.clone(), clock_rows, event)?;
    Ok(PlannedPg {
        outcome: Outcome {
            after,
            changed_clock,
        },
        row,
    })
}

/// Everything one step writes, decided from the case as read before anything is written.
struct Planned {
    /// The case as read.
    before: Case,
    /// The case after the step; its `clock` is set once the clock rows have their ids.
    after: Case,
    /// The audit record after the chain's head (the case row gets its head).
    record: audit::Chained,
    clock_rows: clocks::Rows,
}

/// Checks a step against the case as read and decides what it writes: a version or state that moved
/// on is a conflict, a transition the machine would not decide on the stored facts is refused.
fn plan_change(
    change: &CaseChange<'_>,
    case: Case,
    head: &audit::Head,
    note: Option<&str>,
    evidence: &[String],
    reserved_clock_id: Option<i64>,
) -> Result<Planned, CaseStoreError> {
    let t = change.transition;
    let at_ms = change.at.timestamp_millis();
    let stale_version = change
        .expected_version
        .is_some_and(|expected| expected != case.version);
    if stale_version || case.state != t.from {
        return Err(CaseStoreError::Conflict {
            expected: CaseRevision {
                version: change.expected_version,
                state: t.from,
            },
            found: case.revision(),
        });
    }
    // The store never records a step the workflow would not take: the caller's decision is checked
    // against the machine on the stored facts (the actor's department is the API's to check).
    let context = case
        .context()
        .acting(Some(change.actor), case.department.as_deref());
    let decided = transition(case.state, change.action, change.role, &context)
        .map_err(|e| invalid(format!("the workflow refuses this step: {e}")))?;
    if decided != *t {
        return Err(invalid(format!(
            "the transition given for {} is not the one the workflow decides",
            t.action
        )));
    }
    if let Some(running) = &case.clock {
        let stage_of_state = case.state.sla_stage(case.source);
        if stage_of_state != Some(running.stage) {
            return Err(anyhow::anyhow!(
                "case {}: a {} case has a running {} clock",
                case.number,
                case.state,
                running.stage
            )
            .into());
        }
    }
    let plan = clocks::plan(case.clock.as_ref(), t.clock, &change.clocks, change.at)?;

    let mut department = case.department.clone();
    let mut inspector = case.inspector.clone();
    apply(&mut department, &t.department);
    apply(&mut inspector, &t.inspector);
    let (mut closed_at, mut closure, mut satisfaction) =
        (case.closed_at, case.closure, case.satisfaction);
    match change.action {
        Action::Close { closure: how } => {
            closed_at = Some(at_ms);
            closure = Some(*how);
        }
        Action::Callback {
            satisfaction: given,
            ..
        } => satisfaction = Some(*given),
        // A reopened case is open again; its earlier closing stays in the audit trail.
        Action::Reopen { .. } => (closed_at, closure, satisfaction) = (None, None, None),
        _ => {}
    }
    let extended = matches!(t.clock, ClockEffect::Extend(_));

    let audit_payload = json!({
        "action": change.action,
        "transition": t,
        "version": case.version + 1,
    });
    let record = audit::chain(
        head,
        &audit::Entry {
            case_id: case.id,
            at: at_ms,
            actor: change.actor,
            role: Some(change.role),
            action: t.action.as_str(),
            from: Some(t.from),
            to: t.to,
            note,
            evidence,
            payload: &audit_payload,
        },
    );
    let mut clock_rows = clocks::rows(case.id, &plan, &change.clocks.policy, change.at);
    if let Some(started) = &mut clock_rows.started {
        // Reserved with the read; else it comes with the insert.
        started.id = reserved_clock_id.unwrap_or(0);
    }
    let after = Case {
        state: t.to,
        department,
        inspector,
        version: case.version + 1,
        updated_at: at_ms,
        closed_at,
        closure,
        satisfaction,
        rework_count: case.rework_count + i64::from(t.counts_as_rework),
        wrong_dispatch_count: case.wrong_dispatch_count + i64::from(t.counts_as_wrong_dispatch),
        extension_count: case.extension_count + i64::from(extended),
        reopen_count: case.reopen_count + i64::from(t.counts_as_reopen),
        clock: None,
        ..case.clone()
    };
    Ok(Planned {
        before: case,
        after,
        record,
        clock_rows,
    })
}

/// `UPDATE cases SET …` to `after` with the head of `record`, guarded by the case as read: its id,
/// version, state and audit head (`head`, which the record is chained after).
fn push_case_update(
    b: &mut SqlBuilder<'_>,
    before: &Case,
    head: &audit::Head,
    record: &audit::Chained,
    after: &Case,
) {
    let new_head = record.head();
    b.push("UPDATE cases SET state = ")
        .push_bind(after.state.as_str())
        .push(", state_code = ")
        .push_bind(i64::from(after.state.code()))
        .push(", department = ")
        .push_bind(after.department.clone())
        .push(", inspector = ")
        .push_bind(after.inspector.clone())
        .push(", version = ")
        .push_bind(after.version)
        .push(", updated_at = ")
        .push_bind(after.updated_at)
        .push(", closed_at = ")
        .push_bind(after.closed_at)
        .push(", closure_type = ")
        .push_bind(after.closure.map(ClosureType::as_str))
        .push(", satisfaction = ")
        .push_bind(after.satisfaction.map(i64::from))
        .push(", rework_count = ")
        .push_bind(after.rework_count)
        .push(", wrong_dispatch_count = ")
        .push_bind(after.wrong_dispatch_count)
        .push(", extension_count = ")
        .push_bind(after.extension_count)
        .push(", reopen_count = ")
        .push_bind(after.reopen_count)
        .push(", audit_seq = ")
        .push_bind(new_head.seq)
        .push(", audit_hash = ")
        .push_bind(new_head.hash)
        .push(" WHERE id = ")
        .push_bind(before.id)
        .push(" AND version = ")
        .push_bind(before.version)
        .push(" AND state = ")
        .push_bind(before.state.as_str())
        .push(" AND audit_seq = ")
        .push_bind(head.seq);
}

/// The outbox event of a step: the case as it is after it, with the action, actor and audit seq.
fn transition_event(
    change: &CaseChange<'_>,
    note: Option<&str>,
    record: &audit::Chained,
    after: &Case,
) -> NewOutboxEvent {
    let t = change.transition;
    NewOutboxEvent {
        event_type: event_type_for(t.action).to_string(),
        case_id: Some(after.id),
        payload: json!({
            "case": after,
            "action": change.action,
            "from": t.from,
            "to": t.to,
            "actor": change.actor,
            "role": change.role,
            "note": note,
            "at": after.updated_at,
            "audit_seq": record.head().seq,
        }),
    }
}

fn apply(slot: &mut Option<String>, change: &Change<String>) {
    match change {
        Change::Keep => {}
        Change::Set(value) => *slot = Some(value.clone()),
        Change::Clear => *slot = None,
    }
}

/// Checks a new case on its own; returns its category's class, major and minor class.
fn check_new_case(
    new: &NewCase,
    at: DateTime<Utc>,
) -> Result<(CategoryClass, u8, u8), CaseStoreError> {
    let parts = parse_code(&new.category).map_err(|e| invalid(e.to_string()))?;
    if new.description.trim().is_empty() {
        return Err(invalid("description must not be empty"));
    }
    check_len("description", &new.description, MAX_TEXT_CHARS)?;
    check_len("title", &new.title, MAX_TITLE_CHARS)?;
    check_len("address", &new.address, MAX_TEXT_CHARS)?;
    check_id("reporter", &new.reporter)?;
    GeoPoint::new(new.lon, new.lat).map_err(|e| invalid(e.to_string()))?;
    if !matches!(new.initial, CaseState::Reported | CaseState::Registered) {
        return Err(invalid(format!(
            "a case starts reported or registered, not {}",
            new.initial
        )));
    }
    if let Some(clock) = &new.clock {
        let stage = new.initial.sla_stage(new.source);
        if stage != Some(clock.stage()) {
            return Err(invalid(format!(
                "a new {} case runs the {} clock, not {}",
                new.initial,
                stage.map_or("no", |s| s.as_str()),
                clock.stage()
            )));
        }
        check_fresh_clock(clock, at)?;
    }
    Ok(parts)
}

/// Checks a step on its own, before anything is read; returns the note to record.
fn check_change(change: &CaseChange<'_>) -> Result<Option<String>, CaseStoreError> {
    let t = change.transition;
    if t.action != change.action.kind() {
        return Err(invalid(format!(
            "the transition is for {}, the action is {}",
            t.action,
            change.action.kind()
        )));
    }
    if !t.action.roles().contains(&change.role) {
        return Err(invalid(format!("{} may not {}", change.role, t.action)));
    }
    check_id("actor", change.actor)?;
    change.clocks.policy.check()?;
    let note = change
        .note
        .or_else(|| action_text(change.action))
        .map(str::to_string);
    if let Some(note) = &note {
        check_len("note", note, MAX_TEXT_CHARS)?;
    }
    Ok(note)
}

/// The free text an action carries, for the timeline.
fn action_text(action: &Action) -> Option<&str> {
    let text = match action {
        Action::Decline { reason }
        | Action::RequestVoid { reason }
        | Action::RejectVoid { reason }
        | Action::Return { reason }
        | Action::RequestExtension { reason, .. }
        | Action::RejectExtension { reason }
        | Action::RequestSuspension { reason }
        | Action::RejectSuspension { reason }
        | Action::CheckFail { reason }
        | Action::Reopen { reason } => reason,
        Action::Handle { feedback, .. } => feedback,
        Action::ReportVerification { note, .. } | Action::Callback { note, .. } => note,
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text.as_str())
}

/// The evidence to record: the caller's, else the action's own; SHA-256 hex, lower case, no repeats.
fn evidence_of(change: &CaseChange<'_>) -> Result<Vec<String>, CaseStoreError> {
    let given: &[String] = match (change.evidence, change.action) {
        ([], Action::Handle { evidence, .. }) => evidence,
        (given, _) => given,
    };
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for digest in given {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "evidence must be SHA-256 digests in hex, not {digest:?}"
            )));
        }
        let digest = digest.to_ascii_lowercase();
        if out.contains(&digest) {
            return Err(invalid(format!("evidence lists {digest} twice")));
        }
        out.push(digest);
    }
    Ok(out)
}

/// A clock handed in to start a stage must start now and not have changed yet.
fn check_fresh_clock(clock: &StageClock, at: DateTime<Utc>) -> Result<(), CaseStoreError> {
    if clock.started_at() != at {
        return Err(invalid(format!(
            "the {} clock must start at the instant of the change ({at}), not {}",
            clock.stage(),
            clock.started_at()
        )));
    }
    if clock.is_stopped() || !clock.suspensions().is_empty() || clock.extension_minutes() != 0 {
        return Err(invalid(format!(
            "the {} clock to start must be fresh (not stopped, suspended or extended)",
            clock.stage()
        )));
    }
    Ok(())
}

fn check_len(field: &str, text: &str, max: usize) -> Result<(), CaseStoreError> {
    if text.chars().count() > max {
        return Err(invalid(format!("{field} is longer than {max} characters")));
    }
    Ok(())
}

fn check_id(field: &str, id: &str) -> Result<(), CaseStoreError> {
    if id.trim().is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    check_len(field, id, MAX_ID_CHARS)
}
