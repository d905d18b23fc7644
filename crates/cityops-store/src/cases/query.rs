//! The case list: filters, sort orders and keyset paging.
//!
//! Paging is by key, never by offset: the cursor holds the sort key and the id of the last case of a
//! page, and the next page starts strictly after that pair, so cases filed or changed meanwhile neither
//! repeat nor shift a page. Cases without a deadline (no running clock, or suspended) sort last in both
//! deadline orders.

use crate::db::SqlBuilder;
use chrono::{DateTime, Utc};
use cityops_core::case::{CaseState, Source};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{Case, CaseId, CaseStoreError, invalid, rows};
use crate::Store;

/// The most cases one page holds.
pub const MAX_PAGE: u32 = 1000;

/// Filters and paging of [`Store::cases`]. Every filter is optional; they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct CaseQuery {
    pub state: Option<CaseState>,
    /// A category code or its prefix: `E05` (emergencies), `E0503`, `C` (all components).
    pub category: Option<String>,
    pub source: Option<Source>,
    /// A cell, community or street code (digits): cases whose cell code starts with it.
    pub grid: Option<String>,
    pub department: Option<String>,
    pub inspector: Option<String>,
    pub reporter: Option<String>,
    /// `Some(true)`: the running clock's deadline has passed at `now`; `Some(false)`: it has not (or
    /// there is no running deadline).
    pub overdue: Option<bool>,
    /// The instant `overdue` is judged at; required with it.
    pub now: Option<DateTime<Utc>>,
    /// Filed at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Filed before.
    pub created_to: Option<DateTime<Utc>>,
    pub sort: CaseSort,
    /// 1 to [`MAX_PAGE`]; 0 means 50.
    pub limit: u32,
    /// The `next_cursor` of the previous page, for the same filters and sort.
    pub cursor: Option<CaseCursor>,
}

/// The order of the case list; ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseSort {
    /// Newest first: the default.
    #[default]
    CreatedDesc,
    CreatedAsc,
    UpdatedDesc,
    UpdatedAsc,
    /// Most urgent first.
    DeadlineAsc,
    DeadlineDesc,
}

impl CaseSort {
    pub const ALL: [CaseSort; 6] = [
        CaseSort::CreatedDesc,
        CaseSort::CreatedAsc,
        CaseSort::UpdatedDesc,
        CaseSort::UpdatedAsc,
        CaseSort::DeadlineAsc,
        CaseSort::DeadlineDesc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseSort::CreatedDesc => "created_desc",
            CaseSort::CreatedAsc => "created_asc",
            CaseSort::UpdatedDesc => "updated_desc",
            CaseSort::UpdatedAsc => "updated_asc",
            CaseSort::DeadlineAsc => "deadline_asc",
            CaseSort::DeadlineDesc => "deadline_desc",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sort| sort.as_str() == text)
    }

    fn descending(self) -> bool {
        matches!(
            self,
            CaseSort::CreatedDesc | CaseSort::UpdatedDesc | CaseSort::DeadlineDesc
        )
    }

    /// The SQL of the sort key. A missing deadline becomes the end of the order in either direction,
    /// which keeps the key non-null and so comparable in a keyset condition.
    fn key_sql(self) -> &'static str {
        match self {
            CaseSort::CreatedDesc | CaseSort::CreatedAsc => "c.created_at",
            CaseSort::UpdatedDesc | CaseSort::UpdatedAsc => "c.updated_at",
            CaseSort::DeadlineAsc => "COALESCE(k.deadline_at, 9223372036854775807)",
            CaseSort::DeadlineDesc => "COALESCE(k.deadline_at, -9223372036854775808)",
        }
    }

    /// The sort key of a case, as [`key_sql`](Self::key_sql) computes it.
    fn key_of(self, case: &Case) -> i64 {
        let deadline = case.clock.as_ref().and_then(|clock| clock.deadline_at);
        match self {
            CaseSort::CreatedDesc | CaseSort::CreatedAsc => case.created_at,
            CaseSort::UpdatedDesc | CaseSort::UpdatedAsc => case.updated_at,
            CaseSort::DeadlineAsc => deadline.unwrap_or(i64::MAX),
            CaseSort::DeadlineDesc => deadline.unwrap_or(i64::MIN),
        }
    }
}

/// Where the next page starts: opaque to clients, written `sort.key.id` (e.g. `created_desc.1775782800000.42`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseCursor {
    pub sort: CaseSort,
    pub key: i64,
    pub id: CaseId,
}

