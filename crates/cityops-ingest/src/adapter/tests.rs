//! Table-driven tests of the payload adapters: each case is a body and the readings or the rejection.

use super::*;

const NOW: UnixMillis = 1_732_800_000_000;

fn num(name: &str, v: f64, unit: Option<&str>, time: Option<UnixMillis>) -> Reading {
    Reading {
        name: name.into(),
        unit: unit.map(Into::into),
        value: Value::Number(v),
        time,
    }
}

fn check(body: &str, expected: Result<Vec<Reading>, &str>) {
    let got = parse_payload(body.as_bytes(), NOW);
    match (&got, &expected) {
        (Ok(readings), Ok(want)) => {
            let mut readings = readings.clone();
            let mut want = want.clone();
            readings.sort_by(|a, b| a.name.cmp(&b.name));
            want.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(readings, want, "body: {body}");
        }
        (Err(reject), Err(reason)) => {
            assert_eq!(reject.reason(), *reason, "body: {body}: {reject}")
        }
        _ => panic!("body: {body}\n got: {got:?}\nwant: {expected:?}"),
    }
}

#[test]
fn senml_records_resolve_base_fields() {
    let cases: &[(&str, Result<Vec<Reading>, &str>)] = &[
        // The example of the issue: the base name names the device, the measurement is `tilt`.
        (
            r#"[{"bn":"urn:dev:mac:0024befffe804ff1:","n":"tilt","u":"deg","v":32.5}]"#,
            Ok(vec![num("tilt", 32.5, Some("deg"), None)]),
        ),
        // Base time (seconds) + relative time, base unit, base value.
        (
            r#"[{"bn":"dev1/","bt":1732800000.5,"bu":"m","bv":0.1,"n":"level","v":0.05},{"n":"level","t":1,"v":0.1}]"#,
            Ok(vec![
                num(
                    "level",
                    0.15000000000000002,
                    Some("m"),
                    Some(1_732_800_000_500),
                ),
                num("level", 0.2, Some("m"), Some(1_732_800_001_500)),
            ]),
        ),
        // A URN base name with the measurement at its end and no n.
        (
            r#"[{"bn":"urn:dev:ow:10e2073a01080063:temp","v":23.1}]"#,
            Ok(vec![num("temp", 23.1, None, None)]),
        ),
        // Relative time (below 2^28 s) counts from now.
        (
            r#"[{"n":"pm10","t":-5,"v":180}]"#,
            Ok(vec![num("pm10", 180.0, None, Some(NOW - 5000))]),
        ),
        // String, boolean and sum values.
        (
            r#"[{"n":"status","vs":"fault"},{"n":"door","vb":true},{"n":"energy","s":12.5}]"#,
            Ok(vec![
                Reading {
                    name: "status".into(),
                    unit: None,
                    value: Value::Text("fault".into()),
                    time: None,
                },
                Reading {
                    name: "door".into(),
                    unit: None,
                    value: Value::Bool(true),
                    time: None,
                },
                num("energy", 12.5, None, None),
            ]),
        ),
        // A record of base fields only is allowed and carries nothing.
        (
            r#"[{"bn":"d:","bt":1732800000},{"n":"x","v":1}]"#,
            Ok(vec![num("x", 1.0, None, Some(1_732_800_000_000))]),
        ),
        (r#"[{"n":"tilt","v":"32"}]"#, Err("wrong_type")),
        (r#"[{"n":"tilt"}]"#, Err("wrong_type")),
        (r#"[{"n":"tilt","v":1,"vs":"a"}]"#, Err("wrong_type")),
        (r#"[{"n":"tilt","vb":"yes"}]"#, Err("wrong_type")),
        (r#"[{"n":5,"v":1}]"#, Err("wrong_type")),
        (r#"[1,2]"#, Err("wrong_type")),
        (r#"[]"#, Err("empty")),
        (r#"[{"n":"tilt","v":1e400}]"#, Err("non_finite")),
        (r#"[{"n":"tilt","v":NaN}]"#, Err("non_finite")),
        (r#"[{"bv":1.7e308,"n":"x","v":1.7e308}]"#, Err("non_finite")),
        (r#"[{"n":"","v":1}]"#, Err("bad_name")),
        (r#"[{"n":"a b","v":1}]"#, Err("bad_name")),
        (r#"[{"n":"x","bt":99999999999,"v":1}]"#, Err("bad_time")),
    ];
    for (body, expected) in cases {
        check(body, expected.clone());
    }
}

#[test]
fn flat_and_thingsboard_bodies() {
    let cases: &[(&str, Result<Vec<Reading>, &str>)] = &[
        (
            r#"{"tilt": 2.5, "battery": 87}"#,
            Ok(vec![
                num("tilt", 2.5, None, None),
                num("battery", 87.0, None, None),
            ]),
        ),
        (
            r#"{"ts": 1732800000123, "values": {"fill": 91}}"#,
            Ok(vec![num("fill", 91.0, None, Some(1_732_800_000_123))]),
        ),
        (
            r#"[{"ts": 1, "values": {"a": 1}}, {"ts": 2, "values": {"a": 2}}]"#,
            Ok(vec![
                num("a", 1.0, None, Some(1)),
                num("a", 2.0, None, Some(2)),
            ]),
        ),
        (
            r#"{"ts": 1732800000123, "laeq": 72.5}"#,
            Ok(vec![num("laeq", 72.5, None, Some(1_732_800_000_123))]),
        ),
        (
            r#"{"status": "fault", "on": false}"#,
            Ok(vec![
                Reading {
                    name: "status".into(),
                    unit: None,
                    value: Value::Text("fault".into()),
                    time: None,
                },
                Reading {
                    name: "on".into(),
                    unit: None,
                    value: Value::Bool(false),
                    time: None,
                },
            ]),
        ),
        (r#"{"tilt": {"v": 1}}"#, Err("wrong_type")),
        (r#"{"tilt": [1]}"#, Err("wrong_type")),
        (r#"{"tilt": null}"#, Err("wrong_type")),
        (r#"{"values": [1]}"#, Err("wrong_type")),
        (
            r#"{"ts": "yesterday", "values": {"a": 1}}"#,
            Err("wrong_type"),
        ),
        (r#"{"ts": -5, "values": {"a": 1}}"#, Err("bad_time")),
        (r#"{}"#, Err("empty")),
        (r#"{"values": {}}"#, Err("empty")),
        (r#"42"#, Err("wrong_type")),
        (r#""text""#, Err("wrong_type")),
        (r#"{"tilt": 1e999}"#, Err("non_finite")),
        (r#"{"tilt": Infinity}"#, Err("non_finite")),
        (r#"{"tilt": 3"#, Err("malformed_json")),
        ("not json at all", Err("malformed_json")),
        ("\u{feff}{\"a\":1}", Err("malformed_json")),
        ("", Err("malformed_json")),
    ];
    for (body, expected) in cases {
        check(body, expected.clone());
    }
}

#[test]
fn invalid_utf8_is_malformed() {
    assert_eq!(
        parse_payload(&[0x7b, 0xff, 0xfe, 0x7d], NOW)
            .unwrap_err()
            .reason(),
        "malformed_json"
    );
}

#[test]
fn too_many_readings_are_refused() {
    let body = format!(
        "{{{}}}",
        (0..1001)
            .map(|i| format!("\"m{i}\":1"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        parse_payload(body.as_bytes(), NOW).unwrap_err().reason(),
        "too_many_readings"
    );
}

#[test]
fn topics_name_the_device() {
    assert_eq!(
        topic_device("city/v1/devices/mc-0001/up").unwrap(),
        "mc-0001"
    );
    assert_eq!(
        topic_device("city/v1/devices/urn:dev:mac:0024be/up").unwrap(),
        "urn:dev:mac:0024be"
    );
    for bad in [
        "city/v1/devices//up",
        "city/v1/devices/a/down",
        "city/v2/devices/a/up",
        "other",
        "city/v1/devices/a/b/up",
    ] {
        assert_eq!(
            topic_device(bad).unwrap_err().reason(),
            "unknown_topic",
            "{bad}"
        );
    }
}

#[test]
fn every_reason_has_a_distinct_index() {
    let rejects = [
        Reject::UnknownTopic(String::new()),
        Reject::TooLarge { size: 1, limit: 0 },
        Reject::MalformedJson(String::new()),
        Reject::WrongType(String::new()),
        Reject::NonFinite(String::new()),
        Reject::UnknownDevice(String::new()),
        Reject::Empty,
        Reject::TooManyReadings,
        Reject::BadName(String::new()),
        Reject::BadTime(String::new()),
    ];
    for (i, r) in rejects.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
}
