//! The command line: `cityops demo`, `cityops serve`, and their options.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::settings::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "cityops",
    version,
    about = "cityops: smart city-management command platform (智慧城管)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole platform with a simulated Dongcheng district: embedded broker, SQLite, live pages.
    Demo {
        #[command(flatten)]
        common: CommonArgs,
        /// Do not start the city simulator.
        #[arg(long)]
        no_sim: bool,
        /// Password of the demo accounts (admin, operator, shiftlead, dispatcher, supervisor,
        /// inspector1-3, handler.<department>); generated and printed once when not given.
        #[arg(long, env = "CITYOPS_DEMO_PASSWORD", hide_env_values = true)]
        demo_password: Option<String>,
    },
    /// Run the platform for a real deployment (no simulator).
    Serve {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Manage users (the password is read from standard input).
    User {
        #[command(flatten)]
        common: CommonArgs,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The case audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The unit grid (万米单元网格).
    Grid {
        #[command(subcommand)]
        command: GridCommand,
    },
    /// The platform under test of `bench s6`/`s7` in a process of its own, started by the bench: prints
    /// one ready line with its addresses and serves until standard input closes.
    #[command(hide = true, name = "bench-platform")]
    BenchPlatform {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        devices: usize,
        #[arg(long)]
        client_id: String,
    },
    /// Measure a hot path against a bare baseline in the same run (s1 … s7, or all).
    Bench {
        /// Scenario: s1 (MQTT ingest), s2 (rules), s3 (persistence), s4 (spatial), s5 (websocket fan-out),
        /// s6 (end to end), s7 (overload), or all.
        scenario: String,
        /// A tiny run that checks for errors and lost messages, not speed (used by CI).
        #[arg(long)]
        quick: bool,
        /// Where the JSON results and SVG charts go.
        #[arg(long, value_name = "DIR", default_value = "target/bench")]
        out: PathBuf,
        /// Also measure S1 through Mosquitto: `spawn` starts one with deploy/mosquitto/cityops.conf,
        /// or give the URL of a running one (mqtt://127.0.0.1:1883).
        #[arg(long, value_name = "spawn|URL")]
        mosquitto: Option<String>,
    },
}

/// Options shared by `demo` and `serve`. Each can also be set in the config file and as `CITYOPS_…`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// HTTP listen address [default: 127.0.0.1:8080] [env: CITYOPS_HTTP]
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Listen address of the embedded MQTT broker [default: 127.0.0.1:1883] [env: CITYOPS_MQTT_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub mqtt_listen: Option<SocketAddr>,
    /// Use an external MQTT broker instead of embedding one, e.g. mqtt://127.0.0.1:1883 [env: CITYOPS_MQTT_URL]
    #[arg(long, value_name = "URL")]
    pub mqtt_url: Option<String>,
    /// Data directory [default: ./data] [env: CITYOPS_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL [default: sqlite://DATA_DIR/cityops.db] [env: CITYOPS_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Configuration file (TOML) layered over the built-in defaults
    #[arg(long, value_name = "FILE", env = "CITYOPS_CONFIG")]
    pub config: Option<PathBuf>,
}

impl CommonArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            http: self.http,
            mqtt_listen: self.mqtt_listen,
            mqtt_url: self.mqtt_url.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum GridCommand {
    /// Make ~100 m × 100 m cells clipped to a district boundary, with streets and communities as
    /// contiguous subdivisions, coded in the 15-digit scheme (6 division + 3 street + 3 community +
    /// 3 sequence, numbered west to east and north to south); writes GeoJSON.
    Generate {
        /// GeoJSON file with the district boundary (Polygon or MultiPolygon, or a collection of them).
        #[arg(long, value_name = "FILE")]
        boundary: PathBuf,
        /// 6-digit administrative division code of the district.
        #[arg(long, default_value = "110101")]
        division_code: String,
        /// District name.
        #[arg(long, default_value = "东城区")]
        name: String,
        /// Datum of the boundary's coordinates: gcj02 or wgs84.
        #[arg(long, default_value = "gcj02")]
        datum: String,
        /// Side of a full cell in metres.
        #[arg(long, default_value_t = 100.0)]
        cell_size: f64,
        #[arg(long, default_value_t = 17)]
        streets: usize,
        #[arg(long, default_value_t = 10)]
        communities_per_street: usize,
        /// Output file (standard output when absent).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every case's hash-chained audit trail; prints each case that fails and exits with 1 then.
    Verify {
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is the first line of standard input.
    Add {
        username: String,
        /// operator, shift_lead, dispatcher, department_handler, inspector, supervisor or admin.
        #[arg(long)]
        role: String,
        #[arg(long)]
        display_name: String,
        /// The handling department (department handlers only).
        #[arg(long)]
        department: Option<String>,
    },
    /// Set a user's password from the first line of standard input.
    Passwd { username: String },
    /// List users.
    List,
    /// Stop a user from logging in.
    Disable { username: String },
    /// Let a disabled user log in again.
    Enable { username: String },
}
