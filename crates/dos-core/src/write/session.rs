//! The pack writer session: the one way objects get into packs.
//!
//! Two threads besides the caller's: the preparer (which cuts the pushed items into chunks and
//! prepares each on the rayon pool) and the committer (index transactions). The caller's own
//! thread is the ordered writer, inside [`PackWriter::push`] and [`PackWriter::finish`], and
//! outcomes are reported on it, in input order, once durable.

use crossbeam_channel::Select;

use crate::container::Container;
use crate::error::Error as ContainerError;
use crate::progress::{Progress, Unit};
use crate::write::Error;
use crate::write::commit::Committer;
use crate::write::options::PackWriteOptions;
use crate::write::outcome::{PackWriteSummary, StoreOutcome};
use crate::write::prepare::{GROUP_ITEMS, Items, Preparer, StageParams, StagedChunk};
use crate::write::source::PackItem;
use crate::write::writer::Writer;

/// Called with each item's position (in push order) and outcome, once the outcome is durable.
type OnOutcome<'a> = Box<dyn FnMut(usize, StoreOutcome) + 'a>;

/// What one wait on the preparer brought.
enum Step {
    /// The group was handed over.
    Sent,
    /// The preparer no longer takes items (it stopped at an error).
    PreparerStopped,
    /// A prepared chunk.
    Prepared(StagedChunk),
    /// The preparer is gone without a word (it panicked).
    PreparerHungUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Ended by an error (rolled back).
    Failed,
    Finished,
}

/// A session writing objects straight into pack files, in batches: see
/// [`Container::pack_writer`].
pub struct PackWriter<'a> {
    writer: Writer<'a>,
    on_outcome: OnOutcome<'a>,
    progress: &'a dyn Progress,
    preparer: Preparer,
    /// Items not yet handed to the preparer.
    group: Items,
    next: usize,
    state: State,
}

impl std::fmt::Debug for PackWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackWriter")
            .field("pushed", &self.next)
            .field("state", &self.state)
            .finish()
    }
}

impl Container {
    /// Start writing objects straight into pack files.
    ///
    /// Push items with [`PackWriter::push`] and end with [`PackWriter::finish`]. Hashing and
    /// compression run in parallel; one writer appends in input order to the pack Python would
    /// choose, under its lock file. For every batch the pack is fsynced before the batch's
    /// index rows are committed in one transaction. `on_outcome(i, outcome)` is called for item
    /// `i` (counted from 0 in push order) once its outcome is final — the object durably
    /// stored, found already stored, or not stored and why — in input order, on the thread
    /// that pushes.
    ///
    /// On error or interruption, everything committed before stays; uncommitted bytes are cut
    /// from the pack. A writer dropped without `finish` rolls back the same way.
    pub fn pack_writer<'a>(
        &'a self,
        opts: &PackWriteOptions,
        progress: &'a dyn Progress,
        on_outcome: impl FnMut(usize, StoreOutcome) + 'a,
    ) -> Result<PackWriter<'a>, Error> {
        self.writable("writing to packs")?;
        let params = StageParams {
            hash: self.config.hash_type,
            mode: opts.compress,
            level: self.config.compression,
            large: opts.tuning.large_object,
        };
        let threads = |e| ContainerError::io(self.path(), "start a writer thread", e);
        let committer =
            Committer::start(self.index_handle(), self.io.faults.clone()).map_err(threads)?;
        let chunk_budget = (opts.tuning.memory_budget / 8).max(1) as u64;
        let preparer = Preparer::start(params, chunk_budget).map_err(threads)?;
        progress.start(opts.total_hint, Unit::Bytes, "Writing to packs");
        Ok(PackWriter {
            writer: Writer::new(self, opts.clone(), progress, committer),
            on_outcome: Box::new(on_outcome),
            progress,
            preparer,
            group: Vec::with_capacity(GROUP_ITEMS),
            next: 0,
            state: State::Open,
        })
    }
}

