//! Case numbers: class letter, major and minor category class, date, and a sequence of that day.
//!
//! `C01012019041101` is a component case (C) of major class 01 and minor class 01, numbered on 11 April
//! 2019, sequence 01. The sequence has at least two digits and widens past 99 (`C010120190411100`), so
//! a number always parses back unambiguously: the first 13 characters have a fixed width and the rest is
//! the sequence. Past 99 the numbers no longer sort as text; sort by (date, sequence). The store allocates
//! sequences, unique at least per category and day.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::category::CategoryClass;

/// A case number, parsed.
/// Numbers sort by date, then category code, then sequence (not as text, which fails past 99).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseNumber {
    date: NaiveDate,
    class: CategoryClass,
    major: u8,
    minor: u8,
    sequence: u32,
}

/// Why a case number could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseNumberError {
    #[error("major class {0} is not between 1 and 99")]
    Major(u8),
    #[error("minor class {0} is not between 1 and 99")]
    Minor(u8),
    #[error("the sequence starts at 1")]
    ZeroSequence,
    #[error("year {0} does not have four digits")]
    Year(i32),
    #[error(
        "{0:?} is not a case number (C or E, 4 category digits, yyyymmdd, a sequence of 2 or more digits)"
    )]
    Format(String),
}

/// The number of case `sequence` of category `class`+`major`+`minor` on `date`.
pub fn case_number(
    class: CategoryClass,
    major: u8,
    minor: u8,
    date: NaiveDate,
    sequence: u32,
) -> Result<String, CaseNumberError> {
    CaseNumber::new(class, major, minor, date, sequence).map(|number| number.to_string())
}

impl CaseNumber {
    pub fn new(
        class: CategoryClass,
        major: u8,
        minor: u8,
        date: NaiveDate,
        sequence: u32,
    ) -> Result<Self, CaseNumberError> {
        if !(1..=99).contains(&major) {
            return Err(CaseNumberError::Major(major));
        }
        if !(1..=99).contains(&minor) {
            return Err(CaseNumberError::Minor(minor));
        }
        if !(1000..=9999).contains(&date.year()) {
            return Err(CaseNumberError::Year(date.year()));
        }
        if sequence == 0 {
            return Err(CaseNumberError::ZeroSequence);
        }
        Ok(Self {
            date,
            class,
            major,
            minor,
            sequence,
        })
    }

    /// Reads a number back; only the exact form [`Display`](fmt::Display) writes is accepted.
    pub fn parse(text: &str) -> Result<Self, CaseNumberError> {
        let bad = || CaseNumberError::Format(text.to_string());
        let bytes = text.as_bytes();
        // 1 letter + 4 category digits + 8 date digits + at least 2 sequence digits; u32 has 10 digits.
        if !(15..=23).contains(&bytes.len()) || !bytes[1..].iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let class = match bytes[0] {
            b'C' => CategoryClass::Component,
            b'E' => CategoryClass::Event,
            _ => return Err(bad()),
        };
        let major = text[1..3].parse().map_err(|_| bad())?;
        let minor = text[3..5].parse().map_err(|_| bad())?;
        let date = NaiveDate::parse_from_str(&text[5..13], "%Y%m%d").map_err(|_| bad())?;
        let sequence = text[13..].parse().map_err(|_| bad())?;
        let number = Self::new(class, major, minor, date, sequence).map_err(|_| bad())?;
        // `0100` and `100` are the same sequence; only the written form is the number.
        if number.to_string() != text {
            return Err(bad());
        }
        Ok(number)
    }

    pub fn class(&self) -> CategoryClass {
        self.class
    }

    pub fn major(&self) -> u8 {
        self.major
    }

    pub fn minor(&self) -> u8 {
        self.minor
    }

    pub fn date(&self) -> NaiveDate {
        self.date
    }

    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// The category code the number starts with, e.g. `C0101`.
    pub fn category_code(&self) -> String {
        format!("{}{:02}{:02}", self.class.letter(), self.major, self.minor)
    }
}

impl CaseNumber {
    fn sort_key(&self) -> (NaiveDate, char, u8, u8, u32) {
        (
            self.date,
            self.class.letter(),
            self.major,
            self.minor,
            self.sequence,
        )
    }
}

impl Ord for CaseNumber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for CaseNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CaseNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{:02}",
            self.category_code(),
            self.date.format("%Y%m%d"),
            self.sequence
        )
    }
}

