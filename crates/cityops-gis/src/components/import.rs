//! Importing the component ledger from GeoJSON (Point features) or CSV (a header row), record by record.
//!
//! Fields (CSV columns or GeoJSON properties): `id`, `category_code` (a component code of the catalogue
//! form, `C` + 4 digits), `name`, `state` (`in_service`, `damaged`, `missing`, `removed`, or 完好, 破损,
//! 丢失, 已拆除), `supervising_department`, `owning_department`, `maintaining_department`, and the
//! optional `installed_on` (`YYYY-MM-DD`). The position is the Point geometry in GeoJSON (a feature's
//! own `id` stands in for a missing `id` property) and the `lon`/`lat` columns in CSV, WGS-84 in both.
//! Values are trimmed; an empty value counts as missing. Extra columns or properties are ignored.
//!
//! A record that fails is rejected alone, with a [`RowError`] naming the line (CSV) or the feature
//! index (GeoJSON, from 0) and the field; a later record with an id already imported is rejected too.
//! Only a file that cannot be read at all (not JSON, no features, a header without a required column, a
//! quote never closed) is an [`ImportError`]. With a grid, every component gets its cell.

use chrono::NaiveDate;
use cityops_core::category::{CategoryClass, parse_code};
use cityops_core::geo::GeoError;
use cityops_core::{GeoPoint, GridPlace};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

use super::csv;
use super::{Component, ComponentState};
use crate::index::GridIndex;

/// Where a rejected record was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowRef {
    /// The 1-based line a CSV record starts on (the header is line 1).
    Line(usize),
    /// The 0-based index in the GeoJSON features array.
    Feature(usize),
}

impl fmt::Display for RowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowRef::Line(line) => write!(f, "line {line}"),
            RowRef::Feature(index) => write!(f, "feature {index}"),
        }
    }
}

/// Why one record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}{}: {problem}", field.map(|field| format!(", field {field:?}")).unwrap_or_default())]
pub struct RowError {
    pub at: RowRef,
    /// The field at fault; `None` when the record as a whole is (a wrong number of CSV fields).
    pub field: Option<&'static str>,
    pub problem: String,
}

/// Why a whole file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the component file is not JSON: {0}")]
    Json(String),
    #[error("the component file is not a GeoJSON FeatureCollection with a features array")]
    NotCollection,
    #[error("the CSV text has no header row")]
    NoHeader,
    #[error("the CSV header has no column {0:?}")]
    MissingColumn(&'static str),
    #[error("the CSV header names the column {0:?} twice")]
    DuplicateColumn(String),
    #[error("line {0}: a quoted CSV field is never closed")]
    UnclosedQuote(usize),
}

/// The components that passed and the records that did not.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ComponentImport {
    pub components: Vec<Component>,
    pub rejected: Vec<RowError>,
}

const REQUIRED: [&str; 9] = [
    "id",
    "category_code",
    "name",
    "lon",
    "lat",
    "state",
    "supervising_department",
    "owning_department",
    "maintaining_department",
];
const OPTIONAL: [&str; 1] = ["installed_on"];

/// Reads a CSV ledger whose header names at least the required columns (in any order and case).
pub fn import_components_csv(
    text: &str,
    grid: Option<&GridIndex>,
) -> Result<ComponentImport, ImportError> {
    let records = csv::parse(text).map_err(|unclosed| ImportError::UnclosedQuote(unclosed.line))?;
    let (header, rows) = records.split_first().ok_or(ImportError::NoHeader)?;
    let mut columns: HashMap<&'static str, usize> = HashMap::new();
    for (index, name) in header.fields.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        let Some(known) = REQUIRED
            .iter()
            .chain(&OPTIONAL)
            .find(|known| **known == name)
        else {
            continue;
        };
        if columns.insert(known, index).is_some() {
            return Err(ImportError::DuplicateColumn(name));
        }
    }
    if let Some(missing) = REQUIRED.iter().find(|name| !columns.contains_key(*name)) {
        return Err(ImportError::MissingColumn(missing));
    }
    let mut import = Importer::new(grid);
    for row in rows {
        let at = RowRef::Line(row.line);
        if let Some(problem) = &row.problem {
            import.reject(at, None, problem.clone());
            continue;
        }
        if row.fields.len() != header.fields.len() {
            let problem = format!(
                "has {} fields, the header has {}",
                row.fields.len(),
                header.fields.len()
            );
            import.reject(at, None, problem);
            continue;
        }
        let get = |field: &str| {
            let value = columns.get(field).map(|&index| row.fields[index].trim());
            Ok(value.filter(|value| !value.is_empty()))
        };
        let position = number(&get, "lon")
            .and_then(|lon| Ok((lon, number(&get, "lat")?)))
            .and_then(|(lon, lat)| checked_point(lon, lat));
        import.record(at, &get, position);
    }
    Ok(import.finish())
}

/// Reads a GeoJSON FeatureCollection of Point features.
pub fn import_components_geojson(
    text: &str,
    grid: Option<&GridIndex>,
) -> Result<ComponentImport, ImportError> {
    let root: Value =
        serde_json::from_str(text).map_err(|error| ImportError::Json(error.to_string()))?;
    let features = match (&root["type"], root["features"].as_array()) {
        (Value::String(kind), Some(features)) if kind == "FeatureCollection" => features,
        _ => return Err(ImportError::NotCollection),
    };
    let mut import = Importer::new(grid);
    for (index, feature) in features.iter().enumerate() {
        let fields = feature_fields(feature);
        let get = |field: &'static str| match fields.get(field) {
            None => Ok(None),
            Some(Ok(text)) => Ok(Some(text.as_str())),
            Some(Err(problem)) => Err((field, problem.clone())),
        };
        let position = point_of(&feature["geometry"]);
        import.record(RowRef::Feature(index), &get, position);
    }
    Ok(import.finish())
}

