//! What a user asks the workflow to do with a case, with the data each step needs, checked.
//!
//! An [`Action`] is what the API receives (`{"action":"dispatch","department":"sanitation"}`); its
//! [`ActionKind`] is the same without the data, used for permissions, the UI's buttons and messages.
//! [`Action::validate`] checks the data alone (an empty reason, a satisfaction of 7, a zero extension);
//! whether the step fits the case is the state machine's business.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::labels::labelled_enum;
use super::state::CaseState;

/// A user id, as the user store spells it.
pub type UserId = String;

/// A department code (处置部门), as the department catalogue spells it.
pub type DepartmentId = String;

/// The longest free text (reason, note, feedback) an action may carry, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// The longest user or department id, in characters.
pub const MAX_ID_CHARS: usize = 128;

/// The most minutes one extension may ask for or grant: 30 working days of 8 hours.
pub const MAX_EXTENSION_MINUTES: u32 = 30 * 480;

/// The most photos one handling feedback may carry.
pub const MAX_EVIDENCE: usize = 20;

labelled_enum! {
    /// An action without its data.
    pub enum ActionKind {
        Accept => ("accept", "受理", "Accept"),
        RequestVerification => ("request_verification", "派发核实", "Request verification"),
        ReportVerification => ("report_verification", "核实反馈", "Report verification"),
        Register => ("register", "立案", "Register"),
        Decline => ("decline", "不予立案", "Decline"),
        RequestVoid => ("request_void", "申请作废", "Request void"),
        ApproveVoid => ("approve_void", "批准作废", "Approve void"),
        RejectVoid => ("reject_void", "驳回作废", "Reject void"),
        Dispatch => ("dispatch", "派遣", "Dispatch"),
        Return => ("return", "回退", "Return"),
        RequestExtension => ("request_extension", "申请延期", "Request extension"),
        ApproveExtension => ("approve_extension", "批准延期", "Approve extension"),
        RejectExtension => ("reject_extension", "驳回延期", "Reject extension"),
        RequestSuspension => ("request_suspension", "申请挂账", "Request suspension"),
        ApproveSuspension => ("approve_suspension", "批准挂账", "Approve suspension"),
        RejectSuspension => ("reject_suspension", "驳回挂账", "Reject suspension"),
        Resume => ("resume", "恢复处置", "Resume"),
        Handle => ("handle", "处置反馈", "Report handling"),
        CheckPass => ("check_pass", "核查通过", "Check passed"),
        CheckFail => ("check_fail", "核查不通过", "Check failed"),
        Close => ("close", "结案", "Close"),
        Callback => ("callback", "回访", "Call back"),
        Reopen => ("reopen", "重新办理", "Reopen"),
    }
}

labelled_enum! {
    /// Where a case came from (信息收集).
    pub enum Source {
        /// 监督员上报: an inspector's patrol report.
        Inspector => ("inspector", "监督员上报", "Inspector report"),
        /// 公众举报: a citizen's report (app, mini-program, web).
        Citizen => ("citizen", "公众举报", "Citizen report"),
        /// 12345 hotline.
        Hotline => ("hotline", "12345热线", "12345 hotline"),
        /// A sensor alarm (manhole tilt, water level, …).
        Sensor => ("sensor", "传感器告警", "Sensor alarm"),
        /// A camera's AI event.
        Camera => ("camera", "视频智能识别", "Camera AI event"),
        /// 领导交办: a leader's instruction.
        Leader => ("leader", "领导交办", "Leader instruction"),
    }
}

impl Source {
    /// Citizen and hotline cases are called back (回访) after closing; the others have nobody to call.
    pub fn needs_callback(self) -> bool {
        matches!(self, Source::Citizen | Source::Hotline)
    }
}

labelled_enum! {
    /// How a case was closed (结案类型).
    pub enum ClosureType {
        /// Handled and checked in time.
        Normal => ("normal", "正常结案", "Normal"),
        /// Handled and checked, but a stage ran over its limit.
        Overdue => ("overdue", "超期结案", "Overdue"),
        /// The case turned out to be wrong (no such problem, wrong place) after it was registered.
        Erroneous => ("erroneous", "误报结案", "Erroneous"),
        /// Closed without regular handling by decision (e.g. a suspended case that cannot be solved).
        Special => ("special", "特殊结案", "Special"),
    }
}