impl FromStr for CaseNumber {
    type Err = CaseNumberError;

    fn from_str(s: &str) -> Result<Self, CaseNumberError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for CaseNumber {
    type Error = CaseNumberError;

    fn try_from(s: String) -> Result<Self, CaseNumberError> {
        Self::parse(&s)
    }
}

impl From<CaseNumber> for String {
    fn from(number: CaseNumber) -> String {
        number.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_domain_example() {
        let number = case_number(CategoryClass::Component, 1, 1, date(2019, 4, 11), 1).unwrap();
        assert_eq!(number, "C01012019041101");
        let parsed: CaseNumber = number.parse().unwrap();
        assert_eq!(parsed.class(), CategoryClass::Component);
        assert_eq!(
            (parsed.major(), parsed.minor(), parsed.sequence()),
            (1, 1, 1)
        );
        assert_eq!(parsed.date(), date(2019, 4, 11));
        assert_eq!(parsed.category_code(), "C0101");
    }

    #[test]
    fn the_sequence_widens_past_99() {
        let event = |sequence| {
            case_number(CategoryClass::Event, 5, 2, date(2026, 7, 21), sequence).unwrap()
        };
        assert_eq!(event(99), "E05022026072199");
        assert_eq!(event(100), "E050220260721100");
        assert_eq!(event(u32::MAX), "E0502202607214294967295");
        assert_eq!(
            CaseNumber::parse("E050220260721100").unwrap().sequence(),
            100
        );
    }

    #[test]
    fn bad_parts_are_refused() {
        let day = date(2026, 7, 21);
        assert_eq!(
            case_number(CategoryClass::Event, 0, 1, day, 1),
            Err(CaseNumberError::Major(0))
        );
        assert_eq!(
            case_number(CategoryClass::Event, 100, 1, day, 1),
            Err(CaseNumberError::Major(100))
        );
        assert_eq!(
            case_number(CategoryClass::Event, 1, 0, day, 1),
            Err(CaseNumberError::Minor(0))
        );
        assert_eq!(
            case_number(CategoryClass::Event, 1, 1, day, 0),
            Err(CaseNumberError::ZeroSequence)
        );
        assert_eq!(
            case_number(CategoryClass::Event, 1, 1, date(12026, 1, 1), 1),
            Err(CaseNumberError::Year(12026))
        );
    }

    #[test]
    fn bad_numbers_are_refused() {
        for bad in [
            "",
            "C0101201904110",
            "X01012019041101",
            "C00012019041101",
            "C01002019041101",
            "C01012019023001",
            "C01012019041100",
            "C010120190411001",
            "C0101201904110１",
            "c01012019041101",
            "C01012019041199999999999",
            "C0101201904114294967296",
            " C01012019041101",
        ] {
            assert!(CaseNumber::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers_are_json_strings() {
        let number = CaseNumber::parse("E04012026072107").unwrap();
        assert_eq!(
            serde_json::to_string(&number).unwrap(),
            "\"E04012026072107\""
        );
        assert_eq!(
            serde_json::from_str::<CaseNumber>("\"E04012026072107\"").unwrap(),
            number
        );
        assert!(serde_json::from_str::<CaseNumber>("\"E0401\"").is_err());
    }

    #[test]
    fn numbers_sort_by_date_then_category_then_sequence() {
        let mut numbers: Vec<CaseNumber> = [
            "E010120260722100",
            "C010120260722100",
            "E01012026072299",
            "C05012026072101",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        numbers.sort();
        let sorted: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            sorted,
            [
                "C05012026072101",
                "C010120260722100",
                "E01012026072299",
                "E010120260722100"
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn every_number_parses_back(
            event in any::<bool>(), major in 1u8..=99, minor in 1u8..=99,
            days in 0i64..3_000_000, sequence in 1u32..,
        ) {
            let class = if event { CategoryClass::Event } else { CategoryClass::Component };
            let day = date(1000, 1, 1) + chrono::TimeDelta::days(days);
            prop_assume!(day.year() <= 9999);
            let text = case_number(class, major, minor, day, sequence).unwrap();
            let parsed = CaseNumber::parse(&text).unwrap();
            prop_assert_eq!(parsed, CaseNumber::new(class, major, minor, day, sequence).unwrap());
            prop_assert_eq!(parsed.to_string(), text);
        }
    }
}
