//! Property tests of the case state machine: random facts, roles, actions and whole random histories.

use proptest::prelude::*;
use std::collections::BTreeSet;

use super::tests::{PHOTO, valid_samples};
use super::*;
use crate::sla::ClockEffect;

/// The states each state may lead to, written out from the workflow (not from the code under test).
fn expected_next(state: CaseState) -> &'static [CaseState] {
    use CaseState::*;
    match state {
        Reported => &[Accepted, Verifying, VoidRequested],
        Verifying => &[Accepted, Reported],
        VoidRequested => &[Voided, Reported],
        Accepted => &[Registered, Declined],
        Registered => &[Dispatched],
        Dispatched => &[Handled, Registered, ExtensionRequested, SuspensionRequested],
        ExtensionRequested => &[Dispatched],
        SuspensionRequested => &[Suspended, Dispatched],
        Suspended => &[Dispatched, Closed],
        Handled => &[Checked, Registered],
        Checked => &[Closed],
        Closed => &[Evaluated, Registered],
        Evaluated => &[Registered],
        Declined | Voided => &[],
    }
}

fn state() -> impl Strategy<Value = CaseState> {
    prop::sample::select(CaseState::ALL.to_vec())
}

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL.to_vec())
}

fn maybe(names: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(names.to_vec()).prop_map(str::to_string))
}

/// Facts drawn from small sets, so that departments and inspectors often match and often do not.
fn context() -> impl Strategy<Value = CaseContext> {
    (
        prop::sample::select(Source::ALL.to_vec()),
        any::<bool>(),
        maybe(&["roads", "parks"]),
        maybe(&["i1", "i2"]),
        maybe(&["i1", "i2", "u1"]),
        maybe(&["roads", "parks"]),
    )
        .prop_map(
            |(source, verification_required, department, inspector, actor, actor_department)| {
                CaseContext {
                    source,
                    verification_required,
                    department,
                    inspector,
                    actor,
                    actor_department,
                }
            },
        )
}

/// Text that is sometimes empty, blank or too long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z 修复]{1,20}",
        1 => Just(String::new()),
        1 => Just("  ".to_string()),
        1 => Just("x".repeat(MAX_TEXT_CHARS + 1)),
    ]
}

fn minutes() -> impl Strategy<Value = u32> {
    prop_oneof![3 => 1u32..2000, 1 => Just(0u32), 1 => Just(MAX_EXTENSION_MINUTES + 1)]
}

/// Any action, with data that is valid most of the time and wrong some of the time.
fn action() -> impl Strategy<Value = Action> {
    let id = prop_oneof![4 => Just("roads".to_string()), 1 => Just(String::new()), 1 => Just("i1".to_string())];
    let evidence = prop_oneof![
        4 => Just(vec![PHOTO.to_string()]),
        1 => Just(Vec::new()),
        1 => Just(vec!["abc".to_string()]),
        1 => Just(vec![PHOTO.to_string(), PHOTO.to_string()]),
    ];
    prop_oneof![
        Just(Action::Accept),
        id.clone()
            .prop_map(|inspector| Action::RequestVerification { inspector }),
        (any::<bool>(), text())
            .prop_map(|(valid, note)| Action::ReportVerification { valid, note }),
        Just(Action::Register),
        text().prop_map(|reason| Action::Decline { reason }),
        text().prop_map(|reason| Action::RequestVoid { reason }),
        Just(Action::ApproveVoid),
        text().prop_map(|reason| Action::RejectVoid { reason }),
        id.prop_map(|department| Action::Dispatch { department }),
        text().prop_map(|reason| Action::Return { reason }),
        (minutes(), text())
            .prop_map(|(minutes, reason)| Action::RequestExtension { minutes, reason }),
        minutes().prop_map(|minutes| Action::ApproveExtension { minutes }),
        text().prop_map(|reason| Action::RejectExtension { reason }),
        text().prop_map(|reason| Action::RequestSuspension { reason }),
        Just(Action::ApproveSuspension),
        text().prop_map(|reason| Action::RejectSuspension { reason }),
        Just(Action::Resume),
        (text(), evidence).prop_map(|(feedback, evidence)| Action::Handle { feedback, evidence }),
        Just(Action::CheckPass),
        text().prop_map(|reason| Action::CheckFail { reason }),
        prop::sample::select(ClosureType::ALL.to_vec())
            .prop_map(|closure| Action::Close { closure }),
        (0u8..8, text()).prop_map(|(satisfaction, note)| Action::Callback { satisfaction, note }),
        text().prop_map(|reason| Action::Reopen { reason }),
    ]
}

