//! The category catalogue of managed components (部件) and events (事件), coded after GB/T 30428.2.
//!
//! A code is the class letter (`C` component, `E` event), the two-digit major class and the two-digit
//! minor class, e.g. `C0101` (public facilities / manhole cover). Case numbers start with this code.
//! Every category carries its name in Chinese (the users' language) and in English, the department that
//! handles it by default, its time limits per workflow stage and the clock they run on (working time,
//! or 24 hours for emergencies). Cities change and extend the built-in list from configuration.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::sla::{ClockKind, SlaStage};

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
    /// The department cases of this category go to unless a component's owner or the grid says otherwise.
    pub department: String,
    /// Emergencies run on a 24-hour clock; everything else on working time.
    pub clock: ClockKind,
    pub limits: StageLimits,
}

/// Time limits of the workflow stages in minutes (of the category's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StageLimits {
    pub acceptance: u32,
    pub verification: u32,
    pub registration: u32,
    pub dispatch: u32,
    pub handling: u32,
    pub check: u32,
    pub closing: u32,
    pub callback: u32,
}

impl Default for StageLimits {
    /// Typical limits: 30 minutes for the centre's own steps and for verification and check on site
    /// (DOMAIN: "verify/check limits are typically 30 minutes"), one working day for handling.
    fn default() -> Self {
        Self {
            acceptance: 30,
            verification: 30,
            registration: 30,
            dispatch: 30,
            handling: 480,
            check: 30,
            closing: 60,
            callback: 1440,
        }
    }
}

impl StageLimits {
    pub fn for_stage(&self, stage: SlaStage) -> u32 {
        match stage {
            SlaStage::Acceptance => self.acceptance,
            SlaStage::Verification => self.verification,
            SlaStage::Registration => self.registration,
            SlaStage::Dispatch => self.dispatch,
            SlaStage::Handling => self.handling,
            SlaStage::Check => self.check,
            SlaStage::Closing => self.closing,
            SlaStage::Callback => self.callback,
        }
    }
}

/// A category as written in the configuration (`[[categories]]`): a new one, or changes to a built-in one
/// (fields left out keep the built-in values).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    pub code: String,
    #[serde(default)]
    pub name_zh: Option<String>,
    #[serde(default)]
    pub name_en: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub clock: Option<ClockKind>,
    /// Handling limit in minutes (the limit that differs most between categories).
    #[serde(default)]
    pub handling_minutes: Option<u32>,
    /// Every stage limit at once.
    #[serde(default)]
    pub limits: Option<StageLimits>,
}

/// Why a category code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryError {
    #[error("category code {0:?} is not C or E followed by four digits (e.g. C0101)")]
    BadCode(String),
    #[error("category code {0:?} is not in the catalogue")]
    Unknown(String),
    #[error("category {code}: {problem}")]
    Invalid { code: String, problem: String },
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

