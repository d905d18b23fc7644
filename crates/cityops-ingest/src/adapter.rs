//! Payload adapters: pure functions from an MQTT topic and body to readings, or a reason to reject.
//!
//! Supported bodies, detected from their shape:
//! - SenML JSON (RFC 8428): an array of records; base fields (`bn`, `bt`, `bu`, `bv`, `bs`) are resolved;
//!   a base name that names the device (`urn:dev:mac:0024befffe804ff1:`) is not part of the measurement name;
//! - ThingsBoard-style `{"ts": <ms>, "values": {...}}` (also an array of them);
//! - flat JSON `{"name": value, ...}` (a `ts` key, if present, is the time in ms).
//!
//! The device is always the one in the topic `city/v1/devices/{device_id}/up`.

use cityops_core::{DeviceId, Reading, UnixMillis, Value};
use lite::{Lite as Json, Object};

mod lite;

/// The MQTT topic filter the platform subscribes to: the whole `city/v1/` namespace, so a message on a
/// topic the platform does not serve is counted as `unknown_topic` instead of going unnoticed.
pub const CITY_TOPIC_FILTER: &str = "city/v1/#";

/// Largest number of readings one message may carry.
pub const MAX_READINGS_PER_MESSAGE: usize = 1_000;
/// Longest measurement name or text value.
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_TEXT_LEN: usize = 256;

/// Why a message was rejected. Each reason is a label of `cityops_ingest_rejected_total`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("topic {0:?} is not city/v1/devices/{{device_id}}/up")]
    UnknownTopic(String),
    #[error("payload of {size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("payload is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("wrong type: {0}")]
    WrongType(String),
    #[error("value of {0:?} is NaN or infinite")]
    NonFinite(String),
    #[error("device {0:?} is not registered")]
    UnknownDevice(String),
    #[error("payload carries no readings")]
    Empty,
    #[error("payload carries more than {MAX_READINGS_PER_MESSAGE} readings")]
    TooManyReadings,
    #[error("bad measurement name {0:?}")]
    BadName(String),
    #[error("bad time: {0}")]
    BadTime(String),
}

impl Reject {
    /// Every reason, in a fixed order (for metrics).
    pub const REASONS: [&'static str; 10] = [
        "unknown_topic",
        "too_large",
        "malformed_json",
        "wrong_type",
        "non_finite",
        "unknown_device",
        "empty",
        "too_many_readings",
        "bad_name",
        "bad_time",
    ];

    /// The metric label of this reason.
    pub fn reason(&self) -> &'static str {
        Self::REASONS[self.index()]
    }

    /// Position of this reason in [`Reject::REASONS`].
    pub fn index(&self) -> usize {
        match self {
            Reject::UnknownTopic(_) => 0,
            Reject::TooLarge { .. } => 1,
            Reject::MalformedJson(_) => 2,
            Reject::WrongType(_) => 3,
            Reject::NonFinite(_) => 4,
            Reject::UnknownDevice(_) => 5,
            Reject::Empty => 6,
            Reject::TooManyReadings => 7,
            Reject::BadName(_) => 8,
            Reject::BadTime(_) => 9,
        }
    }
}

/// The device id of an uplink topic, checked, as a part of the topic.
pub fn topic_device(topic: &str) -> Result<&str, Reject> {
    let unknown = || Reject::UnknownTopic(truncate(topic, 200));
    let rest = topic.strip_prefix(UPLINK_PREFIX).ok_or_else(unknown)?;
    let id = rest.strip_suffix(UPLINK_SUFFIX).ok_or_else(unknown)?;
    DeviceId::check(id).map_err(|_| unknown())?;
    Ok(id)
}

/// An uplink topic is `city/v1/devices/{device_id}/up`.
pub const UPLINK_PREFIX: &str = "city/v1/devices/";
pub const UPLINK_SUFFIX: &str = "/up";

