//! Entering and leaving fences, confirmed by dwell and absence, from accepted fixes only.
//!
//! For every (inspector, fence) pair a [`FencePresence`] holds the confirmed side (inside or outside;
//! every pair starts outside) and, while fixes on the other side keep coming, the time of the first of
//! them. The change is confirmed, and one event emitted, by the first fix on the new side that comes at
//! least `min_dwell_ms` (entering) or `min_absence_ms` (leaving) after that first one. The event's `at`
//! is the time of that first fix: the best known time of the crossing, not the time it was confirmed.
//! A fix back on the confirmed side cancels the pending change, so a wobble across the edge shorter
//! than the dwell emits nothing. Sparse fixes miss nothing as long as two of them, the dwell apart,
//! fall inside: fixes every two minutes confirm an entry at the second fix inside.
//!
//! **Gaps.** Two fixes more than `max_gap_ms` apart say nothing about the time between them, so a
//! pending change never spans such a gap: the first fix after it starts the count again. A confirmed
//! side is kept across a gap, and silence itself emits nothing: an inspector whose phone goes quiet
//! inside a fence and comes back inside has not left, and one who never comes back raises no invented
//! `Exited` (how old a position is, is the inspector board's concern). Fixes not later than the
//! inspector's previous one are ignored.
//!
//! The tracker trusts its input: feed it only fixes a [`crate::TrackFilter`] accepted (including the
//! `confirmed` ones of a re-anchoring), so jumps never reach it.

use cityops_core::UnixMillis;
use geo::BoundingRect;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

use super::Geofence;
use crate::tracking::PositionFix;

/// Confirmation times of a [`GeofenceTracker`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FenceTrackerConfig {
    /// Time inside before an entry counts.
    pub min_dwell_ms: i64,
    /// Time outside before an exit counts.
    pub min_absence_ms: i64,
    /// Longest silence between two fixes that still counts as continuous observation.
    pub max_gap_ms: i64,
}

impl Default for FenceTrackerConfig {
    fn default() -> Self {
        Self {
            min_dwell_ms: 60_000,
            min_absence_ms: 60_000,
            max_gap_ms: 300_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceEventKind {
    Entered,
    Exited,
}

/// A confirmed crossing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceEvent {
    pub inspector: String,
    /// The fence's id.
    pub fence: String,
    pub kind: FenceEventKind,
    /// The first fix on the new side (see the module documentation).
    pub at: UnixMillis,
}

/// The state of one (inspector, fence) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FencePresence {
    inside: bool,
    pending_since: Option<UnixMillis>,
}

impl FencePresence {
    /// Whether the inspector is confirmed inside.
    pub fn is_inside(&self) -> bool {
        self.inside
    }

    /// Takes one fix: inside the fence or not, at `time`, and whether a gap longer than the maximum
    /// separates it from the inspector's previous fix. Returns the confirmed crossing, if any.
    pub fn observe(
        &mut self,
        inside: bool,
        time: UnixMillis,
        after_gap: bool,
        config: &FenceTrackerConfig,
    ) -> Option<(FenceEventKind, UnixMillis)> {
        if inside == self.inside {
            self.pending_since = None;
            return None;
        }
        let since = match self.pending_since {
            Some(since) if !after_gap => since,
            _ => time,
        };
        let needed = if inside {
            config.min_dwell_ms
        } else {
            config.min_absence_ms
        };
        if time - since < needed {
            self.pending_since = Some(since);
            return None;
        }
        self.inside = inside;
        self.pending_since = None;
        let kind = if inside {
            FenceEventKind::Entered
        } else {
            FenceEventKind::Exited
        };
        Some((kind, since))
    }

    /// Confirmed outside with nothing pending: the state every pair starts in, so it need not be kept.
    fn is_idle(&self) -> bool {
        !self.inside && self.pending_since.is_none()
    }
}

#[derive(Debug, Clone)]
struct InspectorFences {
    last_time: Option<UnixMillis>,
    /// By fence index; pairs in the idle state are not kept.
    presence: HashMap<usize, FencePresence>,
}

/// Fence events of every inspector against a set of fences (replaceable, see
/// [`GeofenceTracker::replace_fences`]). A fence's own `min_dwell_ms` overrides the tracker's.
#[derive(Debug, Clone)]
pub struct GeofenceTracker {
    config: FenceTrackerConfig,
    fences: Vec<Geofence>,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
    inspectors: HashMap<String, InspectorFences>,
}

impl GeofenceTracker {
    pub fn new(fences: Vec<Geofence>, config: FenceTrackerConfig) -> Self {
        Self {
            config,
            tree: Self::index(&fences),
            fences,
            inspectors: HashMap::new(),
        }
    }

