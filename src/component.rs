//! Compiled components: compile, serialize, load a verified artifact, and say what a component imports,
//! exports and which world it serves.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use wasmtime::component::Component as WasmComponent;

use crate::engine::{Runtime, RuntimeInner};
use crate::errors::{first_line, Fault, Kind};

/// The world a component serves, from its exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// `airssys:web/handler@0.1.x`
    Route,
    /// `wasi:http/incoming-handler@0.2.x`
    HttpP2,
    /// `wasi:http/handler@0.3.x`
    HttpP3,
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            World::Route => "airssys:web",
            World::HttpP2 => "wasi:http",
            World::HttpP3 => "wasi:http@0.3",
        }
    }
}

pub const ROUTE_HANDLER_PREFIX: &str = "airssys:web/handler@0.1.";
pub const P2_HANDLER_PREFIX: &str = "wasi:http/incoming-handler@0.2.";
pub const P3_HANDLER_PREFIX: &str = "wasi:http/handler@0.3.";

pub fn world_of<'a>(exports: impl IntoIterator<Item = &'a str>) -> Option<World> {
    let mut found = None;
    for name in exports {
        let world = if name.starts_with(ROUTE_HANDLER_PREFIX) {
            World::Route
        } else if name.starts_with(P3_HANDLER_PREFIX) {
            World::HttpP3
        } else if name.starts_with(P2_HANDLER_PREFIX) {
            World::HttpP2
        } else {
            continue;
        };
        // airssys:web wins over wasi:http; 0.3 over 0.2 (a component exporting several serves the newest).
        found = Some(match (found, world) {
            (Some(World::Route), _) | (_, World::Route) => World::Route,
            (Some(World::HttpP3), _) | (_, World::HttpP3) => World::HttpP3,
            _ => World::HttpP2,
        });
    }
    found
}

/// A compiled component, valid for the engine (plain or fuel-metering) that compiled it.
#[pyclass(frozen, module = "airssys_web._native")]
pub struct Component {
    pub inner: WasmComponent,
    pub runtime: Arc<RuntimeInner>,
    #[pyo3(get)]
    pub fuel: bool,
}

fn invalid(e: wasmtime::Error) -> PyErr {
    Fault::new(
        Kind::Invalid,
        format!(
            "the component does not validate: {}",
            first_line(&format!("{e:#}"))
        ),
    )
    .into()
}

#[pymethods]
impl Component {
    /// Compile `wasm` (releases the GIL; compilation uses every core).
    #[staticmethod]
    #[pyo3(signature = (runtime, wasm, *, fuel=false))]
    fn compile(py: Python<'_>, runtime: &Runtime, wasm: &[u8], fuel: bool) -> PyResult<Component> {
        let inner = runtime.inner.clone();
        inner.ensure_open()?;
        let engine = inner.engines.get(fuel)?.clone();
        let compiled = py
            .detach(|| WasmComponent::new(&engine, wasm))
            .map_err(invalid)?;
        Ok(Component {
            inner: compiled,
            runtime: inner,
            fuel,
        })
    }

    /// Load a serialized artifact from `path` (memory-mapped, so its memory images are shared copy-on-write).
    ///
    /// Only call this on an artifact whose checksum was verified: wasmtime trusts serialized code completely.
    #[staticmethod]
    #[pyo3(signature = (runtime, path, *, fuel=false))]
    fn load(
        py: Python<'_>,
        runtime: &Runtime,
        path: std::path::PathBuf,
        fuel: bool,
    ) -> PyResult<Component> {
        let inner = runtime.inner.clone();
        inner.ensure_open()?;
        let engine = inner.engines.get(fuel)?.clone();
        // SAFETY: the caller verified the artifact's checksum; artifacts are only written by `serialize` below,
        // into the operator's registry directory, and deserialize checks the engine version and settings.
        let loaded = py.detach(|| unsafe { WasmComponent::deserialize_file(&engine, &path) });
        let compiled = loaded.map_err(|e| {
            PyErr::from(Fault::new(
                Kind::Invalid,
                format!(
                    "cannot load the artifact: {}",
                    first_line(&format!("{e:#}"))
                ),
            ))
        })?;
        Ok(Component {
            inner: compiled,
            runtime: inner,
            fuel,
        })
    }

    /// The compiled artifact, for the on-disk cache.
    fn serialize<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let data = py
            .detach(|| self.inner.serialize())
            .map_err(|e| Fault::internal(format!("cannot serialize the component: {e:#}")))?;
        Ok(PyBytes::new(py, &data))
    }

    /// Names of the component's imports (interfaces and functions), sorted.
    fn imports(&self) -> PyResult<Vec<String>> {
        let engine = self.runtime.engines.get(self.fuel)?;
        let ty = self.inner.component_type();
        let mut names: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
        names.sort();
        Ok(names)
    }

    /// Names of the component's exports, sorted.
    fn exports(&self) -> PyResult<Vec<String>> {
        let engine = self.runtime.engines.get(self.fuel)?;
        let ty = self.inner.component_type();
        let mut names: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
        names.sort();
        Ok(names)
    }

    /// `"airssys:web"`, `"wasi:http"` (0.2), `"wasi:http@0.3"`, or None when it exports no known handler.
    fn world(&self) -> PyResult<Option<&'static str>> {
        Ok(self.detect()?.map(World::name))
    }

    fn __repr__(&self) -> String {
        format!("Component(fuel={})", self.fuel)
    }
}

impl Component {
    pub fn detect(&self) -> Result<Option<World>, Fault> {
        let engine = self.runtime.engines.get(self.fuel)?;
        let ty = self.inner.component_type();
        let names: Vec<&str> = ty.exports(engine).map(|(n, _)| n).collect();
        Ok(world_of(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worlds_from_exports() {
        assert_eq!(world_of(["airssys:web/handler@0.1.0"]), Some(World::Route));
        assert_eq!(
            world_of([
                "airssys:web/handler@0.1.1",
                "wasi:http/incoming-handler@0.2.3"
            ]),
            Some(World::Route)
        );
        assert_eq!(
            world_of(["wasi:http/incoming-handler@0.2.0"]),
            Some(World::HttpP2)
        );
        assert_eq!(
            world_of([
                "wasi:http/incoming-handler@0.2.6",
                "wasi:http/handler@0.3.0"
            ]),
            Some(World::HttpP3)
        );
        assert_eq!(world_of(["wasi:cli/run@0.2.0"]), None);
        assert_eq!(world_of(["airssys:web/handler@0.2.0"]), None);
    }
}
