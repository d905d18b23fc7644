//! Geofences: reading them from GeoJSON, and enter/exit events with dwell, absence, wobble and gaps,
//! including a jumpy, out-of-order track through the track filter.

mod common;

use cityops_core::GeoPoint;
use cityops_gis::geofence::{
    FencePresence, GeofenceError, geofence_feature, read_geofence_feature, read_geofences_geojson,
    replay,
};
use cityops_gis::{
    Datum, FenceEvent, FenceEventKind, FenceKind, FenceTrackerConfig, Geofence, GeofenceTracker,
    PositionFix, TrackFilterConfig, TrackFilters, from_wgs84,
};
use common::{T0, fix, offset};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A GeoJSON ring around the square of half-side `half_m` centred `east_m`/`north_m` from the base.
fn square_ring(east_m: f64, north_m: f64, half_m: f64) -> String {
    let corners = [
        (-1.0, -1.0),
        (1.0, -1.0),
        (1.0, 1.0),
        (-1.0, 1.0),
        (-1.0, -1.0),
    ];
    let positions: Vec<String> = corners
        .iter()
        .map(|(x, y)| {
            let p = offset(east_m + x * half_m, north_m + y * half_m);
            format!("[{}, {}]", p.lon, p.lat)
        })
        .collect();
    format!("[{}]", positions.join(", "))
}

fn collection(features: &[String]) -> String {
    format!(
        r#"{{"type": "FeatureCollection", "features": [{}]}}"#,
        features.join(",\n")
    )
}

fn feature(properties: &str, geometry: &str) -> String {
    format!(r#"{{"type": "Feature", "properties": {properties}, "geometry": {geometry}}}"#)
}

fn polygon(ring: &str) -> String {
    format!(r#"{{"type": "Polygon", "coordinates": [{ring}]}}"#)
}

/// The key project "k1": a 600 m square around the base, two visits a day.
fn key_project() -> Geofence {
    let text = collection(&[feature(
        r#"{"id": "k1", "name": "地铁站工地", "kind": "key_project", "required_visits_per_day": 2}"#,
        &polygon(&square_ring(0.0, 0.0, 300.0)),
    )]);
    read_geofences_geojson(&text).unwrap().remove(0)
}

fn tracker() -> GeofenceTracker {
    GeofenceTracker::new(vec![key_project()], FenceTrackerConfig::default())
}

/// (kind, seconds after T0) of each event.
fn events(tracker: &mut GeofenceTracker, fixes: &[PositionFix]) -> Vec<(FenceEventKind, f64)> {
    fixes
        .iter()
        .flat_map(|f| tracker.observe(f))
        .map(|e| (e.kind, (e.at - T0) as f64 / 1000.0))
        .collect()
}

const INSIDE: f64 = 0.0;
const OUTSIDE: f64 = -450.0;

/// Fixes of i1 at the given seconds, inside (`true`) or 150 m south of the fence.
fn track(steps: &[(f64, bool)]) -> Vec<PositionFix> {
    steps
        .iter()
        .map(|&(s, inside)| fix("i1", s, 0.0, if inside { INSIDE } else { OUTSIDE }))
        .collect()
}

#[test]
fn reads_fences_of_every_kind() {
    let text = collection(&[
        feature(
            r#"{"id": 7, "name": "重点企业", "kind": "key_project", "required_visits_per_day": 3}"#,
            &polygon(&square_ring(0.0, 0.0, 50.0)),
        ),
        format!(
            r#"{{"type": "Feature", "id": "n1", "properties": {{"name": "禁摆区", "kind": "no_stall"}},
                "geometry": {{"type": "MultiPolygon", "coordinates": [[{}], [{}]]}}}}"#,
            square_ring(1000.0, 0.0, 50.0),
            square_ring(2000.0, 0.0, 50.0)
        ),
        feature(
            r#"{"id": "c1", "name": "施工", "kind": "construction_site"}"#,
            &polygon(&square_ring(0.0, 1000.0, 50.0)),
        ),
        feature(
            r#"{"id": "o1", "name": "其他", "kind": "other", "required_visits_per_day": null}"#,
            &polygon(&square_ring(0.0, 2000.0, 50.0)),
        ),
    ]);
    let fences = read_geofences_geojson(&text).unwrap();
    let summary: Vec<(&str, FenceKind)> = fences.iter().map(|f| (f.id.as_str(), f.kind)).collect();
    assert_eq!(
        summary,
        [
            (
                "7",
                FenceKind::KeyProject {
                    required_visits_per_day: 3
                }
            ),
            ("n1", FenceKind::NoStall),
            ("c1", FenceKind::ConstructionSite),
            ("o1", FenceKind::Other)
        ]
    );
    assert_eq!(fences[0].name, "重点企业");
    assert_eq!(fences[0].kind.label_zh(), "重点项目");
    assert!(fences[1].contains(offset(2000.0, 0.0)));
    assert!(!fences[1].contains(offset(1500.0, 0.0)));
}

