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
//! A change cancelled half-way (its future dropped while it holds the turn) leaves its savepoint open;
//! the next holder rolls back to it first. Other writers ([`begin_write`]) commit an open batch before
//! their own transaction. PostgreSQL has its own group commit of case changes: `cases/pg_write.rs`.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::{Any, AnyConnection, AnyPool, Executor as _, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::Dialect;

/// The most changes one commit holds: bounds the wait of the first of them.
pub(crate) const MAX_GROUP: usize = 64;

/// The write turn of one SQLite database in this process, with the batch it may hold open.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteTurn {
    state: Arc<Mutex<TurnState>>,
    /// Callers queued for the turn (a hint: someone will take an open batch on).
    waiting: Arc<AtomicUsize>,
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
    /// A change runs (still set if its caller went away half-way).
    in_change: bool,
    /// The running change has a savepoint: it joined a batch with members. The first change of a
    /// batch has none (a failure of it rolls back the whole, so far empty, transaction), which spares
    /// a lone caller two statements.
    savepoint: bool,
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
    async fn take(&self) -> OwnedMutexGuard<TurnState> {
        let _waiting = Waiting::new(&self.waiting);
        self.state.clone().lock_owned().await
    }
}

/// Commits the open batch, if any, and tells its members.
async fn commit_batch(state: &mut TurnState) {
    let Some(batch) = state.open.take() else {
        return;
    };
    let result = batch.tx.commit().await.map_err(|e| e.to_string());
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
    if !batch.savepoint {
        // The first change of the batch: nothing else is in the transaction.
        debug_assert!(batch.members.is_empty());
        state.open = None;
        return;
    }
    let undone: sqlx::Result<()> = async {
        batch.tx.execute("ROLLBACK TO SAVEPOINT change").await?;
        batch.tx.execute("RELEASE SAVEPOINT change").await?;
        Ok(())
    }
    .await;
    match undone {
        Ok(()) => batch.in_change = false,
        Err(e) => {
            tracing::error!(error = %e, "could not roll a case change back to its savepoint; the batch is given up");
            if let Some(batch) = state.open.take() {
                for member in batch.members {
                    let _ = member.send(Err(format!("rolled back with a failed change: {e}")));
                }
                // Dropping the transaction rolls it back.
            }
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
            if state.open.as_ref().is_some_and(|b| b.in_change) {
                roll_back_change(&mut state).await;
            }
            commit_batch(&mut state).await;
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
    /// Takes the turn and starts a change.
    pub async fn begin(pool: &AnyPool, dialect: Dialect, turn: &WriteTurn) -> sqlx::Result<Self> {
        if dialect == Dialect::Postgres {
            return Ok(ChangeTx::Alone(pool.begin().await?));
        }
        let mut state = turn.take().await;
        if state.open.as_ref().is_some_and(|b| b.in_change) {
            // The change before went away half-way: nothing of it may be committed.
            roll_back_change(&mut state).await;
        }
        if state.open.is_none() {
            state.open = Some(Batch {
                tx: pool.begin_with("BEGIN IMMEDIATE").await?,
                members: Vec::new(),
                in_change: false,
                savepoint: false,
            });
        }
        let batch = state.open.as_mut().expect("a batch was just opened");
        batch.savepoint = !batch.members.is_empty();
        if batch.savepoint
            && let Err(e) = batch.tx.execute("SAVEPOINT change").await
        {
            // The transaction is unusable: give up the batch, its members are told.
            if let Some(batch) = state.open.take() {
                for member in batch.members {
                    let _ = member.send(Err(format!("the shared transaction failed: {e}")));
                }
            }
            return Err(e);
        }
        batch.in_change = true;
        Ok(ChangeTx::Grouped {
            state,
            turn: turn.clone(),
        })
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
                            commit_batch(&mut state).await;
                        }
                        return Err(e);
                    }
                    Ok(value) => value,
                };
                let batch = state.open.as_mut().expect("a change runs in an open batch");
                if batch.savepoint
                    && let Err(e) = batch.tx.execute("RELEASE SAVEPOINT change").await
                {
                    let message = format!("could not release a change's savepoint: {e}");
                    roll_back_change(&mut state).await;
                    commit_batch(&mut state).await;
                    return Err(fail(message));
                }
                batch.in_change = false;
                let (done, mut committed) = oneshot::channel();
                batch.members.push(done);
                if turn.waiting.load(Ordering::SeqCst) == 0 || batch.members.len() >= MAX_GROUP {
                    commit_batch(&mut state).await;
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
                                && state.open.as_ref().is_some_and(|b| !b.in_change)
                            {
                                commit_batch(&mut state).await;
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
