//! The embedded migrations, in order; each one runs once, in its own transaction.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

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

/// The migrator for SQLite.
pub fn sqlite() -> Migrator {
    let migrations = SQLITE
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