/// One step asked of the workflow, with its data. Serialized with the kind in `action`:
/// `{"action":"request_extension","minutes":480,"reason":"parts on order"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// 受理: the report is a city-management case.
    Accept,
    /// Sends an inspector to verify the report (核实) before accepting it.
    RequestVerification {
        inspector: UserId,
    },
    /// The inspector's verification: valid (the case is accepted) or not (back to the operator, with a note).
    ReportVerification {
        valid: bool,
        #[serde(default)]
        note: String,
    },
    /// 立案.
    Register,
    /// 不予立案, with the reason the reporter will be told.
    Decline {
        reason: String,
    },
    /// Asks the shift lead to void the report (duplicate, not a city-management matter, …).
    RequestVoid {
        reason: String,
    },
    ApproveVoid,
    RejectVoid {
        reason: String,
    },
    /// 派遣 to the responsible department.
    Dispatch {
        department: DepartmentId,
    },
    /// 回退: the department says the case is not theirs; back to the dispatcher. Counts against dispatch accuracy.
    Return {
        reason: String,
    },
    /// 延期: asks for more handling time.
    RequestExtension {
        minutes: u32,
        reason: String,
    },
    /// Grants an extension of `minutes`: the dispatcher may grant less (or more) than asked.
    ApproveExtension {
        minutes: u32,
    },
    RejectExtension {
        reason: String,
    },
    /// 挂账: asks to suspend a case that cannot be solved for now; the clock stops once approved.
    RequestSuspension {
        reason: String,
    },
    ApproveSuspension,
    RejectSuspension {
        reason: String,
    },
    /// Ends a suspension: the department handles the case again and its clock runs again.
    Resume,
    /// 处置反馈: what was done, with photo evidence (SHA-256 of each stored photo, 64 hex digits).
    Handle {
        feedback: String,
        evidence: Vec<String>,
    },
    /// 核查通过.
    CheckPass,
    /// 核查不通过: back to dispatch as rework (返工).
    CheckFail {
        reason: String,
    },
    /// 结案.
    Close {
        closure: ClosureType,
    },
    /// 回访: the citizen's satisfaction, 1 (very dissatisfied) to 5 (very satisfied).
    Callback {
        satisfaction: u8,
        #[serde(default)]
        note: String,
    },
    /// Reopens a closed case (the problem came back, the citizen disagrees): back to dispatch.
    Reopen {
        reason: String,
    },
}

/// Why an action's data was refused: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct PayloadError {
    pub field: &'static str,
    pub problem: PayloadProblem,
}

/// What is wrong with one field of an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadProblem {
    #[error("must not be empty")]
    Empty,
    #[error("is longer than {max} characters")]
    TooLong { max: usize },
    #[error("must not contain control characters")]
    ControlCharacter,
    #[error("must be between {min} and {max}, not {got}")]
    OutOfRange { min: u32, max: u32, got: u32 },
    #[error("must be SHA-256 digests written as 64 hexadecimal digits, not {0:?}")]
    NotSha256(String),
    #[error("lists {0:?} twice")]
    Duplicate(String),
    #[error("may list at most {max} items")]
    TooMany { max: usize },
    #[error("{closure} is not how a {state} case can be closed")]
    ClosureNotAllowed {
        closure: ClosureType,
        state: CaseState,
    },
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Accept => ActionKind::Accept,
            Action::RequestVerification { .. } => ActionKind::RequestVerification,
            Action::ReportVerification { .. } => ActionKind::ReportVerification,
            Action::Register => ActionKind::Register,
            Action::Decline { .. } => ActionKind::Decline,
            Action::RequestVoid { .. } => ActionKind::RequestVoid,
            Action::ApproveVoid => ActionKind::ApproveVoid,
            Action::RejectVoid { .. } => ActionKind::RejectVoid,
            Action::Dispatch { .. } => ActionKind::Dispatch,
            Action::Return { .. } => ActionKind::Return,
            Action::RequestExtension { .. } => ActionKind::RequestExtension,
            Action::ApproveExtension { .. } => ActionKind::ApproveExtension,
            Action::RejectExtension { .. } => ActionKind::RejectExtension,
            Action::RequestSuspension { .. } => ActionKind::RequestSuspension,
            Action::ApproveSuspension => ActionKind::ApproveSuspension,
            Action::RejectSuspension { .. } => ActionKind::RejectSuspension,
            Action::Resume => ActionKind::Resume,
            Action::Handle { .. } => ActionKind::Handle,
            Action::CheckPass => ActionKind::CheckPass,
            Action::CheckFail { .. } => ActionKind::CheckFail,
            Action::Close { .. } => ActionKind::Close,
            Action::Callback { .. } => ActionKind::Callback,
            Action::Reopen { .. } => ActionKind::Reopen,
        }
    }

    /// Checks the data of the action on its own (not whether it fits the case).
    pub fn validate(&self) -> Result<(), PayloadError> {
        match self {
            Action::Accept
            | Action::Register
            | Action::ApproveVoid
            | Action::ApproveSuspension
            | Action::Resume
            | Action::CheckPass
            | Action::Close { .. } => Ok(()),
            Action::RequestVerification { inspector } => check_id("inspector", inspector),
            Action::Dispatch { department } => check_id("department", department),
            Action::ReportVerification { valid, note } => {
                // A valid report needs no words; an invalid one must say what the inspector found.
                if *valid {
                    check_optional_text("note", note)
                } else {
                    check_text("note", note)
                }
            }
            Action::Decline { reason }
            | Action::RequestVoid { reason }
            | Action::RejectVoid { reason }
            | Action::Return { reason }
            | Action::RejectExtension { reason }
            | Action::RequestSuspension { reason }
            | Action::RejectSuspension { reason }
            | Action::CheckFail { reason }
            | Action::Reopen { reason } => check_text("reason", reason),
            Action::RequestExtension { minutes, reason } => {
                check_range("minutes", *minutes, 1, MAX_EXTENSION_MINUTES)?;
                check_text("reason", reason)
            }
            Action::ApproveExtension { minutes } => {
                check_range("minutes", *minutes, 1, MAX_EXTENSION_MINUTES)
            }
            Action::Handle { feedback, evidence } => {
                check_text("feedback", feedback)?;
                check_evidence(evidence)
            }
            Action::Callback { satisfaction, note } => {
                check_range("satisfaction", u32::from(*satisfaction), 1, 5)?;
                check_optional_text("note", note)
            }
        }
    }
}

