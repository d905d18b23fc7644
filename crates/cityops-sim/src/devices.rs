//! The simulated fleet: device kinds, payload formats and the seeded plan of where each device stands.

use std::fmt;
use std::str::FromStr;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::boundary::Boundary;
use crate::config::SimConfig;

/// The kinds of sensor the simulator knows how to imitate, in the order they are planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SensorKind {
    /// `tilt` in degrees: a lifted or displaced manhole cover tilts.
    ManholeCover,
    /// `level` in metres: standing water on a road or in an underpass.
    WaterLevel,
    /// `pm10` in µg/m³ from a construction-site or roadside dust monitor.
    Dust,
    /// `fill` in percent of a street waste bin.
    WasteBin,
    /// `laeq` in dB, the equivalent continuous sound level.
    Noise,
    /// `status` ("ok" / "fault") and `power` in W of a street lamp.
    Streetlight,
}

impl SensorKind {
    pub const ALL: [SensorKind; 6] = [
        SensorKind::ManholeCover,
        SensorKind::WaterLevel,
        SensorKind::Dust,
        SensorKind::WasteBin,
        SensorKind::Noise,
        SensorKind::Streetlight,
    ];

    /// The device kind as the platform knows it (`manhole_cover`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SensorKind::ManholeCover => "manhole_cover",
            SensorKind::WaterLevel => "water_level",
            SensorKind::Dust => "dust",
            SensorKind::WasteBin => "waste_bin",
            SensorKind::Noise => "noise",
            SensorKind::Streetlight => "streetlight",
        }
    }

    /// The start of the ids of this kind's devices: `mc` gives `mc-0001`.
    pub fn id_prefix(self) -> &'static str {
        match self {
            SensorKind::ManholeCover => "mc",
            SensorKind::WaterLevel => "wl",
            SensorKind::Dust => "dust",
            SensorKind::WasteBin => "bin",
            SensorKind::Noise => "noise",
            SensorKind::Streetlight => "lamp",
        }
    }
}

impl fmt::Display for SensorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SensorKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        SensorKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .with_context(|| format!("unknown sensor kind {s:?}"))
    }
}

/// How a device encodes its readings. The fleet mixes all three so every ingest adapter gets traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayloadFormat {
    /// A SenML JSON pack (RFC 8428): `[{"bn":…,"bt":…,"n":"tilt","u":"deg","v":2.1}, …]`.
    #[serde(rename = "senml")]
    SenMl,
    /// ThingsBoard-style telemetry: `{"ts": <ms>, "values": {"tilt": 2.1, …}}`.
    #[serde(rename = "thingsboard")]
    ThingsBoard,
    /// A flat JSON object of measurements and no timestamp: `{"tilt": 2.1, …}`.
    #[serde(rename = "flat")]
    FlatJson,
}

impl PayloadFormat {
    pub const ALL: [PayloadFormat; 3] = [
        PayloadFormat::SenMl,
        PayloadFormat::ThingsBoard,
        PayloadFormat::FlatJson,
    ];
}

/// One simulated device: what it is, where it stands and how it encodes its readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimDevice {
    /// The id it publishes under, like `mc-0001`.
    pub id: String,
    /// The device kind as the platform knows it, like `manhole_cover` (see [`SensorKind::as_str`]).
    pub kind: String,
    pub lon: f64,
    pub lat: f64,
    pub format: PayloadFormat,
}

/// The MQTT topic a device publishes its readings on.
pub fn uplink_topic(device_id: &str) -> String {
    format!("city/v1/devices/{device_id}/up")
}

impl SimDevice {
    /// The parsed kind; fails for a kind the simulator cannot imitate.
    pub fn sensor_kind(&self) -> anyhow::Result<SensorKind> {
        self.kind.parse()
    }

    /// `city/v1/devices/{id}/up`.
    pub fn topic(&self) -> String {
        uplink_topic(&self.id)
    }