/// Parses a body into readings. `now` (Unix ms) resolves SenML relative times; readings without a
/// time get `None` (the pipeline stamps arrival time).
pub fn parse_payload(body: &[u8], now: UnixMillis) -> Result<Vec<Reading>, Reject> {
    let json: Json<'_> = serde_json::from_slice(body).map_err(|e| json_error(body, e))?;
    let readings = match json {
        Json::Array(records) if records.first().is_some_and(is_thingsboard_object) => {
            let mut out = Vec::new();
            for record in records {
                match record {
                    Json::Object(map) => thingsboard(map, &mut out)?,
                    other => {
                        return Err(Reject::WrongType(format!(
                            "array element is {}, expected an object",
                            kind(&other)
                        )));
                    }
                }
            }
            out
        }
        Json::Array(records) => senml(records, now)?,
        Json::Object(map) if is_thingsboard(&map) => {
            let mut out = Vec::new();
            thingsboard(map, &mut out)?;
            out
        }
        Json::Object(map) => flat(map)?,
        other => {
            return Err(Reject::WrongType(format!(
                "payload is {}, expected an object or a SenML array",
                kind(&other)
            )));
        }
    };
    if readings.is_empty() {
        return Err(Reject::Empty);
    }
    if readings.len() > MAX_READINGS_PER_MESSAGE {
        return Err(Reject::TooManyReadings);
    }
    Ok(readings)
}

fn json_error(body: &[u8], e: serde_json::Error) -> Reject {
    // JSON has no NaN or infinity, but many encoders write them anyway (Python's json.dumps does);
    // numbers too large for f64 are infinite as well. Name that rather than "malformed".
    let text = String::from_utf8_lossy(body);
    let message = e.to_string();
    if message.contains("number out of range")
        || ["NaN", "Infinity"].iter().any(|t| text.contains(t))
    {
        return Reject::NonFinite(truncate(&message, 120));
    }
    Reject::MalformedJson(truncate(&message, 120))
}

fn is_thingsboard(map: &Object) -> bool {
    map.contains_key("values") && map.keys().all(|k| k == "values" || k == "ts")
}

fn is_thingsboard_object(v: &Json) -> bool {
    matches!(v, Json::Object(map) if is_thingsboard(map))
}

fn thingsboard(mut map: Object, out: &mut Vec<Reading>) -> Result<(), Reject> {
    let time = match map.remove("ts") {
        None => None,
        Some(ts) => Some(millis(&ts, "ts")?),
    };
    match map.remove("values") {
        Some(Json::Object(values)) => {
            for (name, value) in values {
                out.push(reading(
                    name.into_owned(),
                    None,
                    flat_value(&value, "values")?,
                    time,
                )?);
            }
            Ok(())
        }
        Some(other) => Err(Reject::WrongType(format!(
            "\"values\" is {}, expected an object",
            kind(&other)
        ))),
        None => Err(Reject::Empty),
    }
}

fn flat(mut map: Object) -> Result<Vec<Reading>, Reject> {
    let time = match map.remove("ts") {
        None => None,
        Some(ts) => Some(millis(&ts, "ts")?),
    };
    map.into_iter()
        .map(|(name, value)| {
            let value = flat_value(&value, &name)?;
            reading(name.into_owned(), None, value, time)
        })
        .collect()
}

fn flat_value(value: &Json, name: &str) -> Result<Value, Reject> {
    match value {
        Json::Number(n) => finite(Some(*n), name),
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::String(s) => text(s, name),
        other => Err(Reject::WrongType(format!(
            "{name:?} is {}, expected a number, boolean or string",
            kind(other)
        ))),
    }
}

/// SenML base fields carried from record to record (RFC 8428 section 4.6).
#[derive(Default)]
struct SenmlBase {
    name: String,
    time: f64,
    unit: Option<String>,
    value: f64,
    sum: f64,
}