fn problem(field: &'static str, problem: PayloadProblem) -> PayloadError {
    PayloadError { field, problem }
}

fn check_optional_text(field: &'static str, text: &str) -> Result<(), PayloadError> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(problem(
            field,
            PayloadProblem::TooLong {
                max: MAX_TEXT_CHARS,
            },
        ));
    }
    Ok(())
}

/// Free text that must say something: not empty or blank. Line breaks are fine in free text.
fn check_text(field: &'static str, text: &str) -> Result<(), PayloadError> {
    if text.trim().is_empty() {
        return Err(problem(field, PayloadProblem::Empty));
    }
    check_optional_text(field, text)
}

/// Ids end up in URLs, logs and filters: no blanks around them, no control characters.
fn check_id(field: &'static str, id: &str) -> Result<(), PayloadError> {
    if id.trim().is_empty() {
        return Err(problem(field, PayloadProblem::Empty));
    }
    if id.chars().count() > MAX_ID_CHARS {
        return Err(problem(
            field,
            PayloadProblem::TooLong { max: MAX_ID_CHARS },
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(problem(field, PayloadProblem::ControlCharacter));
    }
    Ok(())
}

fn check_range(field: &'static str, got: u32, min: u32, max: u32) -> Result<(), PayloadError> {
    if got < min || got > max {
        return Err(problem(field, PayloadProblem::OutOfRange { min, max, got }));
    }
    Ok(())
}

/// At least one photo, at most [`MAX_EVIDENCE`], each a distinct SHA-256 digest in hex.
fn check_evidence(evidence: &[String]) -> Result<(), PayloadError> {
    const FIELD: &str = "evidence";
    if evidence.is_empty() {
        return Err(problem(FIELD, PayloadProblem::Empty));
    }
    if evidence.len() > MAX_EVIDENCE {
        return Err(problem(
            FIELD,
            PayloadProblem::TooMany { max: MAX_EVIDENCE },
        ));
    }
    let mut seen = BTreeSet::new();
    for hash in evidence {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(problem(FIELD, PayloadProblem::NotSha256(hash.clone())));
        }
        if !seen.insert(hash.to_ascii_lowercase()) {
            return Err(problem(FIELD, PayloadProblem::Duplicate(hash.clone())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::labels::assert_labelled_enum;

    const PHOTO: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn kind_source_and_closure_names_are_stable() {
        assert_labelled_enum!(ActionKind);
        assert_labelled_enum!(Source);
        assert_labelled_enum!(ClosureType);
        assert_eq!(ActionKind::ALL.len(), 23);
    }

    #[test]
    fn actions_are_tagged_json_and_the_tag_is_the_kind_name() {
        let dispatch: Action =
            serde_json::from_str(r#"{"action":"dispatch","department":"sanitation"}"#).unwrap();
        assert_eq!(
            dispatch,
            Action::Dispatch {
                department: "sanitation".to_string()
            }
        );
        let close = Action::Close {
            closure: ClosureType::Overdue,
        };
        assert_eq!(
            serde_json::to_string(&close).unwrap(),
            r#"{"action":"close","closure":"overdue"}"#
        );
        assert_eq!(
            serde_json::to_string(&Action::Accept).unwrap(),
            r#"{"action":"accept"}"#
        );
        let callback: Action =
            serde_json::from_str(r#"{"action":"callback","satisfaction":4}"#).unwrap();
        assert_eq!(
            callback,
            Action::Callback {
                satisfaction: 4,
                note: String::new()
            }
        );
        let back: Action =
            serde_json::from_str(r#"{"action":"return","reason":"not ours"}"#).unwrap();
        assert_eq!(back.kind(), ActionKind::Return);
        for bad in [
            r#"{"action":"teleport"}"#,
            r#"{"action":"dispatch"}"#,
            r#"{"action":"dispatch","department":"x","urgent":true}"#,
            r#"{"action":"callback","satisfaction":400}"#,
        ] {
            assert!(serde_json::from_str::<Action>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reasons_must_say_something() {
        for reason in ["", "   ", "\n"] {
            let err = Action::Decline {
                reason: reason.to_string(),
            }
            .validate()
            .unwrap_err();
            assert_eq!(
                err,
                PayloadError {
                    field: "reason",
                    problem: PayloadProblem::Empty
                }
            );
        }
        let long = "字".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(
            Action::Reopen { reason: long }
                .validate()
                .unwrap_err()
                .problem,
            PayloadProblem::TooLong {
                max: MAX_TEXT_CHARS
            }
        );
        assert!(
            Action::Reopen {
                reason: "字".repeat(MAX_TEXT_CHARS)
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn an_invalid_verification_needs_a_note_and_a_valid_one_does_not() {
        assert!(
            Action::ReportVerification {
                valid: true,
                note: String::new()
            }
            .validate()
            .is_ok()
        );
        assert_eq!(
            Action::ReportVerification {
                valid: false,
                note: " ".to_string()
            }
            .validate()
            .unwrap_err()
            .field,
            "note"
        );
    }

    #[test]
    fn ids_are_checked() {
        assert!(
            Action::Dispatch {
                department: "".to_string()
            }
            .validate()
            .is_err()
        );
        assert!(
            Action::Dispatch {
                department: "a\u{0}b".to_string()
            }
            .validate()
            .is_err()
        );
        assert!(
            Action::Dispatch {
                department: "x".repeat(MAX_ID_CHARS + 1)
            }
            .validate()
            .is_err()
        );
        assert!(
            Action::RequestVerification {
                inspector: "insp-07".to_string()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn extensions_and_satisfaction_are_in_range() {
        let extension = |minutes| Action::RequestExtension {
            minutes,
            reason: "parts".to_string(),
        };
        assert_eq!(
            extension(0).validate().unwrap_err().problem,
            PayloadProblem::OutOfRange {
                min: 1,
                max: MAX_EXTENSION_MINUTES,
                got: 0
            }
        );
        assert!(extension(MAX_EXTENSION_MINUTES).validate().is_ok());
        assert!(extension(MAX_EXTENSION_MINUTES + 1).validate().is_err());
        assert!(Action::ApproveExtension { minutes: 0 }.validate().is_err());
        for satisfaction in [0, 6, 255] {
            let err = Action::Callback {
                satisfaction,
                note: String::new(),
            }
            .validate()
            .unwrap_err();
            assert_eq!(err.field, "satisfaction");
        }
        for satisfaction in 1..=5 {
            assert!(
                Action::Callback {
                    satisfaction,
                    note: String::new()
                }
                .validate()
                .is_ok()
            );
        }
    }

    #[test]
    fn handling_needs_feedback_and_distinct_photo_digests() {
        let handle = |evidence: &[&str]| Action::Handle {
            feedback: "cover replaced".to_string(),
            evidence: evidence.iter().map(|s| s.to_string()).collect(),
        };
        assert!(handle(&[PHOTO]).validate().is_ok());
        assert_eq!(
            handle(&[]).validate().unwrap_err().problem,
            PayloadProblem::Empty
        );
        assert!(matches!(
            handle(&["not-a-hash"]).validate().unwrap_err().problem,
            PayloadProblem::NotSha256(_)
        ));
        let upper = PHOTO.to_ascii_uppercase();
        assert!(matches!(
            handle(&[PHOTO, &upper]).validate().unwrap_err().problem,
            PayloadProblem::Duplicate(_)
        ));
        let many: Vec<String> = (0..=MAX_EVIDENCE).map(|i| format!("{i:064x}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            handle(&many).validate().unwrap_err().problem,
            PayloadProblem::TooMany { max: MAX_EVIDENCE }
        );
        let no_feedback = Action::Handle {
            feedback: String::new(),
            evidence: vec![PHOTO.to_string()],
        };
        assert_eq!(no_feedback.validate().unwrap_err().field, "feedback");
    }
}
