//! The working calendar: which instants are working time, and arithmetic in working time.
//!
//! A day is a working day if it is a make-up working day (调休上班), or else if it is neither a weekend
//! day nor a holiday. Working time is the union of the day's working periods on working days, in local
//! time at a fixed UTC offset. Times go in and out as UTC; the offset only decides what "08:00" means.
//!
//! Arithmetic is exact to the second: `add_working_seconds(start, n)` is the earliest instant at which
//! `n` working seconds have passed since `start`, and `working_seconds_between(start, that)` gives back
//! `n`. So a stage whose time runs out at the end of the morning has the deadline 12:00, not 14:00.

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, TimeDelta, Utc};
use std::collections::BTreeSet;
use std::fmt;

use super::config::CalendarConfig;
use super::stage::ClockKind;

/// One working period of a working day, in minutes after local midnight; the end is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkPeriod {
    start_minute: u16,
    end_minute: u16,
}

/// Working days, working periods, holidays and make-up days, at a fixed UTC offset.
///
/// Built from a [`CalendarConfig`]; the default is 08:00-12:00 and 14:00-18:00, Monday to Friday,
/// at UTC+08:00, with no holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkCalendar {
    /// Sorted, not overlapping, each non-empty (checked by the config).
    periods: Vec<WorkPeriod>,
    /// Indexed by days from Monday; never all true (checked by the config), so deadlines always exist.
    weekend: [bool; 7],
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
    offset: FixedOffset,
}

impl WorkPeriod {
    pub fn start_minute(self) -> u16 {
        self.start_minute
    }

    pub fn end_minute(self) -> u16 {
        self.end_minute
    }

    pub fn minutes(self) -> u32 {
        u32::from(self.end_minute - self.start_minute)
    }

    /// Only the config builds periods, after checking `start < end <= 24:00`.
    pub(super) fn new_unchecked(start_minute: u16, end_minute: u16) -> Self {
        Self {
            start_minute,
            end_minute,
        }
    }
}

impl fmt::Display for WorkPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e) = (self.start_minute, self.end_minute);
        write!(f, "{:02}:{:02}-{:02}:{:02}", s / 60, s % 60, e / 60, e % 60)
    }
}

impl Default for WorkCalendar {
    fn default() -> Self {
        Self {
            periods: vec![
                WorkPeriod::new_unchecked(8 * 60, 12 * 60),
                WorkPeriod::new_unchecked(14 * 60, 18 * 60),
            ],
            weekend: [false, false, false, false, false, true, true],
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
            offset: FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset"),
        }
    }
}

