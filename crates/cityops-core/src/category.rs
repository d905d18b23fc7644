//! The category catalogue of managed components (部件) and events (事件), coded after GB/T 30428.2.
//!
//! A code is the class letter (`C` component, `E` event), the two-digit major class and the two-digit
//! minor class, e.g. `C0101` (public facilities / manhole cover). Case numbers start with this code.
//! Every category carries its name in Chinese (the users' language) and in English.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// 部件 (component: a managed object in the street) or 事件 (event: something that happens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoryClass {
    Component,
    Event,
}

impl CategoryClass {
    pub fn letter(self) -> char {
        match self {
            CategoryClass::Component => 'C',
            CategoryClass::Event => 'E',
        }
    }
}

/// One subclass of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    /// `C0101`, `E0501`, …
    pub code: String,
    pub class: CategoryClass,
    pub major: u8,
    pub minor: u8,
    pub name_zh: String,
    pub name_en: String,
}

/// Why a category code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryError {
    #[error("category code {0:?} is not C or E followed by four digits (e.g. C0101)")]
    BadCode(String),
    #[error("category code {0:?} is not in the catalogue")]
    Unknown(String),
}

/// Splits `C0101` into its class, major and minor parts.
pub fn parse_code(code: &str) -> Result<(CategoryClass, u8, u8), CategoryError> {
    let bad = || CategoryError::BadCode(code.to_string());
    let bytes = code.as_bytes();
    if bytes.len() != 5 || !bytes[1..].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let class = match bytes[0] {
        b'C' => CategoryClass::Component,
        b'E' => CategoryClass::Event,
        _ => return Err(bad()),
    };
    let major = code[1..3].parse().map_err(|_| bad())?;
    let minor = code[3..5].parse().map_err(|_| bad())?;
    if major == 0 || minor == 0 {
        return Err(bad());
    }
    Ok((class, major, minor))
}

/// The categories the platform knows, by code.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    by_code: BTreeMap<String, Category>,
}

/// Built-in subclasses: (code, 中文名, English name). Cities extend this list from configuration.
const BUILTIN: &[(&str, &str, &str)] = &[
    ("C0101", "井盖", "Manhole cover"),
    ("C0102", "路灯", "Street lamp"),
    ("C0103", "消防栓", "Fire hydrant"),
    ("C0104", "电力设施", "Power facility"),
    ("C0201", "交通信号灯", "Traffic light"),
    ("C0202", "交通标志牌", "Traffic sign"),
    ("C0203", "护栏", "Guardrail"),
    ("C0301", "垃圾箱", "Litter bin"),
    ("C0302", "公共厕所", "Public toilet"),
    ("C0401", "行道树", "Street tree"),
    ("C0402", "绿地", "Green space"),
    ("C0501", "其他部件", "Other component"),
    ("E0101", "暴露垃圾", "Exposed garbage"),
    ("E0102", "乱堆放", "Piled materials"),
    ("E0103", "垃圾满溢", "Overflowing bin"),
    ("E0104", "私搭乱建", "Illegal construction"),
    ("E0201", "非法小广告", "Flyposting"),
    ("E0202", "违规户外广告", "Unauthorised outdoor advertising"),
    ("E0301", "施工占道", "Road occupied by works"),
    ("E0302", "施工扬尘", "Construction dust"),
    ("E0303", "道路开挖", "Road excavation"),
    ("E0304", "施工噪声", "Construction noise"),
    ("E0401", "占道经营", "Street stall (occupying the road)"),
    ("E0402", "乱设摊", "Unlicensed street vending"),
    ("E0403", "无照经营", "Unlicensed business"),
    ("E0501", "道路积水", "Waterlogging"),
    ("E0502", "道路塌陷", "Road collapse"),
    ("E0503", "井盖移位", "Manhole cover displaced"),
    ("E0504", "路灯故障", "Street lamp fault"),
    ("E0601", "噪声扰民", "Noise nuisance"),
    ("E0602", "其他事件", "Other event"),
];

impl Catalogue {
    /// The built-in catalogue.
    pub fn builtin() -> Self {
        let mut catalogue = Self::default();
        for (code, zh, en) in BUILTIN {
            // The built-in codes are constants checked by a test, so this cannot fail.
            if let Ok(category) = Category::new(code, zh, en) {
                catalogue.insert(category);
            }
        }
        catalogue
    }

    /// Adds or replaces a category.
    pub fn insert(&mut self, category: Category) {
        self.by_code.insert(category.code.clone(), category);
    }

    pub fn get(&self, code: &str) -> Result<&Category, CategoryError> {
        self.by_code
            .get(code)
            .ok_or_else(|| CategoryError::Unknown(code.to_string()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Category> {
        self.by_code.values()
    }
}

impl Category {
    pub fn new(code: &str, name_zh: &str, name_en: &str) -> Result<Self, CategoryError> {
        let (class, major, minor) = parse_code(code)?;
        Ok(Self {
            code: code.to_string(),
            class,
            major,
            minor,
            name_zh: name_zh.to_string(),
            name_en: name_en.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_codes_all_parse() {
        let catalogue = Catalogue::builtin();
        assert_eq!(catalogue.iter().count(), BUILTIN.len());
        let c = catalogue.get("E0501").unwrap();
        assert_eq!((c.class, c.major, c.minor), (CategoryClass::Event, 5, 1));
        assert_eq!(c.name_zh, "道路积水");
    }

    #[test]
    fn bad_codes_are_refused() {
        for bad in ["", "X0101", "C010", "C01011", "C0a01", "C0001", "E0100"] {
            assert!(parse_code(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Catalogue::builtin().get("E9999"),
            Err(CategoryError::Unknown(_))
        ));
    }
}
