//! The track filter: every rejection reason, no poisoning by one jump, re-anchoring after a relocation.

mod common;

use cityops_gis::{PositionFix, Rejection, TrackFilter, TrackFilterConfig, TrackFilters};
use common::{T0, fix};
use proptest::prelude::*;

fn filter() -> TrackFilter {
    TrackFilter::new(TrackFilterConfig::default())
}

/// Checks `fix` at its own time of arrival.
fn check(filter: &mut TrackFilter, fix: &PositionFix) -> Result<usize, Rejection> {
    filter
        .check(fix, fix.time)
        .map(|accepted| accepted.confirmed.len())
}

#[test]
fn a_walk_is_accepted_and_becomes_the_anchor() {
    let mut f = filter();
    for (i, seconds) in [0.0, 5.0, 10.0, 15.0].into_iter().enumerate() {
        let walk = fix("i1", seconds, 7.0 * i as f64, 0.0);
        assert_eq!(check(&mut f, &walk), Ok(0));
        assert_eq!(f.last_accepted(), Some(&walk));
    }
}

#[test]
fn each_rejection_reason() {
    let mut f = filter();
    let anchor = fix("i1", 10.0, 0.0, 0.0);
    check(&mut f, &anchor).unwrap();

    for (lon, lat) in [(f64::NAN, 39.9), (200.0, 39.9), (116.4, -91.0), (0.0, 0.0)] {
        let bad = PositionFix {
            lon,
            lat,
            ..fix("i1", 20.0, 0.0, 0.0)
        };
        assert_eq!(check(&mut f, &bad), Err(Rejection::InvalidCoordinates));
    }
    let vague = PositionFix {
        accuracy_m: Some(150.0),
        ..fix("i1", 20.0, 0.0, 0.0)
    };
    assert_eq!(
        check(&mut f, &vague),
        Err(Rejection::Inaccurate { accuracy_m: 150.0 })
    );
    for accuracy in [f64::NAN, -1.0] {
        let broken = PositionFix {
            accuracy_m: Some(accuracy),
            ..fix("i1", 20.0, 0.0, 0.0)
        };
        assert_eq!(check(&mut f, &broken).unwrap_err().label(), "inaccurate");
    }
    let ahead = fix("i1", 100.0, 0.0, 0.0);
    assert_eq!(
        f.check(&ahead, ahead.time - 61_000),
        Err(Rejection::FromTheFuture { ahead_ms: 61_000 })
    );
    // Within the allowed skew it is fine; here only checked on a copy so the anchor stays.
    assert!(f.clone().check(&ahead, ahead.time - 60_000).is_ok());
    for seconds in [10.0, 5.0] {
        assert_eq!(
            check(&mut f, &fix("i1", seconds, 1.0, 0.0)),
            Err(Rejection::OutOfOrder {
                last_accepted: anchor.time
            })
        );
    }
    // 1 km in 2 s.
    let Err(Rejection::ImpossibleJump { speed_mps }) = check(&mut f, &fix("i1", 12.0, 1000.0, 0.0))
    else {
        panic!("not a jump");
    };
    assert!((speed_mps - 500.0).abs() < 0.5, "{speed_mps}");
    // Nothing of it was applied.
    assert_eq!(f.last_accepted(), Some(&anchor));
}

#[test]
fn labels_name_the_metric_reasons() {
    let labels: Vec<&str> = [
        Rejection::OutOfOrder { last_accepted: 0 },
        Rejection::ImpossibleJump { speed_mps: 99.0 },
        Rejection::Inaccurate { accuracy_m: 500.0 },
        Rejection::InvalidCoordinates,
        Rejection::FromTheFuture { ahead_ms: 1 },
    ]
    .iter()
    .map(Rejection::label)
    .collect();
    assert_eq!(
        labels,
        [
            "out_of_order",
            "impossible_jump",
            "inaccurate",
            "invalid_coordinates",
            "from_the_future"
        ]
    );
    let json = serde_json::to_value(Rejection::ImpossibleJump { speed_mps: 99.0 }).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"reason": "impossible_jump", "speed_mps": 99.0})
    );
}

#[test]
fn scatter_within_the_jitter_allowance_is_not_a_jump() {
    let mut f = filter();
    check(&mut f, &fix("i1", 0.0, 0.0, 0.0)).unwrap();
    // 20 m in 0.2 s is 100 m/s, but 20 m is GPS scatter of a standing inspector.
    assert_eq!(check(&mut f, &fix("i1", 0.2, 20.0, 0.0)), Ok(0));
    assert!(check(&mut f, &fix("i1", 0.4, 60.0, 0.0)).is_err());
}

#[test]
fn one_bad_jump_does_not_poison_the_filter() {
    let mut f = filter();
    check(&mut f, &fix("i1", 0.0, 0.0, 0.0)).unwrap();
    assert!(check(&mut f, &fix("i1", 5.0, 2000.0, 0.0)).is_err());
    let back = fix("i1", 10.0, 10.0, 0.0);
    assert_eq!(check(&mut f, &back), Ok(0));
    assert_eq!(f.last_accepted(), Some(&back));
}

