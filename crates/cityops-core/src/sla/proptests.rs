//! Property tests of working-time arithmetic and stage clocks, against a minute-by-minute reference.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike, Utc};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::num::NonZeroU32;

use super::*;

/// A calendar described plainly, so the test can judge working time without the code under test.
#[derive(Debug, Clone)]
struct Spec {
    periods: Vec<(u16, u16)>,
    weekend: Vec<u32>,
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
    offset_minutes: i32,
}

impl Spec {
    fn calendar(&self) -> WorkCalendar {
        const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let hhmm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let offset = self.offset_minutes.unsigned_abs();
        CalendarConfig {
            periods: self
                .periods
                .iter()
                .map(|(s, e)| format!("{}-{}", hhmm(*s), hhmm(*e)))
                .collect(),
            weekend: self
                .weekend
                .iter()
                .map(|d| NAMES[*d as usize].to_string())
                .collect(),
            holidays: self.holidays.iter().map(|d| d.to_string()).collect(),
            workdays: self.workdays.iter().map(|d| d.to_string()).collect(),
            utc_offset: format!("{sign}{:02}:{:02}", offset / 60, offset % 60),
        }
        .build()
        .unwrap()
    }

    /// The reference: is the minute starting at `t` working time?
    fn is_working_minute(&self, t: DateTime<Utc>) -> bool {
        let local = t.naive_utc() + TimeDelta::minutes(i64::from(self.offset_minutes));
        let date = local.date();
        let working_day = self.workdays.contains(&date)
            || (!self
                .weekend
                .contains(&date.weekday().num_days_from_monday())
                && !self.holidays.contains(&date));
        let minute = (local.hour() * 60 + local.minute()) as u16;
        working_day
            && self
                .periods
                .iter()
                .any(|(s, e)| *s <= minute && minute < *e)
    }
}

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-08-30T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn day(offset: u16) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 9, 1).unwrap() + TimeDelta::days(i64::from(offset))
}

fn spec() -> impl Strategy<Value = Spec> {
    let periods = prop::sample::select(vec![
        vec![(480, 720), (840, 1080)],
        vec![(540, 1020)],
        vec![(0, 1440)],
        vec![(480, 720), (720, 780), (900, 1200)],
        vec![(0, 60), (1380, 1440)],
    ]);
    let weekend = prop::sample::select(vec![vec![5, 6], vec![6], vec![], vec![4, 5]]);
    let holidays = prop::collection::btree_set(0u16..70, 0..10);
    let workdays = prop::collection::btree_set(0u16..70, 0..4);
    let offset = prop::sample::select(vec![480, 0, -330, 345]);
    (periods, weekend, holidays, workdays, offset).prop_map(
        |(periods, weekend, holidays, workdays, offset_minutes)| {
            let holidays: BTreeSet<NaiveDate> = holidays.into_iter().map(day).collect();
            let workdays = workdays
                .into_iter()
                .map(day)
                .filter(|d| !holidays.contains(d))
                .collect();
            Spec {
                periods,
                weekend,
                holidays,
                workdays,
                offset_minutes,
            }
        },
    )
}

/// An instant in the ten weeks around the generated holidays, to the second.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..70 * 86_400).prop_map(|s| base() + TimeDelta::seconds(s))
}

fn kind() -> impl Strategy<Value = ClockKind> {
    prop::sample::select(vec![ClockKind::WorkingTime, ClockKind::Continuous24h])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn adding_then_measuring_gives_back_the_minutes(
        spec in spec(), kind in kind(), start in instant(), minutes in 0u32..30_000,
    ) {
        let calendar = spec.calendar();
        let end = calendar.add_minutes(kind, start, minutes);
        prop_assert!(end >= start);
        prop_assert_eq!(calendar.minutes_between(kind, start, end), minutes);
        prop_assert_eq!(calendar.seconds_between(kind, start, end), u64::from(minutes) * 60);
        if minutes > 0 && kind == ClockKind::WorkingTime {
            // The earliest such instant: the second just before it was working time.
            prop_assert_eq!(calendar.working_seconds_between(end - TimeDelta::seconds(1), end), 1);
        }
    }

    #[test]
    fn measuring_then_adding_never_passes_the_end(
        spec in spec(), kind in kind(), a in instant(), b in instant(),
    ) {
        let calendar = spec.calendar();
        let seconds = calendar.seconds_between(kind, a, b);
        let back = calendar.add_seconds(kind, a, seconds);
        prop_assert!(back <= b.max(a));
        prop_assert_eq!(calendar.seconds_between(kind, a, back), seconds);
        prop_assert!(seconds <= u64::try_from((b - a).num_seconds()).unwrap_or(0));
    }

    #[test]
    fn measuring_is_additive(spec in spec(), kind in kind(), mut points in prop::array::uniform3(instant())) {
        let calendar = spec.calendar();
        points.sort();
        let [a, b, c] = points;
        prop_assert_eq!(
            calendar.seconds_between(kind, a, c),
            calendar.seconds_between(kind, a, b) + calendar.seconds_between(kind, b, c)
        );
    }

    #[test]
    fn adding_and_measuring_are_monotonic(
        spec in spec(), kind in kind(), mut starts in prop::array::uniform2(instant()),
        mut minutes in prop::array::uniform2(0u32..20_000), end in instant(),
    ) {
        let calendar = spec.calendar();
        starts.sort();
        minutes.sort();
        let [s1, s2] = starts;
        let [m1, m2] = minutes;
        prop_assert!(calendar.add_minutes(kind, s1, m1) <= calendar.add_minutes(kind, s1, m2));
        prop_assert!(calendar.add_minutes(kind, s1, m1) <= calendar.add_minutes(kind, s2, m1));
        prop_assert!(calendar.seconds_between(kind, s1, end) >= calendar.seconds_between(kind, s2, end));
        prop_assert!(calendar.seconds_between(kind, end, s1) <= calendar.seconds_between(kind, end, s2));
    }

    #[test]
    fn next_working_instant_is_working_time_and_nothing_before_it_is(spec in spec(), t in instant()) {
        let calendar = spec.calendar();
        let next = calendar.next_working_instant(t);
        prop_assert!(next >= t);
        prop_assert!(calendar.is_working_time(next));
        prop_assert_eq!(calendar.working_seconds_between(t, next), 0);
        prop_assert_eq!(calendar.add_working_seconds(t, 1), next + TimeDelta::seconds(1));
    }
}

