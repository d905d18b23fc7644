//! Settings: built-in defaults, then the `--config` file, then `CITYOPS_…` environment variables, then
//! command-line options, each layer overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cityops_core::Device;
use cityops_ingest::IngestConfig;
use cityops_ingest::rules::RuleConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The built-in defaults (`config/default.toml`, embedded).
pub const DEFAULTS: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP listen address.
    pub http: SocketAddr,
    /// Listen address of the embedded MQTT broker.
    pub mqtt_listen: SocketAddr,
    /// External broker (`mqtt://host:port`); when set, no broker is embedded.
    #[serde(default)]
    pub mqtt_url: Option<String>,
    pub data_dir: PathBuf,
    #[serde(default)]
    pub database_url: Option<String>,
    pub log: String,
    pub bus: BusSettings,
    pub ws: WsSettings,
    pub ingest: IngestConfig,
    pub sim: SimSettings,
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSettings {
    pub capacity: usize,
    pub event_retention_hours: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSettings {
    pub max_lag: u64,
    pub send_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSettings {
    pub devices_per_kind: usize,
    pub interval_ms: u64,
    pub anomalies_per_minute: f64,
    pub connections: usize,
    pub qos: u8,
    pub seed: u64,
}

/// Command-line values that override every other layer (`None` = not given).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// Environment variables with the `CITYOPS_` prefix that are not settings keys.
const ENV_NOT_SETTINGS: &[&str] = &["config", "demo_password"];

impl Settings {
    /// Loads every layer. `config_file` must exist when given.
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = config_file {
            if !path.is_file() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        let figment = figment
            .merge(
                Env::prefixed("CITYOPS_")
                    .split("__")
                    .ignore(ENV_NOT_SETTINGS),
            )
            .merge(Serialized::defaults(overrides));
        let settings: Settings = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(settings)
    }

    /// The defaults alone (tests start from these).
    pub fn defaults() -> Self {
        // The embedded defaults are checked by a test, so this cannot fail at run time.
        Self::load(None, &Overrides::default()).expect("built-in defaults are valid")
    }

    /// The database URL: the configured one, or a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("cityops.db").display()))
    }

    /// The external broker, if one is configured: (host, port).
    pub fn external_broker(&self) -> anyhow::Result<Option<(String, u16)>> {
        let Some(url) = self.mqtt_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .with_context(|| format!("--mqtt-url {url:?}: expected mqtt://HOST:PORT"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host.to_string(),
                port.parse::<u16>().with_context(|| {
                    format!("--mqtt-url {url:?}: port {port:?} is not a number")
                })?,
            ),
            None => (rest.to_string(), 1883),
        };
        if host.is_empty() {
            anyhow::bail!("--mqtt-url {url:?}: no host");
        }
        Ok(Some((host, port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_defaults_load_and_have_the_documented_values() {
        let s = Settings::defaults();
        assert_eq!(s.http.to_string(), "127.0.0.1:8080");
        assert_eq!(s.mqtt_listen.to_string(), "127.0.0.1:1883");
        assert!(s.rules.len() >= 6);
        assert_eq!(s.database_url(), "sqlite://./data/cityops.db");
    }

    #[test]
    fn command_line_overrides_win() {
        let overrides = Overrides {
            http: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        };
        let s = Settings::load(None, &overrides).unwrap();
        assert_eq!(s.http.port(), 0);
    }

    #[test]
    fn broker_urls_are_parsed() {
        let mut s = Settings::defaults();
        s.mqtt_url = Some("mqtt://127.0.0.1:1884".into());
        assert_eq!(
            s.external_broker().unwrap(),
            Some(("127.0.0.1".into(), 1884))
        );
        s.mqtt_url = Some("http://x".into());
        assert!(s.external_broker().is_err());
        s.mqtt_url = Some("mqtt://host:abc".into());
        assert!(s.external_broker().is_err());
    }

    #[test]
    fn unknown_keys_in_a_config_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "htpp = \"127.0.0.1:1\"\n").unwrap();
        let err = Settings::load(Some(&path), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("htpp"), "{err}");
    }
}
