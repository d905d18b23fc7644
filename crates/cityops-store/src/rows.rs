//! Mapping between rows and domain types.

use std::collections::BTreeMap;

use anyhow::Context as _;
use cityops_core::{Device, DeviceId, DeviceKind, Incident, IncidentState, UnixMillis, Value};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::db::Statements;
use crate::value_json;

/// The last value of one measurement of one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastValue {
    #[serde(skip)]
    pub device_id: DeviceId,
    pub name: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub time: UnixMillis,
}

/// A device with its registration facts and last values, as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRecord {
    #[serde(flatten)]
    pub device: Device,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grid: Option<cityops_core::GridPlace>,
    pub source: String,
    pub created_at: UnixMillis,
    pub last_values: Vec<LastValue>,
}

pub(crate) fn device_from_row(row: &AnyRow) -> anyhow::Result<Device> {
    let id: String = row.get("id");
    let kind: String = row.get("kind");
    Ok(Device {
        id: DeviceId::new(&id).with_context(|| format!("stored device id {id:?}"))?,
        kind: DeviceKind::new(&kind).with_context(|| format!("stored device kind {kind:?}"))?,
        lon: row.get("lon"),
        lat: row.get("lat"),
    })
}

pub(crate) async fn device_records(pool: &AnyPool) -> anyhow::Result<Vec<DeviceRecord>> {
    let rows =
        sqlx::query("SELECT id, kind, lon, lat, source, created_at, grid FROM devices ORDER BY id")
            .fetch_all(pool)
            .await?;
    let mut last: BTreeMap<String, Vec<LastValue>> = BTreeMap::new();
    for row in sqlx::query("SELECT device_id, name, value, unit, time FROM device_last_values ORDER BY device_id, name")
        .fetch_all(pool)
        .await?
    {
        let device_id: String = row.get("device_id");
        let value: String = row.get("value");
        let lv = LastValue {
            device_id: DeviceId::new(&device_id)?,
            name: row.get("name"),
            value: serde_json::from_str(&value).with_context(|| format!("stored value {value:?}"))?,
            unit: row.get("unit"),
            time: row.get("time"),
        };
        last.entry(device_id).or_default().push(lv);
    }
    rows.iter()
        .map(|row| {
            let device = device_from_row(row)?;
            let last_values = last.remove(device.id.as_str()).unwrap_or_default();
            let grid: Option<String> = row.get("grid");
            Ok(DeviceRecord {
                grid: grid.map(|g| serde_json::from_str(&g)).transpose()?,
                device,
                source: row.get("source"),
                created_at: row.get("created_at"),
                last_values,
            })
        })
        .collect()
}

/// `INSERT INTO incidents …` of `incidents`, in multi-row statements of at most 400 rows (20
/// parameters a row stays far below SQLite's parameter limit), each begun with [`Statements::next`].
pub(crate) fn push_incident_inserts(
    statements: &mut Statements<'_>,
    incidents: &[Incident],
) -> anyhow::Result<()> {
    for chunk in crate::db::statement_chunks(incidents, 400) {
        // Serialise first so a serialisation error stops before the statement is built.
        let evidence = chunk
            .iter()
            .map(|i| serde_json::to_string(&i.evidence))
            .collect::<Result<Vec<_>, _>>()?;
        let qb = statements.next();
        qb.push(
            "INSERT INTO incidents (id, device_id, kind, rule_id, category_code, category_name_zh, category_name_en, \
             measurement, value, unit, condition, lon, lat, state, opened_at, cleared_at, clear_value, evidence, \
             grid, cell) ",
        );
        qb.push_values(chunk.iter().zip(evidence), |b, (i, evidence)| {
            b.push_bind(i.id)
                .push_bind(i.device_id.as_str().to_string())
                .push_bind(i.kind.as_str().to_string())
                .push_bind(i.rule_id.clone())
                .push_bind(i.category_code.clone())
                .push_bind(i.category_name_zh.clone())
                .push_bind(i.category_name_en.clone())
                .push_bind(i.measurement.clone())
                .push_bind(value_json(&i.value))
                .push_bind(i.unit.clone())
                .push_bind(i.condition.clone())
                .push_bind(i.lon)
                .push_bind(i.lat)
                .push_bind(i.state.as_str())
                .push_bind(i.opened_at)
                .push_bind(i.cleared_at)
                .push_bind(i.clear_value.as_ref().map(value_json))
                .push_bind(evidence)
                .push_bind(i.grid.as_ref().map(crate::grid_json))
                .push_bind(i.grid.as_ref().and_then(|g| g.cell()).map(str::to_string));
        });
    }
    Ok(())
}

pub(crate) fn incident_from_row(row: &AnyRow) -> anyhow::Result<Incident> {
    let id: i64 = row.get("id");
    let parse = |column: &str| -> anyhow::Result<Value> {
        let text: String = row.get(column);
        serde_json::from_str(&text)
            .with_context(|| format!("incident {id}: column {column} holds {text:?}"))
    };
    let state: String = row.get("state");
    let clear_value: Option<String> = row.get("clear_value");
    let evidence: String = row.get("evidence");
    let grid: Option<String> = row.get("grid");
    Ok(Incident {
        id,
        device_id: DeviceId::new(row.get::<&str, _>("device_id"))?,
        kind: DeviceKind::new(row.get::<&str, _>("kind"))?,
        rule_id: row.get("rule_id"),
        category_code: row.get("category_code"),
        category_name_zh: row.get("category_name_zh"),
        category_name_en: row.get("category_name_en"),
        measurement: row.get("measurement"),
        value: parse("value")?,
        unit: row.get("unit"),
        condition: row.get("condition"),
        lon: row.get("lon"),
        lat: row.get("lat"),
        grid: grid
            .map(|g| serde_json::from_str(&g))
            .transpose()
            .with_context(|| format!("incident {id}: grid"))?,
        state: IncidentState::parse(&state)
            .with_context(|| format!("incident {id}: state {state:?}"))?,
        opened_at: row.get("opened_at"),
        cleared_at: row.get("cleared_at"),
        clear_value: clear_value.map(|v| serde_json::from_str(&v)).transpose()?,
        evidence: serde_json::from_str(&evidence)
            .with_context(|| format!("incident {id}: evidence"))?,
    })
}
