//! Grid codes: 6-digit administrative division + 3-digit street + 3-digit community + 3-digit cell.
//!
//! Beijing's 万米单元网格 scheme gives every unit cell a 15-digit code, e.g. `110101001002013` is cell 013
//! of community 002 of street 001 of 东城区 (110101). Streets and communities are coded by the prefixes of
//! the same scheme (9 and 12 digits). Numbers start at 001, so a 000 part is refused. The codes are
//! plain `Copy` values ordered like their strings. That order makes "the lowest code" a deterministic
//! tie-break. They travel as strings in JSON because leading zeros matter.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A street (街道): division + 3 digits, e.g. `110101001`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreetCode {
    division: u32,
    street: u16,
}

/// A community (社区): division + street + 3 digits, e.g. `110101001002`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommunityCode {
    division: u32,
    street: u16,
    community: u16,
}

/// A unit cell (万米单元网格): division + street + community + 3-digit sequence, e.g. `110101001002013`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellCode {
    division: u32,
    street: u16,
    community: u16,
    sequence: u16,
}

/// Why a grid code or one of its parts was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("grid code {code:?} should have {expected} digits, it has {found} characters")]
    Length {
        code: String,
        expected: usize,
        found: usize,
    },
    #[error("grid code {code:?} has a character that is not an ASCII digit")]
    NotDigits { code: String },
    #[error(
        "division code {division:06} is not a county-level administrative division code \
         (6 digits, province part 11..=82)"
    )]
    Division { division: u32 },
    #[error("the {level} number {number} is outside 001..=999")]
    OutOfRange { level: &'static str, number: u32 },
}

/// Checks a 6-digit administrative division code such as `"110101"` and returns it as a number.
pub fn parse_division_code(code: &str) -> Result<u32, CodeError> {
    let [division] = parse_digits::<1>(code)?;
    Ok(division)
}

impl StreetCode {
    pub fn new(division: u32, street: u16) -> Result<Self, CodeError> {
        check_division(division)?;
        check_number("street", street.into())?;
        Ok(Self { division, street })
    }

    /// Parses 9 digits, e.g. `"110101001"`.
    pub fn parse(code: &str) -> Result<Self, CodeError> {
        let [division, street] = parse_digits(code)?;
        Ok(Self {
            division,
            street: street as u16,
        })
    }

    pub fn division(self) -> u32 {
        self.division
    }

    pub fn street_number(self) -> u16 {
        self.street
    }
}

impl CommunityCode {
    pub fn new(street: StreetCode, community: u16) -> Result<Self, CodeError> {
        check_number("community", community.into())?;
        Ok(Self {
            division: street.division,
            street: street.street,
            community,
        })
    }

    /// Parses 12 digits, e.g. `"110101001002"`.
    pub fn parse(code: &str) -> Result<Self, CodeError> {
        let [division, street, community] = parse_digits(code)?;
        Ok(Self {
            division,
            street: street as u16,
            community: community as u16,
        })
    }

    pub fn street(self) -> StreetCode {
        StreetCode {
            division: self.division,
            street: self.street,
        }
    }

    pub fn community_number(self) -> u16 {
        self.community
    }
}

impl CellCode {
    pub fn new(community: CommunityCode, sequence: u16) -> Result<Self, CodeError> {
        check_number("cell sequence", sequence.into())?;
        Ok(Self {
            division: community.division,
            street: community.street,
            community: community.community,
            sequence,
        })
    }

    /// Parses 15 digits, e.g. `"110101001002013"`.
    pub fn parse(code: &str) -> Result<Self, CodeError> {
        let [division, street, community, sequence] = parse_digits(code)?;
        Ok(Self {
            division,
            street: street as u16,
            community: community as u16,
            sequence: sequence as u16,
        })
    }

    pub fn street(self) -> StreetCode {
        StreetCode {
            division: self.division,
            street: self.street,
        }
    }

    pub fn community(self) -> CommunityCode {
        CommunityCode {
            division: self.division,
            street: self.street,
            community: self.community,
        }
    }

    pub fn sequence(self) -> u16 {
        self.sequence
    }
}

impl fmt::Display for StreetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}{:03}", self.division, self.street)
    }
}

impl fmt::Display for CommunityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:03}", self.street(), self.community)
    }
}

impl fmt::Display for CellCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:03}", self.community(), self.sequence)
    }
}

