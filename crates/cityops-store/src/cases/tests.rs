//! Tests of the case repository on SQLite: numbering, whole lifecycles, conflicts, one transaction per
//! change, the audit chain against tampering, clocks across restarts, due timers, the list, the outbox.
//!
//! Every instant is explicit (local time at +08:00 on the default working calendar: 08:00-12:00 and
//! 14:00-18:00, Monday to Friday); 2026-04-10 is a Friday. The workflow decisions come from the real
//! state machine of cityops-core, as the API will make them.

use std::num::NonZeroU32;

use chrono::{DateTime, TimeDelta, Utc};
use cityops_core::case::{Action, ClosureType, transition};
use cityops_core::sla::{ClockKind, SlaStage, WorkCalendar};

use super::*;
use crate::testing::{TestDb, conformance};

const PHOTO: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const CELL: &str = "110101001001001";

fn t(local: &str) -> DateTime<Utc> {
    DateTime::parse_from_str(&format!("{local} +0800"), "%Y-%m-%d %H:%M %z")
        .unwrap()
        .with_timezone(&Utc)
}

fn ms(local: &str) -> UnixMillis {
    t(local).timestamp_millis()
}

fn plus(at: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    at + TimeDelta::minutes(minutes)
}

/// The limits of this test city, in working minutes.
fn limit(stage: SlaStage) -> u32 {
    match stage {
        SlaStage::Handling => 120,
        SlaStage::Closing => 60,
        SlaStage::Callback => 480,
        _ => 30,
    }
}

fn clock(stage: SlaStage, at: DateTime<Utc>) -> StageClock {
    StageClock::start(
        stage,
        ClockKind::WorkingTime,
        at,
        NonZeroU32::new(limit(stage)).unwrap(),
    )
}

fn actor(role: Role) -> &'static str {
    match role {
        Role::Operator => "op-1",
        Role::ShiftLead => "lead-1",
        Role::Dispatcher => "disp-1",
        Role::DepartmentHandler => "handler-1",
        Role::Inspector => "insp-07",
        Role::Supervisor => "sup-1",
        Role::Admin => "admin",
    }
}

fn new_case(category: &str, at: DateTime<Utc>) -> NewCase {
    NewCase {
        category: category.to_string(),
        source: Source::Inspector,
        title: String::new(),
        description: "井盖缺失 manhole cover missing".to_string(),
        address: "东城区东华门街道 Donghuamen".to_string(),
        lon: 116.41,
        lat: 39.91,
        grid: Some(GridPlace::Inside {
            cell: CELL.to_string(),
            street: "110101001".to_string(),
            community: "110101001001".to_string(),
        }),
        reporter: "insp-07".to_string(),
        reporter_role: Some(Role::Inspector),
        verification_required: false,
        incident_id: None,
        device_id: None,
        initial: CaseState::Reported,
        clock: Some(clock(SlaStage::Acceptance, at)),
    }
}

struct World {
    store: Store,
    calendar: WorkCalendar,
}

impl World {
    /// The store on `db`, opened (again) as at a start.
    async fn open(db: &TestDb) -> Self {
        Self {
            store: db.open().await,
            calendar: WorkCalendar::default(),
        }
    }

    fn sla(&self) -> SlaPolicy<'_> {
        SlaPolicy::new(&self.calendar)
    }

    async fn create(&self, new: &NewCase, at: DateTime<Utc>) -> Case {
        self.store.create_case(new, &self.sla(), at).await.unwrap()
    }

    async fn report(&self, category: &str, at: DateTime<Utc>) -> Case {
        self.create(&new_case(category, at), at).await
    }

    /// Decides `action` with the state machine as the API would, then records it.
    async fn try_act(
        &self,
        case: &Case,
        action: Action,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<Case, CaseStoreError> {
        let department = (role == Role::DepartmentHandler)
            .then(|| case.department.clone())
            .flatten();
        let context = case
            .context()
            .acting(Some(actor(role)), department.as_deref());
        let decided = transition(case.state, &action, role, &context)
            .unwrap_or_else(|e| panic!("the machine refused {action:?}: {e}"));
        let next = match decided.clock {
            ClockEffect::Start(stage) => Some(clock(stage, at)),
            _ => None,
        };
        let result = self
            .store
            .apply_transition(&CaseChange {
                case_id: case.id,
                expected_version: Some(case.version),
                action: &action,
                transition: &decided,
                actor: actor(role),
                role,
                note: None,
                evidence: &[],
                clocks: ClockChanges {
                    policy: self.sla(),
                    next,
                },
                at,
            })
            .await;
        // The store builds the changed case without reading it back: it must be what a read finds.
        if let Ok(after) = &result {
            assert_eq!(*after, self.store.case(case.id).await.unwrap());
        }
        result
    }

    async fn act(&self, case: &Case, action: Action, role: Role, at: DateTime<Utc>) -> Case {
        self.try_act(case, action, role, at).await.unwrap()
    }

    /// report → accept → register → dispatch → handle → check pass → close, from `case` (reported).
    async fn close_normally(&self, case: &Case, start: DateTime<Utc>) -> Case {
        let mut case = case.clone();
        for (minutes, action, role) in lifecycle() {
            case = self.act(&case, action, role, plus(start, minutes)).await;
        }
        case
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }

    async fn sql(&self, sql: &str) {
        sqlx::query(sql).execute(self.store.pool()).await.unwrap();
    }

    async fn due(&self, local: &str) -> Vec<DueClock> {
        self.store.due_clock_events(t(local), 100).await.unwrap()
    }
}

/// The ordinary path after the report: (minutes after the report, action, role).
fn lifecycle() -> Vec<(i64, Action, Role)> {
    vec![
        (10, Action::Accept, Role::Operator),
        (20, Action::Register, Role::ShiftLead),
        (
            30,
            Action::Dispatch {
                department: "sanitation".to_string(),
            },
            Role::Dispatcher,
        ),
        (
            90,
            Action::Handle {
                feedback: "cover replaced".to_string(),
                evidence: vec![PHOTO.to_string()],
            },
            Role::DepartmentHandler,
        ),
        (100, Action::CheckPass, Role::Inspector),
        (
            110,
            Action::Close {
                closure: ClosureType::Normal,
            },
            Role::ShiftLead,
        ),
    ]
}

// ---- numbering ----

async fn numbers_run_per_category_and_local_day(db: TestDb) {
    let w = World::open(&db).await;
    let mut numbers = Vec::new();
    for minute in 0..3 {
        let at = plus(t("2026-04-10 09:00"), minute);
        numbers.push(w.report("E0503", at).await.number.to_string());
    }
    numbers.push(
        w.report("C0101", t("2026-04-10 09:05"))
            .await
            .number
            .to_string(),
    );
    numbers.push(
        w.report("E0503", t("2026-04-10 23:59"))
            .await
            .number
            .to_string(),
    );
    // 00:01 in Beijing is still the 10th in UTC: the local date decides.
    let next_day = w.report("E0503", t("2026-04-11 00:01")).await;
    numbers.push(next_day.number.to_string());
    assert_eq!(
        numbers,
        [
            "E05032026041001",
            "E05032026041002",
            "E05032026041003",
            "C01012026041001",
            "E05032026041004",
            "E05032026041101",
        ]
    );
    let found = w.store.case_by_number("E05032026041101").await.unwrap();
    assert_eq!(found, next_day);
    assert_eq!(found.category_code, "E0503");
    assert_eq!(found.class, CategoryClass::Event);
    assert!(matches!(
        w.store.case_by_number("E05032026041199").await,
        Err(CaseStoreError::NotFound(_))
    ));
}

async fn numbers_stay_unique_under_concurrent_creates(db: TestDb) {
    let w = World::open(&db).await;
    let at = t("2026-04-10 10:00");
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let store = w.store.clone();
        let calendar = w.calendar.clone();
        tasks.push(tokio::spawn(async move {
            let sla = SlaPolicy::new(&calendar);
            store
                .create_case(&new_case("E0401", at), &sla, at)
                .await
                .unwrap()
        }));
    }
    let mut sequences = Vec::new();
    for task in tasks {
        sequences.push(task.await.unwrap().number.sequence());
    }
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=40).collect::<Vec<u32>>());
    assert_eq!(w.count("cases").await, 40);
    assert_eq!(w.count("case_audit").await, 40);
    assert_eq!(w.count("outbox").await, 40);
}

async fn bad_new_cases_are_refused_and_change_nothing(db: TestDb) {
    let w = World::open(&db).await;
    let at = t("2026-04-10 09:00");
    let cases: Vec<(&str, NewCase)> = vec![
        ("category", new_case("X0101", at)),
        (
            "description",
            NewCase {
                description: "  ".to_string(),
                ..new_case("E0503", at)
            },
        ),
        (
            "reporter",
            NewCase {
                reporter: String::new(),
                ..new_case("E0503", at)
            },
        ),
        (
            "longitude",
            NewCase {
                lon: 200.0,
                ..new_case("E0503", at)
            },
        ),
        (
            "registered or reported",
            NewCase {
                initial: CaseState::Dispatched,
                clock: None,
                ..new_case("E0503", at)
            },
        ),
        (
            "acceptance clock",
            NewCase {
                clock: Some(clock(SlaStage::Dispatch, at)),
                ..new_case("E0503", at)
            },
        ),
        (
            "instant of the change",
            NewCase {
                clock: Some(clock(SlaStage::Acceptance, plus(at, -5))),
                ..new_case("E0503", at)
            },
        ),
    ];
    for (what, new) in cases {
        let err = w.store.create_case(&new, &w.sla(), at).await.unwrap_err();
        assert!(matches!(err, CaseStoreError::Invalid(_)), "{what}: {err}");
    }
    for table in [
        "cases",
        "case_audit",
        "case_clocks",
        "outbox",
        "case_sequences",
    ] {
        assert_eq!(w.count(table).await, 0, "{table}");
    }
}

