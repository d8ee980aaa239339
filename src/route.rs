//! The `airssys:web` world: typed bindings (bodies cross as one bulk copy each way) and its host functions.
//!
//! The WIT is the package's own (`airssys_web/wit/`), so the contract printed by `airssys-web wit` and the one
//! compiled in here cannot drift. Host functions never raise into the guest for expected failures: those are
//! the `err` cases the contract defines. They trap only when the route's deadline passed during the call
//! (the guest then answers 504) or when the host object itself failed (a bug on our side, logged as such).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use wasmtime::component::HasSelf;

use crate::errors::{host_trap, Kind};
use crate::host::HostState;
use crate::outbound;

wasmtime::component::bindgen!({
    path: "airssys_web/wit",
    world: "route",
    imports: { default: trappable },
});

pub use self::airssys::web::types::{Request, Response};
pub use self::Route as RouteBindings;
pub use self::RoutePre as RouteBindingsPre;

pub fn add_to_linker(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    Route::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

impl airssys::web::types::Host for HostState {}

impl airssys::web::config::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.settings.config.get(&key).cloned())
    }
}

impl airssys::web::outbound::Host for HostState {
    fn fetch(
        &mut self,
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> wasmtime::Result<Result<Response, String>> {
        let remaining = self.remaining();
        match outbound::fetch(&self.settings, &method, &url, &headers, &body, remaining) {
            Ok(ok) => Ok(Ok(Response {
                status: ok.status,
                headers: ok.headers,
                body: ok.body,
            })),
            Err(e) if e.code == "deadline" => Err(host_trap(
                Kind::Timeout,
                format!(
                    "exceeded its {}s deadline while waiting in outbound.fetch ({})",
                    self.settings.timeout.as_secs_f64(),
                    e.message
                ),
            )),
            Err(e) if e.code == "host" => Err(host_trap(
                Kind::Host,
                format!("trapped in outbound.fetch: {}", e.message),
            )),
            Err(e) => Ok(Err(e.message)),
        }
    }
}

/// Call `host.<method>(*args)`, expecting `("ok", bytes | None)` or `("err", message)`.
fn kv_call(
    state: &HostState,
    method: &str,
    args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>>,
) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
    let Some(host) = state.settings.host.as_ref() else {
        return Ok(Err(
            "kv not granted to this component (deploy it with --kv)".to_owned(),
        ));
    };
    Python::attach(|py| {
        let trap = |e: PyErr| host_trap(Kind::Host, format!("trapped in kv.{method}: {e}"));
        let out = host
            .call_method1(py, method, args(py).map_err(trap)?)
            .map_err(trap)?;
        let out = out.bind(py);
        let bad = |e: PyErr| {
            host_trap(
                Kind::Host,
                format!("kv.{method}: the host returned a malformed result: {e}"),
            )
        };
        let pair = out.cast::<PyTuple>().map_err(|e| bad(e.into()))?;
        let tag: String = pair.get_item(0).and_then(|v| v.extract()).map_err(bad)?;
        let value = pair.get_item(1).map_err(bad)?;
        if tag == "ok" {
            Ok(Ok(value.extract::<Option<Vec<u8>>>().map_err(bad)?))
        } else {
            Ok(Err(value.extract::<String>().map_err(bad)?))
        }
    })
}

impl airssys::web::kv::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        kv_call(self, "kv_get", |py| PyTuple::new(py, [key]))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        kv_call(self, "kv_set", |py| {
            PyTuple::new(
                py,
                [
                    key.into_pyobject(py)?.into_any(),
                    PyBytes::new(py, &value).into_any(),
                ],
            )
        })
        .map(|r| r.map(|_| ()))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), String>> {
        kv_call(self, "kv_delete", |py| PyTuple::new(py, [key])).map(|r| r.map(|_| ()))
    }
}