impl WorkCalendar {
    /// Is `date` (a local date) a working day?
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.workdays.contains(&date) {
            return true;
        }
        !self.weekend[date.weekday().num_days_from_monday() as usize]
            && !self.holidays.contains(&date)
    }

    /// Is `t` inside a working period of a working day?
    pub fn is_working_time(&self, t: DateTime<Utc>) -> bool {
        self.windows(self.local_date(t))
            .any(|(start, end)| start <= t && t < end)
    }

    /// `t` itself if it is working time, else the start of the next working period.
    pub fn next_working_instant(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let mut day = self.local_date(t);
        loop {
            if let Some((start, _)) = self.windows(day).find(|(_, end)| *end > t) {
                return start.max(t);
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => return DateTime::<Utc>::MAX_UTC,
            }
        }
    }

    /// Working minutes of one working day (480 by default).
    pub fn working_minutes_per_day(&self) -> u32 {
        self.periods.iter().map(|p| p.minutes()).sum()
    }

    pub fn periods(&self) -> &[WorkPeriod] {
        &self.periods
    }

    pub fn holidays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.holidays.iter().copied()
    }

    /// Make-up working days (调休上班).
    pub fn workdays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.workdays.iter().copied()
    }

    pub fn utc_offset(&self) -> FixedOffset {
        self.offset
    }

    /// The instant `minutes` working minutes after `start`; a start outside working time first moves to
    /// the next working minute. Zero minutes gives `start` itself.
    pub fn add_working_minutes(&self, start: DateTime<Utc>, minutes: u32) -> DateTime<Utc> {
        self.add_working_seconds(start, u64::from(minutes) * 60)
    }

    /// Whole working minutes from `a` to `b` (rounded down); 0 when `b` is not after `a`.
    pub fn working_minutes_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> u32 {
        saturating_minutes(self.working_seconds_between(a, b))
    }

    /// The earliest instant at which `seconds` working seconds have passed since `start`
    /// (saturating at the largest representable instant).
    pub fn add_working_seconds(&self, start: DateTime<Utc>, seconds: u64) -> DateTime<Utc> {
        if seconds == 0 {
            return start;
        }
        let Some(mut remaining) = i64::try_from(seconds).ok().and_then(TimeDelta::try_seconds)
        else {
            return DateTime::<Utc>::MAX_UTC;
        };
        let week = self.plain_week_working_time();
        let first = self.local_date(start);
        let mut day = first;
        loop {
            // Whole ordinary weeks after the first day are skipped in one step; the last stretch is
            // always walked day by day (`>`, not `>=`) so the earliest instant is found.
            if day > first && remaining > week && self.is_plain_week(day) {
                remaining -= week;
                match day.checked_add_days(Days::new(7)) {
                    Some(next) => day = next,
                    None => return DateTime::<Utc>::MAX_UTC,
                }
                continue;
            }
            for (window_start, window_end) in self.windows(day) {
                let from = window_start.max(start);
                if window_end > from {
                    let available = window_end - from;
                    if remaining <= available {
                        return from + remaining;
                    }
                    remaining -= available;
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => return DateTime::<Utc>::MAX_UTC,
            }
        }
    }

    /// Working seconds from `a` to `b`, rounded down to whole seconds; 0 when `b` is not after `a`.
    pub fn working_seconds_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
        if b <= a {
            return 0;
        }
        let week = self.plain_week_working_time();
        let (first, last) = (self.local_date(a), self.local_date(b));
        let mut total = TimeDelta::zero();
        let mut day = first;
        while day <= last {
            // A week strictly after the first day and ending by the last day lies wholly inside (a, b).
            let week_end = day.checked_add_days(Days::new(7));
            if day > first && week_end.is_some_and(|end| end <= last) && self.is_plain_week(day) {
                total += week;
                day = week_end.unwrap_or(last);
                continue;
            }
            for (window_start, window_end) in self.windows(day) {
                let (from, to) = (window_start.max(a), window_end.min(b));
                if to > from {
                    total += to - from;
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        u64::try_from(total.num_seconds()).unwrap_or(0)
    }

    /// [`add_working_seconds`](Self::add_working_seconds) or plain addition, by clock kind.
    pub fn add_seconds(
        &self,
        kind: ClockKind,
        start: DateTime<Utc>,
        seconds: u64,
    ) -> DateTime<Utc> {
        match kind {
            ClockKind::WorkingTime => self.add_working_seconds(start, seconds),
            ClockKind::Continuous24h => i64::try_from(seconds)
                .ok()
                .and_then(TimeDelta::try_seconds)
                .and_then(|delta| start.checked_add_signed(delta))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// [`working_seconds_between`](Self::working_seconds_between) or plain difference, by clock kind.
    pub fn seconds_between(&self, kind: ClockKind, a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
        match kind {
            ClockKind::WorkingTime => self.working_seconds_between(a, b),
            ClockKind::Continuous24h => u64::try_from((b - a).num_seconds()).unwrap_or(0),
        }
    }

    pub fn add_minutes(
        &self,
        kind: ClockKind,
        start: DateTime<Utc>,
        minutes: u32,
    ) -> DateTime<Utc> {
        self.add_seconds(kind, start, u64::from(minutes) * 60)
    }

    pub fn minutes_between(&self, kind: ClockKind, a: DateTime<Utc>, b: DateTime<Utc>) -> u32 {
        saturating_minutes(self.seconds_between(kind, a, b))
    }

    /// The configuration that builds this calendar again (consecutive dates written as ranges).
    pub fn to_config(&self) -> CalendarConfig {
        const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let offset_minutes = self.offset.local_minus_utc() / 60;
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let offset_minutes = offset_minutes.abs();
        CalendarConfig {
            periods: self.periods.iter().map(|p| p.to_string()).collect(),
            weekend: (0..7)
                .filter(|i| self.weekend[*i])
                .map(|i| NAMES[i].to_string())
                .collect(),
            holidays: date_ranges(&self.holidays),
            workdays: date_ranges(&self.workdays),
            utc_offset: format!(
                "{sign}{:02}:{:02}",
                offset_minutes / 60,
                offset_minutes % 60
            ),
        }
    }

    pub(super) fn from_checked_parts(
        periods: Vec<WorkPeriod>,
        weekend_days_from_monday: BTreeSet<u32>,
        holidays: BTreeSet<NaiveDate>,
        workdays: BTreeSet<NaiveDate>,
        offset: FixedOffset,
    ) -> Self {
        let mut weekend = [false; 7];
        for day in weekend_days_from_monday {
            if let Some(slot) = weekend.get_mut(day as usize) {
                *slot = true;
            }
        }
        Self {
            periods,
            weekend,
            holidays,
            workdays,
            offset,
        }
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.offset).date_naive()
    }

    /// The UTC instant of `minute` minutes after local midnight of `date` (`None` past chrono's range).
    fn instant(&self, date: NaiveDate, minute: u16) -> Option<DateTime<Utc>> {
        let local = date
            .and_hms_opt(0, 0, 0)?
            .checked_add_signed(TimeDelta::minutes(i64::from(minute)))?;
        let utc = local
            .checked_sub_signed(TimeDelta::seconds(i64::from(self.offset.local_minus_utc())))?;
        Some(utc.and_utc())
    }

    /// The working windows of `date` as UTC instants, in order; none on a day off.
    fn windows(
        &self,
        date: NaiveDate,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let working = self.is_working_day(date);
        self.periods
            .iter()
            .filter(move |_| working)
            .filter_map(move |p| {
                Some((
                    self.instant(date, p.start_minute)?,
                    self.instant(date, p.end_minute)?,
                ))
            })
    }

    /// No holiday and no make-up day in the seven days from `day`: the week has the weekday pattern only.
    fn is_plain_week(&self, day: NaiveDate) -> bool {
        let Some(end) = day.checked_add_days(Days::new(7)) else {
            return false;
        };
        self.holidays.range(day..end).next().is_none()
            && self.workdays.range(day..end).next().is_none()
    }

    /// Working time of a week with no holiday and no make-up day.
    fn plain_week_working_time(&self) -> TimeDelta {
        let working_days = self.weekend.iter().filter(|off| !**off).count() as i64;
        TimeDelta::minutes(working_days * i64::from(self.working_minutes_per_day()))
    }
}

fn saturating_minutes(seconds: u64) -> u32 {
    u32::try_from(seconds / 60).unwrap_or(u32::MAX)
}

/// `2026-10-01/2026-10-07` for runs of consecutive dates, `2026-10-10` for single ones.
fn date_ranges(dates: &BTreeSet<NaiveDate>) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Option<(NaiveDate, NaiveDate)> = None;
    for &date in dates {
        run = match run {
            Some((from, to)) if to.succ_opt() == Some(date) => Some((from, date)),
            Some(done) => {
                out.push(format_range(done));
                Some((date, date))
            }
            None => Some((date, date)),
        };
    }
    out.extend(run.map(format_range));
    out
}

fn format_range((from, to): (NaiveDate, NaiveDate)) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from}/{to}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Local time at +08:00, `2026-10-09 17:30`.
    pub(crate) fn at(local: &str) -> DateTime<Utc> {
        DateTime::parse_from_str(&format!("{local} +0800"), "%Y-%m-%d %H:%M %z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn national_day_2026() -> WorkCalendar {
        CalendarConfig {
            holidays: vec!["2026-10-01/2026-10-07".to_string()],
            workdays: vec!["2026-09-20".to_string(), "2026-10-10".to_string()],
            ..CalendarConfig::default()
        }
        .build()
        .unwrap()
    }

    #[test]
    fn within_one_period() {
        let calendar = WorkCalendar::default();
        // Friday 2026-04-10.
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-10 09:00"), 30),
            at("2026-04-10 09:30")
        );
        assert_eq!(
            calendar.working_minutes_between(at("2026-04-10 09:00"), at("2026-04-10 09:30")),
            30
        );
    }

    #[test]
    fn across_the_lunch_break() {
        let calendar = WorkCalendar::default();
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-10 11:30"), 60),
            at("2026-04-10 14:30")
        );
        assert_eq!(
            calendar.working_minutes_between(at("2026-04-10 11:30"), at("2026-04-10 14:30")),
            60
        );
        // Running out exactly at noon gives noon, not the end of the break.
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-10 11:30"), 30),
            at("2026-04-10 12:00")
        );
        assert_eq!(
            calendar.working_minutes_between(at("2026-04-10 12:00"), at("2026-04-10 14:00")),
            0
        );
    }

    #[test]
    fn across_the_night_and_the_weekend() {
        let calendar = WorkCalendar::default();
        // Thursday 17:00 + 2 h → Friday 09:00.
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-09 17:00"), 120),
            at("2026-04-10 09:00")
        );
        // Friday 17:00 + 2 h → Monday 09:00.
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-10 17:00"), 120),
            at("2026-04-13 09:00")
        );
        assert_eq!(
            calendar.working_minutes_between(at("2026-04-10 17:00"), at("2026-04-13 09:00")),
            120
        );
        // Three working days (a faded sign) from Friday 10:00 → Wednesday 10:00.
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-10 10:00"), 3 * 480),
            at("2026-04-15 10:00")
        );
        // A whole ordinary week is five working days.
        assert_eq!(
            calendar.working_minutes_between(at("2026-04-13 00:00"), at("2026-04-20 00:00")),
            2400
        );
    }

    #[test]
    fn a_start_outside_working_hours_starts_at_the_next_working_minute() {
        let calendar = WorkCalendar::default();
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-10 06:30"), 30),
            at("2026-04-10 08:30")
        );
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-10 12:30"), 30),
            at("2026-04-10 14:30")
        );
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-10 22:00"), 30),
            at("2026-04-13 08:30")
        );
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-11 10:00"), 30),
            at("2026-04-13 08:30")
        );
        assert_eq!(
            calendar.next_working_instant(at("2026-04-11 10:00")),
            at("2026-04-13 08:00")
        );
        assert_eq!(
            calendar.next_working_instant(at("2026-04-10 12:00")),
            at("2026-04-10 14:00")
        );
        assert_eq!(
            calendar.next_working_instant(at("2026-04-10 11:59")),
            at("2026-04-10 11:59")
        );
        // Zero minutes is the start itself, working time or not.
        assert_eq!(
            calendar.add_working_minutes(at("2026-04-11 10:00"), 0),
            at("2026-04-11 10:00")
        );
    }

    #[test]
    fn national_day_holidays_and_the_make_up_saturday() {
        let calendar = national_day_2026();
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(!calendar.is_working_day(date("2026-10-01")));
        assert!(!calendar.is_working_day(date("2026-10-07")));
        assert!(calendar.is_working_day(date("2026-10-08")));
        assert!(
            calendar.is_working_day(date("2026-10-10")),
            "make-up Saturday"
        );
        assert!(
            !calendar.is_working_day(date("2026-10-11")),
            "ordinary Sunday"
        );
        assert!(
            calendar.is_working_day(date("2026-09-20")),
            "make-up Sunday"
        );

        // Wednesday 30 September 17:00 + 2 h: 1 h that day, then the holiday week, then Thursday 8 October 09:00.
        assert_eq!(
            calendar.add_working_minutes(at("2026-09-30 17:00"), 120),
            at("2026-10-08 09:00")
        );
        assert_eq!(
            calendar.working_minutes_between(at("2026-09-30 17:00"), at("2026-10-08 09:00")),
            120
        );
        // Friday 9 October 17:00 + 2 h: the make-up Saturday counts.
        assert_eq!(
            calendar.add_working_minutes(at("2026-10-09 17:00"), 120),
            at("2026-10-10 09:00")
        );
        // The same on the default calendar would run into Monday.
        assert_eq!(
            WorkCalendar::default().add_working_minutes(at("2026-10-09 17:00"), 120),
            at("2026-10-12 09:00")
        );
        // 29 September to 13 October: 29, 30 Sep, 8, 9, 10 (make-up), 12 Oct = 6 working days.
        assert_eq!(
            calendar.working_minutes_between(at("2026-09-29 00:00"), at("2026-10-13 00:00")),
            6 * 480
        );
        // A start inside the holiday waits for its end.
        assert_eq!(
            calendar.add_working_minutes(at("2026-10-03 10:00"), 30),
            at("2026-10-08 08:30")
        );
    }

    #[test]
    fn the_continuous_clock_counts_every_minute() {
        let calendar = national_day_2026();
        let kind = ClockKind::Continuous24h;
        assert_eq!(
            calendar.add_minutes(kind, at("2026-10-01 23:30"), 120),
            at("2026-10-02 01:30")
        );
        assert_eq!(
            calendar.minutes_between(kind, at("2026-10-01 23:30"), at("2026-10-02 01:30")),
            120
        );
        assert_eq!(
            calendar.minutes_between(kind, at("2026-10-02 01:30"), at("2026-10-01 23:30")),
            0
        );
        assert_eq!(
            calendar.add_minutes(ClockKind::WorkingTime, at("2026-10-01 23:30"), 120),
            at("2026-10-08 10:00")
        );
    }

    #[test]
    fn another_offset_moves_the_working_day() {
        let calendar = CalendarConfig {
            utc_offset: "+00:00".to_string(),
            ..CalendarConfig::default()
        }
        .build()
        .unwrap();
        // 16:00 at +08:00 is 08:00 UTC: the start of this calendar's working day.
        assert_eq!(
            calendar.next_working_instant(at("2026-04-10 15:00")),
            at("2026-04-10 16:00")
        );
    }

    #[test]
    fn long_spans_skip_whole_weeks_exactly() {
        let calendar = national_day_2026();
        let start = at("2026-01-05 09:17");
        let end = calendar.add_working_minutes(start, 200 * 480);
        assert_eq!(calendar.working_minutes_between(start, end), 200 * 480);
        // Counting day by day over the same span gives the same number.
        let mut by_day = 0;
        let mut day = at("2026-01-05 00:00");
        while day < end {
            let next = day + TimeDelta::days(1);
            by_day += calendar.working_seconds_between(start.max(day), next.min(end));
            day = next;
        }
        assert_eq!(by_day, 200 * 480 * 60);
    }
}