// ---- the lifecycle ----

async fn a_whole_lifecycle_is_recorded_one_audit_record_and_one_event_per_step(db: TestDb) {
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let mut case = w.report("C0101", start).await;
    assert_eq!((case.state, case.version), (CaseState::Reported, 1));
    let acceptance = case.clock.clone().unwrap();
    assert_eq!(acceptance.stage, SlaStage::Acceptance);
    assert_eq!(acceptance.deadline_at, Some(ms("2026-04-10 09:30")));
    assert_eq!(acceptance.warning_at, Some(ms("2026-04-10 09:24")));

    let expected = [
        (CaseState::Accepted, Some(SlaStage::Registration)),
        (CaseState::Registered, Some(SlaStage::Dispatch)),
        (CaseState::Dispatched, Some(SlaStage::Handling)),
        (CaseState::Handled, Some(SlaStage::Check)),
        (CaseState::Checked, Some(SlaStage::Closing)),
        (CaseState::Closed, None),
    ];
    for ((minutes, action, role), (state, stage)) in lifecycle().into_iter().zip(expected) {
        let (audits, events) = (w.count("case_audit").await, w.count("outbox").await);
        let before = case.version;
        case = w.act(&case, action, role, plus(start, minutes)).await;
        assert_eq!(case.state, state);
        assert_eq!(case.version, before + 1);
        assert_eq!(case.clock.as_ref().map(|c| c.stage), stage, "{state}");
        assert_eq!(w.count("case_audit").await, audits + 1, "{state}");
        assert_eq!(w.count("outbox").await, events + 1, "{state}");
        assert_eq!(w.store.case(case.id).await.unwrap(), case);
    }
    assert_eq!(case.department.as_deref(), Some("sanitation"));
    assert_eq!(case.closure, Some(ClosureType::Normal));
    assert_eq!(case.closed_at, Some(ms("2026-04-10 10:50")));
    assert_eq!(case.updated_at, ms("2026-04-10 10:50"));
    assert_eq!(
        (
            case.rework_count,
            case.wrong_dispatch_count,
            case.extension_count,
            case.reopen_count
        ),
        (0, 0, 0, 0)
    );

    let timeline = w.store.timeline(case.id).await.unwrap();
    let steps: Vec<(&str, Option<CaseState>, CaseState)> = timeline
        .iter()
        .map(|r| (r.action.as_str(), r.from_state, r.to_state))
        .collect();
    assert_eq!(
        steps,
        [
            ("report", None, CaseState::Reported),
            ("accept", Some(CaseState::Reported), CaseState::Accepted),
            ("register", Some(CaseState::Accepted), CaseState::Registered),
            (
                "dispatch",
                Some(CaseState::Registered),
                CaseState::Dispatched
            ),
            ("handle", Some(CaseState::Dispatched), CaseState::Handled),
            ("check_pass", Some(CaseState::Handled), CaseState::Checked),
            ("close", Some(CaseState::Checked), CaseState::Closed),
        ]
    );
    assert_eq!(timeline[0].prev_hash, GENESIS_HASH);
    for pair in timeline.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    let handled = &timeline[4];
    assert_eq!(handled.role, Some(Role::DepartmentHandler));
    assert_eq!(handled.actor, "handler-1");
    assert_eq!(handled.note.as_deref(), Some("cover replaced"));
    assert_eq!(handled.evidence, [PHOTO]);
    assert_eq!(handled.payload["action"]["action"], "handle");
    assert_eq!(timeline[0].role, Some(Role::Inspector));
    assert_eq!(timeline[0].payload["number"], case.number.to_string());

    let verdict = w.store.verify_audit(case.id).await.unwrap();
    assert_eq!(
        verdict,
        AuditVerdict {
            ok: true,
            records: 7,
            first_bad: None
        }
    );

    let events = w.store.pending_outbox(100).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        names,
        [
            "case.created",
            "case.accepted",
            "case.registered",
            "case.dispatched",
            "case.handled",
            "case.checked",
            "case.closed",
        ]
    );
    let dispatched = &events[3];
    assert_eq!(dispatched.case_id, Some(case.id));
    assert_eq!(dispatched.payload["case"]["department"], "sanitation");
    assert_eq!(dispatched.payload["case"]["version"], 4);
    assert_eq!(dispatched.payload["case"]["clock"]["stage"], "handling");
    assert_eq!(dispatched.payload["audit_seq"], 4);
    assert_eq!(dispatched.payload["actor"], "disp-1");

    // Every stage ran its own clock, and all of them stopped at the end.
    let clocks = w.store.case_clocks(case.id).await.unwrap();
    let stages: Vec<SlaStage> = clocks.iter().map(|c| c.stage).collect();
    assert_eq!(
        stages,
        [
            SlaStage::Acceptance,
            SlaStage::Registration,
            SlaStage::Dispatch,
            SlaStage::Handling,
            SlaStage::Check,
            SlaStage::Closing,
        ]
    );
    assert!(clocks.iter().all(|c| !c.active && c.clock.is_stopped()));
    assert!(clocks.iter().all(|c| c.deadline_at.is_none()));
    assert_eq!(
        clocks[3].clock.stopped_at(),
        Some(t("2026-04-10 10:30")),
        "handling ran from dispatch to the feedback"
    );
}

async fn returns_reworks_callbacks_and_reopenings_are_counted(db: TestDb) {
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let new = NewCase {
        source: Source::Citizen,
        reporter: "citizen-13800000000".to_string(),
        reporter_role: None,
        ..new_case("E0101", start)
    };
    let mut case = w.create(&new, start).await;
    let dispatch = |department: &str| Action::Dispatch {
        department: department.to_string(),
    };
    let handle = || Action::Handle {
        feedback: "cleaned".to_string(),
        evidence: vec![PHOTO.to_string()],
    };
    let steps = vec![
        (Action::Accept, Role::Operator),
        (Action::Register, Role::ShiftLead),
        (dispatch("water"), Role::Dispatcher),
        (
            Action::Return {
                reason: "not a water matter".to_string(),
            },
            Role::DepartmentHandler,
        ),
        (dispatch("sanitation"), Role::Dispatcher),
        (handle(), Role::DepartmentHandler),
        (
            Action::CheckFail {
                reason: "still dirty".to_string(),
            },
            Role::Inspector,
        ),
        (dispatch("sanitation"), Role::Dispatcher),
        (handle(), Role::DepartmentHandler),
        (Action::CheckPass, Role::Inspector),
        (
            Action::Close {
                closure: ClosureType::Normal,
            },
            Role::ShiftLead,
        ),
    ];
    for (i, (action, role)) in steps.into_iter().enumerate() {
        case = w
            .act(&case, action, role, plus(start, 5 * (i as i64 + 1)))
            .await;
    }
    assert_eq!(case.state, CaseState::Closed);
    assert_eq!((case.rework_count, case.wrong_dispatch_count), (1, 1));
    // A citizen is called back: closing starts the callback clock.
    assert_eq!(
        case.clock.as_ref().map(|c| c.stage),
        Some(SlaStage::Callback)
    );
    case = w
        .act(
            &case,
            Action::Callback {
                satisfaction: 4,
                note: "满意".to_string(),
            },
            Role::Operator,
            t("2026-04-10 11:00"),
        )
        .await;
    assert_eq!(
        (case.state, case.satisfaction),
        (CaseState::Evaluated, Some(4))
    );
    assert!(case.clock.is_none());
    case = w
        .act(
            &case,
            Action::Reopen {
                reason: "garbage is back".to_string(),
            },
            Role::Supervisor,
            t("2026-04-10 11:10"),
        )
        .await;
    assert_eq!(case.state, CaseState::Registered);
    assert_eq!(case.reopen_count, 1);
    assert_eq!(
        (case.closed_at, case.closure, case.satisfaction),
        (None, None, None)
    );
    assert_eq!(
        case.clock.as_ref().map(|c| c.stage),
        Some(SlaStage::Dispatch)
    );
    assert_eq!(case.department.as_deref(), Some("sanitation"), "a hint");
    let timeline = w.store.timeline(case.id).await.unwrap();
    assert_eq!(timeline.len(), 14);
    assert_eq!(timeline[0].role, None, "a citizen has no role");
    assert_eq!(timeline[4].note.as_deref(), Some("not a water matter"));
    assert_eq!(timeline[12].note.as_deref(), Some("满意"));
    assert!(w.store.verify_audit(case.id).await.unwrap().ok);
    let last = w.store.pending_outbox(100).await.unwrap();
    assert_eq!(last.last().unwrap().event_type, "case.reopened");
    assert_eq!(last[4].event_type, "case.returned");
    assert_eq!(last[7].event_type, "case.check_failed");
    assert_eq!(last[12].event_type, "case.evaluated");
}

async fn an_emergency_can_start_registered_on_a_24_hour_clock(db: TestDb) {
    let w = World::open(&db).await;
    let at = t("2026-04-11 02:00"); // a Saturday night
    let new = NewCase {
        source: Source::Sensor,
        reporter: "wl-0042".to_string(),
        reporter_role: None,
        device_id: Some(DeviceId::new("wl-0042").unwrap()),
        incident_id: Some(7),
        initial: CaseState::Registered,
        clock: Some(StageClock::start(
            SlaStage::Dispatch,
            ClockKind::Continuous24h,
            at,
            NonZeroU32::new(15).unwrap(),
        )),
        ..new_case("E0501", at)
    };
    let case = w.create(&new, at).await;
    assert_eq!(case.state, CaseState::Registered);
    assert_eq!(case.incident_id, Some(7));
    assert_eq!(
        case.device_id.as_ref().map(DeviceId::as_str),
        Some("wl-0042")
    );
    assert_eq!(
        case.clock.as_ref().unwrap().deadline_at,
        Some(ms("2026-04-11 02:15"))
    );
    let timeline = w.store.timeline(case.id).await.unwrap();
    assert_eq!(
        (timeline[0].action.as_str(), timeline[0].to_state),
        ("report", CaseState::Registered)
    );
    let case = w
        .act(
            &case,
            Action::Dispatch {
                department: "drainage".to_string(),
            },
            Role::Dispatcher,
            plus(at, 5),
        )
        .await;
    assert_eq!(case.state, CaseState::Dispatched);
}

