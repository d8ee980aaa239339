//! `airssys_web._native`: the runtime core of airssys-web, on the wasmtime crate.
//!
//! Python owns the public API (`airssys_web.runtime`); this module is the engine room behind it, laid out by
//! concept: [`engine`] (engines, epoch ticker, I/O runtime), [`component`] (compile, load, inspect),
//! [`instance`] (`Pre` per generation, `Instance` per Store), [`route`] (the `airssys:web` world),
//! [`http`] and [`exchange`] (wasi:http 0.2 and 0.3, streamed through ASGI), [`platform`] (Spin's variables and
//! key-value on the version's grants), [`unprovided`] (imports linked to fail), [`outbound`] (the one way out),
//! [`host`] (what a Store holds), [`limiter`], [`output`], [`headers`], and [`errors`] (every failure becomes
//! one `GuestFault` with a `kind`, mapped to the Python exception tree in one place on the Python side).

mod component;
mod engine;
mod errors;
mod exchange;
mod headers;
mod host;
mod http;
mod instance;
mod limiter;
mod outbound;
mod output;
mod platform;
mod route;
mod unprovided;

use pyo3::prelude::*;

/// Translate the WebAssembly text format to binary (modules and components).
#[pyfunction]
fn wat2wasm<'py>(py: Python<'py>, text: &str) -> PyResult<pyo3::Bound<'py, pyo3::types::PyBytes>> {
    // The message is wat's own (its first line, then `--> <anon>:LINE:COL`); Python words it for people.
    let bytes = py
        .detach(|| wat::parse_str(text))
        .map_err(|e| PyErr::from(errors::Fault::new(errors::Kind::Invalid, e.to_string())))?;
    Ok(pyo3::types::PyBytes::new(py, &bytes))
}

/// Whether a wasi:http component's import `name` (`ns:pkg/interface@version`) is provided by this host; an import
/// that is not is linked to fail when called.
#[pyfunction]
fn provided(name: &str) -> bool {
    unprovided::provided(name)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("WASMTIME_VERSION", engine::WASMTIME_VERSION)?;
    m.add("GuestFault", m.py().get_type::<errors::GuestFault>())?;
    m.add("READY_HEAD", exchange::READY_HEAD)?;
    m.add("READY_BODY", exchange::READY_BODY)?;
    m.add("READY_SPACE", exchange::READY_SPACE)?;
    m.add("READY_DONE", exchange::READY_DONE)?;
    m.add("MAX_RESPONSE_HEADERS", headers::MAX_HEADERS)?;
    m.add("MAX_RESPONSE_HEADER_BYTES", headers::MAX_HEADER_BYTES)?;
    m.add_class::<engine::Runtime>()?;
    m.add_class::<component::Component>()?;
    m.add_class::<instance::Pre>()?;
    m.add_class::<instance::Instance>()?;
    m.add_class::<exchange::HttpExchange>()?;
    m.add_function(wrap_pyfunction!(wat2wasm, m)?)?;
    m.add_function(wrap_pyfunction!(provided, m)?)?;
    Ok(())
}
