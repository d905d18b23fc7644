//! The case state machine: which action may follow which state, taken by whom, and what it causes.
//!
//! [`transition`] is a pure function: it takes the case's state and facts, the action and the actor's
//! role, and returns either the [`Transition`] to record or the reason for refusing it. It changes
//! nothing, so a refused action leaves the case exactly as it was. The checks run in a fixed order, and
//! each maps to one HTTP answer:
//!
//! 1. [`TransitionError::Illegal`] (409): the action does not fit the case's state at all, for anyone;
//! 2. [`TransitionError::Forbidden`] (403): it fits, but not for this role (or not for this department or
//!    inspector);
//! 3. [`TransitionError::Invalid`] (422): it fits and the actor may take it, but its data is wrong.
//!
//! [`allowed_actions`] is the list of actions for which the first two checks pass: exactly the actions for
//! which `transition` succeeds with valid data, so the UI shows no button that would fail.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use super::action::{
    Action, ActionKind, ClosureType, DepartmentId, PayloadError, PayloadProblem, Source, UserId,
};
use super::role::Role;
use super::state::CaseState;
use crate::sla::{ClockEffect, SlaStage};

/// What the rules need to know about the case and the acting user besides the state.
///
/// The first four fields are facts of the case that the store keeps (and updates with
/// [`CaseContext::apply`]); the last two describe the user taking the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseContext {
    /// Where the case came from: only citizen and hotline cases are called back.
    pub source: Source,
    /// The report must be verified by an inspector before it can be accepted (a policy the store applies,
    /// e.g. for citizen reports of certain categories).
    #[serde(default)]
    pub verification_required: bool,
    /// The department the case is dispatched to. Set by dispatch, cleared by a return; after a failed check
    /// or a reopening it stays as a hint for the next dispatch.
    #[serde(default)]
    pub department: Option<DepartmentId>,
    /// The inspector the case waits for, if one is named: set when verification is requested, cleared by the
    /// report and by a check. The store may also name the inspector of a check. `None`: any inspector.
    #[serde(default)]
    pub inspector: Option<UserId>,
    /// The acting user.
    #[serde(default)]
    pub actor: Option<UserId>,
    /// The acting user's department (for department handlers).
    #[serde(default)]
    pub actor_department: Option<DepartmentId>,
}

/// How a transition changes an assignment of the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change<T> {
    Keep,
    Set(T),
    Clear,
}

/// What an accepted action does: the new state, the clock, the assignments and the counters it feeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: CaseState,
    pub to: CaseState,
    pub action: ActionKind,
    /// What happens to the stage clock (see [`crate::sla::StageClock::apply`]).
    pub clock: ClockEffect,
    pub department: Change<DepartmentId>,
    pub inspector: Change<UserId>,
    /// 返工: the check failed and the case goes back to dispatch.
    pub counts_as_rework: bool,
    /// 回退: the department returned the case as not theirs; the dispatch was not accurate.
    pub counts_as_wrong_dispatch: bool,
    /// A closed case was reopened.
    pub counts_as_reopen: bool,
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The action does not fit the state (409). `allowed` lists what anyone could do in this state.
    #[error("cannot {action} a case that is {state} ({}){}; allowed now: {}",
        .state.label_zh(), note_suffix(.note), kinds_list(.allowed))]
    Illegal {
        state: CaseState,
        action: ActionKind,
        allowed: Vec<ActionKind>,
        /// Why a usually possible action is not, when the case's facts decide it.
        note: Option<&'static str>,
    },
    /// The role may not take this action on this case (403).
    #[error("{role} may not {action} this case: {reason}")]
    Forbidden {
        role: Role,
        action: ActionKind,
        reason: ForbiddenReason,
    },
    /// The action's data is wrong (422).
    #[error("{action}: {error}")]
    Invalid {
        action: ActionKind,
        error: PayloadError,
    },
}

