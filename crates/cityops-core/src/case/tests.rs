//! Table tests of the case state machine: every action against every role, every legal transition,
//! the rules that depend on the case's facts, and whole case histories. Expectations are written out
//! here, not computed by the code under test.

use super::*;
use crate::sla::{ClockEffect, SlaStage};

pub(super) const PHOTO: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// Valid data for every kind; several where the data decides the outcome.
pub(super) fn valid_samples(kind: ActionKind) -> Vec<Action> {
    let text = |s: &str| s.to_string();
    match kind {
        ActionKind::Accept => vec![Action::Accept],
        ActionKind::RequestVerification => vec![Action::RequestVerification {
            inspector: text("i1"),
        }],
        ActionKind::ReportVerification => vec![
            Action::ReportVerification {
                valid: true,
                note: String::new(),
            },
            Action::ReportVerification {
                valid: false,
                note: text("nothing there"),
            },
        ],
        ActionKind::Register => vec![Action::Register],
        ActionKind::Decline => vec![Action::Decline {
            reason: text("private land"),
        }],
        ActionKind::RequestVoid => vec![Action::RequestVoid {
            reason: text("duplicate of E0101…"),
        }],
        ActionKind::ApproveVoid => vec![Action::ApproveVoid],
        ActionKind::RejectVoid => vec![Action::RejectVoid {
            reason: text("not a duplicate"),
        }],
        ActionKind::Dispatch => vec![Action::Dispatch {
            department: text("roads"),
        }],
        ActionKind::Return => vec![Action::Return {
            reason: text("a gas cover, not ours"),
        }],
        ActionKind::RequestExtension => {
            vec![Action::RequestExtension {
                minutes: 480,
                reason: text("parts on order"),
            }]
        }
        ActionKind::ApproveExtension => vec![Action::ApproveExtension { minutes: 240 }],
        ActionKind::RejectExtension => vec![Action::RejectExtension {
            reason: text("stock exists"),
        }],
        ActionKind::RequestSuspension => {
            vec![Action::RequestSuspension {
                reason: text("needs a budget decision"),
            }]
        }
        ActionKind::ApproveSuspension => vec![Action::ApproveSuspension],
        ActionKind::RejectSuspension => vec![Action::RejectSuspension {
            reason: text("can be patched"),
        }],
        ActionKind::Resume => vec![Action::Resume],
        ActionKind::Handle => vec![Action::Handle {
            feedback: text("cover replaced"),
            evidence: vec![text(PHOTO)],
        }],
        ActionKind::CheckPass => vec![Action::CheckPass],
        ActionKind::CheckFail => vec![Action::CheckFail {
            reason: text("still loose"),
        }],
        ActionKind::Close => ClosureType::ALL
            .iter()
            .map(|closure| Action::Close { closure: *closure })
            .collect(),
        ActionKind::Callback => vec![Action::Callback {
            satisfaction: 5,
            note: String::new(),
        }],
        ActionKind::Reopen => vec![Action::Reopen {
            reason: text("the cover is loose again"),
        }],
    }
}

/// A citizen's case dispatched to `roads`, acted on by user `u1` of `roads`, no inspector named.
pub(super) fn citizen_case() -> CaseContext {
    CaseContext {
        department: Some("roads".to_string()),
        ..CaseContext::new(Source::Citizen)
    }
    .acting(Some("u1"), Some("roads"))
}

/// Roles in the column order of the table below.
const ROLES: [Role; 7] = [
    Role::Operator,
    Role::ShiftLead,
    Role::Dispatcher,
    Role::DepartmentHandler,
    Role::Inspector,
    Role::Supervisor,
    Role::Admin,
];

