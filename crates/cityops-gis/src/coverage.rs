//! Patrol coverage (巡查覆盖): which cells the inspectors walked, how much of each street and community
//! that covers a day, and whether key projects got their required visits.
//!
//! Everything is computed from accepted fixes, so a jump never "visits" a cell. A cell is visited by
//! a fix inside it, and, with [`Interpolation`] (on by default), by the straight segment between two
//! consecutive fixes of one inspector less than `max_gap_ms` apart, sampled every `step_m` metres with
//! times interpolated along it. Walking at 1.5 m/s crosses a 100 m cell in about a minute, so with fixes
//! every 30 s a cut corner would otherwise go unseen; beyond the gap the path between two fixes is
//! unknown and nothing is credited. The straight line may credit a cell the inspector walked around
//! rather than through; at 10,000 m² cells and a one-minute gap that error is a corner, not a street.
//!
//! Days are local calendar days at a fixed UTC offset (default UTC+08:00). A key-project visit is one
//! confirmed `Entered` event (see [`crate::geofence`]), counted on the local day of its `at`; two
//! inspectors entering together are two visits.

use chrono::{DateTime, FixedOffset, NaiveDate};
use cityops_core::{GeoPoint, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::geofence::{FenceEvent, FenceEventKind, FenceTrackerConfig, Geofence, replay};
use crate::grid::{CellCode, CommunityCode, StreetCode};
use crate::index::{GridIndex, Location};
use crate::tracking::PositionFix;

/// A half-open time window `[start, end)`, e.g. a shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub start: UnixMillis,
    pub end: UnixMillis,
}

impl TimeWindow {
    pub fn contains(&self, time: UnixMillis) -> bool {
        self.start <= time && time < self.end
    }

    /// The local calendar day `day` at `offset`.
    pub fn local_day(day: NaiveDate, offset: FixedOffset) -> TimeWindow {
        let start = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        let start_ms =
            start.and_utc().timestamp_millis() - i64::from(offset.local_minus_utc()) * 1000;
        TimeWindow {
            start: start_ms,
            end: start_ms + 86_400_000,
        }
    }
}

/// The local calendar day of an instant at `offset`.
pub fn local_day(time: UnixMillis, offset: FixedOffset) -> NaiveDate {
    DateTime::from_timestamp_millis(time)
        .unwrap_or_default()
        .with_timezone(&offset)
        .date_naive()
}

/// Crediting the cells between two fixes (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interpolation {
    /// Consecutive fixes further apart are not joined.
    pub max_gap_ms: i64,
    /// Spacing of the samples along the segment; well under a cell's side.
    pub step_m: f64,
}

impl Default for Interpolation {
    fn default() -> Self {
        Self {
            max_gap_ms: 60_000,
            step_m: 10.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoverageOptions {
    /// The offset whose midnight starts a day: UTC+08:00 in China.
    pub utc_offset: FixedOffset,
    /// `None`: only the cells of the fixes themselves.
    pub interpolation: Option<Interpolation>,
}

impl Default for CoverageOptions {
    fn default() -> Self {
        Self {
            utc_offset: FixedOffset::east_opt(8 * 3600).expect("UTC+08:00 is a valid offset"),
            interpolation: Some(Interpolation::default()),
        }
    }
}

/// The cells each inspector visited within `window` (e.g. a shift). Fixes may come in any order.
pub fn visited_cells(
    fixes: &[PositionFix],
    grid: &GridIndex,
    window: TimeWindow,
    options: &CoverageOptions,
) -> BTreeMap<String, BTreeSet<CellCode>> {
    let mut tracks: BTreeMap<&str, Vec<&PositionFix>> = BTreeMap::new();
    for fix in fixes {
        tracks.entry(fix.inspector.as_str()).or_default().push(fix);
    }
    let mut visited = BTreeMap::new();
    for (inspector, mut track) in tracks {
        track.sort_by_key(|fix| fix.time);
        let mut cells = BTreeSet::new();
        let mut credit = |point: GeoPoint, time: UnixMillis| {
            if window.contains(time)
                && let Location::Inside { cell, .. } = grid.locate_wgs84(point)
            {
                cells.insert(cell);
            }
        };
        for fix in &track {
            credit(fix.point(), fix.time);
        }
        if let Some(interpolation) = options.interpolation {
            for pair in track.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if b.time - a.time <= interpolation.max_gap_ms {
                    for (point, time) in samples_between(a, b, interpolation.step_m) {
                        credit(point, time);
                    }
                }
            }
        }
        if !cells.is_empty() {
            visited.insert(inspector.to_string(), cells);
        }
    }
    visited
}

/// Points strictly between two fixes, at most `step_m` apart, with their interpolated times.
fn samples_between(
    a: &PositionFix,
    b: &PositionFix,
    step_m: f64,
) -> impl Iterator<Item = (GeoPoint, UnixMillis)> + use<> {
    let distance_m = a.point().distance_m(&b.point());
    let steps = (distance_m / step_m.max(0.1)).ceil().max(1.0) as u32;
    let (from, to) = (a.point(), b.point());
    let (start, span) = (a.time, b.time - a.time);
    (1..steps).map(move |k| {
        let f = f64::from(k) / f64::from(steps);
        let point = GeoPoint {
            lon: from.lon + (to.lon - from.lon) * f,
            lat: from.lat + (to.lat - from.lat) * f,
        };
        (point, start + (span as f64 * f).round() as i64)
    })
}

/// Visited cells out of all cells of an area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Share {
    pub visited: usize,
    pub total: usize,
}

impl Share {
    /// `visited / total`; 0 for an area without cells.
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.visited as f64 / self.total as f64
        }
    }
}

