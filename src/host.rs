//! What a guest can reach: the data of each Store, built from a version's settings.
//!
//! [`Settings`] are fixed per generation (one `Pre`); [`HostState`] is the `T` of each `Store<T>`: a WASI
//! context that holds only the granted directories (no environment, arguments, sockets or name lookups), the
//! wasi:http context whose only way out is [`crate::outbound`], the memory limiter, the output buffer, and the
//! deadline of the call under way. Host functions that need policy (outbound fetch, KV) call the generation's
//! Python `host` object; everything else (config, stdio, clocks) stays in Rust.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::errors::{Fault, Kind};
use crate::limiter::MemoryCap;
use crate::outbound::Outbound;
use crate::output::Output;

/// A granted directory: `host` is visible to the guest at `guest`.
#[derive(Clone, Debug)]
pub struct Preopen {
    pub host: String,
    pub guest: String,
    pub writable: bool,
}

/// Everything fixed for one generation.
pub struct Settings {
    /// `name@version`, for messages.
    pub tag: String,
    pub config: HashMap<String, String>,
    pub preopens: Vec<Preopen>,
    /// Linear-memory cap of one instance, in bytes.
    pub memory: usize,
    pub timeout: Duration,
    /// The generation's Python host object (`fetch`, `kv_get`, `kv_set`, `kv_delete`, `log`, `call_next`).
    pub host: Option<Py<PyAny>>,
    /// Response header caps: count and total bytes of names and values.
    pub max_headers: usize,
    pub max_header_bytes: usize,
}

impl Settings {
    pub fn memory_text(&self) -> String {
        format_size(self.memory)
    }
}

pub fn format_size(n: usize) -> String {
    const MIB: usize = 1 << 20;
    const KIB: usize = 1 << 10;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} B")
    }
}

/// What the caller of one call says about it.
#[derive(Clone, Default)]
pub struct CallContext {
    /// Seconds the caller has left: the call's deadline is the version's timeout or this, whichever is sooner.
    pub timeout: Option<f64>,
    pub next: Option<Arc<Py<PyAny>>>,
    pub depth: u32,
}

impl CallContext {
    /// The deadline of a call by a version whose own timeout is `own`.
    pub fn budget(&self, own: Duration) -> Duration {
        match self.timeout {
            Some(t) if t.is_finite() && t >= 0.0 => own.min(Duration::from_secs_f64(t)),
            _ => own,
        }
    }
}

/// The data of one Store.
pub struct HostState {
    pub settings: Arc<Settings>,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
    pub outbound: Outbound,
    pub limiter: MemoryCap,
    pub output: Output,
    /// When the call under way must end (set before each call).
    pub deadline: Instant,
    /// The next stage of the call under way (a pipeline stage's imported `handler`), if any.
    pub next: Option<Arc<Py<PyAny>>>,
    /// Component-to-component calls the request under way already went through.
    pub depth: u32,
}

impl HostState {
    pub fn new(
        settings: Arc<Settings>,
        runtime: tokio::runtime::Handle,
    ) -> Result<HostState, Fault> {
        let output = Output::default();
        let mut b = WasiCtxBuilder::new();
        b.stdout(output.stream(1)).stderr(output.stream(2));
        b.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        b.socket_addr_check(|_, _| Box::pin(async { false }));
        b.allow_blocking_current_thread(true);
        for p in &settings.preopens {
            let perms = if p.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            b.preopened_dir(&p.host, &p.guest, perms).map_err(|e| {
                Fault::new(
                    Kind::Link,
                    format!(
                        "{}: cannot open the granted directory {} (for {}): {e}; does it still exist?",
                        settings.tag, p.host, p.guest
                    ),
                )
            })?;
        }
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(settings.max_header_bytes.saturating_mul(2).max(16 * 1024));
        let deadline = Instant::now() + settings.timeout;
        Ok(HostState {
            limiter: MemoryCap::new(settings.memory),
            outbound: Outbound::new(settings.clone(), runtime, deadline),
            settings,
            wasi: b.build(),
            table: ResourceTable::new(),
            http,
            output,
            deadline,
            next: None,
            depth: 0,
        })
    }

    /// Start a call: its deadline (the version's timeout, or less when the caller has less time left), its next
    /// stage and depth, and a clean memory-cap flag.
    pub fn begin_call(&mut self, call: &CallContext) {
        let budget = call.budget(self.settings.timeout);
        self.deadline = Instant::now() + budget;
        self.outbound.deadline = self.deadline;
        self.outbound.depth = call.depth;
        self.next = call.next.clone();
        self.depth = call.depth;
        self.limiter.reset_hit();
    }

    /// End a call: drop the next stage (it belongs to that request only).
    pub fn end_call(&mut self) {
        self.next = None;
    }

    /// Seconds left before the deadline (0 when past it).
    pub fn remaining(&self) -> f64 {
        self.deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
