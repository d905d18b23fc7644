//! The inspector board: statuses, run cards, staleness, moves, and nearest-available against brute force.

mod common;

use cityops_core::{GeoPoint, GridPlace};
use cityops_gis::{Candidate, InspectorBoard, InspectorStatus, RunCard};
use common::{T0, offset, point_strategy};
use proptest::prelude::*;
use std::collections::HashSet;

const MINUTE: i64 = 60_000;

fn place(cell: &str) -> GridPlace {
    GridPlace::Inside {
        cell: cell.to_string(),
        street: cell[..9].to_string(),
        community: cell[..12].to_string(),
    }
}

fn ids(candidates: &[Candidate]) -> Vec<(&str, bool)> {
    candidates
        .iter()
        .map(|c| (c.inspector.as_str(), c.from_run_card))
        .collect()
}

/// Inspectors `a`..: at `east_m` east of the base, available, positioned at T0.
fn board_with(east_m: &[f64]) -> InspectorBoard {
    let mut board = InspectorBoard::new(10 * MINUTE);
    for (i, east) in east_m.iter().enumerate() {
        let id = ((b'a' + i as u8) as char).to_string();
        board.set_status(&id, InspectorStatus::Available);
        assert!(board.update_position(&id, offset(*east, 0.0), T0));
    }
    board
}

#[test]
fn statuses_have_wire_names_and_labels() {
    let names: Vec<String> = InspectorStatus::ALL
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "\"available\"",
            "\"en_route\"",
            "\"on_scene\"",
            "\"returning\"",
            "\"off_duty\""
        ]
    );
    for status in InspectorStatus::ALL {
        assert_eq!(
            format!("\"{}\"", status.as_str()),
            serde_json::to_string(&status).unwrap()
        );
        assert!(!status.label_zh().is_empty() && !status.label_en().is_empty());
    }
    assert_eq!(InspectorStatus::EnRoute.label_zh(), "赶赴现场");
    let parsed: InspectorStatus = serde_json::from_str("\"on_scene\"").unwrap();
    assert_eq!(parsed, InspectorStatus::OnScene);
}

