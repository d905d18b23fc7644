//! How one device's readings evolve: normal noise, anomalies that cross the platform's rules and clear again,
//! waste bins filling up and being emptied, batteries draining.
//!
//! Everything is driven by the `now_ms` the caller passes in and by a seeded random generator, so a test can
//! step simulated time and get the same readings on every run.

use std::time::Duration;

use cityops_core::UnixMillis;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::AnomalyPolicy;
use crate::devices::SensorKind;

/// The value of one measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MeasuredValue {
    Number(f64),
    Text(&'static str),
    Bool(bool),
}

/// One named measurement of a reading, like `tilt` = 2.1 `deg`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    pub name: &'static str,
    /// The unit, or `None` for text and booleans.
    pub unit: Option<&'static str>,
    pub value: MeasuredValue,
}

impl Measurement {
    fn number(name: &'static str, unit: &'static str, value: f64) -> Self {
        Measurement {
            name,
            unit: Some(unit),
            value: MeasuredValue::Number(value),
        }
    }

    fn text(name: &'static str, value: &'static str) -> Self {
        Measurement {
            name,
            unit: None,
            value: MeasuredValue::Text(value),
        }
    }

    /// The number, if this is a numeric measurement.
    pub fn as_number(&self) -> Option<f64> {
        match self.value {
            MeasuredValue::Number(v) => Some(v),
            _ => None,
        }
    }
}

/// The streetlight `status` the platform's rule watches for.
pub const STATUS_OK: &str = "ok";
pub const STATUS_FAULT: &str = "fault";

/// A battery is swapped for a full one when it runs this low, so it never reads empty for long.
const BATTERY_REPLACE_BELOW_PCT: f64 = 10.0;

/// Range `[low, high)` a bin is emptied down to; collection never leaves a bin quite empty.
const BIN_EMPTIED_PCT: (f64, f64) = (3.0, 8.0);

const MS_PER_HOUR: f64 = 3_600_000.0;

/// The state of one simulated device between readings.
#[derive(Debug, Clone)]
pub struct DeviceBehaviour {
    kind: SensorKind,
    rng: SmallRng,
    /// When the current anomaly ends; `None` while normal.
    anomaly_until: Option<UnixMillis>,
    /// Time of the last state update, so rates (filling, draining) can be applied over the gap.
    last_update: Option<UnixMillis>,
    /// The level this device's normal readings scatter around, so neighbours differ but each is steady.
    baseline: f64,
    /// Waste bins only: current fill, its rate and the fill at which the next collection empties it.
    fill_pct: f64,
    fill_rate_pct_per_hour: f64,
    collect_at_pct: f64,
    /// Battery-powered kinds only.
    battery_pct: Option<f64>,
    battery_drain_pct_per_hour: f64,
}

impl DeviceBehaviour {
    /// A device of `kind` in its normal state, with everything device-specific drawn from `seed`.
    pub fn new(kind: SensorKind, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let baseline = match kind {
            SensorKind::ManholeCover => rng.gen_range(0.3..2.0),
            SensorKind::WaterLevel => rng.gen_range(0.005..0.035),
            SensorKind::Dust => rng.gen_range(55.0..95.0),
            SensorKind::Noise => rng.gen_range(53.0..61.0),
            SensorKind::WasteBin | SensorKind::Streetlight => 0.0,
        };
        // Mains-powered kinds (dust and noise monitors, street lamps) report no battery.
        let has_battery = matches!(
            kind,
            SensorKind::ManholeCover | SensorKind::WaterLevel | SensorKind::WasteBin
        );
        let battery_pct = has_battery.then(|| rng.gen_range(35.0..100.0));
        DeviceBehaviour {
            kind,
            anomaly_until: None,
            last_update: None,
            baseline,
            // Start bins at different fills so the fleet is not emptied all at once.
            fill_pct: rng.gen_range(5.0..70.0),
            // From ~10 % to ~80 % in roughly 2 to 7 hours: slow, but visible during a demo.
            fill_rate_pct_per_hour: rng.gen_range(10.0..35.0),
            collect_at_pct: rng.gen_range(75.0..82.0),
            battery_pct,
            battery_drain_pct_per_hour: rng.gen_range(0.05..0.3),
            rng,
        }
    }

    pub fn kind(&self) -> SensorKind {
        self.kind
    }

    /// Whether an anomaly is running at `now_ms`.
    pub fn is_anomalous(&self, now_ms: UnixMillis) -> bool {
        self.anomaly_until.is_some_and(|until| now_ms < until)
    }

    /// When the running anomaly ends, if one is running.
    pub fn anomaly_until(&self) -> Option<UnixMillis> {
        self.anomaly_until
    }

