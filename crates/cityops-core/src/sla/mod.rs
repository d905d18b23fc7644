//! Time limits (SLA) of the case workflow, counted in working time on a working calendar.
//!
//! Every stage of a case (acceptance, registration, dispatch, handling, check, …) has a limit in minutes.
//! Ordinary categories count only working time ([`WorkCalendar`]: working periods of the day, weekends,
//! public holidays and the make-up working days 调休上班 of the Chinese holiday arrangement); emergency
//! categories count every minute ([`ClockKind::Continuous24h`]). A [`StageClock`] is the timer of one stage:
//! a plain value the store persists and recomputes after a restart, so no timer is ever lost. Suspension
//! (挂账) stops it and extension (延期) moves its deadline.
//!
//! Nothing here reads the machine's clock: every function takes the instant it is asked about.

mod calendar;
mod clock;
mod config;
mod stage;

#[cfg(test)]
mod proptests;

pub use calendar::{WorkCalendar, WorkPeriod};
pub use clock::{ClockError, StageClock, Suspension};
pub use config::{CalendarConfig, CalendarError};
pub use stage::{ClockEffect, ClockKind, SlaStage};
