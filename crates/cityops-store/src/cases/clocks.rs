//! SLA clocks of cases in the store: persisted per stage, deadlines computed once per change, due
//! warnings and overdues found by query and marked once.
//!
//! A row keeps the [`StageClock`] (the facts: start, limit, extensions, suspensions, stop) and the
//! instants computed from it with the working calendar: `deadline_at` and `warning_at`, both `NULL`
//! while the clock is suspended (it is not running) or stopped. The scheduler never needs the calendar:
//! it asks [`Store::due_clock_events`] and marks each one with [`Store::mark_clock_notified`], which
//! sets the flag and commits the notification's outbox event together, and only if the clock is still
//! due and unmarked — so a warning or an overdue fires once, even with two schedulers racing.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use cityops_core::UnixMillis;
use cityops_core::sla::{ClockEffect, SlaStage, StageClock, WorkCalendar};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::outbox::{self, CASE_SLA_OVERDUE, CASE_SLA_WARNING, NewOutboxEvent};
use super::{CaseId, CaseStoreError, check_fresh_clock, invalid};
use crate::db::SqlBuilder;
use crate::{Dialect, Store};

/// How deadlines are computed: the working calendar and the share of the limit that triggers the early
/// warning.
#[derive(Debug, Clone, Copy)]
pub struct SlaPolicy<'a> {
    pub calendar: &'a WorkCalendar,
    /// 0.0 to 1.0; 0.8 warns when 80 % of the limit is used.
    pub warning_share: f64,
}

impl<'a> SlaPolicy<'a> {
    pub const DEFAULT_WARNING_SHARE: f64 = 0.8;

    /// The calendar with the usual warning at 80 %.
    pub fn new(calendar: &'a WorkCalendar) -> Self {
        Self {
            calendar,
            warning_share: Self::DEFAULT_WARNING_SHARE,
        }
    }

    pub(super) fn check(&self) -> Result<(), CaseStoreError> {
        if !(0.0..=1.0).contains(&self.warning_share) {
            return Err(invalid(format!(
                "the warning share must be between 0 and 1, not {}",
                self.warning_share
            )));
        }
        Ok(())
    }

    /// Deadline and warning instants of a clock; both `None` once stopped.
    fn instants(&self, clock: &StageClock) -> (Option<UnixMillis>, Option<UnixMillis>) {
        if clock.is_stopped() {
            return (None, None);
        }
        let millis = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
        (
            millis(clock.deadline(self.calendar)),
            millis(clock.warning_at(self.calendar, self.warning_share)),
        )
    }
}

/// What a recorded step needs besides the transition to update the clocks.
#[derive(Debug, Clone)]
pub struct ClockChanges<'a> {
    pub policy: SlaPolicy<'a>,
    /// The clock of the stage the transition starts ([`ClockEffect::Start`]), built by the caller with
    /// the limit and clock kind configured for the case's category and started at the step's instant.
    /// `None` when that stage has no limit; must be `None` for every other effect. Whatever the
    /// transition does to the running clock (stop, suspend, resume, extend) the store applies itself.
    pub next: Option<StageClock>,
}

impl<'a> ClockChanges<'a> {
    /// No clock to start.
    pub fn none(policy: SlaPolicy<'a>) -> Self {
        Self { policy, next: None }
    }

    /// Starts `clock` (for a transition whose effect starts its stage).
    pub fn start(policy: SlaPolicy<'a>, clock: StageClock) -> Self {
        Self {
            policy,
            next: Some(clock),
        }
    }
}

/// A stage clock of a case, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseClock {
    /// The row id: what a scheduler's mark refers to, so a stage run again is a different clock.
    pub id: i64,
    pub case_id: CaseId,
    pub stage: SlaStage,
    pub clock: StageClock,
    /// When the limit runs out; `None` while suspended or once stopped.
    pub deadline_at: Option<UnixMillis>,
    /// When the early warning falls; `None` while suspended before it, or once stopped.
    pub warning_at: Option<UnixMillis>,
    pub warned: bool,
    pub overdue_notified: bool,
    /// Running or suspended (not stopped).
    pub active: bool,
}

/// What fell due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueKind {
    Warning,
    Overdue,
}

impl DueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DueKind::Warning => "warning",
            DueKind::Overdue => "overdue",
        }
    }
}

/// A warning or overdue that fell due and was not notified yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueClock {
    pub clock_id: i64,
    pub case_id: CaseId,
    pub number: String,
    pub stage: SlaStage,
    pub kind: DueKind,
    /// The warning instant or the deadline.
    pub due_at: UnixMillis,
}

