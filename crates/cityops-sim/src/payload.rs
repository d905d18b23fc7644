//! Encoding a reading as the MQTT payload a device of a given format sends: SenML, ThingsBoard-style or flat JSON.

use cityops_core::UnixMillis;
use serde_json::{Map, Value, json};

use crate::behaviour::{MeasuredValue, Measurement};
use crate::devices::{PayloadFormat, SimDevice};

/// The payload `device` publishes for `measurements` taken at `now_ms`, in the device's own format.
///
/// A pure function: the same inputs give the same bytes.
pub fn encode_payload(
    device: &SimDevice,
    measurements: &[Measurement],
    now_ms: UnixMillis,
) -> Vec<u8> {
    let body = match device.format {
        PayloadFormat::SenMl => senml(&device.id, measurements, now_ms),
        PayloadFormat::ThingsBoard => json!({ "ts": now_ms, "values": flat_values(measurements) }),
        PayloadFormat::FlatJson => Value::Object(flat_values(measurements)),
    };
    // Serialising a `Value` built from finite numbers and strings cannot fail.
    serde_json::to_vec(&body).expect("a JSON value always serialises")
}

/// A SenML pack (RFC 8428). The first record carries the base name and the base time in seconds (SenML's
/// unit, fractional for milliseconds); the others inherit both.
fn senml(device_id: &str, measurements: &[Measurement], now_ms: UnixMillis) -> Value {
    let records = measurements
        .iter()
        .enumerate()
        .map(|(index, measurement)| {
            let mut record = Map::new();
            if index == 0 {
                record.insert("bn".into(), format!("urn:dev:sim:{device_id}:").into());
                record.insert("bt".into(), json!(now_ms as f64 / 1000.0));
            }
            record.insert("n".into(), measurement.name.into());
            if let Some(unit) = measurement.unit {
                record.insert("u".into(), unit.into());
            }
            let (field, value) = match measurement.value {
                MeasuredValue::Number(v) => ("v", number(v)),
                MeasuredValue::Text(s) => ("vs", json!(s)),
                MeasuredValue::Bool(b) => ("vb", json!(b)),
            };
            record.insert(field.into(), value);
            Value::Object(record)
        })
        .collect();
    Value::Array(records)
}

/// `{"tilt": 2.1, "battery": 87}`: names to plain values; units are implied by the names.
fn flat_values(measurements: &[Measurement]) -> Map<String, Value> {
    measurements
        .iter()
        .map(|measurement| {
            let value = match measurement.value {
                MeasuredValue::Number(v) => number(v),
                MeasuredValue::Text(s) => json!(s),
                MeasuredValue::Bool(b) => json!(b),
            };
            (measurement.name.to_owned(), value)
        })
        .collect()
}