impl PackWriter<'_> {
    /// Add one object; returns its position (the `i` its outcome is reported with). Items are
    /// prepared in chunks on the worker threads and written in order; prepared chunks are
    /// written during later pushes and by [`Self::finish`].
    pub fn push(&mut self, item: impl Into<PackItem>) -> Result<usize, Error> {
        if self.state != State::Open {
            return Err(Error::Stopped);
        }
        let idx = self.next;
        self.next += 1;
        self.group.push((idx, item.into()));
        if self.group.len() >= GROUP_ITEMS {
            let r = self.dispatch();
            self.settle(r)?;
        }
        Ok(idx)
    }

    /// Write everything pushed, commit it, and wait until it is durable.
    pub fn finish(mut self) -> Result<PackWriteSummary, Error> {
        if self.state != State::Open {
            return Err(Error::Stopped);
        }
        let r = self.drain();
        self.settle(r)?;
        self.state = State::Finished;
        self.progress.finish();
        Ok(std::mem::take(&mut self.writer.summary))
    }

    /// Objects pushed so far.
    pub fn pushed(&self) -> usize {
        self.next
    }

    /// What was done so far (the summary [`Self::finish`] returns is the final one).
    pub fn summary(&self) -> &PackWriteSummary {
        &self.writer.summary
    }

    /// Hand the current group to the preparer; while it is busy, write what it has prepared.
    fn dispatch(&mut self) -> Result<(), Error> {
        let mut group = Some(std::mem::replace(
            &mut self.group,
            Vec::with_capacity(GROUP_ITEMS),
        ));
        while group.is_some() {
            let step = {
                let Some(todo) = self.preparer.todo.as_ref() else {
                    return Err(Error::Stopped);
                };
                let done = &self.preparer.done;
                let mut sel = Select::new();
                let send_op = sel.send(todo);
                sel.recv(done);
                let op = sel.select();
                if op.index() == send_op {
                    let sent = group.take().map(|g| op.send(todo, g));
                    match sent {
                        Some(Ok(())) => Step::Sent,
                        _ => Step::PreparerStopped,
                    }
                } else {
                    match op.recv(done) {
                        Ok(staged) => Step::Prepared(staged),
                        Err(_) => Step::PreparerHungUp,
                    }
                }
            };
            match step {
                Step::Sent => {}
                // The preparer stopped at a source error: it is waiting in `done`, and writing
                // up to it returns it. (Had it stopped without one, the group could not be
                // written: the session ends.)
                Step::PreparerStopped => {
                    self.write_all_prepared()?;
                    return Err(Error::Stopped);
                }
                Step::Prepared(staged) => self.write(staged)?,
                Step::PreparerHungUp => self.preparer_failed(),
            }
        }
        // Write one chunk if one is ready, without waiting: the caller goes back to pushing, so
        // that the preparer does not run out of items while the writer catches up.
        if let Ok(staged) = self.preparer.done.try_recv() {
            self.write(staged)?;
        }
        Ok(())
    }

    /// After the last push: prepare and write the rest, then commit.
    fn drain(&mut self) -> Result<(), Error> {
        if !self.group.is_empty() {
            self.dispatch()?;
        }
        self.write_all_prepared()?;
        self.writer.finish()?;
        self.report();
        Ok(())
    }

    /// Close the preparer's input and write every chunk it still delivers.
    fn write_all_prepared(&mut self) -> Result<(), Error> {
        self.preparer.todo = None;
        while let Ok(staged) = self.preparer.done.recv() {
            self.write(staged)?;
        }
        // The preparer ended without an error of its own: it finished, or it panicked.
        if let Some(t) = self.preparer.thread.take()
            && let Err(panic) = t.join()
        {
            std::panic::resume_unwind(panic);
        }
        Ok(())
    }

    /// The preparer hung up without reporting an error: it panicked; continue that panic here.
    fn preparer_failed(&mut self) -> ! {
        self.preparer.todo = None;
        if let Some(t) = self.preparer.thread.take()
            && let Err(panic) = t.join()
        {
            std::panic::resume_unwind(panic);
        }
        unreachable!("the preparer keeps its channels open until it stops")
    }

    fn write(&mut self, staged: StagedChunk) -> Result<(), Error> {
        self.writer.write_chunk(staged?)?;
        self.report();
        Ok(())
    }

    /// Report the outcomes that became durable.
    fn report(&mut self) {
        for (i, o) in self.writer.done.drain(..) {
            (self.on_outcome)(i, o);
        }
    }

    /// On error: report what was committed, then roll back and stop.
    fn settle<T>(&mut self, r: Result<T, Error>) -> Result<T, Error> {
        if r.is_err() {
            let _ = self.writer.wait_commit();
            self.report();
            self.stop();
        }
        r
    }

    /// Roll back what was not committed and stop the threads.
    fn stop(&mut self) {
        self.state = State::Failed;
        self.writer.roll_back();
        self.preparer.todo = None;
        // Dropping our end of `done` ends a preparer blocked on it.
        self.preparer.done = crossbeam_channel::never();
        if let Some(t) = self.preparer.thread.take() {
            let _ = t.join();
        }
        self.progress.finish();
    }
}

impl Drop for PackWriter<'_> {
    fn drop(&mut self) {
        if self.state == State::Open {
            // Dropped without `finish` (an error of the caller, or a panic): nothing more is
            // reported, what was not committed is cut.
            self.stop();
        }
    }
}