#[test]
fn three_consistent_fixes_far_away_re_anchor() {
    let mut f = filter();
    // A cell-tower fallback 3 km off was the first fix of the shift.
    check(&mut f, &fix("i1", 0.0, 3000.0, 0.0)).unwrap();
    let real: Vec<PositionFix> = (1..=4)
        .map(|i| fix("i1", 5.0 * i as f64, 5.0 * i as f64, 0.0))
        .collect();
    assert!(matches!(
        check(&mut f, &real[0]),
        Err(Rejection::ImpossibleJump { .. })
    ));
    assert!(matches!(
        check(&mut f, &real[1]),
        Err(Rejection::ImpossibleJump { .. })
    ));
    let accepted = f.check(&real[2], real[2].time).unwrap();
    assert!(accepted.reanchored());
    assert_eq!(accepted.confirmed, real[..2]);
    assert_eq!(f.last_accepted(), Some(&real[2]));
    assert_eq!(check(&mut f, &real[3]), Ok(0));
}

#[test]
fn scattered_outliers_never_re_anchor() {
    let mut f = filter();
    check(&mut f, &fix("i1", 0.0, 0.0, 0.0)).unwrap();
    // Each outlier is far from the anchor and from the one before: 4 km apart in 1 s.
    for i in 1..=20 {
        let east = if i % 2 == 0 { 2000.0 } else { -2000.0 };
        assert!(check(&mut f, &fix("i1", f64::from(i), east, 0.0)).is_err());
    }
    assert_eq!(f.last_accepted().unwrap().time, T0);
}

#[test]
fn a_good_fix_between_jumps_discards_the_collection() {
    let mut f = filter();
    check(&mut f, &fix("i1", 0.0, 0.0, 0.0)).unwrap();
    assert!(check(&mut f, &fix("i1", 1.0, 2000.0, 0.0)).is_err());
    assert!(check(&mut f, &fix("i1", 2.0, 2001.0, 0.0)).is_err());
    assert_eq!(check(&mut f, &fix("i1", 3.0, 1.0, 0.0)), Ok(0));
    // Two more at the far place are again only two.
    assert!(check(&mut f, &fix("i1", 4.0, 2002.0, 0.0)).is_err());
    assert!(check(&mut f, &fix("i1", 5.0, 2003.0, 0.0)).is_err());
    assert_eq!(f.last_accepted().unwrap().time, T0 + 3000);
}

#[test]
fn a_long_silence_makes_a_relocation_plausible() {
    let mut f = filter();
    check(&mut f, &fix("i1", 0.0, 0.0, 0.0)).unwrap();
    // 5 km after ten minutes on the metro: 8.3 m/s.
    assert_eq!(check(&mut f, &fix("i1", 600.0, 5000.0, 0.0)), Ok(0));
}

#[test]
fn filters_are_per_inspector_and_rejected_newcomers_keep_no_state() {
    let mut filters = TrackFilters::new(TrackFilterConfig::default());
    let garbage = PositionFix {
        lon: 0.0,
        lat: 0.0,
        ..fix("new", 0.0, 0.0, 0.0)
    };
    assert!(filters.check(&garbage, garbage.time).is_err());
    assert!(filters.get("new").is_none());
    let a = fix("a", 0.0, 0.0, 0.0);
    let b = fix("b", 1.0, 3000.0, 0.0);
    assert!(filters.check(&a, a.time).is_ok());
    // Far from a, but b has a filter of its own.
    assert!(filters.check(&b, b.time).is_ok());
    assert!(filters.forget("a").is_some());
    let a_again = fix("a", 0.5, 9000.0, 0.0);
    assert!(filters.check(&a_again, a_again.time).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever comes in, the accepted track runs forward in time, and every accepted step is plausible
    /// except a re-anchoring, whose own chain of three is plausible and later than the old anchor.
    #[test]
    fn the_accepted_track_is_plausible(
        steps in prop::collection::vec((-2_000i64..20_000, -3_000.0f64..3_000.0, -3_000.0f64..3_000.0), 1..60)
    ) {
        let config = TrackFilterConfig::default();
        let plausible = |a: &PositionFix, b: &PositionFix| {
            let d = a.point().distance_m(&b.point());
            b.time > a.time && (d <= config.jitter_m || d / ((b.time - a.time) as f64 / 1000.0) <= config.max_speed_mps)
        };
        let mut f = TrackFilter::new(config.clone());
        let mut time = 0i64;
        let mut previous: Option<PositionFix> = None;
        for (dt, east, north) in steps {
            time += dt;
            let candidate = fix("i1", time as f64 / 1000.0, east, north);
            let Ok(accepted) = f.check(&candidate, candidate.time) else { continue };
            if let Some(previous) = &previous {
                if accepted.reanchored() {
                    prop_assert_eq!(accepted.confirmed.len() + 1, config.reanchor_after);
                    prop_assert!(accepted.confirmed[0].time > previous.time);
                    let mut chain = accepted.confirmed.clone();
                    chain.push(candidate.clone());
                    for pair in chain.windows(2) {
                        prop_assert!(plausible(&pair[0], &pair[1]));
                    }
                } else {
                    prop_assert!(plausible(previous, &candidate));
                }
            }
            previous = Some(candidate);
        }
    }
}
