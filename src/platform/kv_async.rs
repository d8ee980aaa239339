//! `spin:key-value/key-value@3.0.0`: component-model async; each call runs on tokio's blocking pool.

use std::sync::Arc;

use wasmtime::component::{Accessor, FutureReader, HasSelf, Resource, StreamReader};

use super::bridge::{blocking, delete, get, keys, label_of, open, set, KvError};
use super::{kv3, Store};
use crate::host::{HostState, Settings};

fn kv3_error(e: KvError) -> kv3::Error {
    match e {
        KvError::Denied => kv3::Error::AccessDenied,
        KvError::Other(m) => kv3::Error::Other(m),
    }
}

/// The settings and the store's label, read from the store in one step.
fn kv3_target<T>(
    accessor: &Accessor<T, HasSelf<HostState>>,
    store: &Resource<Store>,
) -> wasmtime::Result<(Arc<Settings>, String)> {
    accessor.with(|mut view| {
        let state = view.get();
        Ok((state.settings.clone(), label_of(state, store)?))
    })
}

impl kv3::Host for HostState {}

impl kv3::HostStore for HostState {
    fn drop(&mut self, store: Resource<Store>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<T> kv3::HostStoreWithStore<T> for HasSelf<HostState> {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<Store>, kv3::Error>> {
        let settings = accessor.with(|mut view| view.get().settings.clone());
        let checked = label.clone();
        match blocking(settings, move |s| open(s, &checked)).await? {
            Ok(()) => {
                let handle = accessor.with(|mut view| view.get().table.push(Store { label }))?;
                Ok(Ok(handle))
            }
            Err(e) => Ok(Err(kv3_error(e))),
        }
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv3::Error>> {
        let (settings, label) = kv3_target(accessor, &store)?;
        Ok(blocking(settings, move |s| get(s, &label, &key))
            .await?
            .map_err(kv3_error))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv3::Error>> {
        let (settings, label) = kv3_target(accessor, &store)?;
        Ok(blocking(settings, move |s| set(s, &label, &key, &value))
            .await?
            .map_err(kv3_error))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv3::Error>> {
        let (settings, label) = kv3_target(accessor, &store)?;
        Ok(blocking(settings, move |s| delete(s, &label, &key))
            .await?
            .map_err(kv3_error))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv3::Error>> {
        let (settings, label) = kv3_target(accessor, &store)?;
        let found = blocking(settings, move |s| get(s, &label, &key)).await?;
        Ok(found.map(|v| v.is_some()).map_err(kv3_error))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<Store>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), kv3::Error>>)> {
        let (settings, label) = kv3_target(accessor, &store)?;
        let listed = blocking(settings, move |s| keys(s, &label)).await?;
        let (names, outcome) = match listed {
            Ok(names) => (names, Ok(())),
            Err(e) => (Vec::new(), Err(kv3_error(e))),
        };
        accessor.with(|mut view| {
            let stream = StreamReader::new(&mut view, names)?;
            let future =
                FutureReader::new(&mut view, async move { Ok::<_, wasmtime::Error>(outcome) })?;
            Ok((stream, future))
        })
    }
}
