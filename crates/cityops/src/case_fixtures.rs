//! Test fixtures shared by the relay, scheduler and audit tests: a store with cases filed and moved
//! through the real state machine, as the API will do it.

use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cityops_core::case::{Action, CaseState, Role, Source, transition};
use cityops_core::sla::{ClockEffect, ClockKind, SlaStage, StageClock, WorkCalendar};
use cityops_store::Store;
use cityops_store::cases::{Case, CaseChange, ClockChanges, NewCase, SlaPolicy};

/// Local time at +08:00 ("2026-04-10 09:00" is a Friday morning, inside working hours).
pub fn t(local: &str) -> DateTime<Utc> {
    DateTime::parse_from_str(&format!("{local} +0800"), "%Y-%m-%d %H:%M %z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A stage clock of `minutes` working minutes started at `at`.
pub fn clock(stage: SlaStage, at: DateTime<Utc>, minutes: u32) -> StageClock {
    StageClock::start(
        stage,
        ClockKind::WorkingTime,
        at,
        NonZeroU32::new(minutes).unwrap(),
    )
}

pub fn new_case(at: DateTime<Utc>) -> NewCase {
    NewCase {
        category: "C0101".to_string(),
        source: Source::Inspector,
        title: String::new(),
        description: "manhole cover missing".to_string(),
        address: "Donghuamen".to_string(),
        lon: 116.41,
        lat: 39.91,
        grid: None,
        reporter: "insp-07".to_string(),
        reporter_role: Some(Role::Inspector),
        verification_required: false,
        incident_id: None,
        device_id: None,
        initial: CaseState::Reported,
        // 30 working minutes to accept.
        clock: Some(clock(SlaStage::Acceptance, at, 30)),
    }
}

/// A store with the default working calendar.
pub struct Cases {
    pub store: Store,
    pub calendar: Arc<WorkCalendar>,
}

impl Cases {
    pub async fn memory() -> Self {
        Self::open("sqlite::memory:").await
    }

    pub async fn open(url: &str) -> Self {
        Self {
            store: Store::open(url).await.unwrap(),
            calendar: Arc::new(WorkCalendar::default()),
        }
    }

    pub async fn report(&self, at: DateTime<Utc>) -> Case {
        self.store
            .create_case(&new_case(at), &SlaPolicy::new(&self.calendar), at)
            .await
            .unwrap()
    }

    /// Decides `action` with the state machine, then records it.
    pub async fn act(&self, case: &Case, action: Action, role: Role, at: DateTime<Utc>) -> Case {
        let context = case.context().acting(Some("op-1"), None);
        let decided = transition(case.state, &action, role, &context).unwrap();
        let next = match decided.clock {
            ClockEffect::Start(stage) => Some(clock(stage, at, 60)),
            _ => None,
        };
        self.store
            .apply_transition(&CaseChange {
                case_id: case.id,
                expected_version: Some(case.version),
                action: &action,
                transition: &decided,
                actor: "op-1",
                role,
                note: None,
                evidence: &[],
                clocks: ClockChanges {
                    policy: SlaPolicy::new(&self.calendar),
                    next,
                },
                at,
            })
            .await
            .unwrap()
    }
}
