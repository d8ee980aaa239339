//! Pre-instantiated components (one [`Pre`] per generation) and live instances ([`Instance`], one Store each).
//!
//! A `Pre` links the component once against what the host provides (its `InstancePre`), so making an instance
//! is a fresh Store plus an instantiation from the pooling allocator: microseconds. An `Instance` serves one
//! call at a time; a call that traps, times out or fails in a host function poisons it (wasmtime cannot enter
//! a trapped Store again), and it releases its Store at once.
//!
//! The GIL is released while guest code runs; host functions that need policy re-acquire it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use wasmtime::component::Linker;
use wasmtime::{Engine, Store};

use crate::component::{Component, World};
use crate::engine::{deadline_ticks, Runtime, RuntimeInner};
use crate::errors::{classify, first_line, Fault, Kind};
use crate::exchange::HttpExchange;
use crate::headers::{check_response, MAX_HEADERS, MAX_HEADER_BYTES};
use crate::host::{format_size, CallContext, HostState, Preopen, Settings};
use crate::http::{serve_p2, serve_p3, P2Pre, P2Proxy, P3Pre, P3Service};
use crate::platform;
use crate::route::{self, NextFailed, Request, RouteBindings, RouteBindingsPre};
use crate::unprovided::stub_unprovided;

/// Fuel for instantiation (start-up code); each call then gets the version's own budget.
const START_FUEL: u64 = 1 << 62;

enum TypedPre {
    Route(RouteBindingsPre<HostState>),
    P2(P2Pre),
    P3(P3Pre),
}

enum Bindings {
    Route(RouteBindings),
    P2(P2Proxy),
    P3(P3Service),
}

struct Live {
    store: Store<HostState>,
    bindings: Bindings,
}

/// What makes instances of one generation: the linked component and the version's settings.
#[pyclass(frozen, module = "airssys_web._native")]
pub struct Pre {
    runtime: Arc<RuntimeInner>,
    engine: Engine,
    typed: TypedPre,
    settings: Arc<Settings>,
    world: World,
    /// Imports this host does not provide, linked to fail when called (wasi:http worlds only).
    unavailable: Vec<String>,
    ticks: u64,
    fuel: Option<u64>,
}

fn link_error(tag: &str, e: &wasmtime::Error) -> Fault {
    let text = format!("{e:#}");
    let what = if let Some(rest) = text.split("component imports ").nth(1) {
        format!(
            "it imports {}, which this host does not provide",
            first_line(rest)
                .trim_end_matches(", but a matching implementation was not found in the linker")
        )
    } else {
        first_line(&text).to_owned()
    };
    Fault::new(Kind::Link, format!("{tag} cannot be instantiated: {what}"))
}

fn build_linker(engine: &Engine, world: World) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    match world {
        World::Route => {
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
            route::add_to_linker(&mut linker)?;
        }
        World::HttpP2 => {
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
            platform::add_to_linker(&mut linker)?;
        }
        World::HttpP3 => {
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
            wasmtime_wasi::p3::add_to_linker(&mut linker)?;
            wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
            platform::add_to_linker(&mut linker)?;
        }
    }
    Ok(linker)
}