    /// The shortest anomaly this kind may have: rules with a minimum duration need the breach to last
    /// well past it, or the incident would never open (dust: 60 s, noise: 30 s).
    pub fn min_anomaly_duration(kind: SensorKind) -> Duration {
        match kind {
            SensorKind::Dust => Duration::from_secs(120),
            SensorKind::Noise => Duration::from_secs(60),
            _ => Duration::ZERO,
        }
    }

    /// Starts an anomaly at `now_ms` lasting `duration` (stretched to the kind's minimum), replacing any
    /// running one. A waste bin overflows: its fill jumps to 92–100 %.
    pub fn start_anomaly(&mut self, now_ms: UnixMillis, duration: Duration) {
        self.advance(now_ms);
        let duration = duration.max(Self::min_anomaly_duration(self.kind));
        let duration_ms = UnixMillis::try_from(duration.as_millis()).unwrap_or(UnixMillis::MAX);
        self.anomaly_until = Some(now_ms.saturating_add(duration_ms));
        if self.kind == SensorKind::WasteBin {
            self.fill_pct = self.rng.gen_range(92.0..100.0);
        }
    }

    /// Rolls the dice for a new anomaly (only when normal) and returns whether one started.
    pub fn maybe_start_anomaly(&mut self, now_ms: UnixMillis, policy: &AnomalyPolicy) -> bool {
        self.advance(now_ms);
        if self.is_anomalous(now_ms) || !self.rng.gen_bool(policy.start_probability.clamp(0.0, 1.0))
        {
            return false;
        }
        let (shortest, longest) = policy.duration;
        let duration = if shortest < longest {
            self.rng.gen_range(shortest..=longest)
        } else {
            shortest
        };
        self.start_anomaly(now_ms, duration);
        true
    }

    /// The reading the device takes at `now_ms`: advances the state to then, and draws the values.
    pub fn sample(&mut self, now_ms: UnixMillis) -> Vec<Measurement> {
        self.advance(now_ms);
        let abnormal = self.is_anomalous(now_ms);
        let rng = &mut self.rng;
        // Normal readings scatter around the device's baseline and are clamped to the normal range; abnormal
        // ones are drawn well past the rule's threshold so every reading of an anomaly breaches it.
        let mut measurements = match self.kind {
            SensorKind::ManholeCover => {
                let tilt = if abnormal {
                    rng.gen_range(18.0..40.0)
                } else {
                    scatter(rng, self.baseline, 0.5, 0.0, 3.0)
                };
                vec![Measurement::number("tilt", "deg", round_to(tilt, 1))]
            }
            SensorKind::WaterLevel => {
                let level = if abnormal {
                    rng.gen_range(0.20..0.60)
                } else {
                    scatter(rng, self.baseline, 0.01, 0.0, 0.05)
                };
                vec![Measurement::number("level", "m", round_to(level, 3))]
            }
            SensorKind::Dust => {
                let pm10 = if abnormal {
                    rng.gen_range(170.0..320.0)
                } else {
                    scatter(rng, self.baseline, 15.0, 40.0, 110.0)
                };
                vec![Measurement::number("pm10", "ug/m3", round_to(pm10, 0))]
            }
            SensorKind::WasteBin => {
                vec![Measurement::number("fill", "%", round_to(self.fill_pct, 1))]
            }
            SensorKind::Noise => {
                let laeq = if abnormal {
                    rng.gen_range(75.0..90.0)
                } else {
                    scatter(rng, self.baseline, 3.0, 50.0, 64.0)
                };
                vec![Measurement::number("laeq", "dB", round_to(laeq, 1))]
            }
            SensorKind::Streetlight => {
                if abnormal {
                    vec![
                        Measurement::text("status", STATUS_FAULT),
                        Measurement::number("power", "W", 0.0),
                    ]
                } else {
                    let power = rng.gen_range(95.0..105.0);
                    vec![
                        Measurement::text("status", STATUS_OK),
                        Measurement::number("power", "W", round_to(power, 1)),
                    ]
                }
            }
        };
        if let Some(battery) = self.battery_pct {
            measurements.push(Measurement::number("battery", "%", battery.round()));
        }
        measurements
    }

    /// One scheduled reading: maybe start an anomaly, then sample.
    pub fn tick(&mut self, now_ms: UnixMillis, policy: &AnomalyPolicy) -> Vec<Measurement> {
        self.maybe_start_anomaly(now_ms, policy);
        self.sample(now_ms)
    }

