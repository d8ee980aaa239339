//! Imports this host does not provide, linked so that a call fails instead of the whole component being refused.
//!
//! A Spin (or other wasi:http) SDK imports its whole platform world: MySQL, Postgres, Redis, MQTT, LLM, SQLite,
//! the pre-release names of WASI 0.3, and so on, whether the guest calls them or not. Refusing such a component
//! for an import it never calls would refuse every one of them, so for the wasi:http worlds each import of a
//! package this host does not provide ([`provided`] says which) is defined here: every function of it fails when
//! called, with `called <interface>#<function>: not provided by this host` (a trap; the instance is replaced and the
//! generation goes on serving), and its resources are opaque types nothing can make. An import of a package the
//! host *does* provide that still fails to link (a function it lacks, a different type) is a real mismatch: it is
//! never stubbed, and the deploy is refused naming it.
//!
//! Nothing is reachable through a stub: it holds no state and calls nothing.

use wasmtime::component::types::{ComponentInstance, ComponentItem};
use wasmtime::component::{Component, Linker, LinkerInstance, ResourceType};
use wasmtime::Engine;

use crate::errors::{host_trap, Kind};

/// The wasi:cli interfaces a guest imports (`run` is an export).
const CLI: &[&str] = &[
    "environment",
    "exit",
    "stdin",
    "stdout",
    "stderr",
    "terminal-input",
    "terminal-output",
    "terminal-stdin",
    "terminal-stdout",
    "terminal-stderr",
];

/// Interface packages the wasi:http worlds' linker provides: (namespace:package, interfaces or empty for all of
/// them, version). A version is matched the way wasmtime's linker matches it (see [`compatible`]).
const PROVIDED: &[(&str, &[&str], &str)] = &[
    // WASI 0.2 (wasmtime-wasi's p2, wasmtime-wasi-http's p2): 0.2.x for every x
    ("wasi:io", &[], "0.2.12"),
    ("wasi:clocks", &["wall-clock", "monotonic-clock"], "0.2.12"),
    ("wasi:filesystem", &[], "0.2.12"),
    ("wasi:random", &[], "0.2.12"),
    ("wasi:sockets", &[], "0.2.12"),
    ("wasi:cli", CLI, "0.2.12"),
    ("wasi:http", &["types", "outgoing-handler"], "0.2.12"),
    // WASI 0.3 (p3)
    ("wasi:cli", CLI, "0.3.0"),
    ("wasi:cli", &["types"], "0.3.0"),
    (
        "wasi:clocks",
        &["types", "monotonic-clock", "system-clock"],
        "0.3.0",
    ),
    ("wasi:filesystem", &[], "0.3.0"),
    ("wasi:random", &[], "0.3.0"),
    ("wasi:sockets", &[], "0.3.0"),
    ("wasi:http", &["types", "client"], "0.3.0"),
    // the platform interfaces (crate::platform)
    ("spin:variables", &["variables"], "3.0.0"),
    ("spin:key-value", &["key-value"], "3.0.0"),
    ("fermyon:spin", &["variables", "key-value"], "2.0.0"),
    ("wasi:config", &["store"], "0.2.0-draft-2024-09-27"),
    ("wasi:keyvalue", &["store", "batch"], "0.2.0-draft2"),
];

/// The key wasmtime's linker matches a version under: `1.2.3` -> `1`, `0.2.3` -> `0.2`, `0.0.3` -> `0.0.3`; a
/// pre-release version only matches itself.
fn match_key(version: &str) -> Option<String> {
    if version.contains(['-', '+']) {
        return None;
    }
    let parts: Vec<&str> = version.split('.').collect();
    match parts.as_slice() {
        [major, ..] if *major != "0" => Some((*major).to_owned()),
        ["0", minor, ..] if *minor != "0" => Some(format!("0.{minor}")),
        _ => Some(version.to_owned()),
    }
}

fn compatible(host: &str, import: &str) -> bool {
    host == import || (match_key(host).is_some() && match_key(host) == match_key(import))
}

/// Whether the wasi:http worlds' linker provides the import `name` (`ns:pkg/interface@version`).
pub fn provided(name: &str) -> bool {
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let Some((package, interface)) = path.split_once('/') else {
        return false;
    };
    PROVIDED.iter().any(|(p, interfaces, v)| {
        *p == package
            && (interfaces.is_empty() || interfaces.contains(&interface))
            && compatible(v, version)
    })
}