#[test]
fn every_action_against_every_role() {
    use ActionKind as K;
    use CaseState as S;
    // Each action in a state where it fits, for a handler of the case's department and an inspector
    // with no named assignment. Columns: operator (op), shift lead (sl), dispatcher (di), department
    // handler (dh), inspector (in), supervisor (su), admin (ad); x = allowed, . = forbidden.
    #[rustfmt::skip]
    let table: &[(ActionKind, CaseState, &str)] = &[
        //                                               op sl di dh in su ad
        (K::Accept,             S::Reported,            "x x . . . . ."),
        (K::RequestVerification, S::Reported,           "x x . . . . ."),
        (K::ReportVerification, S::Verifying,           ". . . . x . ."),
        (K::Register,           S::Accepted,            ". x . . . . ."),
        (K::Decline,            S::Accepted,            ". x . . . . ."),
        (K::RequestVoid,        S::Reported,            "x . . . . . ."),
        (K::ApproveVoid,        S::VoidRequested,       ". x . . . . ."),
        (K::RejectVoid,         S::VoidRequested,       ". x . . . . ."),
        (K::Dispatch,           S::Registered,          ". . x . . . ."),
        (K::Return,             S::Dispatched,          ". . . x . . ."),
        (K::RequestExtension,   S::Dispatched,          ". . . x . . ."),
        (K::ApproveExtension,   S::ExtensionRequested,  ". . x . . . ."),
        (K::RejectExtension,    S::ExtensionRequested,  ". . x . . . ."),
        (K::RequestSuspension,  S::Dispatched,          ". . . x . . ."),
        (K::ApproveSuspension,  S::SuspensionRequested, ". . x . . . ."),
        (K::RejectSuspension,   S::SuspensionRequested, ". . x . . . ."),
        (K::Resume,             S::Suspended,           ". . x x . . ."),
        (K::Handle,             S::Dispatched,          ". . . x . . ."),
        (K::CheckPass,          S::Handled,             ". . . . x . ."),
        (K::CheckFail,          S::Handled,             ". . . . x . ."),
        (K::Close,              S::Checked,             ". x . . . . ."),
        (K::Callback,           S::Closed,              "x . . . . . ."),
        (K::Reopen,             S::Closed,              ". x . . . x ."),
    ];
    assert_eq!(table.len(), ActionKind::ALL.len(), "one row per action");
    let context = citizen_case();
    for (kind, state, expected) in table {
        let expected: Vec<bool> = expected.split(' ').map(|cell| cell == "x").collect();
        for (role, allowed) in ROLES.iter().zip(expected) {
            for action in valid_samples(*kind) {
                // Close in a checked case works with every closure type.
                let result = transition(*state, &action, *role, &context);
                if allowed {
                    assert!(result.is_ok(), "{role} {kind} in {state}: {result:?}");
                } else {
                    assert!(
                        matches!(
                            result,
                            Err(TransitionError::Forbidden {
                                reason: ForbiddenReason::Role { .. },
                                ..
                            })
                        ),
                        "{role} {kind} in {state}: {result:?}"
                    );
                }
            }
            assert_eq!(
                allowed_actions(*state, *role, &context).contains(kind),
                allowed,
                "{role} {kind} in {state}"
            );
        }
    }
}

#[test]
fn handlers_act_only_on_their_department_s_cases() {
    let handle = &valid_samples(ActionKind::Handle)[0];
    let other = citizen_case().acting(Some("u2"), Some("parks"));
    let err = transition(
        CaseState::Dispatched,
        handle,
        Role::DepartmentHandler,
        &other,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::Forbidden {
            role: Role::DepartmentHandler,
            action: ActionKind::Handle,
            reason: ForbiddenReason::NotCaseDepartment {
                case: Some("roads".to_string()),
                actor: Some("parks".to_string()),
            },
        }
    );
    assert_eq!(err.http_status(), 403);
    let no_department = citizen_case().acting(Some("u2"), None);
    assert!(
        transition(
            CaseState::Dispatched,
            handle,
            Role::DepartmentHandler,
            &no_department
        )
        .is_err()
    );
    assert!(allowed_actions(CaseState::Dispatched, Role::DepartmentHandler, &other).is_empty());
    // The dispatcher may lift a suspension whatever its own department.
    assert!(
        transition(
            CaseState::Suspended,
            &Action::Resume,
            Role::Dispatcher,
            &other
        )
        .is_ok()
    );
}