    /// Moves the slow processes forward to `now_ms` and ends an anomaly that is over. Calling it twice
    /// with the same time changes nothing; time going backwards is treated as no time passing.
    fn advance(&mut self, now_ms: UnixMillis) {
        let elapsed_hours = match self.last_update {
            Some(last) if now_ms > last => (now_ms - last) as f64 / MS_PER_HOUR,
            _ => 0.0,
        };
        self.last_update = Some(self.last_update.map_or(now_ms, |last| last.max(now_ms)));

        if let Some(battery) = self.battery_pct.as_mut() {
            *battery -= self.battery_drain_pct_per_hour * elapsed_hours;
            if *battery < BATTERY_REPLACE_BELOW_PCT {
                *battery = 100.0;
            }
        }

        if self.anomaly_until.is_some_and(|until| now_ms >= until) {
            self.anomaly_until = None;
            // An overflowing bin stays full until the crew comes; the end of its anomaly is that visit.
            if self.kind == SensorKind::WasteBin {
                self.empty_bin();
            }
        }

        // While overflowing, the bin is already as full as it gets.
        if self.kind == SensorKind::WasteBin && !self.is_anomalous(now_ms) {
            self.fill_pct += self.fill_rate_pct_per_hour * elapsed_hours;
            // A routine collection empties the bin before it gets near the overflow rule (>= 90 %).
            if self.fill_pct >= self.collect_at_pct {
                self.empty_bin();
            }
        }
    }

    fn empty_bin(&mut self) {
        self.fill_pct = self.rng.gen_range(BIN_EMPTIED_PCT.0..BIN_EMPTIED_PCT.1);
        self.collect_at_pct = self.rng.gen_range(75.0..82.0);
    }
}

/// A normal reading: `baseline` plus uniform noise of ± `spread`, kept inside `[low, high]`.
fn scatter(rng: &mut SmallRng, baseline: f64, spread: f64, low: f64, high: f64) -> f64 {
    (baseline + rng.gen_range(-spread..=spread)).clamp(low, high)
}