impl DueClock {
    /// The standard notification: `case.sla_warning` or `case.sla_overdue` with the clock's facts.
    pub fn event(&self) -> NewOutboxEvent {
        let event_type = match self.kind {
            DueKind::Warning => CASE_SLA_WARNING,
            DueKind::Overdue => CASE_SLA_OVERDUE,
        };
        NewOutboxEvent {
            event_type: event_type.to_string(),
            case_id: Some(self.case_id),
            payload: json!({
                "case_id": self.case_id,
                "number": self.number,
                "stage": self.stage,
                "kind": self.kind,
                "due_at": self.due_at,
                "clock_id": self.clock_id,
            }),
        }
    }
}

/// The clock writes of one step, decided before anything is written.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// The running clock, changed (stopped, suspended, resumed or extended).
    changed: Option<(CaseClock, StageClock)>,
    /// The clock that starts.
    started: Option<StageClock>,
}

/// Applies a transition's clock effect to the running clock, and checks the clock to start.
pub(super) fn plan(
    running: Option<&CaseClock>,
    effect: ClockEffect,
    changes: &ClockChanges<'_>,
    at: DateTime<Utc>,
) -> Result<Plan, CaseStoreError> {
    match (effect, &changes.next) {
        (ClockEffect::Start(stage), Some(next)) => {
            if next.stage() != stage {
                return Err(invalid(format!(
                    "the transition starts the {stage} clock, not {}",
                    next.stage()
                )));
            }
            check_fresh_clock(next, at)?;
        }
        (ClockEffect::Start(_), None) => {}
        (other, Some(next)) => {
            return Err(invalid(format!(
                "a {other:?} transition starts no clock, but a {} clock was given",
                next.stage()
            )));
        }
        (_, None) => {}
    }
    let mut plan = Plan {
        started: changes.next.clone(),
        ..Plan::default()
    };
    // A case without a running clock (its stage has no limit) has nothing to stop, suspend or extend.
    if let (Some(running), false) = (running, effect == ClockEffect::Keep) {
        let mut clock = running.clock.clone();
        clock
            .apply(effect, at)
            .map_err(|e| invalid(format!("the {} clock: {e}", running.stage)))?;
        plan.changed = Some((running.clone(), clock));
    }
    Ok(plan)
}

/// The rows a plan writes: the changed clock as it will be stored, and the started one (its `id` 0
/// until it is known).
#[derive(Debug, Default)]
pub(super) struct Rows {
    pub changed: Option<CaseClock>,
    /// Which notified flags of the changed clock may stay as stored (see [`KeepNotified`]).
    pub keep: KeepNotified,
    pub started: Option<CaseClock>,
}

/// Whether a changed clock's stored `warned` and `overdue_notified` flags may stay set: yes unless
/// the change moved that instant back into the future. The update keeps the flag as STORED, not as
/// read before the change was decided: a scheduler may have marked a warning between the read and
/// the write (PostgreSQL reads without a lock, and `mark_clock_notified` does not lock the case), and
/// writing the flag read would clear that mark and send the warning a second time.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct KeepNotified {
    pub warned: bool,
    pub overdue: bool,
}

impl Rows {
    /// The case's running clock once the rows are written: `running` (the clock before) when the plan
    /// leaves it alone.
    pub fn running_after(&self, running: Option<&CaseClock>) -> Option<CaseClock> {
        if let Some(started) = &self.started {
            return Some(started.clone());
        }
        match &self.changed {
            Some(changed) => changed.active.then(|| changed.clone()),
            None => running.cloned(),
        }
    }
}

/// The rows of a plan, with the deadline and warning instants of the calendar.
pub(super) fn rows(
    case_id: CaseId,
    plan: &Plan,
    policy: &SlaPolicy<'_>,
    at: DateTime<Utc>,
) -> Rows {
    let at_ms = at.timestamp_millis();
    let mut keep = KeepNotified::default();
    let changed = plan.changed.as_ref().map(|(old, clock)| {
        let (deadline_at, warning_at) = policy.instants(clock);
        // An instant moved back into the future (extension, resumption) is notified again when it comes.
        let may_stay = |instant: Option<UnixMillis>| instant.is_none_or(|instant| instant <= at_ms);
        keep = KeepNotified {
            warned: may_stay(warning_at),
            overdue: may_stay(deadline_at),
        };
        let still_notified = |flag: bool, instant| flag && may_stay(instant);
        CaseClock {
            id: old.id,
            case_id,
            stage: clock.stage(),
            clock: clock.clone(),
            deadline_at,
            warning_at,
            warned: still_notified(old.warned, warning_at),
            overdue_notified: still_notified(old.overdue_notified, deadline_at),
            active: !clock.is_stopped(),
        }
    });
    let started = plan
        .started
        .as_ref()
        .map(|clock| new_row(case_id, clock, policy));
    Rows {
        changed,
        keep,
        started,
    }
}

