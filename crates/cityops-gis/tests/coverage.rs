//! Patrol coverage on a hand-made grid of six 100 m cells in two streets and four communities, with
//! exact expected numbers; key-project visits against their required frequency.

use chrono::{FixedOffset, NaiveDate, TimeZone};
use cityops_core::GeoPoint;
use cityops_gis::coverage::{
    FenceVisits, Interpolation, count_fence_visits, coverage_on_day, fence_visits, local_day,
    visited_cells,
};
use cityops_gis::{
    BehindSchedule, CellCode, CoverageOptions, Datum, FenceEvent, FenceEventKind, FenceKind,
    FenceTrackerConfig, Geofence, GridIndex, GridOptions, PositionFix, Share, TimeWindow,
    coverage::behind_schedule, generate_grid,
};
use geo::{Coord, MultiPolygon, Rect};
use std::collections::{BTreeMap, BTreeSet};

const METRES_PER_DEGREE_LAT: f64 = 111_320.0;
const WEST: f64 = 116.40;
const SOUTH: f64 = 39.90;

fn north() -> f64 {
    SOUTH + 2.0 * 100.0 / METRES_PER_DEGREE_LAT
}

fn east() -> f64 {
    let middle = (SOUTH + north()) / 2.0;
    WEST + 3.0 * 100.0 / (METRES_PER_DEGREE_LAT * middle.to_radians().cos())
}

/// Three columns by two rows of 100 m squares, as in tests/square_grid.rs, cut into two streets of two
/// communities each. The cells, by (column from the west, row from the north):
///
/// ```text
///            col 0              col 1              col 2
/// row 0  001 001 001 (a)    001 002 001 (c)    002 001 001 (d)
/// row 1  001 001 002 (b)    002 002 001 (e)    002 002 002 (f)
/// ```
/// (street, community, cell after the division 110101.)
fn grid() -> GridIndex {
    let rectangle = MultiPolygon::new(vec![
        Rect::new(
            Coord { x: WEST, y: SOUTH },
            Coord {
                x: east(),
                y: north(),
            },
        )
        .to_polygon(),
    ]);
    let options = GridOptions {
        streets: 2,
        communities_per_street: 2,
        datum: Datum::Wgs84,
        ..GridOptions::default()
    };
    GridIndex::new(&generate_grid(&rectangle, &options).unwrap())
}

/// A point at fractions of a cell from the north-west corner: `(0.5, 0.5)` is the centre of (0, 0).
fn at(col: f64, row: f64) -> GeoPoint {
    GeoPoint {
        lon: WEST + col * (east() - WEST) / 3.0,
        lat: north() - row * (north() - SOUTH) / 2.0,
    }
}

fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

/// Unix ms of a Beijing local time on a day of May 2024.
fn local(day: u32, h: u32, m: u32, s: u32) -> i64 {
    beijing()
        .with_ymd_and_hms(2024, 5, day, h, m, s)
        .unwrap()
        .timestamp_millis()
}

fn fix(inspector: &str, time: i64, point: GeoPoint) -> PositionFix {
    PositionFix {
        inspector: inspector.into(),
        lon: point.lon,
        lat: point.lat,
        time,
        accuracy_m: None,
    }
}

fn cell(code: &str) -> CellCode {
    CellCode::parse(code).unwrap()
}

const A: &str = "110101001001001";
const B: &str = "110101001001002";
const C: &str = "110101001002001";
const D: &str = "110101002001001";
const E: &str = "110101002002001";
const F: &str = "110101002002002";

fn may_first() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 5, 1).unwrap()
}

/// i1 crosses row 0 west to east in 30 s (through c without a fix in it); i2 takes 5 minutes from b
/// to f (too long to join); i3 is in e at 02:00 on 2 May (still 1 May in UTC); i4 is outside the grid.
fn track() -> Vec<PositionFix> {
    vec![
        fix("i2", local(1, 10, 5, 0), at(2.5, 1.5)),
        fix("i1", local(1, 9, 0, 0), at(0.5, 0.5)),
        fix("i1", local(1, 9, 0, 30), at(2.5, 0.5)),
        fix("i2", local(1, 10, 0, 0), at(0.5, 1.5)),
        fix("i3", local(2, 2, 0, 0), at(1.5, 1.5)),
        fix("i4", local(1, 11, 0, 0), at(5.0, 5.0)),
    ]
}

fn cells(codes: &[&str]) -> BTreeSet<CellCode> {
    codes.iter().map(|c| cell(c)).collect()
}

#[test]
fn the_hand_made_grid_is_as_drawn() {
    let grid = grid();
    let located: Vec<String> = [
        (0.5, 0.5),
        (0.5, 1.5),
        (1.5, 0.5),
        (2.5, 0.5),
        (1.5, 1.5),
        (2.5, 1.5),
    ]
    .iter()
    .map(|&(c, r)| match grid.locate_wgs84(at(c, r)) {
        cityops_gis::Location::Inside { cell, .. } => cell.to_string(),
        outside => panic!("{outside:?}"),
    })
    .collect();
    assert_eq!(located, [A, B, C, D, E, F]);
}