#[pymethods]
impl Pre {
    /// Link `component` for a version: `tag` is `name@version`; `config` holds config values and secrets;
    /// `preopens` are (host dir, guest dir, writable); `memory` is the instance's linear-memory cap in bytes;
    /// `timeout` the per-call deadline in seconds; `fuel` a per-call instruction budget (the component must
    /// have been compiled with fuel); `host` the Python object behind outbound fetch, KV and guest logs.
    #[new]
    #[pyo3(signature = (runtime, component, *, tag, config=HashMap::new(), preopens=Vec::new(), memory=256 << 20,
                        timeout=30.0, fuel=None, host=None, max_headers=MAX_HEADERS, max_header_bytes=MAX_HEADER_BYTES))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        runtime: &Runtime,
        component: &Component,
        tag: String,
        config: HashMap<String, String>,
        preopens: Vec<(String, String, bool)>,
        memory: usize,
        timeout: f64,
        fuel: Option<u64>,
        host: Option<Py<PyAny>>,
        max_headers: usize,
        max_header_bytes: usize,
    ) -> PyResult<Pre> {
        let inner = runtime.inner.clone();
        inner.ensure_open()?;
        if fuel.is_some() && !component.fuel {
            return Err(Fault::internal(
                "a version with a fuel budget needs a component compiled with fuel=True",
            )
            .into());
        }
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(Fault::internal(format!(
                "timeout must be a positive number of seconds, not {timeout}"
            ))
            .into());
        }
        let world = component.detect()?.unwrap_or(World::Route);
        let engine = inner.engines.get(component.fuel)?.clone();
        let wasm = component.inner.clone();
        let (typed, unavailable) = py.detach(|| -> Result<(TypedPre, Vec<String>), Fault> {
            let mut linker =
                build_linker(&engine, world).map_err(|e| Fault::internal(format!("{e:#}")))?;
            // An airssys:web component imports only what its contract names: anything else is a mistake to refuse.
            // A wasi:http one comes with its SDK's whole platform world: what the host lacks fails when called.
            let unavailable = match world {
                World::Route => Vec::new(),
                World::HttpP2 | World::HttpP3 => stub_unprovided(&mut linker, &wasm, &engine)
                    .map_err(|e| link_error(&tag, &e))?,
            };
            let pre = linker
                .instantiate_pre(&wasm)
                .map_err(|e| link_error(&tag, &e))?;
            let wrong = |e: wasmtime::Error| {
                Fault::new(
                    Kind::Invalid,
                    format!(
                        "{tag}: its handler export does not match the contract: {}",
                        first_line(&format!("{e:#}"))
                    ),
                )
            };
            let typed = match world {
                World::Route => TypedPre::Route(RouteBindingsPre::new(pre).map_err(wrong)?),
                World::HttpP2 => TypedPre::P2(P2Pre::new(pre).map_err(wrong)?),
                World::HttpP3 => TypedPre::P3(P3Pre::new(pre).map_err(wrong)?),
            };
            Ok((typed, unavailable))
        })?;
        let timeout = Duration::from_secs_f64(timeout);
        let settings = Arc::new(Settings {
            tag,
            config,
            preopens: preopens
                .into_iter()
                .map(|(host, guest, writable)| Preopen {
                    host,
                    guest,
                    writable,
                })
                .collect(),
            memory,
            timeout,
            host,
            max_headers,
            max_header_bytes,
        });
        Ok(Pre {
            runtime: inner,
            engine,
            typed,
            settings,
            world,
            unavailable,
            ticks: deadline_ticks(timeout),
            fuel,
        })
    }

    /// A new instance (releases the GIL while instantiating).
    fn instantiate(&self, py: Python<'_>) -> PyResult<Instance> {
        let live = py.detach(|| self.make())?;
        Ok(Instance {
            settings: self.settings.clone(),
            runtime: self.runtime.clone(),
            ticks: self.ticks,
            fuel: self.fuel,
            live: Mutex::new(Some(live)),
            poisoned: AtomicBool::new(false),
            calls: AtomicU64::new(0),
        })
    }

    /// `"airssys:web"`, `"wasi:http"` or `"wasi:http@0.3"`.
    #[getter]
    fn world(&self) -> &'static str {
        self.world.name()
    }

    #[getter]
    fn tag(&self) -> &str {
        &self.settings.tag
    }

    /// Imports this host does not provide (sorted): linked so that calling them fails, naming them.
    #[getter]
    fn unavailable(&self) -> Vec<String> {
        self.unavailable.clone()
    }
}

