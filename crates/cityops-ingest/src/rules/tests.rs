//! Table-driven tests of rule evaluation; minimum durations run on tokio's paused clock, never sleeps.

use super::*;
use std::time::Duration;
use tokio::time::advance;

fn rule(op: Op, threshold: Value, clear: Option<f64>, min_duration_secs: u64) -> Rule {
    Rule::new(
        RuleConfig {
            id: "r".into(),
            kind: "k".into(),
            measurement: "m".into(),
            op,
            threshold,
            clear,
            min_duration_secs,
            category: "E0503".into(),
            case: CaseFiling::Queue,
        },
        &Catalogue::builtin(),
    )
    .unwrap()
}

/// Steps: (seconds to advance before the value, value, expected outcome kind).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Nothing,
    Open,
    Clear,
    Mismatch,
}

async fn check(rule: &Rule, steps: &[(u64, Value, Want)]) {
    let mut state = RuleState::Normal;
    for (i, (wait, value, want)) in steps.iter().enumerate() {
        advance(Duration::from_secs(*wait)).await;
        let outcome = evaluate(rule, &mut state, value, 0, Instant::now());
        let got = match outcome {
            Outcome::None => Want::Nothing,
            Outcome::Open { .. } => {
                state = RuleState::Open {
                    incident_id: i as i64,
                };
                Want::Open
            }
            Outcome::Clear { .. } => Want::Clear,
            Outcome::TypeMismatch => Want::Mismatch,
        };
        assert_eq!(got, *want, "step {i}: value {value:?}, state {state:?}");
    }
}

fn n(v: f64) -> Value {
    Value::Number(v)
}

#[tokio::test(start_paused = true)]
async fn threshold_with_hysteresis_opens_once_and_clears_below_the_clear_level() {
    let manhole = rule(Op::Gt, n(15.0), Some(10.0), 0);
    use Want::*;
    check(
        &manhole,
        &[
            (0, n(2.0), Nothing),
            (5, n(15.0), Nothing), // equal is not above
            (5, n(32.5), Open),
            (5, n(40.0), Nothing), // still abnormal: no duplicate
            (5, n(12.0), Nothing), // inside the band: stays open
            (5, n(16.0), Nothing),
            (5, n(9.9), Clear),
            (5, n(12.0), Nothing),
            (5, n(20.0), Open), // a new episode is a new incident
            (5, Value::Text("x".into()), Mismatch),
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn minimum_duration_needs_the_condition_to_hold_continuously() {
    let dust = rule(Op::Gt, n(150.0), Some(120.0), 60);
    use Want::*;
    check(
        &dust,
        &[
            (0, n(180.0), Nothing),  // pending from t=0
            (30, n(200.0), Nothing), // 30 s
            (20, n(140.0), Nothing), // dips below the limit at 50 s: reset
            (10, n(190.0), Nothing), // pending again from 60 s
            (59, n(190.0), Nothing), // 59 s
            (1, n(170.0), Open),     // 60 s: opens
            (10, n(130.0), Nothing), // within the hysteresis band
            (10, n(100.0), Clear),
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn minimum_duration_reports_the_first_abnormal_value_as_evidence() {
    let noise = rule(Op::Gt, n(70.0), None, 30);
    let mut state = RuleState::Normal;
    assert_eq!(
        evaluate(&noise, &mut state, &n(75.0), 1000, Instant::now()),
        Outcome::None
    );
    advance(Duration::from_secs(31)).await;
    assert_eq!(
        evaluate(&noise, &mut state, &n(80.0), 32_000, Instant::now()),
        Outcome::Open {
            first: Some((n(75.0), 1000))
        }
    );
}

#[tokio::test(start_paused = true)]
async fn equality_rules_on_status_text() {
    let lamp = rule(Op::Eq, Value::Text("fault".into()), None, 0);
    use Want::*;
    check(
        &lamp,
        &[
            (0, Value::Text("ok".into()), Nothing),
            (1, Value::Text("fault".into()), Open),
            (1, Value::Text("fault".into()), Nothing),
            (1, Value::Text("ok".into()), Clear),
            (1, n(1.0), Nothing), // a number is simply not "fault"
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn at_or_above_and_below_rules() {
    use Want::*;
    let bin = rule(Op::Ge, n(90.0), Some(50.0), 0);
    check(
        &bin,
        &[
            (0, n(89.9), Nothing),
            (1, n(90.0), Open),
            (1, n(60.0), Nothing),
            (1, n(49.0), Clear),
        ],
    )
    .await;
    let low_battery = rule(Op::Lt, n(10.0), Some(20.0), 0);
    check(
        &low_battery,
        &[
            (0, n(50.0), Nothing),
            (1, n(9.0), Open),
            (1, n(15.0), Nothing),
            (1, n(21.0), Clear),
        ],
    )
    .await;
}

#[test]
fn bad_rules_are_refused_with_a_reason() {
    let catalogue = Catalogue::builtin();
    let base = RuleConfig {
        id: "r".into(),
        kind: "k".into(),
        measurement: "m".into(),
        op: Op::Gt,
        threshold: n(15.0),
        clear: Some(10.0),
        min_duration_secs: 0,
        category: "E0503".into(),
        case: CaseFiling::Queue,
    };
    assert!(Rule::new(base.clone(), &catalogue).is_ok());
    let unknown = RuleConfig {
        category: "E9999".into(),
        ..base.clone()
    };
    assert!(matches!(
        Rule::new(unknown, &catalogue),
        Err(RuleError::Category { .. })
    ));
    let wrong_side = RuleConfig {
        clear: Some(20.0),
        ..base.clone()
    };
    assert!(matches!(
        Rule::new(wrong_side, &catalogue),
        Err(RuleError::ClearOnWrongSide { .. })
    ));
    let text_threshold = RuleConfig {
        threshold: Value::Text("x".into()),
        ..base.clone()
    };
    assert!(matches!(
        Rule::new(text_threshold, &catalogue),
        Err(RuleError::NonNumericThreshold { .. })
    ));
    let eq_with_clear = RuleConfig { op: Op::Eq, ..base };
    assert!(matches!(
        Rule::new(eq_with_clear, &catalogue),
        Err(RuleError::ClearWithEquality { .. })
    ));
}

#[test]
fn condition_reads_like_the_rule() {
    assert_eq!(rule(Op::Gt, n(15.0), Some(10.0), 0).condition(), "m > 15");
    assert_eq!(
        rule(Op::Gt, n(150.0), None, 60).condition(),
        "m > 150 for 60 s"
    );
    assert_eq!(
        rule(Op::Eq, Value::Text("fault".into()), None, 0).condition(),
        "m == \"fault\""
    );
}
