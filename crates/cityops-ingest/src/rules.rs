//! Rules: thresholds with hysteresis and an optional minimum duration, one open incident per device and rule.
//!
//! A rule watches one measurement of one device kind. It opens when the value crosses the threshold (and has
//! stayed across it for `min_duration_secs`, if set) and clears only when the value is back on the normal
//! side of the `clear` level, so a value wobbling around the threshold opens one incident, not many.
//! [`RuleState`] is per device and rule and the evaluation is a pure function of the state, the value and
//! the time it arrived, so it is tested with controlled time.

use std::time::Duration;

use cityops_core::{Catalogue, Value, category::CategoryError};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// A comparison of the watched value with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// A rule as written in the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique id, e.g. `manhole_tilt`.
    pub id: String,
    /// Device kind it applies to.
    pub kind: String,
    /// Measurement it watches.
    pub measurement: String,
    pub op: Op,
    /// The limit: a number for `> >= < <=`, any value for `== !=`.
    pub threshold: Value,
    /// Hysteresis: once open, the incident clears only when the value is on the normal side of this level
    /// (below it for `>`/`>=`, above it for `<`/`<=`). Without it, clearing happens as soon as the rule no
    /// longer holds.
    #[serde(default)]
    pub clear: Option<f64>,
    /// The rule must hold this long (by arrival time) before an incident opens.
    #[serde(default)]
    pub min_duration_secs: u64,
    /// Category code of the incident (`E0503`, …), from the catalogue.
    pub category: String,
    /// What an incident of this rule does in the case workflow.
    #[serde(default)]
    pub case: CaseFiling,
}

/// How a rule's incidents become cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseFiling {
    /// A reported case waits in the operator's queue (受理).
    #[default]
    Queue,
    /// Emergencies: the case is registered automatically and waits for dispatch.
    Register,
    /// Incidents only; no case.
    None,
}

/// Why a rule in the configuration is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("rule {id}: {source}")]
    Category { id: String, source: CategoryError },
    #[error("rule {id}: operator {op} needs a numeric threshold")]
    NonNumericThreshold { id: String, op: &'static str },
    #[error(
        "rule {id}: clear level {clear} is on the abnormal side of threshold {threshold} (no hysteresis band)"
    )]
    ClearOnWrongSide {
        id: String,
        clear: f64,
        threshold: f64,
    },
    #[error("rule {id}: a clear level only applies to <, <=, > and >=")]
    ClearWithEquality { id: String },
    #[error("rule id {0:?} is used twice")]
    Duplicate(String),
}

/// A checked rule, with its category names resolved.
#[derive(Debug, Clone)]
pub struct Rule {
    pub config: RuleConfig,
    pub category_name_zh: String,
    pub category_name_en: String,
    pub min_duration: Duration,
}

