//! Conformance tests of the store, each run on SQLite and on PostgreSQL: registration, the batched write
//! path, incident queries, the event log.

use super::*;
use crate::testing::{TestDb, conformance};
use cityops_core::incident::EvidenceReading;
use cityops_core::{DeviceKind, GridPlace};

fn device(id: &str, lon: f64) -> Device {
    Device {
        id: DeviceId::new(id).unwrap(),
        kind: DeviceKind::new("manhole_cover").unwrap(),
        lon,
        lat: 39.9,
    }
}

fn incident(id: i64, device_id: &str, opened_at: i64) -> Incident {
    Incident {
        id,
        device_id: DeviceId::new(device_id).unwrap(),
        kind: DeviceKind::new("manhole_cover").unwrap(),
        rule_id: "manhole_tilt".into(),
        category_code: "E0503".into(),
        category_name_zh: "井盖移位".into(),
        category_name_en: "Manhole cover displaced".into(),
        measurement: "tilt".into(),
        value: Value::Number(32.5),
        unit: Some("deg".into()),
        condition: "tilt > 15".into(),
        lon: 116.41,
        lat: 39.91,
        grid: Some(GridPlace::Inside {
            cell: "110101001001001".into(),
            street: "110101001".into(),
            community: "110101001001".into(),
        }),
        state: IncidentState::Open,
        opened_at,
        cleared_at: None,
        clear_value: None,
        evidence: vec![EvidenceReading {
            name: "tilt".into(),
            value: Value::Number(32.5),
            unit: Some("deg".into()),
            time: opened_at,
        }],
    }
}

async fn registering_the_same_device_twice_is_not_an_error_but_a_different_one_is(db: TestDb) {
    let store = db.open().await;
    assert_eq!(
        store
            .register_device(&device("mc-1", 116.4), None, DeviceSource::Api, 1)
            .await
            .unwrap(),
        Registered::Created
    );
    assert_eq!(
        store
            .register_device(&device("mc-1", 116.4), None, DeviceSource::Api, 2)
            .await
            .unwrap(),
        Registered::Unchanged
    );
    assert!(matches!(
        store
            .register_device(&device("mc-1", 116.5), None, DeviceSource::Api, 3)
            .await,
        Err(StoreError::DeviceConflict(_))
    ));
    assert_eq!(
        store.devices().await.unwrap()[0].lon,
        116.4,
        "a refused registration changes nothing"
    );
    assert_eq!(
        store
            .register_device(&device("mc-1", 116.5), None, DeviceSource::Config, 4)
            .await
            .unwrap(),
        Registered::Updated
    );
    assert_eq!(store.devices().await.unwrap()[0].lon, 116.5);
}

/// A tilt reading of `device` as its last value.
fn tilt(device: &str, value: f64, time: i64) -> LastValue {
    LastValue {
        device_id: DeviceId::new(device).unwrap(),
        name: "tilt".into(),
        value: Value::Number(value),
        unit: Some("deg".into()),
        time,
    }
}

/// The clearing of incident `id`, of `device`'s tilt rule, at `at` with `value`.
fn clearing(id: i64, device: &str, value: f64, at: i64) -> IncidentCleared {
    IncidentCleared {
        id,
        device_id: DeviceId::new(device).unwrap(),
        kind: DeviceKind::new("manhole_cover").unwrap(),
        rule_id: "manhole_tilt".into(),
        category_code: "E0503".into(),
        value: Value::Number(value),
        cleared_at: at,
        lon: 116.41,
        lat: 39.91,
    }
}

async fn a_batch_stores_incidents_clears_them_and_keeps_only_the_last_value(db: TestDb) {
    let store = db.open().await;
    let lv = |value: f64, time: i64| tilt("mc-1", value, time);
    store
        .register_device(&device("mc-1", 116.4), None, DeviceSource::Api, 1)
        .await
        .unwrap();
    store
        .apply(&WriteBatch {
            opened: vec![incident(1, "mc-1", 1000)],
            cleared: vec![],
            last_values: vec![lv(32.5, 1000)],
        })
        .await
        .unwrap();
    let cleared = clearing(1, "mc-1", 2.0, 2000);
    // An older value arriving late does not overwrite a newer one.
    store
        .apply(&WriteBatch {
            opened: vec![],
            cleared: vec![cleared],
            last_values: vec![lv(2.0, 2000), lv(9.0, 1500)],
        })
        .await
        .unwrap();
    let stored = store.incident(1).await.unwrap().unwrap();
    assert_eq!(stored.state, IncidentState::Cleared);
    assert_eq!(stored.cleared_at, Some(2000));
    assert_eq!(stored.clear_value, Some(Value::Number(2.0)));
    assert_eq!(stored.evidence.len(), 1);
    let records = store.device_records().await.unwrap();
    assert_eq!(records[0].last_values, vec![lv(2.0, 2000)]);
    assert!(store.open_incidents().await.unwrap().is_empty());
}