    fn index(fences: &[Geofence]) -> RTree<GeomWithData<Rectangle<[f64; 2]>, usize>> {
        let boxes = fences
            .iter()
            .enumerate()
            .filter_map(|(index, fence)| {
                let rect = fence.polygon.bounding_rect()?;
                let rectangle = Rectangle::from_corners(rect.min().into(), rect.max().into());
                Some(GeomWithData::new(rectangle, index))
            })
            .collect();
        RTree::bulk_load(boxes)
    }

    pub fn fences(&self) -> &[Geofence] {
        &self.fences
    }

    /// Watches a new set of fences from now on, keeping what is known of every inspector against each
    /// fence that keeps its id (a fence whose shape changed is reconciled by the next fixes, with the
    /// usual dwell and absence). A removed fence is forgotten without an `Exited`; a new fence starts,
    /// like every pair, outside, so an inspector already standing in it enters after the dwell.
    pub fn replace_fences(&mut self, fences: Vec<Geofence>) {
        let new_index: HashMap<&str, usize> = fences
            .iter()
            .enumerate()
            .map(|(index, fence)| (fence.id.as_str(), index))
            .collect();
        let remap: HashMap<usize, usize> = self
            .fences
            .iter()
            .enumerate()
            .filter_map(|(old, fence)| Some((old, *new_index.get(fence.id.as_str())?)))
            .collect();
        for state in self.inspectors.values_mut() {
            state.presence = std::mem::take(&mut state.presence)
                .into_iter()
                .filter_map(|(old, presence)| Some((*remap.get(&old)?, presence)))
                .collect();
        }
        self.tree = Self::index(&fences);
        self.fences = fences;
    }

    /// Takes one accepted fix; returns the crossings it confirms, in fence order.
    pub fn observe(&mut self, fix: &PositionFix) -> Vec<FenceEvent> {
        let point = fix.point();
        let containing: BTreeSet<usize> = self
            .tree
            .locate_in_envelope_intersecting(&AABB::from_point([point.lon, point.lat]))
            .map(|candidate| candidate.data)
            .filter(|&index| self.fences[index].contains(point))
            .collect();
        let state = self
            .inspectors
            .entry(fix.inspector.clone())
            .or_insert_with(|| InspectorFences {
                last_time: None,
                presence: HashMap::new(),
            });
        if state.last_time.is_some_and(|last| fix.time <= last) {
            return Vec::new();
        }
        let after_gap = state
            .last_time
            .is_some_and(|last| fix.time - last > self.config.max_gap_ms);
        state.last_time = Some(fix.time);
        let mut involved: BTreeSet<usize> = state.presence.keys().copied().collect();
        involved.extend(&containing);
        let mut events = Vec::new();
        for index in involved {
            let presence = state.presence.entry(index).or_default();
            let inside = containing.contains(&index);
            let config = match self.fences[index].min_dwell_ms {
                Some(min_dwell_ms) => FenceTrackerConfig {
                    min_dwell_ms,
                    ..self.config.clone()
                },
                None => self.config.clone(),
            };
            if let Some((kind, at)) = presence.observe(inside, fix.time, after_gap, &config) {
                events.push(FenceEvent {
                    inspector: fix.inspector.clone(),
                    fence: self.fences[index].id.clone(),
                    kind,
                    at,
                });
            }
            if presence.is_idle() {
                state.presence.remove(&index);
            }
        }
        events
    }

    /// The ids of the fences the inspector is confirmed inside, in fence order.
    pub fn inside(&self, inspector: &str) -> Vec<&str> {
        let Some(state) = self.inspectors.get(inspector) else {
            return Vec::new();
        };
        let mut indices: Vec<usize> = state
            .presence
            .iter()
            .filter(|(_, presence)| presence.is_inside())
            .map(|(&index, _)| index)
            .collect();
        indices.sort_unstable();
        indices
            .into_iter()
            .map(|index| self.fences[index].id.as_str())
            .collect()
    }

    /// Drops an inspector's state (end of shift) without emitting anything.
    pub fn forget(&mut self, inspector: &str) {
        self.inspectors.remove(inspector);
    }
}

/// Runs a fresh tracker over accepted fixes of any inspectors (sorted here by time, stably) and returns
/// every event: what a day's report recomputes from the stored track.
pub fn replay(
    fences: Vec<Geofence>,
    config: FenceTrackerConfig,
    fixes: &[PositionFix],
) -> Vec<FenceEvent> {
    let mut sorted: Vec<&PositionFix> = fixes.iter().collect();
    sorted.sort_by_key(|fix| fix.time);
    let mut tracker = GeofenceTracker::new(fences, config);
    sorted
        .into_iter()
        .flat_map(|fix| tracker.observe(fix))
        .collect()
}
