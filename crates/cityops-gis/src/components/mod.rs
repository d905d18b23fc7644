//! The components registry (部件): manhole covers, street lamps, hydrants, bins, with their departments.
//!
//! A case filed on a component (a `C…` category) goes to the component's owning department (权属单位),
//! so the platform must know which component the report is about: the nearest one of that category
//! to the reported point. Components come from the city's ledger as GeoJSON or CSV ([`import`]), where
//! every record is validated on its own and a bad one is rejected with the line or feature and the
//! field, without losing the good ones. The [`ComponentRegistry`] keeps one R-tree per category (points
//! on the plane of the `sphere` module, so "nearest" is by exact great-circle distance) and ignores
//! removed components when searching.

mod csv;
pub mod import;

pub use import::{
    ComponentImport, ImportError, RowError, RowRef, import_components_csv,
    import_components_geojson,
};

use chrono::NaiveDate;
use cityops_core::{GeoPoint, GridPlace};
use rstar::RTree;
use rstar::primitives::GeomWithData;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::sphere::{Plane, nearest_on_plane, unit_vector};

/// The life state of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    InService,
    Damaged,
    Missing,
    /// Taken out of the street: kept in the ledger, never the subject of a new case.
    Removed,
}

impl ComponentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentState::InService => "in_service",
            ComponentState::Damaged => "damaged",
            ComponentState::Missing => "missing",
            ComponentState::Removed => "removed",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            ComponentState::InService => "完好",
            ComponentState::Damaged => "破损",
            ComponentState::Missing => "丢失",
            ComponentState::Removed => "已拆除",
        }
    }

    /// The wire name or the Chinese label (ledgers are written in either).
    pub fn parse(text: &str) -> Option<Self> {
        [
            ComponentState::InService,
            ComponentState::Damaged,
            ComponentState::Missing,
            ComponentState::Removed,
        ]
        .into_iter()
        .find(|state| text == state.as_str() || text == state.label_zh())
    }
}

/// One managed component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub id: String,
    /// A component category code such as `C0101` (manhole cover), `C0102` (street lamp).
    pub category_code: String,
    pub name: String,
    /// WGS-84.
    pub lon: f64,
    pub lat: f64,
    /// Its cell, when imported with a grid.
    pub cell: Option<GridPlace>,
    pub state: ComponentState,
    /// 主管部门.
    pub supervising_department: String,
    /// 权属单位: where a case on the component goes.
    pub owning_department: String,
    /// 养护单位.
    pub maintaining_department: String,
    pub installed_on: Option<NaiveDate>,
}

impl Component {
    pub fn point(&self) -> GeoPoint {
        GeoPoint {
            lon: self.lon,
            lat: self.lat,
        }
    }
}

/// A component found near a point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearestComponent<'a> {
    pub component: &'a Component,
    pub distance_m: f64,
}

/// Every component by id, and an R-tree per category for the nearest one.
#[derive(Debug, Clone, Default)]
pub struct ComponentRegistry {
    components: Vec<Component>,
    by_id: HashMap<String, usize>,
    /// The plane of the first component's point (see the `sphere` module).
    plane: Option<Plane>,
    /// By category: each component's slot at its point on the plane.
    trees: HashMap<String, RTree<GeomWithData<[f64; 2], u32>>>,
}

/// A slot as the trees carry it: four bytes are plenty, and the trees stay smaller.
fn tree_slot(slot: usize) -> u32 {
    u32::try_from(slot).expect("fewer than 2^32 components")
}

impl ComponentRegistry {
    /// A registry of `components` (a later one with the id of an earlier one replaces it, as
    /// [`ComponentRegistry::insert`] does). The trees are bulk-loaded: faster to build than one
    /// insertion at a time, and better packed for the nearest-component search.
    pub fn new(components: impl IntoIterator<Item = Component>) -> Self {
        let mut registry = Self::default();
        for component in components {
            match registry.by_id.get(&component.id) {
                Some(&slot) => registry.components[slot] = component,
                None => {
                    registry
                        .by_id
                        .insert(component.id.clone(), registry.components.len());
                    registry.components.push(component);
                }
            }
        }
        let Some(first) = registry.components.first() else {
            return registry;
        };
        let plane = Plane::at(first.point());
        registry.plane = Some(plane);
        let mut points: HashMap<&str, Vec<GeomWithData<[f64; 2], u32>>> = HashMap::new();
        for (slot, component) in registry.components.iter().enumerate() {
            points
                .entry(component.category_code.as_str())
                .or_default()
                .push(GeomWithData::new(
                    plane.project(&unit_vector(component.point())),
                    tree_slot(slot),
                ));
        }
        let trees = points
            .into_iter()
            .map(|(category, points)| (category.to_string(), RTree::bulk_load(points)))
            .collect();
        registry.trees = trees;
        registry
    }

    /// Adds a component, or replaces the one with the same id (returned).
    pub fn insert(&mut self, component: Component) -> Option<Component> {
        let plane = *self
            .plane
            .get_or_insert_with(|| Plane::at(component.point()));
        let key = |component: &Component| plane.project(&unit_vector(component.point()));
        let new_key = key(&component);
        let category = component.category_code.clone();
        match self.by_id.get(&component.id) {
            Some(&slot) => {
                let old = std::mem::replace(&mut self.components[slot], component);
                if let Some(tree) = self.trees.get_mut(&old.category_code) {
                    tree.remove(&GeomWithData::new(key(&old), tree_slot(slot)));
                }
                self.tree(category)
                    .insert(GeomWithData::new(new_key, tree_slot(slot)));
                Some(old)
            }
            None => {
                let slot = self.components.len();
                self.by_id.insert(component.id.clone(), slot);
                self.components.push(component);
                self.tree(category)
                    .insert(GeomWithData::new(new_key, tree_slot(slot)));
                None
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&Component> {
        self.by_id.get(id).map(|&slot| &self.components[slot])
    }

    /// All components, in the order they were first inserted.
    pub fn iter(&self) -> impl Iterator<Item = &Component> {
        self.components.iter()
    }

    pub fn len(&self) -> usize {
        self.components.len()
    }

    pub fn is_empty(&self) -> bool {
        self.components.is_empty()
    }

    /// The nearest component of `category_code` to `point` that is not removed, if one lies within
    /// `max_distance_m` (ties by id). Routing a case to the owner of a lamp 2 km away would be worse
    /// than asking the operator, hence the limit; pass `f64::INFINITY` for none.
    pub fn nearest(
        &self,
        category_code: &str,
        point: GeoPoint,
        max_distance_m: f64,
    ) -> Option<NearestComponent<'_>> {
        let tree = self.trees.get(category_code)?;
        let plane = self.plane.as_ref()?;
        let component = |slot: u32| &self.components[slot as usize];
        nearest_on_plane(tree, plane, unit_vector(point), 1, |slot| {
            let component = component(slot);
            (component.state != ComponentState::Removed).then(|| unit_vector(component.point()))
        })
        .into_iter()
        .map(|(_, slot)| {
            let component = component(slot);
            NearestComponent {
                component,
                distance_m: point.distance_m(&component.point()),
            }
        })
        .min_by(|a, b| {
            (a.distance_m.total_cmp(&b.distance_m))
                .then_with(|| a.component.id.cmp(&b.component.id))
        })
        .filter(|found| found.distance_m <= max_distance_m)
    }

    fn tree(&mut self, category: String) -> &mut RTree<GeomWithData<[f64; 2], u32>> {
        self.trees.entry(category).or_default()
    }
}