impl Pre {
    fn make(&self) -> Result<Live, Fault> {
        self.runtime.ensure_open()?;
        let state = HostState::new(self.settings.clone(), self.runtime.handle.clone())?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.ticks);
        // One guest->host copy may be as large as the guest's memory, and no larger.
        store.set_hostcall_fuel(self.settings.memory.max(16 << 20));
        if self.fuel.is_some() {
            store
                .set_fuel(START_FUEL)
                .map_err(|e| Fault::internal(format!("{e:#}")))?;
        }
        let result = match &self.typed {
            TypedPre::Route(pre) => pre.instantiate(&mut store).map(Bindings::Route),
            TypedPre::P2(pre) => self
                .runtime
                .handle
                .block_on(pre.instantiate_async(&mut store))
                .map(Bindings::P2),
            TypedPre::P3(pre) => self
                .runtime
                .handle
                .block_on(pre.instantiate_async(&mut store))
                .map(Bindings::P3),
        };
        match result {
            Ok(bindings) => Ok(Live { store, bindings }),
            Err(e) => {
                let limiter = &store.data().limiter;
                Err(self.instantiation_fault(&e, limiter.hit.then_some(limiter.refused)))
            }
        }
    }

    fn instantiation_fault(&self, e: &wasmtime::Error, refused: Option<usize>) -> Fault {
        let s = &self.settings;
        let memory_hit = refused.is_some();
        if let (Some(needed), None) = (refused, e.downcast_ref::<wasmtime::Trap>()) {
            return Fault::new(
                Kind::StartMemory,
                format!(
                    "{} needs {} of linear memory at start, more than its memory limit of {}; \
                     deploy it with a larger --memory",
                    s.tag,
                    format_size(needed),
                    s.memory_text()
                ),
            );
        }
        let f = classify(
            e,
            &s.tag,
            memory_hit,
            &s.memory_text(),
            s.timeout.as_secs_f64(),
        );
        match f.kind {
            Kind::Trap if e.downcast_ref::<wasmtime::Trap>().is_none() => link_error(&s.tag, e),
            _ => f,
        }
    }
}

/// One live instance. The pool hands it to one caller at a time; a concurrent call is refused, never run.
#[pyclass(frozen, module = "airssys_web._native")]
pub struct Instance {
    settings: Arc<Settings>,
    runtime: Arc<RuntimeInner>,
    ticks: u64,
    fuel: Option<u64>,
    live: Mutex<Option<Live>>,
    poisoned: AtomicBool,
    calls: AtomicU64,
}

type Headers = Vec<(String, String)>;

/// Why a call failed: the guest (or the runtime around it), or the next stage of a pipeline (its own exception).
enum CallError {
    Fault(Fault),
    Next(PyErr),
}

impl From<Fault> for CallError {
    fn from(f: Fault) -> CallError {
        CallError::Fault(f)
    }
}

/// Headers from Python: pairs of str or of bytes (latin-1, as ASGI gives them).
fn extract_headers(headers: &Bound<'_, PyAny>) -> PyResult<Headers> {
    let list = headers.cast::<PyList>().map_err(PyErr::from);
    let mut out = Vec::new();
    let mut push = |item: Bound<'_, PyAny>| -> PyResult<()> {
        let pair = item.cast::<PyTuple>()?;
        let k = pair.get_item(0)?;
        let v = pair.get_item(1)?;
        out.push((text_of(&k)?, text_of(&v)?));
        Ok(())
    };
    match list {
        Ok(list) => {
            for item in list.iter() {
                push(item)?;
            }
        }
        Err(_) => {
            for item in headers.try_iter()? {
                push(item?)?;
            }
        }
    }
    Ok(out)
}

fn text_of(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_str()?.to_owned());
    }
    let b = v.cast::<PyBytes>()?;
    Ok(b.as_bytes().iter().map(|&c| char::from(c)).collect())
}

