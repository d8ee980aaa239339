//! Spin's platform interfaces (and the WASI drafts its SDKs import), each mapped onto a grant of the version.
//!
//! | interface | reads or writes | grant |
//! |---|---|---|
//! | `spin:variables/variables@3.0.0`, `fermyon:spin/variables@2.0.0` | the version's config and secrets | `--config`, `--secret` |
//! | `wasi:config/store@0.2.0-draft-2024-09-27` | the same | the same |
//! | `spin:key-value/key-value@3.0.0`, `fermyon:spin/key-value@2.0.0` | the store `default`: the version's KV namespace; another label: its own namespace | `--kv`, `--kv-store LABEL` |
//! | `wasi:keyvalue/store`, `batch` `@0.2.0-draft2` | the same | the same |
//!
//! Nothing here widens a grant: variables are looked up in `Settings::config` (what the version was granted, no
//! more), and every key-value call goes to the generation's Python `host` object (`runtime.imports.HostBridge`),
//! which holds only the granted namespaces and refuses any other store label, naming the flag that grants it.
//! Spin's 3.0.0 interfaces are component-model async; their Python calls run on tokio's blocking pool so the
//! guest's other tasks (a response body being written, say) keep running meanwhile.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use wasmtime::component::{Accessor, FutureReader, HasSelf, Linker, Resource, StreamReader};

use crate::errors::{host_trap, Kind};
use crate::host::{HostState, Settings};

wasmtime::component::bindgen!({
    path: "src/wit/platform",
    world: "airssys:platform/platform",
    imports: { default: trappable },
    with: {
        "spin:key-value/key-value.store": Store,
        "fermyon:spin/key-value.store": Store,
        "wasi:keyvalue/store.bucket": Store,
    },
});

use self::fermyon::spin::key_value as kv2;
use self::fermyon::spin::variables as vars2;
use self::spin::key_value::key_value as kv3;
use self::spin::variables::variables as vars3;
use self::wasi::config::store as config;
use self::wasi::keyvalue::batch as wbatch;
use self::wasi::keyvalue::store as wstore;

/// An open key-value store: the label the guest opened (granted when it was opened; every call re-checks it).
pub struct Store {
    label: String,
}

/// Add the platform interfaces to a wasi:http world's linker.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    Platform::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

// -- variables and config -------------------------------------------------------------------------------------

/// Why a variable is missing, with the flag that grants it.
fn undefined(name: &str) -> String {
    format!("no variable {name:?} is granted to this component; deploy it with --config {name}=VALUE or --secret {name}")
}

impl vars3::Host for HostState {}

impl<T> vars3::HostWithStore<T> for HasSelf<HostState> {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, vars3::Error>> {
        let value = accessor.with(|mut view| view.get().settings.config.get(&name).cloned());
        Ok(value.ok_or_else(|| vars3::Error::Undefined(undefined(&name))))
    }
}