/// A clock about to start, as it will be stored (`id` 0 until it is known).
fn new_row(case_id: CaseId, clock: &StageClock, policy: &SlaPolicy<'_>) -> CaseClock {
    let (deadline_at, warning_at) = policy.instants(clock);
    CaseClock {
        id: 0,
        case_id,
        stage: clock.stage(),
        clock: clock.clone(),
        deadline_at,
        warning_at,
        warned: false,
        overdue_notified: false,
        active: !clock.is_stopped(),
    }
}

/// `UPDATE case_clocks …` writing a changed clock; its notified flags stay as stored where `keep`
/// allows, else they are cleared (`row`'s flags, decided on an earlier read, are not written).
pub(super) fn push_update(
    b: &mut SqlBuilder<'_>,
    row: &CaseClock,
    keep: KeepNotified,
    from: Option<&str>,
) -> anyhow::Result<()> {
    let flag = |keep: bool, column: &'static str| {
        if keep { column } else { "0" }
    };
    b.push("UPDATE case_clocks SET clock = ")
        .push_bind(serde_json::to_string(&row.clock).context("clock")?)
        .push(", deadline_at = ")
        .push_bind(row.deadline_at)
        .push(", warning_at = ")
        .push_bind(row.warning_at)
        .push(", warned = ")
        .push(flag(keep.warned, "case_clocks.warned"))
        .push(", overdue_notified = ")
        .push(flag(keep.overdue, "case_clocks.overdue_notified"))
        .push(", active = ")
        .push_bind(i64::from(row.active));
    // With `from`: only if that part of the statement returned a row (it names no column `id`).
    if let Some(from) = from {
        b.push(" FROM ").push(from);
    }
    b.push(" WHERE case_clocks.id = ").push_bind(row.id);
    Ok(())
}

/// `INSERT INTO case_clocks …` of a starting clock, with its id when it was reserved (PostgreSQL),
/// else letting the database give one; its values, or once per row of `from` (see
/// [`SqlBuilder::push_row`]).
pub(super) fn push_insert(
    b: &mut SqlBuilder<'_>,
    row: &CaseClock,
    id: Option<i64>,
    from: Option<&str>,
) -> anyhow::Result<()> {
    let json = serde_json::to_string(&row.clock).context("clock")?;
    b.push(if id.is_some() {
        "INSERT INTO case_clocks (id, case_id, stage, clock, started_at, deadline_at, warning_at, warned, \
         overdue_notified, active) "
    } else {
        "INSERT INTO case_clocks (case_id, stage, clock, started_at, deadline_at, warning_at, warned, \
         overdue_notified, active) "
    });
    b.push_row(from, |values| {
        if let Some(id) = id {
            values.push_bind(id);
        }
        values
            .push_bind(row.case_id)
            .push_bind(row.stage.as_str())
            .push_bind(json.clone())
            .push_bind(row.clock.started_at().timestamp_millis())
            .push_bind(row.deadline_at)
            .push_bind(row.warning_at)
            .push_bind(0_i64)
            .push_bind(0_i64)
            .push_bind(i64::from(row.active));
    });
    Ok(())
}

/// Writes the rows of a plan one statement each: the changed clock first (a started clock must not
/// meet an active one). Returns the started clock with its id.
pub(super) async fn write(
    conn: &mut AnyConnection,
    dialect: Dialect,
    rows: &mut Rows,
) -> Result<(), CaseStoreError> {
    if let Some(changed) = &rows.changed {
        let mut b = SqlBuilder::new(dialect, "");
        push_update(&mut b, changed, rows.keep, None)?;
        b.build()?.execute(&mut *conn).await.with_context(|| {
            format!(
                "Failed to update the {} clock of case {}",
                changed.stage, changed.case_id
            )
        })?;
    }
    if let Some(started) = &mut rows.started {
        let mut b = SqlBuilder::new(dialect, "");
        push_insert(&mut b, started, None, None)?;
        b.push(" RETURNING id");
        started.id = b
            .build_scalar()?
            .fetch_one(&mut *conn)
            .await
            .with_context(|| {
                format!(
                    "Failed to start the {} clock of case {}",
                    started.stage, started.case_id
                )
            })?;
    }
    Ok(())
}

/// Inserts the running clock of a new case's first stage; returns it as stored.
pub(super) async fn insert(
    conn: &mut AnyConnection,
    dialect: Dialect,
    case_id: CaseId,
    clock: &StageClock,
    policy: &SlaPolicy<'_>,
) -> Result<CaseClock, CaseStoreError> {
    let mut rows = Rows {
        started: Some(new_row(case_id, clock, policy)),
        ..Rows::default()
    };
    write(conn, dialect, &mut rows).await?;
    Ok(rows.started.expect("a started clock"))
}