/// How a built-in subclass is handled: department, clock, handling limit in minutes.
type Handling = (&'static str, ClockKind, u32);

const EMERGENCY_2H: Handling = ("municipal", ClockKind::Continuous24h, 120);
const WORKING: ClockKind = ClockKind::WorkingTime;

/// Built-in subclasses: (code, 中文名, English name, handling). Cities extend this list from configuration.
/// Handling limits follow common practice: 2 hours around the clock for hazards (open manhole, road
/// collapse, waterlogging), half a working day for litter and street order, days for facilities.
const BUILTIN: &[(&str, &str, &str, Handling)] = &[
    ("C0101", "井盖", "Manhole cover", EMERGENCY_2H),
    ("C0102", "路灯", "Street lamp", ("lighting", WORKING, 1440)),
    ("C0103", "消防栓", "Fire hydrant", ("water", WORKING, 480)),
    (
        "C0104",
        "电力设施",
        "Power facility",
        ("municipal", WORKING, 1440),
    ),
    (
        "C0201",
        "交通信号灯",
        "Traffic light",
        ("municipal", WORKING, 480),
    ),
    (
        "C0202",
        "交通标志牌",
        "Traffic sign",
        ("municipal", WORKING, 1440),
    ),
    ("C0203", "护栏", "Guardrail", ("municipal", WORKING, 1440)),
    (
        "C0204",
        "公交站亭",
        "Bus shelter",
        ("municipal", WORKING, 1440),
    ),
    (
        "C0301",
        "垃圾箱",
        "Litter bin",
        ("sanitation", WORKING, 480),
    ),
    (
        "C0302",
        "公共厕所",
        "Public toilet",
        ("sanitation", WORKING, 480),
    ),
    (
        "C0401",
        "行道树",
        "Street tree",
        ("landscaping", WORKING, 1440),
    ),
    (
        "C0402",
        "绿地",
        "Green space",
        ("landscaping", WORKING, 1440),
    ),
    (
        "C0501",
        "其他部件",
        "Other component",
        ("municipal", WORKING, 1440),
    ),
    (
        "E0101",
        "暴露垃圾",
        "Exposed garbage",
        ("sanitation", WORKING, 240),
    ),
    (
        "E0102",
        "乱堆放",
        "Piled materials",
        ("enforcement", WORKING, 480),
    ),
    (
        "E0103",
        "垃圾满溢",
        "Overflowing bin",
        ("sanitation", WORKING, 240),
    ),
    (
        "E0104",
        "私搭乱建",
        "Illegal construction",
        ("enforcement", WORKING, 2400),
    ),
    (
        "E0105",
        "渣土撒漏",
        "Muck spilled on the road",
        ("sanitation", WORKING, 240),
    ),
    (
        "E0201",
        "非法小广告（乱张贴）",
        "Flyposting",
        ("sanitation", WORKING, 480),
    ),
    (
        "E0202",
        "违规户外广告",
        "Unauthorised outdoor advertising",
        ("enforcement", WORKING, 2400),
    ),
    (
        "E0301",
        "施工占道",
        "Road occupied by works",
        ("enforcement", WORKING, 480),
    ),
    (
        "E0302",
        "施工扬尘",
        "Construction dust",
        ("enforcement", WORKING, 240),
    ),
    (
        "E0303",
        "道路开挖",
        "Road excavation",
        ("municipal", WORKING, 480),
    ),
    (
        "E0304",
        "施工噪声",
        "Construction noise",
        ("enforcement", WORKING, 240),
    ),
    (
        "E0401",
        "占道经营（乱占道）",
        "Street stall occupying the road",
        ("enforcement", WORKING, 120),
    ),
    (
        "E0402",
        "乱设摊",
        "Unlicensed street vending",
        ("enforcement", WORKING, 120),
    ),
    (
        "E0403",
        "无照经营",
        "Unlicensed business",
        ("enforcement", WORKING, 1440),
    ),
    (
        "E0404",
        "店外经营",
        "Business spilling outside the shop",
        ("enforcement", WORKING, 240),
    ),
    (
        "E0501",
        "道路积水",
        "Waterlogging",
        ("water", ClockKind::Continuous24h, 120),
    ),
    ("E0502", "道路塌陷", "Road collapse", EMERGENCY_2H),
    ("E0503", "井盖移位", "Manhole cover displaced", EMERGENCY_2H),
    (
        "E0504",
        "路灯故障",
        "Street lamp fault",
        ("lighting", WORKING, 1440),
    ),
    (
        "E0601",
        "噪声扰民",
        "Noise nuisance",
        ("enforcement", WORKING, 240),
    ),
    (
        "E0602",
        "其他事件",
        "Other event",
        ("enforcement", WORKING, 1440),
    ),
];

impl Catalogue {
    /// The built-in catalogue.
    pub fn builtin() -> Self {
        let mut catalogue = Self::default();
        for (code, zh, en, (department, clock, handling)) in BUILTIN {
            // The built-in codes are constants checked by a test, so this cannot fail.
            if let Ok(mut category) = Category::new(code, zh, en) {
                category.department = department.to_string();
                category.clock = *clock;
                category.limits.handling = *handling;
                catalogue.insert(category);
            }
        }
        catalogue
    }

    /// The built-in catalogue with the configuration's changes and additions applied.
    pub fn with_config(configs: &[CategoryConfig]) -> Result<Self, CategoryError> {
        let mut catalogue = Self::builtin();
        for config in configs {
            let mut category = match catalogue.get(&config.code) {
                Ok(existing) => existing.clone(),
                Err(_) => {
                    parse_code(&config.code)?;
                    let invalid = |problem: &str| CategoryError::Invalid {
                        code: config.code.clone(),
                        problem: problem.into(),
                    };
                    let name_zh = config
                        .name_zh
                        .as_deref()
                        .ok_or_else(|| invalid("a new category needs name_zh"))?;
                    let name_en = config
                        .name_en
                        .as_deref()
                        .ok_or_else(|| invalid("a new category needs name_en"))?;
                    let department = config
                        .department
                        .as_deref()
                        .ok_or_else(|| invalid("a new category needs a department"))?;
                    let mut category = Category::new(&config.code, name_zh, name_en)?;
                    category.department = department.to_string();
                    category
                }
            };
            if let Some(v) = &config.name_zh {
                category.name_zh = v.clone();
            }
            if let Some(v) = &config.name_en {
                category.name_en = v.clone();
            }
            if let Some(v) = &config.department {
                category.department = v.clone();
            }
            if let Some(v) = config.clock {
                category.clock = v;
            }
            if let Some(v) = config.limits {
                category.limits = v;
            }
            if let Some(v) = config.handling_minutes {
                category.limits.handling = v;
            }
            category.validate()?;
            catalogue.insert(category);
        }
        Ok(catalogue)
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
    /// A category with the default department (`municipal`), working-time clock and default limits.
    pub fn new(code: &str, name_zh: &str, name_en: &str) -> Result<Self, CategoryError> {
        let (class, major, minor) = parse_code(code)?;
        Ok(Self {
            code: code.to_string(),
            class,
            major,
            minor,
            name_zh: name_zh.to_string(),
            name_en: name_en.to_string(),
            department: "municipal".to_string(),
            clock: ClockKind::WorkingTime,
            limits: StageLimits::default(),
        })
    }

    /// Names present, a department, and every limit at least one minute.
    pub fn validate(&self) -> Result<(), CategoryError> {
        let invalid = |problem: String| CategoryError::Invalid {
            code: self.code.clone(),
            problem,
        };
        if self.name_zh.trim().is_empty() || self.name_en.trim().is_empty() {
            return Err(invalid("names must not be empty".into()));
        }
        if self.department.trim().is_empty() {
            return Err(invalid("department must not be empty".into()));
        }
        for stage in SlaStage::ALL {
            if self.limits.for_stage(stage) == 0 {
                return Err(invalid(format!(
                    "the {} limit must be at least one minute",
                    stage.as_str()
                )));
            }
        }
        Ok(())
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
    fn builtin_categories_have_departments_clocks_and_limits() {
        let catalogue = Catalogue::builtin();
        assert!(catalogue.iter().count() >= 30);
        for category in catalogue.iter() {
            category.validate().unwrap();
        }
        let waterlogging = catalogue.get("E0501").unwrap();
        assert_eq!(waterlogging.department, "water");
        assert_eq!(waterlogging.clock, ClockKind::Continuous24h);
        assert_eq!(waterlogging.limits.handling, 120);
        assert_eq!(
            catalogue.get("E0504").unwrap().clock,
            ClockKind::WorkingTime
        );
    }

    #[test]
    fn configuration_changes_and_adds_categories() {
        let configs = [
            CategoryConfig {
                code: "E0501".into(),
                handling_minutes: Some(60),
                ..Default::default()
            },
            CategoryConfig {
                code: "E0605".into(),
                name_zh: Some("共享单车乱停放".into()),
                name_en: Some("Shared bikes parked in the way".into()),
                department: Some("enforcement".into()),
                ..Default::default()
            },
        ];
        let catalogue = Catalogue::with_config(&configs).unwrap();
        assert_eq!(catalogue.get("E0501").unwrap().limits.handling, 60);
        assert_eq!(
            catalogue.get("E0501").unwrap().department,
            "water",
            "unchanged fields stay"
        );
        assert_eq!(catalogue.get("E0605").unwrap().name_zh, "共享单车乱停放");
        let incomplete = [CategoryConfig {
            code: "E0606".into(),
            name_zh: Some("x".into()),
            ..Default::default()
        }];
        assert!(matches!(
            Catalogue::with_config(&incomplete),
            Err(CategoryError::Invalid { .. })
        ));
        let zero = [CategoryConfig {
            code: "E0501".into(),
            handling_minutes: Some(0),
            ..Default::default()
        }];
        assert!(Catalogue::with_config(&zero).is_err());
        let bad_code = [CategoryConfig {
            code: "Z0101".into(),
            ..Default::default()
        }];
        assert!(matches!(
            Catalogue::with_config(&bad_code),
            Err(CategoryError::BadCode(_))
        ));
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
