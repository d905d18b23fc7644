//! The inspector board: every field inspector's status and last accepted position, and the nearest
//! available ones to a case.
//!
//! Positions live in an R-tree of unit vectors (see the `sphere` module), so the search runs in exact
//! great-circle order. A move is one removal and one insertion, O(log n) each, so ten thousand
//! inspectors reporting every few seconds stay cheap (the tests move 10,000 of them five times). The
//! board trusts its positions: feed it only fixes a [`crate::TrackFilter`] accepted.
//!
//! An inspector the board has a position for but no status is [`InspectorStatus::OffDuty`]: a phone
//! that reports is not yet someone who declared themselves ready for dispatch.

use cityops_core::{GeoPoint, GridPlace, UnixMillis};
use rstar::RTree;
use rstar::primitives::GeomWithData;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

use crate::run_card::RunCard;
use crate::sphere::{unit_vector, with_rounding_margin};
use crate::tracking::PositionFix;

/// Field-unit states of dispatch systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectorStatus {
    Available,
    EnRoute,
    OnScene,
    Returning,
    OffDuty,
}

impl InspectorStatus {
    pub const ALL: [InspectorStatus; 5] = [
        InspectorStatus::Available,
        InspectorStatus::EnRoute,
        InspectorStatus::OnScene,
        InspectorStatus::Returning,
        InspectorStatus::OffDuty,
    ];

    /// The wire name, as serde writes it: `available`, `en_route`, `on_scene`, `returning`, `off_duty`.
    pub fn as_str(self) -> &'static str {
        match self {
            InspectorStatus::Available => "available",
            InspectorStatus::EnRoute => "en_route",
            InspectorStatus::OnScene => "on_scene",
            InspectorStatus::Returning => "returning",
            InspectorStatus::OffDuty => "off_duty",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            InspectorStatus::Available => "空闲待命",
            InspectorStatus::EnRoute => "赶赴现场",
            InspectorStatus::OnScene => "现场处置",
            InspectorStatus::Returning => "返回途中",
            InspectorStatus::OffDuty => "下班离岗",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            InspectorStatus::Available => "Available",
            InspectorStatus::EnRoute => "En route",
            InspectorStatus::OnScene => "On scene",
            InspectorStatus::Returning => "Returning",
            InspectorStatus::OffDuty => "Off duty",
        }
    }
}

/// An accepted position and the time of its fix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub point: GeoPoint,
    pub time: UnixMillis,
}

/// One answer of [`InspectorBoard::nearest_available`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub inspector: String,
    /// Great-circle distance from the query point.
    pub distance_m: f64,
    /// Put first because the run card names the inspector for the place, not for being nearest.
    pub from_run_card: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    status: InspectorStatus,
    position: Option<Position>,
}

/// Status and last position of every inspector.
#[derive(Debug, Clone)]
pub struct InspectorBoard {
    max_position_age_ms: i64,
    inspectors: HashMap<String, Entry>,
    /// Exactly the inspectors with a position, at the unit vector of that position.
    tree: RTree<GeomWithData<[f64; 3], String>>,
}

impl InspectorBoard {
    /// A board on which a position older than `max_position_age_ms` at query time is stale.
    pub fn new(max_position_age_ms: i64) -> Self {
        Self {
            max_position_age_ms,
            inspectors: HashMap::new(),
            tree: RTree::new(),
        }
    }

    pub fn set_status(&mut self, inspector: &str, status: InspectorStatus) {
        self.entry(inspector).status = status;
    }

    /// Moves an inspector. Returns false (and changes nothing) when the board already holds a position
    /// at least as recent.
    pub fn update_position(&mut self, inspector: &str, point: GeoPoint, time: UnixMillis) -> bool {
        let entry = self.entry(inspector);
        let old = entry.position;
        if old.is_some_and(|old| old.time >= time) {
            return false;
        }
        entry.position = Some(Position { point, time });
        if let Some(old) = old {
            self.tree.remove(&GeomWithData::new(
                unit_vector(old.point),
                inspector.to_string(),
            ));
        }
        self.tree
            .insert(GeomWithData::new(unit_vector(point), inspector.to_string()));
        true
    }

