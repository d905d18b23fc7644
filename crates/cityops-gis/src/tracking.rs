//! Inspector tracking: which GPS fixes of a field inspector (监督员) are believable enough to act on.
//!
//! Phones report jumps (multipath between tall buildings, a cell-tower fallback position), repeat old
//! fixes after a reconnect, and send them out of order. Acting on those raises false geofence events and
//! moves an inspector across the map. A [`TrackFilter`] keeps, per inspector, the last accepted fix (the
//! anchor) and judges each new fix against it, in this order:
//!
//! 1. [`Rejection::InvalidCoordinates`]: not a position on the earth, or exactly (0, 0), which receivers
//!    send when they have no fix at all;
//! 2. [`Rejection::Inaccurate`]: the reported accuracy radius is worse than `max_accuracy_m` (or not a
//!    non-negative number); a fix without an accuracy is taken at face value;
//! 3. [`Rejection::FromTheFuture`]: stamped more than `max_future_skew_ms` after the time of arrival;
//! 4. [`Rejection::OutOfOrder`]: not later than the anchor (a repeat or a late arrival);
//! 5. [`Rejection::ImpossibleJump`]: farther from the anchor than `jitter_m` and faster than
//!    `max_speed_mps` to reach. The jitter allowance exists because a standing inspector's fixes scatter
//!    by tens of metres: at one fix a second that alone would be an "impossible" speed.
//!
//! A rejected fix changes nothing about the anchor, so one bad jump cannot poison the filter: the next
//! fix near the anchor is judged against the anchor as if the jump never happened.
//!
//! **Re-anchoring.** The anchor itself may be wrong (the first fix of a shift was a cell-tower position
//! kilometres away), or the inspector really moved faster than the limit between two fixes. Then every
//! later fix looks like a jump. (A metro ride with the phone off needs nothing special: its long gap
//! makes the speed plausible.) So jumps that are consistent with each other (each one plausible from the
//! one before it) are collected, and when `reanchor_after` (default 3) of them follow each other, the
//! last one is accepted and becomes the anchor; the earlier ones are handed back in
//! [`Accepted::confirmed`] so the caller may apply them too. A jump inconsistent with the collected ones
//! starts a new collection, and any normally accepted fix discards it: scattered outliers never
//! re-anchor. The earlier fixes of a re-anchoring were counted as `impossible_jump` when they arrived;
//! that count is what they looked like at the time.
//!
//! **Limits.** A speed test cannot judge a fix after a long silence: after 20 s without an accepted fix,
//! a position 800 m away is "plausible" at 40 m/s. Such an outlier becomes the anchor, and the next real
//! fixes are jumps until they re-anchor (three fixes later). Geofence dwell times absorb that; for foot
//! patrols a lower `max_speed_mps` (say 15 m/s) narrows it.
//!
//! Every function takes the time it needs; nothing reads a clock. Times are Unix milliseconds.

use cityops_core::{GeoPoint, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One GPS position of an inspector, as the phone reported it (WGS-84).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionFix {
    pub inspector: String,
    pub lon: f64,
    pub lat: f64,
    /// When the phone took the fix, Unix milliseconds.
    pub time: UnixMillis,
    /// Radius of the 68% confidence circle in metres, when the phone reports one.
    #[serde(default)]
    pub accuracy_m: Option<f64>,
}

impl PositionFix {
    /// The position, unchecked (only an accepted fix is known to be a valid point).
    pub fn point(&self) -> GeoPoint {
        GeoPoint {
            lon: self.lon,
            lat: self.lat,
        }
    }
}

/// Limits of a [`TrackFilter`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackFilterConfig {
    /// Fastest believable movement between fixes: 40 m/s ≈ 144 km/h.
    pub max_speed_mps: f64,
    /// Worst accepted accuracy radius.
    pub max_accuracy_m: f64,
    /// How far a fix may be stamped after its arrival (phone clocks drift).
    pub max_future_skew_ms: i64,
    /// A move this short never counts as a jump, however quick: GPS scatter of a standing inspector.
    pub jitter_m: f64,
    /// Consecutive mutually consistent jumps that make the filter re-anchor at the new place (≥ 1).
    pub reanchor_after: usize,
}

impl Default for TrackFilterConfig {
    fn default() -> Self {
        Self {
            max_speed_mps: 40.0,
            max_accuracy_m: 100.0,
            max_future_skew_ms: 60_000,
            jitter_m: 25.0,
            reanchor_after: 3,
        }
    }
}

/// Why a fix was not applied. [`Rejection::label`] is the metric label to count it under.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    #[error("the fix is stamped at or before the last accepted one ({last_accepted} ms)")]
    OutOfOrder { last_accepted: UnixMillis },
    #[error("reaching the fix from the last accepted one needs {speed_mps:.1} m/s")]
    ImpossibleJump { speed_mps: f64 },
    #[error("the accuracy radius {accuracy_m} m is over the limit or not a number")]
    Inaccurate { accuracy_m: f64 },
    #[error("the coordinates are not a position on the earth (or are 0, 0)")]
    InvalidCoordinates,
    #[error("the fix is stamped {ahead_ms} ms after its arrival")]
    FromTheFuture { ahead_ms: i64 },
}

impl Rejection {
    /// `out_of_order`, `impossible_jump`, `inaccurate`, `invalid_coordinates` or `from_the_future`.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::OutOfOrder { .. } => "out_of_order",
            Rejection::ImpossibleJump { .. } => "impossible_jump",
            Rejection::Inaccurate { .. } => "inaccurate",
            Rejection::InvalidCoordinates => "invalid_coordinates",
            Rejection::FromTheFuture { .. } => "from_the_future",
        }
    }
}