/// The fields of one SenML record that the adapter reads, found in one pass over its members.
#[derive(Default)]
struct SenmlFields<'r, 'a> {
    bn: Option<&'r Json<'a>>,
    bt: Option<&'r Json<'a>>,
    bu: Option<&'r Json<'a>>,
    bv: Option<&'r Json<'a>>,
    bs: Option<&'r Json<'a>>,
    n: Option<&'r Json<'a>>,
    v: Option<&'r Json<'a>>,
    vs: Option<&'r Json<'a>>,
    vb: Option<&'r Json<'a>>,
    vd: Option<&'r Json<'a>>,
    s: Option<&'r Json<'a>>,
    u: Option<&'r Json<'a>>,
    t: Option<&'r Json<'a>>,
}

impl<'r, 'a> SenmlFields<'r, 'a> {
    fn of(record: &'r Object<'a>) -> Self {
        let mut f = Self::default();
        for (key, value) in record.iter() {
            let slot = match key {
                "bn" => &mut f.bn,
                "bt" => &mut f.bt,
                "bu" => &mut f.bu,
                "bv" => &mut f.bv,
                "bs" => &mut f.bs,
                "n" => &mut f.n,
                "v" => &mut f.v,
                "vs" => &mut f.vs,
                "vb" => &mut f.vb,
                "vd" => &mut f.vd,
                "s" => &mut f.s,
                "u" => &mut f.u,
                "t" => &mut f.t,
                _ => continue,
            };
            *slot = Some(value);
        }
        f
    }
}

/// Times below 2^28 seconds are relative to now (RFC 8428 section 4.5.3).
const SENML_RELATIVE_LIMIT: f64 = 268_435_456.0;

fn senml(records: Vec<Json>, now: UnixMillis) -> Result<Vec<Reading>, Reject> {
    let mut base = SenmlBase::default();
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.into_iter().enumerate() {
        let Json::Object(r) = record else {
            return Err(Reject::WrongType(format!(
                "SenML record {i} is {}, expected an object",
                kind(&record)
            )));
        };
        let f = SenmlFields::of(&r);
        if let Some(bn) = f.bn {
            base.name = senml_str(bn, "bn")?.to_string();
        }
        if let Some(bt) = f.bt {
            base.time = senml_num(bt, "bt")?;
        }
        if let Some(bu) = f.bu {
            base.unit = Some(senml_str(bu, "bu")?.to_string());
        }
        if let Some(bv) = f.bv {
            base.value = senml_num(bv, "bv")?;
        }
        if let Some(bs) = f.bs {
            base.sum = senml_num(bs, "bs")?;
        }
        let n = match f.n {
            Some(n) => senml_str(n, "n")?,
            None => "",
        };
        let name = measurement_name(&base.name, n);
        let value = match (f.v, f.vs, f.vb, f.vd, f.s) {
            (Some(v), None, None, None, _) => finite(Some(base.value + senml_num(v, "v")?), &name)?,
            (None, Some(vs), None, None, _) => text(senml_str(vs, "vs")?, &name)?,
            (None, None, Some(Json::Bool(b)), None, _) => Value::Bool(*b),
            (None, None, Some(other), None, _) => {
                return Err(Reject::WrongType(format!(
                    "SenML \"vb\" of {name:?} is {}, expected a boolean",
                    kind(other)
                )));
            }
            (None, None, None, Some(vd), _) => text(senml_str(vd, "vd")?, &name)?,
            (None, None, None, None, Some(s)) => {
                finite(Some(base.sum + senml_num(s, "s")?), &name)?
            }
            (None, None, None, None, None) => {
                // A record with only base fields carries no measurement.
                if r.keys().all(|k| k.starts_with('b')) {
                    continue;
                }
                return Err(Reject::WrongType(format!(
                    "SenML record {i} ({name:?}) has no value (v, vs, vb, vd or s)"
                )));
            }
            _ => {
                return Err(Reject::WrongType(format!(
                    "SenML record {i} ({name:?}) has more than one value field"
                )));
            }
        };
        let unit = match f.u {
            Some(u) => Some(senml_str(u, "u")?.to_string()),
            None => base.unit.clone(),
        };
        let t = base.time
            + match f.t {
                Some(t) => senml_num(t, "t")?,
                None => 0.0,
            };
        let time = if t == 0.0 {
            None
        } else if t.abs() < SENML_RELATIVE_LIMIT {
            Some(now + (t * 1000.0).round() as i64)
        } else {
            Some(seconds_to_millis(t)?)
        };
        out.push(reading(name, unit, value, time)?);
    }
    Ok(out)
}

