//! `cityops bench SCENARIO`: every hot path against a bare baseline measured in the same run, reported
//! as a ratio (this machine is shared and noisy, so absolute times alone mean little).

pub mod load;
pub mod mosquitto;
pub mod platform;
pub mod report;
pub mod s1_ingest;
pub mod s2_rules;
pub mod s3_persistence;
pub mod s4_spatial;
pub mod s5_fanout;
pub mod s6_e2e;
pub mod s7_overload;

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

/// Options shared by every scenario.
#[derive(Debug, Clone)]
pub struct Options {
    /// A tiny run for CI: checks for errors and lost messages, not speed.
    pub quick: bool,
    pub out_dir: PathBuf,
    /// Also run S1 through Mosquitto.
    pub mosquitto: MosquittoTarget,
}

/// Which Mosquitto S1 also runs through.
#[derive(Debug, Clone)]
pub enum MosquittoTarget {
    None,
    /// Start one with `deploy/mosquitto/cityops.conf` on a free port.
    Spawn,
    /// Use a running one as it is configured.
    At(String, u16),
}

/// The scenarios there are.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "s1",
        "ingest: MQTT → platform vs bare publish → subscribe through the same broker",
    ),
    (
        "s2",
        "rules: adapters + rules + dedupe in memory vs a bare channel loop",
    ),
    (
        "s3",
        "persistence: batched incidents and durable case transitions vs bare sqlx on SQLite",
    ),
    (
        "s3-pg-cases",
        "part of s3: only the PostgreSQL case transitions (one task and 16) against their baselines",
    ),
    (
        "s3-sqlite-cases",
        "part of s3: only the SQLite case transitions (one task and 16) against their baseline",
    ),
    (
        "s4",
        "spatial: point → cell, nearest inspector and component vs a bare rstar R-tree",
    ),
    (
        "s5",
        "fan-out: bus → /ws clients vs a bare axum broadcast websocket server",
    ),
    (
        "s6",
        "end to end: MQTT QoS 1 → rule → stored incident → /ws vs bare MQTT publish → subscribe",
    ),
    (
        "s7",
        "overload: 1× → 10× → 1× end to end: bounded memory, counted shedding, latency recovery",
    ),
];

pub async fn run(scenario: &str, options: &Options) -> anyhow::Result<Vec<report::Report>> {
    // Thousands of sockets in one process (S5): the soft open-file limit goes up to the hard one.
    s5_fanout::raise_fd_limit();
    let mut reports = Vec::new();
    let all = scenario == "all";
    if all || scenario == "s1" {
        reports.push(s1_ingest::run(options).await?);
    }
    if all || scenario == "s2" {
        reports.push(s2_rules::run(options).await?);
    }
    if all || scenario == "s3" {
        reports.push(s3_persistence::run(options).await?);
    }
    if scenario == "s3-sqlite-cases" {
        reports.push(s3_persistence::run_sqlite_cases(options).await?);
    }
    if scenario == "s3-pg-cases" {
        reports.push(s3_persistence::run_postgres_cases(options).await?);
    }
    if all || scenario == "s4" {
        reports.push(s4_spatial::run(options).await?);
    }
    if all || scenario == "s5" {
        reports.push(s5_fanout::run(options).await?);
    }
    if all || scenario == "s6" {
        reports.push(s6_e2e::run(options).await?);
    }
    if all || scenario == "s7" {
        reports.push(s7_overload::run(options).await?);
    }
    if reports.is_empty() {
        let known: Vec<_> = SCENARIOS.iter().map(|(name, _)| *name).collect();
        anyhow::bail!(
            "unknown scenario {scenario:?}; known: {}, all",
            known.join(", ")
        );
    }
    Ok(reports)
}

pub(crate) fn progress(total: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar
}