/// Why a role may not take an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForbiddenReason {
    #[error("only {} may do this", roles_list(.allowed))]
    Role { allowed: &'static [Role] },
    #[error("the case is dispatched to {}, not to the user's department {}",
        or_none(.case), or_none(.actor))]
    NotCaseDepartment {
        case: Option<DepartmentId>,
        actor: Option<DepartmentId>,
    },
    #[error("the case waits for inspector {assigned}, not {}", or_none(.actor))]
    NotAssignedInspector {
        assigned: UserId,
        actor: Option<UserId>,
    },
}

impl TransitionError {
    /// The HTTP status the API answers with: 409, 403 or 422.
    pub fn http_status(&self) -> u16 {
        match self {
            TransitionError::Illegal { .. } => 409,
            TransitionError::Forbidden { .. } => 403,
            TransitionError::Invalid { .. } => 422,
        }
    }
}

impl ActionKind {
    /// The roles that may take this action (in a state where it fits). Department handlers act only on
    /// cases of their department, inspectors only on cases waiting for them or for any inspector.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            ActionKind::Accept | ActionKind::RequestVerification => &[Operator, ShiftLead],
            ActionKind::RequestVoid | ActionKind::Callback => &[Operator],
            ActionKind::ReportVerification | ActionKind::CheckPass | ActionKind::CheckFail => {
                &[Inspector]
            }
            ActionKind::Register
            | ActionKind::Decline
            | ActionKind::ApproveVoid
            | ActionKind::RejectVoid
            | ActionKind::Close => &[ShiftLead],
            ActionKind::Dispatch
            | ActionKind::ApproveExtension
            | ActionKind::RejectExtension
            | ActionKind::ApproveSuspension
            | ActionKind::RejectSuspension => &[Dispatcher],
            ActionKind::Return
            | ActionKind::RequestExtension
            | ActionKind::RequestSuspension
            | ActionKind::Handle => &[DepartmentHandler],
            // The department knows when it can go on; the dispatcher may also lift a suspension.
            ActionKind::Resume => &[Dispatcher, DepartmentHandler],
            ActionKind::Reopen => &[ShiftLead, Supervisor],
        }
    }
}

impl CaseContext {
    /// A case from `source` with no verification policy, no department, no inspector and no actor.
    pub fn new(source: Source) -> Self {
        Self {
            source,
            verification_required: false,
            department: None,
            inspector: None,
            actor: None,
            actor_department: None,
        }
    }

    /// The same case, acted on by `actor` of `department`.
    pub fn acting(mut self, actor: Option<&str>, department: Option<&str>) -> Self {
        self.actor = actor.map(str::to_string);
        self.actor_department = department.map(str::to_string);
        self
    }

    /// Records the assignments a transition changes (department, inspector).
    pub fn apply(&mut self, transition: &Transition) {
        apply_change(&mut self.department, &transition.department);
        apply_change(&mut self.inspector, &transition.inspector);
    }
}

/// Decides one action on a case in `state`. Pure: on `Err` the caller keeps the old state.
pub fn transition(
    state: CaseState,
    action: &Action,
    role: Role,
    context: &CaseContext,
) -> Result<Transition, TransitionError> {
    let kind = action.kind();
    let fits_state = actions_of_state(state).contains(&kind);
    let note = if fits_state {
        blocked_by_facts(state, kind, context)
    } else {
        None
    };
    let illegal = || TransitionError::Illegal {
        state,
        action: kind,
        allowed: legal_actions(state, context),
        note,
    };
    if !fits_state || note.is_some() {
        return Err(illegal());
    }
    check_actor(kind, role, context).map_err(|reason| TransitionError::Forbidden {
        role,
        action: kind,
        reason,
    })?;
    let invalid = |error| TransitionError::Invalid {
        action: kind,
        error,
    };
    action.validate().map_err(invalid)?;
    outcome(state, action, context)
        .map_err(invalid)?
        .ok_or_else(illegal)
}

/// The actions `role` may take on a case in `state` now (for the UI's buttons).
pub fn allowed_actions(state: CaseState, role: Role, context: &CaseContext) -> Vec<ActionKind> {
    legal_actions(state, context)
        .into_iter()
        .filter(|kind| check_actor(*kind, role, context).is_ok())
        .collect()
}

