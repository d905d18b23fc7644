//! S3 on PostgreSQL: incidents through `Store::apply` against COPY of the same rows, and case
//! transitions (one task and several) against bare single-row durable INSERT transactions at the same
//! concurrency. Each side gets a database of its own, created for the run and dropped after it.

use std::time::Instant;

use cityops_core::Incident;
use cityops_store::scratch::{ScratchDatabase, admin_url_from_env};
use cityops_store::{Store, WriteBatch};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::super::progress;
use super::super::report::Row;
use super::{BATCH, WORKERS, drive_cases, incident, json, lifecycle, transition_row};

/// The environment variable naming the server (any database on it; the bench creates its own).
pub(super) const URL_VAR: &str = "CITYOPS_BENCH_POSTGRES_URL";

/// The PostgreSQL rows of S3.
pub(super) async fn rows(incidents: usize, cases: usize) -> anyhow::Result<Vec<Row>> {
    let admin = admin_url_from_env(URL_VAR);
    // Every database of the run is dropped when `scratch` goes, also after an error.
    let mut scratch = Vec::new();
    let mut out = vec![incident_batches(&admin, incidents, &mut scratch).await?];
    out.extend(case_transitions(&admin, cases, &mut scratch).await?);
    Ok(out)
}

/// A fresh database for one side of the run; returns its URL.
async fn fresh_database(
    admin: &str,
    label: &str,
    made: &mut Vec<ScratchDatabase>,
) -> anyhow::Result<String> {
    let db = ScratchDatabase::create(admin, &format!("bench_{label}")).await?;
    let url = db.url().to_string();
    made.push(db);
    Ok(url)
}

/// `Store::apply` in batches of [`BATCH`] against COPY of the same rows, batch by batch, each in a
/// transaction.
async fn incident_batches(
    admin: &str,
    count: usize,
    made: &mut Vec<ScratchDatabase>,
) -> anyhow::Result<Row> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let rows: Vec<Incident> = (0..count)
        .map(|i| incident(i, now_ms))
        .collect::<anyhow::Result<_>>()?;
    let bar = progress(count as u64 * 2, "S3 PostgreSQL batches");
    let batches: Vec<WriteBatch> = rows
        .chunks(BATCH)
        .map(|chunk| WriteBatch {
            opened: chunk.to_vec(),
            ..WriteBatch::default()
        })
        .collect();

    let store = Store::open(&fresh_database(admin, "incidents", made).await?).await?;
    let started = Instant::now();
    for batch in &batches {
        store.apply(batch).await?;
        bar.inc(batch.opened.len() as u64);
    }
    let platform_secs = started.elapsed().as_secs_f64();
    let stored = store.max_incident_id().await?;
    store.close().await;

    // The same table as the store's migrations make, filled by COPY (CSV).
    let pool = bare_pool(&fresh_database(admin, "copy", made).await?, 1).await?;
    sqlx::raw_sql(INCIDENTS_DDL).execute(&pool).await?;
    let started = Instant::now();
    for chunk in rows.chunks(BATCH) {
        let mut tx = pool.begin().await?;
        let mut copy = tx
            .copy_in_raw(
                "COPY incidents (id, device_id, kind, rule_id, category_code, category_name_zh, \
                 category_name_en, measurement, value, unit, condition, lon, lat, state, opened_at, \
                 cleared_at, clear_value, evidence, grid, cell) FROM STDIN (FORMAT csv)",
            )
            .await?;
        copy.send(csv(chunk).into_bytes()).await?;
        copy.finish().await?;
        tx.commit().await?;
        bar.inc(chunk.len() as u64);
    }
    let baseline_secs = started.elapsed().as_secs_f64();
    let baseline_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    bar.finish_and_clear();

    let platform = count as f64 / platform_secs;
    let baseline = count as f64 / baseline_secs;
    let mut details = serde_json::Map::new();
    details.insert("database".into(), "PostgreSQL".into());
    details.insert("incidents".into(), count.into());
    details.insert("batch".into(), BATCH.into());
    details.insert("platform_secs".into(), platform_secs.into());
    details.insert("baseline_secs".into(), baseline_secs.into());
    details.insert(
        "platform_rows_lost".into(),
        (count as i64 - stored).max(0).into(),
    );
    details.insert(
        "baseline_rows_lost".into(),
        (count as i64 - baseline_rows).max(0).into(),
    );
    let ratio = platform / baseline;
    Ok(Row {
        case: format!("PostgreSQL: {count} incidents, Store::apply × {BATCH}"),
        platform,
        baseline,
        ratio,
        unit: "rows/s".into(),
        goal: "≥ 0.5× COPY".into(),
        met: Some(ratio >= 0.5),
        details,
    })
}