#[test]
fn cells_per_inspector_per_shift() {
    let grid = grid();
    let options = CoverageOptions::default();
    let day = TimeWindow::local_day(may_first(), beijing());
    let visited = visited_cells(&track(), &grid, day, &options);
    assert_eq!(
        visited,
        BTreeMap::from([
            ("i1".to_string(), cells(&[A, C, D])),
            ("i2".to_string(), cells(&[B, F]))
        ])
    );
    // i2's shift ends before the second fix.
    let shift = TimeWindow {
        start: local(1, 9, 0, 0),
        end: local(1, 10, 1, 0),
    };
    let visited = visited_cells(&track(), &grid, shift, &options);
    assert_eq!(visited["i2"], cells(&[B]));
    // The middle third of i1's 30 s segment lies wholly in c.
    let middle = TimeWindow {
        start: local(1, 9, 0, 10),
        end: local(1, 9, 0, 20),
    };
    let visited = visited_cells(&track(), &grid, middle, &options);
    assert_eq!(visited, BTreeMap::from([("i1".to_string(), cells(&[C]))]));
    // Without interpolation the cut corner is not credited.
    let bare = CoverageOptions {
        interpolation: None,
        ..options
    };
    assert_eq!(
        visited_cells(&track(), &grid, day, &bare)["i1"],
        cells(&[A, D])
    );
    // A stricter gap leaves i1's 30 s segment unjoined too.
    let strict = CoverageOptions {
        interpolation: Some(Interpolation {
            max_gap_ms: 20_000,
            step_m: 10.0,
        }),
        ..options
    };
    assert_eq!(
        visited_cells(&track(), &grid, day, &strict)["i1"],
        cells(&[A, D])
    );
}

#[test]
fn coverage_per_street_and_community_per_day() {
    let grid = grid();
    let coverage = coverage_on_day(&track(), &grid, may_first(), &CoverageOptions::default());
    let shares = |map: BTreeMap<String, Share>| -> Vec<(String, usize, usize)> {
        map.into_iter()
            .map(|(code, s)| (code, s.visited, s.total))
            .collect()
    };
    let streets = coverage
        .streets
        .iter()
        .map(|(c, s)| (c.to_string(), *s))
        .collect();
    let communities = coverage
        .communities
        .iter()
        .map(|(c, s)| (c.to_string(), *s))
        .collect();
    assert_eq!(
        shares(streets),
        [
            ("110101001".to_string(), 3, 3),
            ("110101002".to_string(), 2, 3)
        ]
    );
    assert_eq!(
        shares(communities),
        [
            ("110101001001".to_string(), 2, 2),
            ("110101001002".to_string(), 1, 1),
            ("110101002001".to_string(), 1, 1),
            ("110101002002".to_string(), 1, 2)
        ]
    );
    let second = coverage.streets.values().nth(1).unwrap();
    assert!((second.ratio() - 2.0 / 3.0).abs() < 1e-12);

    // On 2 May only i3's fix in e counts.
    let next = coverage_on_day(
        &track(),
        &grid,
        may_first().succ_opt().unwrap(),
        &CoverageOptions::default(),
    );
    let visited: usize = next.streets.values().map(|s| s.visited).sum();
    assert_eq!(visited, 1);
    assert_eq!(
        next.communities[&E.parse::<CellCode>().unwrap().community()].visited,
        1
    );
    assert_eq!(Share::default().ratio(), 0.0);
}

#[test]
fn local_days_start_at_local_midnight() {
    let day = TimeWindow::local_day(may_first(), beijing());
    assert_eq!(day.start, local(1, 0, 0, 0));
    assert_eq!(day.end, local(2, 0, 0, 0));
    assert!(day.contains(local(1, 23, 59, 59)) && !day.contains(day.end));
    assert_eq!(
        local_day(local(2, 2, 0, 0), beijing()),
        may_first().succ_opt().unwrap()
    );
    assert_eq!(
        local_day(local(1, 0, 0, 0) - 1, beijing()),
        may_first().pred_opt().unwrap()
    );
}

fn fence(id: &str, kind: FenceKind, col: f64, row: f64) -> Geofence {
    let (nw, se) = (at(col, row), at(col + 0.8, row + 0.8));
    Geofence {
        id: id.into(),
        name: format!("围栏{id}"),
        kind,
        polygon: MultiPolygon::new(vec![
            Rect::new(
                Coord {
                    x: nw.lon,
                    y: se.lat,
                },
                Coord {
                    x: se.lon,
                    y: nw.lat,
                },
            )
            .to_polygon(),
        ]),
        min_dwell_ms: None,
    }
}

