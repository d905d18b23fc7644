//! Run cards (责任卡): which inspectors answer first for a piece of the grid, in order.
//!
//! A district assigns each cell (or a whole community or street) to a responsible team (责任网格). A run
//! card maps grid codes to the ordered inspector ids of that team; the most specific code wins, so a
//! street-wide card can be overridden for one community or one cell. Keys are grid codes of 6
//! (district), 9 (street), 12 (community) or 15 (cell) digits. It travels as a JSON object
//! `{"110101001": ["i7", "i3"], ...}`.

use cityops_core::GridPlace;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a run card entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunCardError {
    #[error("run card key {0:?} is not a grid code of 6, 9, 12 or 15 digits")]
    Key(String),
    #[error("run card key {0:?} names no inspector")]
    EmptyTeam(String),
}

/// Grid code (prefix) → ordered inspector ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, Vec<String>>",
    into = "BTreeMap<String, Vec<String>>"
)]
pub struct RunCard {
    teams: BTreeMap<String, Vec<String>>,
}

impl RunCard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the team for `key` (replacing an earlier one).
    pub fn insert(&mut self, key: &str, team: Vec<String>) -> Result<(), RunCardError> {
        let digits = key.len();
        if ![6, 9, 12, 15].contains(&digits) || !key.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RunCardError::Key(key.to_string()));
        }
        if team.is_empty() {
            return Err(RunCardError::EmptyTeam(key.to_string()));
        }
        self.teams.insert(key.to_string(), team);
        Ok(())
    }

    /// The team of the most specific key that is a prefix of the place's cell code; none outside.
    pub fn team_for(&self, place: &GridPlace) -> Option<&[String]> {
        let cell = place.cell()?;
        [15, 12, 9, 6]
            .into_iter()
            .filter_map(|digits| cell.get(..digits))
            .find_map(|key| self.teams.get(key))
            .map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.teams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.teams.is_empty()
    }
}

impl TryFrom<BTreeMap<String, Vec<String>>> for RunCard {
    type Error = RunCardError;

    fn try_from(teams: BTreeMap<String, Vec<String>>) -> Result<Self, RunCardError> {
        let mut card = RunCard::new();
        for (key, team) in teams {
            card.insert(&key, team)?;
        }
        Ok(card)
    }
}

impl From<RunCard> for BTreeMap<String, Vec<String>> {
    fn from(card: RunCard) -> Self {
        card.teams
    }
}
