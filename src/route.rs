//! The `airssys:web` worlds: typed bindings (bodies cross as one bulk copy each way) and their host functions.
//!
//! The WIT is the package's own (`airssys_web/wit/`), so the contract printed by `airssys-web wit` and the one
//! compiled in here cannot drift. The bindings are generated for the `middleware` world, whose imports are a
//! superset of `route`'s (it also imports `handler`: the next stage) and whose export is the same, so one linker
//! and one typed export serve both kinds of component; 0.1.0 components link too (semver-compatible names).
//!
//! Host functions never raise into the guest for expected failures: those are the `err` cases the contract
//! defines. They trap only when the route's deadline passed during the call (the guest then answers 504), when
//! the next stage failed (its failure is the request's), or when the host object itself failed (our bug).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use wasmtime::component::HasSelf;

use crate::errors::{host_trap, Kind};
use crate::host::HostState;
use crate::outbound;

wasmtime::component::bindgen!({
    path: "airssys_web/wit",
    world: "middleware",
    imports: { default: trappable },
});

pub use self::airssys::web::types::{Request, Response};
pub use self::Middleware as RouteBindings;
pub use self::MiddlewarePre as RouteBindingsPre;

pub fn add_to_linker(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    Middleware::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

impl airssys::web::handler::Host for HostState {
    /// The next stage: the request goes to the callable the caller of this stage gave (`next`), under what is
    /// left of this stage's deadline; its failure traps this stage (the request fails as the next stage did).
    fn handle(&mut self, req: Request) -> wasmtime::Result<Response> {
        let remaining = self.remaining();
        let Some(next) = self.next.clone() else {
            return Err(host_trap(
                Kind::Host,
                "called its next handler, but it runs without one (only a pipeline stage has a next)",
            ));
        };
        if remaining <= 0.0 {
            return Err(host_trap(
                Kind::Timeout,
                "exceeded its deadline before calling the next stage",
            ));
        }
        Python::attach(|py| {
            let args = (
                req.method,
                req.path,
                req.query,
                req.headers,
                PyBytes::new(py, &req.body),
                remaining,
            );
            match next.call1(py, args) {
                Ok(out) => {
                    let out = out.bind(py);
                    let bad = |e: PyErr| {
                        host_trap(Kind::Host, format!("the next stage answered badly: {e}"))
                    };
                    let status: u16 = out.get_item(0).and_then(|v| v.extract()).map_err(bad)?;
                    let headers: Vec<(String, String)> =
                        out.get_item(1).and_then(|v| v.extract()).map_err(bad)?;
                    let body: Vec<u8> = out.get_item(2).and_then(|v| v.extract()).map_err(bad)?;
                    Ok(Response {
                        status,
                        headers,
                        body,
                    })
                }
                Err(e) => Err(wasmtime::Error::new(NextFailed(e))),
            }
        })
    }
}

/// The next stage raised: carried through the trap so the caller gets the very same exception back.
#[derive(Debug)]
pub struct NextFailed(pub PyErr);

impl std::fmt::Display for NextFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the next stage failed: {}", self.0)
    }
}

impl std::error::Error for NextFailed {}

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
        match outbound::fetch(
            &self.settings,
            &method,
            &url,
            &headers,
            &body,
            remaining,
            self.depth,
        ) {
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