impl vars2::Host for HostState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, vars2::Error>> {
        let value = self.settings.config.get(&name).cloned();
        Ok(value.ok_or_else(|| vars2::Error::Undefined(undefined(&name))))
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, config::Error>> {
        Ok(Ok(self.settings.config.get(&key).cloned()))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, config::Error>> {
        let mut all: Vec<(String, String)> = self
            .settings
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort();
        Ok(Ok(all))
    }
}

// -- key-value: the calls into Python ---------------------------------------------------------------------------

/// A refused or failed key-value call, as the guest's error variants can say it.
enum KvError {
    /// The store is not granted (Python logged which flag grants it).
    Denied,
    Other(String),
}

type KvResult<T> = Result<T, KvError>;

/// Call `host.<method>(*args)`, expecting `(tag, value)`: `"ok"` and the value, `"denied"` and a reason, or
/// `"err"` and a message. A failure of the host object itself traps (our bug, not the guest's).
fn bridge<T>(
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

fn open(settings: &Settings, label: &str) -> wasmtime::Result<KvResult<()>> {
    let label = label.to_owned();
    bridge(
        settings,
        "kv_open",
        |py| PyTuple::new(py, [label]),
        |_| Ok(()),
    )
}

fn get(settings: &Settings, label: &str, key: &str) -> wasmtime::Result<KvResult<Option<Vec<u8>>>> {
    let args = (key.to_owned(), label.to_owned());
    bridge(
        settings,
        "kv_get",
        |py| PyTuple::new(py, [args.0, args.1]),
        |v| v.extract::<Option<Vec<u8>>>(),
    )
}

fn set(
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

fn delete(settings: &Settings, label: &str, key: &str) -> wasmtime::Result<KvResult<()>> {
    let args = (key.to_owned(), label.to_owned());
    bridge(
        settings,
        "kv_delete",
        |py| PyTuple::new(py, [args.0, args.1]),
        |_| Ok(()),
    )
}

fn keys(settings: &Settings, label: &str) -> wasmtime::Result<KvResult<Vec<String>>> {
    let label = label.to_owned();
    bridge(
        settings,
        "kv_keys",
        |py| PyTuple::new(py, [label]),
        |v| v.extract::<Vec<String>>(),
    )
}

/// Run a blocking key-value call off the store's thread (tokio's blocking pool): the guest's other tasks go on.
async fn blocking<R: Send + 'static>(
    settings: Arc<Settings>,
    call: impl FnOnce(&Settings) -> wasmtime::Result<R> + Send + 'static,
) -> wasmtime::Result<R> {
    tokio::task::spawn_blocking(move || call(&settings))
        .await
        .map_err(|e| host_trap(Kind::Host, format!("a key-value worker failed: {e}")))?
}

fn label_of(state: &mut HostState, store: &Resource<Store>) -> wasmtime::Result<String> {
    Ok(state.table.get(store)?.label.clone())
}

// -- spin:key-value@3.0.0 (async) -------------------------------------------------------------------------------

fn kv3_error(e: KvError) -> kv3::Error {
    match e {
        KvError::Denied => kv3::Error::AccessDenied,
        KvError::Other(m) => kv3::Error::Other(m),
    }
}

/// The settings and the store's label, read from the store in one step.
fn kv3_target<T>(
    accessor: &Accessor<T, HasSelf<HostState>>,
    store: &Resource<Store>,
) -> wasmtime::Result<(Arc<Settings>, String)> {
    accessor.with(|mut view| {
        let state = view.get();
        Ok((state.settings.clone(), label_of(state, store)?))
    })
}

impl kv3::Host for HostState {}

impl kv3::HostStore for HostState {
    fn drop(&mut self, store: Resource<Store>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<T> kv3::HostStoreWithStore<T> for HasSelf<HostState> {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<Store>, kv3::Error>> {
        let settings = accessor.with(|mut view| view.get().settings.clone());
        let checked = label.clone();
        match blocking(settings, move |s| open(s, &checked)).await? {
            Ok(()) => {
                let handle = accessor.with(|mut view| view.get().table.push(Store { label }))?;
                Ok(Ok(handle))
            }
            Err(e) => Ok(Err(kv3_error(e))),
        }
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv3::Error>> {
        let (settings, label) = kv3_target(accessor, &store)?;
        Ok(blocking(settings, move |s| get(s, &label, &key))
            .await?
            .map_err(kv3_error))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv3::Error>> {
        let (settings, label) = kv3_target(accessor, &store)?;
        Ok(blocking(settings, move |s| set(s, &label, &key, &value))
            .await?
            .map_err(kv3_error))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv3::Error>> {
        let (settings, label) = kv3_target(accessor, &store)?;
        Ok(blocking(settings, move |s| delete(s, &label, &key))
            .await?
            .map_err(kv3_error))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv3::Error>> {
        let (settings, label) = kv3_target(accessor, &store)?;
        let found = blocking(settings, move |s| get(s, &label, &key)).await?;
        Ok(found.map(|v| v.is_some()).map_err(kv3_error))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<Store>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), kv3::Error>>)> {
        let (settings, label) = kv3_target(accessor, &store)?;
        let listed = blocking(settings, move |s| keys(s, &label)).await?;
        let (names, outcome) = match listed {
            Ok(names) => (names, Ok(())),
            Err(e) => (Vec::new(), Err(kv3_error(e))),
        };
        accessor.with(|mut view| {
            let stream = StreamReader::new(&mut view, names)?;
            let future =
                FutureReader::new(&mut view, async move { Ok::<_, wasmtime::Error>(outcome) })?;
            Ok((stream, future))
        })
    }
}

// -- fermyon:spin/key-value@2.0.0 (sync) ------------------------------------------------------------------------

fn kv2_error(e: KvError) -> kv2::Error {
    match e {
        KvError::Denied => kv2::Error::AccessDenied,
        KvError::Other(m) => kv2::Error::Other(m),
    }
}

impl kv2::Host for HostState {}

impl kv2::HostStore for HostState {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<Store>, kv2::Error>> {
        match open(&self.settings, &label)? {
            Ok(()) => Ok(Ok(self.table.push(Store { label })?)),
            Err(e) => Ok(Err(kv2_error(e))),
        }
    }

    fn get(
        &mut self,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv2::Error>> {
        let label = label_of(self, &store)?;
        Ok(get(&self.settings, &label, &key)?.map_err(kv2_error))
    }

    fn set(
        &mut self,
        store: Resource<Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv2::Error>> {
        let label = label_of(self, &store)?;
        Ok(set(&self.settings, &label, &key, &value)?.map_err(kv2_error))
    }

    fn delete(
        &mut self,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv2::Error>> {
        let label = label_of(self, &store)?;
        Ok(delete(&self.settings, &label, &key)?.map_err(kv2_error))
    }

    fn exists(
        &mut self,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv2::Error>> {
        let label = label_of(self, &store)?;
        Ok(get(&self.settings, &label, &key)?
            .map(|v| v.is_some())
            .map_err(kv2_error))
    }

    fn get_keys(
        &mut self,
        store: Resource<Store>,
    ) -> wasmtime::Result<Result<Vec<String>, kv2::Error>> {
        let label = label_of(self, &store)?;
        Ok(keys(&self.settings, &label)?.map_err(kv2_error))
    }

    fn drop(&mut self, store: Resource<Store>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

// -- wasi:keyvalue@0.2.0-draft2 (sync) --------------------------------------------------------------------------

fn wasi_error(e: KvError) -> wstore::Error {
    match e {
        KvError::Denied => wstore::Error::AccessDenied,
        KvError::Other(m) => wstore::Error::Other(m),
    }
}

impl wstore::Host for HostState {
    fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Store>, wstore::Error>> {
        match open(&self.settings, &identifier)? {
            Ok(()) => Ok(Ok(self.table.push(Store { label: identifier })?)),
            Err(e) => Ok(Err(wasi_error(e))),
        }
    }
}

impl wstore::HostBucket for HostState {
    fn get(
        &mut self,
        bucket: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wstore::Error>> {
        let label = label_of(self, &bucket)?;
        Ok(get(&self.settings, &label, &key)?.map_err(wasi_error))
    }

    fn set(
        &mut self,
        bucket: Resource<Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wstore::Error>> {
        let label = label_of(self, &bucket)?;
        Ok(set(&self.settings, &label, &key, &value)?.map_err(wasi_error))
    }

    fn delete(
        &mut self,
        bucket: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), wstore::Error>> {
        let label = label_of(self, &bucket)?;
        Ok(delete(&self.settings, &label, &key)?.map_err(wasi_error))
    }

    fn exists(
        &mut self,
        bucket: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wstore::Error>> {
        let label = label_of(self, &bucket)?;
        Ok(get(&self.settings, &label, &key)?
            .map(|v| v.is_some())
            .map_err(wasi_error))
    }

    /// Every key in one page (quotas keep a namespace small); a cursor is the index to resume from.
    fn list_keys(
        &mut self,
        bucket: Resource<Store>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wstore::KeyResponse, wstore::Error>> {
        let label = label_of(self, &bucket)?;
        let start = match cursor.as_deref().map(str::parse::<usize>) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return Ok(Err(wstore::Error::Other(format!(
                    "invalid cursor {cursor:?}"
                ))))
            }
        };
        Ok(keys(&self.settings, &label)?
            .map(|all| wstore::KeyResponse {
                keys: all.into_iter().skip(start).collect(),
                cursor: None,
            })
            .map_err(wasi_error))
    }

    fn drop(&mut self, bucket: Resource<Store>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

/// Batch operations key by key: wasi:keyvalue's batch interface does not promise atomicity.
impl wbatch::Host for HostState {
    fn get_many(
        &mut self,
        bucket: Resource<Store>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wstore::Error>> {
        let label = label_of(self, &bucket)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match get(&self.settings, &label, &key)? {
                Ok(value) => out.push((key, value)),
                Err(e) => return Ok(Err(wasi_error(e))),
            }
        }
        Ok(Ok(out))
    }

    fn set_many(
        &mut self,
        bucket: Resource<Store>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wstore::Error>> {
        let label = label_of(self, &bucket)?;
        for (key, value) in key_values {
            if let Err(e) = set(&self.settings, &label, &key, &value)? {
                return Ok(Err(wasi_error(e)));
            }
        }
        Ok(Ok(()))
    }

    fn delete_many(
        &mut self,
        bucket: Resource<Store>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wstore::Error>> {
        let label = label_of(self, &bucket)?;
        for key in keys {
            if let Err(e) = delete(&self.settings, &label, &key)? {
                return Ok(Err(wasi_error(e)));
            }
        }
        Ok(Ok(()))
    }
}