/// Clearings of one batch go in one statement: each incident gets its own time and value, the
/// first clearing of an incident named twice wins, one already cleared stays as it was, and an
/// incident not named stays open.
async fn a_batch_clears_many_incidents_each_with_its_own_values(db: TestDb) {
    let store = db.open().await;
    let opened: Vec<Incident> = (1..=5)
        .map(|i| incident(i, &format!("mc-{i}"), 1000 + i))
        .collect();
    store
        .apply(&WriteBatch {
            opened,
            ..Default::default()
        })
        .await
        .unwrap();
    let clear = |id: i64, at: i64, value: f64| clearing(id, &format!("mc-{id}"), value, at);
    store
        .apply(&WriteBatch {
            cleared: vec![clear(5, 1500, 0.5)],
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .apply(&WriteBatch {
            cleared: vec![
                clear(1, 2001, 1.0),
                clear(3, 2003, 3.0),
                clear(1, 2999, 9.0),
                clear(2, 2002, 2.0),
                clear(5, 2005, 5.0),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got = Vec::new();
    for id in 1..=5 {
        let i = store.incident(id).await.unwrap().unwrap();
        got.push((id, i.state, i.cleared_at, i.clear_value));
    }
    let cleared = |id, at, v| (id, IncidentState::Cleared, Some(at), Some(Value::Number(v)));
    assert_eq!(
        got,
        vec![
            cleared(1, 2001, 1.0),
            cleared(2, 2002, 2.0),
            cleared(3, 2003, 3.0),
            (4, IncidentState::Open, None, None),
            cleared(5, 1500, 0.5),
        ]
    );
}

async fn the_database_refuses_a_second_open_incident_for_the_same_device_and_rule(db: TestDb) {
    let store = db.open().await;
    store
        .apply(&WriteBatch {
            opened: vec![incident(1, "mc-1", 1)],
            ..Default::default()
        })
        .await
        .unwrap();
    let err = store
        .apply(&WriteBatch {
            opened: vec![incident(2, "mc-1", 2)],
            ..Default::default()
        })
        .await;
    assert!(err.is_err());
    assert_eq!(
        store.max_incident_id().await.unwrap(),
        1,
        "the failed batch left nothing behind"
    );
}

/// A batch is one transaction however many statements it takes: one failing after others ran (the
/// second insert statement, after 2 or 400 incidents went in: a small batch goes in one call on
/// SQLite, a large one statement by statement) leaves nothing of the batch, and the store goes on
/// writing (no connection is left inside the failed transaction).
async fn a_batch_failing_half_way_leaves_nothing_and_the_store_goes_on(db: TestDb) {
    let store = db.open().await;
    store
        .apply(&WriteBatch {
            opened: vec![incident(1, "mc-0", 1000)],
            cleared: vec![],
            last_values: vec![tilt("mc-0", 1.0, 1000)],
        })
        .await
        .unwrap();
    for last in [3, 401] {
        let mut opened: Vec<Incident> = (2..last)
            .map(|id| incident(id, &format!("mc-{id}"), 2000))
            .collect();
        // The last row, in the second statement: a second open incident of mc-0's rule.
        opened.push(incident(last, "mc-0", 2000));
        failing_batch_leaves_nothing(&store, opened).await;
    }
    store
        .register_device(&device("mc-0", 116.4), None, DeviceSource::Api, 1)
        .await
        .unwrap();
    assert_eq!(
        store.device_records().await.unwrap()[0].last_values,
        vec![tilt("mc-0", 1.0, 1000)]
    );
    for id in 3..=6 {
        store
            .apply(&WriteBatch {
                opened: vec![incident(id, &format!("mc-{id}"), 3000)],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    assert_eq!(store.max_incident_id().await.unwrap(), 6);
}

async fn failing_batch_leaves_nothing(store: &Store, opened: Vec<Incident>) {
    let failed = store
        .apply(&WriteBatch {
            opened,
            cleared: vec![clearing(1, "mc-0", 2.0, 2000)],
            last_values: vec![tilt("mc-0", 2.0, 2000)],
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(store.max_incident_id().await.unwrap(), 1);
    assert_eq!(
        store.incident(1).await.unwrap().unwrap().state,
        IncidentState::Open
    );
}

async fn incidents_filter_and_page_newest_first(db: TestDb) {
    let store = db.open().await;
    let mut batch = WriteBatch::default();
    for id in 1..=25 {
        batch
            .opened
            .push(incident(id, &format!("mc-{id}"), id * 1000));
    }
    store.apply(&batch).await.unwrap();
    let page = store
        .incidents(&IncidentQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        (16..=25).rev().collect::<Vec<_>>()
    );
    assert_eq!(page.next_cursor, Some(16));
    let page3 = store
        .incidents(&IncidentQuery {
            limit: 10,
            before_id: Some(6),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page3.items.len(), 5);
    assert_eq!(page3.next_cursor, None);
    let by_device = store
        .incidents(&IncidentQuery {
            device: Some(DeviceId::new("mc-7").unwrap()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_device.items.len(), 1);
    let by_time = store
        .incidents(&IncidentQuery {
            from: Some(5000),
            to: Some(8000),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_time.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![7, 6, 5]
    );
    let by_street = store
        .incidents(&IncidentQuery {
            grid: Some("110101001".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_street.items.len(), 25);
    assert_eq!(
        by_street.items[0].grid.as_ref().and_then(|g| g.cell()),
        Some("110101001001001")
    );
    let elsewhere = store
        .incidents(&IncidentQuery {
            grid: Some("110101002".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(elsewhere.items.is_empty());
    let cleared = store
        .incidents(&IncidentQuery {
            state: Some(IncidentState::Cleared),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(cleared.items.is_empty());
}

async fn event_log_appends_idempotently_and_replays_in_order(db: TestDb) {
    let store = db.open().await;
    let rows: Vec<EventRow> = (1..=5)
        .map(|seq| EventRow {
            seq,
            event_type: "reading",
            time: seq as i64,
            json: "{}",
            outbox_id: None,
        })
        .collect();
    store.append_events(&rows).await.unwrap();
    store.append_events(&rows[3..]).await.unwrap();
    let after = store.events_after(2, 100).await.unwrap();
    assert_eq!(
        after.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert_eq!(store.bus_seq_floor().await.unwrap(), 5);
    store.reserve_bus_seq(10_005).await.unwrap();
    assert_eq!(store.bus_seq_floor().await.unwrap(), 10_005);
    assert_eq!(store.prune_events(3).await.unwrap(), 2);
}

async fn a_database_keeps_its_data_across_reopen(db: TestDb) {
    let store = db.open().await;
    store
        .register_device(&device("mc-1", 116.4), None, DeviceSource::Api, 1)
        .await
        .unwrap();
    store.close().await;
    let again = db.open().await;
    assert_eq!(again.devices().await.unwrap().len(), 1);
}

/// The pool hands out a connection used within [`crate::db::PING_IDLE_AFTER`] untested; one idle
/// longer is tested first, so connections the server dropped while idle are replaced, not reported.
#[tokio::test]
async fn postgres_connections_cut_off_while_idle_are_replaced() {
    use sqlx::Connection as _;
    let db = TestDb::new(crate::Dialect::Postgres).await;
    let store = db.open().await;
    store
        .register_device(&device("mc-1", 116.4), None, DeviceSource::Api, 1)
        .await
        .unwrap();
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let cut: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(cut >= 1, "the store's connections were not found");
    tokio::time::sleep(crate::db::PING_IDLE_AFTER + std::time::Duration::from_millis(300)).await;
    for _ in 0..3 {
        assert_eq!(store.devices().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn other_urls_get_a_clear_error() {
    let err = Store::open("mysql://localhost/x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sqlite://") && err.contains("postgres://"),
        "{err}"
    );
}

async fn event_log_skips_a_second_copy_of_an_outbox_event(db: TestDb) {
    let store = db.open().await;
    let row = |seq, outbox_id| EventRow {
        seq,
        event_type: "case.created",
        time: 1,
        json: "{}",
        outbox_id,
    };
    store
        .append_events(&[row(1, Some(7)), row(2, None), row(3, None)])
        .await
        .unwrap();
    // The relay published outbox event 7 again after a crash: a new seq, the same outbox id.
    store
        .append_events(&[row(4, Some(7)), row(5, Some(8))])
        .await
        .unwrap();
    let seqs: Vec<u64> = store
        .events_after(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 5]);
    assert_eq!(
        store.logged_outbox_ids(&[6, 7, 8, 9]).await.unwrap(),
        vec![7, 8]
    );
    assert!(store.logged_outbox_ids(&[]).await.unwrap().is_empty());
}

async fn users_are_unique_by_name_and_keep_their_changes(db: TestDb) {
    use crate::users::UserInsert;
    use cityops_core::case::Role;
    let store = db.open().await;
    let at = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    let insert = |username, role, department| UserInsert {
        username,
        display_name: "张三",
        role,
        department,
        password_hash: "$argon2id$v=19$m=19456,t=3,p=1$c2FsdA$aGFzaA",
    };
    let handler = store
        .create_user(
            &insert("zhang.san", Role::DepartmentHandler, Some("sanitation")),
            at,
        )
        .await
        .unwrap();
    assert_eq!(handler.username, "zhang.san");
    assert_eq!(handler.department.as_deref(), Some("sanitation"));
    assert!(!handler.disabled);
    let taken = store
        .create_user(&insert("zhang.san", Role::Operator, None), at)
        .await
        .unwrap_err();
    assert!(
        matches!(taken, StoreError::UsernameTaken(ref n) if n == "zhang.san"),
        "{taken}"
    );
    store
        .create_user(&insert("admin", Role::Admin, None), at)
        .await
        .unwrap();
    let names: Vec<String> = store
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["admin", "zhang.san"]);
    assert!(
        store
            .set_password_hash("zhang.san", "$new", at)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_user_disabled("zhang.san", true, at)
            .await
            .unwrap()
    );
    assert!(!store.set_user_disabled("nobody", true, at).await.unwrap());
    let again = store.user_by_name("zhang.san").await.unwrap().unwrap();
    assert!(again.disabled);
    assert_eq!(again.password_hash, "$new");
    assert_eq!(
        store.user_by_id(handler.id).await.unwrap().unwrap().id,
        handler.id
    );
    assert!(store.user_by_name("nobody").await.unwrap().is_none());
}

async fn components_are_replaced_by_id_and_fixes_read_by_window(db: TestDb) {
    use crate::components::ComponentRow;
    use crate::fixes::FixRow;
    let store = db.open().await;
    let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    let row = |id: &str, data: &str| ComponentRow {
        id: id.into(),
        category_code: "C0101".into(),
        cell: Some("110101001001001".into()),
        data: data.into(),
    };
    store
        .upsert_components(&[row("mh-2", "{\"v\":1}"), row("mh-1", "{\"v\":1}")], now)
        .await
        .unwrap();
    store
        .upsert_components(&[row("mh-2", "{\"v\":2}")], now)
        .await
        .unwrap();
    assert_eq!(
        store.component_rows().await.unwrap(),
        ["{\"v\":1}", "{\"v\":2}"]
    );

    let fix = |inspector: &str, time, accuracy| FixRow {
        inspector: inspector.into(),
        time,
        lon: 116.41,
        lat: 39.91,
        accuracy,
    };
    store
        .append_fixes(&[
            fix("insp-1", 3_000, Some(5.0)),
            fix("insp-2", 1_000, None),
            fix("insp-1", 2_000, None),
        ])
        .await
        .unwrap();
    store.append_fixes(&[]).await.unwrap();
    let window = store.fixes_between(1_000, 3_000).await.unwrap();
    assert_eq!(
        window,
        vec![fix("insp-2", 1_000, None), fix("insp-1", 2_000, None)]
    );
    assert_eq!(
        store.fixes_between(3_000, 3_001).await.unwrap()[0].accuracy,
        Some(5.0)
    );
}

conformance!(
    registering_the_same_device_twice_is_not_an_error_but_a_different_one_is,
    a_batch_stores_incidents_clears_them_and_keeps_only_the_last_value,
    a_batch_clears_many_incidents_each_with_its_own_values,
    the_database_refuses_a_second_open_incident_for_the_same_device_and_rule,
    a_batch_failing_half_way_leaves_nothing_and_the_store_goes_on,
    incidents_filter_and_page_newest_first,
    event_log_appends_idempotently_and_replays_in_order,
    a_database_keeps_its_data_across_reopen,
    event_log_skips_a_second_copy_of_an_outbox_event,
    users_are_unique_by_name_and_keep_their_changes,
    components_are_replaced_by_id_and_fixes_read_by_window,
);

/// A SQLite file is put in WAL mode once, before the pool opens its connections, and every one of
/// them, opened at once, finds it so and runs with FULL sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sqlite_connection_finds_the_file_in_wal_mode() {
    let db = TestDb::new(Dialect::Sqlite).await;
    let store = db.open().await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(store.pool().acquire().await.unwrap());
    }
    for conn in &mut held {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(sync, 2, "synchronous = FULL");
    }
}
