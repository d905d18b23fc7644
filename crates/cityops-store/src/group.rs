//! Group commit of case changes on SQLite: concurrent changes share one transaction and one fsync,
//! each inside a savepoint of its own, and each caller returns only once that commit is durable.
//!
//! SQLite has one writer, and a durable commit costs an fsync of the WAL: one transaction per change
//! caps changes at the disk's fsyncs per second whatever the number of callers. So the writers of one
//! process take turns on an async lock (first come, first served; never SQLite's busy handler, which
//! sleeps a millisecond or more between retries), and a case change that finds others queued behind it
//! leaves the transaction open for them:
//!
//! 1. a change takes the turn, opens the shared transaction if none is open (`BEGIN IMMEDIATE`) and
//!    runs inside `SAVEPOINT change` if the batch already holds changes (the first runs bare);
//! 2. refused or failed, it rolls back to its savepoint (the first change: the whole transaction):
//!    nothing of it stays, the others' changes do;
//! 3. done, it releases the savepoint and joins the batch; if nobody waits for the turn (or the batch
//!    holds [`MAX_GROUP`] changes) it commits the batch and tells every member, else it hands the open
//!    transaction on;
//! 4. every member waits for the commit that holds its change: a failed commit is an error for all of
//!    them, and none of their changes stays. A member also commits the batch itself if the one it was
//!    handed to went away (a cancelled request), so no batch is left open.
//!
//! Every statement is a call to the connection's SQLite thread and back, and on two cores those
//! hand-offs, not SQLite, were most of a transition's time. So a change begun with
//! [`ChangeTx::begin_bundled`] reads first, outside any savepoint (a read changes nothing), and sends
//! all its writes in ONE call ([`ChangeTx::write`]): `SAVEPOINT change; …writes…; RELEASE SAVEPOINT
//! change`. If a write fails, SQLite stops there and the savepoint is still open to roll back to;
//! once the call returned, the writes are part of the batch.
//!
//! A change cancelled half-way (its future dropped while it holds the turn) leaves its savepoint open;
//! the next holder rolls back to it first (a change that fails or is cancelled after its bundled
//! writes were released cannot be taken out any more: the batch is given up and its members are
//! told). Other writers ([`begin_write`], [`write_alone`]) commit an open batch before their own
//! transaction. PostgreSQL has its own group commit of case changes: `cases/pg_write.rs`.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::TryStreamExt as _;
use sqlx::any::{AnyQueryResult, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Either, Executor as _, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::Dialect;
use crate::cases::WriteStats;
use crate::db::SqlBuilder;

/// The most changes one commit holds: bounds the wait of the first of them.
pub(crate) const MAX_GROUP: usize = 64;

/// The write turn of one SQLite database in this process, with the batch it may hold open.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteTurn {
    state: Arc<Mutex<TurnState>>,
    /// Callers queued for the turn (a hint: someone will take an open batch on).
    waiting: Arc<AtomicUsize>,
    counts: Arc<Counts>,
}

/// Batches committed and the changes they held: `changes / commits` is the mean group size.
#[derive(Debug, Default)]
struct Counts {
    commits: AtomicU64,
    changes: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct TurnState {
    open: Option<Batch>,
}

#[derive(Debug)]
struct Batch {
    tx: Transaction<'static, Any>,
    /// Changes done and waiting for the commit.
    members: Vec<oneshot::Sender<Result<(), String>>>,
    /// The running change (still set if its caller went away half-way).
    change: Option<Change>,
}

/// Where the running change of a batch stands, which says how to take it out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The first change of the batch, without a savepoint: a failure of it rolls back the whole, so
    /// far empty, transaction (which spares a lone caller two statements).
    First,
    /// It joined a batch with members and runs inside `SAVEPOINT change`, opened when it began.
    InSavepoint,
    /// It joined a batch with members and has only read so far: its savepoint opens with its writes.
    Reading,
    /// Its bundled writes were sent: their savepoint is open if they failed.
    Writing,
    /// Its bundled writes all ran and their savepoint was released: they are part of the batch.
    Written,
}