impl Rule {
    pub fn new(config: RuleConfig, catalogue: &Catalogue) -> Result<Self, RuleError> {
        let category = catalogue
            .get(&config.category)
            .map_err(|source| RuleError::Category {
                id: config.id.clone(),
                source,
            })?;
        let numeric = matches!(config.op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
        if numeric {
            let Some(threshold) = config.threshold.as_f64() else {
                return Err(RuleError::NonNumericThreshold {
                    id: config.id.clone(),
                    op: config.op.symbol(),
                });
            };
            if let Some(clear) = config.clear {
                let wrong_side = match config.op {
                    Op::Gt | Op::Ge => clear > threshold,
                    _ => clear < threshold,
                };
                if wrong_side || !clear.is_finite() {
                    return Err(RuleError::ClearOnWrongSide {
                        id: config.id.clone(),
                        clear,
                        threshold,
                    });
                }
            }
        } else if config.clear.is_some() {
            return Err(RuleError::ClearWithEquality {
                id: config.id.clone(),
            });
        }
        Ok(Self {
            category_name_zh: category.name_zh.clone(),
            category_name_en: category.name_en.clone(),
            min_duration: Duration::from_secs(config.min_duration_secs),
            config,
        })
    }

    /// `tilt > 15`, as shown to people.
    pub fn condition(&self) -> String {
        let threshold = match &self.config.threshold {
            Value::Number(v) => v.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Text(t) => format!("{t:?}"),
        };
        let mut s = format!(
            "{} {} {}",
            self.config.measurement,
            self.config.op.symbol(),
            threshold
        );
        if self.config.min_duration_secs > 0 {
            s.push_str(&format!(" for {} s", self.config.min_duration_secs));
        }
        s
    }

    /// Whether the value breaks the rule; `None` when the value has a type the rule cannot compare.
    pub fn is_abnormal(&self, value: &Value) -> Option<bool> {
        let c = &self.config;
        match c.op {
            Op::Eq => Some(value == &c.threshold),
            Op::Ne => Some(value != &c.threshold),
            op => {
                let (v, t) = (value.as_f64()?, c.threshold.as_f64()?);
                Some(match op {
                    Op::Gt => v > t,
                    Op::Ge => v >= t,
                    Op::Lt => v < t,
                    Op::Le => v <= t,
                    Op::Eq | Op::Ne => unreachable!("handled above"),
                })
            }
        }
    }

    /// Whether an open incident may clear on this value (the hysteresis band keeps it open).
    fn is_back_to_normal(&self, value: &Value) -> Option<bool> {
        let abnormal = self.is_abnormal(value)?;
        match (self.config.clear, value.as_f64()) {
            (Some(clear), Some(v)) => Some(match self.config.op {
                Op::Gt | Op::Ge => v < clear,
                _ => v > clear,
            }),
            _ => Some(!abnormal),
        }
    }
}

/// The state of one rule on one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RuleState {
    #[default]
    Normal,
    /// Abnormal since `since`, waiting for the minimum duration; `first` is the first abnormal value.
    Pending {
        since: Instant,
        first: Value,
        first_time: i64,
    },
    /// An incident is open.
    Open { incident_id: i64 },
}

/// What one evaluation decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to report.
    None,
    /// Open an incident; `first` is the first abnormal value when a minimum duration applied.
    Open { first: Option<(Value, i64)> },
    /// Clear the open incident.
    Clear { incident_id: i64 },
    /// The value has a type the rule cannot compare (counted, not applied).
    TypeMismatch,
}

/// Evaluates one value that arrived at `now` (measured at `time`, Unix ms). On `Outcome::Open`, the
/// caller opens the incident and records it with [`RuleState::Open`].
pub fn evaluate(
    rule: &Rule,
    state: &mut RuleState,
    value: &Value,
    time: i64,
    now: Instant,
) -> Outcome {
    match state {
        RuleState::Normal => match rule.is_abnormal(value) {
            None => Outcome::TypeMismatch,
            Some(false) => Outcome::None,
            Some(true) if rule.min_duration.is_zero() => Outcome::Open { first: None },
            Some(true) => {
                *state = RuleState::Pending {
                    since: now,
                    first: value.clone(),
                    first_time: time,
                };
                Outcome::None
            }
        },
        RuleState::Pending {
            since,
            first,
            first_time,
        } => match rule.is_abnormal(value) {
            None => Outcome::TypeMismatch,
            // Back under the limit before the minimum duration: it was a spike, not a condition.
            Some(false) => {
                *state = RuleState::Normal;
                Outcome::None
            }
            Some(true) if now.duration_since(*since) >= rule.min_duration => Outcome::Open {
                first: Some((first.clone(), *first_time)),
            },
            Some(true) => Outcome::None,
        },
        RuleState::Open { incident_id } => match rule.is_back_to_normal(value) {
            None => Outcome::TypeMismatch,
            Some(true) => {
                let incident_id = *incident_id;
                *state = RuleState::Normal;
                Outcome::Clear { incident_id }
            }
            Some(false) => Outcome::None,
        },
    }
}

#[cfg(test)]
mod tests;
