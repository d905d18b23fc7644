//! The cityops application: settings, the embedded broker, the event log writer and the wiring that
//! starts and stops the platform. `main.rs` only parses the command line and calls into here.

pub mod app;
pub mod audit_cli;
pub mod bench;
pub mod broker;
pub mod case_filer;
#[cfg(test)]
mod case_fixtures;
pub mod cli;
pub mod event_log;
pub mod grid_cli;
pub mod outbox_relay;
pub mod patrol_watch;
pub mod settings;
pub mod sla_scheduler;
pub mod users;
