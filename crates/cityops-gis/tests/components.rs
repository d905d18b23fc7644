//! The components registry: CSV and GeoJSON import with per-record rejection, and nearest by category.

mod common;

use chrono::NaiveDate;
use cityops_core::{GeoPoint, GridPlace};
use cityops_gis::components::{
    ImportError, RowError, RowRef, import_components_csv, import_components_geojson,
};
use cityops_gis::{
    Component, ComponentRegistry, ComponentState, Datum, GridIndex, GridOptions, generate_grid,
};
use common::{offset, point_strategy};
use geo::{Coord, MultiPolygon, Rect};
use proptest::prelude::*;

const HEADER: &str = "ID,Category_Code,name,lon,lat,state,supervising_department,owning_department,maintaining_department,installed_on,remark";

fn rejected_at(rejected: &[RowError]) -> Vec<(RowRef, Option<&'static str>)> {
    rejected.iter().map(|r| (r.at, r.field)).collect()
}

#[test]
fn csv_import_keeps_the_good_rows_and_names_each_bad_one() {
    let text = format!(
        "{HEADER}\r\n\
         L1,C0102,\"路灯, 东四北大街 12 号\",116.4005,39.9005,in_service,城管委,区路灯管理所,路灯养护公司,2019-04-11,ok\r\n\
         L2,C0102,路灯,116.4010,39.9005,破损,城管委,区路灯管理所,路灯养护公司,,\r\n\
         M1,E0101,井盖,116.40,39.90,in_service,a,b,c,,\r\n\
         M2,C0101,,116.40,39.90,in_service,a,b,c,,\r\n\
         M3,C0101,井盖,116.40,91.5,in_service,a,b,c,,\r\n\
         M4,C0101,井盖,abc,39.90,in_service,a,b,c,,\r\n\
         M5,C0101,井盖,116.40,39.90,broken,a,b,c,,\r\n\
         M6,C0101,井盖,116.40,39.90,missing,a,b,c,2019-13-01,\r\n\
         L1,C0101,井盖,116.40,39.90,missing,a,b,c,,\r\n\
         M7,C0101,井盖,116.40,39.90,missing,a,b,c\r\n\
         M8,C0101,\"井盖\n(两行)\",116.40,39.90,removed,a,b,c,,\r\n\
         M9,C0101,井盖,116.40,39.90,removed,  ,b,c,,\r\n\
         X1,C01,井盖,116.40,39.90,removed,a,b,c,,\r\n\
         \"M10\"x,C0101,井盖,116.40,39.90,removed,a,b,c,,\r\n\
         M11,C0101,井盖,0,0,removed,a,b,c,,\r\n"
    );
    let import = import_components_csv(&text, None).unwrap();
    let ids: Vec<&str> = import.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["L1", "L2", "M8"]);
    assert_eq!(
        import.components[0],
        Component {
            id: "L1".into(),
            category_code: "C0102".into(),
            name: "路灯, 东四北大街 12 号".into(),
            lon: 116.4005,
            lat: 39.9005,
            cell: None,
            state: ComponentState::InService,
            supervising_department: "城管委".into(),
            owning_department: "区路灯管理所".into(),
            maintaining_department: "路灯养护公司".into(),
            installed_on: NaiveDate::from_ymd_opt(2019, 4, 11),
        }
    );
    assert_eq!(import.components[1].state, ComponentState::Damaged);
    assert_eq!(import.components[1].installed_on, None);
    assert_eq!(import.components[2].name, "井盖\n(两行)");
    use RowRef::Line;
    assert_eq!(
        rejected_at(&import.rejected),
        [
            (Line(4), Some("category_code")),
            (Line(5), Some("name")),
            (Line(6), Some("lat")),
            (Line(7), Some("lon")),
            (Line(8), Some("state")),
            (Line(9), Some("installed_on")),
            (Line(10), Some("id")),
            (Line(11), None),
            (Line(14), Some("supervising_department")),
            (Line(15), Some("category_code")),
            (Line(16), None),
            (Line(17), Some("lon")),
        ]
    );
    let messages: Vec<String> = import.rejected.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages[0],
        "line 4, field \"category_code\": \"E0101\" is an event category, not a component"
    );
    assert_eq!(
        messages[2],
        "line 6, field \"lat\": latitude 91.5 is outside -90..=90 or not a number"
    );
    assert_eq!(
        messages[6],
        "line 10, field \"id\": the id \"L1\" is already used at line 2"
    );
    assert_eq!(messages[7], "line 11: has 9 fields, the header has 11");
}