// ---- conflicts and failures ----

async fn a_stale_version_or_state_is_a_conflict_and_changes_nothing(db: TestDb) {
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let reported = w.report("C0101", start).await;
    let accepted = w
        .act(&reported, Action::Accept, Role::Operator, plus(start, 1))
        .await;
    let counts = (w.count("case_audit").await, w.count("outbox").await);

    // Someone read version 1 and registers on it: the version moved on.
    let decided = transition(
        CaseState::Accepted,
        &Action::Register,
        Role::ShiftLead,
        &accepted.context(),
    )
    .unwrap();
    let stale = CaseChange {
        case_id: accepted.id,
        expected_version: Some(1),
        action: &Action::Register,
        transition: &decided,
        actor: "lead-1",
        role: Role::ShiftLead,
        note: None,
        evidence: &[],
        clocks: ClockChanges::start(w.sla(), clock(SlaStage::Dispatch, plus(start, 2))),
        at: plus(start, 2),
    };
    match w.store.apply_transition(&stale).await {
        Err(CaseStoreError::Conflict { expected, found }) => {
            assert_eq!(
                expected,
                CaseRevision {
                    version: Some(1),
                    state: CaseState::Accepted
                }
            );
            assert_eq!(found, accepted.revision());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A second operator accepts the same report without naming a version: the state moved on.
    let err = w
        .try_act(&reported, Action::Accept, Role::Operator, plus(start, 2))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected version 1 in state reported, found version 2 in state accepted"),
        "{err}"
    );
    let mut without_version = stale.clone();
    without_version.expected_version = None;
    assert!(w.store.apply_transition(&without_version).await.is_ok());

    let missing = CaseChange {
        case_id: 999,
        ..stale
    };
    assert!(matches!(
        w.store.apply_transition(&missing).await,
        Err(CaseStoreError::NotFound(_))
    ));
    assert_eq!(w.count("case_audit").await, counts.0 + 1);
    assert_eq!(w.count("outbox").await, counts.1 + 1);
}

async fn a_failure_inside_the_transaction_leaves_nothing_behind(db: TestDb) {
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let case = w.report("C0101", start).await;
    let case = w
        .act(&case, Action::Accept, Role::Operator, plus(start, 1))
        .await;
    let snapshot = |w: &World, id: CaseId| {
        let store = w.store.clone();
        async move {
            (
                store.case(id).await.unwrap(),
                store.timeline(id).await.unwrap(),
                store.case_clocks(id).await.unwrap(),
                store.pending_outbox(100).await.unwrap(),
            )
        }
    };
    let before = snapshot(&w, case.id).await;

    // The outbox insert is the last write of a change: make it fail after everything else was written.
    for sql in db.break_inserts("outbox", "fail_outbox") {
        w.sql(&sql).await;
    }
    let err = w
        .try_act(&case, Action::Register, Role::ShiftLead, plus(start, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, CaseStoreError::Unexpected(_)), "{err}");
    assert_eq!(snapshot(&w, case.id).await, before);

    // A failure only at the commit (a deferred check) is the change's failure too: the caller is not
    // told it was recorded (on PostgreSQL a transition is one statement committed on its own).
    w.sql(&db.drop_trigger("outbox", "fail_outbox")).await;
    if let Some(statements) = db.break_commits_inserting("outbox", "fail_outbox_at_commit") {
        for sql in statements {
            w.sql(&sql).await;
        }
        let err = w
            .try_act(&case, Action::Register, Role::ShiftLead, plus(start, 2))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("broken at commit")
                || format!("{err:?}").contains("broken at commit"),
            "{err:?}"
        );
        assert_eq!(snapshot(&w, case.id).await, before);
        w.sql(&db.drop_trigger("outbox", "fail_outbox_at_commit"))
            .await;
    }

    // A clock change that does not fit the transition is refused before anything is written.
    let register = Action::Register;
    let decided = transition(
        case.state,
        &register,
        Role::ShiftLead,
        &case.context().acting(Some("lead-1"), None),
    )
    .unwrap();
    let at = plus(start, 3);
    let change = |next: Option<StageClock>| CaseChange {
        case_id: case.id,
        expected_version: Some(case.version),
        action: &register,
        transition: &decided,
        actor: "lead-1",
        role: Role::ShiftLead,
        note: None,
        evidence: &[],
        clocks: ClockChanges {
            policy: w.sla(),
            next,
        },
        at,
    };
    for (what, next) in [
        ("another stage", Some(clock(SlaStage::Handling, at))),
        (
            "another instant",
            Some(clock(SlaStage::Dispatch, plus(at, 1))),
        ),
    ] {
        let err = w.store.apply_transition(&change(next)).await.unwrap_err();
        assert!(matches!(err, CaseStoreError::Invalid(_)), "{what}: {err}");
    }
    let wrong_action = CaseChange {
        action: &Action::Accept,
        ..change(Some(clock(SlaStage::Dispatch, at)))
    };
    assert!(matches!(
        w.store.apply_transition(&wrong_action).await,
        Err(CaseStoreError::Invalid(_))
    ));
    let wrong_role = CaseChange {
        role: Role::Inspector,
        ..change(Some(clock(SlaStage::Dispatch, at)))
    };
    assert!(matches!(
        w.store.apply_transition(&wrong_role).await,
        Err(CaseStoreError::Invalid(_))
    ));
    // A transition the workflow would not decide (here: straight to closed) is never recorded.
    let forged = Transition {
        to: CaseState::Closed,
        ..decided.clone()
    };
    let with_forged = CaseChange {
        transition: &forged,
        ..change(Some(clock(SlaStage::Dispatch, at)))
    };
    let err = w.store.apply_transition(&with_forged).await.unwrap_err();
    assert!(
        err.to_string().contains("not the one the workflow decides"),
        "{err}"
    );
    let bad_evidence = [String::from("not-a-digest")];
    let with_bad_evidence = CaseChange {
        evidence: &bad_evidence,
        ..change(Some(clock(SlaStage::Dispatch, at)))
    };
    assert!(matches!(
        w.store.apply_transition(&with_bad_evidence).await,
        Err(CaseStoreError::Invalid(_))
    ));
    assert_eq!(snapshot(&w, case.id).await, before);

    // And the same change, whole, goes through afterwards: nothing half-written stands in its way.
    let registered = w
        .store
        .apply_transition(&change(Some(clock(SlaStage::Dispatch, at))))
        .await
        .unwrap();
    assert_eq!(registered.state, CaseState::Registered);
    assert!(w.store.verify_audit(case.id).await.unwrap().ok);
}

// ---- the audit chain ----

async fn closed_cases(w: &World, n: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    for i in 0..n {
        let start = plus(t("2026-04-10 08:00"), i as i64);
        let case = w.report("C0101", start).await;
        cases.push(w.close_normally(&case, start).await);
    }
    cases
}

/// What a verdict names first: the record's seq and its fault.
type FirstBad = Option<(i64, AuditFault)>;

async fn drop_audit_guards(w: &World, db: &TestDb) {
    w.sql(&db.drop_trigger("case_audit", "case_audit_no_update"))
        .await;
    w.sql(&db.drop_trigger("case_audit", "case_audit_no_delete"))
        .await;
}

