//! Who acts on a case: the roles of the supervision centre, the command centre and the departments.

use super::labels::labelled_enum;

labelled_enum! {
    /// A user's role in the case workflow. Which role may take which action is part of the state
    /// machine ([`ActionKind::roles`](super::ActionKind::roles)).
    pub enum Role {
        /// Receives reports, accepts them or has them verified, asks to void them, calls citizens back.
        Operator => ("operator", "受理员", "Operator"),
        /// Registers or declines accepted cases, decides void requests, closes, may reopen.
        ShiftLead => ("shift_lead", "值班长", "Shift lead"),
        /// Dispatches to departments, decides their extension and suspension requests, resumes.
        Dispatcher => ("dispatcher", "派遣员", "Dispatcher"),
        /// A member of a handling department (处置部门); acts only on cases dispatched to that department.
        DepartmentHandler => ("department_handler", "处置部门人员", "Department handler"),
        /// Field inspector (监督员): verifies reports and checks the handling on site.
        Inspector => ("inspector", "监督员", "Inspector"),
        /// Oversees performance (督查); reads everything and may reopen a closed case, nothing else.
        Supervisor => ("supervisor", "督查人员", "Supervisor"),
        /// Manages users and configuration; takes no step in the workflow, so no account that can change
        /// the rules can also change the outcome of a case.
        Admin => ("admin", "系统管理员", "Administrator"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::labels::assert_labelled_enum;

    #[test]
    fn role_names_are_stable() {
        assert_labelled_enum!(Role);
        assert_eq!(Role::ALL.len(), 7);
        assert_eq!(Role::parse("shift_lead"), Some(Role::ShiftLead));
        assert_eq!(Role::DepartmentHandler.label_zh(), "处置部门人员");
    }
}
