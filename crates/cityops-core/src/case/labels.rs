//! One declaration per workflow enum: its variants with their API name, Chinese and English labels.
//!
//! The API name is also the serde name (snake_case), so JSON, URLs, logs and configuration all spell a
//! variant the same way, and a test per enum checks that `parse(as_str(x)) == x`.

/// Declares a fieldless enum with `ALL`, `as_str`, `parse`, `label_zh`, `label_en` and `Display`.
macro_rules! labelled_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident => ($api:literal, $zh:literal, $en:literal),
            )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $(
                $(#[$variant_meta])*
                #[serde(rename = $api)]
                $variant,
            )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case name used by the API, in JSON and in configuration.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $api,)+
                }
            }

            /// The variant with this API name.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($api => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The name the users see (简体中文).
            pub fn label_zh(self) -> &'static str {
                match self {
                    $($name::$variant => $zh,)+
                }
            }

            pub fn label_en(self) -> &'static str {
                match self {
                    $($name::$variant => $en,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use labelled_enum;

/// Checks the contract of a labelled enum: serde and `as_str` agree, names and labels are unique.
#[cfg(test)]
macro_rules! assert_labelled_enum {
    ($name:ident) => {{
        let mut names = std::collections::BTreeSet::new();
        let mut zh = std::collections::BTreeSet::new();
        for &value in $name::ALL {
            assert_eq!(
                serde_json::to_string(&value).unwrap(),
                format!("\"{}\"", value.as_str())
            );
            assert_eq!(
                serde_json::from_str::<$name>(&format!("\"{value}\"")).unwrap(),
                value
            );
            assert_eq!($name::parse(value.as_str()), Some(value));
            assert!(names.insert(value.as_str()), "duplicate name {value}");
            assert!(
                zh.insert(value.label_zh()),
                "duplicate label {}",
                value.label_zh()
            );
            assert!(!value.label_en().is_empty());
        }
        assert_eq!($name::parse("no_such_name"), None);
    }};
}

#[cfg(test)]
pub(crate) use assert_labelled_enum;