async fn the_audit_table_refuses_updates_and_deletes(db: TestDb) {
    let w = World::open(&db).await;
    let case = w.report("C0101", t("2026-04-10 09:00")).await;
    for sql in [
        "UPDATE case_audit SET note = 'nothing happened'",
        "DELETE FROM case_audit",
    ] {
        let err = sqlx::query(sql).execute(w.store.pool()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert!(w.store.verify_audit(case.id).await.unwrap().ok);
}

async fn a_changed_field_is_named_by_case_and_record(db: TestDb) {
    let w = World::open(&db).await;
    let cases = closed_cases(&w, 4).await;
    drop_audit_guards(&w, &db).await;
    let (a, b, c) = (cases[0].id, cases[1].id, cases[2].id);
    w.sql(&format!(
        "UPDATE case_audit SET note = 'all fine' WHERE case_id = {a} AND seq = 3"
    ))
    .await;
    w.sql(&format!(
        "UPDATE case_audit SET actor = 'lead-2' WHERE case_id = {b} AND seq = 5"
    ))
    .await;
    w.sql(&format!(
        "UPDATE case_audit SET to_state = 'closed' WHERE case_id = {c} AND seq = 4"
    ))
    .await;

    let verdicts = w.store.verify_all_audits().await.unwrap();
    let summary: Vec<(CaseId, bool, FirstBad)> = verdicts
        .into_iter()
        .map(|(id, v)| (id, v.ok, v.first_bad))
        .collect();
    assert_eq!(
        summary,
        [
            (a, false, Some((3, AuditFault::Altered))),
            (b, false, Some((5, AuditFault::Altered))),
            (c, false, Some((4, AuditFault::Altered))),
            (cases[3].id, true, None),
        ]
    );
    let verdict = w.store.verify_audit(a).await.unwrap();
    assert_eq!(verdict.records, 7);
    assert_eq!(
        verdict.first_bad.unwrap().1.to_string(),
        "its content does not match its hash (a field was changed)"
    );
    // A changed hash is caught too: by the record itself, not only by the next one.
    let d = cases[3].id;
    w.sql(&format!(
        "UPDATE case_audit SET hash = '{}' WHERE case_id = {d} AND seq = 2",
        "a".repeat(64)
    ))
    .await;
    assert_eq!(
        w.store.verify_audit(d).await.unwrap().first_bad,
        Some((2, AuditFault::Altered))
    );
}

async fn removed_inserted_and_reordered_records_are_caught(db: TestDb) {
    let w = World::open(&db).await;
    let cases = closed_cases(&w, 5).await;
    drop_audit_guards(&w, &db).await;
    let ids: Vec<CaseId> = cases.iter().map(|c| c.id).collect();

    // A record removed from the middle.
    w.sql(&format!(
        "DELETE FROM case_audit WHERE case_id = {} AND seq = 4",
        ids[0]
    ))
    .await;
    // The last record removed.
    w.sql(&format!(
        "DELETE FROM case_audit WHERE case_id = {} AND seq = 7",
        ids[1]
    ))
    .await;
    // A record appended behind the repository's back, linked properly to the last one.
    w.sql(&format!(
        "INSERT INTO case_audit (case_id, seq, at, actor, role, action, from_state, to_state, note, evidence, \
         payload, prev_hash, hash) SELECT case_id, 8, at, 'lead-1', role, 'reopen', 'closed', 'registered', \
         NULL, '[]', '{{}}', hash, '{}' FROM case_audit WHERE case_id = {} AND seq = 7",
        "b".repeat(64),
        ids[2]
    ))
    .await;
    // Two records swapped.
    for sql in [
        "UPDATE case_audit SET seq = 1000 WHERE case_id = {id} AND seq = 2",
        "UPDATE case_audit SET seq = 2 WHERE case_id = {id} AND seq = 3",
        "UPDATE case_audit SET seq = 3 WHERE case_id = {id} AND seq = 1000",
    ] {
        w.sql(&sql.replace("{id}", &ids[3].to_string())).await;
    }
    // A record inserted in the middle, the later ones moved up to make room.
    for seq in (4..=7).rev() {
        w.sql(&format!(
            "UPDATE case_audit SET seq = {} WHERE case_id = {} AND seq = {seq}",
            seq + 1,
            ids[4]
        ))
        .await;
    }
    w.sql(&format!(
        "INSERT INTO case_audit (case_id, seq, at, actor, role, action, from_state, to_state, note, evidence, \
         payload, prev_hash, hash) SELECT case_id, 4, at, actor, role, action, from_state, to_state, \
         'inserted', evidence, payload, hash, hash FROM case_audit WHERE case_id = {} AND seq = 3",
        ids[4]
    ))
    .await;

    let verdicts = w.store.verify_all_audits().await.unwrap();
    let first_bad: Vec<FirstBad> = verdicts.into_iter().map(|(_, v)| v.first_bad).collect();
    assert_eq!(
        first_bad,
        [
            Some((4, AuditFault::Missing { next: 5 })),
            Some((7, AuditFault::Truncated { head_seq: 7 })),
            Some((8, AuditFault::BeyondHead { head_seq: 7 })),
            Some((2, AuditFault::BrokenLink)),
            Some((4, AuditFault::Altered)),
        ]
    );
}

// ---- clocks ----

async fn clocks_survive_a_restart_with_the_same_deadline(db: TestDb) {
    let start = t("2026-04-10 16:30");
    let (id, running) = {
        let w = World::open(&db).await;
        let case = w.report("C0101", start).await;
        let case = w
            .act(&case, Action::Accept, Role::Operator, plus(start, 5))
            .await;
        let case = w
            .act(&case, Action::Register, Role::ShiftLead, plus(start, 10))
            .await;
        // Dispatched at 17:00 on a Friday with two working hours: one today, one on Monday.
        let case = w
            .act(
                &case,
                Action::Dispatch {
                    department: "municipal".to_string(),
                },
                Role::Dispatcher,
                t("2026-04-10 17:00"),
            )
            .await;
        let running = case.clock.clone().unwrap();
        assert_eq!(running.deadline_at, Some(ms("2026-04-13 09:00")));
        w.store.close().await;
        (case.id, running)
    };

    let w = World::open(&db).await;
    let case = w.store.case(id).await.unwrap();
    assert_eq!(case.clock.as_ref(), Some(&running));
    assert_eq!(
        case.clock.as_ref().unwrap().clock.deadline(&w.calendar),
        Some(t("2026-04-13 09:00")),
        "the persisted clock recomputes the same deadline"
    );
    assert!(w.due("2026-04-13 08:00").await.is_empty());
    let due = w.due("2026-04-13 09:01").await;
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].case_id, due[0].kind, due[0].stage, due[0].due_at),
        (
            id,
            DueKind::Overdue,
            SlaStage::Handling,
            ms("2026-04-13 09:00")
        )
    );
    assert!(w.store.verify_audit(id).await.unwrap().ok);
}

async fn due_timers_are_returned_once_and_not_after_marking(db: TestDb) {
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let case = w.report("C0101", start).await; // acceptance: warning 09:24, deadline 09:30
    assert!(w.due("2026-04-10 09:20").await.is_empty());

    let due = w.due("2026-04-10 09:25").await;
    assert_eq!(due.len(), 1);
    let warning = due[0].clone();
    assert_eq!(
        (warning.kind, warning.due_at, warning.number.as_str()),
        (
            DueKind::Warning,
            ms("2026-04-10 09:24"),
            case.number.to_string().as_str()
        )
    );
    let events = w.count("outbox").await;
    assert!(
        w.store
            .mark_clock_notified(&warning, &warning.event(), t("2026-04-10 09:25"))
            .await
            .unwrap()
    );
    assert_eq!(w.count("outbox").await, events + 1);
    // A second scheduler with the same list is too late: no second event.
    assert!(
        !w.store
            .mark_clock_notified(&warning, &warning.event(), t("2026-04-10 09:25"))
            .await
            .unwrap()
    );
    assert_eq!(w.count("outbox").await, events + 1);
    assert!(w.due("2026-04-10 09:29").await.is_empty());

    let due = w.due("2026-04-10 09:31").await;
    assert_eq!(
        due.iter().map(|d| d.kind).collect::<Vec<_>>(),
        [DueKind::Overdue]
    );
    assert!(
        w.store
            .mark_clock_notified(&due[0], &due[0].event(), t("2026-04-10 09:31"))
            .await
            .unwrap()
    );
    assert!(w.due("2026-04-10 17:00").await.is_empty());
    let last = w.store.pending_outbox(100).await.unwrap();
    let names: Vec<&str> = last.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        names,
        ["case.created", "case.sla_warning", "case.sla_overdue"]
    );
    assert_eq!(last[2].payload["stage"], "acceptance");
    assert_eq!(last[2].payload["due_at"], ms("2026-04-10 09:30"));

    // Found late (warning and deadline both passed): one overdue, which settles the warning too.
    let late = w.report("C0102", t("2026-04-10 10:00")).await;
    let due = w.due("2026-04-10 11:00").await;
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].case_id, due[0].kind), (late.id, DueKind::Overdue));
    assert!(
        w.store
            .mark_clock_notified(&due[0], &due[0].event(), t("2026-04-10 11:00"))
            .await
            .unwrap()
    );
    assert!(w.due("2026-04-10 11:00").await.is_empty());

    // A stage that ended no longer fires; the next stage's clock does, as a clock of its own.
    let accepted = w
        .act(&late, Action::Accept, Role::Operator, t("2026-04-10 11:05"))
        .await;
    let due = w.due("2026-04-10 11:40").await;
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].stage, due[0].clock_id),
        (SlaStage::Registration, accepted.clock.unwrap().id)
    );
    let stale = DueClock {
        stage: SlaStage::Acceptance,
        clock_id: w.store.case_clocks(late.id).await.unwrap()[0].id,
        ..due[0].clone()
    };
    assert!(
        !w.store
            .mark_clock_notified(&stale, &stale.event(), t("2026-04-10 11:40"))
            .await
            .unwrap()
    );
}