/// The measurement name of a SenML record: the base name is left out when it names the device (it ends
/// in `:` or `/`, or it is a URN whose last part is the measurement).
fn measurement_name(base_name: &str, n: &str) -> String {
    if base_name.is_empty() {
        return n.to_string();
    }
    if base_name.ends_with(':') || base_name.ends_with('/') {
        return n.to_string();
    }
    let full = format!("{base_name}{n}");
    if full.starts_with("urn:") {
        return full.rsplit(':').next().unwrap_or_default().to_string();
    }
    full
}

fn reading(
    name: String,
    unit: Option<String>,
    value: Value,
    time: Option<UnixMillis>,
) -> Result<Reading, Reject> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '/' | '_'));
    if !valid {
        return Err(Reject::BadName(truncate(&name, 80)));
    }
    if unit.as_ref().is_some_and(|u| u.len() > 32) {
        return Err(Reject::WrongType(format!(
            "unit of {name:?} is longer than 32 bytes"
        )));
    }
    Ok(Reading {
        name,
        unit,
        value,
        time,
    })
}

fn finite(v: Option<f64>, name: &str) -> Result<Value, Reject> {
    match v {
        Some(v) if v.is_finite() => Ok(Value::Number(v)),
        _ => Err(Reject::NonFinite(truncate(name, 80))),
    }
}

fn text(s: &str, name: &str) -> Result<Value, Reject> {
    if s.len() > MAX_TEXT_LEN {
        return Err(Reject::WrongType(format!(
            "text value of {name:?} is longer than {MAX_TEXT_LEN} bytes"
        )));
    }
    Ok(Value::Text(s.to_string()))
}

fn senml_str<'a>(v: &'a Json, field: &str) -> Result<&'a str, Reject> {
    v.as_str().ok_or_else(|| {
        Reject::WrongType(format!(
            "SenML \"{field}\" is {}, expected a string",
            kind(v)
        ))
    })
}

fn senml_num(v: &Json, field: &str) -> Result<f64, Reject> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        Some(_) => Err(Reject::NonFinite(field.to_string())),
        None => Err(Reject::WrongType(format!(
            "SenML \"{field}\" is {}, expected a number",
            kind(v)
        ))),
    }
}

fn millis(v: &Json, field: &str) -> Result<UnixMillis, Reject> {
    match v.as_f64() {
        Some(ms) if ms.is_finite() && (0.0..=4_102_444_800_000.0).contains(&ms) => Ok(ms as i64),
        Some(ms) => Err(Reject::BadTime(format!(
            "\"{field}\" = {ms} is not a time in Unix milliseconds"
        ))),
        None => Err(Reject::WrongType(format!(
            "\"{field}\" is {}, expected Unix milliseconds",
            kind(v)
        ))),
    }
}

fn seconds_to_millis(t: f64) -> Result<UnixMillis, Reject> {
    // Up to the year 2100: a later time is a device clock gone wrong.
    if (0.0..=4_102_444_800.0).contains(&t) {
        Ok((t * 1000.0).round() as i64)
    } else {
        Err(Reject::BadTime(format!(
            "SenML time {t} is not a time in Unix seconds"
        )))
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests;
