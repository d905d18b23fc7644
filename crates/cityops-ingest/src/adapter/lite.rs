//! The JSON value the adapters read a body into: strings borrowed from the body where it has no
//! escapes, numbers as `f64`, objects as a small vector sorted by key.
//!
//! It reads exactly what `serde_json::Value` reads (the same parser, limits and errors) and keeps its
//! meaning where the adapters rely on it: an object's members come out in key order, and of a key
//! given twice the last value counts. What it saves is a `String` per key and string value and a
//! `BTreeMap` per object for every message: most of the work of reading a ~200-byte reading.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lite<'a> {
    Null,
    Bool(bool),
    /// Every JSON number, as `serde_json::Number::as_f64` gives it.
    Number(f64),
    String(Cow<'a, str>),
    Array(Vec<Lite<'a>>),
    Object(Object<'a>),
}

/// A JSON object: members sorted by key, each key once (the last value given).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Object<'a>(Vec<(Cow<'a, str>, Lite<'a>)>);

impl<'a> Object<'a> {
    fn from_members(mut members: Vec<(Cow<'a, str>, Lite<'a>)>) -> Self {
        // A stable sort keeps a repeated key's values in the order given; of each run the last
        // stays, as in `serde_json::Map`.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        // In place: of a run of one key, the kept (first) slot takes each later value in turn.
        members.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        Object(members)
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok()
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Lite<'a>> {
        self.position(key).map(|i| self.0.remove(i).1)
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    /// Members in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Lite<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a> IntoIterator for Object<'a> {
    type Item = (Cow<'a, str>, Lite<'a>);
    type IntoIter = std::vec::IntoIter<Self::Item>;

    /// Members in key order.
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Lite<'_> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Lite::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Lite::Number(n) => Some(*n),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Lite<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LiteVisitor)
    }
}

struct LiteVisitor;

impl<'de> Visitor<'de> for LiteVisitor {
    type Value = Lite<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Lite::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Lite::Number(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Lite::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Lite::Number(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Lite::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Lite::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Lite::String(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Lite::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Lite::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Deserialize::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Lite::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            members.push((key.0, map.next_value()?));
        }
        Ok(Lite::Object(Object::from_members(members)))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The same body read both ways: the same value, or both an error with the same message.
    fn same_as_serde_json(body: &str) {
        let lite = serde_json::from_str::<Lite>(body);
        let value = serde_json::from_str::<serde_json::Value>(body);
        match (lite, value) {
            (Ok(lite), Ok(value)) => assert_eq!(lite, from_value(&value), "{body}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{body}"),
            (a, b) => panic!("{body}: lite {a:?}, serde_json {b:?}"),
        }
    }

    fn from_value(v: &serde_json::Value) -> Lite<'static> {
        match v {
            serde_json::Value::Null => Lite::Null,
            serde_json::Value::Bool(b) => Lite::Bool(*b),
            serde_json::Value::Number(n) => Lite::Number(n.as_f64().unwrap()),
            serde_json::Value::String(s) => Lite::String(Cow::Owned(s.clone())),
            serde_json::Value::Array(a) => Lite::Array(a.iter().map(from_value).collect()),
            // serde_json's map is ordered by key and keeps a repeated key's last value.
            serde_json::Value::Object(m) => Lite::Object(Object(
                m.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), from_value(v)))
                    .collect(),
            )),
        }
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for body in [
            r#"{"b": 1, "a": [true, null, "x"], "c": {"z": -2.5, "y": 1e3}}"#,
            r#"{"k": 1, "k": 2, "a": 0, "k": 3}"#,
            r#"[{"n":"tilt","v":32.5,"bn":"urn:dev:mac:0024befffe804ff1:"}]"#,
            r#"{"esc\"aped": "a\u00e9b\n", "plain": "ok"}"#,
            r#"{"big": 18446744073709551615, "neg": -9223372036854775808, "f": 0.1}"#,
            r#"{"huge": 1e400}"#,
            r#"{"nan": NaN}"#,
            r#"{"trailing": 1,}"#,
            r#"[1, 2"#,
            "",
            "null",
            r#""just a string""#,
        ] {
            same_as_serde_json(body);
        }
    }

    #[test]
    fn a_deep_nesting_is_refused_as_serde_json_refuses_it() {
        same_as_serde_json(&format!("{}{}", "[".repeat(200), "]".repeat(200)));
    }

    proptest! {
        #[test]
        fn any_json_value_reads_the_same(value in any_json()) {
            same_as_serde_json(&value.to_string());
        }
    }

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e300f64..1e300).prop_map(serde_json::Value::from),
            "[a-z\"\\\\é\n]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::vec(("[a-c\"é]{0,3}", inner), 0..6).prop_map(|members| {
                    serde_json::Value::Object(members.into_iter().collect())
                }),
            ]
        })
    }
}