async fn an_extension_rearms_the_timers_and_a_suspension_stops_the_deadline(db: TestDb) {
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let case = w.report("C0101", start).await;
    let case = w
        .act(&case, Action::Accept, Role::Operator, plus(start, 5))
        .await;
    let case = w
        .act(&case, Action::Register, Role::ShiftLead, plus(start, 10))
        .await;
    let case = w
        .act(
            &case,
            Action::Dispatch {
                department: "sanitation".to_string(),
            },
            Role::Dispatcher,
            t("2026-04-10 09:30"),
        )
        .await;
    let handling = case.clock.clone().unwrap();
    assert_eq!(
        (handling.warning_at, handling.deadline_at),
        (Some(ms("2026-04-10 11:06")), Some(ms("2026-04-10 11:30")))
    );
    let due = w.due("2026-04-10 11:40").await;
    assert_eq!(
        due.iter().map(|d| d.kind).collect::<Vec<_>>(),
        [DueKind::Overdue]
    );
    assert!(
        w.store
            .mark_clock_notified(&due[0], &due[0].event(), t("2026-04-10 11:40"))
            .await
            .unwrap()
    );

    let case = w
        .act(
            &case,
            Action::RequestExtension {
                minutes: 60,
                reason: "parts on order".to_string(),
            },
            Role::DepartmentHandler,
            t("2026-04-10 11:41"),
        )
        .await;
    let case = w
        .act(
            &case,
            Action::ApproveExtension { minutes: 60 },
            Role::Dispatcher,
            t("2026-04-10 11:45"),
        )
        .await;
    // 180 minutes from 09:30: 150 until noon, 30 after lunch; the warning at 144 minutes.
    let extended = case.clock.clone().unwrap();
    assert_eq!(extended.id, handling.id, "the same stage, the same clock");
    assert_eq!(
        (extended.warning_at, extended.deadline_at),
        (Some(ms("2026-04-10 11:54")), Some(ms("2026-04-10 14:30")))
    );
    assert!(!extended.warned && !extended.overdue_notified, "re-armed");
    assert_eq!(case.extension_count, 1);
    assert!(w.due("2026-04-10 11:50").await.is_empty());
    assert_eq!(
        w.due("2026-04-10 11:55")
            .await
            .iter()
            .map(|d| (d.kind, d.due_at))
            .collect::<Vec<_>>(),
        [(DueKind::Warning, ms("2026-04-10 11:54"))]
    );

    let case = w
        .act(
            &case,
            Action::RequestSuspension {
                reason: "owner unknown".to_string(),
            },
            Role::DepartmentHandler,
            t("2026-04-10 11:56"),
        )
        .await;
    let case = w
        .act(
            &case,
            Action::ApproveSuspension,
            Role::Dispatcher,
            t("2026-04-10 11:58"),
        )
        .await;
    assert_eq!(case.state, CaseState::Suspended);
    let suspended = case.clock.clone().unwrap();
    assert_eq!(
        suspended.deadline_at, None,
        "a suspended clock has no deadline"
    );
    assert!(suspended.clock.is_suspended());
    let overdue = CaseQuery {
        overdue: Some(true),
        now: Some(t("2026-05-01 09:00")),
        ..CaseQuery::default()
    };
    assert!(w.store.cases(&overdue).await.unwrap().items.is_empty());
    assert!(
        w.due("2026-05-01 09:00")
            .await
            .iter()
            .all(|d| d.kind == DueKind::Warning),
        "no overdue while suspended"
    );

    // Resumed on Monday: 148 minutes were used before the suspension, 32 are left.
    let case = w
        .act(
            &case,
            Action::Resume,
            Role::DepartmentHandler,
            t("2026-04-13 09:00"),
        )
        .await;
    assert_eq!(case.state, CaseState::Dispatched);
    assert_eq!(
        case.clock.as_ref().unwrap().deadline_at,
        Some(ms("2026-04-13 09:32"))
    );
    assert!(
        w.due("2026-04-13 09:33")
            .await
            .iter()
            .any(|d| d.case_id == case.id && d.kind == DueKind::Overdue)
    );
    assert!(w.store.verify_audit(case.id).await.unwrap().ok);
}

// ---- the list ----

/// Twelve cases, an hour apart, of three categories and two sources, in two streets; some dispatched.
async fn city(w: &World) -> Vec<Case> {
    let mut cases = Vec::new();
    for i in 0..12i64 {
        let at = plus(t("2026-04-13 08:00"), 60 * i);
        let category = ["C0101", "E0503", "E0101"][i as usize % 3];
        let (street, source) = if i % 2 == 0 {
            ("110101001", Source::Inspector)
        } else {
            ("110101002", Source::Hotline)
        };
        let new = NewCase {
            source,
            grid: Some(GridPlace::Inside {
                cell: format!("{street}001{:03}", i + 1),
                street: street.to_string(),
                community: format!("{street}001"),
            }),
            ..new_case(category, at)
        };
        let mut case = w.create(&new, at).await;
        if i % 4 == 0 {
            case = w
                .act(&case, Action::Accept, Role::Operator, plus(at, 1))
                .await;
            case = w
                .act(&case, Action::Register, Role::ShiftLead, plus(at, 2))
                .await;
            case = w
                .act(
                    &case,
                    Action::Dispatch {
                        department: if i == 4 { "water" } else { "sanitation" }.to_string(),
                    },
                    Role::Dispatcher,
                    plus(at, 3),
                )
                .await;
        }
        cases.push(case);
    }
    cases
}

async fn all_pages(w: &World, query: &CaseQuery) -> Vec<CaseId> {
    let mut query = query.clone();
    let mut ids = Vec::new();
    loop {
        let page = w.store.cases(&query).await.unwrap();
        assert!(page.items.len() <= query.limit as usize);
        ids.extend(page.items.iter().map(|c| c.id));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return ids,
        }
    }
}