impl Instance {
    fn take_live(&self) -> Result<std::sync::MutexGuard<'_, Option<Live>>, Fault> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Fault::closed(format!(
                "{}: instance is closed",
                self.settings.tag
            )));
        }
        let guard = self.live.try_lock().map_err(|_| {
            Fault::internal(format!(
                "{}: instance is already serving a call",
                self.settings.tag
            ))
        })?;
        if guard.is_none() {
            return Err(Fault::closed(format!(
                "{}: instance is closed",
                self.settings.tag
            )));
        }
        Ok(guard)
    }

    fn prepare(&self, store: &mut Store<HostState>, call: &CallContext) -> Result<(), Fault> {
        self.runtime.ensure_open()?;
        store.data_mut().begin_call(call);
        let budget = call.budget(self.settings.timeout);
        store.set_epoch_deadline(if call.timeout.is_some() {
            deadline_ticks(budget)
        } else {
            self.ticks
        });
        if let Some(fuel) = self.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| Fault::internal(format!("{e:#}")))?;
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Map a failed call; a poisoning failure drops the Store now (its memory goes back to the pool).
    fn fail(&self, slot: &mut Option<Live>, e: &wasmtime::Error, budget: Duration) -> Fault {
        let hit = slot.as_ref().is_some_and(|l| l.store.data().limiter.hit);
        let s = &self.settings;
        let fault = classify(e, &s.tag, hit, &s.memory_text(), budget.as_secs_f64());
        if fault.kind.poisons() {
            self.poisoned.store(true, Ordering::Release);
            if let Some(live) = slot.take() {
                flush_output(s, &live.store);
            }
        }
        fault
    }

    fn call_route(
        &self,
        method: String,
        path: String,
        query: String,
        headers: Headers,
        body: Vec<u8>,
        call: &CallContext,
    ) -> Result<(u16, Headers, Vec<u8>), CallError> {
        let mut guard = self.take_live()?;
        let live = guard
            .as_mut()
            .ok_or_else(|| Fault::closed("instance is closed"))?;
        let Bindings::Route(bindings) = &live.bindings else {
            return Err(Fault::internal(format!(
                "{} is not an airssys:web component",
                self.settings.tag
            ))
            .into());
        };
        self.prepare(&mut live.store, call)?;
        let req = Request {
            method,
            path,
            query,
            headers,
            body,
        };
        let result = bindings
            .airssys_web_handler()
            .call_handle(&mut live.store, &req);
        live.store.data_mut().end_call();
        match result {
            Ok(resp) => {
                let s = &self.settings;
                check_response(
                    &s.tag,
                    resp.status,
                    &resp.headers,
                    s.max_headers,
                    s.max_header_bytes,
                )?;
                Ok((resp.status, resp.headers, resp.body))
            }
            Err(e) => {
                let fault = self.fail(&mut guard, &e, call.budget(self.settings.timeout));
                match e.downcast::<NextFailed>() {
                    // The next stage failed: the request fails as it did (this stage is discarded all the same).
                    Ok(NextFailed(next_error)) => Err(CallError::Next(next_error)),
                    Err(_) => Err(CallError::Fault(fault)),
                }
            }
        }
    }

    fn serve_exchange(&self, ex: &HttpExchange, call: &CallContext) -> Result<(), Fault> {
        let mut guard = self.take_live()?;
        let live = guard
            .as_mut()
            .ok_or_else(|| Fault::closed("instance is closed"))?;
        self.prepare(&mut live.store, call)?;
        let budget = call.budget(self.settings.timeout);
        let handle = self.runtime.handle.clone();
        let result = match &live.bindings {
            Bindings::P2(proxy) => handle.block_on(serve_p2(&mut live.store, proxy, ex, budget)),
            Bindings::P3(service) => {
                handle.block_on(serve_p3(&mut live.store, service, ex, budget))
            }
            Bindings::Route(_) => {
                return Err(Fault::internal(format!(
                    "{} is not a wasi:http component",
                    self.settings.tag
                )));
            }
        };
        live.store.data_mut().end_call();
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(&mut guard, &e, budget)),
        }
    }
}

