//! The timer of one stage of one case: a plain value, persisted by the store and recomputed on demand.
//!
//! It records facts only (when the stage started, its limit, the extensions granted, when it was suspended
//! and resumed, when it stopped) and computes everything else from them and a [`WorkCalendar`]: the
//! deadline, the time used, the warning instant, the overtime multiple. A restart loses nothing, and a
//! calendar corrected later (a holiday added) moves the deadlines of running stages with it.
//!
//! Suspended time (挂账) does not count: the clock is measured in the stage's own clock kind, minus the
//! same measure over the suspensions. An extension (延期) adds minutes to the limit, so it moves the
//! deadline by that much of the stage's clock kind. Overdue means more time used than the limit allows —
//! in working time, so a stage that runs out at 12:00 becomes overdue at 14:00 plus one second, when
//! working time resumes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

use super::calendar::WorkCalendar;
use super::stage::{ClockEffect, ClockKind, SlaStage};

/// The timer of one stage. Build it with [`StageClock::start`]; change it only through its methods,
/// which keep the recorded events in time order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageClock {
    stage: SlaStage,
    kind: ClockKind,
    started_at: DateTime<Utc>,
    limit_minutes: NonZeroU32,
    #[serde(default)]
    extension_minutes: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    suspensions: Vec<Suspension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stopped_at: Option<DateTime<Utc>>,
}

/// One suspension (挂账): the clock did not count from `from` until `until` (still paused while `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub from: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// Why a clock refused a change. Each means the caller's record of the case and the clock disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("the {stage} clock stopped at {stopped_at}; it cannot change any more")]
    Stopped {
        stage: SlaStage,
        stopped_at: DateTime<Utc>,
    },
    #[error("the clock is already suspended since {since}")]
    AlreadySuspended { since: DateTime<Utc> },
    #[error("the clock is not suspended, so it cannot resume")]
    NotSuspended,
    #[error("a clock change at {at} comes before its last recorded change at {last}")]
    OutOfOrder {
        at: DateTime<Utc>,
        last: DateTime<Utc>,
    },
    #[error("an extension must add at least one minute")]
    ZeroExtension,
}

impl StageClock {
    /// A running clock for `stage` from `started_at`, with the stage's configured limit.
    pub fn start(
        stage: SlaStage,
        kind: ClockKind,
        started_at: DateTime<Utc>,
        limit_minutes: NonZeroU32,
    ) -> Self {
        Self {
            stage,
            kind,
            started_at,
            limit_minutes,
            extension_minutes: 0,
            suspensions: Vec::new(),
            stopped_at: None,
        }
    }

    pub fn stage(&self) -> SlaStage {
        self.stage
    }