async fn the_list_filters_sorts_and_pages(db: TestDb) {
    let w = World::open(&db).await;
    let cases = city(&w).await;
    let ids = |pick: &dyn Fn(&Case) -> bool| -> Vec<CaseId> {
        cases.iter().filter(|c| pick(c)).map(|c| c.id).collect()
    };
    let mut all: Vec<CaseId> = ids(&|_| true);

    // Newest first by default, five at a time.
    let paged = CaseQuery {
        limit: 5,
        ..CaseQuery::default()
    };
    let first = w.store.cases(&paged).await.unwrap();
    assert_eq!(first.items.len(), 5);
    let cursor = first.next_cursor.unwrap();
    assert_eq!(cursor.to_string().parse::<CaseCursor>().unwrap(), cursor);
    all.reverse();
    assert_eq!(all_pages(&w, &paged).await, all);
    all.reverse();
    let ascending = CaseQuery {
        sort: CaseSort::CreatedAsc,
        limit: 5,
        ..CaseQuery::default()
    };
    assert_eq!(all_pages(&w, &ascending).await, all);
    // Updated: the dispatched ones moved after their creation, the order still holds by updated_at.
    let mut by_updated = cases.clone();
    by_updated.sort_by_key(|c| (c.updated_at, c.id));
    let updated_asc = CaseQuery {
        sort: CaseSort::UpdatedAsc,
        limit: 4,
        ..CaseQuery::default()
    };
    assert_eq!(
        all_pages(&w, &updated_asc).await,
        by_updated.iter().map(|c| c.id).collect::<Vec<_>>()
    );

    // By deadline: the most urgent first, and every case exactly once across pages.
    let deadline = |c: &Case| c.clock.as_ref().and_then(|k| k.deadline_at);
    let mut urgent = cases.clone();
    urgent.sort_by_key(|c| (deadline(c).unwrap_or(i64::MAX), c.id));
    let by_deadline = CaseQuery {
        sort: CaseSort::DeadlineAsc,
        limit: 5,
        ..CaseQuery::default()
    };
    assert_eq!(
        all_pages(&w, &by_deadline).await,
        urgent.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    let mut relaxed = cases.clone();
    relaxed.sort_by_key(|c| std::cmp::Reverse((deadline(c).unwrap_or(i64::MIN), c.id)));
    let by_deadline_desc = CaseQuery {
        sort: CaseSort::DeadlineDesc,
        limit: 5,
        ..CaseQuery::default()
    };
    assert_eq!(
        all_pages(&w, &by_deadline_desc).await,
        relaxed.iter().map(|c| c.id).collect::<Vec<_>>()
    );

    let filtered = |query: CaseQuery| {
        let store = w.store.clone();
        async move {
            let query = CaseQuery {
                sort: CaseSort::CreatedAsc,
                ..query
            };
            let page = store.cases(&query).await.unwrap();
            page.items.iter().map(|c| c.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        filtered(CaseQuery {
            state: Some(CaseState::Dispatched),
            ..CaseQuery::default()
        })
        .await,
        ids(&|c| c.state == CaseState::Dispatched)
    );
    assert_eq!(ids(&|c| c.state == CaseState::Dispatched).len(), 3);
    assert_eq!(
        filtered(CaseQuery {
            category: Some("E".to_string()),
            ..CaseQuery::default()
        })
        .await,
        ids(&|c| c.category_code.starts_with('E'))
    );
    assert_eq!(
        filtered(CaseQuery {
            category: Some("E0503".to_string()),
            ..CaseQuery::default()
        })
        .await,
        ids(&|c| c.category_code == "E0503")
    );
    assert_eq!(
        filtered(CaseQuery {
            source: Some(Source::Hotline),
            ..CaseQuery::default()
        })
        .await,
        ids(&|c| c.source == Source::Hotline)
    );
    let in_street = |c: &Case| {
        c.grid
            .as_ref()
            .and_then(GridPlace::cell)
            .is_some_and(|cell| cell.starts_with("110101002"))
    };
    assert_eq!(
        filtered(CaseQuery {
            grid: Some("110101002".to_string()),
            ..CaseQuery::default()
        })
        .await,
        ids(&in_street)
    );
    assert_eq!(
        filtered(CaseQuery {
            department: Some("water".to_string()),
            ..CaseQuery::default()
        })
        .await,
        [cases[4].id]
    );
    assert_eq!(
        filtered(CaseQuery {
            reporter: Some("insp-07".to_string()),
            created_from: Some(t("2026-04-13 10:00")),
            created_to: Some(t("2026-04-13 14:00")),
            ..CaseQuery::default()
        })
        .await,
        [cases[2].id, cases[3].id, cases[4].id, cases[5].id]
    );
    // At 15:00 the acceptance clocks of the early reports have run out; the handling ones have not.
    let now = t("2026-04-13 15:00");
    let overdue_at = |c: &Case| deadline(c).is_some_and(|d| d < now.timestamp_millis());
    let late = filtered(CaseQuery {
        overdue: Some(true),
        now: Some(now),
        ..CaseQuery::default()
    })
    .await;
    assert_eq!(late, ids(&overdue_at));
    assert!(!late.is_empty() && late.len() < cases.len());
    assert_eq!(
        filtered(CaseQuery {
            overdue: Some(false),
            now: Some(now),
            ..CaseQuery::default()
        })
        .await,
        ids(&|c| !overdue_at(c))
    );

    for (what, query) in [
        (
            "category",
            CaseQuery {
                category: Some("E05%".to_string()),
                ..CaseQuery::default()
            },
        ),
        (
            "grid",
            CaseQuery {
                grid: Some("1101_".to_string()),
                ..CaseQuery::default()
            },
        ),
        (
            "overdue without an instant",
            CaseQuery {
                overdue: Some(true),
                ..CaseQuery::default()
            },
        ),
        (
            "cursor of another order",
            CaseQuery {
                sort: CaseSort::DeadlineAsc,
                cursor: Some(cursor),
                ..CaseQuery::default()
            },
        ),
    ] {
        let err = w.store.cases(&query).await.unwrap_err();
        assert!(matches!(err, CaseStoreError::Invalid(_)), "{what}: {err}");
    }
    assert!("created_desc.1.x".parse::<CaseCursor>().is_err());
    assert!("sideways.1.2".parse::<CaseCursor>().is_err());
}

// ---- the outbox ----

async fn published_events_leave_the_outbox_and_carry_their_id(db: TestDb) {
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let case = w.report("C0101", start).await;
    w.close_normally(&case, start).await;
    let pending = w.store.pending_outbox(100).await.unwrap();
    assert_eq!(pending.len(), 7);
    assert!(pending.windows(2).all(|p| p[0].id < p[1].id));
    let envelope = pending[0].envelope();
    assert_eq!(envelope["outbox_id"], pending[0].id);
    assert_eq!(envelope["type"], "case.created");
    assert_eq!(envelope["data"]["case"]["number"], case.number.to_string());

    let first: Vec<i64> = pending[..3].iter().map(|e| e.id).collect();
    let at = t("2026-04-10 12:00");
    assert_eq!(w.store.mark_published(&first, at).await.unwrap(), 3);
    assert_eq!(
        w.store.mark_published(&first, at).await.unwrap(),
        0,
        "again: harmless"
    );
    let rest = w.store.pending_outbox(100).await.unwrap();
    assert_eq!(rest, pending[3..]);
    assert_eq!(w.store.pending_outbox(2).await.unwrap(), pending[3..5]);
    let ids: Vec<i64> = rest.iter().map(|e| e.id).collect();
    assert_eq!(w.store.mark_published(&ids, at).await.unwrap(), 4);
    assert!(w.store.pending_outbox(100).await.unwrap().is_empty());

    // Ids are never reused, even when published rows are pruned.
    let top = pending.last().unwrap().id;
    w.sql("DELETE FROM outbox").await;
    w.report("C0101", plus(start, 200)).await;
    assert!(w.store.pending_outbox(1).await.unwrap()[0].id > top);
}

#[test]
fn every_action_has_its_own_event_name() {
    use cityops_core::case::ActionKind;
    let names: std::collections::BTreeSet<&str> =
        ActionKind::ALL.iter().map(|k| event_type_for(*k)).collect();
    assert_eq!(names.len(), ActionKind::ALL.len());
    assert!(!names.contains(CASE_CREATED));
    assert!(names.iter().all(|n| n.starts_with("case.")));
}

// ---- sensor evidence ----

async fn sensor_evidence_lands_on_the_devices_open_case_only(db: TestDb) {
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let device = DeviceId::new("mc-9").unwrap();
    let mut new = new_case("E0503", start);
    new.source = Source::Sensor;
    new.reporter = device.as_str().to_string();
    new.reporter_role = None;
    new.device_id = Some(device.clone());
    new.incident_id = Some(77);
    let case = w.create(&new, start).await;
    assert_eq!(w.store.case_for_incident(77).await.unwrap(), Some(case.id));
    assert_eq!(w.store.case_for_incident(78).await.unwrap(), None);
    let open = w
        .store
        .open_case_for_device(&device)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.id, case.id);

    let after = w
        .store
        .record_sensor_evidence(
            case.id,
            &device,
            SensorEvidence::Repeated,
            &serde_json::json!({"id": 78}),
            plus(start, 5),
        )
        .await
        .unwrap();
    assert_eq!((after.version, after.state), (case.version + 1, case.state));
    assert_eq!(after, w.store.case(case.id).await.unwrap());
    let timeline = w.store.timeline(case.id).await.unwrap();
    assert_eq!(timeline.last().unwrap().action, "sensor_repeated");
    assert_eq!(timeline.last().unwrap().actor, "mc-9");
    let events = w.store.pending_outbox(100).await.unwrap();
    assert_eq!(events.last().unwrap().event_type, "case.sensor_evidence");
    assert!(w.store.verify_audit(case.id).await.unwrap().ok);

    // A stale version is a conflict once evidence has moved the case on.
    let stale = w
        .try_act(&case, Action::Accept, Role::Operator, plus(start, 6))
        .await
        .unwrap_err();
    assert!(matches!(stale, CaseStoreError::Conflict { .. }), "{stale}");
    let closed = w.close_normally(&after, start).await;
    assert_eq!(closed.state, CaseState::Closed);
    assert!(
        w.store
            .open_case_for_device(&device)
            .await
            .unwrap()
            .is_none()
    );
    let missing = w
        .store
        .record_sensor_evidence(
            9_999,
            &device,
            SensorEvidence::Cleared,
            &serde_json::json!({}),
            plus(start, 200),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, CaseStoreError::NotFound(_)), "{missing}");
}

// ---- concurrent changes ----

async fn concurrent_changes_all_commit_and_refused_ones_leave_nothing(db: TestDb) {
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let mut cases = Vec::new();
    for n in 0..12 {
        cases.push(w.report("C0101", plus(start, n)).await);
    }
    let events_before = w.count("outbox").await;
    let audit_before = w.count("case_audit").await;
    // Every case is taken through its lifecycle by a task of its own, all at once; each also tries a
    // stale step first, which must be refused without disturbing the others' changes.
    let w = std::sync::Arc::new(w);
    let mut tasks = Vec::new();
    for case in cases.clone() {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let accepted = w
                .act(&case, Action::Accept, Role::Operator, plus(start, 20))
                .await;
            let stale = w
                .try_act(&case, Action::Accept, Role::Operator, plus(start, 21))
                .await
                .unwrap_err();
            assert!(matches!(stale, CaseStoreError::Conflict { .. }), "{stale}");
            let mut case = accepted;
            for (minutes, action, role) in lifecycle().into_iter().skip(1) {
                case = w.act(&case, action, role, plus(start, 20 + minutes)).await;
            }
            case
        }));
    }
    for task in tasks {
        let closed = task.await.unwrap();
        assert_eq!(closed.state, CaseState::Closed);
        assert_eq!(closed.version, 7);
        assert!(w.store.verify_audit(closed.id).await.unwrap().ok);
    }
    let steps = lifecycle().len() as i64;
    assert_eq!(w.count("outbox").await - events_before, 12 * steps);
    assert_eq!(w.count("case_audit").await - audit_before, 12 * steps);
    // Every event of every case is there once, in the order of its case's steps.
    let events = w.store.pending_outbox(1_000).await.unwrap();
    for case in &cases {
        let of_case: Vec<&str> = events
            .iter()
            .filter(|e| e.case_id == Some(case.id))
            .map(|e| e.event_type.as_str())
            .collect();
        assert_eq!(
            of_case,
            [
                "case.created",
                "case.accepted",
                "case.registered",
                "case.dispatched",
                "case.handled",
                "case.checked",
                "case.closed"
            ]
        );
    }
}

// ---- one case changed from several tasks at once ----

/// Registers `case` (accepted) at `at`, naming its version or not.
async fn register(
    w: &World,
    case: &Case,
    named_version: bool,
    at: DateTime<Utc>,
) -> Result<Case, CaseStoreError> {
    let action = Action::Register;
    let decided = transition(
        case.state,
        &action,
        Role::ShiftLead,
        &case.context().acting(Some("lead-1"), None),
    )
    .unwrap();
    w.store
        .apply_transition(&CaseChange {
            case_id: case.id,
            expected_version: named_version.then_some(case.version),
            action: &action,
            transition: &decided,
            actor: "lead-1",
            role: Role::ShiftLead,
            note: None,
            evidence: &[],
            clocks: ClockChanges::start(w.sla(), clock(SlaStage::Dispatch, at)),
            at,
        })
        .await
}

async fn concurrent_changes_of_one_case_let_exactly_one_win(db: TestDb) {
    let w = std::sync::Arc::new(World::open(&db).await);
    let start = t("2026-04-10 09:00");
    for named_version in [true, false] {
        let reported = w.report("C0101", start).await;
        let accepted = w
            .act(&reported, Action::Accept, Role::Operator, plus(start, 1))
            .await;
        let counts = (w.count("case_audit").await, w.count("outbox").await);
        // Eight tasks read the same accepted case and register it at once.
        let mut tasks = Vec::new();
        for n in 0..8 {
            let (w, accepted) = (w.clone(), accepted.clone());
            tasks.push(tokio::spawn(async move {
                register(&w, &accepted, named_version, plus(start, 2 + n)).await
            }));
        }
        let (mut won, mut refused) = (Vec::new(), 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(case) => won.push(case),
                Err(CaseStoreError::Conflict { expected, found }) => {
                    assert_eq!(expected.state, CaseState::Accepted);
                    assert_eq!(
                        found,
                        CaseRevision {
                            version: Some(3),
                            state: CaseState::Registered
                        }
                    );
                    refused += 1;
                }
                Err(e) => panic!("expected a conflict, got {e}"),
            }
        }
        assert_eq!(
            (won.len(), refused),
            (1, 7),
            "named version: {named_version}"
        );
        // What the winner was told is what is stored; the losers left nothing behind.
        assert_eq!(won[0], w.store.case(accepted.id).await.unwrap());
        assert_eq!(w.count("case_audit").await, counts.0 + 1);
        assert_eq!(w.count("outbox").await, counts.1 + 1);
        let clocks = w.store.case_clocks(accepted.id).await.unwrap();
        assert_eq!(clocks.iter().filter(|k| k.active).count(), 1);
        assert!(w.store.verify_audit(accepted.id).await.unwrap().ok);
    }
}