    /// [`InspectorBoard::update_position`] with an accepted fix.
    pub fn apply_fix(&mut self, fix: &PositionFix) -> bool {
        self.update_position(&fix.inspector, fix.point(), fix.time)
    }

    /// Forgets an inspector; returns whether the board knew them.
    pub fn remove(&mut self, inspector: &str) -> bool {
        let Some(entry) = self.inspectors.remove(inspector) else {
            return false;
        };
        if let Some(old) = entry.position {
            self.tree.remove(&GeomWithData::new(
                unit_vector(old.point),
                inspector.to_string(),
            ));
        }
        true
    }

    pub fn status(&self, inspector: &str) -> Option<InspectorStatus> {
        self.inspectors.get(inspector).map(|entry| entry.status)
    }

    pub fn position(&self, inspector: &str) -> Option<Position> {
        self.inspectors.get(inspector)?.position
    }

    pub fn len(&self) -> usize {
        self.inspectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inspectors.is_empty()
    }

    /// The `n` available inspectors with a fresh position (at most the maximum age old at `now`) for a
    /// case at `point` in `place`: first the team the run card names for the place, in the card's order,
    /// then the nearest others by great-circle distance (ties by id). A team member far away still comes
    /// first: that is what a run card is for.
    pub fn nearest_available(
        &self,
        point: GeoPoint,
        place: &GridPlace,
        n: usize,
        run_card: Option<&RunCard>,
        now: UnixMillis,
    ) -> Vec<Candidate> {
        let mut result: Vec<Candidate> = Vec::new();
        let mut taken: HashSet<&str> = HashSet::new();
        let team = run_card
            .and_then(|card| card.team_for(place))
            .unwrap_or(&[]);
        for id in team {
            if result.len() == n {
                return result;
            }
            if let Some(position) = self.dispatchable(id, now)
                && taken.insert(id)
            {
                result.push(Candidate {
                    inspector: id.clone(),
                    distance_m: point.distance_m(&position.point),
                    from_run_card: true,
                });
            }
        }
        let wanted = n - result.len();
        if wanted == 0 {
            return result;
        }
        // The tree's order is the chord's; near the n-th distance, rounding could disagree with the
        // haversine distance, so everything within a hair of it is collected and sorted by haversine.
        let mut nearest: Vec<(f64, &str)> = Vec::new();
        let mut limit = None;
        for (item, chord2) in self
            .tree
            .nearest_neighbor_iter_with_distance_2(&unit_vector(point))
        {
            if limit.is_some_and(|limit| chord2 > limit) {
                break;
            }
            let id = item.data.as_str();
            let Some(position) = self.dispatchable(id, now) else {
                continue;
            };
            if taken.contains(id) {
                continue;
            }
            nearest.push((point.distance_m(&position.point), id));
            if nearest.len() == wanted {
                limit = Some(with_rounding_margin(chord2));
            }
        }
        nearest.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        result.extend(
            nearest
                .into_iter()
                .take(wanted)
                .map(|(distance_m, id)| Candidate {
                    inspector: id.to_string(),
                    distance_m,
                    from_run_card: false,
                }),
        );
        result
    }

    /// The position of an available inspector whose position is fresh at `now`.
    fn dispatchable(&self, inspector: &str, now: UnixMillis) -> Option<Position> {
        let entry = self.inspectors.get(inspector)?;
        let position = entry.position?;
        let fresh = now.saturating_sub(position.time) <= self.max_position_age_ms;
        (entry.status == InspectorStatus::Available && fresh).then_some(position)
    }

    fn entry(&mut self, inspector: &str) -> &mut Entry {
        self.inspectors
            .entry(inspector.to_string())
            .or_insert(Entry {
                status: InspectorStatus::OffDuty,
                position: None,
            })
    }
}
