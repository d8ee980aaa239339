//! The key-value calls into Python (`host.kv_open`, `kv_get`, ...): every store label is checked there.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use wasmtime::component::Resource;

use super::Store;
use crate::errors::{host_trap, Kind};
use crate::host::{HostState, Settings};

/// A refused or failed key-value call, as the guest's error variants can say it.
pub(super) enum KvError {
    /// The store is not granted (Python logged which flag grants it).
    Denied,
    Other(String),
}

pub(super) type KvResult<T> = Result<T, KvError>;

/// Call `host.<method>(*args)`, expecting `(tag, value)`: `"ok"` and the value, `"denied"` and a reason, or
/// `"err"` and a message. A failure of the host object itself traps (our bug, not the guest's).
pub(super) fn bridge<T>(
    settings: &Settings,
    method: &str,
    args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>>,
    extract: impl for<'py> FnOnce(&Bound<'py, PyAny>) -> PyResult<T>,
) -> wasmtime::Result<KvResult<T>> {
    let Some(host) = settings.host.as_ref() else {
        return Ok(Err(KvError::Denied));
    };
    Python::attach(|py| {
        let trap = |e: PyErr| host_trap(Kind::Host, format!("trapped in key-value {method}: {e}"));
        let out = host
            .call_method1(py, method, args(py).map_err(trap)?)
            .map_err(trap)?;
        let bad = |e: PyErr| {
            host_trap(
                Kind::Host,
                format!("key-value {method}: the host returned a malformed result: {e}"),
            )
        };
        let pair = out
            .bind(py)
            .cast::<PyTuple>()
            .map_err(|e| bad(e.into()))?
            .clone();
        let tag: String = pair.get_item(0).and_then(|v| v.extract()).map_err(bad)?;
        let value = pair.get_item(1).map_err(bad)?;
        Ok(match tag.as_str() {
            "ok" => Ok(extract(&value).map_err(bad)?),
            "denied" => Err(KvError::Denied),
            _ => Err(KvError::Other(value.extract::<String>().map_err(bad)?)),
        })
    })
}

pub(super) fn open(settings: &Settings, label: &str) -> wasmtime::Result<KvResult<()>> {
    let label = label.to_owned();
    bridge(
        settings,
        "kv_open",
        |py| PyTuple::new(py, [label]),
        |_| Ok(()),
    )
}

pub(super) fn get(
    settings: &Settings,
    label: &str,
    key: &str,
) -> wasmtime::Result<KvResult<Option<Vec<u8>>>> {
    let args = (key.to_owned(), label.to_owned());
    bridge(
        settings,
        "kv_get",
        |py| PyTuple::new(py, [args.0, args.1]),
        |v| v.extract::<Option<Vec<u8>>>(),
    )
}

pub(super) fn set(
    settings: &Settings,
    label: &str,
    key: &str,
    value: &[u8],
) -> wasmtime::Result<KvResult<()>> {
    bridge(
        settings,
        "kv_set",
        |py| {
            PyTuple::new(
                py,
                [
                    key.into_pyobject(py)?.into_any(),
                    PyBytes::new(py, value).into_any(),
                    label.into_pyobject(py)?.into_any(),
                ],
            )
        },
        |_| Ok(()),
    )
}

pub(super) fn delete(
    settings: &Settings,
    label: &str,
    key: &str,
) -> wasmtime::Result<KvResult<()>> {
    let args = (key.to_owned(), label.to_owned());
    bridge(
        settings,
        "kv_delete",
        |py| PyTuple::new(py, [args.0, args.1]),
        |_| Ok(()),
    )
}

pub(super) fn keys(settings: &Settings, label: &str) -> wasmtime::Result<KvResult<Vec<String>>> {
    let label = label.to_owned();
    bridge(
        settings,
        "kv_keys",
        |py| PyTuple::new(py, [label]),
        |v| v.extract::<Vec<String>>(),
    )
}

/// Run a blocking key-value call off the store's thread (tokio's blocking pool): the guest's other tasks go on.
pub(super) async fn blocking<R: Send + 'static>(
    settings: Arc<Settings>,
    call: impl FnOnce(&Settings) -> wasmtime::Result<R> + Send + 'static,
) -> wasmtime::Result<R> {
    tokio::task::spawn_blocking(move || call(&settings))
        .await
        .map_err(|e| host_trap(Kind::Host, format!("a key-value worker failed: {e}")))?
}

pub(super) fn label_of(state: &mut HostState, store: &Resource<Store>) -> wasmtime::Result<String> {
    Ok(state.table.get(store)?.label.clone())
}