/// Coverage of every street and community of the grid on one local day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayCoverage {
    pub day: NaiveDate,
    pub streets: BTreeMap<StreetCode, Share>,
    pub communities: BTreeMap<CommunityCode, Share>,
}

/// The share of cells of each street and community that any inspector visited on `day`. Every street
/// and community of the grid is listed, unvisited ones with 0.
pub fn coverage_on_day(
    fixes: &[PositionFix],
    grid: &GridIndex,
    day: NaiveDate,
    options: &CoverageOptions,
) -> DayCoverage {
    let window = TimeWindow::local_day(day, options.utc_offset);
    let visited: BTreeSet<CellCode> = visited_cells(fixes, grid, window, options)
        .into_values()
        .flatten()
        .collect();
    let mut coverage = DayCoverage {
        day,
        streets: BTreeMap::new(),
        communities: BTreeMap::new(),
    };
    for cell in grid.cells() {
        let hit = usize::from(visited.contains(&cell.code));
        for share in [
            coverage.streets.entry(cell.street_code).or_default(),
            coverage.communities.entry(cell.community_code).or_default(),
        ] {
            share.total += 1;
            share.visited += hit;
        }
    }
    coverage
}

/// The visits of one key project on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceVisits {
    pub fence: String,
    pub visits: u32,
    pub required: u32,
}

/// A key project visited less often than required: the payload of the warning event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BehindSchedule {
    pub fence: String,
    pub visits: u32,
    pub required: u32,
}

/// The visits of every key project (in fence order) on `day`, counted from `Entered` events.
pub fn count_fence_visits(
    fences: &[Geofence],
    events: &[FenceEvent],
    day: NaiveDate,
    offset: FixedOffset,
) -> Vec<FenceVisits> {
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for event in events {
        if event.kind == FenceEventKind::Entered && local_day(event.at, offset) == day {
            *counts.entry(event.fence.as_str()).or_default() += 1;
        }
    }
    fences
        .iter()
        .filter_map(|fence| {
            let required = fence.kind.required_visits_per_day()?;
            Some(FenceVisits {
                fence: fence.id.clone(),
                visits: counts.get(fence.id.as_str()).copied().unwrap_or(0),
                required,
            })
        })
        .collect()
}

/// [`count_fence_visits`] of the events a fresh [`crate::GeofenceTracker`] derives from `fixes`. Pass
/// the fixes from before the day too if an inspector may already be inside at midnight: such a stay is
/// not a visit of the new day.
pub fn fence_visits(
    fixes: &[PositionFix],
    fences: &[Geofence],
    config: &FenceTrackerConfig,
    day: NaiveDate,
    offset: FixedOffset,
) -> Vec<FenceVisits> {
    let events = replay(fences.to_vec(), config.clone(), fixes);
    count_fence_visits(fences, &events, day, offset)
}

/// The visits a key project needs by the time `elapsed_share` (0 to 1, clamped) of its patrol day has
/// passed: the required ones in proportion, rounded down, so a project of four visits a day over a
/// twelve-hour day owes its first at three hours and all four only at the end.
pub fn visits_due(required: u32, elapsed_share: f64) -> u32 {
    let share = if elapsed_share.is_nan() {
        0.0
    } else {
        elapsed_share.clamp(0.0, 1.0)
    };
    // A hair over, so a share that is exactly k/required in decimal does not round to k - 1.
    ((f64::from(required) * share) + 1e-9).floor() as u32
}

/// The key projects whose visits so far are below what is due after `elapsed_share` of the patrol
/// day (see [`visits_due`]), with the visits due.
pub fn behind_pro_rata(visits: &[FenceVisits], elapsed_share: f64) -> Vec<(BehindSchedule, u32)> {
    visits
        .iter()
        .filter_map(|v| {
            let due = visits_due(v.required, elapsed_share);
            (v.visits < due).then(|| {
                let behind = BehindSchedule {
                    fence: v.fence.clone(),
                    visits: v.visits,
                    required: v.required,
                };
                (behind, due)
            })
        })
        .collect()
}

/// The key projects with fewer visits than required.
pub fn behind_schedule(visits: &[FenceVisits]) -> Vec<BehindSchedule> {
    visits
        .iter()
        .filter(|v| v.visits < v.required)
        .map(|v| BehindSchedule {
            fence: v.fence.clone(),
            visits: v.visits,
            required: v.required,
        })
        .collect()
}