impl fmt::Display for CaseCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.sort.as_str(), self.key, self.id)
    }
}

impl FromStr for CaseCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a case list cursor");
        let mut parts = text.split('.');
        let (Some(sort), Some(key), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Self {
            sort: CaseSort::parse(sort).ok_or_else(bad)?,
            key: key.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

impl TryFrom<String> for CaseCursor {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<CaseCursor> for String {
    fn from(cursor: CaseCursor) -> String {
        cursor.to_string()
    }
}

/// One page of cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CasePage {
    pub items: Vec<Case>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<CaseCursor>,
}

impl Store {
    /// Lists cases by filters, in the chosen order, a page at a time.
    pub async fn cases(&self, query: &CaseQuery) -> Result<CasePage, CaseStoreError> {
        let limit = match query.limit {
            0 => 50,
            n => n.min(MAX_PAGE),
        };
        let sort = query.sort;
        let mut qb = SqlBuilder::new(self.dialect, rows::CASE_SELECT);
        qb.push(" WHERE 1 = 1");
        if let Some(state) = query.state {
            qb.push(" AND c.state = ").push_bind(state.as_str());
        }
        if let Some(category) = &query.category {
            let bytes = category.as_bytes();
            let well_formed = (1..=5).contains(&bytes.len())
                && matches!(bytes[0], b'C' | b'E')
                && bytes[1..].iter().all(u8::is_ascii_digit);
            if !well_formed {
                return Err(invalid(format!(
                    "category filter {category:?} is not a category code or its prefix (E05, E0503, C)"
                )));
            }
            // Letters and digits only, so the value is safe inside a LIKE pattern.
            qb.push(" AND c.category_code LIKE ")
                .push_bind(format!("{category}%"));
        }
        if let Some(source) = query.source {
            qb.push(" AND c.source = ").push_bind(source.as_str());
        }
        if let Some(grid) = &query.grid {
            if grid.is_empty() || !grid.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!(
                    "grid filter {grid:?} is not a cell, community or street code"
                )));
            }
            qb.push(" AND c.cell LIKE ").push_bind(format!("{grid}%"));
        }
        for (column, value) in [
            ("c.department", &query.department),
            ("c.inspector", &query.inspector),
            ("c.reporter", &query.reporter),
        ] {
            if let Some(value) = value {
                qb.push(format_args!(" AND {column} = "))
                    .push_bind(value.clone());
            }
        }
        if let Some(overdue) = query.overdue {
            let now = query
                .now
                .ok_or_else(|| invalid("the overdue filter needs the instant it is judged at"))?
                .timestamp_millis();
            if overdue {
                qb.push(" AND k.deadline_at IS NOT NULL AND k.deadline_at < ")
                    .push_bind(now);
            } else {
                qb.push(" AND (k.deadline_at IS NULL OR k.deadline_at >= ")
                    .push_bind(now)
                    .push(")");
            }
        }
        if let Some(from) = query.created_from {
            qb.push(" AND c.created_at >= ")
                .push_bind(from.timestamp_millis());
        }
        if let Some(to) = query.created_to {
            qb.push(" AND c.created_at < ")
                .push_bind(to.timestamp_millis());
        }
        let (direction, after) = if sort.descending() {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        if let Some(cursor) = query.cursor {
            if cursor.sort != sort {
                return Err(invalid(format!(
                    "the cursor belongs to the {} order, not {}",
                    cursor.sort.as_str(),
                    sort.as_str()
                )));
            }
            // Row values: portable (SQLite 3.15+, PostgreSQL) and one range on (key, id).
            qb.push(format_args!(" AND ({}, c.id) {after} (", sort.key_sql()))
                .push_bind(cursor.key)
                .push(", ")
                .push_bind(cursor.id)
                .push(")");
        }
        qb.push(format_args!(
            " ORDER BY {} {direction}, c.id {direction} LIMIT ",
            sort.key_sql()
        ))
        .push_bind(i64::from(limit) + 1);
        let found = qb.build()?.fetch_all(&self.pool).await?;
        let mut items = found
            .iter()
            .map(rows::case_from_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        // One more than asked tells whether there is a next page.
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|case| CaseCursor {
                sort,
                key: sort.key_of(case),
                id: case.id,
            })
        } else {
            None
        };
        Ok(CasePage { items, next_cursor })
    }
}