/// Sensor evidence moves a case's version and audit head but not its state: a change that names no
/// version and meets it half-way is decided again on the new case, and both land in one chain.
async fn a_change_without_a_version_survives_concurrent_evidence(db: TestDb) {
    let w = std::sync::Arc::new(World::open(&db).await);
    let start = t("2026-04-10 09:00");
    let device = DeviceId::new("mc-9").unwrap();
    let case = w.report("C0101", start).await;
    let evidence_task = {
        let (w, device) = (w.clone(), device.clone());
        tokio::spawn(async move {
            for n in 0..30 {
                w.store
                    .record_sensor_evidence(
                        case.id,
                        &device,
                        SensorEvidence::Repeated,
                        &serde_json::json!({ "n": n }),
                        plus(start, 1),
                    )
                    .await
                    .unwrap();
            }
        })
    };
    let mut current = w.store.case(case.id).await.unwrap();
    for (minutes, action, role) in lifecycle() {
        let at = plus(start, minutes);
        let department = (role == Role::DepartmentHandler)
            .then(|| current.department.clone())
            .flatten();
        let context = current
            .context()
            .acting(Some(actor(role)), department.as_deref());
        let decided = transition(current.state, &action, role, &context).unwrap();
        let next = match decided.clock {
            ClockEffect::Start(stage) => Some(clock(stage, at)),
            _ => None,
        };
        current = w
            .store
            .apply_transition(&CaseChange {
                case_id: case.id,
                expected_version: None,
                action: &action,
                transition: &decided,
                actor: actor(role),
                role,
                note: None,
                evidence: &[],
                clocks: ClockChanges {
                    policy: w.sla(),
                    next,
                },
                at,
            })
            .await
            .unwrap();
    }
    evidence_task.await.unwrap();
    let stored = w.store.case(case.id).await.unwrap();
    assert_eq!(stored.state, CaseState::Closed);
    let steps = lifecycle().len() as i64;
    assert_eq!(stored.version, 1 + steps + 30);
    assert_eq!(
        w.store.timeline(case.id).await.unwrap().len() as i64,
        1 + steps + 30
    );
    assert!(w.store.verify_audit(case.id).await.unwrap().ok);
}

conformance!(
    numbers_run_per_category_and_local_day,
    bad_new_cases_are_refused_and_change_nothing,
    a_whole_lifecycle_is_recorded_one_audit_record_and_one_event_per_step,
    returns_reworks_callbacks_and_reopenings_are_counted,
    an_emergency_can_start_registered_on_a_24_hour_clock,
    a_stale_version_or_state_is_a_conflict_and_changes_nothing,
    a_failure_inside_the_transaction_leaves_nothing_behind,
    the_audit_table_refuses_updates_and_deletes,
    a_changed_field_is_named_by_case_and_record,
    removed_inserted_and_reordered_records_are_caught,
    clocks_survive_a_restart_with_the_same_deadline,
    due_timers_are_returned_once_and_not_after_marking,
    an_extension_rearms_the_timers_and_a_suspension_stops_the_deadline,
    the_list_filters_sorts_and_pages,
    published_events_leave_the_outbox_and_carry_their_id,
    sensor_evidence_lands_on_the_devices_open_case_only,
    ; multi_thread: numbers_stay_unique_under_concurrent_creates, concurrent_changes_all_commit_and_refused_ones_leave_nothing,
    concurrent_changes_of_one_case_let_exactly_one_win, a_change_without_a_version_survives_concurrent_evidence
);

/// A change decided on a read from before the scheduler marked a warning must not clear the mark,
/// or the warning is sent twice. PostgreSQL reads a case for a change without a lock and
/// `mark_clock_notified` does not lock the case, so the mark can land between the change's read
/// and its write; this holds the case's row lock to put it exactly there. (SQLite decides and writes
/// a change under its write lock, which the mark takes too: the interleaving cannot happen there.)
async fn a_warning_marked_while_a_change_is_in_flight_is_not_sent_again(db: TestDb) {
    assert_eq!(db.dialect(), crate::Dialect::Postgres);
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let mut case = w.report("C0101", start).await;
    for (minutes, action, role) in lifecycle().into_iter().take(3) {
        case = w.act(&case, action, role, plus(start, minutes)).await;
    }
    // Handling clock from 09:30: warning 11:06, deadline 11:30.
    let case = w
        .act(
            &case,
            Action::RequestSuspension {
                reason: "owner unknown".to_string(),
            },
            Role::DepartmentHandler,
            t("2026-04-10 11:00"),
        )
        .await;
    let due = w.due("2026-04-10 11:07").await;
    assert_eq!(
        due.iter().map(|d| d.kind).collect::<Vec<_>>(),
        [DueKind::Warning]
    );

    // Another session holds the case's row: the change reads, then waits at its write.
    let mut blocker = w.store.pool().begin().await.unwrap();
    sqlx::query("SELECT id FROM cases WHERE id = $1 FOR UPDATE")
        .bind(case.id)
        .fetch_all(&mut *blocker)
        .await
        .unwrap();
    let change = {
        let w = World::open(&db).await;
        let case = case.clone();
        tokio::spawn(async move {
            w.act(
                &case,
                Action::ApproveSuspension,
                Role::Dispatcher,
                t("2026-04-10 11:07"),
            )
            .await
        })
    };
    let waiting = async {
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock'",
            )
            .fetch_one(w.store.pool())
            .await
            .unwrap();
            if n > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), waiting)
        .await
        .expect("the change waits for the case's row lock");

    // The scheduler marks the warning meanwhile (it does not need the case's row).
    assert!(
        w.store
            .mark_clock_notified(&due[0], &due[0].event(), t("2026-04-10 11:07"))
            .await
            .unwrap()
    );
    blocker.rollback().await.unwrap();
    let suspended = change.await.unwrap();
    assert_eq!(suspended.state, CaseState::Suspended);
    let stored = w.store.case_clocks(case.id).await.unwrap();
    assert!(
        stored
            .iter()
            .any(|c| c.stage == SlaStage::Handling && c.warned),
        "the suspension kept the scheduler's mark: {stored:?}"
    );

    // Resumed a minute later: the warning instant is still past, so it stays notified.
    let resumed = w
        .act(
            &suspended,
            Action::Resume,
            Role::DepartmentHandler,
            t("2026-04-10 11:08"),
        )
        .await;
    let warning_at = resumed.clock.as_ref().unwrap().warning_at.unwrap();
    assert!(warning_at < ms("2026-04-10 11:08"), "{warning_at}");
    assert!(
        w.due("2026-04-10 11:09").await.is_empty(),
        "the warning was sent once; nothing is due again before the deadline"
    );
    assert_eq!(
        w.due("2026-04-10 11:32")
            .await
            .iter()
            .map(|d| d.kind)
            .collect::<Vec<_>>(),
        [DueKind::Overdue]
    );
}

/// `n` cases reported a minute apart from `start` and accepted 20 minutes after it.
async fn accepted_cases(w: &World, n: i64, start: DateTime<Utc>) -> Vec<Case> {
    let mut cases = Vec::new();
    for i in 0..n {
        let case = w.report("C0101", plus(start, i)).await;
        cases.push(
            w.act(&case, Action::Accept, Role::Operator, plus(start, 20))
                .await,
        );
    }
    cases
}

/// Concurrent changes of different cases share a statement on PostgreSQL (`pg_write`); a change that
/// fails at the commit fails alone: the others of its statement are written again without it.
async fn changes_written_together_fail_only_for_the_change_at_fault(db: TestDb) {
    assert_eq!(db.dialect(), crate::Dialect::Postgres);
    let w = std::sync::Arc::new(World::open(&db).await);
    let start = t("2026-04-10 09:00");
    let cases = accepted_cases(&w, 12, start).await;
    // All at once, while the writers' turns are held: every change queues, and they go together
    // (left to timing, the first changes took free turns alone, sometimes the bad one).
    let all_at_once = |cases: Vec<Case>, action: Action, role: Role, at| {
        let w = w.clone();
        async move {
            let held = w.store.changes.batches.hold_turns().await;
            let tasks: Vec<_> = cases
                .into_iter()
                .map(|case| {
                    let (w, action) = (w.clone(), action.clone());
                    tokio::spawn(async move { w.try_act(&case, action, role, at).await })
                })
                .collect();
            w.store.changes.batches.until_queued(tasks.len()).await;
            drop(held);
            let mut out = Vec::new();
            for task in tasks {
                out.push(task.await.unwrap());
            }
            out
        }
    };
    let before = w.store.case_write_stats();
    let registered: Vec<Case> =
        all_at_once(cases, Action::Register, Role::ShiftLead, plus(start, 30))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let stats = w.store.case_write_stats();
    assert_eq!(stats.changes - before.changes, 12, "{stats:?}");
    assert!(
        stats.statements - before.statements < 12,
        "no statement wrote more than one change: {stats:?}"
    );
    for case in &registered {
        assert_eq!(case.state, CaseState::Registered);
        assert!(w.store.verify_audit(case.id).await.unwrap().ok);
    }

    // Case 5's audit record now fails at the commit of whatever statement holds it.
    let bad = registered[5].id;
    w.sql(&format!(
        "CREATE FUNCTION fail_case_fn() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.case_id = {bad} THEN RAISE EXCEPTION 'case {bad} is broken at commit'; \
         END IF; RETURN NULL; END $$"
    ))
    .await;
    w.sql(
        "CREATE CONSTRAINT TRIGGER fail_case AFTER INSERT ON case_audit \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_case_fn()",
    )
    .await;
    let audit_before = w.count("case_audit").await;
    let outbox_before = w.count("outbox").await;
    let bad_before = w.store.case(bad).await.unwrap();
    let before = w.store.case_write_stats();
    let dispatched = all_at_once(
        registered.clone(),
        Action::Dispatch {
            department: "sanitation".into(),
        },
        Role::Dispatcher,
        plus(start, 40),
    )
    .await;
    let stats = w.store.case_write_stats();
    for (case, outcome) in registered.iter().zip(dispatched) {
        if case.id == bad {
            let err = outcome.unwrap_err();
            assert!(format!("{err:?}").contains("broken at commit"), "{err:?}");
        } else {
            assert_eq!(outcome.unwrap().state, CaseState::Dispatched);
        }
    }
    assert_eq!(w.store.case(bad).await.unwrap(), bad_before);
    assert_eq!(w.count("case_audit").await - audit_before, 11);
    assert_eq!(w.count("outbox").await - outbox_before, 11);
    assert!(
        stats.changes - before.changes > 12,
        "the statement holding the bad change was not written again one by one: {stats:?}"
    );
}