/// Counts a caller as waiting for the turn until it has it, also when its future is dropped.
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WriteTurn {
    /// Grouped commits of case changes so far, and the changes they committed.
    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            statements: self.counts.commits.load(Ordering::Relaxed),
            changes: self.counts.changes.load(Ordering::Relaxed),
            // Changes are read under the write turn here: none is ever stale.
            moved_on: 0,
            locked: 0,
        }
    }

    async fn take(&self) -> OwnedMutexGuard<TurnState> {
        let _waiting = Waiting::new(&self.waiting);
        self.state.clone().lock_owned().await
    }
}

/// Commits the open batch, if any, and tells its members.
async fn commit_batch(state: &mut TurnState, counts: &Counts) {
    let Some(batch) = state.open.take() else {
        return;
    };
    let result = batch.tx.commit().await.map_err(|e| e.to_string());
    if result.is_ok() && !batch.members.is_empty() {
        counts.commits.fetch_add(1, Ordering::Relaxed);
        counts
            .changes
            .fetch_add(batch.members.len() as u64, Ordering::Relaxed);
    }
    for member in batch.members {
        let _ = member.send(result.clone());
    }
}

/// Undoes what a change left inside its savepoint; on failure gives up the whole batch (its members
/// are told their changes are not committed).
async fn roll_back_change(state: &mut TurnState) {
    let Some(batch) = state.open.as_mut() else {
        return;
    };
    match batch.change {
        None => return,
        Some(Change::First) => {
            // Nothing else is in the transaction.
            debug_assert!(batch.members.is_empty());
            state.open = None;
            return;
        }
        Some(Change::Reading) => {
            // Nothing written.
            batch.change = None;
            return;
        }
        Some(Change::InSavepoint | Change::Writing) => {}
        Some(Change::Written) => {
            tracing::error!(
                "a case change went away after its writes joined the batch; the batch is given up"
            );
            give_up(state, "a change in the batch went away half-way");
            return;
        }
    }
    let undone: sqlx::Result<()> = async {
        batch.tx.execute("ROLLBACK TO SAVEPOINT change").await?;
        batch.tx.execute("RELEASE SAVEPOINT change").await?;
        Ok(())
    }
    .await;
    match undone {
        Ok(()) => batch.change = None,
        Err(e) => {
            tracing::error!(error = %e, "could not roll a case change back to its savepoint; the batch is given up");
            give_up(state, &format!("rolled back with a failed change: {e}"));
        }
    }
}

/// Rolls the open batch back (by dropping its transaction) and tells its members why.
fn give_up(state: &mut TurnState, why: &str) {
    if let Some(batch) = state.open.take() {
        for member in batch.members {
            let _ = member.send(Err(why.to_string()));
        }
    }
}

/// A write transaction of the store that has the turn: on SQLite the writers of one process queue for
/// it; an open batch of case changes is committed first.
pub(crate) struct Tx {
    inner: Transaction<'static, Any>,
    _turn: Option<OwnedMutexGuard<TurnState>>,
}