#[test]
fn run_card_keys_and_the_most_specific_match() {
    let mut card = RunCard::new();
    assert!(card.insert("1101010010", vec!["x".into()]).is_err());
    assert!(card.insert("11010100a", vec!["x".into()]).is_err());
    assert!(card.insert("110101001", vec![]).is_err());
    card.insert("110101001", vec!["street".into()]).unwrap();
    card.insert("110101001002", vec!["community".into()])
        .unwrap();
    card.insert("110101001002003", vec!["cell".into()]).unwrap();
    let team = |cell: &str| card.team_for(&place(cell)).map(|t| t[0].as_str());
    assert_eq!(team("110101001002003"), Some("cell"));
    assert_eq!(team("110101001002004"), Some("community"));
    assert_eq!(team("110101001003001"), Some("street"));
    assert_eq!(team("110101002001001"), None);
    assert_eq!(card.team_for(&GridPlace::Outside), None);

    let json = serde_json::to_string(&card).unwrap();
    assert_eq!(serde_json::from_str::<RunCard>(&json).unwrap(), card);
    assert!(serde_json::from_str::<RunCard>(r#"{"12": ["x"]}"#).is_err());
}

#[test]
fn nearest_available_by_distance_skipping_busy_stale_and_unknown() {
    let mut board = board_with(&[300.0, 100.0, 200.0, 50.0, 400.0]);
    board.set_status("d", InspectorStatus::OnScene);
    // e's last position is 11 minutes old at query time.
    board.remove("e");
    board.set_status("e", InspectorStatus::Available);
    assert!(board.update_position("e", offset(10.0, 0.0), T0 - MINUTE));
    assert!(!board.update_position("e", offset(10.0, 0.0), T0 - 2 * MINUTE));
    // A phone that reports but never declared a status is off duty.
    board.update_position("z", offset(1.0, 0.0), T0);
    assert_eq!(board.status("z"), Some(InspectorStatus::OffDuty));

    let now = T0 + 10 * MINUTE;
    let found = board.nearest_available(offset(0.0, 0.0), &GridPlace::Outside, 10, None, now);
    assert_eq!(ids(&found), [("b", false), ("c", false), ("a", false)]);
    assert!(
        (found[0].distance_m - 100.0).abs() < 0.01,
        "{}",
        found[0].distance_m
    );
    // e was fresh a minute earlier.
    let earlier =
        board.nearest_available(offset(0.0, 0.0), &GridPlace::Outside, 2, None, now - MINUTE);
    assert_eq!(ids(&earlier), [("e", false), ("b", false)]);
    assert!(
        board
            .nearest_available(BASE_POINT, &GridPlace::Outside, 0, None, now)
            .is_empty()
    );
}

const BASE_POINT: GeoPoint = common::BASE;

#[test]
fn the_run_card_team_comes_first_in_card_order() {
    let mut board = board_with(&[100.0, 200.0, 300.0, 5000.0, 6000.0]);
    board.set_status("e", InspectorStatus::EnRoute);
    let mut card = RunCard::new();
    // Far-away d and busy e are the team, then c again (duplicates do not repeat).
    card.insert(
        "110101001002",
        vec![
            "d".into(),
            "e".into(),
            "c".into(),
            "d".into(),
            "nobody".into(),
        ],
    )
    .unwrap();
    let here = place("110101001002003");
    let found = board.nearest_available(BASE_POINT, &here, 4, Some(&card), T0);
    assert_eq!(
        ids(&found),
        [("d", true), ("c", true), ("a", false), ("b", false)]
    );
    assert!((found[0].distance_m - 5000.0).abs() < 0.1);
    let two = board.nearest_available(BASE_POINT, &here, 1, Some(&card), T0);
    assert_eq!(ids(&two), [("d", true)]);
    // Elsewhere the card says nothing.
    let elsewhere =
        board.nearest_available(BASE_POINT, &place("110101002001001"), 2, Some(&card), T0);
    assert_eq!(ids(&elsewhere), [("a", false), ("b", false)]);
}

#[test]
fn moves_and_removals_update_the_tree() {
    let mut board = board_with(&[100.0, 200.0]);
    assert!(board.update_position("b", offset(-20.0, 0.0), T0 + 1000));
    let found = board.nearest_available(BASE_POINT, &GridPlace::Outside, 1, None, T0 + 1000);
    assert_eq!(ids(&found), [("b", false)]);
    assert!(board.remove("b"));
    assert!(!board.remove("b"));
    let found = board.nearest_available(BASE_POINT, &GridPlace::Outside, 5, None, T0 + 1000);
    assert_eq!(ids(&found), [("a", false)]);
    assert_eq!(board.len(), 1);
}

#[test]
fn ten_thousand_moving_inspectors() {
    let mut board = InspectorBoard::new(10 * MINUTE);
    let n = 10_000;
    let spot = |i: usize, round: usize| {
        let x = ((i * 7919 + round * 104_729) % 20_000) as f64;
        let y = ((i * 6271 + round * 1_299_709) % 20_000) as f64;
        offset(x - 10_000.0, y - 10_000.0)
    };
    for i in 0..n {
        board.set_status(&format!("i{i}"), InspectorStatus::ALL[i % 5]);
    }
    for round in 0..5 {
        for i in 0..n {
            let time = T0 + (round * 1000) as i64;
            assert!(board.update_position(&format!("i{i}"), spot(i, round), time));
        }
    }
    // A deep tree answers as a scan of every inspector does, wherever the case is.
    let available: Vec<(String, GeoPoint)> = (0..n)
        .filter(|i| InspectorStatus::ALL[i % 5] == InspectorStatus::Available)
        .map(|i| (format!("i{i}"), spot(i, 4)))
        .collect();
    for (east, north) in [
        (0.0, 0.0),
        (3_000.0, -7_000.0),
        (-9_999.0, 9_999.0),
        (40_000.0, 0.0),
    ] {
        let query = offset(east, north);
        let found = board.nearest_available(query, &GridPlace::Outside, 5, None, T0 + 5000);
        let mut scan: Vec<(f64, &str)> = available
            .iter()
            .map(|(id, point)| (query.distance_m(point), id.as_str()))
            .collect();
        scan.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let found: Vec<&str> = found.iter().map(|c| c.inspector.as_str()).collect();
        let scanned: Vec<&str> = scan.iter().take(5).map(|(_, id)| *id).collect();
        assert_eq!(found, scanned, "query at {east} m east, {north} m north");
    }
}

/// What the board must answer, computed the slow way.
fn brute_force(
    inspectors: &[(String, InspectorStatus, GeoPoint, i64)],
    point: GeoPoint,
    team: &[String],
    n: usize,
    now: i64,
    max_age: i64,
) -> Vec<Candidate> {
    let eligible = |id: &str| {
        inspectors.iter().find(|(i, status, _, time)| {
            i == id && *status == InspectorStatus::Available && now - time <= max_age
        })
    };
    let mut result = Vec::new();
    let mut taken = HashSet::new();
    for id in team {
        if let Some((_, _, p, _)) = eligible(id)
            && taken.insert(id.clone())
        {
            result.push(Candidate {
                inspector: id.clone(),
                distance_m: point.distance_m(p),
                from_run_card: true,
            });
        }
    }
    result.truncate(n);
    let mut rest: Vec<Candidate> = inspectors
        .iter()
        .filter(|(id, ..)| !taken.contains(id) && eligible(id).is_some())
        .map(|(id, _, p, _)| Candidate {
            inspector: id.clone(),
            distance_m: point.distance_m(p),
            from_run_card: false,
        })
        .collect();
    rest.sort_by(|a, b| {
        a.distance_m
            .total_cmp(&b.distance_m)
            .then_with(|| a.inspector.cmp(&b.inspector))
    });
    let wanted = n - result.len();
    result.extend(rest.into_iter().take(wanted));
    result
}

fn status_strategy() -> impl Strategy<Value = InspectorStatus> {
    prop::sample::select(InspectorStatus::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nearest_available_equals_brute_force(
        start in prop::collection::vec((status_strategy(), point_strategy(), 0i64..20), 0..60),
        moves in prop::collection::vec((0usize..60, point_strategy(), status_strategy()), 0..60),
        removals in prop::collection::vec(0usize..60, 0..10),
        newcomers in prop::collection::vec((status_strategy(), point_strategy()), 0..10),
        team in prop::collection::vec(0usize..70, 0..5),
        query in point_strategy(),
        n in 0usize..12,
        now_minutes in 0i64..25,
    ) {
        let max_age = 10 * MINUTE;
        let mut board = InspectorBoard::new(max_age);
        let mut model: Vec<(String, InspectorStatus, GeoPoint, i64)> = Vec::new();
        for (i, (status, point, minute)) in start.into_iter().enumerate() {
            let id = format!("i{i:02}");
            let time = T0 + minute * MINUTE;
            board.set_status(&id, status);
            board.update_position(&id, point, time);
            model.push((id, status, point, time));
        }
        for (step, (which, point, status)) in moves.into_iter().enumerate() {
            if model.is_empty() {
                break;
            }
            let count = model.len();
            let entry = &mut model[which % count];
            let time = T0 + 20 * MINUTE + step as i64 * 1000;
            prop_assert!(board.update_position(&entry.0, point, time));
            board.set_status(&entry.0, status);
            (entry.1, entry.2, entry.3) = (status, point, time);
        }
        // Some leave and others join (they take the places the leavers left on the board).
        for which in removals {
            if model.is_empty() {
                break;
            }
            let count = model.len();
            let (id, ..) = model.remove(which % count);
            prop_assert!(board.remove(&id));
        }
        for (j, (status, point)) in newcomers.into_iter().enumerate() {
            let id = format!("n{j:02}");
            let time = T0 + 21 * MINUTE;
            board.set_status(&id, status);
            board.update_position(&id, point, time);
            model.push((id, status, point, time));
        }
        prop_assert_eq!(board.len(), model.len());
        let team: Vec<String> = team.into_iter().map(|i| format!("i{i:02}")).collect();
        let mut card = RunCard::new();
        if !team.is_empty() {
            card.insert("110101001", team.clone()).unwrap();
        }
        let now = T0 + now_minutes * MINUTE;
        let here = place("110101001002003");
        let found = board.nearest_available(query, &here, n, Some(&card), now);
        let expected = brute_force(&model, query, &team, n, now, max_age);
        prop_assert_eq!(ids(&found), ids(&expected));
        for (a, b) in found.iter().zip(&expected) {
            prop_assert!((a.distance_m - b.distance_m).abs() < 1e-6);
        }
    }
}