#[test]
fn key_project_visits_against_the_required_frequency() {
    let fences = vec![
        fence(
            "k1",
            FenceKind::KeyProject {
                required_visits_per_day: 2,
            },
            2.1,
            0.1,
        ),
        fence(
            "k2",
            FenceKind::KeyProject {
                required_visits_per_day: 1,
            },
            0.1,
            1.1,
        ),
        fence("n1", FenceKind::NoStall, 1.1, 1.1),
    ];
    let (k1, k2, n1, outside) = (at(2.5, 0.5), at(0.5, 1.5), at(1.5, 1.5), at(0.5, 0.5));
    let fixes = vec![
        // i1 visits k1 twice, each time for over a minute.
        fix("i1", local(1, 9, 0, 0), k1),
        fix("i1", local(1, 9, 1, 0), k1),
        fix("i1", local(1, 9, 2, 0), outside),
        fix("i1", local(1, 9, 3, 0), outside),
        fix("i1", local(1, 9, 4, 0), k1),
        fix("i1", local(1, 9, 5, 30), k1),
        // i2 only passes k2 for 30 s, then stays at the no-stall zone.
        fix("i2", local(1, 10, 0, 0), k2),
        fix("i2", local(1, 10, 0, 30), k2),
        fix("i2", local(1, 10, 1, 0), n1),
        fix("i2", local(1, 10, 3, 0), n1),
        // i3 visited k2 the evening before: not a visit of 1 May.
        fix("i3", local(1, 0, 0, 0) - 3_600_000, k2),
        fix("i3", local(1, 0, 0, 0) - 3_500_000, k2),
    ];
    let visits = fence_visits(
        &fixes,
        &fences,
        &FenceTrackerConfig::default(),
        may_first(),
        beijing(),
    );
    assert_eq!(
        visits,
        [
            FenceVisits {
                fence: "k1".into(),
                visits: 2,
                required: 2
            },
            FenceVisits {
                fence: "k2".into(),
                visits: 0,
                required: 1
            }
        ]
    );
    assert_eq!(
        behind_schedule(&visits),
        [BehindSchedule {
            fence: "k2".into(),
            visits: 0,
            required: 1
        }]
    );
    let april = fence_visits(
        &fixes,
        &fences,
        &FenceTrackerConfig::default(),
        may_first().pred_opt().unwrap(),
        beijing(),
    );
    assert_eq!(april[1].visits, 1);
}

#[test]
fn visits_count_entries_of_every_inspector_on_the_local_day() {
    let fences = vec![fence(
        "k1",
        FenceKind::KeyProject {
            required_visits_per_day: 3,
        },
        0.1,
        0.1,
    )];
    let event = |inspector: &str, kind, at| FenceEvent {
        inspector: inspector.into(),
        fence: if inspector == "x" { "unknown" } else { "k1" }.into(),
        kind,
        at,
    };
    let events = [
        event("a", FenceEventKind::Entered, local(1, 8, 0, 0)),
        event("a", FenceEventKind::Exited, local(1, 8, 30, 0)),
        event("b", FenceEventKind::Entered, local(1, 8, 0, 0)),
        // 23:30 local on 1 May is 15:30 UTC, and 00:30 local on 2 May is still 1 May in UTC.
        event("c", FenceEventKind::Entered, local(1, 23, 30, 0)),
        event("d", FenceEventKind::Entered, local(2, 0, 30, 0)),
        // Another fence's entry.
        event("x", FenceEventKind::Entered, local(1, 9, 0, 0)),
    ];
    let visits = count_fence_visits(&fences, &events, may_first(), beijing());
    assert_eq!(
        visits,
        [FenceVisits {
            fence: "k1".into(),
            visits: 3,
            required: 3
        }]
    );
    assert!(behind_schedule(&visits).is_empty());
}

#[test]
fn visits_due_through_the_day_and_who_is_behind_pro_rata() {
    use cityops_gis::coverage::{FenceVisits, behind_pro_rata, visits_due};
    assert_eq!(visits_due(4, 0.0), 0);
    assert_eq!(visits_due(4, 0.24), 0);
    assert_eq!(visits_due(4, 0.25), 1);
    assert_eq!(
        visits_due(3, 2.0 / 3.0),
        2,
        "exact thirds are not rounded away"
    );
    assert_eq!(visits_due(4, 1.0), 4);
    assert_eq!(visits_due(4, 1.5), 4);
    assert_eq!(visits_due(4, -1.0), 0);
    assert_eq!(visits_due(4, f64::NAN), 0);
    let visits = [
        FenceVisits {
            fence: "k1".into(),
            visits: 1,
            required: 4,
        },
        FenceVisits {
            fence: "k2".into(),
            visits: 0,
            required: 1,
        },
    ];
    // At half the day: k1 owes two and made one; k2 owes none yet (a half of one, rounded down).
    let behind = behind_pro_rata(&visits, 0.5);
    assert_eq!(behind.len(), 1);
    assert_eq!(
        (behind[0].0.fence.as_str(), behind[0].0.visits, behind[0].1),
        ("k1", 1, 2)
    );
    let at_the_end = behind_pro_rata(&visits, 1.0);
    let at_the_end: Vec<&str> = at_the_end.iter().map(|(b, _)| b.fence.as_str()).collect();
    assert_eq!(at_the_end, ["k1", "k2"]);
}
