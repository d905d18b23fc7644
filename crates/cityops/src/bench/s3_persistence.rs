//! S3 persistence: incidents through the store's batched write path and single durable case
//! transitions, each against bare sqlx statements on the same kind of SQLite file (WAL,
//! `synchronous=FULL`) in the same run, and the same on PostgreSQL ([`postgres`]: COPY is the
//! baseline of batched incidents there).

mod postgres;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use cityops_core::case::{Action, CaseState, ClosureType, Role, Source, transition};
use cityops_core::incident::EvidenceReading;
use cityops_core::sla::{ClockEffect, ClockKind, SlaStage, StageClock, WorkCalendar};
use cityops_core::{DeviceId, DeviceKind, GridPlace, Incident, IncidentState, Value};
use cityops_store::cases::{CaseChange, ClockChanges, NewCase, SlaPolicy};
use cityops_store::{Store, WriteBatch};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::report::{Report, Row};
use super::{Options, progress};

/// The ingest writer commits up to this many changes per transaction.
pub(super) const BATCH: usize = 1_000;
/// A syntactically valid photo digest: the store checks the form of evidence, not the photo.
const PHOTO: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let incidents = if options.quick { 5_000 } else { 200_000 };
    let cases = if options.quick { 10 } else { 1_000 };
    let dir = TempDir::new("s3")?;
    let mut report = Report::new(
        "s3-persistence",
        "incidents in batches and durable case transitions on SQLite (WAL, synchronous=FULL) and PostgreSQL",
    );
    report.rows.push(incident_batches(&dir.0, incidents).await?);
    report.rows.extend(case_transitions(&dir.0, cases).await?);
    match postgres::rows(incidents, cases).await {
        Ok(rows) => report.rows.extend(rows),
        Err(e) => report.notes.push(format!(
            "No PostgreSQL rows: {e:#} (set {} to a server where the bench may create a database)",
            postgres::URL_VAR
        )),
    }
    report.notes.push(format!(
        "Files under {}, removed afterwards; both sides use a fresh file each.",
        std::env::temp_dir().display()
    ));
    report.finish(&options.out_dir)
}

/// Only the PostgreSQL case transitions of [`run`] (`bench s3-pg-cases`): a quicker loop while working
/// on that path. The full scenario stays `bench s3`.
pub async fn run_postgres_cases(options: &Options) -> anyhow::Result<Report> {
    let cases = if options.quick { 10 } else { 1_000 };
    let mut report = Report::new(
        "s3-persistence-postgres-cases",
        "durable case transitions on PostgreSQL (part of S3)",
    );
    report.rows.extend(postgres::case_rows(cases).await?);
    report.finish(&options.out_dir)
}

/// Only the SQLite case transitions of [`run`] (`bench s3-sqlite-cases`), as `s3-pg-cases` for
/// PostgreSQL.
pub async fn run_sqlite_cases(options: &Options) -> anyhow::Result<Report> {
    let cases = if options.quick { 10 } else { 1_000 };
    let dir = TempDir::new("s3")?;
    let mut report = Report::new(
        "s3-persistence-sqlite-cases",
        "durable case transitions on SQLite (part of S3)",
    );
    report.rows.extend(case_transitions(&dir.0, cases).await?);
    report.finish(&options.out_dir)
}