/// Case transitions with one task and with [`WORKERS`], each against bare single-row durable INSERT
/// transactions at the same concurrency (PostgreSQL commits concurrent transactions together).
async fn case_transitions(
    admin: &str,
    cases: usize,
    made: &mut Vec<ScratchDatabase>,
) -> anyhow::Result<Vec<Row>> {
    let transitions = cases * lifecycle().len();
    let bar = progress((transitions * 4) as u64, "S3 PostgreSQL cases");
    let mut out = Vec::new();
    for workers in [1, WORKERS] {
        let store =
            Store::open(&fresh_database(admin, &format!("cases{workers}"), made).await?).await?;
        let driven = drive_cases(&store, cases, workers, &bar).await?;
        store.close().await;

        let pool = bare_pool(
            &fresh_database(admin, &format!("steps{workers}"), made).await?,
            workers as u32,
        )
        .await?;
        sqlx::raw_sql(
            "CREATE TABLE steps (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
             case_id BIGINT NOT NULL, action TEXT NOT NULL, at BIGINT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..workers {
            let pool = pool.clone();
            let bar = bar.clone();
            tasks.push(tokio::spawn(async move {
                for i in (w..transitions).step_by(workers) {
                    let mut tx = pool.begin().await?;
                    sqlx::query("INSERT INTO steps (case_id, action, at) VALUES ($1, $2, $3)")
                        .bind((i / 6) as i64)
                        .bind("accept")
                        .bind(i as i64)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    bar.inc(1);
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let baseline_secs = started.elapsed().as_secs_f64();
        let baseline_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM steps")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        out.push(transition_row(
            "PostgreSQL",
            cases,
            workers,
            &driven,
            transitions as f64 / baseline_secs,
            "bare single-row durable INSERT transactions at the same concurrency",
            transitions as i64 - baseline_rows,
            5_000.0,
        ));
    }
    bar.finish_and_clear();
    Ok(out)
}

async fn bare_pool(url: &str, connections: u32) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(connections.clamp(1, 8))
        .connect(url)
        .await?)
}

/// Incidents as CSV rows for COPY: every field quoted, quotes doubled, NULL as an empty unquoted field.
fn csv(chunk: &[Incident]) -> String {
    fn field(out: &mut String, value: Option<&str>) {
        if let Some(value) = value {
            out.push('"');
            out.push_str(&value.replace('"', "\"\""));
            out.push('"');
        }
    }
    let mut out = String::with_capacity(chunk.len() * 400);
    for i in chunk {
        let values: [Option<String>; 20] = [
            Some(i.id.to_string()),
            Some(i.device_id.as_str().to_string()),
            Some(i.kind.as_str().to_string()),
            Some(i.rule_id.clone()),
            Some(i.category_code.clone()),
            Some(i.category_name_zh.clone()),
            Some(i.category_name_en.clone()),
            Some(i.measurement.clone()),
            Some(json(&i.value)),
            i.unit.clone(),
            Some(i.condition.clone()),
            Some(i.lon.to_string()),
            Some(i.lat.to_string()),
            Some(i.state.as_str().to_string()),
            Some(i.opened_at.to_string()),
            i.cleared_at.map(|t| t.to_string()),
            i.clear_value.as_ref().map(json),
            Some(json(&i.evidence)),
            i.grid.as_ref().map(json),
            i.grid.as_ref().and_then(|g| g.cell()).map(str::to_string),
        ];
        for (n, value) in values.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            field(&mut out, value.as_deref());
        }
        out.push('\n');
    }
    out
}

/// The incidents table and indexes as the store's PostgreSQL migrations leave them.
const INCIDENTS_DDL: &str = "
CREATE TABLE incidents (
    id BIGINT PRIMARY KEY NOT NULL, device_id TEXT NOT NULL, kind TEXT NOT NULL,
    rule_id TEXT NOT NULL, category_code TEXT NOT NULL, category_name_zh TEXT NOT NULL,
    category_name_en TEXT NOT NULL, measurement TEXT NOT NULL, value TEXT NOT NULL, unit TEXT,
    condition TEXT NOT NULL, lon DOUBLE PRECISION NOT NULL, lat DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'cleared')), opened_at BIGINT NOT NULL,
    cleared_at BIGINT, clear_value TEXT, evidence TEXT NOT NULL, grid TEXT, cell TEXT
);
CREATE INDEX incidents_by_device ON incidents (device_id, id);
CREATE INDEX incidents_by_state ON incidents (state, id);
CREATE INDEX incidents_by_opened ON incidents (opened_at);
CREATE UNIQUE INDEX incidents_one_open ON incidents (device_id, rule_id) WHERE state = 'open';
CREATE INDEX incidents_by_cell ON incidents (cell text_pattern_ops, id);
";
