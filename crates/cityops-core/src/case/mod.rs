//! Cases of the GB/T 30428 workflow: who acts, in which states, with which actions, and case numbers.
//!
//! A case runs 受理 → 立案 → 派遣 → 处置 → 核查 → 结案 → 评价 (accept, register, dispatch, handle,
//! check, close, call back), with the side paths the standard and real centres know: verification before
//! acceptance (核实), declining (不予立案), voiding with approval (作废), return by the department as wrongly
//! dispatched (回退), extension (延期) and suspension (挂账) on request, rework after a failed check (返工)
//! and reopening a closed case.
//!
//! Everything here is pure: [`transition`] decides an action and describes its effects (new state, SLA
//! clock, assignments, counters for the indicators); the store records them, the API answers with them.
//!
//! The roles and their actions (a department handler acts only on its department's cases, an inspector
//! only on cases waiting for any inspector or for them):
//!
//! | role | actions |
//! |---|---|
//! | operator 受理员 | accept, request_verification, request_void, callback |
//! | shift lead 值班长 | accept, request_verification, register, decline, approve_void, reject_void, close, reopen |
//! | dispatcher 派遣员 | dispatch, approve/reject_extension, approve/reject_suspension, resume |
//! | department handler 处置部门人员 | handle, return, request_extension, request_suspension, resume |
//! | inspector 监督员 | report_verification, check_pass, check_fail |
//! | supervisor 督查人员 | reopen |
//! | admin 系统管理员 | nothing: administrators manage users and rules, never case outcomes |

mod action;
mod labels;
mod machine;
mod number;
mod role;
mod state;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use action::{
    Action, ActionKind, ClosureType, DepartmentId, MAX_EVIDENCE, MAX_EXTENSION_MINUTES,
    MAX_ID_CHARS, MAX_TEXT_CHARS, PayloadError, PayloadProblem, Source, UserId,
};
pub use machine::{
    CaseContext, Change, ForbiddenReason, Transition, TransitionError, allowed_actions,
    legal_actions, transition,
};
pub use number::{CaseNumber, CaseNumberError, case_number};
pub use role::Role;
pub use state::CaseState;