    pub fn kind(&self) -> ClockKind {
        self.kind
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// The limit the stage started with, without extensions.
    pub fn limit_minutes(&self) -> u32 {
        self.limit_minutes.get()
    }

    /// All extensions granted so far, added up.
    pub fn extension_minutes(&self) -> u32 {
        self.extension_minutes
    }

    /// Limit plus extensions: the time the stage may use.
    pub fn total_limit_minutes(&self) -> u64 {
        u64::from(self.limit_minutes.get()) + u64::from(self.extension_minutes)
    }

    pub fn suspensions(&self) -> &[Suspension] {
        &self.suspensions
    }

    pub fn stopped_at(&self) -> Option<DateTime<Utc>> {
        self.stopped_at
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped_at.is_some()
    }

    pub fn is_suspended(&self) -> bool {
        self.open_suspension().is_some()
    }

    /// Pauses the clock at `at` (挂账 approved).
    pub fn suspend(&mut self, at: DateTime<Utc>) -> Result<(), ClockError> {
        self.check_change(at)?;
        if let Some(open) = self.open_suspension() {
            return Err(ClockError::AlreadySuspended { since: open.from });
        }
        self.suspensions.push(Suspension {
            from: at,
            until: None,
        });
        Ok(())
    }

    /// Lets a paused clock count again from `at`.
    pub fn resume(&mut self, at: DateTime<Utc>) -> Result<(), ClockError> {
        self.check_change(at)?;
        match self.suspensions.last_mut() {
            Some(open) if open.until.is_none() => {
                open.until = Some(at);
                Ok(())
            }
            _ => Err(ClockError::NotSuspended),
        }
    }

    /// Grants `minutes` more (延期 approved). Extensions add up; the sum saturates rather than wraps.
    pub fn extend(&mut self, minutes: u32) -> Result<(), ClockError> {
        if let Some(stopped_at) = self.stopped_at {
            return Err(ClockError::Stopped {
                stage: self.stage,
                stopped_at,
            });
        }
        if minutes == 0 {
            return Err(ClockError::ZeroExtension);
        }
        self.extension_minutes = self.extension_minutes.saturating_add(minutes);
        Ok(())
    }

    /// Ends the stage at `at`. A suspension still open ends there too (a suspended case closed specially).
    pub fn stop(&mut self, at: DateTime<Utc>) -> Result<(), ClockError> {
        self.check_change(at)?;
        if let Some(open) = self.suspensions.last_mut().filter(|s| s.until.is_none()) {
            open.until = Some(at);
        }
        self.stopped_at = Some(at);
        Ok(())
    }

    /// Applies what a case transition says about the clock, at the instant of the transition.
    /// `Start` stops this clock; the caller then starts the next stage's clock with its own limit.
    pub fn apply(&mut self, effect: ClockEffect, at: DateTime<Utc>) -> Result<(), ClockError> {
        match effect {
            ClockEffect::Keep => Ok(()),
            ClockEffect::Start(_) | ClockEffect::Stop => self.stop(at),
            ClockEffect::Suspend => self.suspend(at),
            ClockEffect::Resume => self.resume(at),
            ClockEffect::Extend(minutes) => self.extend(minutes),
        }
    }

    /// Time counted from the start until `now` (or until the stop), without suspensions, in seconds.
    pub fn used_seconds(&self, calendar: &WorkCalendar, now: DateTime<Utc>) -> u64 {
        let end = self.stopped_at.map_or(now, |stopped| stopped.min(now));
        if end <= self.started_at {
            return 0;
        }
        let gross = calendar.seconds_between(self.kind, self.started_at, end);
        gross.saturating_sub(self.suspended_seconds(calendar, now))
    }

    /// [`used_seconds`](Self::used_seconds) in whole minutes, rounded down.
    pub fn used_minutes(&self, calendar: &WorkCalendar, now: DateTime<Utc>) -> u32 {
        u32::try_from(self.used_seconds(calendar, now) / 60).unwrap_or(u32::MAX)
    }

    /// Time that passed while suspended (measured in the stage's clock kind), until `now` or the stop.
    pub fn suspended_seconds(&self, calendar: &WorkCalendar, now: DateTime<Utc>) -> u64 {
        let end = self.stopped_at.map_or(now, |stopped| stopped.min(now));
        self.suspensions
            .iter()
            .map(|s| {
                let from = s.from.max(self.started_at);
                let until = s.until.map_or(end, |until| until.min(end));
                calendar.seconds_between(self.kind, from, until)
            })
            .sum()
    }

    /// Seconds left before the limit is used up; negative once overdue.
    pub fn remaining_seconds(&self, calendar: &WorkCalendar, now: DateTime<Utc>) -> i64 {
        let limit = i64::try_from(self.total_limit_minutes() * 60).unwrap_or(i64::MAX);
        let used = i64::try_from(self.used_seconds(calendar, now)).unwrap_or(i64::MAX);
        limit - used
    }

    /// The earliest instant at which the clock will have counted `seconds`, skipping the recorded
    /// suspensions; `None` if the clock is suspended (open-ended) before it gets there.
    /// A stopped clock answers as if it had run on, which keeps its planned deadline on record.
    pub fn instant_when_used(
        &self,
        calendar: &WorkCalendar,
        seconds: u64,
    ) -> Option<DateTime<Utc>> {
        let mut cursor = self.started_at;
        let mut budget = seconds;
        for suspension in &self.suspensions {
            let from = suspension.from.max(cursor);
            let available = calendar.seconds_between(self.kind, cursor, from);
            if budget <= available {
                return Some(calendar.add_seconds(self.kind, cursor, budget));
            }
            budget -= available;
            cursor = suspension.until?.max(cursor);
        }
        Some(calendar.add_seconds(self.kind, cursor, budget))
    }

    /// When the limit (with extensions) runs out; `None` while suspended, as the clock is not running.
    pub fn deadline(&self, calendar: &WorkCalendar) -> Option<DateTime<Utc>> {
        self.instant_when_used(calendar, self.total_limit_minutes() * 60)
    }

    /// When `share` of the limit is used (0.8: the usual early warning); `None` while suspended before
    /// that point, or when `share` is not a number. Negative shares count as 0.
    pub fn warning_at(&self, calendar: &WorkCalendar, share: f64) -> Option<DateTime<Utc>> {
        if share.is_nan() {
            return None;
        }
        let limit_seconds = (self.total_limit_minutes() * 60) as f64;
        // `as` saturates for floats; rounding keeps 0.8 × 1800 s at 1440 s despite binary fractions.
        let budget = (limit_seconds * share.max(0.0)).round() as u64;
        self.instant_when_used(calendar, budget)
    }

    /// More time used than limit plus extensions allow.
    pub fn is_overdue(&self, calendar: &WorkCalendar, now: DateTime<Utc>) -> bool {
        self.used_seconds(calendar, now) > self.total_limit_minutes() * 60
    }

    /// Used time as a share of limit plus extensions (1.0 = all used).
    pub fn used_share(&self, calendar: &WorkCalendar, now: DateTime<Utc>) -> f64 {
        self.used_seconds(calendar, now) as f64 / (self.total_limit_minutes() * 60) as f64
    }

    /// 超时倍数: (used − limit) / limit, with the limit including extensions; 0 while not overdue.
    pub fn overtime_multiple(&self, calendar: &WorkCalendar, now: DateTime<Utc>) -> f64 {
        (self.used_share(calendar, now) - 1.0).max(0.0)
    }

    fn open_suspension(&self) -> Option<&Suspension> {
        self.suspensions.last().filter(|s| s.until.is_none())
    }

    /// Changes must come in time order and only while the clock runs.
    fn check_change(&self, at: DateTime<Utc>) -> Result<(), ClockError> {
        if let Some(stopped_at) = self.stopped_at {
            return Err(ClockError::Stopped {
                stage: self.stage,
                stopped_at,
            });
        }
        let last = self
            .suspensions
            .iter()
            .flat_map(|s| [Some(s.from), s.until])
            .flatten()
            .fold(self.started_at, DateTime::max);
        if at < last {
            return Err(ClockError::OutOfOrder { at, last });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::CalendarConfig;

    fn at(local: &str) -> DateTime<Utc> {
        DateTime::parse_from_str(&format!("{local} +0800"), "%Y-%m-%d %H:%M %z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn minutes(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn handling(start: &str, limit: u32) -> StageClock {
        StageClock::start(
            SlaStage::Handling,
            ClockKind::WorkingTime,
            at(start),
            minutes(limit),
        )
    }

    #[test]
    fn a_two_hour_limit_across_lunch() {
        let calendar = WorkCalendar::default();
        let clock = handling("2026-04-10 11:00", 120);
        assert_eq!(clock.deadline(&calendar), Some(at("2026-04-10 15:00")));
        assert_eq!(clock.used_minutes(&calendar, at("2026-04-10 13:00")), 60);
        assert_eq!(
            clock.remaining_seconds(&calendar, at("2026-04-10 13:00")),
            3600
        );
        assert!(!clock.is_overdue(&calendar, at("2026-04-10 15:00")));
        assert!(clock.is_overdue(&calendar, at("2026-04-10 15:01")));
        assert_eq!(
            clock.overtime_multiple(&calendar, at("2026-04-10 14:00")),
            0.0
        );
    }

    #[test]
    fn the_warning_comes_at_eighty_percent() {
        let calendar = WorkCalendar::default();
        // A 30-minute check from 11:50: 10 minutes before lunch, the rest after.
        let clock = StageClock::start(
            SlaStage::Check,
            ClockKind::WorkingTime,
            at("2026-04-10 11:50"),
            minutes(30),
        );
        assert_eq!(
            clock.warning_at(&calendar, 0.8),
            Some(at("2026-04-10 14:14"))
        );
        assert_eq!(clock.deadline(&calendar), Some(at("2026-04-10 14:20")));
        assert_eq!(clock.warning_at(&calendar, 1.0), clock.deadline(&calendar));
        assert_eq!(
            clock.warning_at(&calendar, 0.0),
            Some(at("2026-04-10 11:50"))
        );
        assert_eq!(clock.warning_at(&calendar, f64::NAN), None);
        assert!((clock.used_share(&calendar, at("2026-04-10 14:14")) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn overtime_multiple_is_used_minus_limit_over_limit() {
        let calendar = WorkCalendar::default();
        let clock = handling("2026-04-10 08:00", 120);
        // At 14:00 four working hours are used of two: one limit over.
        assert_eq!(
            clock.overtime_multiple(&calendar, at("2026-04-10 14:00")),
            1.0
        );
        // Monday 09:00: 8 h Friday + 1 h Monday = 9 h used of 2 → 3.5.
        assert_eq!(
            clock.overtime_multiple(&calendar, at("2026-04-13 09:00")),
            3.5
        );
    }

    #[test]
    fn suspension_stops_the_clock_and_resume_restarts_it() {
        let calendar = WorkCalendar::default();
        let mut clock = handling("2026-04-10 09:00", 240);
        clock.suspend(at("2026-04-10 10:00")).unwrap();
        assert!(clock.is_suspended());
        assert_eq!(clock.deadline(&calendar), None, "no deadline while paused");
        // Paused over the weekend and Monday morning; nothing counts.
        assert_eq!(clock.used_minutes(&calendar, at("2026-04-13 11:00")), 60);
        clock.resume(at("2026-04-13 11:00")).unwrap();
        // Three hours left from Monday 11:00: 1 h before lunch, 2 h after.
        assert_eq!(clock.deadline(&calendar), Some(at("2026-04-13 16:00")));
        assert_eq!(clock.used_minutes(&calendar, at("2026-04-13 15:00")), 180);
        // Suspended Friday 10-12 and 14-18, Monday 8-11.
        assert_eq!(
            clock.suspended_seconds(&calendar, at("2026-04-13 15:00")) / 60,
            120 + 240 + 180
        );
        assert_eq!(
            clock.resume(at("2026-04-13 12:00")),
            Err(ClockError::NotSuspended)
        );
    }

    #[test]
    fn a_suspension_after_the_deadline_leaves_the_deadline_alone() {
        let calendar = WorkCalendar::default();
        let mut clock = handling("2026-04-10 09:00", 60);
        clock.suspend(at("2026-04-10 11:00")).unwrap();
        assert_eq!(clock.deadline(&calendar), Some(at("2026-04-10 10:00")));
        assert!(clock.is_overdue(&calendar, at("2026-04-13 09:00")));
        assert_eq!(
            clock.overtime_multiple(&calendar, at("2026-04-20 09:00")),
            1.0
        );
    }

    #[test]
    fn an_extension_moves_the_deadline() {
        let calendar = WorkCalendar::default();
        let mut clock = handling("2026-04-10 16:00", 120);
        assert_eq!(clock.deadline(&calendar), Some(at("2026-04-10 18:00")));
        clock
            .apply(ClockEffect::Extend(480), at("2026-04-10 17:00"))
            .unwrap();
        assert_eq!(clock.total_limit_minutes(), 600);
        assert_eq!(clock.deadline(&calendar), Some(at("2026-04-13 18:00")));
        assert!(!clock.is_overdue(&calendar, at("2026-04-13 10:00")));
        assert_eq!(clock.extend(0), Err(ClockError::ZeroExtension));
    }

    #[test]
    fn the_emergency_clock_runs_through_the_night() {
        let calendar = WorkCalendar::default();
        let clock = StageClock::start(
            SlaStage::Handling,
            ClockKind::Continuous24h,
            at("2026-04-10 22:30"),
            minutes(120),
        );
        assert_eq!(clock.deadline(&calendar), Some(at("2026-04-11 00:30")));
        assert_eq!(clock.used_minutes(&calendar, at("2026-04-11 00:00")), 90);
        assert!(clock.is_overdue(&calendar, at("2026-04-11 01:00")));
        assert_eq!(
            clock.overtime_multiple(&calendar, at("2026-04-11 02:30")),
            1.0
        );
    }

    #[test]
    fn a_clock_started_on_a_holiday_waits_for_the_first_working_minute() {
        let calendar = CalendarConfig {
            holidays: vec!["2026-10-01/2026-10-07".to_string()],
            ..CalendarConfig::default()
        }
        .build()
        .unwrap();
        let clock = handling("2026-10-02 10:00", 30);
        assert_eq!(clock.deadline(&calendar), Some(at("2026-10-08 08:30")));
        assert_eq!(clock.used_minutes(&calendar, at("2026-10-07 23:59")), 0);
    }

    #[test]
    fn stop_freezes_the_used_time_and_closes_an_open_suspension() {
        let calendar = WorkCalendar::default();
        let mut clock = handling("2026-04-10 09:00", 120);
        clock
            .apply(ClockEffect::Suspend, at("2026-04-10 10:00"))
            .unwrap();
        clock
            .apply(ClockEffect::Stop, at("2026-04-10 15:00"))
            .unwrap();
        assert_eq!(clock.suspensions()[0].until, Some(at("2026-04-10 15:00")));
        assert_eq!(clock.used_minutes(&calendar, at("2026-04-20 09:00")), 60);
        assert!(!clock.is_overdue(&calendar, at("2026-04-20 09:00")));
        assert!(matches!(
            clock.suspend(at("2026-04-10 16:00")),
            Err(ClockError::Stopped { .. })
        ));
        assert!(matches!(clock.extend(10), Err(ClockError::Stopped { .. })));
    }

    #[test]
    fn changes_must_come_in_time_order() {
        let mut clock = handling("2026-04-10 09:00", 120);
        assert!(matches!(
            clock.suspend(at("2026-04-10 08:00")),
            Err(ClockError::OutOfOrder { .. })
        ));
        clock.suspend(at("2026-04-10 10:00")).unwrap();
        assert!(matches!(
            clock.suspend(at("2026-04-10 10:30")),
            Err(ClockError::AlreadySuspended { .. })
        ));
        assert!(matches!(
            clock.resume(at("2026-04-10 09:30")),
            Err(ClockError::OutOfOrder { .. })
        ));
        clock.resume(at("2026-04-10 10:00")).unwrap();
        assert!(matches!(
            clock.stop(at("2026-04-10 09:59")),
            Err(ClockError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn the_persisted_form_is_plain_json_and_recomputes_the_same() {
        let calendar = WorkCalendar::default();
        let mut clock = handling("2026-04-10 09:00", 240);
        clock.suspend(at("2026-04-10 10:00")).unwrap();
        clock.resume(at("2026-04-13 11:00")).unwrap();
        clock.extend(60).unwrap();
        let json = serde_json::to_string(&clock).unwrap();
        assert_eq!(
            json,
            r#"{"stage":"handling","kind":"working_time","started_at":"2026-04-10T01:00:00Z","limit_minutes":240,"extension_minutes":60,"suspensions":[{"from":"2026-04-10T02:00:00Z","until":"2026-04-13T03:00:00Z"}]}"#
        );
        let back: StageClock = serde_json::from_str(&json).unwrap();
        assert_eq!(back, clock);
        // 300 minutes: 60 on Friday, then Monday 11-12 and 14-17.
        assert_eq!(back.deadline(&calendar), Some(at("2026-04-13 17:00")));
        let zero_limit = json.replace("\"limit_minutes\":240", "\"limit_minutes\":0");
        assert!(serde_json::from_str::<StageClock>(&zero_limit).is_err());
    }
}