/// The known properties of a feature as text (numbers in their JSON form, so an integer id is fine);
/// absent, null and blank ones left out; other JSON types an error for their field.
fn feature_fields(feature: &Value) -> HashMap<&'static str, Result<String, String>> {
    let mut fields = HashMap::new();
    for field in REQUIRED.iter().chain(&OPTIONAL) {
        let value = match (&feature["properties"][*field], *field) {
            (Value::Null, "id") => &feature["id"],
            (value, _) => value,
        };
        let text = match value {
            Value::Null => continue,
            Value::String(text) if text.trim().is_empty() => continue,
            Value::String(text) => Ok(text.trim().to_string()),
            Value::Number(number) => Ok(number.to_string()),
            other => Err(format!("{other} is not a string")),
        };
        fields.insert(*field, text);
    }
    fields
}

type FieldResult<T> = Result<T, (&'static str, String)>;

fn point_of(geometry: &Value) -> FieldResult<GeoPoint> {
    let bad = |problem: &str| ("geometry", problem.to_string());
    if geometry["type"] != "Point" {
        return Err(bad("not a Point geometry"));
    }
    let lon = geometry["coordinates"][0].as_f64();
    let lat = geometry["coordinates"][1].as_f64();
    let (lon, lat) = lon
        .zip(lat)
        .ok_or_else(|| bad("the coordinates are not [longitude, latitude]"))?;
    checked_point(lon, lat)
}

/// A WGS-84 point, or the field at fault. (0, 0) is refused: it is what a missing position becomes.
fn checked_point(lon: f64, lat: f64) -> FieldResult<GeoPoint> {
    let point = GeoPoint::new(lon, lat).map_err(|error| match error {
        GeoError::Longitude(_) => ("lon", error.to_string()),
        GeoError::Latitude(_) => ("lat", error.to_string()),
    })?;
    if point.lon == 0.0 && point.lat == 0.0 {
        return Err((
            "lon",
            "0, 0 is no place in a city: a missing position".to_string(),
        ));
    }
    Ok(point)
}

fn number<'a>(
    get: &impl Fn(&'static str) -> FieldResult<Option<&'a str>>,
    field: &'static str,
) -> FieldResult<f64> {
    let text = get(field)?.ok_or((field, "missing".to_string()))?;
    text.parse::<f64>()
        .map_err(|_| (field, format!("{text:?} is not a number")))
}

/// Validates records one by one and collects the results.
struct Importer<'g> {
    grid: Option<&'g GridIndex>,
    done: ComponentImport,
    seen: HashMap<String, RowRef>,
}

impl<'g> Importer<'g> {
    fn new(grid: Option<&'g GridIndex>) -> Self {
        Self {
            grid,
            done: ComponentImport::default(),
            seen: HashMap::new(),
        }
    }

    fn reject(&mut self, at: RowRef, field: Option<&'static str>, problem: String) {
        self.done.rejected.push(RowError { at, field, problem });
    }

    fn record<'a>(
        &mut self,
        at: RowRef,
        get: &impl Fn(&'static str) -> FieldResult<Option<&'a str>>,
        position: FieldResult<GeoPoint>,
    ) {
        match self.validate(get, position) {
            Ok(component) => {
                if let Some(first) = self.seen.get(&component.id) {
                    let problem = format!("the id {:?} is already used at {first}", component.id);
                    self.reject(at, Some("id"), problem);
                } else {
                    self.seen.insert(component.id.clone(), at);
                    self.done.components.push(component);
                }
            }
            Err((field, problem)) => self.reject(at, Some(field), problem),
        }
    }

    fn validate<'a>(
        &self,
        get: &impl Fn(&'static str) -> FieldResult<Option<&'a str>>,
        position: FieldResult<GeoPoint>,
    ) -> FieldResult<Component> {
        let required = |field: &'static str| -> FieldResult<String> {
            get(field)?
                .map(str::to_string)
                .ok_or((field, "missing".to_string()))
        };
        let id = required("id")?;
        let category_code = required("category_code")?;
        match parse_code(&category_code) {
            Ok((CategoryClass::Component, _, _)) => {}
            Ok(_) => {
                let problem = format!("{category_code:?} is an event category, not a component");
                return Err(("category_code", problem));
            }
            Err(error) => return Err(("category_code", error.to_string())),
        }
        let name = required("name")?;
        let point = position?;
        let state_text = required("state")?;
        let state = ComponentState::parse(&state_text)
            .ok_or_else(|| ("state", format!("unknown state {state_text:?}")))?;
        let supervising_department = required("supervising_department")?;
        let owning_department = required("owning_department")?;
        let maintaining_department = required("maintaining_department")?;
        let installed_on = get("installed_on")?
            .map(|text| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map_err(|_| ("installed_on", format!("{text:?} is not a date YYYY-MM-DD")))
            })
            .transpose()?;
        let cell = self
            .grid
            .map(|grid| GridPlace::from(grid.locate_wgs84(point)));
        Ok(Component {
            id,
            category_code,
            name,
            lon: point.lon,
            lat: point.lat,
            cell,
            state,
            supervising_department,
            owning_department,
            maintaining_department,
            installed_on,
        })
    }

    fn finish(self) -> ComponentImport {
        self.done
    }
}
