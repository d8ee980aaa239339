//! What went wrong, as one Python exception (`GuestFault`) carrying a `kind` slug.
//!
//! wasmtime's errors are classified here, once, into kinds the Python side maps onto its exception tree
//! (`airssys_web.runtime.instance.native_error`): the trap code decides timeout/fuel/stack, the store's memory
//! limiter decides "memory" (a guest that hit its cap and then trapped, printed or not), and our own host errors
//! (the route's deadline passing during a host call, a Python exception in a host function) carry their kind.

use std::fmt;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use wasmtime::Trap;
use wasmtime_wasi_http::FieldMapError;

pyo3::create_exception!(
    _native,
    GuestFault,
    PyException,
    "A failure in or around a guest; `kind` says which (trap, timeout, fuel, memory, stack, host, bad-response, \
     link, invalid, start-memory, exhausted, closed, error-code, internal), `detail` is the message, \
     `status` an HTTP status hint for error-code."
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invalid,
    Link,
    StartMemory,
    Trap,
    Timeout,
    Fuel,
    Memory,
    Stack,
    Host,
    BadResponse,
    /// A wasi:http guest built header fields past the host's size limit: wasi:http 0.2 traps it then, so the
    /// store is gone, but to the client this is a bad answer from the component (502), like any header flood.
    FieldFlood,
    Exhausted,
    Closed,
    ErrorCode,
    Internal,
}

impl Kind {
    pub fn slug(self) -> &'static str {
        match self {
            Kind::Invalid => "invalid",
            Kind::Link => "link",
            Kind::StartMemory => "start-memory",
            Kind::Trap => "trap",
            Kind::Timeout => "timeout",
            Kind::Fuel => "fuel",
            Kind::Memory => "memory",
            Kind::Stack => "stack",
            Kind::Host => "host",
            Kind::BadResponse | Kind::FieldFlood => "bad-response",
            Kind::Exhausted => "exhausted",
            Kind::Closed => "closed",
            Kind::ErrorCode => "error-code",
            Kind::Internal => "internal",
        }
    }

    /// Whether the store that produced this fault can no longer be used.
    pub fn poisons(self) -> bool {
        matches!(
            self,
            Kind::Trap
                | Kind::Timeout
                | Kind::Fuel
                | Kind::Memory
                | Kind::Stack
                | Kind::Host
                | Kind::FieldFlood
                | Kind::Internal
        )
    }
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: Kind,
    pub message: String,
    pub status: Option<u16>,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fault {}

impl Fault {
    pub fn new(kind: Kind, message: impl Into<String>) -> Fault {
        Fault {
            kind,
            message: message.into(),
            status: None,
        }
    }
    pub fn internal(message: impl Into<String>) -> Fault {
        Fault::new(Kind::Internal, message)
    }
    pub fn closed(message: impl Into<String>) -> Fault {
        Fault::new(Kind::Closed, message)
    }
    pub fn bad_response(message: impl Into<String>) -> Fault {
        Fault::new(Kind::BadResponse, message)
    }

    pub fn into_py(self) -> PyErr {
        Python::attach(|py| {
            let err = GuestFault::new_err(self.message.clone());
            let value = err.value(py);
            let _ = value.setattr("kind", self.kind.slug());
            let _ = value.setattr("detail", self.message);
            let _ = value.setattr("status", self.status);
            err
        })
    }
}

impl From<Fault> for PyErr {
    fn from(f: Fault) -> PyErr {
        f.into_py()
    }
}

/// A trap raised on purpose by a host function (carried through wasmtime as the error's root cause).
#[derive(Debug)]
pub struct HostTrap(pub Fault);

impl fmt::Display for HostTrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.message)
    }
}

impl std::error::Error for HostTrap {}

pub fn host_trap(kind: Kind, message: impl Into<String>) -> wasmtime::Error {
    wasmtime::Error::new(HostTrap(Fault::new(kind, message)))
}

/// The first `n` frames of a wasm backtrace, for the log reader (names only).
fn backtrace_summary(err: &wasmtime::Error, n: usize) -> Option<String> {
    let bt = err.downcast_ref::<wasmtime::WasmBacktrace>()?;
    let names: Vec<String> = bt
        .frames()
        .iter()
        .take(n)
        .map(|f| {
            f.func_name()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("func[{}]", f.func_index()))
        })
        .collect();
    (!names.is_empty()).then(|| names.join(" <- "))
}