#[test]
fn csv_files_that_cannot_be_read_at_all() {
    assert_eq!(import_components_csv("", None), Err(ImportError::NoHeader));
    assert_eq!(
        import_components_csv("\u{feff}\n\n", None),
        Err(ImportError::NoHeader)
    );
    let no_state = "id,category_code,name,lon,lat,supervising_department,owning_department,maintaining_department\n";
    assert_eq!(
        import_components_csv(no_state, None),
        Err(ImportError::MissingColumn("state"))
    );
    let twice = format!("{HEADER},LON\n");
    assert_eq!(
        import_components_csv(&twice, None),
        Err(ImportError::DuplicateColumn("lon".into()))
    );
    let unclosed = format!("{HEADER}\nL1,C0102,\"路灯,116.4,39.9,in_service,a,b,c,,\nL2\n");
    assert_eq!(
        import_components_csv(&unclosed, None),
        Err(ImportError::UnclosedQuote(2))
    );
    // A header alone is an empty ledger, not an error; installed_on may be left out.
    let bare = "id,category_code,name,lon,lat,state,supervising_department,owning_department,maintaining_department";
    let import = import_components_csv(bare, None).unwrap();
    assert!(import.components.is_empty() && import.rejected.is_empty());
}

fn point_feature(properties: &str, lon: f64, lat: f64) -> String {
    format!(
        r#"{{"type": "Feature", "properties": {properties}, "geometry": {{"type": "Point", "coordinates": [{lon}, {lat}]}}}}"#
    )
}

const DEPARTMENTS: &str = r#""supervising_department": "城管委", "owning_department": "自来水集团", "maintaining_department": "管网养护""#;

