//! The inspector board: every field inspector's status and last accepted position, and the nearest
//! available ones to a case.
//!
//! Positions live in a 2-D R-tree, each at its unit vector projected onto the plane of the first
//! position the board was given (see the `sphere` module): the planar distance never exceeds the
//! chord, so a depth-first search that skips what lies past the best chords found answers in exact
//! great-circle order, anywhere on the earth. A move is one removal and one insertion, O(log n) each,
//! so ten thousand inspectors reporting every few seconds stay cheap (the tests move 10,000 of them
//! five times). The board trusts its positions: feed it only fixes a [`crate::TrackFilter`] accepted.
//!
//! An inspector the board has a position for but no status is [`InspectorStatus::OffDuty`]: a phone
//! that reports is not yet someone who declared themselves ready for dispatch.

use cityops_core::{GeoPoint, GridPlace, UnixMillis};
use rstar::RTree;
use rstar::primitives::GeomWithData;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

use crate::run_card::RunCard;
use crate::sphere::{Plane, nearest_on_plane, unit_vector};
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
    id: String,
    status: InspectorStatus,
    position: Option<Placed>,
}

/// A position as the board keeps it: with its unit vector and its key in the tree (the vector on the
/// board's plane).
#[derive(Debug, Clone, Copy)]
struct Placed {
    position: Position,
    unit: [f64; 3],
    key: [f64; 2],
}

/// Status and last position of every inspector.
#[derive(Debug, Clone)]
pub struct InspectorBoard {
    max_position_age_ms: i64,
    /// Each known inspector's slot in `entries` (looked up on every move: a fast hasher).
    slots: HashMap<String, usize, foldhash::fast::RandomState>,
    /// By slot; a slot of a removed inspector waits in `free` for the next new one.
    entries: Vec<Entry>,
    free: Vec<usize>,
    /// The plane of the first position the board was given (see the `sphere` module).
    plane: Option<Plane>,
    /// Exactly the inspectors with a position, by slot, at the key of that position.
    tree: RTree<GeomWithData<[f64; 2], u32>>,
}

impl InspectorBoard {
    /// A board on which a position older than `max_position_age_ms` at query time is stale.
    pub fn new(max_position_age_ms: i64) -> Self {
        Self {
            max_position_age_ms,
            slots: HashMap::default(),
            entries: Vec::new(),
            free: Vec::new(),
            plane: None,
            tree: RTree::new(),
        }
    }

    pub fn set_status(&mut self, inspector: &str, status: InspectorStatus) {
        let slot = self.slot(inspector);
        self.entries[slot].status = status;
    }

    /// Moves an inspector. Returns false (and changes nothing) when the board already holds a position
    /// at least as recent.
    pub fn update_position(&mut self, inspector: &str, point: GeoPoint, time: UnixMillis) -> bool {
        let slot = self.slot(inspector);
        let old = self.entries[slot].position;
        if old.is_some_and(|old| old.position.time >= time) {
            return false;
        }
        let unit = unit_vector(point);
        let key = self
            .plane
            .get_or_insert_with(|| Plane::at(point))
            .project(&unit);
        self.entries[slot].position = Some(Placed {
            position: Position { point, time },
            unit,
            key,
        });
        if let Some(old) = old {
            self.tree.remove(&GeomWithData::new(old.key, slot as u32));
        }
        self.tree.insert(GeomWithData::new(key, slot as u32));
        true
    }

    /// [`InspectorBoard::update_position`] with an accepted fix.
    pub fn apply_fix(&mut self, fix: &PositionFix) -> bool {
        self.update_position(&fix.inspector, fix.point(), fix.time)
    }

    /// Forgets an inspector; returns whether the board knew them.
    pub fn remove(&mut self, inspector: &str) -> bool {
        let Some(slot) = self.slots.remove(inspector) else {
            return false;
        };
        let entry = &mut self.entries[slot];
        if let Some(old) = entry.position.take() {
            self.tree.remove(&GeomWithData::new(old.key, slot as u32));
        }
        entry.id.clear();
        entry.status = InspectorStatus::OffDuty;
        self.free.push(slot);
        true
    }

    pub fn status(&self, inspector: &str) -> Option<InspectorStatus> {
        Some(self.entries[*self.slots.get(inspector)?].status)
    }

    pub fn position(&self, inspector: &str) -> Option<Position> {
        Some(self.entries[*self.slots.get(inspector)?].position?.position)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
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
        let mut result: Vec<Candidate> = Vec::with_capacity(n);
        let mut taken: HashSet<usize> = HashSet::new();
        let team = run_card
            .and_then(|card| card.team_for(place))
            .unwrap_or(&[]);
        for id in team {
            if result.len() == n {
                return result;
            }
            let Some(&slot) = self.slots.get(id.as_str()) else {
                continue;
            };
            if let Some(placed) = self.dispatchable(slot, now)
                && taken.insert(slot)
            {
                result.push(Candidate {
                    inspector: id.clone(),
                    distance_m: point.distance_m(&placed.position.point),
                    from_run_card: true,
                });
            }
        }
        let wanted = n - result.len();
        let Some(plane) = self.plane.filter(|_| wanted > 0) else {
            return result;
        };
        let unit = unit_vector(point);
        let seen = nearest_on_plane(&self.tree, &plane, unit, wanted, |slot| {
            let slot = slot as usize;
            let placed = self.dispatchable(slot, now)?;
            (!taken.contains(&slot)).then_some(placed.unit)
        });
        // In place: each candidate's chord becomes its haversine distance, the order of the answer.
        let mut nearest = seen;
        for (distance, slot) in &mut nearest {
            let placed = self.entries[*slot as usize].position;
            *distance = placed.map_or(f64::INFINITY, |placed| {
                point.distance_m(&placed.position.point)
            });
        }
        let id = |slot: u32| self.entries[slot as usize].id.as_str();
        nearest.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| id(a.1).cmp(id(b.1))));
        result.extend(
            nearest
                .into_iter()
                .take(wanted)
                .map(|(distance_m, slot)| Candidate {
                    inspector: id(slot).to_string(),
                    distance_m,
                    from_run_card: false,
                }),
        );
        result
    }

    /// The position of the available inspector in `slot` if it is fresh at `now`.
    fn dispatchable(&self, slot: usize, now: UnixMillis) -> Option<&Placed> {
        let entry = &self.entries[slot];
        let placed = entry.position.as_ref()?;
        let fresh = now.saturating_sub(placed.position.time) <= self.max_position_age_ms;
        (entry.status == InspectorStatus::Available && fresh).then_some(placed)
    }

    /// The slot of an inspector, a new one for an inspector the board does not know yet.
    fn slot(&mut self, inspector: &str) -> usize {
        if let Some(&slot) = self.slots.get(inspector) {
            return slot;
        }
        let entry = Entry {
            id: inspector.to_string(),
            status: InspectorStatus::OffDuty,
            position: None,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot] = entry;
                slot
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        self.slots.insert(inspector.to_string(), slot);
        slot
    }
}
