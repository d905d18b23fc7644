//! The states of a case, with the numeric codes the store keeps and the SLA stage each one runs.
//!
//! Codes 1 and 3 to 8 are those of a deployed system (reported 1, accepted 3, registered 4, dispatched 5,
//! handled 6, suspension requested 7, suspended 8), so its data can be migrated as is; 0 is that system's
//! draft, which is not a case here (drafts stay on the inspector's device); the rest are new.

use super::action::Source;
use super::labels::labelled_enum;
use crate::sla::SlaStage;

labelled_enum! {
    /// Where a case is in the workflow 受理 → 立案 → 派遣 → 处置 → 核查 → 结案 → 评价.
    pub enum CaseState {
        /// 上报, waiting for acceptance by an operator.
        Reported => ("reported", "待受理", "Reported"),
        /// An inspector was sent to verify the report (核实).
        Verifying => ("verifying", "核实中", "Verifying"),
        /// The operator asked to void the report (duplicate, not a city-management matter); the shift lead decides.
        VoidRequested => ("void_requested", "作废待审批", "Void requested"),
        /// 已受理, waiting for the shift lead to register it.
        Accepted => ("accepted", "待立案", "Accepted"),
        /// 已立案, waiting for dispatch (again after a return, a failed check or a reopening).
        Registered => ("registered", "待派遣", "Registered"),
        /// 已派遣, the department is handling it.
        Dispatched => ("dispatched", "待处置", "Dispatched"),
        /// The department asked for more time (延期); the dispatcher decides. The clock keeps running.
        ExtensionRequested => ("extension_requested", "延期待审批", "Extension requested"),
        /// The department asked to suspend (挂账); the dispatcher decides. The clock keeps running.
        SuspensionRequested => ("suspension_requested", "挂账待审批", "Suspension requested"),
        /// 挂账: cannot be solved for now; the handling clock is stopped.
        Suspended => ("suspended", "已挂账", "Suspended"),
        /// The department fed back its handling with evidence; waiting for the inspector's check (核查).
        Handled => ("handled", "待核查", "Handled"),
        /// The check passed; waiting for the shift lead to close.
        Checked => ("checked", "待结案", "Checked"),
        /// 结案. Citizen and hotline cases wait here for the callback (回访).
        Closed => ("closed", "已结案", "Closed"),
        /// Closed and called back (回访), with the citizen's satisfaction.
        Evaluated => ("evaluated", "已回访", "Evaluated"),
        /// 不予立案: not registered. Final.
        Declined => ("declined", "不予立案", "Declined"),
        /// 作废: voided with the shift lead's approval. Final.
        Voided => ("voided", "已作废", "Voided"),
    }
}

impl CaseState {
    /// Where every case starts.
    pub const INITIAL: CaseState = CaseState::Reported;

    /// The stable numeric code the store keeps.
    pub fn code(self) -> u8 {
        match self {
            CaseState::Reported => 1,
            CaseState::Verifying => 2,
            CaseState::Accepted => 3,
            CaseState::Registered => 4,
            CaseState::Dispatched => 5,
            CaseState::Handled => 6,
            CaseState::SuspensionRequested => 7,
            CaseState::Suspended => 8,
            CaseState::ExtensionRequested => 9,
            CaseState::Checked => 10,
            CaseState::Closed => 11,
            CaseState::Evaluated => 12,
            CaseState::Declined => 13,
            CaseState::VoidRequested => 14,
            CaseState::Voided => 15,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|state| state.code() == code)
    }

    /// No action at all is possible any more (declined, voided).
    pub fn is_final(self) -> bool {
        matches!(self, CaseState::Declined | CaseState::Voided)
    }

    /// Closed, called back or not: only a callback or a reopening can follow.
    pub fn is_closed(self) -> bool {
        matches!(self, CaseState::Closed | CaseState::Evaluated)
    }

    /// The SLA stage whose clock runs in this state, if any. The store uses it to check, after a restart,
    /// that the persisted clock belongs to the case's state; the machine's clock effects agree with it.
    pub fn sla_stage(self, source: Source) -> Option<SlaStage> {
        match self {
            CaseState::Reported | CaseState::VoidRequested => Some(SlaStage::Acceptance),
            CaseState::Verifying => Some(SlaStage::Verification),
            CaseState::Accepted => Some(SlaStage::Registration),
            CaseState::Registered => Some(SlaStage::Dispatch),
            CaseState::Dispatched
            | CaseState::ExtensionRequested
            | CaseState::SuspensionRequested
            | CaseState::Suspended => Some(SlaStage::Handling),
            CaseState::Handled => Some(SlaStage::Check),
            CaseState::Checked => Some(SlaStage::Closing),
            CaseState::Closed if source.needs_callback() => Some(SlaStage::Callback),
            CaseState::Closed | CaseState::Evaluated | CaseState::Declined | CaseState::Voided => {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::labels::assert_labelled_enum;

    #[test]
    fn state_names_are_stable() {
        assert_labelled_enum!(CaseState);
        assert_eq!(CaseState::ALL.len(), 15);
    }

    #[test]
    fn codes_are_unique_and_keep_the_deployed_ones() {
        let deployed = [
            (CaseState::Reported, 1),
            (CaseState::Accepted, 3),
            (CaseState::Registered, 4),
            (CaseState::Dispatched, 5),
            (CaseState::Handled, 6),
            (CaseState::SuspensionRequested, 7),
            (CaseState::Suspended, 8),
        ];
        for (state, code) in deployed {
            assert_eq!(state.code(), code, "{state}");
        }
        let codes: std::collections::BTreeSet<u8> =
            CaseState::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes.len(), CaseState::ALL.len());
        for &state in CaseState::ALL {
            assert_eq!(CaseState::from_code(state.code()), Some(state));
        }
        assert_eq!(CaseState::from_code(0), None, "drafts are not cases");
        assert_eq!(CaseState::from_code(16), None);
    }

    #[test]
    fn the_suspended_case_is_still_in_handling_and_callbacks_only_run_for_citizens() {
        assert_eq!(
            CaseState::Suspended.sla_stage(Source::Sensor),
            Some(SlaStage::Handling)
        );
        assert_eq!(
            CaseState::Closed.sla_stage(Source::Hotline),
            Some(SlaStage::Callback)
        );
        assert_eq!(CaseState::Closed.sla_stage(Source::Camera), None);
        assert_eq!(CaseState::Voided.sla_stage(Source::Citizen), None);
    }
}
