//! Readings: one named measurement of one device at one time, as the payload adapters produce them.

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// A measured value: a number, a boolean or a short text (a status such as `"fault"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Bool(bool),
    Text(String),
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(v) => Some(*v),
            _ => None,
        }
    }
}

/// One measurement. The device is not here: it is the one in the topic the message came on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Measurement name, e.g. `tilt`, `level`, `pm10`.
    pub name: String,
    /// Unit as the device sent it (SenML `u`), if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<String>,
    pub value: Value,
    /// Time of the measurement in Unix milliseconds; `None` when the device sent none (then arrival time applies).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time: Option<UnixMillis>,
}