/// Classify an error from calling into (or instantiating) a guest.
///
/// `tag` names the version (`name@1.0.0`); `memory_hit` says whether the store's limiter refused a memory growth
/// during this call; `cap` describes that cap for messages; `timeout` the route deadline in seconds.
pub fn classify(
    err: &wasmtime::Error,
    tag: &str,
    memory_hit: bool,
    cap: &str,
    timeout: f64,
) -> Fault {
    if let Some(HostTrap(fault)) = err.downcast_ref::<HostTrap>() {
        let mut f = fault.clone();
        f.message = format!("{tag} {}", f.message);
        return f;
    }
    if let Some(fault) = err.downcast_ref::<Fault>() {
        return fault.clone();
    }
    let where_ = backtrace_summary(err, 4)
        .map(|b| format!(" (in {b})"))
        .unwrap_or_default();
    if let Some(e) = field_flood(err) {
        return Fault::new(
            Kind::FieldFlood,
            format!(
                "{tag} built HTTP header fields past the host's limit ({e}): wasi:http stopped the guest; answer \
                 with fewer or smaller headers{where_}"
            ),
        );
    }
    let trap_text = |t: &Trap| t.to_string().trim_start_matches("wasm trap: ").to_owned();
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Fault::new(Kind::Timeout, format!("{tag} exceeded its {timeout}s deadline")),
        Some(Trap::OutOfFuel) => Fault::new(Kind::Fuel, format!("{tag} ran out of fuel")),
        Some(Trap::StackOverflow) => Fault::new(
            Kind::Stack,
            format!("{tag} trapped: stack overflow (call stack exhausted; unbounded recursion?){where_}"),
        ),
        Some(trap) if memory_hit => Fault::new(
            Kind::Memory,
            format!("{tag} hit its memory limit of {cap} (a memory.grow was refused, then: {}){where_}", trap_text(trap)),
        ),
        Some(trap) => Fault::new(Kind::Trap, format!("{tag} trapped: {}{where_}", trap_text(trap))),
        None => {
            // Not a wasm trap: a host call refused to go on (a limit of wasi:http, a bad resource), or the engine
            // could not make room. Its root cause says what; the chain's first line is generic context.
            let root = err.root_cause().to_string();
            let text = format!("{err:#}");
            if memory_hit {
                return Fault::new(Kind::Memory, format!("{tag} hit its memory limit of {cap} ({root})"));
            }
            if text.contains("maximum concurrent") || text.contains("pooling allocator") && text.contains("limit") {
                return Fault::new(Kind::Exhausted, format!("{tag}: no instance slot is free in this process ({root})"));
            }
            Fault::new(Kind::Trap, format!("{tag} trapped in a host call: {}{where_}", first_line(&root)))
        }
    }
}

/// The size limit on a set of wasi:http fields, when that is what stopped the guest (wasi:http 0.2 traps a guest
/// whose `fields.append` or `fields.from-list` goes past it).
fn field_flood(err: &wasmtime::Error) -> Option<FieldMapError> {
    err.chain()
        .find_map(|e| e.downcast_ref::<FieldMapError>())
        .copied()
        .filter(|e| {
            matches!(
                e,
                FieldMapError::TooManyFields | FieldMapError::TotalSizeTooBig
            )
        })
}

pub fn first_line(text: &str) -> &str {
    let t = text.trim();
    t.lines().next().unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_flood_is_a_bad_response_that_poisons_the_store() {
        let err =
            wasmtime::Error::new(FieldMapError::TotalSizeTooBig).context("fields.append failed");
        let fault = classify(&err, "g@1.0.0", false, "1 MiB", 1.0);
        assert_eq!(fault.kind, Kind::FieldFlood);
        assert_eq!(fault.kind.slug(), "bad-response");
        assert!(fault.kind.poisons());
        assert!(fault
            .message
            .starts_with("g@1.0.0 built HTTP header fields past the host's limit (total size of fields exceeds limit)"));
        let other = wasmtime::Error::new(FieldMapError::Forbidden);
        assert_eq!(
            classify(&other, "g@1.0.0", false, "1 MiB", 1.0).kind,
            Kind::Trap
        );
    }
}