#[test]
fn a_gcj02_fence_is_converted_to_wgs84() {
    // The fence was drawn on a GCJ-02 basemap around the GCJ-02 image of the base point.
    let shifted = |p: GeoPoint| from_wgs84(p, Datum::Gcj02);
    let ring: Vec<String> = [
        (-30.0, -30.0),
        (30.0, -30.0),
        (30.0, 30.0),
        (-30.0, 30.0),
        (-30.0, -30.0),
    ]
    .iter()
    .map(|(e, n)| {
        let p = shifted(offset(*e, *n));
        format!("[{}, {}]", p.lon, p.lat)
    })
    .collect();
    let text = format!(
        r#"{{"type": "FeatureCollection", "datum": "gcj02", "features": [{}]}}"#,
        feature(
            r#"{"id": "g", "name": "高德围栏", "kind": "other"}"#,
            &polygon(&format!("[{}]", ring.join(",")))
        )
    );
    let fence = read_geofences_geojson(&text).unwrap().remove(0);
    // The shift in Beijing is several hundred metres: only the converted fence holds the WGS-84 point.
    assert!(fence.contains(offset(0.0, 0.0)));
    assert!(!fence.contains(shifted(offset(0.0, 0.0))));
}

#[test]
fn bad_fence_files_name_the_feature_and_field() {
    let square = polygon(&square_ring(0.0, 0.0, 50.0));
    let one = |properties: &str, geometry: &str| {
        read_geofences_geojson(&collection(&[feature(properties, geometry)])).unwrap_err()
    };
    let field_of = |error: GeofenceError| match error {
        GeofenceError::Feature { index, field, .. } => (index, field),
        other => panic!("{other}"),
    };
    assert_eq!(
        field_of(one(r#"{"name": "x", "kind": "other"}"#, &square)),
        (0, "id")
    );
    assert_eq!(
        field_of(one(r#"{"id": "a", "kind": "other"}"#, &square)),
        (0, "name")
    );
    assert_eq!(
        field_of(one(r#"{"id": "a", "name": "x", "kind": "park"}"#, &square)),
        (0, "kind")
    );
    assert_eq!(
        field_of(one(r#"{"id": "a", "name": "x"}"#, &square)),
        (0, "kind")
    );
    for visits in [
        "",
        r#", "required_visits_per_day": 0"#,
        r#", "required_visits_per_day": 1.5"#,
    ] {
        let properties = format!(r#"{{"id": "a", "name": "x", "kind": "key_project"{visits}}}"#);
        assert_eq!(
            field_of(one(&properties, &square)),
            (0, "required_visits_per_day")
        );
    }
    let stray = r#"{"id": "a", "name": "x", "kind": "no_stall", "required_visits_per_day": 2}"#;
    assert_eq!(
        field_of(one(stray, &square)),
        (0, "required_visits_per_day")
    );
    let fine = r#"{"id": "a", "name": "x", "kind": "other"}"#;
    let point = r#"{"type": "Point", "coordinates": [116.4, 39.9]}"#;
    assert_eq!(field_of(one(fine, point)), (0, "geometry"));
    let short =
        r#"{"type": "Polygon", "coordinates": [[[116.4, 39.9], [116.5, 39.9], [116.4, 39.9]]]}"#;
    let error = one(fine, short);
    assert_eq!(
        error.to_string(),
        "feature 0 (id \"a\"), geometry: a ring has 3 positions, fewer than 4"
    );
    let outside_earth = r#"{"type": "Polygon", "coordinates": [[[116.4, 39.9], [196.5, 39.9], [116.5, 40], [116.4, 39.9]]]}"#;
    assert_eq!(field_of(one(fine, outside_earth)), (0, "geometry"));

    let twice = collection(&[feature(fine, &square), feature(fine, &square)]);
    assert_eq!(
        read_geofences_geojson(&twice),
        Err(GeofenceError::DuplicateId {
            index: 1,
            id: "a".into(),
            first: 0
        })
    );
    assert!(matches!(
        read_geofences_geojson("{"),
        Err(GeofenceError::Json(_))
    ));
    assert_eq!(
        read_geofences_geojson(r#"{"type": "Feature"}"#),
        Err(GeofenceError::NotCollection)
    );
    let bad_datum = r#"{"type": "FeatureCollection", "datum": "bd09", "features": []}"#;
    assert!(matches!(
        read_geofences_geojson(bad_datum),
        Err(GeofenceError::Datum(_))
    ));
}

#[test]
fn entering_needs_the_dwell_and_leaving_the_absence() {
    let mut t = tracker();
    let fixes = track(&[
        (0.0, false),
        (10.0, true),
        (40.0, true),
        (69.0, true),
        (70.0, true),
        (100.0, false),
        (159.0, false),
        (160.0, false),
    ]);
    // The entry is confirmed by the fix at 70 s and dated at the first fix inside, 10 s.
    let emitted: Vec<usize> = fixes
        .iter()
        .enumerate()
        .filter(|(_, f)| !t.observe(f).is_empty())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(emitted, [4, 7]);
    let mut t = tracker();
    assert_eq!(
        events(&mut t, &fixes),
        [
            (FenceEventKind::Entered, 10.0),
            (FenceEventKind::Exited, 100.0)
        ]
    );
    let event = t.observe(&fix("i1", 200.0, 0.0, INSIDE));
    assert!(event.is_empty());
    assert!(t.inside("i1").is_empty());
}

#[test]
fn a_wobble_across_the_edge_emits_nothing() {
    let mut t = tracker();
    // Along the south edge (at -300 m), fixes scatter 20 m either side for ten minutes.
    let fixes: Vec<PositionFix> = (0..120)
        .map(|i| {
            let north = if (i / 5) % 2 == 0 { -320.0 } else { -280.0 };
            fix("i1", 5.0 * f64::from(i), 0.0, north)
        })
        .collect();
    assert_eq!(events(&mut t, &fixes), []);
}

#[test]
fn a_sparse_crossing_is_not_missed() {
    let mut t = tracker();
    // A fix every 100 s; the inspector stays inside 3 minutes.
    let fixes = track(&[
        (0.0, false),
        (100.0, true),
        (200.0, true),
        (300.0, false),
        (400.0, false),
    ]);
    assert_eq!(
        events(&mut t, &fixes),
        [
            (FenceEventKind::Entered, 100.0),
            (FenceEventKind::Exited, 300.0)
        ]
    );
}

#[test]
fn a_long_gap_restarts_a_pending_change_and_keeps_a_confirmed_one() {
    let mut t = tracker();
    // Pending entry at 0 s, then ten minutes of silence: the fix at 600 s starts the count again.
    let fixes = track(&[(0.0, true), (600.0, true), (630.0, true), (660.0, true)]);
    assert_eq!(events(&mut t, &fixes), [(FenceEventKind::Entered, 600.0)]);
    assert_eq!(t.inside("i1"), ["k1"]);
    // Two hours of silence inside, then inside again: nothing. Silence alone invents no exit.
    assert_eq!(events(&mut t, &track(&[(7_860.0, true)])), []);
    assert_eq!(t.inside("i1"), ["k1"]);
    // Back after another gap outside: the exit counts from the first fix outside.
    let fixes = track(&[(15_000.0, false), (15_030.0, false), (15_060.0, false)]);
    assert_eq!(events(&mut t, &fixes), [(FenceEventKind::Exited, 15_000.0)]);
}

#[test]
fn late_fixes_are_ignored_by_the_tracker() {
    let mut t = tracker();
    let fixes = track(&[
        (0.0, true),
        (30.0, true),
        (20.0, false),
        (30.0, false),
        (60.0, true),
    ]);
    assert_eq!(events(&mut t, &fixes), [(FenceEventKind::Entered, 0.0)]);
}

#[test]
fn fences_and_inspectors_are_tracked_separately() {
    let other = Geofence {
        id: "n1".into(),
        ..key_project()
    };
    let mut t = GeofenceTracker::new(vec![key_project(), other], FenceTrackerConfig::default());
    let mut all = Vec::new();
    for (who, start) in [("a", 0.0), ("b", 30.0)] {
        for s in [0.0, 60.0] {
            all.extend(t.observe(&fix(who, start + s, 0.0, 0.0)));
        }
    }
    let summary: Vec<(&str, &str, i64)> = all
        .iter()
        .map(|e| (e.inspector.as_str(), e.fence.as_str(), (e.at - T0) / 1000))
        .collect();
    assert_eq!(
        summary,
        [
            ("a", "k1", 0),
            ("a", "n1", 0),
            ("b", "k1", 30),
            ("b", "n1", 30)
        ]
    );
    t.forget("a");
    assert!(t.inside("a").is_empty());
    assert_eq!(t.inside("b"), ["k1", "n1"]);
}

#[test]
fn one_feature_is_read_as_the_api_receives_it_and_written_back() {
    let text = feature(
        r#"{"name": "新工地", "kind": "construction_site", "min_dwell_ms": 120000}"#,
        &polygon(&square_ring(0.0, 0.0, 50.0)),
    );
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let fence = read_geofence_feature(&value, "api-1").unwrap();
    assert_eq!(fence.id, "api-1");
    assert_eq!(fence.kind, FenceKind::ConstructionSite);
    assert_eq!(fence.min_dwell_ms, Some(120_000));
    assert!(fence.contains(offset(0.0, 0.0)));
    let written = geofence_feature(&fence);
    assert_eq!(written["geometry"]["type"], "Polygon");
    assert_eq!(written["properties"]["kind_zh"], "施工工地");
    assert_eq!(
        written["properties"]["required_visits_per_day"],
        serde_json::Value::Null
    );
    assert_eq!(read_geofence_feature(&written, "api-1").unwrap(), fence);
    let key = key_project();
    let written = geofence_feature(&key);
    assert_eq!(written["properties"]["required_visits_per_day"], 2);
    assert_eq!(
        written["properties"]["min_dwell_ms"],
        serde_json::Value::Null
    );
    assert_eq!(read_geofence_feature(&written, "k1").unwrap(), key);
}

#[test]
fn bad_geometry_of_one_feature_is_refused_with_the_field() {
    let read = |properties: &str, geometry: &str| {
        let value: serde_json::Value =
            serde_json::from_str(&feature(properties, geometry)).unwrap();
        read_geofence_feature(&value, "x")
    };
    let fine = r#"{"name": "x", "kind": "other"}"#;
    let problem = |geometry: &str| {
        let error = read(fine, geometry).unwrap_err();
        assert_eq!(error.field, "geometry", "{error}");
        error.problem
    };
    let unclosed = r#"{"type": "Polygon", "coordinates": [[[116.40, 39.90], [116.41, 39.90], [116.41, 39.91], [116.40, 39.91]]]}"#;
    assert!(
        problem(unclosed).contains("not closed"),
        "{}",
        problem(unclosed)
    );
    let bowtie = r#"{"type": "Polygon", "coordinates": [[[116.40, 39.90], [116.41, 39.91], [116.41, 39.90], [116.40, 39.91], [116.40, 39.90]]]}"#;
    assert!(problem(bowtie).contains("not valid"), "{}", problem(bowtie));
    let flat = r#"{"type": "Polygon", "coordinates": [[[116.40, 39.90], [116.41, 39.90], [116.42, 39.90], [116.40, 39.90]]]}"#;
    problem(flat);
    let latitude = r#"{"type": "Polygon", "coordinates": [[[116.40, 39.90], [116.41, 95.0], [116.41, 39.91], [116.40, 39.90]]]}"#;
    assert!(problem(latitude).contains("not a [longitude, latitude]"));
    problem(r#"{"type": "Polygon", "coordinates": "junk"}"#);
    problem(r#"{"type": "MultiPolygon", "coordinates": []}"#);
    let square = polygon(&square_ring(0.0, 0.0, 50.0));
    for dwell in ["-1", "3600001", "1.5", "\"60s\""] {
        let properties = format!(r#"{{"name": "x", "kind": "other", "min_dwell_ms": {dwell}}}"#);
        assert_eq!(
            read(&properties, &square).unwrap_err().field,
            "min_dwell_ms"
        );
    }
    let no_feature: serde_json::Value = serde_json::from_str(&square).unwrap();
    assert_eq!(
        read_geofence_feature(&no_feature, "x").unwrap_err().field,
        "type"
    );
    let no_properties: serde_json::Value =
        serde_json::from_str(&format!(r#"{{"type": "Feature", "geometry": {square}}}"#)).unwrap();
    assert_eq!(
        read_geofence_feature(&no_properties, "x")
            .unwrap_err()
            .field,
        "properties"
    );
}

#[test]
fn a_fence_with_its_own_dwell_confirms_entries_on_it() {
    let slow = Geofence {
        id: "slow".into(),
        min_dwell_ms: Some(180_000),
        ..key_project()
    };
    let mut t = GeofenceTracker::new(vec![key_project(), slow], FenceTrackerConfig::default());
    let fixes: Vec<PositionFix> = [0.0, 60.0, 120.0, 180.0]
        .iter()
        .map(|&s| fix("i1", s, 0.0, INSIDE))
        .collect();
    let confirmed: Vec<(usize, String)> = fixes
        .iter()
        .enumerate()
        .flat_map(|(i, f)| t.observe(f).into_iter().map(move |e| (i, e.fence)))
        .collect();
    assert_eq!(confirmed, [(1, "k1".to_string()), (3, "slow".to_string())]);
}

#[test]
fn replacing_the_fences_keeps_known_presence_and_watches_new_ones() {
    let mut t = tracker();
    for s in [0.0, 60.0] {
        t.observe(&fix("i1", s, 0.0, INSIDE));
    }
    assert_eq!(t.inside("i1"), ["k1"]);
    // A new fence around the same spot, and k1 kept: i1 stays inside k1 without a second entry and
    // enters the new fence after its dwell.
    let added = Geofence {
        id: "new".into(),
        ..key_project()
    };
    t.replace_fences(vec![added.clone(), key_project()]);
    assert_eq!(t.inside("i1"), ["k1"]);
    let mut seen = Vec::new();
    for s in [120.0, 180.0] {
        seen.extend(t.observe(&fix("i1", s, 0.0, INSIDE)));
    }
    let summary: Vec<(&str, FenceEventKind, i64)> = seen
        .iter()
        .map(|e| (e.fence.as_str(), e.kind, (e.at - T0) / 1000))
        .collect();
    assert_eq!(summary, [("new", FenceEventKind::Entered, 120)]);
    assert_eq!(t.inside("i1"), ["new", "k1"]);
    // Removing k1 forgets it without an exit.
    t.replace_fences(vec![added]);
    assert_eq!(t.inside("i1"), ["new"]);
    assert!(t.observe(&fix("i1", 240.0, 0.0, OUTSIDE)).is_empty());
    assert_eq!(t.fences().len(), 1);
}

/// A walk 150 m south of the fence for ten minutes with a fix every 5 s, spoiled by everything phones
/// do: a jump into the fence every third fix, 100 s of cell-tower positions inside the fence, a fix
/// stamped an hour ahead, and after a reconnect a replay of old fixes.
fn jumpy_track() -> Vec<(PositionFix, i64)> {
    let mut arrivals = Vec::new();
    for i in 0..120 {
        let s = 5.0 * f64::from(i);
        let walk = fix("i1", s, -400.0 + 1.4 * s, OUTSIDE);
        let spoiled = if (200.0..300.0).contains(&s) {
            PositionFix {
                accuracy_m: Some(800.0),
                ..fix("i1", s, 0.0, 0.0)
            }
        } else if i % 3 == 1 {
            let east = if i % 2 == 0 { 250.0 } else { -250.0 };
            fix("i1", s, east, 250.0)
        } else {
            walk
        };
        let arrival = spoiled.time;
        arrivals.push((spoiled, arrival));
    }
    let now = T0 + 600_000;
    arrivals.push((fix("i1", 3_600.0, 0.0, 0.0), now));
    for i in 20..40 {
        // Old fixes re-sent after a reconnect; some were jumps into the fence.
        let (old, _) = arrivals[i].clone();
        arrivals.push((old, now + 1000));
    }
    arrivals
}

#[test]
fn a_jumpy_out_of_order_track_raises_no_false_events() {
    let arrivals = jumpy_track();
    // Unfiltered, the cell-tower positions alone would put the inspector inside for 100 s.
    let mut raw = tracker();
    let raw_events: Vec<FenceEvent> = arrivals.iter().flat_map(|(f, _)| raw.observe(f)).collect();
    assert!(!raw_events.is_empty());

    let mut filters = TrackFilters::new(TrackFilterConfig::default());
    let mut t = tracker();
    let mut rejected: BTreeMap<&str, usize> = BTreeMap::new();
    let mut emitted = Vec::new();
    for (f, arrival) in &arrivals {
        match filters.check(f, *arrival) {
            Ok(accepted) => {
                for confirmed in &accepted.confirmed {
                    emitted.extend(t.observe(confirmed));
                }
                emitted.extend(t.observe(f));
            }
            Err(reason) => *rejected.entry(reason.label()).or_default() += 1,
        }
    }
    assert_eq!(emitted, []);
    assert_eq!(
        rejected,
        BTreeMap::from([
            ("from_the_future", 1),
            ("impossible_jump", 33),
            ("inaccurate", 20),
            ("out_of_order", 20)
        ])
    );
}

#[test]
fn a_real_crossing_through_the_filter_is_reported_once() {
    let mut filters = TrackFilters::new(TrackFilterConfig::default());
    let mut t = tracker();
    // Walking north at 1.5 m/s from 450 m south of the centre, a fix every 45 s, into the fence and
    // staying about four minutes around its centre before walking back out.
    let mut fixes: Vec<PositionFix> = (0..=6)
        .map(|i| fix("i1", 45.0 * f64::from(i), 0.0, -450.0 + 67.5 * f64::from(i)))
        .collect();
    fixes.extend((7..=12).map(|i| fix("i1", 45.0 * f64::from(i), 10.0, 0.0)));
    fixes
        .extend((13..=20).map(|i| fix("i1", 45.0 * f64::from(i), 10.0, -67.5 * f64::from(i - 12))));
    let mut emitted = Vec::new();
    for f in &fixes {
        filters.check(f, f.time).unwrap();
        emitted.extend(t.observe(f));
    }
    let summary: Vec<(FenceEventKind, f64)> = emitted
        .iter()
        .map(|e| (e.kind, (e.at - T0) as f64 / 1000.0))
        .collect();
    // The first fix inside the south edge (-300 m) is the 3rd step north (-247.5 m) at 135 s; the first
    // outside on the way back is 5 steps south (-337.5 m) at 765 s.
    assert_eq!(
        summary,
        [
            (FenceEventKind::Entered, 135.0),
            (FenceEventKind::Exited, 765.0)
        ]
    );
    // Replaying the stored track gives the same events.
    assert_eq!(
        replay(vec![key_project()], FenceTrackerConfig::default(), &fixes),
        emitted
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Events alternate starting with Entered, and each one is backed by fixes on its new side from
    /// `at` to the confirming fix, at least the dwell (or absence) apart, with no gap over the maximum.
    #[test]
    fn events_are_backed_by_sustained_evidence(
        steps in prop::collection::vec((any::<bool>(), 1i64..400_000), 1..80),
    ) {
        let config = FenceTrackerConfig::default();
        let mut presence = FencePresence::default();
        let mut seen: Vec<(bool, i64)> = Vec::new();
        let mut expect_enter = true;
        let mut time = 0;
        for (inside, dt) in steps {
            time += dt;
            let after_gap = seen.last().is_some_and(|&(_, last)| time - last > config.max_gap_ms);
            seen.push((inside, time));
            let Some((kind, at)) = presence.observe(inside, time, after_gap, &config) else {
                continue;
            };
            prop_assert_eq!(kind == FenceEventKind::Entered, expect_enter);
            prop_assert_eq!(kind == FenceEventKind::Entered, inside);
            expect_enter = !expect_enter;
            let needed = if inside { config.min_dwell_ms } else { config.min_absence_ms };
            prop_assert!(time - at >= needed);
            let backing: Vec<&(bool, i64)> = seen.iter().filter(|(_, t)| *t >= at).collect();
            prop_assert!(backing.iter().all(|(side, _)| *side == inside));
            prop_assert!(backing.windows(2).all(|w| w[1].1 - w[0].1 <= config.max_gap_ms));
            prop_assert_eq!(presence.is_inside(), inside);
        }
    }
}