/// Hand what the guest printed to `host.log(stream, text)` (with the GIL; after the call).
fn flush_output(settings: &Settings, store: &Store<HostState>) {
    let output = &store.data().output;
    if !output.pending() {
        return;
    }
    let (chunks, dropped) = output.drain();
    let Some(host) = settings.host.as_ref() else {
        return;
    };
    Python::attach(|py| {
        for (which, text) in chunks {
            let stream = if which == 1 { "stdout" } else { "stderr" };
            if let Err(e) = host.call_method1(py, "log", (stream, text)) {
                e.write_unraisable(py, None);
            }
        }
        if dropped > 0 {
            let note = format!("[{dropped} more bytes of output dropped]\n");
            let _ = host.call_method1(py, "log", ("stderr", note));
        }
    });
}

#[pymethods]
impl Instance {
    /// Call an `airssys:web` guest's `handle`: `(status, headers, body)`. `headers` are pairs of str or bytes.
    ///
    /// `timeout`: seconds the caller has left (the deadline is the version's timeout or this, whichever is
    /// sooner); `next`: for a pipeline stage, `next(method, path, query, headers, body, remaining)` answers its
    /// imported handler (what it raises fails this call too, unchanged); `depth`: component-to-component calls
    /// already made for this request (handed to `host.fetch`).
    #[pyo3(signature = (method, path, query, headers, body, *, timeout=None, next=None, depth=0))]
    #[allow(clippy::too_many_arguments)]
    fn handle<'py>(
        &self,
        py: Python<'py>,
        method: String,
        path: String,
        query: String,
        headers: &Bound<'py, PyAny>,
        body: &[u8],
        timeout: Option<f64>,
        next: Option<Py<PyAny>>,
        depth: u32,
    ) -> PyResult<(u16, Bound<'py, PyList>, Bound<'py, PyBytes>)> {
        let headers = extract_headers(headers)?;
        let body = body.to_vec();
        let call = CallContext {
            timeout,
            next: next.map(Arc::new),
            depth,
        };
        let result = py.detach(|| self.call_route(method, path, query, headers, body, &call));
        self.flush();
        let (status, headers, body) = match result {
            Ok(ok) => ok,
            Err(CallError::Fault(f)) => return Err(f.into()),
            Err(CallError::Next(e)) => return Err(e),
        };
        let list = PyList::new(py, headers)?;
        Ok((status, list, PyBytes::new(py, &body)))
    }

    /// Serve one wasi:http exchange to its end (blocking; releases the GIL). A failure of the guest raises
    /// GuestFault; a failure of the response alone (bad head, cut body) is recorded in the exchange. `timeout` and
    /// `depth` are as for :meth:`handle`.
    #[pyo3(signature = (exchange, *, timeout=None, depth=0))]
    fn serve(
        &self,
        py: Python<'_>,
        exchange: &HttpExchange,
        timeout: Option<f64>,
        depth: u32,
    ) -> PyResult<()> {
        let call = CallContext {
            timeout,
            next: None,
            depth,
        };
        let result = py.detach(|| self.serve_exchange(exchange, &call));
        self.flush();
        if let Err(f) = &result {
            exchange.shared.finish(Some(f.clone()));
        } else {
            exchange.shared.finish(None);
        }
        Ok(result?)
    }

    /// Release the Store now (idempotent).
    fn close(&self, py: Python<'_>) {
        self.poisoned.store(true, Ordering::Release);
        let live = py.detach(|| self.live.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(live) = live {
            flush_output(&self.settings, &live.store);
        }
    }

    /// True once a call poisoned the instance or it was closed: the pool discards it.
    #[getter]
    fn poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Calls made so far.
    #[getter]
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Bytes of linear memory the instance holds now (None when closed).
    #[getter]
    fn memory_size(&self) -> Option<usize> {
        let guard = self.live.try_lock().ok()?;
        guard.as_ref().map(|l| l.store.data().limiter.total())
    }

    fn __repr__(&self) -> String {
        format!(
            "Instance({}, calls={}, poisoned={}, memory cap {})",
            self.settings.tag,
            self.calls(),
            self.poisoned(),
            format_size(self.settings.memory)
        )
    }
}

impl Instance {
    fn flush(&self) {
        if let Ok(guard) = self.live.try_lock() {
            if let Some(live) = guard.as_ref() {
                flush_output(&self.settings, &live.store);
            }
        }
    }
}