/// A fix the filter accepted: apply it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Accepted {
    /// When this fix re-anchored the filter: the earlier fixes at the new place (rejected as jumps when
    /// they came, now confirmed), oldest first, to be applied before this one. Empty otherwise.
    pub confirmed: Vec<PositionFix>,
}

impl Accepted {
    /// Whether this fix moved the anchor to a new place (see the module documentation).
    pub fn reanchored(&self) -> bool {
        !self.confirmed.is_empty()
    }
}

/// The filter of one inspector's fixes.
#[derive(Debug, Clone, Default)]
pub struct TrackFilter {
    config: TrackFilterConfig,
    anchor: Option<PositionFix>,
    /// Consecutive jumps, each plausible from the one before: a relocation in the making.
    pending: Vec<PositionFix>,
}

impl TrackFilter {
    pub fn new(config: TrackFilterConfig) -> Self {
        Self {
            config,
            anchor: None,
            pending: Vec::new(),
        }
    }

    /// The last accepted fix.
    pub fn last_accepted(&self) -> Option<&PositionFix> {
        self.anchor.as_ref()
    }

    /// Judges `fix`, which arrived at `now`. An accepted fix becomes the anchor.
    pub fn check(&mut self, fix: &PositionFix, now: UnixMillis) -> Result<Accepted, Rejection> {
        let point = GeoPoint::new(fix.lon, fix.lat).map_err(|_| Rejection::InvalidCoordinates)?;
        if point.lon == 0.0 && point.lat == 0.0 {
            return Err(Rejection::InvalidCoordinates);
        }
        if let Some(accuracy_m) = fix.accuracy_m {
            // Written so that NaN fails too.
            if !(accuracy_m >= 0.0 && accuracy_m <= self.config.max_accuracy_m) {
                return Err(Rejection::Inaccurate { accuracy_m });
            }
        }
        let ahead_ms = fix.time.saturating_sub(now);
        if ahead_ms > self.config.max_future_skew_ms {
            return Err(Rejection::FromTheFuture { ahead_ms });
        }
        let Some(anchor) = &self.anchor else {
            return Ok(self.accept(fix, Vec::new()));
        };
        if fix.time <= anchor.time {
            return Err(Rejection::OutOfOrder {
                last_accepted: anchor.time,
            });
        }
        match self.jump_speed(anchor, fix) {
            None => Ok(self.accept(fix, Vec::new())),
            Some(speed_mps) => self.consider_relocation(fix, speed_mps),
        }
    }

    /// The speed from `from` to `to` when it makes `to` a jump, `None` when the move is plausible.
    /// `to` must be later than `from`.
    fn jump_speed(&self, from: &PositionFix, to: &PositionFix) -> Option<f64> {
        let distance_m = from.point().distance_m(&to.point());
        let seconds = (to.time - from.time) as f64 / 1000.0;
        let speed_mps = distance_m / seconds;
        (distance_m > self.config.jitter_m && speed_mps > self.config.max_speed_mps)
            .then_some(speed_mps)
    }

    fn consider_relocation(
        &mut self,
        fix: &PositionFix,
        speed_mps: f64,
    ) -> Result<Accepted, Rejection> {
        let continues = self
            .pending
            .last()
            .is_some_and(|last| fix.time > last.time && self.jump_speed(last, fix).is_none());
        if !continues {
            self.pending.clear();
        }
        self.pending.push(fix.clone());
        if self.pending.len() >= self.config.reanchor_after.max(1) {
            let mut confirmed = std::mem::take(&mut self.pending);
            confirmed.pop();
            return Ok(self.accept(fix, confirmed));
        }
        Err(Rejection::ImpossibleJump { speed_mps })
    }

    fn accept(&mut self, fix: &PositionFix, confirmed: Vec<PositionFix>) -> Accepted {
        self.anchor = Some(fix.clone());
        self.pending.clear();
        Accepted { confirmed }
    }
}

/// One [`TrackFilter`] per inspector, created on the inspector's first fix.
#[derive(Debug, Clone, Default)]
pub struct TrackFilters {
    config: TrackFilterConfig,
    by_inspector: HashMap<String, TrackFilter>,
}

impl TrackFilters {
    pub fn new(config: TrackFilterConfig) -> Self {
        Self {
            config,
            by_inspector: HashMap::new(),
        }
    }

    /// Judges `fix` with the filter of `fix.inspector`.
    pub fn check(&mut self, fix: &PositionFix, now: UnixMillis) -> Result<Accepted, Rejection> {
        if let Some(filter) = self.by_inspector.get_mut(&fix.inspector) {
            return filter.check(fix, now);
        }
        let mut filter = TrackFilter::new(self.config.clone());
        let verdict = filter.check(fix, now);
        // Only an inspector with an accepted fix needs a filter: rejected garbage keeps no state.
        if verdict.is_ok() {
            self.by_inspector.insert(fix.inspector.clone(), filter);
        }
        verdict
    }

    pub fn get(&self, inspector: &str) -> Option<&TrackFilter> {
        self.by_inspector.get(inspector)
    }

    /// Drops an inspector's filter (end of shift): the next fix starts afresh.
    pub fn forget(&mut self, inspector: &str) -> Option<TrackFilter> {
        self.by_inspector.remove(inspector)
    }
}
