//! Packed objects read as Python file objects: a pack file opened once per bulk read
//! ([`PackFile`]) and the byte range of one object in it ([`PackedStream`]), read with positioned
//! reads so that streams of one pack never disturb each other.

use std::fs::File;
use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dos_core::fileio::read_exact_at;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PySlice};

/// Reads larger than this release the interpreter lock (smaller ones are a memory copy).
const READ_UNLOCKED: usize = 1 << 20;

/// One pack file, open for reading; hands out the streams of the objects in it.
#[pyclass(module = "dos_objectstore._dos", frozen)]
pub struct PackFile {
    file: Arc<File>,
    path: PathBuf,
    /// Set by `close()`: every stream of this pack file is closed with it, as streams sharing
    /// one Python file handle are.
    closed: Arc<AtomicBool>,
}

impl PackFile {
    /// The pack file at `path`.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        Ok(Self {
            file: Arc::new(File::open(&path)?),
            path,
            closed: Arc::new(AtomicBool::new(false)),
        })
    }
}

#[pymethods]
impl PackFile {
    /// The stream of the `length` bytes at `offset`.
    fn stream(&self, offset: u64, length: u64) -> PackedStream {
        PackedStream {
            file: Arc::clone(&self.file),
            path: self.path.clone(),
            offset,
            length,
            pos: 0,
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
    file: Arc<File>,
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
    fn fill(&self, buf: &mut [u8]) -> PyResult<()> {
        read_exact_at(&self.file, buf, self.offset + self.pos).map_err(|e| {
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