    /// The device as the platform registers it; fails if the id or kind is not a valid platform id.
    pub fn to_core_device(&self) -> anyhow::Result<cityops_core::Device> {
        Ok(cityops_core::Device {
            id: cityops_core::DeviceId::new(&self.id)
                .with_context(|| format!("device id {:?}", self.id))?,
            kind: cityops_core::DeviceKind::new(&self.kind)
                .with_context(|| format!("device kind {:?}", self.kind))?,
            lon: self.lon,
            lat: self.lat,
        })
    }
}

/// Plans `devices_per_kind` devices of every [`SensorKind`] at random points inside `boundary`.
///
/// The plan depends only on `config.seed` and `config.devices_per_kind`, so a demo shows the same city on
/// every start and a benchmark can be repeated. Devices come grouped by kind, numbered from 1
/// (`mc-0001`, …, `lamp-0060`). Within a kind the formats rotate from a seeded starting point, so every kind
/// uses all three formats once it has at least three devices.
pub fn plan_devices(boundary: &Boundary, config: &SimConfig) -> Vec<SimDevice> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut devices = Vec::with_capacity(config.devices_per_kind * SensorKind::ALL.len());
    for kind in SensorKind::ALL {
        let first_format = rng.gen_range(0..PayloadFormat::ALL.len());
        for index in 0..config.devices_per_kind {
            let (lon, lat) = boundary.random_point(&mut rng);
            devices.push(SimDevice {
                id: format!("{}-{:04}", kind.id_prefix(), index + 1),
                kind: kind.as_str().to_owned(),
                lon,
                lat,
                format: PayloadFormat::ALL[(first_format + index) % PayloadFormat::ALL.len()],
            });
        }
    }
    devices
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn config(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            ..SimConfig::default()
        }
    }

    #[test]
    fn default_plan_has_60_devices_of_each_kind_inside_dongcheng() {
        let boundary = Boundary::dongcheng();
        let devices = plan_devices(&boundary, &config(1));
        assert_eq!(devices.len(), 360);
        for kind in SensorKind::ALL {
            assert_eq!(
                devices.iter().filter(|d| d.kind == kind.as_str()).count(),
                60,
                "{kind}"
            );
        }
        for device in &devices {
            assert!(
                boundary.contains(device.lon, device.lat),
                "{} at {},{}",
                device.id,
                device.lon,
                device.lat
            );
        }
    }

    #[test]
    fn planning_is_deterministic_with_unique_valid_ids() {
        let boundary = Boundary::dongcheng();
        let first = plan_devices(&boundary, &config(42));
        assert_eq!(first, plan_devices(&boundary, &config(42)));
        assert_ne!(
            first,
            plan_devices(&boundary, &config(43)),
            "another seed gives another city"
        );

        let ids: HashSet<&str> = first.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids.len(), first.len());
        for id in [
            "mc-0001",
            "wl-0001",
            "dust-0001",
            "bin-0001",
            "noise-0001",
            "lamp-0060",
        ] {
            assert!(ids.contains(id), "{id}");
        }
        for device in &first {
            let core = device.to_core_device().unwrap();
            assert_eq!(core.id.as_str(), device.id);
            assert_eq!(device.sensor_kind().unwrap().as_str(), device.kind);
        }
    }

    #[test]
    fn every_kind_uses_every_format() {
        let devices = plan_devices(&Boundary::dongcheng(), &config(9));
        for kind in SensorKind::ALL {
            for format in PayloadFormat::ALL {
                assert!(
                    devices
                        .iter()
                        .any(|d| d.kind == kind.as_str() && d.format == format),
                    "{kind} has no {format:?} device"
                );
            }
        }
    }

    #[test]
    fn kinds_round_trip_and_topic_is_the_uplink() {
        for kind in SensorKind::ALL {
            assert_eq!(kind.as_str().parse::<SensorKind>().unwrap(), kind);
        }
        assert!("camera".parse::<SensorKind>().is_err());
        assert_eq!(uplink_topic("mc-0001"), "city/v1/devices/mc-0001/up");
    }
}
