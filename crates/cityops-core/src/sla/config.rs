//! The working calendar as configured: readable strings, checked once when the calendar is built.
//!
//! ```toml
//! periods = ["08:00-12:00", "14:00-18:00"]
//! weekend = ["sat", "sun"]
//! holidays = ["2026-10-01/2026-10-07"]   # a single date or an inclusive from/to range
//! workdays = ["2026-10-10"]              # 调休上班: weekend dates that are working days
//! utc_offset = "+08:00"
//! ```

use chrono::{FixedOffset, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::calendar::{WorkCalendar, WorkPeriod};

/// The longest holiday or make-up range one entry may name: a typo like `2026-10-01/2062-10-07` must fail.
const MAX_RANGE_DAYS: i64 = 366;

/// The serde form of a [`WorkCalendar`]. Every field has the default of a Chinese city administration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// Working periods of a working day, local time, `HH:MM-HH:MM`, end exclusive; `24:00` may end one.
    #[serde(default = "default_periods")]
    pub periods: Vec<String>,
    /// Days of the week that are not working days unless listed in `workdays` (`sat`, `sunday`, …).
    #[serde(default = "default_weekend")]
    pub weekend: Vec<String>,
    /// Public holidays: `2026-10-01` or an inclusive range `2026-10-01/2026-10-07`.
    #[serde(default)]
    pub holidays: Vec<String>,
    /// Make-up working days (调休上班), same forms as `holidays`; they win over the weekend.
    #[serde(default)]
    pub workdays: Vec<String>,
    /// Offset of local time from UTC, `+08:00` in China (no daylight saving time, so a fixed offset suffices).
    #[serde(default = "default_utc_offset")]
    pub utc_offset: String,
}

/// Why a calendar configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("working period {text:?}: {problem}")]
    Period { text: String, problem: &'static str },
    #[error("working periods {first:?} and {second:?} overlap")]
    OverlappingPeriods { first: String, second: String },
    #[error("at least one working period is needed, or no deadline could ever be reached")]
    NoPeriods,
    #[error("weekend day {0:?} is not a day of the week (mon, tue, … or monday, tuesday, …)")]
    Weekday(String),
    #[error("every day of the week is a weekend day, so deadlines could never be reached")]
    AllWeekend,
    #[error("date {text:?}: {problem}")]
    Date { text: String, problem: &'static str },
    #[error("{0} is listed both as a holiday and as a make-up working day")]
    HolidayAndWorkday(NaiveDate),
    #[error("UTC offset {0:?} is not ±HH:MM between -23:59 and +23:59")]
    Offset(String),
}

fn default_periods() -> Vec<String> {
    vec!["08:00-12:00".to_string(), "14:00-18:00".to_string()]
}

fn default_weekend() -> Vec<String> {
    vec!["sat".to_string(), "sun".to_string()]
}

fn default_utc_offset() -> String {
    "+08:00".to_string()
}

impl Default for CalendarConfig {
    fn default() -> Self {
        Self {
            periods: default_periods(),
            weekend: default_weekend(),
            holidays: Vec::new(),
            workdays: Vec::new(),
            utc_offset: default_utc_offset(),
        }
    }
}

impl CalendarConfig {
    /// Checks everything and builds the calendar.
    pub fn build(&self) -> Result<WorkCalendar, CalendarError> {
        let mut periods = self
            .periods
            .iter()
            .map(|text| parse_period(text).map(|period| (period, text)))
            .collect::<Result<Vec<_>, _>>()?;
        if periods.is_empty() {
            return Err(CalendarError::NoPeriods);
        }
        periods.sort_by_key(|(period, _)| period.start_minute());
        for pair in periods.windows(2) {
            if pair[1].0.start_minute() < pair[0].0.end_minute() {
                return Err(CalendarError::OverlappingPeriods {
                    first: pair[0].1.clone(),
                    second: pair[1].1.clone(),
                });
            }
        }
        let periods = periods.into_iter().map(|(period, _)| period).collect();

        let mut weekend = BTreeSet::new();
        for text in &self.weekend {
            let day: Weekday = text
                .trim()
                .parse()
                .map_err(|_| CalendarError::Weekday(text.clone()))?;
            weekend.insert(day.num_days_from_monday());
        }
        if weekend.len() == 7 {
            return Err(CalendarError::AllWeekend);
        }

        let holidays = parse_dates(&self.holidays)?;
        let workdays = parse_dates(&self.workdays)?;
        if let Some(both) = holidays.intersection(&workdays).next() {
            return Err(CalendarError::HolidayAndWorkday(*both));
        }
        let offset = parse_offset(&self.utc_offset)?;
        Ok(WorkCalendar::from_checked_parts(
            periods, weekend, holidays, workdays, offset,
        ))
    }
}

impl TryFrom<CalendarConfig> for WorkCalendar {
    type Error = CalendarError;

    fn try_from(config: CalendarConfig) -> Result<Self, CalendarError> {
        config.build()
    }
}

/// `08:00-12:00` → minutes of the day, end exclusive.
fn parse_period(text: &str) -> Result<WorkPeriod, CalendarError> {
    let problem = |problem| CalendarError::Period {
        text: text.to_string(),
        problem,
    };
    let (start, end) = text
        .trim()
        .split_once('-')
        .ok_or_else(|| problem("expected HH:MM-HH:MM"))?;
    let start = parse_minute_of_day(start.trim()).ok_or_else(|| problem("expected HH:MM-HH:MM"))?;
    let end = parse_minute_of_day(end.trim()).ok_or_else(|| problem("expected HH:MM-HH:MM"))?;
    if start >= 24 * 60 {
        return Err(problem("a period cannot start at 24:00"));
    }
    if start >= end {
        return Err(problem(
            "the start must be before the end (a period cannot cross midnight)",
        ));
    }
    Ok(WorkPeriod::new_unchecked(start, end))
}

/// `HH:MM` with 00 ≤ HH ≤ 23 and 00 ≤ MM ≤ 59, or exactly `24:00`.
fn parse_minute_of_day(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || !all_digits(minutes) {
        return None;
    }
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    match (hours, minutes) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(hours * 60 + minutes),
        _ => None,
    }
}