#[test]
fn geojson_import_keeps_the_good_features_and_names_each_bad_one() {
    let props = |rest: &str| format!("{{{rest}, {DEPARTMENTS}}}");
    let features = [
        format!(
            r#"{{"type": "Feature", "id": 17, "properties": {}, "geometry": {{"type": "Point", "coordinates": [116.4, 39.9]}}}}"#,
            props(r#""category_code": "C0102", "name": "路灯", "state": "in_service""#)
        ),
        format!(
            r#"{{"type": "Feature", "properties": {}, "geometry": {{"type": "LineString", "coordinates": [[116.4, 39.9], [116.5, 39.9]]}}}}"#,
            props(r#""id": "p1", "category_code": "C0104", "name": "电缆", "state": "in_service""#)
        ),
        point_feature(
            r#"{"id": "h2", "category_code": "C0103", "name": "消防栓", "state": "in_service", "supervising_department": "消防", "owning_department": true, "maintaining_department": "x"}"#,
            116.4,
            39.9,
        ),
        format!(
            r#"{{"type": "Feature", "properties": {}}}"#,
            props(r#""id": "h3", "category_code": "C0103", "name": "消防栓", "state": "damaged""#)
        ),
        point_feature(
            &props(
                r#""id": "h4", "category_code": "C0103", "name": "消防栓", "state": "missing", "installed_on": "2021-06-30""#,
            ),
            116.41,
            39.91,
        ),
        point_feature(
            &props(r#""id": "h5", "category_code": "C0103", "name": "消防栓", "state": "missing""#),
            0.0,
            0.0,
        ),
    ];
    let text = format!(
        r#"{{"type": "FeatureCollection", "features": [{}]}}"#,
        features.join(",")
    );
    let import = import_components_geojson(&text, None).unwrap();
    let ids: Vec<&str> = import.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["17", "h4"]);
    assert_eq!(
        import.components[1].installed_on,
        NaiveDate::from_ymd_opt(2021, 6, 30)
    );
    assert_eq!(import.components[1].owning_department, "自来水集团");
    use RowRef::Feature;
    assert_eq!(
        rejected_at(&import.rejected),
        [
            (Feature(1), Some("geometry")),
            (Feature(2), Some("owning_department")),
            (Feature(3), Some("geometry")),
            (Feature(5), Some("lon")),
        ]
    );
    assert_eq!(
        import.rejected[1].to_string(),
        "feature 2, field \"owning_department\": true is not a string"
    );
    assert!(matches!(
        import_components_geojson("[", None),
        Err(ImportError::Json(_))
    ));
    assert_eq!(
        import_components_geojson("{}", None),
        Err(ImportError::NotCollection)
    );
}

#[test]
fn with_a_grid_every_component_gets_its_cell() {
    let (west, south) = (116.40, 39.90);
    let rectangle = MultiPolygon::new(vec![
        Rect::new(
            Coord { x: west, y: south },
            Coord {
                x: west + 0.0012,
                y: south + 0.0009,
            },
        )
        .to_polygon(),
    ]);
    let options = GridOptions {
        streets: 1,
        communities_per_street: 1,
        datum: Datum::Wgs84,
        ..GridOptions::default()
    };
    let grid = GridIndex::new(&generate_grid(&rectangle, &options).unwrap());
    let text = format!(
        "{HEADER}\nL1,C0102,路灯,116.4001,39.9001,in_service,a,b,c,,\nL2,C0102,路灯,116.5,39.9,in_service,a,b,c,,\n"
    );
    let import = import_components_csv(&text, Some(&grid)).unwrap();
    assert!(matches!(
        import.components[0].cell,
        Some(GridPlace::Inside { .. })
    ));
    assert_eq!(import.components[1].cell, Some(GridPlace::Outside));
}

fn component(id: &str, category: &str, east_m: f64, state: ComponentState) -> Component {
    let p = offset(east_m, 0.0);
    Component {
        id: id.into(),
        category_code: category.into(),
        name: "部件".into(),
        lon: p.lon,
        lat: p.lat,
        cell: None,
        state,
        supervising_department: "s".into(),
        owning_department: format!("owner of {id}"),
        maintaining_department: "m".into(),
        installed_on: None,
    }
}

#[test]
fn nearest_component_of_a_category() {
    use ComponentState::*;
    let mut registry = ComponentRegistry::new([
        component("L1", "C0102", 0.0, InService),
        component("L2", "C0102", 100.0, Damaged),
        component("L3", "C0102", 6.0, Removed),
        component("M1", "C0101", 5.0, Missing),
    ]);
    let nearest = |registry: &ComponentRegistry, category: &str, east_m: f64, max: f64| {
        registry
            .nearest(category, offset(east_m, 0.0), max)
            .map(|found| {
                (
                    found.component.id.clone(),
                    (found.distance_m * 10.0).round() / 10.0,
                )
            })
    };
    assert_eq!(
        nearest(&registry, "C0102", 60.0, f64::INFINITY),
        Some(("L2".into(), 40.0))
    );
    // The removed lamp at 6 m is no longer in the street; the manhole is another category.
    assert_eq!(
        nearest(&registry, "C0102", 6.0, f64::INFINITY),
        Some(("L1".into(), 6.0))
    );
    assert_eq!(
        nearest(&registry, "C0101", 6.0, f64::INFINITY),
        Some(("M1".into(), 1.0))
    );
    assert_eq!(nearest(&registry, "C0102", 1000.0, 50.0), None);
    assert_eq!(nearest(&registry, "C0301", 0.0, f64::INFINITY), None);
    let found = registry.nearest("C0102", offset(90.0, 0.0), 50.0).unwrap();
    assert_eq!(found.component.owning_department, "owner of L2");

    // A re-import replaces by id and moves the lamp.
    let old = registry
        .insert(component("L2", "C0102", 500.0, InService))
        .unwrap();
    assert_eq!(old.state, Damaged);
    assert_eq!(registry.len(), 4);
    assert_eq!(
        nearest(&registry, "C0102", 60.0, f64::INFINITY),
        Some(("L1".into(), 60.0))
    );
    // And it may change category.
    registry.insert(component("L2", "C0301", 500.0, InService));
    assert_eq!(
        nearest(&registry, "C0102", 600.0, f64::INFINITY),
        Some(("L1".into(), 600.0))
    );
    assert_eq!(
        nearest(&registry, "C0301", 600.0, f64::INFINITY),
        Some(("L2".into(), 100.0))
    );
    assert_eq!(registry.get("L2").unwrap().category_code, "C0301");

    // Equal distances go to the lower id.
    let tied = ComponentRegistry::new([
        component("T-b", "C0102", 10.0, InService),
        component("T-a", "C0102", -10.0, InService),
    ]);
    assert_eq!(
        nearest(&tied, "C0102", 0.0, f64::INFINITY).unwrap().0,
        "T-a"
    );
}

#[test]
fn states_read_in_either_language() {
    for state in [
        ComponentState::InService,
        ComponentState::Damaged,
        ComponentState::Missing,
        ComponentState::Removed,
    ] {
        assert_eq!(ComponentState::parse(state.as_str()), Some(state));
        assert_eq!(ComponentState::parse(state.label_zh()), Some(state));
        assert_eq!(
            serde_json::to_string(&state).unwrap(),
            format!("\"{}\"", state.as_str())
        );
    }
    assert_eq!(ComponentState::parse("broken"), None);
}

/// A registry built at once (bulk-loaded trees) answers as one built a component at a time, and a
/// later component with an earlier one's id replaces it there too, category and place included.
#[test]
fn a_registry_built_at_once_answers_as_one_built_by_insertions() {
    use ComponentState::*;
    // Spread over a kilometre east, in a scrambled order.
    let spread = |i: usize| (i * 37 % 1000) as f64;
    let mut all: Vec<Component> = (0..300)
        .map(|i| {
            let category = if i % 3 == 0 { "C0101" } else { "C0102" };
            let state = if i % 7 == 0 { Removed } else { InService };
            component(&format!("K{i:03}"), category, spread(i), state)
        })
        .collect();
    // K010 moves far east and becomes a C0301; K020 is re-imported in place, now removed.
    all.push(component("K010", "C0301", 5000.0, InService));
    all.push(component("K020", "C0102", spread(20), Removed));
    let at_once = ComponentRegistry::new(all.clone());
    let mut one_by_one = ComponentRegistry::default();
    for c in all {
        one_by_one.insert(c);
    }
    assert_eq!(at_once.len(), 300);
    assert_eq!(at_once.get("K010").unwrap().category_code, "C0301");
    assert_eq!(at_once.get("K020").unwrap().state, Removed);
    assert!(
        at_once
            .iter()
            .map(|c| &c.id)
            .eq(one_by_one.iter().map(|c| &c.id))
    );
    for category in ["C0101", "C0102", "C0301", "C0999"] {
        for east_m in (-100..1200).step_by(13).chain([5000]) {
            let found = |registry: &ComponentRegistry| {
                registry
                    .nearest(category, offset(east_m as f64, 3.0), f64::INFINITY)
                    .map(|found| (found.component.id.clone(), found.distance_m))
            };
            assert_eq!(
                found(&at_once),
                found(&one_by_one),
                "{category} at {east_m} m"
            );
        }
    }
    assert_eq!(
        at_once
            .nearest("C0301", offset(4990.0, 0.0), 50.0)
            .map(|found| found.component.id.as_str()),
        Some("K010")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The registry answers as a scan of every component does, built at once or re-imported one by
    /// one, wherever the components and the query are.
    #[test]
    fn nearest_component_equals_a_scan(
        first in prop::collection::vec((point_strategy(), 0usize..2, 0usize..4), 0..80),
        later in prop::collection::vec((0usize..100, point_strategy(), 0usize..2, 0usize..4), 0..30),
        query in point_strategy(),
        category in 0usize..2,
        max_km in prop_oneof![Just(f64::INFINITY), 0.1f64..20_000.0],
    ) {
        let categories = ["C0101", "C0102"];
        let states = [
            ComponentState::InService,
            ComponentState::Damaged,
            ComponentState::Missing,
            ComponentState::Removed,
        ];
        let make = |id: String, point: GeoPoint, category: usize, state: usize| Component {
            lon: point.lon,
            lat: point.lat,
            ..component(&id, categories[category], 0.0, states[state])
        };
        let mut registry = ComponentRegistry::new(
            first.iter().enumerate().map(|(i, &(p, c, s))| make(format!("P{i:03}"), p, c, s)),
        );
        for &(i, p, c, s) in &later {
            registry.insert(make(format!("P{i:03}"), p, c, s));
        }
        let max_m = max_km * 1000.0;
        let expected = registry
            .iter()
            .filter(|c| c.category_code == categories[category] && c.state != ComponentState::Removed)
            .map(|c| (query.distance_m(&c.point()), c.id.clone()))
            .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
            .filter(|(distance, _)| *distance <= max_m);
        let found = registry
            .nearest(categories[category], query, max_m)
            .map(|found| (found.distance_m, found.component.id.clone()));
        prop_assert_eq!(found, expected);
    }
}
