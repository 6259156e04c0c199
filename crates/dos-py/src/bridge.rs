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