/// Reads the `clock_*` columns of [`clock_columns!`]; `None` when the left join found no clock.
pub(super) fn clock_from_row(row: &AnyRow) -> anyhow::Result<Option<CaseClock>> {
    let Some(id) = row.try_get::<Option<i64>, _>("clock_id")? else {
        return Ok(None);
    };
    let json: String = row.try_get("clock_json")?;
    let clock: StageClock =
        serde_json::from_str(&json).with_context(|| format!("clock {id}: {json:?}"))?;
    Ok(Some(CaseClock {
        id,
        case_id: row.try_get("clock_case_id")?,
        stage: clock.stage(),
        deadline_at: row.try_get("clock_deadline_at")?,
        warning_at: row.try_get("clock_warning_at")?,
        warned: row.try_get::<i64, _>("clock_warned")? != 0,
        overdue_notified: row.try_get::<i64, _>("clock_overdue_notified")? != 0,
        active: row.try_get::<i64, _>("clock_active")? != 0,
        clock,
    }))
}

impl Store {
    /// Every clock the case ran, in the order the stages started (for indicators: on time or not).
    pub async fn case_clocks(&self, case_id: CaseId) -> Result<Vec<CaseClock>, CaseStoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            clock_columns!(),
            " FROM case_clocks k WHERE k.case_id = $1 ORDER BY k.id"
        ))
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        let mut clocks = Vec::with_capacity(rows.len());
        for row in &rows {
            clocks.extend(clock_from_row(row)?);
        }
        Ok(clocks)
    }

    /// Warnings (`warning_at <= now`) and overdues (`deadline_at < now`) of running clocks not yet
    /// notified, earliest first, at most `limit`. A clock that is already overdue is listed once, as
    /// overdue: marking it also marks its warning, which has become pointless.
    pub async fn due_clock_events(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DueClock>, CaseStoreError> {
        let now = now.timestamp_millis();
        // Two selects, each on its own partial index, rather than one OR that reads every running clock.
        let rows = sqlx::query(
            "SELECT k.id AS clock_id, k.case_id, c.number, k.stage, 'overdue' AS kind, k.deadline_at AS due_at \
             FROM case_clocks k JOIN cases c ON c.id = k.case_id \
             WHERE k.active = 1 AND k.overdue_notified = 0 AND k.deadline_at < $1 \
             UNION ALL \
             SELECT k.id AS clock_id, k.case_id, c.number, k.stage, 'warning' AS kind, k.warning_at AS due_at \
             FROM case_clocks k JOIN cases c ON c.id = k.case_id \
             WHERE k.active = 1 AND k.warned = 0 AND k.warning_at <= $2 \
             AND (k.overdue_notified = 1 OR k.deadline_at IS NULL OR k.deadline_at >= $3) \
             ORDER BY due_at, clock_id LIMIT $4",
        )
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let stage: String = row.try_get("stage")?;
                let kind: String = row.try_get("kind")?;
                Ok(DueClock {
                    clock_id: row.try_get("clock_id")?,
                    case_id: row.try_get("case_id")?,
                    number: row.try_get("number")?,
                    stage: SlaStage::parse(&stage)
                        .with_context(|| format!("stored clock stage {stage:?}"))?,
                    kind: if kind == "overdue" {
                        DueKind::Overdue
                    } else {
                        DueKind::Warning
                    },
                    due_at: row.try_get("due_at")?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .map_err(CaseStoreError::from)
    }

    /// Marks a due warning or overdue as notified and commits `event` with it, in one transaction.
    /// Returns `false`, writing nothing, when the clock is no longer due or already marked (another
    /// scheduler was first, the stage ended, an extension moved the instant): then publish nothing.
    pub async fn mark_clock_notified(
        &self,
        due: &DueClock,
        event: &NewOutboxEvent,
        now: DateTime<Utc>,
    ) -> Result<bool, CaseStoreError> {
        let now_ms = now.timestamp_millis();
        let mut tx = self.write_tx().await?;
        let sql = match due.kind {
            DueKind::Warning => {
                "UPDATE case_clocks SET warned = 1 WHERE id = $1 AND case_id = $2 AND active = 1 \
                 AND warned = 0 AND warning_at <= $3"
            }
            DueKind::Overdue => {
                "UPDATE case_clocks SET overdue_notified = 1, warned = 1 WHERE id = $1 AND case_id = $2 \
                 AND active = 1 AND overdue_notified = 0 AND deadline_at < $3"
            }
        };
        let marked = sqlx::query(sql)
            .bind(due.clock_id)
            .bind(due.case_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if marked == 0 {
            return Ok(false);
        }
        outbox::insert(&mut tx, self.dialect(), event, now_ms).await?;
        tx.commit()
            .await
            .context("Failed to commit a clock notification")?;
        Ok(true)
    }
}
