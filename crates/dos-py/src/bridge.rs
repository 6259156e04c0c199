//! What crosses from Python into dos-core while the interpreter lock is released: Python
//! streams, read as `std::io::Read`, taking the lock back only for each `read()` call.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The first exception a Python stream raised during one operation, so that the operation
/// raises it unchanged (an `AttributeError` stays one) instead of a wrapped I/O error.
#[derive(Clone, Default)]
pub struct StreamErrors(Arc<Mutex<Option<PyErr>>>);

impl StreamErrors {
    fn keep(&self, e: PyErr) {
        let mut slot = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// The kept exception, if a stream raised one.
    pub fn take(&self) -> Option<PyErr> {
        match self.0.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}

/// A Python object with a `read(n)` method (a file object, `io.BytesIO`, a zip entry...),
/// read from Rust threads.
pub struct PyReader {
    stream: Py<PyAny>,
    errors: StreamErrors,
}

impl PyReader {
    /// Read from `stream` (which must have `read(n)` returning bytes-like objects); an
    /// exception it raises is kept in `errors`.
    pub fn new(stream: Py<PyAny>, errors: StreamErrors) -> Self {
        Self { stream, errors }
    }
}

impl Read for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        Python::with_gil(|py| {
            let chunk = match self.stream.call_method1(py, "read", (buf.len(),)) {
                Ok(c) => c,
                Err(e) => {
                    let msg = format!("read() of a Python stream: {e}");
                    self.errors.keep(e);
                    return Err(io::Error::other(msg));
                }
            };
            let chunk = chunk.bind(py);
            if chunk.is_none() {
                // A non-blocking stream with nothing available: for a file object this does
                // not happen; treat it as the end rather than spin.
                return Ok(0);
            }
            let n = if let Ok(b) = chunk.downcast::<PyBytes>() {
                copy_into(b.as_bytes(), buf)?
            } else {
                let v: Vec<u8> = chunk.extract().map_err(|e| {
                    io::Error::other(format!("read() of a Python stream returned no bytes: {e}"))
                })?;
                copy_into(&v, buf)?
            };
            Ok(n)
        })
    }
}

fn copy_into(src: &[u8], buf: &mut [u8]) -> io::Result<usize> {
    if src.len() > buf.len() {
        return Err(io::Error::other(format!(
            "read({}) of a Python stream returned {} bytes",
            buf.len(),
            src.len()
        )));
    }
    buf[..src.len()].copy_from_slice(src);
    Ok(src.len())
}

/// A Python `bytes` object handed to the pack writer without copying its content: the writer
/// hashes, compresses and writes straight from the object's buffer, on its own threads, while
/// the interpreter lock is released.
pub struct HeldBytes {
    /// Keeps the object (and so its buffer) alive until the writer drops this.
    _owner: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

impl HeldBytes {
    /// Hold `b`'s buffer.
    pub fn new(b: &Bound<'_, PyBytes>) -> Self {
        let data = b.as_bytes();
        Self {
            _owner: b.clone().unbind(),
            ptr: data.as_ptr(),
            len: data.len(),
        }
    }
}

// SAFETY: `ptr`/`len` describe the buffer of the `bytes` object `_owner` keeps alive. A CPython
// `bytes` object is immutable once created and its buffer is part of the object, which never
// moves, so the buffer stays valid and unchanged for as long as `_owner` holds a reference, on
// any thread and without the interpreter lock (pyo3's `Py<PyBytes>::as_bytes` gives the same
// guarantee: a slice whose lifetime is tied to the reference, not to the lock). `Py<PyBytes>`
// itself is `Send`; dropping it without the lock defers the decref to pyo3's reference pool.
#[allow(unsafe_code)]
unsafe impl Send for HeldBytes {}

impl AsRef<[u8]> for HeldBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see the `Send` impl: the buffer outlives `self` and never changes.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(self.ptr, self.len)
        }
    }
}

/// The buffer of a `bytes` object created uninitialised (`PyBytes_FromStringAndSize(NULL, n)`)
/// that no Python code has seen yet, to be filled from Rust threads before the object is handed
/// to Python.
pub struct UnsharedBytes {
    ptr: *mut u8,
    len: usize,
}

impl UnsharedBytes {
    /// A new `bytes` object of `len` bytes and the handle to fill its buffer. The object must not
    /// be handed to Python code before the buffer is filled.
    pub fn new(py: Python<'_>, len: u64) -> PyResult<(Bound<'_, PyBytes>, Self)> {
        let n = isize::try_from(len).map_err(|_| {
            pyo3::exceptions::PyMemoryError::new_err(format!("an object of {len} bytes"))
        })?;
        // SAFETY: with a NULL source, `PyBytes_FromStringAndSize` allocates a new `bytes`
        // object of `n` bytes (a NUL after them) whose content is left for the caller to write
        // (the CPython documentation's "the contents are uninitialized" case); it returns a new
        // reference or NULL with an exception set, which `from_owned_ptr_or_err` turns into the
        // error. `PyBytes_AsString` of a `bytes` object returns its inline buffer.
        #[allow(unsafe_code)]
        unsafe {
            let obj = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), n);
            let obj = Bound::from_owned_ptr_or_err(py, obj)?;
            let ptr = pyo3::ffi::PyBytes_AsString(obj.as_ptr()).cast::<u8>();
            if ptr.is_null() {
                return Err(PyErr::fetch(py));
            }
            let obj = obj.downcast_into_unchecked::<PyBytes>();
            Ok((
                obj,
                Self {
                    ptr,
                    len: n as usize,
                },
            ))
        }
    }

    /// The buffer, zeroed, to be filled.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is the `len`-byte buffer of a `bytes` object created by `new` and kept
        // alive by the caller (it holds the object until after the buffer is filled). No Python
        // code has a reference to the object yet, so nothing reads or writes the buffer
        // concurrently, and `&mut self` makes this the only slice of it; writing a buffer that
        // is not shared needs no interpreter lock. The bytes start uninitialised, so they are
        // zeroed (a write, valid on uninitialised memory) before the slice is made.
        #[allow(unsafe_code)]
        unsafe {
            std::ptr::write_bytes(self.ptr, 0, self.len);
            std::slice::from_raw_parts_mut(self.ptr, self.len)
        }
    }
}

// SAFETY: the buffer belongs to an object no other code references (see `as_mut_slice`); moving
// the handle to another thread moves the only access to it.
#[allow(unsafe_code)]
unsafe impl Send for UnsharedBytes {}
