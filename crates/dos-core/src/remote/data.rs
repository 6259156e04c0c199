//! A pack's bytes wherever they are: an open local file, or an object in a remote store read
//! with ranged GETs.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use super::{PendingGet, RemoteError, RemoteStore};
use crate::fileio;
use crate::index::RemotePackRow;

/// The bytes of one pack.
#[derive(Clone)]
pub enum PackData {
    /// `packs/<id>`, open.
    Local(Arc<File>),
    /// An offloaded pack.
    Remote(Arc<RemotePack>),
}

/// An offloaded pack and the store holding it.
pub struct RemotePack {
    pub(crate) store: Arc<dyn RemoteStore>,
    pub(crate) row: RemotePackRow,
}

impl std::fmt::Debug for PackData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackData::Local(file) => write!(f, "Local({file:?})"),
            PackData::Remote(r) => write!(f, "Remote({}/{})", r.store.url(), r.row.name),
        }
    }
}

fn io_of(e: RemoteError) -> io::Error {
    let kind = if e.not_found {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e)
}

impl PackData {
    /// A remote pack.
    pub fn remote(store: Arc<dyn RemoteStore>, row: RemotePackRow) -> Self {
        PackData::Remote(Arc::new(RemotePack { store, row }))
    }

    /// The pack's length: the local file's, or the recorded length of the remote object.
    pub fn len(&self) -> io::Result<u64> {
        match self {
            PackData::Local(f) => Ok(f.metadata()?.len()),
            PackData::Remote(r) => Ok(r.row.length),
        }
    }

    /// Whether the pack is empty.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The local file, if the pack is local.
    pub fn local_file(&self) -> Option<&Arc<File>> {
        match self {
            PackData::Local(f) => Some(f),
            PackData::Remote(_) => None,
        }
    }

    /// Where the bytes are, for messages: `None` for a local pack (its path says it),
    /// `s3://bucket/prefix/packs/<id>.<hex>` for a remote one.
    pub fn remote_location(&self) -> Option<String> {
        match self {
            PackData::Local(_) => None,
            PackData::Remote(r) => Some(format!("{}/{}", r.store.url(), r.row.name)),
        }
    }

    /// Read exactly `buf.len()` bytes at `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            PackData::Local(f) => fileio::read_exact_at(f, buf, offset),
            PackData::Remote(r) => {
                if buf.is_empty() {
                    return Ok(());
                }
                let end = offset + buf.len() as u64;
                if end > r.row.length {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}/{} ends at {} before offset {end}",
                            r.store.url(),
                            r.row.name,
                            r.row.length
                        ),
                    ));
                }
                let got = r.store.get_range(&r.row.name, offset..end).map_err(io_of)?;
                if got.len() != buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}/{}: asked for {} bytes at {offset}, got {}",
                            r.store.url(),
                            r.row.name,
                            buf.len(),
                            got.len()
                        ),
                    ));
                }
                buf.copy_from_slice(&got);
                Ok(())
            }
        }
    }

    /// Read up to `buf.len()` bytes at `offset`; 0 at the end of the pack.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            PackData::Local(f) => fileio::read_at(f, buf, offset),
            PackData::Remote(r) => {
                let n = r.row.length.saturating_sub(offset).min(buf.len() as u64) as usize;
                self.read_exact_at(&mut buf[..n], offset)?;
                Ok(n)
            }
        }
    }

    /// Start reading `range` (in the background for a remote pack; a local pack is read when
    /// the result is waited for).
    pub fn start_read(&self, range: Range<u64>) -> PendingRead {
        match self {
            PackData::Local(_) => PendingRead::Local(self.clone(), range),
            PackData::Remote(r) => {
                PendingRead::Remote(r.store.start_get_range(&r.row.name, range.clone()), range)
            }
        }
    }
}

/// A read of a pack range, maybe under way.
#[derive(Debug)]
pub enum PendingRead {
    /// To be read from the local file.
    Local(PackData, Range<u64>),
    /// A GET in flight.
    Remote(PendingGet, Range<u64>),
}

impl PendingRead {
    /// Wait for the bytes into `buf` (resized to the range's length).
    pub fn wait_into(self, buf: &mut Vec<u8>) -> io::Result<()> {
        match self {
            PendingRead::Local(data, range) => {
                buf.resize((range.end - range.start) as usize, 0);
                data.read_exact_at(buf, range.start)
            }
            PendingRead::Remote(pending, range) => {
                let got = pending.wait().map_err(io_of)?;
                if got.len() as u64 != range.end - range.start {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "asked for bytes {}..{}, got {}",
                            range.start,
                            range.end,
                            got.len()
                        ),
                    ));
                }
                *buf = got;
                Ok(())
            }
        }
    }
}

/// Bytes fetched at least per GET when a remote object is read as a stream.
const MIN_AHEAD: u64 = 256 * 1024;
/// ... and at most, after a run of sequential reads.
const MAX_AHEAD: u64 = 8 * 1024 * 1024;

/// Read-ahead state of a stream over a remote pack: one GET serves many small reads, and
/// sequential reading doubles the GET size up to [`MAX_AHEAD`] and fetches the next window in
/// the background while the current one is read; a seek elsewhere starts small again, so that
/// random access fetches little more than it reads. One state may serve all the streams of a
/// pack read in offset order (a bulk read from Python), so that small objects share GETs.
#[derive(Debug, Default)]
pub struct RemotePackReader {
    buf: Vec<u8>,
    /// Pack offset of `buf[0]`.
    start: u64,
    ahead: u64,
    /// The next window, requested in the background: its range and the GET.
    next: Option<(std::ops::Range<u64>, PendingRead)>,
}

impl Clone for RemotePackReader {
    /// A fresh state (nothing buffered): a clone reads on its own.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl RemotePackReader {
    /// Read into `out` from pack offset `at`, not past `limit` (the end of the range the reader
    /// may fetch: an object's end, or the pack's).
    pub fn read(
        &mut self,
        data: &PackData,
        out: &mut [u8],
        at: u64,
        limit: u64,
    ) -> io::Result<usize> {
        let buffered = self.start..self.start + self.buf.len() as u64;
        if !buffered.contains(&at) {
            let sequential = at == buffered.end && !self.buf.is_empty();
            self.ahead = if sequential {
                (self.ahead * 2).clamp(MIN_AHEAD, MAX_AHEAD)
            } else {
                MIN_AHEAD
            };
            match self.next.take() {
                Some((range, pending)) if range.start == at && range.end > at => {
                    if let Err(e) = pending.wait_into(&mut self.buf) {
                        self.buf.clear();
                        return Err(e);
                    }
                    self.start = at;
                }
                _ => {
                    let want = (out.len() as u64).max(self.ahead);
                    let end = limit.min(at.saturating_add(want));
                    if end <= at {
                        return Ok(0);
                    }
                    self.buf.resize((end - at) as usize, 0);
                    if let Err(e) = data.read_exact_at(&mut self.buf, at) {
                        self.buf.clear();
                        return Err(e);
                    }
                    self.start = at;
                }
            }
            // Reading on from here: fetch the following window meanwhile.
            let end = self.start + self.buf.len() as u64;
            if sequential && end < limit && matches!(data, PackData::Remote(_)) {
                let next = end..limit.min(end.saturating_add(self.ahead));
                self.next = Some((next.clone(), data.start_read(next)));
            }
        }
        let from = (at - self.start) as usize;
        let n = out.len().min(self.buf.len() - from);
        out[..n].copy_from_slice(&self.buf[from..from + n]);
        Ok(n)
    }
}