impl Tx {
    pub async fn commit(self) -> sqlx::Result<()> {
        self.inner.commit().await
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

/// Starts a write transaction of its own: on SQLite with the write lock taken at once.
pub(crate) async fn begin_write(
    pool: &AnyPool,
    dialect: Dialect,
    turn: &WriteTurn,
) -> sqlx::Result<Tx> {
    match dialect {
        Dialect::Sqlite => {
            let mut state = turn.take().await;
            if state.open.as_ref().is_some_and(|b| b.change.is_some()) {
                roll_back_change(&mut state).await;
            }
            commit_batch(&mut state, &turn.counts).await;
            Ok(Tx {
                inner: pool.begin_with("BEGIN IMMEDIATE").await?,
                _turn: Some(state),
            })
        }
        Dialect::Postgres => Ok(Tx {
            inner: pool.begin().await?,
            _turn: None,
        }),
    }
}

/// Writes `sql` (SQLite: several statements, anonymous placeholders) as a transaction of its own,
/// sent in ONE call to the connection's thread: `BEGIN IMMEDIATE; …; COMMIT`, with the write turn
/// (an open batch of case changes is committed first). Returns once it is durable. On an error the
/// transaction is rolled back and the connection closed, so no pooled connection is left inside a
/// transaction; nothing of the write stays.
pub(crate) async fn write_alone(
    pool: &AnyPool,
    turn: &WriteTurn,
    sql: &mut SqlBuilder<'_>,
) -> sqlx::Result<()> {
    let mut state = turn.take().await;
    if state.open.as_ref().is_some_and(|b| b.change.is_some()) {
        roll_back_change(&mut state).await;
    }
    commit_batch(&mut state, &turn.counts).await;
    let mut conn = pool.acquire().await?;
    sql.wrap("BEGIN IMMEDIATE; ", "; COMMIT");
    // Not kept in the connection's statement cache: the text is every statement of the write, and
    // their row counts make many writes' texts new ones, which would push out the cached statements
    // that are used again (it is prepared each time instead; callers send only small writes).
    let result = conn.execute(sql.build()?.persistent(false)).await;
    if result.is_err() {
        // Wherever it stopped, BEGIN may have run: end the transaction, and the connection.
        let _ = conn.execute("ROLLBACK").await;
        conn.close_on_drop();
    }
    drop(state);
    result.map(|_| ())
}

/// One case change in progress: inside its savepoint of the shared transaction (SQLite) or in a
/// transaction of its own (PostgreSQL). End it with [`ChangeTx::finish`].
pub(crate) enum ChangeTx {
    Grouped {
        state: OwnedMutexGuard<TurnState>,
        turn: WriteTurn,
    },
    Alone(Transaction<'static, Any>),
}

impl ChangeTx {
    /// Takes the turn and starts a change that writes through the connection (`Deref`).
    pub async fn begin(pool: &AnyPool, dialect: Dialect, turn: &WriteTurn) -> sqlx::Result<Self> {
        Self::start(pool, dialect, turn, false).await
    }

    /// Takes the turn and starts a change that reads through the connection and sends all its writes
    /// in one call to [`ChangeTx::write`] (SQLite; on PostgreSQL the same as [`ChangeTx::begin`]).
    pub async fn begin_bundled(
        pool: &AnyPool,
        dialect: Dialect,
        turn: &WriteTurn,
    ) -> sqlx::Result<Self> {
        Self::start(pool, dialect, turn, true).await
    }

    async fn start(
        pool: &AnyPool,
        dialect: Dialect,
        turn: &WriteTurn,
        bundled: bool,
    ) -> sqlx::Result<Self> {
        if dialect == Dialect::Postgres {
            return Ok(ChangeTx::Alone(pool.begin().await?));
        }
        let mut state = turn.take().await;
        if state.open.as_ref().is_some_and(|b| b.change.is_some()) {
            // The change before went away half-way: nothing of it may be committed.
            roll_back_change(&mut state).await;
        }
        if state.open.is_none() {
            state.open = Some(Batch {
                tx: pool.begin_with("BEGIN IMMEDIATE").await?,
                members: Vec::new(),
                change: None,
            });
        }
        let batch = state.open.as_mut().expect("a batch was just opened");
        let change = match (batch.members.is_empty(), bundled) {
            (true, _) => Change::First,
            (false, true) => Change::Reading,
            (false, false) => {
                if let Err(e) = batch.tx.execute("SAVEPOINT change").await {
                    // The transaction is unusable: give up the batch, its members are told.
                    give_up(&mut state, &format!("the shared transaction failed: {e}"));
                    return Err(e);
                }
                Change::InSavepoint
            }
        };
        state.open.as_mut().expect("a batch is open").change = Some(change);
        Ok(ChangeTx::Grouped {
            state,
            turn: turn.clone(),
        })
    }

    /// Runs the change's writes, `sql` (SQLite only: statements separated by `;`, anonymous `?`
    /// placeholders only), in ONE call to the connection: inside its savepoint when the change joined
    /// other changes. Returns the rows each statement affected, in order. At most once per change begun with
    /// [`ChangeTx::begin_bundled`]; on an error the change must end with [`ChangeTx::finish`] and an
    /// error.
    pub async fn write(&mut self, sql: &mut SqlBuilder<'_>) -> sqlx::Result<Vec<u64>> {
        let (conn, change) = match self {
            ChangeTx::Alone(tx) => (&mut **tx, None),
            ChangeTx::Grouped { state, .. } => {
                let batch = state.open.as_mut().expect("a change runs in an open batch");
                (&mut *batch.tx, Some(&mut batch.change))
            }
        };
        let wrapped = match change {
            Some(change @ Some(Change::Reading)) => {
                sql.wrap("SAVEPOINT change; ", "; RELEASE SAVEPOINT change");
                *change = Some(Change::Writing);
                Some(change)
            }
            _ => None,
        };
        let mut outcomes = rows_affected(conn.fetch_many(sql.build()?)).await?;
        if let Some(change) = wrapped {
            *change = Some(Change::Written);
            // The savepoint's own two statements.
            outcomes.pop();
            outcomes.remove(0);
        }
        Ok(outcomes)
    }

    /// Ends the change with its outcome: committed (durably, before this returns) when `result` is
    /// `Ok`, rolled back to nothing when it is an error. A failed commit turns `Ok` into `Err(fail)`.
    pub async fn finish<T, E>(
        self,
        result: Result<T, E>,
        fail: impl FnOnce(String) -> E,
    ) -> Result<T, E> {
        match self {
            ChangeTx::Alone(tx) => match result {
                Ok(value) => match tx.commit().await {
                    Ok(()) => Ok(value),
                    Err(e) => Err(fail(e.to_string())),
                },
                // Dropping the transaction rolls it back.
                Err(e) => Err(e),
            },
            ChangeTx::Grouped { mut state, turn } => {
                let value = match result {
                    Err(e) => {
                        roll_back_change(&mut state).await;
                        // Nobody to hand the batch on to: end it now (a batch without members has
                        // nothing to commit, and must not hold SQLite's write lock).
                        if turn.waiting.load(Ordering::SeqCst) == 0
                            || state.open.as_ref().is_some_and(|b| b.members.is_empty())
                        {
                            commit_batch(&mut state, &turn.counts).await;
                        }
                        return Err(e);
                    }
                    Ok(value) => value,
                };
                let batch = state.open.as_mut().expect("a change runs in an open batch");
                if batch.change == Some(Change::Writing) {
                    // Its bundled writes failed, yet it reports success: take it out.
                    roll_back_change(&mut state).await;
                    commit_batch(&mut state, &turn.counts).await;
                    return Err(fail("a change ended well after its writes failed".into()));
                }
                if batch.change == Some(Change::InSavepoint)
                    && let Err(e) = batch.tx.execute("RELEASE SAVEPOINT change").await
                {
                    let message = format!("could not release a change's savepoint: {e}");
                    roll_back_change(&mut state).await;
                    commit_batch(&mut state, &turn.counts).await;
                    return Err(fail(message));
                }
                batch.change = None;
                let (done, mut committed) = oneshot::channel();
                batch.members.push(done);
                if turn.waiting.load(Ordering::SeqCst) == 0 || batch.members.len() >= MAX_GROUP {
                    commit_batch(&mut state, &turn.counts).await;
                }
                drop(state);
                loop {
                    tokio::select! {
                        outcome = &mut committed => {
                            return match outcome {
                                Ok(Ok(())) => Ok(value),
                                Ok(Err(e)) => Err(fail(e)),
                                Err(_) => Err(fail("the batch holding the change was given up".into())),
                            };
                        }
                        // The caller the batch was handed to may have gone away: commit it then.
                        () = tokio::time::sleep(Duration::from_millis(5)) => {
                            if let Ok(mut state) = turn.state.clone().try_lock_owned()
                                && state.open.as_ref().is_some_and(|b| b.change.is_none())
                            {
                                commit_batch(&mut state, &turn.counts).await;
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Deref for ChangeTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            ChangeTx::Grouped { state, .. } => {
                &state
                    .open
                    .as_ref()
                    .expect("a change runs in an open batch")
                    .tx
            }
            ChangeTx::Alone(tx) => tx,
        }
    }
}

impl DerefMut for ChangeTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            ChangeTx::Grouped { state, .. } => {
                &mut state
                    .open
                    .as_mut()
                    .expect("a change runs in an open batch")
                    .tx
            }
            ChangeTx::Alone(tx) => tx,
        }
    }
}

/// The rows each statement of a multi-statement call affected, in order (rows a statement returns
/// are not kept; sqlx's `Any` driver does not carry SQLite's last inserted id either).
async fn rows_affected(
    mut stream: futures_util::stream::BoxStream<'_, sqlx::Result<Either<AnyQueryResult, AnyRow>>>,
) -> sqlx::Result<Vec<u64>> {
    let mut affected = Vec::new();
    while let Some(item) = stream.try_next().await? {
        if let Either::Left(result) = item {
            affected.push(result.rows_affected());
        }
    }
    Ok(affected)
}