/// A PostgreSQL change whose case moves on between its read and its write at every optimistic try
/// (here another writer bumps the version each time) is not starved: after the tries it is read
/// under the row lock and written, once, with the audit chain intact; each stale try is counted. The
/// other writer's next bump, started while the change holds the lock, lands only after its commit.
/// A change that named the version it read is a conflict at once and never takes the lock.
async fn a_change_whose_case_keeps_moving_is_written_under_the_row_lock(db: TestDb) {
    assert_eq!(db.dialect(), crate::Dialect::Postgres);
    let w = World::open(&db).await;
    let start = t("2026-04-10 09:00");
    let accepted = accepted_cases(&w, 1, start).await.remove(0);
    let counts = (w.count("case_audit").await, w.count("outbox").await);
    let bump = format!(
        "UPDATE cases SET version = version + 1 WHERE id = {}",
        accepted.id
    );
    w.store.changes.interfere(Some(bump.clone()));
    let before = w.store.case_write_stats();
    let registered = register(&w, &accepted, false, plus(start, 30))
        .await
        .unwrap();
    let stats = w.store.case_write_stats();
    assert_eq!(
        (
            stats.moved_on - before.moved_on,
            stats.locked - before.locked
        ),
        (OPTIMISTIC_ATTEMPTS as u64, 1),
        "{stats:?}"
    );
    assert_eq!(registered.state, CaseState::Registered);
    // The two bumps of the optimistic tries, then the change itself (the bump started under the lock
    // waited, or the change would have found its case moved again and failed).
    assert_eq!(
        registered.version,
        accepted.version + OPTIMISTIC_ATTEMPTS as i64 + 1
    );
    // ...and that bump lands after the commit.
    w.store.changes.interfere(None);
    let mut bumped_after = registered.clone();
    bumped_after.version += 1;
    let waited = std::time::Instant::now();
    while w.store.case(accepted.id).await.unwrap() != bumped_after {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(10),
            "the bump waiting for the row lock never landed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        (w.count("case_audit").await, w.count("outbox").await),
        (counts.0 + 1, counts.1 + 1),
        "the change was written exactly once"
    );
    assert!(w.store.verify_audit(accepted.id).await.unwrap().ok);

    // Named version: the first stale try is the caller's conflict.
    w.store.changes.interfere(Some(bump));
    let before = w.store.case_write_stats();
    let dispatched = w
        .try_act(
            &bumped_after,
            Action::Dispatch {
                department: "sanitation".to_string(),
            },
            Role::Dispatcher,
            plus(start, 40),
        )
        .await;
    w.store.changes.interfere(None);
    assert!(
        matches!(dispatched, Err(CaseStoreError::Conflict { .. })),
        "{dispatched:?}"
    );
    let stats = w.store.case_write_stats();
    assert_eq!(
        (
            stats.moved_on - before.moved_on,
            stats.locked - before.locked
        ),
        (1, 0),
        "{stats:?}"
    );
    assert_eq!(
        (w.count("case_audit").await, w.count("outbox").await),
        (counts.0 + 1, counts.1 + 1),
        "nothing of the refused change was written"
    );
}

/// Concurrent reads of cases about to change go to PostgreSQL together (`pg_read`): each caller gets
/// its own case, a clock id of its own where it asked for one (two reads of one case included), and
/// a missing case is that caller's "not found" alone.
async fn reads_for_changes_go_together_and_each_gets_its_own_case(db: TestDb) {
    assert_eq!(db.dialect(), crate::Dialect::Postgres);
    let w = std::sync::Arc::new(World::open(&db).await);
    let start = t("2026-04-10 09:00");
    let cases = accepted_cases(&w, 5, start).await;
    let missing = cases.iter().map(|c| c.id).max().unwrap() + 1000;
    // (case id, reserve a clock id): the first case twice, both reserving.
    let mut asks: Vec<(CaseId, bool)> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i % 2 == 0))
        .collect();
    asks.push((cases[0].id, true));
    asks.push((missing, true));
    let before = w.store.case_read_stats();
    let held = w.store.reads.batches.hold_turns().await;
    let tasks: Vec<_> = asks
        .iter()
        .map(|&(id, reserve)| {
            let w = w.clone();
            tokio::spawn(async move { w.store.reads.read(w.store.pool(), id, reserve).await })
        })
        .collect();
    w.store.reads.batches.until_queued(asks.len()).await;
    drop(held);
    let mut reserved = Vec::new();
    for (task, &(id, reserve)) in tasks.into_iter().zip(&asks) {
        let result = task.await.unwrap();
        if id == missing {
            assert!(
                matches!(result, Err(CaseStoreError::NotFound(_))),
                "{result:?}"
            );
            continue;
        }
        let (case, head, clock_id) = result.unwrap();
        assert_eq!(case, w.store.case(id).await.unwrap());
        assert_eq!(head.seq, 2, "report and accept");
        assert_eq!(clock_id.is_some(), reserve, "case {id}");
        reserved.extend(clock_id);
    }
    let count = reserved.len();
    reserved.sort_unstable();
    reserved.dedup();
    assert_eq!(reserved.len(), count, "every reservation is its own id");
    let stats = w.store.case_read_stats();
    assert_eq!(stats.reads - before.reads, asks.len() as u64, "{stats:?}");
    assert_eq!(stats.statements - before.statements, 1, "{stats:?}");
}

/// Tests of an interleaving only PostgreSQL can have.
mod postgres_only {
    #[tokio::test]
    async fn reads_for_changes_go_together_and_each_gets_its_own_case() {
        super::reads_for_changes_go_together_and_each_gets_its_own_case(
            crate::testing::TestDb::new(crate::Dialect::Postgres).await,
        )
        .await
    }

    #[tokio::test]
    async fn a_change_whose_case_keeps_moving_is_written_under_the_row_lock() {
        super::a_change_whose_case_keeps_moving_is_written_under_the_row_lock(
            crate::testing::TestDb::new(crate::Dialect::Postgres).await,
        )
        .await
    }

    #[tokio::test]
    async fn changes_written_together_fail_only_for_the_change_at_fault() {
        super::changes_written_together_fail_only_for_the_change_at_fault(
            crate::testing::TestDb::new(crate::Dialect::Postgres).await,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_warning_marked_while_a_change_is_in_flight_is_not_sent_again() {
        super::a_warning_marked_while_a_change_is_in_flight_is_not_sent_again(
            crate::testing::TestDb::new(crate::Dialect::Postgres).await,
        )
        .await
    }
}

/// Tests of SQLite's group commit (`crate::group`).
mod sqlite_only {
    use super::*;

    /// Changes queued behind one another share a commit on SQLite, each sending its writes in one
    /// call inside a savepoint; a change whose writes fail half-way is rolled back to its savepoint
    /// alone: the audit record and case update it had already written are gone, the others' changes
    /// are committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_failing_half_way_through_its_writes_leaves_the_others_of_its_commit() {
        let db = crate::testing::TestDb::new(crate::Dialect::Sqlite).await;
        let w = std::sync::Arc::new(World::open(&db).await);
        let start = t("2026-04-10 09:00");
        let mut cases = accepted_cases(&w, 12, start).await;
        let bad = cases.pop().expect("12 cases");
        // Its event is the LAST write of its change: everything before it ran when it fails.
        w.sql(&format!(
            "CREATE TRIGGER fail_case BEFORE INSERT ON outbox WHEN NEW.case_id = {} \
             BEGIN SELECT RAISE(ABORT, 'case {} is broken'); END",
            bad.id, bad.id
        ))
        .await;
        let audit_before = w.count("case_audit").await;
        let outbox_before = w.count("outbox").await;
        let clocks_before = w.count("case_clocks").await;
        let before = w.store.case_write_stats();

        // Holding the write turn, every change queues behind it; the bad one queues last, so it
        // joins a batch that already holds changes (the first of a batch has no savepoint).
        let held = w.store.write_tx().await.unwrap();
        let register = |case: Case| {
            let w = w.clone();
            tokio::spawn(async move {
                w.try_act(&case, Action::Register, Role::ShiftLead, plus(start, 30))
                    .await
            })
        };
        let good: Vec<_> = cases.iter().cloned().map(register).collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let failing = register(bad.clone());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        held.commit().await.unwrap();

        let err = failing.await.unwrap().unwrap_err();
        assert!(format!("{err:?}").contains("is broken"), "{err:?}");
        for task in good {
            assert_eq!(task.await.unwrap().unwrap().state, CaseState::Registered);
        }
        assert_eq!(w.store.case(bad.id).await.unwrap(), bad);
        assert_eq!(w.count("case_audit").await - audit_before, 11);
        assert_eq!(w.count("outbox").await - outbox_before, 11);
        // Each registered case stopped one clock and started one.
        assert_eq!(w.count("case_clocks").await - clocks_before, 11);
        for case in &cases {
            assert!(w.store.verify_audit(case.id).await.unwrap().ok);
        }
        assert!(w.store.verify_audit(bad.id).await.unwrap().ok);
        let stats = w.store.case_write_stats();
        assert_eq!(stats.changes - before.changes, 11, "{stats:?}");
        assert!(
            stats.statements - before.statements < 11,
            "no commit held more than one change: {stats:?}"
        );
    }
}