/// `FromStr` and string serde for the three codes, all through their `parse` and `Display`.
macro_rules! code_as_string {
    ($code:ident) => {
        impl FromStr for $code {
            type Err = CodeError;
            fn from_str(code: &str) -> Result<Self, CodeError> {
                Self::parse(code)
            }
        }

        impl Serialize for $code {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $code {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

code_as_string!(StreetCode);
code_as_string!(CommunityCode);
code_as_string!(CellCode);

const LEVEL_NAMES: [&str; 4] = ["division", "street", "community", "cell sequence"];

/// Splits a code of `PARTS` parts (the division, then 3 digits per level) into checked numbers.
fn parse_digits<const PARTS: usize>(code: &str) -> Result<[u32; PARTS], CodeError> {
    let expected = 6 + 3 * (PARTS - 1);
    if code.len() != expected {
        return Err(CodeError::Length {
            code: code.to_string(),
            expected,
            found: code.chars().count(),
        });
    }
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeError::NotDigits {
            code: code.to_string(),
        });
    }
    let mut parts = [0u32; PARTS];
    for (index, part) in parts.iter_mut().enumerate() {
        let (start, end) = if index == 0 {
            (0, 6)
        } else {
            (3 + 3 * index, 6 + 3 * index)
        };
        // All ASCII digits and at most 6 of them, so this cannot fail.
        *part = code[start..end].parse().unwrap_or_default();
        if index == 0 {
            check_division(*part)?;
        } else {
            check_number(LEVEL_NAMES[index], *part)?;
        }
    }
    Ok(parts)
}

fn check_division(division: u32) -> Result<(), CodeError> {
    // Province codes run from 11 (北京) to 82 (澳门); a county-level code never ends in 00 (that names a
    // city or province).
    let province = division / 10_000;
    let county = division % 100;
    if !(11..=82).contains(&province) || county == 0 || division > 999_999 {
        return Err(CodeError::Division { division });
    }
    Ok(())
}

fn check_number(level: &'static str, number: u32) -> Result<(), CodeError> {
    if !(1..=999).contains(&number) {
        return Err(CodeError::OutOfRange { level, number });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_code_splits_into_its_parts() {
        let cell = CellCode::parse("110101001002013").unwrap();
        assert_eq!(cell.street().division(), 110_101);
        assert_eq!(cell.street().street_number(), 1);
        assert_eq!(cell.community().community_number(), 2);
        assert_eq!(cell.sequence(), 13);
        assert_eq!(cell.street().to_string(), "110101001");
        assert_eq!(cell.community().to_string(), "110101001002");
        assert_eq!(serde_json::to_string(&cell).unwrap(), "\"110101001002013\"");
        assert_eq!(
            serde_json::from_str::<CellCode>("\"110101001002013\"").unwrap(),
            cell
        );
        assert_eq!(parse_division_code("110101"), Ok(110_101));
    }

    #[test]
    fn bad_codes_are_refused_with_a_reason() {
        let length = CellCode::parse("11010100100201").unwrap_err();
        assert!(
            matches!(
                length,
                CodeError::Length {
                    expected: 15,
                    found: 14,
                    ..
                }
            ),
            "{length}"
        );
        assert!(length.to_string().contains("15 digits"), "{length}");
        assert!(matches!(
            CellCode::parse("11010100100201x"),
            Err(CodeError::NotDigits { .. })
        ));
        assert!(matches!(
            CellCode::parse("１10101001002013"),
            Err(CodeError::Length { .. })
        ));
        assert_eq!(
            CellCode::parse("110101001002000"),
            Err(CodeError::OutOfRange {
                level: "cell sequence",
                number: 0
            })
        );
        assert_eq!(
            CellCode::parse("110101000002013"),
            Err(CodeError::OutOfRange {
                level: "street",
                number: 0
            })
        );
        assert_eq!(
            CommunityCode::parse("110101001000"),
            Err(CodeError::OutOfRange {
                level: "community",
                number: 0
            })
        );
        assert_eq!(
            CellCode::parse("000101001002013"),
            Err(CodeError::Division { division: 101 })
        );
        assert_eq!(
            parse_division_code("110100"),
            Err(CodeError::Division { division: 110_100 })
        );
        assert!(StreetCode::new(110_101, 1000).is_err());
        assert!(StreetCode::new(1_110_101, 1).is_err());
        assert!(serde_json::from_str::<StreetCode>("\"1101010010\"").is_err());
    }

    fn any_cell_code() -> impl Strategy<Value = CellCode> {
        (
            11u32..=82,
            1u32..=99,
            1u32..=99,
            1u16..=999,
            1u16..=999,
            1u16..=999,
        )
            .prop_map(|(province, city, county, street, community, sequence)| {
                let division = province * 10_000 + city * 100 + county;
                let street = StreetCode::new(division, street).unwrap();
                CellCode::new(CommunityCode::new(street, community).unwrap(), sequence).unwrap()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn format_then_parse_is_the_same_code(code in any_cell_code()) {
            let text = code.to_string();
            prop_assert_eq!(text.len(), 15);
            prop_assert_eq!(CellCode::parse(&text), Ok(code));
            prop_assert_eq!(CommunityCode::parse(&text[..12]), Ok(code.community()));
            prop_assert_eq!(StreetCode::parse(&text[..9]), Ok(code.street()));
            prop_assert!(text.starts_with(&code.community().to_string()));
        }

        #[test]
        fn code_order_is_string_order(a in any_cell_code(), b in any_cell_code()) {
            prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
        }

        #[test]
        fn random_digits_parse_exactly_when_every_part_is_valid(text in "[0-9]{15}") {
            let number = |from: usize, to: usize| text[from..to].parse::<u32>().unwrap();
            let valid = (11..=82).contains(&number(0, 2))
                && number(4, 6) != 0
                && [number(6, 9), number(9, 12), number(12, 15)].iter().all(|&n| n != 0);
            match CellCode::parse(&text) {
                Ok(code) => {
                    prop_assert!(valid, "accepted {}", text);
                    prop_assert_eq!(code.to_string(), text);
                }
                Err(_) => prop_assert!(!valid, "refused {}", text),
            }
        }

        #[test]
        fn a_non_digit_anywhere_is_refused(code in any_cell_code(), at in 0usize..15, bad in "[^0-9]") {
            let mut text = code.to_string();
            text.replace_range(at..at + 1, &bad);
            prop_assert!(CellCode::parse(&text).is_err());
            if bad.len() == 1 {
                let not_digits = matches!(CellCode::parse(&text), Err(CodeError::NotDigits { .. }));
                prop_assert!(not_digits, "{}", text);
            }
        }

        #[test]
        fn a_changed_digit_count_is_refused(code in any_cell_code(), cut in 1usize..15) {
            let text = code.to_string();
            let shorter = matches!(CellCode::parse(&text[..cut]), Err(CodeError::Length { .. }));
            let longer = format!("{text}{}", &text[..cut]);
            let longer = matches!(CellCode::parse(&longer), Err(CodeError::Length { .. }));
            prop_assert!(shorter && longer, "{}", text);
        }
    }
}
