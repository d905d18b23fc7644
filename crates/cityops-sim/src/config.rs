//! Settings of a simulation run: fleet size, publish rate, anomaly rate and MQTT connection shape.

use std::time::Duration;

use anyhow::ensure;
use rumqttc::QoS;

/// How large the simulated city is, how fast it talks and how often something goes wrong.
///
/// The demo uses the defaults; a benchmark turns `devices_per_kind`, `interval`, `connections` and `qos`
/// to set the offered load (devices ÷ interval messages per second).
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Devices planned per sensor kind; with six kinds the default of 60 gives 360 devices.
    pub devices_per_kind: usize,
    /// Each device publishes one reading per interval.
    pub interval: Duration,
    /// How many devices start an anomaly per minute across the whole fleet, on average.
    pub anomalies_per_minute: f64,
    /// The shortest and longest anomaly, both inclusive. Kinds whose rules need a sustained breach
    /// (dust, noise) stretch their anomalies to a floor of their own so the rule can open.
    pub anomaly_duration: (Duration, Duration),
    /// MQTT client connections the devices are spread over.
    pub connections: usize,
    /// The QoS of every publish.
    pub qos: QoS,
    /// Seeds the device plan and every device's behaviour.
    pub seed: u64,
    /// Connections are named `{client_id_prefix}-{n}`; give concurrent simulators different prefixes,
    /// because a broker drops the older of two sessions with the same client id.
    pub client_id_prefix: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            devices_per_kind: 60,
            interval: Duration::from_secs(5),
            anomalies_per_minute: 6.0,
            anomaly_duration: (Duration::from_secs(90), Duration::from_secs(240)),
            connections: 4,
            qos: QoS::AtMostOnce,
            seed: 20_241_128,
            client_id_prefix: "cityops-sim".to_owned(),
        }
    }
}

impl SimConfig {
    /// Refuses settings that cannot be simulated.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            !self.interval.is_zero(),
            "interval must be longer than zero"
        );
        ensure!(self.connections >= 1, "connections must be at least 1");
        ensure!(
            self.anomalies_per_minute.is_finite() && self.anomalies_per_minute >= 0.0,
            "anomalies_per_minute must be a non-negative number, not {}",
            self.anomalies_per_minute
        );
        let (shortest, longest) = self.anomaly_duration;
        ensure!(
            shortest <= longest,
            "anomaly_duration {shortest:?}..={longest:?} is empty"
        );
        ensure!(
            !self.client_id_prefix.is_empty(),
            "client_id_prefix must not be empty"
        );
        Ok(())
    }

    /// Messages per second the fleet offers when every device keeps to its interval.
    pub fn messages_per_second(&self, device_count: usize) -> f64 {
        device_count as f64 / self.interval.as_secs_f64()
    }
}

/// When a device starts an anomaly: the chance per reading and the range its duration is drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyPolicy {
    /// Probability that a device in its normal state starts an anomaly at a reading.
    pub start_probability: f64,
    /// Shortest and longest anomaly, both inclusive.
    pub duration: (Duration, Duration),
}

impl AnomalyPolicy {
    /// Never starts an anomaly: devices stay normal (bins still fill and get emptied).
    pub const CALM: AnomalyPolicy = AnomalyPolicy {
        start_probability: 0.0,
        duration: (Duration::ZERO, Duration::ZERO),
    };

    /// The per-reading probability that makes `config.anomalies_per_minute` devices of a fleet of
    /// `device_count` start an anomaly per minute on average. The fleet takes
    /// `device_count × 60 s ÷ interval` readings a minute. Devices that are already abnormal do not roll,
    /// so the real rate is a little lower while many anomalies are open.
    pub fn for_fleet(config: &SimConfig, device_count: usize) -> AnomalyPolicy {
        let readings_per_minute = device_count as f64 * 60.0 / config.interval.as_secs_f64();
        let start_probability = if readings_per_minute > 0.0 {
            (config.anomalies_per_minute / readings_per_minute).clamp(0.0, 1.0)
        } else {
            0.0
        };
        AnomalyPolicy {
            start_probability,
            duration: config.anomaly_duration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_give_six_anomalies_a_minute() {
        let config = SimConfig::default();
        config.validate().unwrap();
        let policy = AnomalyPolicy::for_fleet(&config, 360);
        // 360 devices every 5 s = 4320 readings a minute.
        let expected_per_minute = policy.start_probability * 4320.0;
        assert!(
            (expected_per_minute - 6.0).abs() < 1e-9,
            "{expected_per_minute}"
        );
        assert!((config.messages_per_second(360) - 72.0).abs() < 1e-9);
    }

    #[test]
    fn invalid_settings_are_refused() {
        let bad = [
            SimConfig {
                interval: Duration::ZERO,
                ..SimConfig::default()
            },
            SimConfig {
                connections: 0,
                ..SimConfig::default()
            },
            SimConfig {
                anomalies_per_minute: f64::NAN,
                ..SimConfig::default()
            },
            SimConfig {
                anomalies_per_minute: -1.0,
                ..SimConfig::default()
            },
            SimConfig {
                anomaly_duration: (Duration::from_secs(10), Duration::from_secs(5)),
                ..SimConfig::default()
            },
            SimConfig {
                client_id_prefix: String::new(),
                ..SimConfig::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }

    #[test]
    fn probability_is_capped_at_one() {
        let config = SimConfig {
            anomalies_per_minute: 1e9,
            ..SimConfig::default()
        };
        assert_eq!(AnomalyPolicy::for_fleet(&config, 6).start_probability, 1.0);
        assert_eq!(AnomalyPolicy::for_fleet(&config, 0).start_probability, 0.0);
    }
}