/// Rounds to `decimals` places, as a real sensor reports a fixed resolution.
fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    const START_MS: UnixMillis = 1_732_800_000_000;
    const STEP_MS: UnixMillis = 5_000;

    /// The rule the platform applies to a kind: the measurement, whether a reading opens an incident,
    /// and whether it is back under the clear level.
    struct Rule {
        measurement: &'static str,
        opens: fn(&Measurement) -> bool,
        cleared: fn(&Measurement) -> bool,
    }

    fn rule(kind: SensorKind) -> Rule {
        fn num(m: &Measurement) -> f64 {
            m.as_number().unwrap()
        }
        match kind {
            SensorKind::ManholeCover => Rule {
                measurement: "tilt",
                opens: |m| num(m) > 15.0,
                cleared: |m| num(m) < 10.0,
            },
            SensorKind::WaterLevel => Rule {
                measurement: "level",
                opens: |m| num(m) > 0.15,
                cleared: |m| num(m) < 0.10,
            },
            SensorKind::Dust => Rule {
                measurement: "pm10",
                opens: |m| num(m) > 150.0,
                cleared: |m| num(m) < 120.0,
            },
            SensorKind::WasteBin => Rule {
                measurement: "fill",
                opens: |m| num(m) >= 90.0,
                cleared: |m| num(m) < 50.0,
            },
            SensorKind::Noise => Rule {
                measurement: "laeq",
                opens: |m| num(m) > 70.0,
                cleared: |m| num(m) < 65.0,
            },
            SensorKind::Streetlight => Rule {
                measurement: "status",
                opens: |m| m.value == MeasuredValue::Text(STATUS_FAULT),
                cleared: |m| m.value == MeasuredValue::Text(STATUS_OK),
            },
        }
    }

    fn watched(kind: SensorKind, reading: &[Measurement]) -> Measurement {
        let name = rule(kind).measurement;
        *reading
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{kind} reading lacks {name}"))
    }

    #[test]
    fn normal_readings_stay_clear_of_every_rule_for_a_day() {
        for kind in SensorKind::ALL {
            for seed in 0..20 {
                let mut device = DeviceBehaviour::new(kind, seed);
                let rule = rule(kind);
                // A day at one reading a minute.
                for minute in 0..24 * 60 {
                    let reading = device.sample(START_MS + minute * 60_000);
                    let value = watched(kind, &reading);
                    assert!(
                        !(rule.opens)(&value),
                        "{kind} seed {seed} minute {minute}: {value:?}"
                    );
                    if kind != SensorKind::WasteBin {
                        assert!(
                            (rule.cleared)(&value),
                            "{kind} seed {seed} minute {minute}: {value:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_kind_goes_abnormal_and_comes_back_below_the_clear_level() {
        for kind in SensorKind::ALL {
            let mut device = DeviceBehaviour::new(kind, 3);
            let rule = rule(kind);
            let mut now = START_MS;
            for _ in 0..3 {
                device.sample(now);
                now += STEP_MS;
            }

            device.start_anomaly(now, Duration::from_secs(90));
            let until = device.anomaly_until().unwrap();
            assert!(until >= now + 90_000);
            while now < until {
                let value = watched(kind, &device.sample(now));
                assert!(
                    (rule.opens)(&value),
                    "{kind} at +{} ms: {value:?} should breach",
                    now - START_MS
                );
                now += STEP_MS;
            }

            for _ in 0..10 {
                let value = watched(kind, &device.sample(now));
                assert!(
                    (rule.cleared)(&value),
                    "{kind} after the anomaly: {value:?} should be clear"
                );
                assert!(!device.is_anomalous(now));
                now += STEP_MS;
            }
        }
    }

    #[test]
    fn dust_anomaly_outlasts_the_60_s_rule_even_when_configured_short() {
        let mut device = DeviceBehaviour::new(SensorKind::Dust, 11);
        let policy = AnomalyPolicy {
            start_probability: 1.0,
            duration: (Duration::from_secs(10), Duration::from_secs(20)),
        };
        assert!(device.maybe_start_anomaly(START_MS, &policy));

        // Step 1 s at a time and measure how long pm10 stays above 150 without a break.
        let mut now = START_MS;
        while (rule(SensorKind::Dust).opens)(&watched(SensorKind::Dust, &device.sample(now))) {
            now += 1_000;
        }
        let breached_for = Duration::from_millis((now - START_MS) as u64);
        assert!(breached_for >= Duration::from_secs(120), "{breached_for:?}");
        assert!(
            watched(SensorKind::Dust, &device.sample(now))
                .as_number()
                .unwrap()
                < 120.0
        );
    }

    #[test]
    fn waste_bins_fill_slowly_get_emptied_and_overflow_until_collected() {
        let mut bin = DeviceBehaviour::new(SensorKind::WasteBin, 5);
        let fill = |bin: &mut DeviceBehaviour, now| {
            watched(SensorKind::WasteBin, &bin.sample(now))
                .as_number()
                .unwrap()
        };

        // Over 12 simulated hours the fill rises, drops back after a collection, and never reaches 90 %.
        let mut previous = fill(&mut bin, START_MS);
        let (mut rises, mut collections) = (0, 0);
        for minute in 1..12 * 60 {
            let current = fill(&mut bin, START_MS + minute * 60_000);
            assert!(current < 82.0, "{current}");
            if current > previous {
                rises += 1;
            } else if current < previous - 40.0 {
                assert!(current < 10.0, "emptied to {current}");
                collections += 1;
            }
            previous = current;
        }
        assert!(rises > 500, "{rises}");
        assert!(collections >= 1, "a bin is emptied at least once in 12 h");

        // An overflow jumps to 92–100 % and stays there until the anomaly (the crew's visit) ends.
        let now = START_MS + 12 * 3_600_000;
        bin.start_anomaly(now, Duration::from_secs(180));
        for second in (0..180).step_by(5) {
            let current = fill(&mut bin, now + second * 1_000);
            assert!((92.0..=100.0).contains(&current), "{current}");
        }
        assert!(fill(&mut bin, now + 180_000) < 10.0);
    }

    #[test]
    fn batteries_drain_slowly_and_only_on_battery_kinds() {
        for kind in SensorKind::ALL {
            let mut device = DeviceBehaviour::new(kind, 8);
            let battery = |reading: Vec<Measurement>| {
                reading
                    .iter()
                    .find(|m| m.name == "battery")
                    .and_then(Measurement::as_number)
            };
            let first = battery(device.sample(START_MS));
            let later = battery(device.sample(START_MS + 24 * 3_600_000));
            match kind {
                SensorKind::ManholeCover | SensorKind::WaterLevel | SensorKind::WasteBin => {
                    let (first, later) = (first.unwrap(), later.unwrap());
                    assert!(
                        later <= first && first - later <= 8.0,
                        "{kind}: {first} -> {later}"
                    );
                }
                _ => assert!(
                    first.is_none() && later.is_none(),
                    "{kind} is mains powered"
                ),
            }
        }
    }

    #[test]
    fn same_seed_same_readings() {
        let run = |seed| {
            let mut device = DeviceBehaviour::new(SensorKind::Noise, seed);
            let policy = AnomalyPolicy {
                start_probability: 0.05,
                duration: (Duration::from_secs(60), Duration::from_secs(120)),
            };
            (0..200)
                .map(|i| device.tick(START_MS + i * STEP_MS, &policy))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn calm_policy_never_starts_an_anomaly() {
        let mut device = DeviceBehaviour::new(SensorKind::ManholeCover, 1);
        for i in 0..1_000 {
            assert!(!device.maybe_start_anomaly(START_MS + i * STEP_MS, &AnomalyPolicy::CALM));
        }
    }
}
