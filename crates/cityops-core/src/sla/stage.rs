//! The timed stages of a case, how their time is counted, and what a workflow step does to the clock.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One timed stage of the case workflow. Each has its own limit, configured per category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaStage {
    /// 受理: from the report until the operator accepts it (or has it verified, or asks to void it).
    Acceptance,
    /// 核实: the inspector sent to verify a report.
    Verification,
    /// 立案: from acceptance until the shift lead registers or declines the case.
    Registration,
    /// 派遣: from registration (or a return, a failed check, a reopening) until dispatch.
    Dispatch,
    /// 处置: the department's handling, until its feedback. Suspension stops it, extension moves it.
    Handling,
    /// 核查: the inspector's check of the handling on site.
    Check,
    /// 结案: from a passed check until the shift lead closes the case.
    Closing,
    /// 回访: calling the citizen back after closing (citizen and hotline cases only).
    Callback,
}

impl SlaStage {
    pub const ALL: [SlaStage; 8] = [
        SlaStage::Acceptance,
        SlaStage::Verification,
        SlaStage::Registration,
        SlaStage::Dispatch,
        SlaStage::Handling,
        SlaStage::Check,
        SlaStage::Closing,
        SlaStage::Callback,
    ];

    /// The snake_case name used in JSON and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaStage::Acceptance => "acceptance",
            SlaStage::Verification => "verification",
            SlaStage::Registration => "registration",
            SlaStage::Dispatch => "dispatch",
            SlaStage::Handling => "handling",
            SlaStage::Check => "check",
            SlaStage::Closing => "closing",
            SlaStage::Callback => "callback",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            SlaStage::Acceptance => "受理",
            SlaStage::Verification => "核实",
            SlaStage::Registration => "立案",
            SlaStage::Dispatch => "派遣",
            SlaStage::Handling => "处置",
            SlaStage::Check => "核查",
            SlaStage::Closing => "结案",
            SlaStage::Callback => "回访",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            SlaStage::Acceptance => "Acceptance",
            SlaStage::Verification => "Verification",
            SlaStage::Registration => "Registration",
            SlaStage::Dispatch => "Dispatch",
            SlaStage::Handling => "Handling",
            SlaStage::Check => "Check",
            SlaStage::Closing => "Closing",
            SlaStage::Callback => "Callback",
        }
    }
}

impl fmt::Display for SlaStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the time of a stage is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    /// Only the working periods of working days count (the default for ordinary categories).
    WorkingTime,
    /// Every minute counts, nights and holidays included (emergencies: waterlogging, road collapse, …).
    #[serde(rename = "continuous_24h")]
    Continuous24h,
}

/// What one workflow step does to the stage clock of the case. The case machine says which; the store
/// applies it to the persisted [`StageClock`](super::StageClock) with the instant of the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockEffect {
    /// The running stage goes on (e.g. a request is waiting for approval: the clock does not wait).
    Keep,
    /// The running stage ends and this one starts, with the limit configured for the case's category.
    Start(SlaStage),
    /// The running stage ends and no other starts (the case is finished, or waits for nothing timed).
    Stop,
    /// The running stage pauses (挂账 approved).
    Suspend,
    /// The paused stage goes on.
    Resume,
    /// The running stage gets this many more minutes (延期 approved).
    Extend(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_match_serde_and_parse_back() {
        for stage in SlaStage::ALL {
            let json = serde_json::to_string(&stage).unwrap();
            assert_eq!(json, format!("\"{}\"", stage.as_str()));
            assert_eq!(SlaStage::parse(stage.as_str()), Some(stage));
            assert!(!stage.label_zh().is_empty() && !stage.label_en().is_empty());
        }
        assert_eq!(SlaStage::parse("lunch"), None);
    }

    #[test]
    fn clock_kinds_and_effects_have_stable_json() {
        assert_eq!(
            serde_json::to_string(&ClockKind::Continuous24h).unwrap(),
            "\"continuous_24h\""
        );
        assert_eq!(
            serde_json::to_string(&ClockKind::WorkingTime).unwrap(),
            "\"working_time\""
        );
        assert_eq!(
            serde_json::to_string(&ClockEffect::Start(SlaStage::Handling)).unwrap(),
            r#"{"start":"handling"}"#
        );
        assert_eq!(
            serde_json::to_string(&ClockEffect::Extend(240)).unwrap(),
            r#"{"extend":240}"#
        );
        assert_eq!(
            serde_json::to_string(&ClockEffect::Stop).unwrap(),
            "\"stop\""
        );
    }
}