proptest! {
    // The reference counts minute by minute, so fewer cases over at most sixteen days.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn working_minutes_match_a_minute_by_minute_count(
        spec in spec(), start_minute in 0i64..54 * 1440, length in 0i64..16 * 1440,
    ) {
        let calendar = spec.calendar();
        let a = base() + TimeDelta::minutes(start_minute);
        let b = a + TimeDelta::minutes(length);
        let expected = (0..length)
            .filter(|m| spec.is_working_minute(a + TimeDelta::minutes(*m)))
            .count() as u32;
        prop_assert_eq!(calendar.working_minutes_between(a, b), expected);
        for m in [0, length / 3, length / 2, length.saturating_sub(1)] {
            let t = a + TimeDelta::minutes(m);
            prop_assert_eq!(calendar.is_working_time(t), spec.is_working_minute(t));
        }
    }
}

/// What happens to a clock at one instant, in the order generated.
#[derive(Debug, Clone, Copy)]
enum Event {
    Suspend,
    Resume,
    Extend(u32),
}

fn events() -> impl Strategy<Value = Vec<(u32, Event)>> {
    let event = prop_oneof![
        Just(Event::Suspend),
        Just(Event::Resume),
        (1u32..600).prop_map(Event::Extend),
    ];
    prop::collection::vec((0u32..3 * 86_400, event), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn stage_clocks_are_consistent(
        spec in spec(), kind in kind(), start in instant(), limit in 1u32..3_000,
        events in events(), mut probes in prop::array::uniform3(0u32..20 * 86_400),
    ) {
        let calendar = spec.calendar();
        let mut clock = StageClock::start(SlaStage::Handling, kind, start, NonZeroU32::new(limit).unwrap());
        let mut t = start;
        for (gap, event) in events {
            t += TimeDelta::seconds(i64::from(gap));
            // Refusals (resume while running, suspend while suspended) leave the clock as it was.
            let before = clock.clone();
            let result = match event {
                Event::Suspend => clock.suspend(t),
                Event::Resume => clock.resume(t),
                Event::Extend(minutes) => clock.extend(minutes),
            };
            if result.is_err() {
                prop_assert_eq!(&clock, &before);
            }
        }
        let back: StageClock = serde_json::from_str(&serde_json::to_string(&clock).unwrap()).unwrap();
        prop_assert_eq!(&back, &clock);

        let limit_seconds = clock.total_limit_minutes() * 60;
        probes.sort();
        let mut previous = 0;
        for probe in probes {
            let now = start + TimeDelta::seconds(i64::from(probe));
            let used = clock.used_seconds(&calendar, now);
            prop_assert!(used >= previous, "used time never goes back");
            previous = used;
            prop_assert!(used <= calendar.seconds_between(kind, start, now));
            prop_assert_eq!(clock.is_overdue(&calendar, now), used > limit_seconds);
            prop_assert_eq!(clock.overtime_multiple(&calendar, now) > 0.0, used > limit_seconds);
        }
        match clock.deadline(&calendar) {
            Some(deadline) => {
                prop_assert_eq!(clock.used_seconds(&calendar, deadline), limit_seconds);
                prop_assert!(!clock.is_overdue(&calendar, deadline));
                let warning = clock.warning_at(&calendar, 0.8).unwrap();
                prop_assert!(warning <= deadline);
                prop_assert_eq!(
                    clock.used_seconds(&calendar, warning),
                    ((limit_seconds as f64) * 0.8).round() as u64
                );
            }
            None => {
                // Only a clock paused before running out has no deadline, and it never becomes overdue.
                prop_assert!(clock.is_suspended());
                prop_assert!(!clock.is_overdue(&calendar, start + TimeDelta::days(400)));
            }
        }
    }
}
