//! Packed objects read as Python file objects: a pack file opened once per bulk read
//! ([`PackFile`]) and the byte range of one object in it ([`PackedStream`]), read with positioned
//! reads so that streams of one pack never disturb each other.

use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dos_core::fileio::read_exact_at;
use dos_core::read::{CompressedReader, PackRangeReader};
use dos_core::remote::{PackData, RemotePackReader};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PySlice};

/// Reads larger than this release the interpreter lock (smaller ones are a memory copy).
const READ_UNLOCKED: usize = 1 << 20;

/// One pack file, open for reading; hands out the streams of the objects in it.
#[pyclass(module = "dos_objectstore._dos", frozen)]
pub struct PackFile {
    data: PackData,
    /// Read-ahead shared by the streams of an offloaded pack (read in offset order by a bulk
    /// read, its small objects then share GETs), and how far it may read.
    shared: Arc<Mutex<RemotePackReader>>,
    pack_len: u64,
    path: PathBuf,
    /// Set by `close()`: every stream of this pack file is closed with it, as streams sharing
    /// one Python file handle are.
    closed: Arc<AtomicBool>,
}

impl PackFile {
    /// The pack whose bytes are `data`, named `path` in messages (its remote location for an
    /// offloaded pack).
    pub fn new(data: PackData, path: PathBuf) -> Self {
        let path = data.remote_location().map_or(path, PathBuf::from);
        Self {
            pack_len: data.len().unwrap_or(0),
            shared: Arc::default(),
            data,
            path,
            closed: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[pymethods]
impl PackFile {
    /// The stream of the `length` bytes at `offset`.
    fn stream(&self, offset: u64, length: u64) -> PackedStream {
        PackedStream {
            data: self.data.clone(),
            ahead: Arc::clone(&self.shared),
            window_end: self.pack_len.max(offset.saturating_add(length)),
            path: self.path.clone(),
            offset,
            length,
            pos: 0,
            closed: false,
            pack_closed: Arc::clone(&self.closed),
        }
    }

    /// The stream of the compressed object (zlib or zstd) of `length` bytes at `offset`,
    /// read as its `size` uncompressed bytes.
    fn compressed_stream(&self, offset: u64, length: u64, size: u64) -> CompressedStream {
        let raw = PackRangeReader::over_shared(
            self.data.clone(),
            Arc::clone(&self.shared),
            self.pack_len,
            offset,
            length,
        );
        CompressedStream {
            reader: CompressedReader::new(raw, size),
            path: self.path.clone(),
            offset,
            size,
            target: 0,
            closed: false,
            pack_closed: Arc::clone(&self.closed),
        }
    }

    /// Close the pack file for its streams (they raise `ValueError` when read afterwards).
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// The bytes of one object in a pack, as a read-only binary file object (`read`, `readinto`,
/// `seek`, `tell`, context manager), like disk-objectstore's `PackedObjectReader`.
#[pyclass(module = "dos_objectstore._dos")]
pub struct PackedStream {
    data: PackData,
    /// Read-ahead of an offloaded pack (shared with the pack's other streams).
    ahead: Arc<Mutex<RemotePackReader>>,
    /// How far the read-ahead may fetch.
    window_end: u64,
    path: PathBuf,
    offset: u64,
    length: u64,
    pos: u64,
    closed: bool,
    pack_closed: Arc<AtomicBool>,
}

impl PackedStream {
    fn is_closed(&self) -> bool {
        self.closed || self.pack_closed.load(Ordering::Relaxed)
    }

    fn check_open(&self) -> PyResult<()> {
        if self.is_closed() {
            return Err(PyValueError::new_err("I/O operation on closed file."));
        }
        Ok(())
    }

    /// Bytes a read of `size` (negative: all) returns from the current position.
    fn wanted(&self, size: Option<i64>) -> usize {
        let remaining = self.length.saturating_sub(self.pos);
        let n = match size {
            Some(s) if s >= 0 => remaining.min(s as u64),
            _ => remaining,
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Fill `buf` from the current position.
    fn fill(&mut self, buf: &mut [u8]) -> PyResult<()> {
        let at = self.offset + self.pos;
        let end = self.window_end;
        let read = match &self.data {
            PackData::Local(file) => read_exact_at(file, buf, at),
            PackData::Remote(_) => {
                let mut done = 0;
                let mut r = Ok(());
                while done < buf.len() {
                    let got = self.ahead.lock().unwrap_or_else(|p| p.into_inner()).read(
                        &self.data,
                        &mut buf[done..],
                        at + done as u64,
                        end,
                    );
                    match got {
                        Ok(0) => {
                            r = Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the pack ends inside the object",
                            ));
                            break;
                        }
                        Ok(n) => done += n,
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                }
                r
            }
        };
        read.map_err(|e| {
            PyOSError::new_err(format!(
                "reading {} bytes of the object at offset {} of {}: {e}",
                buf.len(),
                self.offset,
                self.path.display()
            ))
        })
    }
}

#[pymethods]
impl PackedStream {
    /// Up to `size` bytes (all that is left if `size` is negative or None); `b''` at the end.
    #[pyo3(signature = (size = -1))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        self.check_open()?;
        let n = self.wanted(size);
        let out = if n > READ_UNLOCKED {
            // Read straight into the new object, without the interpreter lock.
            let (obj, mut buf) = crate::bridge::UnsharedBytes::new(py, n as u64)?;
            py.allow_threads(|| self.fill(buf.as_mut_slice()))?;
            obj
        } else {
            PyBytes::new_with(py, n, |buf| self.fill(buf))?
        };
        self.pos += n as u64;
        Ok(out)
    }

    /// Read into a writable buffer; returns the number of bytes read (0 at the end).
    fn readinto(&mut self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.check_open()?;
        // The limited API has no buffer protocol before Python 3.11: go through memoryview.
        let view = PyMemoryView::from(buffer)?.call_method1("cast", ("B",))?;
        if view.getattr("readonly")?.is_truthy()? {
            return Err(PyValueError::new_err("readinto() needs a writable buffer"));
        }
        let n = self.wanted(Some(i64::try_from(view.len()?).unwrap_or(i64::MAX)));
        let data = self.read(py, Some(n as i64))?;
        if let Err(e) = view.set_item(PySlice::new(py, 0, n as isize, 1), data) {
            self.pos -= n as u64;
            return Err(e);
        }
        Ok(n)
    }

    /// Move to `target` relative to the start (`whence=0`), the position (1) or the end (2);
    /// returns the new position. Positions outside the object raise `ValueError`.
    #[pyo3(signature = (target, whence = 0))]
    fn seek(&mut self, target: i64, whence: i32) -> PyResult<u64> {
        self.check_open()?;
        let from = match whence {
            0 => SeekFrom::Start(0),
            1 => SeekFrom::Current(0),
            2 => SeekFrom::End(0),
            _ => {
                return Err(PyValueError::new_err(
                    "Invalid value for `whence`: only 0, 1 and 2 are valid values.",
                ));
            }
        };
        let base = match from {
            SeekFrom::Start(_) => 0,
            SeekFrom::Current(_) => self.pos as i128,
            SeekFrom::End(_) => self.length as i128,
        };
        let new = base + target as i128;
        if new < 0 {
            return Err(PyValueError::new_err(
                "specified target would exceed the lower boundary of bytes that are accessible.",
            ));
        }
        if new > self.length as i128 {
            return Err(PyValueError::new_err(
                "specified target would exceed the upper boundary of bytes that are accessible.",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }

    /// The position in the object.
    fn tell(&self) -> PyResult<u64> {
        self.check_open()?;
        Ok(self.pos)
    }

    /// `'rb'`.
    #[getter]
    fn mode(&self) -> &'static str {
        "rb"
    }

    /// Whether the stream, or the pack file it reads, was closed.
    #[getter]
    fn closed(&self) -> bool {
        self.is_closed()
    }

    /// True.
    fn readable(&self) -> bool {
        true
    }

    /// False.
    fn writable(&self) -> bool {
        false
    }

    /// True.
    fn seekable(&self) -> bool {
        true
    }

    /// Nothing to flush.
    fn flush(&self) {}

    /// Close the stream (the pack file stays open for the other streams).
    fn close(&mut self) {
        self.closed = true;
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.closed = true;
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<PackedStream {} offset={} length={} pos={}>",
            self.path.display(),
            self.offset,
            self.length,
            self.pos
        )
    }
}

/// A compressed object in a pack (zlib or zstd) read as its uncompressed bytes: a read-only
/// binary file object that seeks in every direction and never writes anything to disk. A seek
/// only records the position; the next read decodes up to it (backwards: from the start).
#[pyclass(module = "dos_objectstore._dos")]
pub struct CompressedStream {
    reader: CompressedReader,
    path: PathBuf,
    offset: u64,
    size: u64,
    /// The logical position (the reader catches up on the next read).
    target: u64,
    closed: bool,
    pack_closed: Arc<AtomicBool>,
}

impl CompressedStream {
    fn check_open(&self) -> PyResult<()> {
        if self.closed || self.pack_closed.load(Ordering::Relaxed) {
            return Err(PyValueError::new_err("I/O operation on closed file."));
        }
        Ok(())
    }

    fn error(&self, e: io::Error) -> PyErr {
        PyOSError::new_err(format!(
            "reading the compressed object at offset {} of {}: {e}",
            self.offset,
            self.path.display()
        ))
    }

    /// Fill `buf` from the logical position (as much as the object has).
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::{Read, Seek};
        self.reader.seek(SeekFrom::Start(self.target))?;
        let mut done = 0;
        while done < buf.len() {
            let n = self.reader.read(&mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        self.target += done as u64;
        Ok(done)
    }

    fn wanted(&self, size: Option<i64>) -> usize {
        let remaining = self.size.saturating_sub(self.target);
        let n = match size {
            Some(s) if s >= 0 => remaining.min(s as u64),
            _ => remaining,
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    }
}

#[pymethods]
impl CompressedStream {
    /// Up to `size` bytes (all that is left if `size` is negative or None); `b''` at the end.
    #[pyo3(signature = (size = -1))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        self.check_open()?;
        let n = self.wanted(size);
        let mut buf = vec![0u8; n];
        let got = py
            .allow_threads(|| self.fill(&mut buf))
            .map_err(|e| self.error(e))?;
        Ok(PyBytes::new(py, &buf[..got]))
    }

    /// Read into a writable buffer; returns the number of bytes read (0 at the end).
    fn readinto(&mut self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.check_open()?;
        // The limited API has no buffer protocol before Python 3.11: go through memoryview.
        let view = PyMemoryView::from(buffer)?.call_method1("cast", ("B",))?;
        if view.getattr("readonly")?.is_truthy()? {
            return Err(PyValueError::new_err("readinto() needs a writable buffer"));
        }
        let n = self.wanted(Some(i64::try_from(view.len()?).unwrap_or(i64::MAX)));
        let before = self.target;
        let data = self.read(py, Some(n as i64))?;
        let got = data.as_bytes().len();
        if let Err(e) = view.set_item(PySlice::new(py, 0, got as isize, 1), data) {
            self.target = before;
            return Err(e);
        }
        Ok(got)
    }

    /// Move to `target` relative to the start (`whence=0`), the position (1) or the end (2);
    /// returns the new position. Negative positions raise `ValueError`; positions past the end
    /// read nothing.
    #[pyo3(signature = (target, whence = 0))]
    fn seek(&mut self, target: i64, whence: i32) -> PyResult<u64> {
        self.check_open()?;
        let base: i128 = match whence {
            0 => 0,
            1 => self.target as i128,
            2 => self.size as i128,
            _ => {
                return Err(PyValueError::new_err(
                    "Invalid value for `whence`: only 0, 1 and 2 are valid values.",
                ));
            }
        };
        let new = base + target as i128;
        if new < 0 {
            return Err(PyValueError::new_err(format!(
                "negative seek position {new}"
            )));
        }
        self.target = u64::try_from(new).unwrap_or(u64::MAX);
        Ok(self.target)
    }

    /// The position in the object.
    fn tell(&self) -> PyResult<u64> {
        self.check_open()?;
        Ok(self.target)
    }

    /// `'rb'`.
    #[getter]
    fn mode(&self) -> &'static str {
        "rb"
    }

    /// Whether the stream, or the pack file it reads, was closed.
    #[getter]
    fn closed(&self) -> bool {
        self.closed || self.pack_closed.load(Ordering::Relaxed)
    }

    /// True.
    fn readable(&self) -> bool {
        true
    }

    /// False.
    fn writable(&self) -> bool {
        false
    }

    /// True.
    fn seekable(&self) -> bool {
        true
    }

    /// Nothing to flush.
    fn flush(&self) {}

    /// Close the stream (the pack file stays open for the other streams).
    fn close(&mut self) {
        self.closed = true;
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.closed = true;
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<CompressedStream {} offset={} size={} pos={}>",
            self.path.display(),
            self.offset,
            self.size,
            self.target
        )
    }
}
