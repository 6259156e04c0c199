//! The committer thread: index transactions of batches whose pack bytes are already durable,
//! run while the writer appends the next batch (at most one in flight).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::Error;
use crate::fault::FaultPlan;
use crate::index::{Index, NewRow};
use crate::write::outcome::StoreOutcome;

/// A batch whose pack bytes are durable, for the committer to commit to the index.
pub(super) struct CommitJob {
    pub rows: Vec<NewRow>,
    /// Outcomes to report once the rows are committed.
    pub pending: Vec<(usize, StoreOutcome)>,
    /// Pack position after the batch (what an error later rolls back to).
    pub pos: u64,
}

/// The committer's answer: the job's outcomes and position, or why the commit failed.
pub(super) type CommitDone = std::result::Result<(Vec<(usize, StoreOutcome)>, u64), CommitFailed>;

/// A commit that reported an error.
pub(super) struct CommitFailed {
    /// The error.
    pub error: Error,
    /// Whether the batch may be in the index all the same (it was found there after the error,
    /// or the index could not be asked): its pack bytes must then stay.
    pub maybe_committed: bool,
}

/// The writer's ends of the committer thread.
pub(super) struct Committer {
    jobs: Option<crossbeam_channel::Sender<CommitJob>>,
    results: crossbeam_channel::Receiver<CommitDone>,
    thread: Option<JoinHandle<()>>,
}

/// How the writer waits for a commit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Until it is done.
    Block,
    /// Only if it is done already.
    Poll,
}

impl Committer {
    /// Start the committer thread on the container's index connection.
    pub fn start(index: Arc<Mutex<Index>>, faults: FaultPlan) -> std::io::Result<Self> {
        let (job_tx, job_rx) = crossbeam_channel::bounded::<CommitJob>(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<CommitDone>(1);
        let thread = std::thread::Builder::new()
            .name("dos-commit".into())
            .spawn(move || {
                for job in job_rx {
                    let r = {
                        let mut idx = index.lock().unwrap_or_else(|p| p.into_inner());
                        let r = idx.insert_batch(&job.rows).and_then(|_| {
                            faults
                                .point("index.commit.after")
                                .map_err(|e| Error::io(idx.path(), "commit index", e))
                        });
                        r.map_err(|error| CommitFailed {
                            error,
                            maybe_committed: idx.batch_present(&job.rows).unwrap_or(true),
                        })
                    };
                    let r = r.map(|()| (job.pending, job.pos));
                    if done_tx.send(r).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(job_tx),
            results: done_rx,
            thread: Some(thread),
        })
    }

    /// Hand over a job (the previous one must have been collected).
    pub fn send(&mut self, job: CommitJob) {
        let sent = self.jobs.as_ref().map(|j| j.send(job));
        if !matches!(sent, Some(Ok(()))) {
            self.resume_panic()
        }
    }

    /// The result of the job in flight: `None` if `wait` is [`Wait::Poll`] and it is not done.
    pub fn collect(&mut self, wait: Wait) -> Option<CommitDone> {
        let r = match wait {
            Wait::Block => self.results.recv().ok(),
            Wait::Poll => match self.results.try_recv() {
                Ok(d) => Some(d),
                Err(crossbeam_channel::TryRecvError::Empty) => return None,
                Err(crossbeam_channel::TryRecvError::Disconnected) => None,
            },
        };
        match r {
            Some(done) => Some(done),
            // The thread only hangs up when it panicked.
            None => self.resume_panic(),
        }
    }

    /// The committer thread is gone, which only a panic in it can cause: continue that panic
    /// here.
    fn resume_panic(&mut self) -> ! {
        self.jobs = None;
        if let Some(t) = self.thread.take()
            && let Err(panic) = t.join()
        {
            std::panic::resume_unwind(panic);
        }
        unreachable!("the committer thread keeps its channels open until the writer closes them")
    }

    /// The result of the job in flight, waiting for it; `None` if the thread is gone (for a
    /// roll-back, which must not panic again while a panic unwinds).
    pub fn settle(&mut self) -> Option<CommitDone> {
        self.results.recv().ok()
    }

    /// Let the thread end and wait for it (a job in flight is committed first).
    pub fn stop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.stop();
    }
}
