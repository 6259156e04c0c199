//! `dos_objectstore._dos`: the native module of the `dos_objectstore` Python package.
//!
//! The package's `Container` (in `python/dos_objectstore/`) is a subclass of
//! `disk_objectstore.Container` whose operations run here, on dos-core, with the interpreter
//! lock released. This crate only translates: Python values in, dos-core calls, Python values
//! and disk-objectstore's exceptions out.

mod bridge;
mod container;
mod errors;
mod streams;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _dos(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<container::RawContainer>()?;
    m.add_class::<container::Located>()?;
    m.add_class::<streams::PackFile>()?;
    m.add_class::<streams::PackedStream>()?;
    m.add_class::<streams::CompressedStream>()?;
    m.add("DosError", m.py().get_type::<errors::DosError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