/// Single dates and inclusive `from/to` ranges, flattened into a set.
fn parse_dates(entries: &[String]) -> Result<BTreeSet<NaiveDate>, CalendarError> {
    let mut dates = BTreeSet::new();
    for text in entries {
        let problem = |problem| CalendarError::Date {
            text: text.clone(),
            problem,
        };
        let parse = |s: &str| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map_err(|_| problem("expected YYYY-MM-DD or YYYY-MM-DD/YYYY-MM-DD"))
        };
        let (from, to) = match text.split_once('/') {
            Some((from, to)) => (parse(from)?, parse(to)?),
            None => {
                let date = parse(text)?;
                (date, date)
            }
        };
        if to < from {
            return Err(problem("the range ends before it starts"));
        }
        if (to - from).num_days() >= MAX_RANGE_DAYS {
            return Err(problem("a range may cover at most 366 days"));
        }
        dates.extend(from.iter_days().take_while(|day| *day <= to));
    }
    Ok(dates)
}

/// `+08:00`, `-05:30`, `+00:00`; `Z` for UTC.
fn parse_offset(text: &str) -> Result<FixedOffset, CalendarError> {
    let bad = || CalendarError::Offset(text.to_string());
    let trimmed = text.trim();
    if trimmed == "Z" {
        return FixedOffset::east_opt(0).ok_or_else(bad);
    }
    let (sign, rest) = match trimmed.as_bytes().first() {
        Some(b'+') => (1, &trimmed[1..]),
        Some(b'-') => (-1, &trimmed[1..]),
        _ => return Err(bad()),
    };
    let minutes = parse_minute_of_day(rest)
        .filter(|minutes| *minutes < 24 * 60)
        .ok_or_else(bad)?;
    FixedOffset::east_opt(sign * i32::from(minutes) * 60).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CalendarConfig {
        CalendarConfig::default()
    }

    #[test]
    fn default_config_is_the_chinese_office_day() {
        let calendar = config().build().unwrap();
        assert_eq!(calendar.working_minutes_per_day(), 480);
        assert_eq!(calendar.utc_offset().local_minus_utc(), 8 * 3600);
        assert_eq!(calendar, WorkCalendar::default());
    }

    #[test]
    fn config_round_trips_through_json_and_the_calendar() {
        let json =
            r#"{"holidays":["2026-10-01/2026-10-07"],"workdays":["2026-09-20","2026-10-10"]}"#;
        let config: CalendarConfig = serde_json::from_str(json).unwrap();
        let calendar = config.build().unwrap();
        assert_eq!(calendar.holidays().count(), 7);
        let again = calendar.to_config().build().unwrap();
        assert_eq!(again, calendar);
        assert!(serde_json::from_str::<CalendarConfig>(r#"{"holiday":[]}"#).is_err());
    }

    #[test]
    fn bad_periods_are_refused() {
        for bad in [
            "8:00-12:00",
            "08:00",
            "08:00-12:60",
            "25:00-26:00",
            "12:00-08:00",
            "10:00-10:00",
            "24:00-24:00",
            "22:00-02:00",
            "0a:00-12:00",
        ] {
            let config = CalendarConfig {
                periods: vec![bad.to_string()],
                ..config()
            };
            assert!(
                matches!(config.build(), Err(CalendarError::Period { .. })),
                "{bad}"
            );
        }
        let full_day = CalendarConfig {
            periods: vec!["00:00-24:00".to_string()],
            ..config()
        };
        assert_eq!(full_day.build().unwrap().working_minutes_per_day(), 1440);
    }

    #[test]
    fn overlapping_or_missing_periods_are_refused_and_order_does_not_matter() {
        let overlapping = CalendarConfig {
            periods: vec!["08:00-12:00".to_string(), "11:00-13:00".to_string()],
            ..config()
        };
        assert!(matches!(
            overlapping.build(),
            Err(CalendarError::OverlappingPeriods { .. })
        ));
        let none = CalendarConfig {
            periods: vec![],
            ..config()
        };
        assert_eq!(none.build(), Err(CalendarError::NoPeriods));
        let reversed = CalendarConfig {
            periods: vec!["14:00-18:00".to_string(), "08:00-12:00".to_string()],
            ..config()
        };
        assert_eq!(reversed.build().unwrap(), WorkCalendar::default());
        let adjacent = CalendarConfig {
            periods: vec!["08:00-12:00".to_string(), "12:00-13:00".to_string()],
            ..config()
        };
        assert_eq!(adjacent.build().unwrap().working_minutes_per_day(), 300);
    }

    #[test]
    fn weekends_dates_and_offsets_are_checked() {
        let weekend = |days: &[&str]| CalendarConfig {
            weekend: days.iter().map(|d| d.to_string()).collect(),
            ..config()
        };
        assert!(weekend(&["Friday", "sat"]).build().is_ok());
        assert!(weekend(&[]).build().is_ok());
        assert_eq!(
            weekend(&["caturday"]).build(),
            Err(CalendarError::Weekday("caturday".to_string()))
        );
        assert_eq!(
            weekend(&["mon", "tue", "wed", "thu", "fri", "sat", "sun"]).build(),
            Err(CalendarError::AllWeekend)
        );

        let dates = |holidays: &[&str], workdays: &[&str]| CalendarConfig {
            holidays: holidays.iter().map(|d| d.to_string()).collect(),
            workdays: workdays.iter().map(|d| d.to_string()).collect(),
            ..config()
        };
        for bad in [
            "2026-02-30",
            "2026/10/01",
            "2026-10-07/2026-10-01",
            "2026-01-01/2028-01-01",
        ] {
            assert!(
                matches!(dates(&[bad], &[]).build(), Err(CalendarError::Date { .. })),
                "{bad}"
            );
        }
        let day = NaiveDate::from_ymd_opt(2026, 10, 3).unwrap();
        assert_eq!(
            dates(&["2026-10-01/2026-10-07"], &["2026-10-03"]).build(),
            Err(CalendarError::HolidayAndWorkday(day))
        );

        let offset = |text: &str| CalendarConfig {
            utc_offset: text.to_string(),
            ..config()
        };
        assert_eq!(
            offset("-05:30")
                .build()
                .unwrap()
                .utc_offset()
                .local_minus_utc(),
            -19800
        );
        assert_eq!(
            offset("Z").build().unwrap().utc_offset().local_minus_utc(),
            0
        );
        for bad in ["08:00", "+8", "+24:00", "+08:60", "UTC+8"] {
            assert_eq!(
                offset(bad).build(),
                Err(CalendarError::Offset(bad.to_string())),
                "{bad}"
            );
        }
    }
}
