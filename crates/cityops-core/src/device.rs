//! Devices: the sensors and cameras that publish readings, identified by the id in their MQTT topic.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

use crate::geo::GeoPoint;

/// The id a device publishes under (`city/v1/devices/{id}/up`): 1 to 128 characters of `[A-Za-z0-9_.:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(Arc<str>);

/// The kind of a device (`manhole_cover`, `water_level`, …): selects the rules that apply to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceKind(Arc<str>);

/// Why an id or kind was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("is longer than {max} characters")]
    TooLong { max: usize },
    #[error("contains {0:?}; only letters, digits and _ . : - are allowed")]
    BadChar(char),
}

fn check_id(s: &str, max: usize, extra: &[char]) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.chars().count() > max {
        return Err(IdError::TooLong { max });
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(c)))
    {
        return Err(IdError::BadChar(c));
    }
    Ok(())
}

impl DeviceId {
    pub const MAX_LEN: usize = 128;

    pub fn new(s: &str) -> Result<Self, IdError> {
        Self::check(s)?;
        Ok(Self(Arc::from(s)))
    }

    /// Whether `s` is a valid device id, without making one.
    pub fn check(s: &str) -> Result<(), IdError> {
        check_id(s, Self::MAX_LEN, &['_', '.', ':', '-'])
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by device id can be searched with a `&str` (hash and equality are the text's).
impl std::borrow::Borrow<str> for DeviceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl DeviceKind {
    pub const MAX_LEN: usize = 64;

    pub fn new(s: &str) -> Result<Self, IdError> {
        check_id(s, Self::MAX_LEN, &['_', '-'])?;
        Ok(Self(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                <$t>::new(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0.to_string()
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
string_newtype_impls!(DeviceId);
string_newtype_impls!(DeviceKind);

/// A registered device: where it is and what it measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: DeviceId,
    pub kind: DeviceKind,
    pub lon: f64,
    pub lat: f64,
}

impl Device {
    pub fn location(&self) -> GeoPoint {
        GeoPoint {
            lon: self.lon,
            lat: self.lat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_checked() {
        for ok in ["mc-0001", "urn:dev:mac:0024befffe804ff1", "a.b_c"] {
            assert!(DeviceId::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(DeviceId::new(""), Err(IdError::Empty));
        assert_eq!(DeviceId::new("a/b"), Err(IdError::BadChar('/')));
        assert_eq!(DeviceId::new("a+"), Err(IdError::BadChar('+')));
        assert_eq!(
            DeviceId::new(&"x".repeat(129)),
            Err(IdError::TooLong { max: 128 })
        );
        assert_eq!(DeviceKind::new("water:level"), Err(IdError::BadChar(':')));
    }

    #[test]
    fn device_json_round_trip_checks_ids() {
        let d: Device =
            serde_json::from_str(r#"{"id":"mc-1","kind":"manhole_cover","lon":116.4,"lat":39.9}"#)
                .unwrap();
        assert_eq!(d.id.as_str(), "mc-1");
        assert!(
            serde_json::from_str::<Device>(r#"{"id":"a b","kind":"x","lon":1,"lat":1}"#).is_err()
        );
    }
}