/// A whole number is written without a fraction (`87`, not `87.0`), as devices usually report counts and
/// percentages; anything else as the shortest decimal that reads back to the same `f64`.
fn number(value: f64) -> Value {
    // Exact integers up to 2^53 are the ones an f64 holds without loss.
    const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && value.abs() <= MAX_EXACT_INTEGER {
        json!(value as i64)
    } else {
        json!(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::DeviceBehaviour;
    use crate::devices::SensorKind;

    const NOW_MS: UnixMillis = 1_732_800_000_500;

    fn device(kind: SensorKind, format: PayloadFormat) -> SimDevice {
        SimDevice {
            id: format!("{}-0001", kind.id_prefix()),
            kind: kind.as_str().to_owned(),
            lon: 116.41,
            lat: 39.91,
            format,
        }
    }

    fn tilt_and_battery() -> Vec<Measurement> {
        vec![
            Measurement {
                name: "tilt",
                unit: Some("deg"),
                value: MeasuredValue::Number(2.1),
            },
            Measurement {
                name: "battery",
                unit: Some("%"),
                value: MeasuredValue::Number(87.0),
            },
        ]
    }

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn senml_pack_matches_rfc_8428_shape() {
        let body = parse(&encode_payload(
            &device(SensorKind::ManholeCover, PayloadFormat::SenMl),
            &tilt_and_battery(),
            NOW_MS,
        ));
        assert_eq!(
            body,
            json!([
                {"bn": "urn:dev:sim:mc-0001:", "bt": 1732800000.5, "n": "tilt", "u": "deg", "v": 2.1},
                {"n": "battery", "u": "%", "v": 87}
            ])
        );
    }

    #[test]
    fn thingsboard_and_flat_bodies() {
        let measurements = tilt_and_battery();
        let tb = parse(&encode_payload(
            &device(SensorKind::ManholeCover, PayloadFormat::ThingsBoard),
            &measurements,
            NOW_MS,
        ));
        assert_eq!(
            tb,
            json!({"ts": 1732800000500_i64, "values": {"tilt": 2.1, "battery": 87}})
        );
        let flat = parse(&encode_payload(
            &device(SensorKind::ManholeCover, PayloadFormat::FlatJson),
            &measurements,
            NOW_MS,
        ));
        assert_eq!(flat, json!({"tilt": 2.1, "battery": 87}));
        let text = String::from_utf8(encode_payload(
            &device(SensorKind::ManholeCover, PayloadFormat::FlatJson),
            &measurements,
            NOW_MS,
        ))
        .unwrap();
        assert!(
            text.contains(r#""battery":87"#) && !text.contains("87.0"),
            "whole numbers carry no fraction: {text}"
        );
    }

    #[test]
    fn text_values_use_vs_in_senml_and_strings_elsewhere() {
        let mut lamp = DeviceBehaviour::new(SensorKind::Streetlight, 1);
        lamp.start_anomaly(NOW_MS, std::time::Duration::from_secs(60));
        let reading = lamp.sample(NOW_MS);

        let senml = parse(&encode_payload(
            &device(SensorKind::Streetlight, PayloadFormat::SenMl),
            &reading,
            NOW_MS,
        ));
        assert_eq!(senml[0]["n"], "status");
        assert_eq!(senml[0]["vs"], "fault");
        assert!(senml[0].get("u").is_none() && senml[0].get("v").is_none());
        assert_eq!(senml[1], json!({"n": "power", "u": "W", "v": 0}));

        let flat = parse(&encode_payload(
            &device(SensorKind::Streetlight, PayloadFormat::FlatJson),
            &reading,
            NOW_MS,
        ));
        assert_eq!(flat, json!({"status": "fault", "power": 0}));

        let bool_reading = [Measurement {
            name: "door_open",
            unit: None,
            value: MeasuredValue::Bool(true),
        }];
        let senml = parse(&encode_payload(
            &device(SensorKind::Streetlight, PayloadFormat::SenMl),
            &bool_reading,
            NOW_MS,
        ));
        assert_eq!(senml[0]["vb"], true);
    }

    #[test]
    fn every_kind_in_every_format_is_json_of_the_expected_shape() {
        for kind in SensorKind::ALL {
            let reading = DeviceBehaviour::new(kind, 4).sample(NOW_MS);
            let names: Vec<&str> = reading.iter().map(|m| m.name).collect();
            for format in PayloadFormat::ALL {
                let body = parse(&encode_payload(&device(kind, format), &reading, NOW_MS));
                let values = match format {
                    PayloadFormat::SenMl => {
                        let records = body.as_array().unwrap();
                        assert_eq!(records.len(), reading.len(), "{kind}");
                        assert!(
                            records[0]["bt"].is_f64()
                                && records[0]["bn"].as_str().unwrap().ends_with(':')
                        );
                        for (record, name) in records.iter().zip(&names) {
                            assert_eq!(record["n"], *name);
                            assert!(
                                record.get("v").is_some() || record.get("vs").is_some(),
                                "{record}"
                            );
                        }
                        continue;
                    }
                    PayloadFormat::ThingsBoard => {
                        assert_eq!(body["ts"], NOW_MS);
                        body["values"].as_object().unwrap().clone()
                    }
                    PayloadFormat::FlatJson => body.as_object().unwrap().clone(),
                };
                let keys: Vec<&str> = values.keys().map(String::as_str).collect();
                let mut expected = names.clone();
                expected.sort_unstable();
                let mut keys_sorted = keys.clone();
                keys_sorted.sort_unstable();
                assert_eq!(keys_sorted, expected, "{kind} {format:?}");
            }
        }
    }
}