/// Define every import of `component` that `linker` lacks and [`provided`] does not claim as stubs; the names
/// stubbed, sorted. A link failure of anything else is returned as it is.
pub fn stub_unprovided(
    linker: &mut Linker<crate::host::HostState>,
    component: &Component,
    engine: &Engine,
) -> wasmtime::Result<Vec<String>> {
    let ty = component.component_type();
    // Resource types an earlier import introduced: a later interface that `use`s one refers to it (it must not
    // be defined again). Imports come in the order the component declares them, so a type comes before its uses.
    let mut seen: Vec<ResourceType> = Vec::new();
    let mut stubbed = Vec::new();
    for (name, item) in ty.imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        if provided(name) {
            collect_resources(&instance, engine, &mut seen);
        } else {
            let mut inner = linker.instance(name)?;
            stub_instance(&mut inner, name, &instance, engine, &mut seen)?;
            stubbed.push(name.to_owned());
        }
    }
    stubbed.sort();
    Ok(stubbed)
}

fn collect_resources(instance: &ComponentInstance, engine: &Engine, seen: &mut Vec<ResourceType>) {
    for (_, item) in instance.exports(engine) {
        match item.ty {
            ComponentItem::Resource(r) if !seen.contains(&r) => seen.push(r),
            ComponentItem::ComponentInstance(nested) => collect_resources(&nested, engine, seen),
            _ => {}
        }
    }
}

fn stub_instance(
    linker: &mut LinkerInstance<'_, crate::host::HostState>,
    interface: &str,
    instance: &ComponentInstance,
    engine: &Engine,
    seen: &mut Vec<ResourceType>,
) -> wasmtime::Result<()> {
    for (export, item) in instance.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(func) => {
                let what = format!("called {interface}#{export}: not provided by this host");
                if func.async_() {
                    linker.func_new_concurrent(export, move |_, _, _, _| {
                        let what = what.clone();
                        Box::pin(async move { Err(host_trap(Kind::Trap, what)) })
                    })?;
                } else {
                    linker.func_new(export, move |_, _, _, _| {
                        Err(host_trap(Kind::Trap, what.clone()))
                    })?;
                }
            }
            // A resource of this interface: a type of its own that the host never makes (its constructors fail).
            // One `use`d from an earlier interface is that interface's type and needs no definition.
            ComponentItem::Resource(r) if !seen.contains(&r) => {
                seen.push(r);
                linker.resource(export, ResourceType::host::<Unprovided>(), |_, _| Ok(()))?;
            }
            ComponentItem::ComponentInstance(nested) => {
                let mut inner = linker.instance(export)?;
                stub_instance(
                    &mut inner,
                    &format!("{interface}/{export}"),
                    &nested,
                    engine,
                    seen,
                )?;
            }
            // Other types (records, variants, `use`d resources) need no definition.
            _ => {}
        }
    }
    Ok(())
}

/// The host type behind every stubbed resource.
struct Unprovided;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_provided() {
        assert!(provided("wasi:cli/environment@0.2.9"));
        assert!(provided("wasi:http/types@0.2.0"));
        assert!(provided("wasi:http/client@0.3.0"));
        assert!(provided("spin:key-value/key-value@3.0.0"));
        assert!(provided("fermyon:spin/variables@2.0.0"));
        assert!(provided("wasi:keyvalue/batch@0.2.0-draft2"));
        assert!(!provided("wasi:keyvalue/atomics@0.2.0-draft2"));
        assert!(!provided("fermyon:spin/mysql@2.0.0"));
        assert!(!provided("spin:mysql/mysql@3.0.0"));
        assert!(!provided("wasi:cli/environment@0.3.0-rc-2026-03-15"));
        assert!(!provided("wasi:http/types@0.4.0"));
        assert!(!provided("spin:key-value/key-value@4.0.0"));
        assert!(!provided("wasi:clocks/timezone@0.2.0"));
        assert!(!provided("wasi:clocks/timezone@0.3.0"));
        assert!(!provided("wasi:cli/run@0.2.0"));
        assert!(provided("wasi:cli/types@0.3.0"));
        assert!(!provided("not-an-interface"));
    }

    #[test]
    fn versions_match_like_the_linker() {
        assert_eq!(match_key("1.2.3").as_deref(), Some("1"));
        assert_eq!(match_key("0.2.3").as_deref(), Some("0.2"));
        assert_eq!(match_key("0.0.3").as_deref(), Some("0.0.3"));
        assert_eq!(match_key("0.3.0-rc-2026-03-15"), None);
        assert!(compatible("3.0.0", "3.1.0"));
        assert!(!compatible("0.3.0", "0.3.0-rc-2026-03-15"));
    }
}
