//! Batched reads of cases about to change on PostgreSQL: the reads of concurrent callers go to the
//! server as ONE statement.
//!
//! A transition on PostgreSQL reads its case without a lock, decides, and hands its writes to the
//! group commit ([`super::pg_write`]). Under load the writes go many to a statement while each read
//! was still a round trip of its own, and on a small shared machine a round trip's wake-ups cost more
//! than the read: a caller queues its read, a caller that gets one of [`READERS`] turns reads up to
//! [`MAX_BATCH`] queued ones by id in one statement (reserving a clock id for each that asked, as
//! the single read does), and every caller gets its own case. A lone caller reads alone at once.
//! A read changes nothing, so unlike a write there is nothing to undo if a caller goes away.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{AnyPool, Row as _};
use tokio::sync::oneshot;

use super::batcher::{Batcher, Waited};
use super::{Case, CaseId, CaseStoreError, audit, load_for_change, rows};
use crate::Dialect;

/// The most reads one statement carries.
const MAX_BATCH: usize = 64;

/// How many read statements run at once.
const READERS: usize = 2;

/// A case as read for a change: the case, its audit head, and a reserved clock id if asked for.
pub(super) type Loaded = (Case, audit::Head, Option<i64>);

/// The cases of `$1` (ids) in their order (`read_ord`, from 1), each with a clock id reserved where
/// `$2` says so. A missing case has no row.
static STATEMENT: LazyLock<String> = LazyLock::new(|| {
    rows::CASE_SELECT.replacen(
        " FROM cases c ",
        ", r.ord AS read_ord, CASE WHEN r.reserve \
         THEN nextval(pg_get_serial_sequence('case_clocks', 'id')) END AS reserved_clock_id \
         FROM unnest(CAST($1 AS BIGINT[]), CAST($2 AS BOOLEAN[])) WITH ORDINALITY \
         AS r(id, reserve, ord) JOIN cases c ON c.id = r.id ",
        1,
    )
});

pub(super) struct Job {
    case_id: CaseId,
    reserve: bool,
    /// `Ok(None)`: no such case.
    reply: oneshot::Sender<Result<Option<Loaded>, String>>,
}

/// The reads of one store waiting to go, and the turns to send them.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(super) batches: Batcher<Job>,
    /// Statements that read cases, and the reads they carried.
    statements: AtomicU64,
    reads: AtomicU64,
}

/// How cases were read for changes on PostgreSQL: `reads / statements` is the mean batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub statements: u64,
    pub reads: u64,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "read of case {}", self.case_id)
    }
}

impl Default for Reader {
    fn default() -> Self {
        Self {
            batches: Batcher::new(READERS),
            statements: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }
    }
}

impl Reader {
    pub fn stats(&self) -> ReadStats {
        ReadStats {
            statements: self.statements.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
        }
    }

    /// Reads case `case_id` for a change (reserving a clock id when `reserve`), with whatever other
    /// reads are queued.
    pub(super) async fn read(
        &self,
        pool: &AnyPool,
        case_id: CaseId,
        reserve: bool,
    ) -> Result<Loaded, CaseStoreError> {
        let (reply, answer) = oneshot::channel();
        self.batches.push(Job {
            case_id,
            reserve,
            reply,
        });
        let waited = self
            .batches
            .wait(
                answer,
                || self.batches.take(MAX_BATCH, |_, _| true),
                |batch, turn| {
                    self.statements.fetch_add(1, Ordering::Relaxed);
                    self.reads.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        read_batch(&pool, batch).await;
                        drop(turn);
                    })
                },
            )
            .await;
        match waited {
            Waited::Answer(answer) => answered(case_id, answer),
            Waited::Closed => Err(anyhow::anyhow!("the case reader is closed").into()),
        }
    }
}

fn answered(
    case_id: CaseId,
    answer: Result<Result<Option<Loaded>, String>, oneshot::error::RecvError>,
) -> Result<Loaded, CaseStoreError> {
    match answer {
        Ok(Ok(Some(loaded))) => Ok(loaded),
        Ok(Ok(None)) => Err(CaseStoreError::NotFound(format!("case {case_id}"))),
        Ok(Err(e)) => Err(anyhow::anyhow!("Failed to read case {case_id}: {e}").into()),
        Err(_) => Err(anyhow::anyhow!("the read of case {case_id} was given up").into()),
    }
}

/// Reads a batch and answers each job.
async fn read_batch(pool: &AnyPool, batch: Vec<Job>) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            for job in batch {
                let _ = job.reply.send(Err(e.to_string()));
            }
            return;
        }
    };
    if let [job] = &batch[..] {
        let result = load_for_change(
            &mut conn,
            Dialect::Postgres,
            job.case_id,
            false,
            job.reserve,
        )
        .await;
        let result = match result {
            Ok(loaded) => Ok(Some(loaded)),
            Err(CaseStoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(format!("{e:#}")),
        };
        let job = batch.into_iter().next().expect("one job");
        let _ = job.reply.send(result);
        return;
    }
    let ids = rows::pg_array(batch.iter().map(|job| job.case_id.to_string()));
    let reserves = rows::pg_array(
        batch
            .iter()
            .map(|job| if job.reserve { "t" } else { "f" }.into()),
    );
    let rows = sqlx::query(STATEMENT.as_str())
        .bind(ids)
        .bind(reserves)
        .fetch_all(&mut *conn)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            for job in batch {
                let _ = job.reply.send(Err(e.to_string()));
            }
            return;
        }
    };
    // `None` until its row comes: a case with no row does not exist.
    let mut answers: Vec<Option<Result<Option<Loaded>, String>>> =
        (0..batch.len()).map(|_| None).collect();
    for row in &rows {
        let loaded = (|| -> anyhow::Result<(usize, Loaded)> {
            let ord: i64 = row.try_get("read_ord")?;
            let index = usize::try_from(ord - 1)?;
            let reserved: Option<i64> = row.try_get("reserved_clock_id")?;
            Ok((
                index,
                (
                    rows::case_from_row(row)?,
                    audit::Head::from_case_row(row)?,
                    reserved,
                ),
            ))
        })();
        match loaded {
            Ok((index, loaded)) if index < answers.len() => answers[index] = Some(Ok(Some(loaded))),
            Ok((index, _)) => {
                tracing::error!(index, "a batched case read answered a row it was not asked")
            }
            Err(e) => {
                for answer in answers.iter_mut().filter(|a| a.is_none()) {
                    *answer = Some(Err(format!("{e:#}")));
                }
            }
        }
    }
    for (job, answer) in batch.into_iter().zip(answers) {
        let _ = job.reply.send(answer.unwrap_or(Ok(None)));
    }
}
