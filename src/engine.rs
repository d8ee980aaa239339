//! The runtime object: wasmtime engines made for serving, their epoch ticker, and a tokio runtime.
//!
//! One [`Runtime`] owns everything that runs in the background; nothing is created when the module is
//! imported, and [`Runtime::close`] stops the ticker and the tokio runtime. Two engines: one with epoch
//! interruption only, and (created on first use) one that also meters fuel, because metering slows every
//! guest it compiles (9-70%) and compiled artifacts are only valid for the configuration that produced them.
//!
//! Both engines use the pooling allocator (instance slots, memories and tables reserved once and reused) with
//! copy-on-write memory images, so instantiating from an `InstancePre` is a few microseconds and a pooled
//! instance's private memory is only the pages it wrote. If the address space cannot be reserved (a `ulimit
//! -v`, say) the engine falls back to on-demand allocation and says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::prelude::*;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::errors::Fault;

/// The version of the wasmtime crate this module was built with (part of the compile-cache key).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Wall-clock length of one epoch tick; deadlines are rounded up to whole ticks.
pub const TICK: Duration = Duration::from_millis(5);

/// Sizing of the pooling allocator (per engine). Slots are reserved address space, not memory.
#[derive(Clone, Debug)]
pub struct PoolSizes {
    pub component_instances: u32,
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
    pub stacks: u32,
}

impl PoolSizes {
    fn scaled(&self, divisor: u32) -> PoolSizes {
        let d = divisor.max(1);
        PoolSizes {
            component_instances: (self.component_instances / d).max(16),
            core_instances: (self.core_instances / d).max(64),
            memories: (self.memories / d).max(32),
            tables: (self.tables / d).max(64),
            stacks: (self.stacks / d).max(16),
        }
    }
}

/// A stable description of the engine settings that compiled code depends on.
fn settings_text(fuel: bool) -> String {
    format!(
        "wasmtime={WASMTIME_VERSION};native={};opt=speed;epoch=1;fuel={};stack={};cm-async=1",
        env!("CARGO_PKG_VERSION"),
        u8::from(fuel),
        MAX_WASM_STACK
    )
}

/// Guest stack limit: deep enough for CPython's interpreter, small enough to stop runaway recursion fast.
const MAX_WASM_STACK: usize = 1 << 20;

fn make_config(fuel: bool, pool: Option<&PoolSizes>) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    config.cranelift_opt_level(OptLevel::Speed);
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.async_stack_size(MAX_WASM_STACK + (1 << 20));
    config.memory_init_cow(true);
    if let Some(sizes) = pool {
        let mut p = PoolingAllocationConfig::new();
        p.total_component_instances(sizes.component_instances)
            .total_core_instances(sizes.core_instances)
            .total_memories(sizes.memories)
            .total_tables(sizes.tables)
            .total_stacks(sizes.stacks)
            .max_memories_per_module(2)
            .max_tables_per_module(8)
            .table_elements(200_000)
            .max_core_instance_size(16 << 20)
            .max_component_instance_size(4 << 20)
            .max_memory_size(1 << 32)
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    config
}

fn make_engine(fuel: bool, pool: &PoolSizes) -> Result<(Engine, bool), Fault> {
    match Engine::new(&make_config(fuel, Some(pool))) {
        Ok(engine) => Ok((engine, true)),
        Err(_) => Engine::new(&make_config(fuel, None))
            .map(|e| (e, false))
            .map_err(|e| Fault::internal(format!("cannot create a wasmtime engine: {e:#}"))),
    }
}

pub struct Engines {
    pub plain: Engine,
    pub plain_pooled: bool,
    fuel: OnceLock<(Engine, bool)>,
    pool: PoolSizes,
}

impl Engines {
    pub fn get(&self, fuel: bool) -> Result<&Engine, Fault> {
        if !fuel {
            return Ok(&self.plain);
        }
        if let Some((e, _)) = self.fuel.get() {
            return Ok(e);
        }
        // Metered versions are rarer: give their engine a quarter of the slots.
        let made = make_engine(true, &self.pool.scaled(4))?;
        Ok(&self.fuel.get_or_init(|| made).0)
    }

    fn each(&self) -> impl Iterator<Item = &Engine> {
        std::iter::once(&self.plain).chain(self.fuel.get().map(|(e, _)| e))
    }
}