/// (a) `Store::apply` with batches of [`BATCH`] opened incidents vs one multi-row INSERT per batch into
/// a table of the same schema and indexes.
async fn incident_batches(dir: &Path, count: usize) -> anyhow::Result<Row> {
    let rows = incidents(count)?;
    let bar = progress(count as u64 * 2, "S3 batches");
    let store = Store::open(&sqlite_url(&dir.join("platform.db"))).await?;
    let (platform_secs, stored) = apply_in_batches(&store, &rows, &bar).await?;

    let pool = bare_pool(&dir.join("baseline.db")).await?;
    sqlx::raw_sql(INCIDENTS_DDL).execute(&pool).await?;
    let started = Instant::now();
    for (n, chunk) in rows.chunks(BATCH).enumerate() {
        let mut tx = pool.begin().await?;
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO incidents (id, device_id, kind, rule_id, category_code, category_name_zh, \
             category_name_en, measurement, value, unit, condition, lon, lat, state, opened_at, \
             cleared_at, clear_value, evidence, grid, cell) ",
        );
        qb.push_values(chunk, |mut b, i| {
            b.push_bind(i.id)
                .push_bind(i.device_id.as_str())
                .push_bind(i.kind.as_str())
                .push_bind(&i.rule_id)
                .push_bind(&i.category_code)
                .push_bind(&i.category_name_zh)
                .push_bind(&i.category_name_en)
                .push_bind(&i.measurement)
                .push_bind(json(&i.value))
                .push_bind(i.unit.as_deref())
                .push_bind(&i.condition)
                .push_bind(i.lon)
                .push_bind(i.lat)
                .push_bind(i.state.as_str())
                .push_bind(i.opened_at)
                .push_bind(i.cleared_at)
                .push_bind(i.clear_value.as_ref().map(json))
                .push_bind(json(&i.evidence))
                .push_bind(i.grid.as_ref().map(json))
                .push_bind(i.grid.as_ref().and_then(|g| g.cell()).map(str::to_string));
        });
        qb.build().execute(&mut *tx).await?;
        tx.commit().await?;
        bar.set_position((count + ((n + 1) * BATCH).min(count)) as u64);
    }
    let baseline_secs = started.elapsed().as_secs_f64();
    let baseline_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
        .fetch_one(&pool)
        .await?;
    pool.close().await;

    // A diagnostic, not the baseline: one INSERT per row in the same batches, as `Store::apply` does,
    // tells the cost of a statement per row (sqlx runs each on its SQLite worker thread) from the rest.
    let pool = bare_pool(&dir.join("per-row.db")).await?;
    sqlx::raw_sql(INCIDENTS_DDL).execute(&pool).await?;
    let started = Instant::now();
    for chunk in rows.chunks(BATCH) {
        let mut tx = pool.begin().await?;
        for i in chunk {
            sqlx::query(
                "INSERT INTO incidents (id, device_id, kind, rule_id, category_code, category_name_zh, \
                 category_name_en, measurement, value, unit, condition, lon, lat, state, opened_at, \
                 cleared_at, clear_value, evidence, grid, cell) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(i.id)
            .bind(i.device_id.as_str())
            .bind(i.kind.as_str())
            .bind(&i.rule_id)
            .bind(&i.category_code)
            .bind(&i.category_name_zh)
            .bind(&i.category_name_en)
            .bind(&i.measurement)
            .bind(json(&i.value))
            .bind(i.unit.as_deref())
            .bind(&i.condition)
            .bind(i.lon)
            .bind(i.lat)
            .bind(i.state.as_str())
            .bind(i.opened_at)
            .bind(i.cleared_at)
            .bind(i.clear_value.as_ref().map(json))
            .bind(json(&i.evidence))
            .bind(i.grid.as_ref().map(json))
            .bind(i.grid.as_ref().and_then(|g| g.cell()).map(str::to_string))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    let per_row_secs = started.elapsed().as_secs_f64();
    pool.close().await;
    bar.finish_and_clear();

    let mut row = batch_row(
        "SQLite",
        count,
        (platform_secs, stored),
        (baseline_secs, baseline_rows),
        "a raw multi-row INSERT",
    );
    row.details.insert(
        "bare_row_per_statement_rows_per_s".into(),
        (count as f64 / per_row_secs).round().into(),
    );
    Ok(row)
}

/// A row of batched incidents: the store's time and the rows it kept, against the baseline's.
pub(super) fn batch_row(
    database: &str,
    count: usize,
    (platform_secs, stored): (f64, i64),
    (baseline_secs, baseline_rows): (f64, i64),
    baseline_is: &str,
) -> Row {
    let platform = count as f64 / platform_secs;
    let baseline = count as f64 / baseline_secs;
    let mut details = serde_json::Map::new();
    details.insert("database".into(), database.into());
    details.insert("incidents".into(), count.into());
    details.insert("batch".into(), BATCH.into());
    details.insert("platform_secs".into(), platform_secs.into());
    details.insert("baseline_secs".into(), baseline_secs.into());
    // A row the store or the baseline did not keep would make the comparison meaningless.
    details.insert(
        "platform_rows_lost".into(),
        (count as i64 - stored).max(0).into(),
    );
    details.insert(
        "baseline_rows_lost".into(),
        (count as i64 - baseline_rows).max(0).into(),
    );
    let ratio = platform / baseline;
    Row {
        case: format!("{database}: {count} incidents, Store::apply × {BATCH}"),
        platform,
        baseline,
        ratio,
        unit: "rows/s".into(),
        goal: format!("≥ 0.5× {baseline_is}"),
        met: Some(ratio >= 0.5),
        details,
    }
}

/// The incidents of the batch rows: distinct devices, since the store keeps one open incident per
/// device and rule, as the rules do.
pub(super) fn incidents(count: usize) -> anyhow::Result<Vec<Incident>> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    (0..count).map(|i| incident(i, now_ms)).collect()
}

/// `Store::apply` over `rows` in batches of [`BATCH`], timed; returns the seconds and the highest
/// incident id stored (to count what was kept). Closes the store.
pub(super) async fn apply_in_batches(
    store: &Store,
    rows: &[Incident],
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<(f64, i64)> {
    // Built before the clock starts: the writer hands over batches it has already assembled.
    let batches: Vec<WriteBatch> = rows
        .chunks(BATCH)
        .map(|chunk| WriteBatch {
            opened: chunk.to_vec(),
            ..WriteBatch::default()
        })
        .collect();
    let started = Instant::now();
    for batch in &batches {
        store.apply(batch).await?;
        bar.inc(batch.opened.len() as u64);
    }
    let secs = started.elapsed().as_secs_f64();
    let stored = store.max_incident_id().await?;
    store.close().await;
    Ok((secs, stored))
}

/// How many tasks drive cases at once in the concurrent rows (the API serves that many requests).
const WORKERS: usize = 16;

/// What [`drive_cases`] measured.
pub(super) struct Driven {
    pub transitions: usize,
    /// PostgreSQL statements that wrote the transitions (several changes each under concurrency).
    pub statements: u64,
    /// PostgreSQL statements that read the cases the transitions were decided on.
    pub read_statements: u64,
    pub create_secs: f64,
    pub transition_secs: f64,
}

/// Files `cases` cases with `create_case`, then takes each through the ordinary lifecycle with
/// `apply_transition`, one transaction per step, from `workers` concurrent tasks (each its own
/// cases, as API requests for different cases arrive together). Both phases are timed on the wall
/// clock; every case must end closed.
pub(super) async fn drive_cases(
    store: &Store,
    cases: usize,
    workers: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Driven> {
    let start = local("2026-04-10 09:00")?;
    let began = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let calendar = WorkCalendar::default();
            let mut filed = Vec::new();
            for n in (w..cases).step_by(workers) {
                let at = start + TimeDelta::seconds(n as i64);
                filed.push(
                    store
                        .create_case(&new_case(at), &SlaPolicy::new(&calendar), at)
                        .await?,
                );
            }
            anyhow::Ok(filed)
        }));
    }
    let mut filed = Vec::new();
    for task in tasks {
        filed.push(task.await??);
    }
    let create_secs = began.elapsed().as_secs_f64();

    let steps = lifecycle();
    let transitions = cases * steps.len();
    let written_before = store.case_write_stats();
    let read_before = store.case_read_stats();
    let began = Instant::now();
    let mut tasks = Vec::new();
    for mine in filed {
        let store = store.clone();
        let bar = bar.clone();
        let steps = steps.clone();
        tasks.push(tokio::spawn(async move {
            let calendar = WorkCalendar::default();
            for mut case in mine {
                let created = DateTime::from_timestamp_millis(case.created_at)
                    .ok_or_else(|| anyhow::anyhow!("case {} has no creation time", case.number))?;
                for (minutes, action, role) in &steps {
                    let at = created + TimeDelta::minutes(*minutes);
                    // Decided by the state machine on the stored facts, as the API does.
                    let department = (*role == Role::DepartmentHandler)
                        .then(|| case.department.clone())
                        .flatten();
                    let context = case
                        .context()
                        .acting(Some(actor(*role)), department.as_deref());
                    let decided = transition(case.state, action, *role, &context)
                        .map_err(|e| anyhow::anyhow!("the machine refused {action:?}: {e}"))?;
                    let next = match decided.clock {
                        ClockEffect::Start(stage) => Some(clock(stage, at, 60)),
                        _ => None,
                    };
                    case = store
                        .apply_transition(&CaseChange {
                            case_id: case.id,
                            expected_version: Some(case.version),
                            action,
                            transition: &decided,
                            actor: actor(*role),
                            role: *role,
                            note: None,
                            evidence: &[],
                            clocks: ClockChanges {
                                policy: SlaPolicy::new(&calendar),
                                next,
                            },
                            at,
                        })
                        .await?;
                    bar.inc(1);
                }
                anyhow::ensure!(
                    case.state == CaseState::Closed,
                    "case {} ended in {}",
                    case.number,
                    case.state
                );
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let transition_secs = began.elapsed().as_secs_f64();
    Ok(Driven {
        transitions,
        statements: store.case_write_stats().statements - written_before.statements,
        read_statements: store.case_read_stats().statements - read_before.statements,
        create_secs,
        transition_secs,
    })
}

/// (b) case transitions on SQLite, one task and [`WORKERS`] tasks, against bare single-row durable
/// INSERT transactions one after another (SQLite has one writer: that is the most it does).
async fn case_transitions(dir: &Path, cases: usize) -> anyhow::Result<Vec<Row>> {
    let transitions = cases * lifecycle().len();
    let bar = progress((transitions * 3) as u64, "S3 cases");
    let mut driven = Vec::new();
    for (workers, file) in [(1, "cases.db"), (WORKERS, "cases-concurrent.db")] {
        let store = Store::open(&sqlite_url(&dir.join(file))).await?;
        driven.push((workers, drive_cases(&store, cases, workers, &bar).await?));
        store.close().await;
    }

    // The baseline: the same number of durable transactions, each one bare single-row INSERT.
    let pool = bare_pool(&dir.join("cases-baseline.db")).await?;
    sqlx::raw_sql(
        "CREATE TABLE steps (id INTEGER PRIMARY KEY NOT NULL, case_id INTEGER NOT NULL, \
         action TEXT NOT NULL, at INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let started = Instant::now();
    for i in 0..transitions {
        let mut tx = pool.begin().await?;
        sqlx::query("INSERT INTO steps (case_id, action, at) VALUES (?, ?, ?)")
            .bind((i / 6) as i64)
            .bind("accept")
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        bar.inc(1);
    }
    let baseline_secs = started.elapsed().as_secs_f64();
    let baseline_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM steps")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    bar.finish_and_clear();
    let baseline = transitions as f64 / baseline_secs;
    Ok(driven
        .into_iter()
        .map(|(workers, d)| {
            transition_row(
                "SQLite",
                cases,
                workers,
                &d,
                baseline,
                "bare single-row durable INSERT transactions, one after another",
                transitions as i64 - baseline_rows,
                2_000.0,
            )
        })
        .collect())
}

/// A row of case transitions against a baseline of bare durable transactions.
#[allow(clippy::too_many_arguments)]
pub(super) fn transition_row(
    database: &str,
    cases: usize,
    workers: usize,
    driven: &Driven,
    baseline: f64,
    baseline_is: &str,
    baseline_rows_lost: i64,
    goal: f64,
) -> Row {
    let platform = driven.transitions as f64 / driven.transition_secs;
    let mut details = serde_json::Map::new();
    details.insert("database".into(), database.into());
    details.insert("cases".into(), cases.into());
    details.insert("workers".into(), workers.into());
    details.insert("transitions".into(), driven.transitions.into());
    details.insert("platform_secs".into(), driven.transition_secs.into());
    details.insert(
        "create_case_per_s".into(),
        (cases as f64 / driven.create_secs).round().into(),
    );
    if driven.read_statements > 0 {
        details.insert("read_statements".into(), driven.read_statements.into());
    }
    if driven.statements > 0 {
        details.insert("statements".into(), driven.statements.into());
        details.insert(
            "transitions_per_statement".into(),
            (driven.transitions as f64 / driven.statements as f64).into(),
        );
    }
    details.insert("baseline_is".into(), baseline_is.into());
    details.insert(
        "baseline_rows_lost".into(),
        baseline_rows_lost.max(0).into(),
    );
    Row {
        case: format!(
            "{database}: {cases} cases × {} transitions, 1 tx each, {workers} task{}",
            lifecycle().len(),
            if workers == 1 { "" } else { "s" }
        ),
        platform,
        baseline,
        ratio: platform / baseline,
        unit: "transitions/s".into(),
        goal: format!("≥ {goal:.0} transitions/s on {database}"),
        met: Some(platform >= goal),
        details,
    }
}

/// The ordinary path after the report, with no callback (an inspector's report has nobody to call):
/// (minutes after the report, action, role).
pub(super) fn lifecycle() -> Vec<(i64, Action, Role)> {
    vec![
        (10, Action::Accept, Role::Operator),
        (20, Action::Register, Role::ShiftLead),
        (
            30,
            Action::Dispatch {
                department: "sanitation".to_string(),
            },
            Role::Dispatcher,
        ),
        (
            90,
            Action::Handle {
                feedback: "cover replaced".to_string(),
                evidence: vec![PHOTO.to_string()],
            },
            Role::DepartmentHandler,
        ),
        (100, Action::CheckPass, Role::Inspector),
        (
            110,
            Action::Close {
                closure: ClosureType::Normal,
            },
            Role::ShiftLead,
        ),
    ]
}

fn actor(role: Role) -> &'static str {
    match role {
        Role::Operator => "op-1",
        Role::ShiftLead => "lead-1",
        Role::Dispatcher => "disp-1",
        Role::DepartmentHandler => "handler-1",
        Role::Inspector => "insp-07",
        Role::Supervisor => "sup-1",
        Role::Admin => "admin",
    }
}

fn clock(stage: SlaStage, at: DateTime<Utc>, minutes: u32) -> StageClock {
    StageClock::start(
        stage,
        ClockKind::WorkingTime,
        at,
        NonZeroU32::new(minutes).unwrap_or(NonZeroU32::MIN),
    )
}

fn new_case(at: DateTime<Utc>) -> NewCase {
    NewCase {
        category: "C0101".to_string(),
        source: Source::Inspector,
        title: String::new(),
        description: "井盖缺失 manhole cover missing".to_string(),
        address: "东城区东华门街道 Donghuamen".to_string(),
        lon: 116.41,
        lat: 39.91,
        grid: Some(place()),
        reporter: "insp-07".to_string(),
        reporter_role: Some(Role::Inspector),
        verification_required: false,
        incident_id: None,
        device_id: None,
        initial: CaseState::Reported,
        clock: Some(clock(SlaStage::Acceptance, at, 30)),
    }
}

fn place() -> GridPlace {
    GridPlace::Inside {
        cell: "110101001001001".to_string(),
        street: "110101001".to_string(),
        community: "110101001001".to_string(),
    }
}

/// An incident as the rules open it: a manhole cover tilted past 15°, with its one evidence reading.
pub(super) fn incident(i: usize, now_ms: i64) -> anyhow::Result<Incident> {
    let value = Value::Number(30.0 + (i % 50) as f64 * 0.1);
    Ok(Incident {
        id: i as i64 + 1,
        device_id: DeviceId::new(&format!("dev-{i:07}"))?,
        kind: DeviceKind::new("manhole_cover")?,
        rule_id: "manhole_tilt".to_string(),
        category_code: "C0101".to_string(),
        category_name_zh: "井盖".to_string(),
        category_name_en: "Manhole cover".to_string(),
        measurement: "tilt".to_string(),
        value: value.clone(),
        unit: Some("deg".to_string()),
        condition: "tilt > 15".to_string(),
        lon: 116.372 + 0.075 * ((i % 1000) as f64 / 1000.0),
        lat: 39.858 + 0.115 * ((i / 1000 % 1000) as f64 / 1000.0),
        grid: Some(place()),
        state: IncidentState::Open,
        opened_at: now_ms + i as i64,
        cleared_at: None,
        clear_value: None,
        evidence: vec![EvidenceReading {
            name: "tilt".to_string(),
            value,
            unit: Some("deg".to_string()),
            time: now_ms + i as i64,
        }],
    })
}

pub(super) fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn local(text: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(
        DateTime::parse_from_str(&format!("{text} +0800"), "%Y-%m-%d %H:%M %z")?
            .with_timezone(&Utc),
    )
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// One connection with the store's pragmas, so the baseline pays the same fsyncs.
async fn bare_pool(path: &Path) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(&sqlite_url(path))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?)
}

/// The incidents table as the store's migrations leave it (columns and indexes), so the baseline
/// maintains the same indexes.
const INCIDENTS_DDL: &str = "
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY NOT NULL, device_id TEXT NOT NULL, kind TEXT NOT NULL,
    rule_id TEXT NOT NULL, category_code TEXT NOT NULL, category_name_zh TEXT NOT NULL,
    category_name_en TEXT NOT NULL, measurement TEXT NOT NULL, value TEXT NOT NULL, unit TEXT,
    condition TEXT NOT NULL, lon REAL NOT NULL, lat REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'cleared')), opened_at INTEGER NOT NULL,
    cleared_at INTEGER, clear_value TEXT, evidence TEXT NOT NULL, grid TEXT, cell TEXT
);
CREATE INDEX incidents_by_device ON incidents (device_id, id);
CREATE INDEX incidents_by_state ON incidents (state, id);
CREATE INDEX incidents_by_opened ON incidents (opened_at);
CREATE UNIQUE INDEX incidents_one_open ON incidents (device_id, rule_id) WHERE state = 'open';
CREATE INDEX incidents_by_cell ON incidents (cell, id);
";

/// A directory of its own under the system temp dir, removed when dropped (also on error).
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "cityops-bench-{label}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
