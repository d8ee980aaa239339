//! Variables (`spin:variables`, `fermyon:spin/variables`) and `wasi:config/store`: the version's config and secrets.

use wasmtime::component::{Accessor, HasSelf};

use super::{config, vars2, vars3};
use crate::host::HostState;

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