/// The actions someone (any role) could take on a case in `state` with these facts.
pub fn legal_actions(state: CaseState, context: &CaseContext) -> Vec<ActionKind> {
    actions_of_state(state)
        .iter()
        .copied()
        .filter(|kind| blocked_by_facts(state, *kind, context).is_none())
        .collect()
}

/// The workflow, state by state. Declined and voided cases are final; a closed case can only be called
/// back or reopened, and a called-back case only reopened.
fn actions_of_state(state: CaseState) -> &'static [ActionKind] {
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

/// Facts of the case that rule out an action its state would allow.
fn blocked_by_facts(
    state: CaseState,
    kind: ActionKind,
    context: &CaseContext,
) -> Option<&'static str> {
    match (state, kind) {
        (CaseState::Reported, ActionKind::Accept) if context.verification_required => {
            Some("it must be verified by an inspector before it is accepted")
        }
        (CaseState::Closed, ActionKind::Callback) if !context.source.needs_callback() => {
            Some("only citizen and hotline cases are called back")
        }
        _ => None,
    }
}

fn check_actor(kind: ActionKind, role: Role, context: &CaseContext) -> Result<(), ForbiddenReason> {
    let allowed = kind.roles();
    if !allowed.contains(&role) {
        return Err(ForbiddenReason::Role { allowed });
    }
    match role {
        Role::DepartmentHandler => {
            let same =
                context.department.is_some() && context.department == context.actor_department;
            if !same {
                return Err(ForbiddenReason::NotCaseDepartment {
                    case: context.department.clone(),
                    actor: context.actor_department.clone(),
                });
            }
        }
        Role::Inspector => {
            let wrong_inspector = context
                .inspector
                .as_ref()
                .filter(|assigned| context.actor.as_ref() != Some(*assigned));
            if let Some(assigned) = wrong_inspector {
                return Err(ForbiddenReason::NotAssignedInspector {
                    assigned: assigned.clone(),
                    actor: context.actor.clone(),
                });
            }
        }
        _ => {}
    }
    Ok(())
}

