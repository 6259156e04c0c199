//! The ordered writer: appends prepared objects to packs in input order, skips what is already
//! stored, streams large objects, and ends each batch at the durability point (fsync the pack,
//! then hand the batch's rows to the committer).

use std::collections::HashSet;
use std::io::{self, Read, Write};

use crate::codec::{CompressMode, auto_should_compress};
use crate::container::Container;
use crate::error::IoContext;
use crate::index::NewRow;
use crate::key::ObjectKey;
use crate::location::PackedLocation;
use crate::pack::{AppendSink, PackAppender, choose_pack};
use crate::progress::Progress;
use crate::write::commit::{CommitDone, CommitJob, Committer, Wait};
use crate::write::options::PackWriteOptions;
use crate::write::outcome::{PackWriteSummary, StoreOutcome, Stored};
use crate::write::prepare::Staged;
use crate::write::source::EncodedStream;
use crate::write::{Error, Rejection};

/// Chunk read from a stream.
const STREAM_CHUNK: usize = 1024 * 1024;

/// The single ordered writer of one session.
pub(super) struct Writer<'a> {
    c: &'a Container,
    opts: PackWriteOptions,
    progress: &'a dyn Progress,
    appender: Option<PackAppender>,
    /// Position of the pack after the last commit (what an error rolls back to).
    committed_pos: u64,
    /// A full pack whose last batch is being committed, with the position an error rolls it
    /// back to: its lock is kept until that commit is collected, while the writer goes on in
    /// the next pack.
    retiring: Option<(PackAppender, u64)>,
    rows: Vec<NewRow>,
    /// Keys written and not yet committed.
    batch_keys: HashSet<ObjectKey>,
    /// Keys committed since the current chunk's existence query (which cannot know them).
    chunk_committed: HashSet<ObjectKey>,
    /// Objects handled since the last commit (reported once it is durable).
    pending: Vec<(usize, StoreOutcome)>,
    /// Objects durably stored, not yet reported.
    pub done: Vec<(usize, StoreOutcome)>,
    batch_bytes: u64,
    pub summary: PackWriteSummary,
    committer: Committer,
    /// Whether a batch was handed to the committer and its result not yet collected.
    in_flight: bool,
    /// The pack position after the batch in flight.
    in_flight_pos: u64,
    /// Whether the index was still at `opts.absent_as_of` when last asked.
    fresh: bool,
    /// Offloaded pack ids (sorted), never written to.
    remote_ids: Vec<u64>,
}

/// Why pumping a stream into a pack stopped.
enum PumpError {
    /// Reading the source failed.
    Source(io::Error),
    /// Anything else (writing the pack, interruption).
    Fatal(Error),
}

impl<'a> Writer<'a> {
    pub fn new(
        c: &'a Container,
        opts: PackWriteOptions,
        progress: &'a dyn Progress,
        committer: Committer,
    ) -> Self {
        Self {
            c,
            opts,
            progress,
            appender: None,
            committed_pos: 0,
            retiring: None,
            rows: Vec::new(),
            batch_keys: HashSet::new(),
            chunk_committed: HashSet::new(),
            pending: Vec::new(),
            done: Vec::new(),
            batch_bytes: 0,
            summary: PackWriteSummary::default(),
            committer,
            in_flight: false,
            in_flight_pos: 0,
            fresh: true,
            remote_ids: Vec::new(),
        }
    }

    /// The appender to write the next object to, rolling over to a new pack when full.
    fn appender(&mut self) -> Result<&mut PackAppender, Error> {
        let target = self.c.config.pack_size_target;
        let full = self.appender.as_ref().is_some_and(|a| a.pos() >= target);
        if full {
            // A pack boundary ends the batch. The writer does not wait for its commit: the full
            // pack (and its lock) retires until the commit is collected.
            self.commit()?;
            let next = self.appender.as_ref().map_or(0, |a| a.id() + 1);
            if let Some(old) = self.appender.take()
                && self.in_flight
            {
                self.retiring = Some((old, self.committed_pos));
            }
            self.open_pack(next)?;
        } else if self.appender.is_none() {
            // From the highest pack there is, never a lower free number: a number a repack
            // freed may still be in the hands of a reader that looked an object up there
            // before, and must not come back as another pack.
            self.remote_ids = self
                .c
                .index()
                .remote_packs()?
                .into_iter()
                .map(|r| r.pack_id)
                .collect();
            let highest = crate::pack::list_pack_ids(&self.c.layout)?
                .last()
                .copied()
                .max(self.remote_ids.last().copied())
                .unwrap_or(0);
            self.open_pack(highest)?;
        }
        match self.appender.as_mut() {
            Some(a) => Ok(a),
            None => unreachable!("a pack was just opened"),
        }
    }

