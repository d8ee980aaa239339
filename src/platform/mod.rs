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

mod bridge;
mod kv_async;
mod kv_sync;
mod variables;

use wasmtime::component::{HasSelf, Linker};

use crate::host::HostState;

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