/// The transition of an action that fits the state, taken by an allowed actor, with valid data.
fn outcome(
    state: CaseState,
    action: &Action,
    context: &CaseContext,
) -> Result<Option<Transition>, PayloadError> {
    use CaseState as S;
    let kind = action.kind();
    let step = |to, clock| Transition {
        from: state,
        to,
        action: kind,
        clock,
        department: Change::Keep,
        inspector: Change::Keep,
        counts_as_rework: false,
        counts_as_wrong_dispatch: false,
        counts_as_reopen: false,
    };
    let start = ClockEffect::Start;
    // Closing starts the callback clock when there is somebody to call back.
    let after_close = if context.source.needs_callback() {
        start(SlaStage::Callback)
    } else {
        ClockEffect::Stop
    };
    let transition = match (state, action) {
        (S::Reported, Action::Accept) => step(S::Accepted, start(SlaStage::Registration)),
        (S::Reported, Action::RequestVerification { inspector }) => Transition {
            inspector: Change::Set(inspector.clone()),
            ..step(S::Verifying, start(SlaStage::Verification))
        },
        // The acceptance clock runs on while the shift lead decides.
        (S::Reported, Action::RequestVoid { .. }) => step(S::VoidRequested, ClockEffect::Keep),
        (S::Verifying, Action::ReportVerification { valid: true, .. }) => Transition {
            inspector: Change::Clear,
            ..step(S::Accepted, start(SlaStage::Registration))
        },
        // Not valid: back to the operator, who will usually ask to void it.
        (S::Verifying, Action::ReportVerification { valid: false, .. }) => Transition {
            inspector: Change::Clear,
            ..step(S::Reported, start(SlaStage::Acceptance))
        },
        (S::VoidRequested, Action::ApproveVoid) => step(S::Voided, ClockEffect::Stop),
        (S::VoidRequested, Action::RejectVoid { .. }) => step(S::Reported, ClockEffect::Keep),
        (S::Accepted, Action::Register) => step(S::Registered, start(SlaStage::Dispatch)),
        (S::Accepted, Action::Decline { .. }) => step(S::Declined, ClockEffect::Stop),
        (S::Registered, Action::Dispatch { department }) => Transition {
            department: Change::Set(department.clone()),
            ..step(S::Dispatched, start(SlaStage::Handling))
        },
        (S::Dispatched, Action::Handle { .. }) => step(S::Handled, start(SlaStage::Check)),
        (S::Dispatched, Action::Return { .. }) => Transition {
            department: Change::Clear,
            counts_as_wrong_dispatch: true,
            ..step(S::Registered, start(SlaStage::Dispatch))
        },
        // Requests wait for the dispatcher while the handling clock runs on.
        (S::Dispatched, Action::RequestExtension { .. }) => {
            step(S::ExtensionRequested, ClockEffect::Keep)
        }
        (S::Dispatched, Action::RequestSuspension { .. }) => {
            step(S::SuspensionRequested, ClockEffect::Keep)
        }
        (S::ExtensionRequested, Action::ApproveExtension { minutes }) => {
            step(S::Dispatched, ClockEffect::Extend(*minutes))
        }
        (S::ExtensionRequested, Action::RejectExtension { .. }) => {
            step(S::Dispatched, ClockEffect::Keep)
        }
        (S::SuspensionRequested, Action::ApproveSuspension) => {
            step(S::Suspended, ClockEffect::Suspend)
        }
        (S::SuspensionRequested, Action::RejectSuspension { .. }) => {
            step(S::Dispatched, ClockEffect::Keep)
        }
        (S::Suspended, Action::Resume) => step(S::Dispatched, ClockEffect::Resume),
        // A case that cannot be solved leaves suspension only by a special closure.
        (S::Suspended, Action::Close { closure }) => {
            if *closure != ClosureType::Special {
                return Err(PayloadError {
                    field: "closure",
                    problem: PayloadProblem::ClosureNotAllowed {
                        closure: *closure,
                        state,
                    },
                });
            }
            step(S::Closed, after_close)
        }
        (S::Handled, Action::CheckPass) => Transition {
            inspector: Change::Clear,
            ..step(S::Checked, start(SlaStage::Closing))
        },
        (S::Handled, Action::CheckFail { .. }) => Transition {
            inspector: Change::Clear,
            counts_as_rework: true,
            ..step(S::Registered, start(SlaStage::Dispatch))
        },
        (S::Checked, Action::Close { .. }) => step(S::Closed, after_close),
        (S::Closed, Action::Callback { .. }) => step(S::Evaluated, ClockEffect::Stop),
        (S::Closed | S::Evaluated, Action::Reopen { .. }) => Transition {
            counts_as_reopen: true,
            ..step(S::Registered, start(SlaStage::Dispatch))
        },
        // `actions_of_state` lets through only the pairs above; a mismatch would be a bug (the tests try
        // every pair), answered as an illegal action rather than by a panic in a server.
        _ => return Ok(None),
    };
    Ok(Some(transition))
}

fn apply_change<T: Clone>(slot: &mut Option<T>, change: &Change<T>) {
    match change {
        Change::Keep => {}
        Change::Set(value) => *slot = Some(value.clone()),
        Change::Clear => *slot = None,
    }
}

fn kinds_list(kinds: &[ActionKind]) -> String {
    if kinds.is_empty() {
        return "nothing (the case is final)".to_string();
    }
    join(kinds.iter().map(|k| k.as_str()))
}

fn roles_list(roles: &[Role]) -> String {
    join(roles.iter().map(|r| r.as_str()))
}

fn join<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name}");
    }
    out
}

fn note_suffix(note: &Option<&'static str>) -> String {
    note.map(|n| format!(": {n}")).unwrap_or_default()
}

fn or_none(value: &Option<String>) -> String {
    value
        .as_deref()
        .map_or_else(|| "(none)".to_string(), |v| format!("{v:?}"))
}
