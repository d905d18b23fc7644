//! The cityops application: settings, the embedded broker, the event log writer and the wiring that
//! starts and stops the platform. `main.rs` only parses the command line and calls into here.

pub mod app;
pub mod bench;
pub mod case_filer;
pub mod broker;
pub mod cli;
pub mod event_log;
pub mod grid_cli;
pub mod settings;
pub mod users;