#[test]
fn a_named_inspector_must_be_the_one_who_reports() {
    let context = CaseContext {
        inspector: Some("i1".to_string()),
        ..CaseContext::new(Source::Citizen)
    };
    let report = Action::ReportVerification {
        valid: true,
        note: String::new(),
    };
    let as_user = |user: &str| context.clone().acting(Some(user), None);
    assert!(
        transition(
            CaseState::Verifying,
            &report,
            Role::Inspector,
            &as_user("i1")
        )
        .is_ok()
    );
    assert!(matches!(
        transition(
            CaseState::Verifying,
            &report,
            Role::Inspector,
            &as_user("i2")
        ),
        Err(TransitionError::Forbidden {
            reason: ForbiddenReason::NotAssignedInspector { .. },
            ..
        })
    ));
    assert!(
        transition(
            CaseState::Handled,
            &Action::CheckPass,
            Role::Inspector,
            &context
        )
        .is_err()
    );
    let anyone = CaseContext::new(Source::Citizen).acting(Some("i2"), None);
    assert!(
        transition(
            CaseState::Handled,
            &Action::CheckPass,
            Role::Inspector,
            &anyone
        )
        .is_ok()
    );
}

/// What each legal transition does: (state, action, role, new state, clock effect, flags).
#[test]
fn every_legal_transition_of_every_state() {
    use ActionKind as K;
    use CaseState as S;
    use ClockEffect as C;
    use SlaStage as Stage;
    let sample = |kind| valid_samples(kind).remove(0);
    let close = |closure| Action::Close { closure };
    let invalid_report = Action::ReportVerification {
        valid: false,
        note: "no such thing".to_string(),
    };
    // Flags: r = rework, w = wrong dispatch, o = reopen.
    #[rustfmt::skip]
    let table: Vec<(S, Action, Role, S, C, &str)> = vec![
        (S::Reported, sample(K::Accept), Role::Operator, S::Accepted, C::Start(Stage::Registration), ""),
        (S::Reported, sample(K::RequestVerification), Role::Operator, S::Verifying, C::Start(Stage::Verification), ""),
        (S::Reported, sample(K::RequestVoid), Role::Operator, S::VoidRequested, C::Keep, ""),
        (S::Verifying, sample(K::ReportVerification), Role::Inspector, S::Accepted, C::Start(Stage::Registration), ""),
        (S::Verifying, invalid_report, Role::Inspector, S::Reported, C::Start(Stage::Acceptance), ""),
        (S::VoidRequested, sample(K::ApproveVoid), Role::ShiftLead, S::Voided, C::Stop, ""),
        (S::VoidRequested, sample(K::RejectVoid), Role::ShiftLead, S::Reported, C::Keep, ""),
        (S::Accepted, sample(K::Register), Role::ShiftLead, S::Registered, C::Start(Stage::Dispatch), ""),
        (S::Accepted, sample(K::Decline), Role::ShiftLead, S::Declined, C::Stop, ""),
        (S::Registered, sample(K::Dispatch), Role::Dispatcher, S::Dispatched, C::Start(Stage::Handling), ""),
        (S::Dispatched, sample(K::Handle), Role::DepartmentHandler, S::Handled, C::Start(Stage::Check), ""),
        (S::Dispatched, sample(K::Return), Role::DepartmentHandler, S::Registered, C::Start(Stage::Dispatch), "w"),
        (S::Dispatched, sample(K::RequestExtension), Role::DepartmentHandler, S::ExtensionRequested, C::Keep, ""),
        (S::Dispatched, sample(K::RequestSuspension), Role::DepartmentHandler, S::SuspensionRequested, C::Keep, ""),
        (S::ExtensionRequested, sample(K::ApproveExtension), Role::Dispatcher, S::Dispatched, C::Extend(240), ""),
        (S::ExtensionRequested, sample(K::RejectExtension), Role::Dispatcher, S::Dispatched, C::Keep, ""),
        (S::SuspensionRequested, sample(K::ApproveSuspension), Role::Dispatcher, S::Suspended, C::Suspend, ""),
        (S::SuspensionRequested, sample(K::RejectSuspension), Role::Dispatcher, S::Dispatched, C::Keep, ""),
        (S::Suspended, sample(K::Resume), Role::DepartmentHandler, S::Dispatched, C::Resume, ""),
        (S::Suspended, close(ClosureType::Special), Role::ShiftLead, S::Closed, C::Start(Stage::Callback), ""),
        (S::Handled, sample(K::CheckPass), Role::Inspector, S::Checked, C::Start(Stage::Closing), ""),
        (S::Handled, sample(K::CheckFail), Role::Inspector, S::Registered, C::Start(Stage::Dispatch), "r"),
        (S::Checked, close(ClosureType::Normal), Role::ShiftLead, S::Closed, C::Start(Stage::Callback), ""),
        (S::Checked, close(ClosureType::Overdue), Role::ShiftLead, S::Closed, C::Start(Stage::Callback), ""),
        (S::Checked, close(ClosureType::Erroneous), Role::ShiftLead, S::Closed, C::Start(Stage::Callback), ""),
        (S::Checked, close(ClosureType::Special), Role::ShiftLead, S::Closed, C::Start(Stage::Callback), ""),
        (S::Closed, sample(K::Callback), Role::Operator, S::Evaluated, C::Stop, ""),
        (S::Closed, sample(K::Reopen), Role::Supervisor, S::Registered, C::Start(Stage::Dispatch), "o"),
        (S::Evaluated, sample(K::Reopen), Role::ShiftLead, S::Registered, C::Start(Stage::Dispatch), "o"),
    ];
    let context = citizen_case();
    for (state, action, role, to, clock, flags) in &table {
        let t = transition(*state, action, *role, &context)
            .unwrap_or_else(|e| panic!("{state} {action:?}: {e}"));
        assert_eq!(
            (t.from, t.to, t.action),
            (*state, *to, action.kind()),
            "{state} {action:?}"
        );
        assert_eq!(t.clock, *clock, "{state} {action:?}");
        assert_eq!(
            t.counts_as_rework,
            flags.contains('r'),
            "{state} {action:?}"
        );
        assert_eq!(
            t.counts_as_wrong_dispatch,
            flags.contains('w'),
            "{state} {action:?}"
        );
        assert_eq!(
            t.counts_as_reopen,
            flags.contains('o'),
            "{state} {action:?}"
        );
    }
    // Everything else is illegal in every state, for every role.
    for &state in CaseState::ALL {
        for &kind in ActionKind::ALL {
            if table
                .iter()
                .any(|(s, a, ..)| *s == state && a.kind() == kind)
            {
                continue;
            }
            for role in ROLES {
                for action in valid_samples(kind) {
                    let result = transition(state, &action, role, &context);
                    assert!(
                        matches!(result, Err(TransitionError::Illegal { .. })),
                        "{role} {kind} in {state}: {result:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn final_and_closed_states_allow_almost_nothing() {
    let context = citizen_case();
    for state in [CaseState::Declined, CaseState::Voided] {
        assert!(legal_actions(state, &context).is_empty(), "{state}");
        let err = transition(
            state,
            &Action::Reopen {
                reason: "x".to_string(),
            },
            Role::ShiftLead,
            &context,
        )
        .unwrap_err();
        assert_eq!(err.http_status(), 409);
    }
    assert_eq!(
        legal_actions(CaseState::Closed, &context),
        [ActionKind::Callback, ActionKind::Reopen]
    );
    assert_eq!(
        legal_actions(CaseState::Evaluated, &context),
        [ActionKind::Reopen]
    );
    let sensor = CaseContext::new(Source::Sensor);
    assert_eq!(
        legal_actions(CaseState::Closed, &sensor),
        [ActionKind::Reopen]
    );
}

#[test]
fn illegal_actions_name_the_state_and_what_is_allowed() {
    let err = transition(
        CaseState::Dispatched,
        &Action::Dispatch {
            department: "parks".to_string(),
        },
        Role::Dispatcher,
        &citizen_case(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot dispatch a case that is dispatched (待处置); \
         allowed now: handle, return, request_extension, request_suspension"
    );
    assert_eq!(err.http_status(), 409);
    let err = transition(
        CaseState::Voided,
        &Action::Accept,
        Role::Operator,
        &citizen_case(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot accept a case that is voided (已作废); allowed now: nothing (the case is final)"
    );
}

#[test]
fn checks_run_state_then_role_then_data() {
    let context = citizen_case();
    let empty_reason = Action::Decline {
        reason: String::new(),
    };
    // Wrong state wins over wrong role and bad data.
    let err = transition(CaseState::Registered, &empty_reason, Role::Admin, &context).unwrap_err();
    assert!(matches!(err, TransitionError::Illegal { .. }), "{err}");
    // Then the role, even with bad data.
    let err = transition(CaseState::Accepted, &empty_reason, Role::Admin, &context).unwrap_err();
    assert!(matches!(err, TransitionError::Forbidden { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "admin may not decline this case: only shift_lead may do this"
    );
    // Then the data.
    let err = transition(
        CaseState::Accepted,
        &empty_reason,
        Role::ShiftLead,
        &context,
    )
    .unwrap_err();
    assert_eq!(err.http_status(), 422);
    assert_eq!(err.to_string(), "decline: reason must not be empty");
}

#[test]
fn verification_policy_blocks_direct_acceptance() {
    let context = CaseContext {
        verification_required: true,
        ..citizen_case()
    };
    let err = transition(
        CaseState::Reported,
        &Action::Accept,
        Role::Operator,
        &context,
    )
    .unwrap_err();
    match &err {
        TransitionError::Illegal { note, allowed, .. } => {
            assert!(note.is_some());
            assert_eq!(
                allowed,
                &[ActionKind::RequestVerification, ActionKind::RequestVoid]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("must be verified"), "{err}");
    assert_eq!(
        allowed_actions(CaseState::Reported, Role::Operator, &context),
        [ActionKind::RequestVerification, ActionKind::RequestVoid]
    );
    // A valid verification accepts the case itself.
    let report = Action::ReportVerification {
        valid: true,
        note: String::new(),
    };
    let t = transition(CaseState::Verifying, &report, Role::Inspector, &context).unwrap();
    assert_eq!(t.to, CaseState::Accepted);
}

#[test]
fn only_citizen_and_hotline_cases_are_called_back() {
    let callback = Action::Callback {
        satisfaction: 3,
        note: String::new(),
    };
    for &source in Source::ALL {
        let context = CaseContext::new(source);
        let result = transition(CaseState::Closed, &callback, Role::Operator, &context);
        assert_eq!(result.is_ok(), source.needs_callback(), "{source}");
        let close = transition(
            CaseState::Checked,
            &Action::Close {
                closure: ClosureType::Normal,
            },
            Role::ShiftLead,
            &context,
        )
        .unwrap();
        let expected = if source.needs_callback() {
            ClockEffect::Start(SlaStage::Callback)
        } else {
            ClockEffect::Stop
        };
        assert_eq!(close.clock, expected, "{source}");
    }
    assert_eq!(
        [Source::Citizen, Source::Hotline].map(Source::needs_callback),
        [true, true]
    );
}

#[test]
fn a_suspended_case_is_closed_only_specially() {
    let context = citizen_case();
    for &closure in ClosureType::ALL {
        let result = transition(
            CaseState::Suspended,
            &Action::Close { closure },
            Role::ShiftLead,
            &context,
        );
        if closure == ClosureType::Special {
            assert_eq!(result.unwrap().to, CaseState::Closed);
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.http_status(), 422, "{closure}");
            assert!(matches!(
                err,
                TransitionError::Invalid {
                    error: PayloadError {
                        problem: PayloadProblem::ClosureNotAllowed { .. },
                        ..
                    },
                    ..
                }
            ));
        }
    }
}

/// Plays a history of (role, acting department or inspector, action), checking every step succeeds,
/// and returns the final state, context and transitions.
fn play(
    source: Source,
    steps: &[(Role, Option<&str>, Action)],
) -> (CaseState, CaseContext, Vec<Transition>) {
    let mut state = CaseState::INITIAL;
    let mut context = CaseContext::new(source);
    let mut transitions = Vec::new();
    for (role, who, action) in steps {
        let acting = match role {
            Role::DepartmentHandler => context.clone().acting(Some("h1"), *who),
            _ => context.clone().acting(*who, None),
        };
        let t = transition(state, action, *role, &acting)
            .unwrap_or_else(|e| panic!("{role} {action:?} in {state}: {e}"));
        context.apply(&t);
        state = t.to;
        transitions.push(t);
    }
    (state, context, transitions)
}

#[test]
fn a_citizen_report_from_acceptance_to_callback() {
    let text = |s: &str| s.to_string();
    let (state, context, transitions) = play(
        Source::Hotline,
        &[
            (
                Role::Operator,
                None,
                Action::RequestVerification {
                    inspector: text("i7"),
                },
            ),
            (
                Role::Inspector,
                Some("i7"),
                Action::ReportVerification {
                    valid: true,
                    note: String::new(),
                },
            ),
            (Role::ShiftLead, None, Action::Register),
            (
                Role::Dispatcher,
                None,
                Action::Dispatch {
                    department: text("roads"),
                },
            ),
            (
                Role::DepartmentHandler,
                Some("roads"),
                Action::Handle {
                    feedback: text("fixed"),
                    evidence: vec![text(PHOTO)],
                },
            ),
            (Role::Inspector, Some("i3"), Action::CheckPass),
            (
                Role::ShiftLead,
                None,
                Action::Close {
                    closure: ClosureType::Normal,
                },
            ),
            (
                Role::Operator,
                None,
                Action::Callback {
                    satisfaction: 5,
                    note: text("thanks"),
                },
            ),
        ],
    );
    assert_eq!(state, CaseState::Evaluated);
    assert_eq!(context.department.as_deref(), Some("roads"));
    assert_eq!(context.inspector, None);
    let stages: Vec<ClockEffect> = transitions.iter().map(|t| t.clock).collect();
    assert_eq!(
        stages,
        [
            ClockEffect::Start(SlaStage::Verification),
            ClockEffect::Start(SlaStage::Registration),
            ClockEffect::Start(SlaStage::Dispatch),
            ClockEffect::Start(SlaStage::Handling),
            ClockEffect::Start(SlaStage::Check),
            ClockEffect::Start(SlaStage::Closing),
            ClockEffect::Start(SlaStage::Callback),
            ClockEffect::Stop,
        ]
    );
    assert!(
        transitions
            .iter()
            .all(|t| !t.counts_as_rework && !t.counts_as_wrong_dispatch)
    );
}

#[test]
fn a_troubled_case_returns_waits_is_reworked_and_reopened() {
    let text = |s: &str| s.to_string();
    let handle = || Action::Handle {
        feedback: text("done"),
        evidence: vec![text(PHOTO)],
    };
    let (state, context, transitions) = play(
        Source::Sensor,
        &[
            (Role::Operator, None, Action::Accept),
            (Role::ShiftLead, None, Action::Register),
            (
                Role::Dispatcher,
                None,
                Action::Dispatch {
                    department: text("water"),
                },
            ),
            (
                Role::DepartmentHandler,
                Some("water"),
                Action::Return {
                    reason: text("a gas cover"),
                },
            ),
            (
                Role::Dispatcher,
                None,
                Action::Dispatch {
                    department: text("gas"),
                },
            ),
            (
                Role::DepartmentHandler,
                Some("gas"),
                Action::RequestExtension {
                    minutes: 480,
                    reason: text("parts"),
                },
            ),
            (
                Role::Dispatcher,
                None,
                Action::ApproveExtension { minutes: 240 },
            ),
            (
                Role::DepartmentHandler,
                Some("gas"),
                Action::RequestSuspension {
                    reason: text("road works first"),
                },
            ),
            (Role::Dispatcher, None, Action::ApproveSuspension),
            (Role::DepartmentHandler, Some("gas"), Action::Resume),
            (Role::DepartmentHandler, Some("gas"), handle()),
            (
                Role::Inspector,
                None,
                Action::CheckFail {
                    reason: text("still tilted"),
                },
            ),
            (
                Role::Dispatcher,
                None,
                Action::Dispatch {
                    department: text("gas"),
                },
            ),
            (Role::DepartmentHandler, Some("gas"), handle()),
            (Role::Inspector, None, Action::CheckPass),
            (
                Role::ShiftLead,
                None,
                Action::Close {
                    closure: ClosureType::Overdue,
                },
            ),
            (
                Role::Supervisor,
                None,
                Action::Reopen {
                    reason: text("tilted again"),
                },
            ),
        ],
    );
    assert_eq!(state, CaseState::Registered);
    assert_eq!(
        context.department.as_deref(),
        Some("gas"),
        "kept as a hint for the next dispatch"
    );
    let count = |flag: fn(&Transition) -> bool| transitions.iter().filter(|t| flag(t)).count();
    assert_eq!(count(|t| t.counts_as_wrong_dispatch), 1);
    assert_eq!(count(|t| t.counts_as_rework), 1);
    assert_eq!(count(|t| t.counts_as_reopen), 1);
    assert!(
        transitions
            .iter()
            .any(|t| t.clock == ClockEffect::Extend(240))
    );
    assert_eq!(
        transitions[3].department,
        Change::Clear,
        "a return clears the department"
    );
    // A closed sensor case has no callback stage.
    assert_eq!(transitions[15].clock, ClockEffect::Stop);
}

#[test]
fn a_void_request_is_decided_by_the_shift_lead() {
    let reason = || "duplicate".to_string();
    let (state, ..) = play(
        Source::Citizen,
        &[
            (
                Role::Operator,
                None,
                Action::RequestVoid { reason: reason() },
            ),
            (
                Role::ShiftLead,
                None,
                Action::RejectVoid { reason: reason() },
            ),
            (
                Role::Operator,
                None,
                Action::RequestVoid { reason: reason() },
            ),
            (Role::ShiftLead, None, Action::ApproveVoid),
        ],
    );
    assert_eq!(state, CaseState::Voided);
}

#[test]
fn every_state_is_reachable_from_a_report() {
    let mut seen = std::collections::BTreeSet::from([CaseState::INITIAL]);
    let mut queue = vec![(CaseState::INITIAL, CaseContext::new(Source::Citizen))];
    while let Some((state, context)) = queue.pop() {
        for &kind in ActionKind::ALL {
            for role in ROLES {
                for action in valid_samples(kind) {
                    // Act as whoever the case waits for.
                    let acting = context
                        .clone()
                        .acting(context.inspector.as_deref(), context.department.as_deref());
                    let Ok(t) = transition(state, &action, role, &acting) else {
                        continue;
                    };
                    if seen.insert(t.to) {
                        let mut next = context.clone();
                        next.apply(&t);
                        queue.push((t.to, next));
                    }
                }
            }
        }
    }
    assert_eq!(seen.len(), CaseState::ALL.len(), "{seen:?}");
}

#[test]
fn transitions_and_contexts_are_json_for_the_store() {
    let t = transition(
        CaseState::Registered,
        &Action::Dispatch {
            department: "roads".to_string(),
        },
        Role::Dispatcher,
        &citizen_case(),
    )
    .unwrap();
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "from": "registered", "to": "dispatched", "action": "dispatch",
            "clock": {"start": "handling"}, "department": {"set": "roads"}, "inspector": "keep",
            "counts_as_rework": false, "counts_as_wrong_dispatch": false, "counts_as_reopen": false,
        })
    );
    let back: Transition = serde_json::from_value(json).unwrap();
    assert_eq!(back, t);
    let context: CaseContext =
        serde_json::from_str(&serde_json::to_string(&citizen_case()).unwrap()).unwrap();
    assert_eq!(context, citizen_case());
}