    fn open_pack(&mut self, start: u64) -> Result<(), Error> {
        let target = self.c.config.pack_size_target;
        let mut id = choose_pack(&self.c.layout, start, target, &self.remote_ids)?;
        // A pack another writer (or a repack, for its new pack) holds is passed over for the
        // next one, a few times, before waiting for one.
        let mut skips = 0;
        let a = loop {
            let wait = if skips < 8 {
                std::time::Duration::ZERO
            } else {
                self.opts.tuning.lock_timeout
            };
            match PackAppender::open(&self.c.layout, id, wait, &self.c.io) {
                Ok(a) => break a,
                Err(crate::error::Error::PackLocked { .. }) if skips < 8 => {
                    skips += 1;
                    id = choose_pack(&self.c.layout, id + 1, target, &self.remote_ids)?;
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.committed_pos = a.pos();
        self.appender = Some(a);
        Ok(())
    }

    fn record(&mut self, idx: usize, key: ObjectKey, loc: PackedLocation, stored: Stored) {
        self.summary.written += 1;
        self.summary.bytes_written += loc.length;
        self.summary.compressed += u64::from(loc.compressed);
        self.summary.passed_through += u64::from(stored == Stored::PassedThrough);
        self.batch_bytes += loc.length;
        if self.opts.skip_existing {
            self.batch_keys.insert(key);
        }
        self.rows.push(NewRow { key, loc });
        self.pending.push((
            idx,
            StoreOutcome::Written {
                key,
                location: loc,
                stored,
            },
        ));
    }

    fn reject(&mut self, idx: usize, expected: Option<ObjectKey>, reason: Rejection) {
        self.summary.rejected += 1;
        self.pending
            .push((idx, StoreOutcome::Rejected { expected, reason }));
    }

    fn mismatch(&mut self, idx: usize, expected: ObjectKey, actual: ObjectKey) {
        self.summary.mismatched += 1;
        self.pending
            .push((idx, StoreOutcome::Mismatch { expected, actual }));
    }

    fn known(&mut self, idx: usize, key: ObjectKey) {
        self.summary.skipped += 1;
        self.pending
            .push((idx, StoreOutcome::AlreadyPacked { key }));
    }

    /// Bytes per batch: `batch_bytes`, or, when the total is known, the total split evenly
    /// into as many batches as `batch_bytes` asks for. The last commit is the one nothing
    /// overlaps (the workers are done): even batches keep it from being the large remainder
    /// of a batch that began late, or leaving a large batch committing as the input ends.
    fn batch_limit(&self) -> u64 {
        let (total, max) = (self.opts.total_hint, self.opts.tuning.batch_bytes.max(1));
        if total == 0 {
            return max;
        }
        let n = total.div_ceil(max);
        total.div_ceil(n).min(max)
    }

    fn maybe_commit(&mut self) -> Result<(), Error> {
        if self.batch_bytes >= self.batch_limit()
            || self.rows.len() >= self.opts.tuning.batch_objects
        {
            self.commit()?;
        }
        Ok(())
    }

    /// Durability point: fsync the pack, then commit the batch's rows in one transaction, on
    /// the committer thread (the writer goes on appending meanwhile; an earlier batch's commit
    /// is collected first, so at most one is in flight).
    pub fn commit(&mut self) -> Result<(), Error> {
        // An injected error before the sync stands for the fsync failing, after it for the
        // folder's fsync failing: either way the batch fails and its bytes are cut.
        let faults = &self.c.io.faults;
        let pos = match self.appender.as_mut() {
            Some(a) => {
                faults
                    .point("pack.sync.before")
                    .ctx(a.path(), "fsync pack")?;
                a.sync()?;
                faults
                    .point("pack.sync.after")
                    .ctx(a.path(), "fsync pack")?;
                a.pos()
            }
            None => {
                faults
                    .point("pack.sync.before")
                    .and_then(|()| faults.point("pack.sync.after"))
                    .ctx(&self.c.layout.packs, "fsync pack")?;
                self.committed_pos
            }
        };
        self.wait_commit()?;
        if self.opts.skip_existing {
            self.chunk_committed.extend(self.batch_keys.drain());
        } else {
            // Only skip_existing looks keys up; without it the sets would only grow.
            self.batch_keys.clear();
        }
        self.batch_bytes = 0;
        let job = CommitJob {
            rows: std::mem::take(&mut self.rows),
            pending: std::mem::take(&mut self.pending),
            pos,
        };
        if job.rows.is_empty() {
            self.committed_pos = pos;
            self.done.extend(job.pending);
            return Ok(());
        }
        self.committer.send(job);
        self.in_flight = true;
        self.in_flight_pos = pos;
        Ok(())
    }

    /// Collect the result of the batch in flight, if any: its outcomes become reportable and
    /// its end becomes the position an error rolls back to.
    pub fn wait_commit(&mut self) -> Result<(), Error> {
        self.collect_commit(Wait::Block)
    }

    fn collect_commit(&mut self, wait: Wait) -> Result<(), Error> {
        if !self.in_flight {
            return Ok(());
        }
        let Some(done) = self.committer.collect(wait) else {
            return Ok(());
        };
        self.settle_commit(done)
    }

    /// Take in the result of the commit in flight.
    fn settle_commit(&mut self, done: CommitDone) -> Result<(), Error> {
        self.in_flight = false;
        let (outcomes, pos) = match done {
            Ok(d) => d,
            Err(failed) => {
                // A commit that may have happened anyway: its bytes are referenced, keep them
                // (the batch still fails: its durability is in doubt).
                if failed.maybe_committed && self.retiring.take().is_none() {
                    self.committed_pos = self.in_flight_pos;
                }
                return Err(failed.error.into());
            }
        };
        self.summary.commits += 1;
        // The commit in flight was either the retiring pack's last (now durable: its lock goes)
        // or the current pack's.
        if self.retiring.take().is_none() {
            self.committed_pos = pos;
        }
        self.done.extend(outcomes);
        Ok(())
    }

    fn is_known(&self, key: &ObjectKey) -> Result<bool, Error> {
        Ok(self.batch_keys.contains(key)
            || self.chunk_committed.contains(key)
            || self.c.index().get(key)?.is_some())
    }

    /// Keys of the chunk that the index already holds (probed in one sorted pass). Keys the
    /// caller checked, with the index unchanged by others since, need no probe.
    fn existing(&mut self, chunk: &[Staged]) -> Result<HashSet<ObjectKey>, Error> {
        if !self.opts.skip_existing {
            return Ok(HashSet::new());
        }
        // While a commit of ours is in flight the committer holds the index: keep the last
        // answer rather than wait for it (a commit by another process is then noticed one
        // commit later; at worst its objects are stored again, as without `skip_existing`).
        let fresh = match self.opts.absent_as_of {
            Some(v) => {
                if self.fresh && !self.in_flight {
                    self.fresh = self.c.index().data_version()? == v;
                }
                self.fresh
            }
            None => false,
        };
        let mut keys: Vec<ObjectKey> = chunk
            .iter()
            .filter_map(|s| match s {
                Staged::Ready { key, expect, .. } if !(fresh && *expect == Some(*key)) => {
                    Some(*key)
                }
                _ => None,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let found = if keys.is_empty() {
            Vec::new()
        } else {
            self.c.index().contains_sorted(&keys)?
        };
        // Everything committed so far is in the index now, unless a commit was still in
        // flight (and keys not probed are distinct from it, by the caller's promise).
        if !self.in_flight {
            self.chunk_committed.clear();
        }
        Ok(keys
            .into_iter()
            .zip(found)
            .filter_map(|(k, f)| f.then_some(k))
            .collect())
    }

    /// Write one prepared chunk, in order.
    pub fn write_chunk(&mut self, chunk: Vec<Staged>) -> Result<(), Error> {
        self.collect_commit(Wait::Poll)?;
        let existing = self.existing(&chunk)?;
        for staged in chunk {
            if self.opts.interrupt.is_set() {
                return Err(Error::Interrupted);
            }
            self.summary.objects += 1;
            match staged {
                Staged::Ready {
                    idx,
                    key,
                    expect,
                    size,
                    data,
                    stored,
                } => {
                    self.summary.bytes_in += size;
                    self.progress.inc(size);
                    if let Some(expected) = expect.filter(|e| *e != key) {
                        self.mismatch(idx, expected, key);
                    } else if self.opts.skip_existing
                        && (existing.contains(&key)
                            || self.batch_keys.contains(&key)
                            || self.chunk_committed.contains(&key))
                    {
                        self.known(idx, key);
                    } else {
                        let c = self.c;
                        let a = self.appender()?;
                        let offset = a.pos();
                        a.write(&data)?;
                        c.io.faults
                            .point("pack.append")
                            .ctx(a.path(), "write pack")?;
                        let pack_id = a.id();
                        let location = PackedLocation {
                            pack_id,
                            offset,
                            length: data.len() as u64,
                            compressed: stored.is_compressed(),
                            size,
                        };
                        self.record(idx, key, location, stored);
                    }
                }
                Staged::Stream {
                    idx,
                    expect,
                    name,
                    prefix,
                    rest,
                    reject_on_error,
                } => self.write_stream(idx, expect, &name, prefix, rest, reject_on_error)?,
                Staged::EncodedStream {
                    idx,
                    expect,
                    stream,
                } => self.write_encoded_stream(idx, expect, stream)?,
                Staged::Rejected {
                    idx,
                    expect,
                    reason,
                } => self.reject(idx, expect, reason),
                Staged::Vanished { idx, expect } => {
                    self.summary.vanished += 1;
                    self.pending
                        .push((idx, StoreOutcome::Vanished { expected: expect }));
                }
            }
            self.maybe_commit()?;
        }
        Ok(())
    }

    /// Stream one large object into the pack through a fixed buffer.
    fn write_stream(
        &mut self,
        idx: usize,
        expect: Option<ObjectKey>,
        name: &str,
        prefix: Vec<u8>,
        mut rest: Box<dyn Read + Send>,
        reject_on_error: bool,
    ) -> Result<(), Error> {
        let hash = self.c.config.hash_type;
        let level = self.c.config.compression;
        let compress = match self.opts.compress {
            CompressMode::No => false,
            CompressMode::Yes => true,
            // The sample is the start of the stream (streams cannot be sampled elsewhere).
            CompressMode::Auto => auto_should_compress(&prefix[..prefix.len().min(131_072)]),
        };
        let progress = self.progress;
        let interrupt = self.opts.interrupt.clone();
        let a = self.appender()?;
        let pack_id = a.id();
        let offset = a.pos();
        let mut hasher = hash.hasher();
        let mut size = 0u64;
        let mut sink = AppendSink::new(a);
        let result = (|| -> Result<(), PumpError> {
            let mut feed = |chunk: &[u8], sink: &mut dyn Write| -> Result<(), PumpError> {
                hasher.update(chunk);
                size += chunk.len() as u64;
                progress.inc(chunk.len() as u64);
                sink.write_all(chunk)
                    .map_err(|e| PumpError::Fatal(pack_write_error(e, pack_id)))
            };
            let mut buf = vec![0u8; STREAM_CHUNK];
            let mut pump = |sink: &mut dyn Write| -> Result<(), PumpError> {
                feed(&prefix, sink)?;
                loop {
                    if interrupt.is_set() {
                        return Err(PumpError::Fatal(Error::Interrupted));
                    }
                    let n = match rest.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(PumpError::Source(e)),
                    };
                    feed(&buf[..n], sink)?;
                }
            };
            if compress {
                let mut enc = crate::codec::Encoder::new(&mut sink, level)
                    .map_err(|e| PumpError::Fatal(pack_write_error(e, pack_id)))?;
                pump(&mut enc)?;
                enc.finish()
                    .map_err(|e| PumpError::Fatal(pack_write_error(e, pack_id)))?;
            } else {
                pump(&mut sink)?;
            }
            Ok(())
        })();
        if let Some(e) = sink.into_error() {
            // The pack write itself failed: its own error names the pack.
            return Err(e.into());
        }
        match result {
            Ok(()) => {}
            Err(PumpError::Source(e)) if reject_on_error => {
                return self.reject_streamed(idx, expect, offset, Box::new(e));
            }
            Err(PumpError::Source(source)) => {
                return Err(Error::Source {
                    name: name.to_string(),
                    source,
                });
            }
            Err(PumpError::Fatal(e)) => return Err(e),
        }
        let key = hasher.finalize();
        self.summary.bytes_in += size;
        let stored = if compress {
            Stored::Compressed
        } else {
            Stored::Raw
        };
        self.settle_streamed(idx, expect, key, pack_id, offset, size, stored)
    }

    /// Store an encoded stream as it comes; its verdict at the end decides.
    fn write_encoded_stream(
        &mut self,
        idx: usize,
        expect: Option<ObjectKey>,
        mut stream: Box<dyn EncodedStream + Send>,
    ) -> Result<(), Error> {
        let stored = if stream.compressed() {
            Stored::PassedThrough
        } else {
            Stored::Raw
        };
        let progress = self.progress;
        let interrupt = self.opts.interrupt.clone();
        let a = self.appender()?;
        let pack_id = a.id();
        let offset = a.pos();
        let mut buf = vec![0u8; STREAM_CHUNK];
        loop {
            if interrupt.is_set() {
                return Err(Error::Interrupted);
            }
            match stream.read_stored(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    a.write(&buf[..n])?;
                    progress.inc(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.reject_streamed(idx, expect, offset, Box::new(e)),
            }
        }
        match stream.finish() {
            Ok((key, size)) => {
                self.summary.bytes_in += size;
                self.settle_streamed(idx, expect, key, pack_id, offset, size, stored)
            }
            Err(reason) => self.reject_streamed(idx, expect, offset, reason),
        }
    }

    /// A streamed object failed its source's checks: cut its bytes (never committed).
    fn reject_streamed(
        &mut self,
        idx: usize,
        expect: Option<ObjectKey>,
        offset: u64,
        reason: Rejection,
    ) -> Result<(), Error> {
        if let Some(a) = self.appender.as_mut() {
            a.truncate_to(offset)?;
        }
        self.reject(idx, expect, reason);
        Ok(())
    }

    /// A streamed object is complete: keep it, or cut it if it is a mismatch or a duplicate.
    #[allow(clippy::too_many_arguments)]
    fn settle_streamed(
        &mut self,
        idx: usize,
        expect: Option<ObjectKey>,
        key: ObjectKey,
        pack_id: u64,
        offset: u64,
        size: u64,
        stored: Stored,
    ) -> Result<(), Error> {
        let Some(a) = self.appender.as_mut() else {
            unreachable!("a streamed object was just appended")
        };
        let length = a.pos() - offset;
        if let Some(expected) = expect.filter(|e| *e != key) {
            // Not what it claims to be: cut the bytes just appended (never committed).
            a.truncate_to(offset)?;
            self.mismatch(idx, expected, key);
            return Ok(());
        }
        if self.opts.skip_existing && self.is_known(&key)? {
            // Already stored: cut the bytes we just appended (never committed, never visible).
            if let Some(a) = self.appender.as_mut() {
                a.truncate_to(offset)?;
            }
            self.known(idx, key);
            return Ok(());
        }
        let location = PackedLocation {
            pack_id,
            offset,
            length,
            compressed: stored.is_compressed(),
            size,
        };
        self.record(idx, key, location, stored);
        Ok(())
    }

    /// After a failure: collect the commit in flight (whether it succeeded decides where the
    /// packs are cut), then cut the uncommitted tails so that packs hold only committed
    /// objects, and let the committer end.
    pub fn roll_back(&mut self) {
        if self.in_flight {
            match self.committer.settle() {
                Some(done) => {
                    let _ = self.settle_commit(done);
                }
                // The committer is gone (it panicked) and may have committed the batch: its
                // bytes are durable, so keep them (at worst an unreferenced hole).
                None => {
                    self.in_flight = false;
                    match self.retiring.take() {
                        Some(_) => {}
                        None => self.committed_pos = self.in_flight_pos,
                    }
                }
            }
        }
        self.committer.stop();
        if let Some(a) = self.appender.as_mut() {
            let _ = a.cut_back(self.committed_pos);
        }
        if let Some((mut a, pos)) = self.retiring.take() {
            let _ = a.cut_back(pos);
        }
        self.rows.clear();
        self.pending.clear();
    }

    /// After the last chunk: commit what is left and wait for it.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.commit()?;
        self.wait_commit()?;
        self.committer.stop();
        Ok(())
    }
}

/// A zlib encoder's error while writing into the pack (the pack's own error, when there is one,
/// is taken from the sink instead).
fn pack_write_error(e: io::Error, pack_id: u64) -> Error {
    Error::Source {
        name: format!("compressing into pack {pack_id}"),
        source: e,
    }
}
