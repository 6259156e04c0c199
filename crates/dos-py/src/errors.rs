//! dos-core errors as the Python exceptions disk-objectstore users catch.
//!
//! `NotExistent`, `NotInitialised` and `InconsistentContent` are disk-objectstore's own classes
//! (imported from `disk_objectstore.exceptions`), so `except NotExistent:` in existing code keeps
//! working; operating-system errors become the matching `OSError` subclass with the file named;
//! everything else is `dos_objectstore.DosError`.

use dos_core::Error;
use dos_core::write;
use pyo3::exceptions::{PyFileExistsError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;

pyo3::create_exception!(
    _dos,
    DosError,
    pyo3::exceptions::PyException,
    "An error of the dos store that disk-objectstore has no class for."
);

/// One of `disk_objectstore.exceptions`' classes, by name.
fn upstream<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = py.import("disk_objectstore.exceptions")?;
    Ok(module.getattr(name)?.downcast_into::<PyType>()?)
}

/// A new exception of `disk_objectstore.exceptions.<name>` with `msg`.
pub fn upstream_err(name: &str, msg: String) -> PyErr {
    Python::with_gil(|py| match upstream(py, name) {
        Ok(ty) => PyErr::from_type(ty, msg),
        Err(e) => e,
    })
}

/// The Python exception for a dos-core error.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::NotInitialised { .. } => upstream_err("NotInitialised", msg),
        Error::NotFound { .. } => upstream_err("NotExistent", msg),
        Error::Corrupt { .. } | Error::MissingPack { .. } => {
            upstream_err("InconsistentContent", msg)
        }
        Error::FolderNotEmpty { .. } | Error::AlreadyInitialised { .. } => {
            PyFileExistsError::new_err(msg)
        }
        Error::InvalidKey(_) | Error::InvalidArgument(_) => PyValueError::new_err(msg),
        Error::Io { source, .. } | Error::Source { source, .. } => {
            // The kind picks the subclass (FileNotFoundError, PermissionError, ...); the message
            // keeps the file and the operation.
            let errno = source.raw_os_error();
            let err = PyErr::from(std::io::Error::new(source.kind(), msg.clone()));
            match errno {
                Some(n) => Python::with_gil(|py| {
                    let ty = err.get_type(py);
                    PyErr::from_type(ty, (n, msg))
                }),
                None => err,
            }
        }
        Error::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err(msg),
        _ => DosError::new_err(msg),
    }
}

/// The Python exception for a pack writer's error.
pub fn write_to_py(e: write::Error) -> PyErr {
    to_py(e.into())
}
