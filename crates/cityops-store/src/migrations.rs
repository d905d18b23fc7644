//! The embedded migrations of both dialects, in order; each one runs once, in its own transaction.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::db::Dialect;

const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "spine",
        include_str!("../migrations/sqlite/0001_spine.sql"),
    ),
    (
        2,
        "grid",
        include_str!("../migrations/sqlite/0002_grid.sql"),
    ),
    (
        3,
        "cases",
        include_str!("../migrations/sqlite/0003_cases.sql"),
    ),
    (
        4,
        "users",
        include_str!("../migrations/sqlite/0004_users.sql"),
    ),
    (
        5,
        "event_outbox",
        include_str!("../migrations/sqlite/0005_event_outbox.sql"),
    ),
    (
        6,
        "components",
        include_str!("../migrations/sqlite/0006_components.sql"),
    ),
    (
        7,
        "inspector_fixes",
        include_str!("../migrations/sqlite/0007_inspector_fixes.sql"),
    ),
    (
        8,
        "geofences_run_cards",
        include_str!("../migrations/sqlite/0008_geofences_run_cards.sql"),
    ),
];

const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "spine",
        include_str!("../migrations/postgres/0001_spine.sql"),
    ),
    (
        2,
        "grid",
        include_str!("../migrations/postgres/0002_grid.sql"),
    ),
    (
        3,
        "cases",
        include_str!("../migrations/postgres/0003_cases.sql"),
    ),
    (
        4,
        "users",
        include_str!("../migrations/postgres/0004_users.sql"),
    ),
    (
        5,
        "event_outbox",
        include_str!("../migrations/postgres/0005_event_outbox.sql"),
    ),
    (
        6,
        "components",
        include_str!("../migrations/postgres/0006_components.sql"),
    ),
    (
        7,
        "inspector_fixes",
        include_str!("../migrations/postgres/0007_inspector_fixes.sql"),
    ),
    (
        8,
        "geofences_run_cards",
        include_str!("../migrations/postgres/0008_geofences_run_cards.sql"),
    ),
];

/// The migrator of a dialect: the same versions and names, each in that database's SQL.
pub fn migrator(dialect: Dialect) -> Migrator {
    let list = match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    let migrations = list
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}