/// Shared state behind [`Runtime`]; components, pres and instances keep it alive.
pub struct RuntimeInner {
    pub engines: Engines,
    tokio: Mutex<Option<tokio::runtime::Runtime>>,
    pub handle: tokio::runtime::Handle,
    ticker: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    closed: AtomicBool,
}

impl RuntimeInner {
    pub fn ensure_open(&self) -> Result<(), Fault> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Fault::closed("the runtime is closed"));
        }
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn start_ticker(self: &Arc<Self>) {
        let mut slot = self.ticker.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() || self.is_closed() {
            return;
        }
        let (tx, rx) = mpsc::channel::<()>();
        let weak = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("airssys-epoch".into())
            .spawn(move || {
                // recv_timeout returns Err(Timeout) every tick; a message or a dropped sender ends the loop.
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TICK) {
                    match weak.upgrade() {
                        Some(inner) => inner.engines.each().for_each(Engine::increment_epoch),
                        None => return,
                    }
                }
            })
            .expect("cannot start the epoch ticker thread");
        *slot = Some((tx, thread));
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let ticker = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((tx, thread)) = ticker {
            drop(tx);
            let _ = thread.join();
        }
        let rt = self.tokio.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rt) = rt {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Epoch ticks for a deadline of `seconds` (at least one, plus one for the tick already under way).
pub fn deadline_ticks(timeout: Duration) -> u64 {
    let ticks = timeout.as_nanos().div_ceil(TICK.as_nanos()).max(1);
    u64::try_from(ticks).unwrap_or(u64::MAX / 2) + 1
}

/// The runtime: engines, the epoch ticker and the tokio runtime that drives wasi:http bodies.
#[pyclass(frozen, module = "airssys_web._native")]
pub struct Runtime {
    pub inner: Arc<RuntimeInner>,
}

#[pymethods]
impl Runtime {
    #[new]
    #[pyo3(signature = (*, component_instances=1000, core_instances=10_000, memories=2000, tables=4000, stacks=1000, threads=2))]
    fn new(
        component_instances: u32,
        core_instances: u32,
        memories: u32,
        tables: u32,
        stacks: u32,
        threads: usize,
    ) -> PyResult<Self> {
        let pool = PoolSizes {
            component_instances,
            core_instances,
            memories,
            tables,
            stacks,
        };
        let (plain, plain_pooled) = make_engine(false, &pool).map_err(Fault::into_py)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("airssys-io")
            .enable_all()
            .build()
            .map_err(|e| Fault::internal(format!("cannot start the I/O runtime: {e}")).into_py())?;
        let handle = rt.handle().clone();
        let inner = Arc::new(RuntimeInner {
            engines: Engines {
                plain,
                plain_pooled,
                fuel: OnceLock::new(),
                pool,
            },
            tokio: Mutex::new(Some(rt)),
            handle,
            ticker: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        inner.start_ticker();
        Ok(Runtime { inner })
    }

    /// Stop the epoch ticker and the I/O runtime (idempotent). Instances still alive stop at their next call.
    fn close(&self, py: Python<'_>) {
        let inner = self.inner.clone();
        py.detach(move || inner.close());
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Whether the plain engine uses the pooling allocator (False: the address space could not be reserved).
    #[getter]
    fn pooling(&self) -> bool {
        self.inner.engines.plain_pooled
    }

    /// Identifies (wasmtime version, engine settings): the key of serialized artifacts.
    #[staticmethod]
    #[pyo3(signature = (fuel=false))]
    fn fingerprint(fuel: bool) -> String {
        settings_text(fuel)
    }

    #[staticmethod]
    fn tick_seconds() -> f64 {
        TICK.as_secs_f64()
    }

    fn __repr__(&self) -> String {
        format!(
            "Runtime(wasmtime={WASMTIME_VERSION}, pooling={}, closed={})",
            self.inner.engines.plain_pooled,
            self.inner.is_closed()
        )
    }
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        // The last holder may be a tokio worker (an exchange finishing): never block here.
        let rt = self
            .tokio
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rt) = rt {
            rt.shutdown_background();
        }
        if let Some((tx, _thread)) = self
            .ticker
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            drop(tx); // the ticker holds only a weak reference: it ends at its next tick
        }
    }
}
