//! Mapping between case rows and [`Case`]: every stored name parsed back, a mismatch is an error.

use anyhow::Context as _;
use cityops_core::case::{CaseNumber, CaseState, ClosureType, Source};
use cityops_core::{CategoryClass, DeviceId};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Case;
use super::clocks::clock_from_row;

/// A case with its running clock (at most one: `case_clocks_one_active`); callers append `WHERE …`.
pub(super) const CASE_SELECT: &str = concat!(
    "SELECT c.*, ",
    clock_columns!(),
    " FROM cases c LEFT JOIN case_clocks k ON k.case_id = c.id AND k.active = 1"
);

pub(super) fn class_str(class: CategoryClass) -> &'static str {
    match class {
        CategoryClass::Component => "component",
        CategoryClass::Event => "event",
    }
}

fn parse_class(text: &str) -> Option<CategoryClass> {
    match text {
        "component" => Some(CategoryClass::Component),
        "event" => Some(CategoryClass::Event),
        _ => None,
    }
}

pub(super) fn case_from_row(row: &AnyRow) -> anyhow::Result<Case> {
    let id: i64 = row.try_get("id")?;
    let number: String = row.try_get("number")?;
    let context = |what: &str| format!("case {id} ({number}): {what}");
    let state: String = row.try_get("state")?;
    let state_code: i64 = row.try_get("state_code")?;
    let parsed_state =
        CaseState::parse(&state).with_context(|| context(&format!("state {state:?}")))?;
    // The code is kept for reports and other systems; it must never drift from the name.
    if i64::from(parsed_state.code()) != state_code {
        anyhow::bail!(context(&format!("state {state} with code {state_code}")));
    }
    let class: String = row.try_get("class")?;
    let source: String = row.try_get("source")?;
    let grid: Option<String> = row.try_get("grid")?;
    let closure: Option<String> = row.try_get("closure_type")?;
    let device_id: Option<String> = row.try_get("device_id")?;
    let satisfaction: Option<i64> = row.try_get("satisfaction")?;
    Ok(Case {
        id,
        number: CaseNumber::parse(&number).with_context(|| context("number"))?,
        category_code: row.try_get("category_code")?,
        class: parse_class(&class).with_context(|| context(&format!("class {class:?}")))?,
        state: parsed_state,
        source: Source::parse(&source).with_context(|| context(&format!("source {source:?}")))?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        address: row.try_get("address")?,
        lon: row.try_get("lon")?,
        lat: row.try_get("lat")?,
        grid: grid
            .map(|g| serde_json::from_str(&g))
            .transpose()
            .with_context(|| context("grid"))?,
        reporter: row.try_get("reporter")?,
        verification_required: row.try_get::<i64, _>("verification_required")? != 0,
        department: row.try_get("department")?,
        inspector: row.try_get("inspector")?,
        incident_id: row.try_get("incident_id")?,
        device_id: device_id
            .map(|d| DeviceId::new(&d))
            .transpose()
            .with_context(|| context("device id"))?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        closed_at: row.try_get("closed_at")?,
        closure: closure
            .map(|c| ClosureType::parse(&c).with_context(|| context(&format!("closure {c:?}"))))
            .transpose()?,
        satisfaction: satisfaction
            .map(u8::try_from)
            .transpose()
            .with_context(|| context("satisfaction"))?,
        rework_count: row.try_get("rework_count")?,
        wrong_dispatch_count: row.try_get("wrong_dispatch_count")?,
        extension_count: row.try_get("extension_count")?,
        reopen_count: row.try_get("reopen_count")?,
        clock: clock_from_row(row)?,
    })
}

/// A PostgreSQL array literal of `items` (integers or booleans: nothing to quote), bound as text and
/// cast in the statement (`CAST($1 AS BIGINT[])`).
pub(super) fn pg_array(items: impl Iterator<Item = String>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item);
    }
    out.push('}');
    out
}
