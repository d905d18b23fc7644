//! Turn-taking for statements that carry the work of several callers (PostgreSQL's batched case
//! reads and writes: `pg_read.rs`, `pg_write.rs`).
//!
//! A caller queues its job and waits for its answer or a turn, whichever comes first. With a turn it
//! takes what is queued (its own job among it, unless another caller took that already) and runs
//! the batch in a task of its own, which keeps the turn until the statement is done: a caller going
//! away cannot cut a statement in half nor free a turn early, and the other callers of its batch
//! still get their answers. A lone caller finds a free turn at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// A queue of jobs and the turns to run them.
#[derive(Debug)]
pub(super) struct Batcher<J> {
    queue: Mutex<VecDeque<J>>,
    turns: Arc<Semaphore>,
    #[cfg(test)]
    count: usize,
}

/// How a caller's wait ended.
pub(super) enum Waited<T> {
    /// Its answer, or its sender dropped without one (the batch was given up).
    Answer(Result<T, oneshot::error::RecvError>),
    /// The turns are closed.
    Closed,
}

impl<J> Batcher<J> {
    pub fn new(turns: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            turns: Arc::new(Semaphore::new(turns)),
            #[cfg(test)]
            count: turns,
        }
    }

    pub fn push(&self, job: J) {
        self.queue().push_back(job);
    }

    /// Drops the queued jobs `keep` says no to (a caller that went away takes its job out).
    pub fn retain(&self, keep: impl FnMut(&J) -> bool) {
        self.queue().retain(keep);
    }

    /// Takes up to `max` queued jobs, oldest first, each one `fits` the batch so far; the others stay
    /// queued in their order.
    pub fn take(&self, max: usize, mut fits: impl FnMut(&[J], &J) -> bool) -> Vec<J> {
        let mut queue = self.queue();
        let mut batch: Vec<J> = Vec::new();
        let mut rest = VecDeque::with_capacity(queue.len());
        while let Some(job) = queue.pop_front() {
            if batch.len() < max && fits(&batch, &job) {
                batch.push(job);
            } else {
                rest.push_back(job);
            }
        }
        *queue = rest;
        batch
    }

    /// Waits for `answer`; whenever a turn comes first, takes a batch with `take` and runs it with
    /// `run` (which spawns the batch's task and hands it the turn), until the answer comes.
    pub async fn wait<T>(
        &self,
        mut answer: oneshot::Receiver<T>,
        take: impl Fn() -> Vec<J>,
        run: impl Fn(Vec<J>, OwnedSemaphorePermit) -> tokio::task::JoinHandle<()>,
    ) -> Waited<T> {
        loop {
            tokio::select! {
                biased;
                outcome = &mut answer => return Waited::Answer(outcome),
                turn = self.turns.clone().acquire_owned() => {
                    let Ok(turn) = turn else {
                        return Waited::Closed;
                    };
                    let batch = take();
                    if batch.is_empty() {
                        // Another caller took this job: its answer comes.
                        drop(turn);
                        return Waited::Answer(answer.await);
                    }
                    let _ = run(batch, turn).await;
                }
            }
        }
    }

    /// Takes every turn until the permit is dropped: the jobs that come meanwhile queue and go
    /// together (tests).
    #[cfg(test)]
    pub async fn hold_turns(&self) -> OwnedSemaphorePermit {
        self.turns
            .clone()
            .acquire_many_owned(self.count as u32)
            .await
            .expect("the turns are never closed")
    }

    /// Waits until `n` jobs are queued (tests: with the turns held, they then go together).
    #[cfg(test)]
    pub async fn until_queued(&self, n: usize) {
        let waited = std::time::Instant::now();
        while self.queue().len() < n {
            assert!(
                waited.elapsed() < std::time::Duration::from_secs(10),
                "{n} jobs did not all queue"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<J>> {
        self.queue.lock().expect("a batch queue is never poisoned")
    }
}