/// Checks one decision against the rules every decision must follow; returns the transition if any.
fn check_decision(
    state: CaseState,
    action: &Action,
    role: Role,
    context: &CaseContext,
) -> Result<Option<Transition>, TestCaseError> {
    let kind = action.kind();
    let result = transition(state, action, role, context);
    prop_assert_eq!(
        &result,
        &transition(state, action, role, context),
        "pure and deterministic"
    );
    let legal = legal_actions(state, context);
    let allowed = allowed_actions(state, role, context);
    prop_assert!(allowed.iter().all(|k| legal.contains(k)));
    prop_assert!(legal.iter().all(|k| expected_actions(state).contains(k)));
    match &result {
        Ok(t) => {
            prop_assert!(allowed.contains(&kind));
            prop_assert!(action.validate().is_ok());
            prop_assert_eq!((t.from, t.action), (state, kind));
            prop_assert!(expected_next(state).contains(&t.to), "{} → {}", state, t.to);
            // The clock effect agrees with the stage each state runs.
            let (before, after) = (
                state.sla_stage(context.source),
                t.to.sla_stage(context.source),
            );
            match t.clock {
                ClockEffect::Start(stage) => prop_assert_eq!(after, Some(stage)),
                ClockEffect::Stop => prop_assert_eq!(after, None),
                ClockEffect::Keep
                | ClockEffect::Suspend
                | ClockEffect::Resume
                | ClockEffect::Extend(_) => {
                    prop_assert!(before.is_some());
                    prop_assert_eq!(before, after);
                }
            }
        }
        Err(TransitionError::Illegal {
            allowed: listed,
            state: s,
            ..
        }) => {
            prop_assert!(!allowed.contains(&kind));
            prop_assert_eq!(listed, &legal);
            prop_assert_eq!(*s, state);
        }
        Err(TransitionError::Forbidden { .. }) => {
            prop_assert!(legal.contains(&kind));
            prop_assert!(!allowed.contains(&kind));
        }
        Err(TransitionError::Invalid { .. }) => {
            prop_assert!(allowed.contains(&kind));
        }
    }
    if state.is_final() {
        prop_assert!(legal.is_empty());
    }
    if state.is_closed() {
        prop_assert!(
            legal
                .iter()
                .all(|k| [ActionKind::Callback, ActionKind::Reopen].contains(k))
        );
    }
    Ok(result.ok())
}

/// The kinds each state may allow, written out from the workflow.
fn expected_actions(state: CaseState) -> &'static [ActionKind] {
    use ActionKind::*;
    match state {
        CaseState::Reported => &[Accept, RequestVerification, RequestVoid],
        CaseState::Verifying => &[ReportVerification],
        CaseState::VoidRequested => &[ApproveVoid, RejectVoid],
        CaseState::Accepted => &[Register, Decline],
        CaseState::Registered => &[Dispatch],
        CaseState::Dispatched => &[Handle, Return, RequestExtension, RequestSuspension],
        CaseState::ExtensionRequested => &[ApproveExtension, RejectExtension],
        CaseState::SuspensionRequested => &[ApproveSuspension, RejectSuspension],
        CaseState::Suspended => &[Resume, Close],
        CaseState::Handled => &[CheckPass, CheckFail],
        CaseState::Checked => &[Close],
        CaseState::Closed => &[Callback, Reopen],
        CaseState::Evaluated => &[Reopen],
        CaseState::Declined | CaseState::Voided => &[],
    }
}

/// One step of a random history. With `guided`, the kind is drawn from what the state allows and the
/// role from those allowed to take it, so histories get far; otherwise anything is tried.
#[derive(Debug, Clone)]
struct Step {
    guided: bool,
    pick: usize,
    role: Role,
    action: Action,
    act_as_assignee: bool,
    sample: usize,
}

fn step() -> impl Strategy<Value = Step> {
    (
        any::<bool>(),
        any::<usize>(),
        role(),
        action(),
        any::<bool>(),
        0usize..4,
    )
        .prop_map(
            |(guided, pick, role, action, act_as_assignee, sample)| Step {
                guided,
                pick,
                role,
                action,
                act_as_assignee,
                sample,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_decision_follows_the_rules(
        state in state(), action in action(), role in role(), context in context(),
    ) {
        check_decision(state, &action, role, &context)?;
    }

    #[test]
    fn allowed_actions_are_exactly_those_that_succeed(
        state in state(), role in role(), context in context(),
    ) {
        let allowed: BTreeSet<ActionKind> = allowed_actions(state, role, &context).into_iter().collect();
        let succeeding: BTreeSet<ActionKind> = ActionKind::ALL
            .iter()
            .copied()
            .filter(|kind| valid_samples(*kind).iter().any(|a| transition(state, a, role, &context).is_ok()))
            .collect();
        prop_assert_eq!(allowed, succeeding);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_stay_inside_the_workflow(
        start in prop_oneof![Just(CaseState::INITIAL), state()],
        mut context in context(),
        steps in prop::collection::vec(step(), 1..40),
    ) {
        // A history from the first state has facts that match its state; one from anywhere may not.
        let from_the_start = start == CaseState::INITIAL && context.department.is_none();
        let mut state = start;
        for step in steps {
            let (role, action) = if step.guided {
                let legal = legal_actions(state, &context);
                if legal.is_empty() {
                    (step.role, step.action.clone())
                } else {
                    let kind = legal[step.pick % legal.len()];
                    let roles = kind.roles();
                    let samples = valid_samples(kind);
                    (roles[step.pick % roles.len()], samples[step.sample % samples.len()].clone())
                }
            } else {
                (step.role, step.action.clone())
            };
            let acting = if step.act_as_assignee {
                context.clone().acting(context.inspector.as_deref(), context.department.as_deref())
            } else {
                context.clone()
            };
            let before = (state, context.clone());
            match check_decision(state, &action, role, &acting)? {
                Some(t) => {
                    context.apply(&t);
                    state = t.to;
                    // Assignments follow the transition.
                    if let Change::Set(department) = &t.department {
                        prop_assert_eq!(context.department.as_ref(), Some(department));
                    }
                    if t.department == Change::Clear {
                        prop_assert_eq!(&context.department, &None);
                    }
                    if from_the_start && state == CaseState::Dispatched {
                        prop_assert!(context.department.is_some(), "a dispatched case has a department");
                    }
                }
                // A refused action changes nothing: the caller keeps state and facts.
                None => prop_assert_eq!((state, &context), (before.0, &before.1)),
            }
            prop_assert!(CaseState::from_code(state.code()) == Some(state));
        }
    }
}
