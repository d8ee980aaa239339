//! `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue` `store`/`batch@0.2.0-draft2`: synchronous calls.

use wasmtime::component::Resource;

use super::bridge::{delete, get, keys, label_of, open, set, KvError};
use super::{kv2, wbatch, wstore, Store};
use crate::host::HostState;

fn kv2_error(e: KvError) -> kv2::Error {
    match e {
        KvError::Denied => kv2::Error::AccessDenied,
        KvError::Other(m) => kv2::Error::Other(m),
    }
}

impl kv2::Host for HostState {}

impl kv2::HostStore for HostState {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<Store>, kv2::Error>> {
        match open(&self.settings, &label)? {
            Ok(()) => Ok(Ok(self.table.push(Store { label })?)),
            Err(e) => Ok(Err(kv2_error(e))),
        }
    }

    fn get(
        &mut self,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv2::Error>> {
        let label = label_of(self, &store)?;
        Ok(get(&self.settings, &label, &key)?.map_err(kv2_error))
    }

    fn set(
        &mut self,
        store: Resource<Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv2::Error>> {
        let label = label_of(self, &store)?;
        Ok(set(&self.settings, &label, &key, &value)?.map_err(kv2_error))
    }

    fn delete(
        &mut self,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv2::Error>> {
        let label = label_of(self, &store)?;
        Ok(delete(&self.settings, &label, &key)?.map_err(kv2_error))
    }

    fn exists(
        &mut self,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv2::Error>> {
        let label = label_of(self, &store)?;
        Ok(get(&self.settings, &label, &key)?
            .map(|v| v.is_some())
            .map_err(kv2_error))
    }

    fn get_keys(
        &mut self,
        store: Resource<Store>,
    ) -> wasmtime::Result<Result<Vec<String>, kv2::Error>> {
        let label = label_of(self, &store)?;
        Ok(keys(&self.settings, &label)?.map_err(kv2_error))
    }

    fn drop(&mut self, store: Resource<Store>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

// -- wasi:keyvalue@0.2.0-draft2 (sync) --------------------------------------------------------------------------

fn wasi_error(e: KvError) -> wstore::Error {
    match e {
        KvError::Denied => wstore::Error::AccessDenied,
        KvError::Other(m) => wstore::Error::Other(m),
    }
}

impl wstore::Host for HostState {
    fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Store>, wstore::Error>> {
        match open(&self.settings, &identifier)? {
            Ok(()) => Ok(Ok(self.table.push(Store { label: identifier })?)),
            Err(e) => Ok(Err(wasi_error(e))),
        }
    }
}

impl wstore::HostBucket for HostState {
    fn get(
        &mut self,
        bucket: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wstore::Error>> {
        let label = label_of(self, &bucket)?;
        Ok(get(&self.settings, &label, &key)?.map_err(wasi_error))
    }

    fn set(
        &mut self,
        bucket: Resource<Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wstore::Error>> {
        let label = label_of(self, &bucket)?;
        Ok(set(&self.settings, &label, &key, &value)?.map_err(wasi_error))
    }

    fn delete(
        &mut self,
        bucket: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), wstore::Error>> {
        let label = label_of(self, &bucket)?;
        Ok(delete(&self.settings, &label, &key)?.map_err(wasi_error))
    }

    fn exists(
        &mut self,
        bucket: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wstore::Error>> {
        let label = label_of(self, &bucket)?;
        Ok(get(&self.settings, &label, &key)?
            .map(|v| v.is_some())
            .map_err(wasi_error))
    }

    /// Every key in one page (quotas keep a namespace small); a cursor is the index to resume from.
    fn list_keys(
        &mut self,
        bucket: Resource<Store>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wstore::KeyResponse, wstore::Error>> {
        let label = label_of(self, &bucket)?;
        let start = match cursor.as_deref().map(str::parse::<usize>) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return Ok(Err(wstore::Error::Other(format!(
                    "invalid cursor {cursor:?}"
                ))))
            }
        };
        Ok(keys(&self.settings, &label)?
            .map(|all| wstore::KeyResponse {
                keys: all.into_iter().skip(start).collect(),
                cursor: None,
            })
            .map_err(wasi_error))
    }

    fn drop(&mut self, bucket: Resource<Store>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

/// Batch operations key by key: wasi:keyvalue's batch interface does not promise atomicity.
impl wbatch::Host for HostState {
    fn get_many(
        &mut self,
        bucket: Resource<Store>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wstore::Error>> {
        let label = label_of(self, &bucket)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match get(&self.settings, &label, &key)? {
                Ok(value) => out.push((key, value)),
                Err(e) => return Ok(Err(wasi_error(e))),
            }
        }
        Ok(Ok(out))
    }

    fn set_many(
        &mut self,
        bucket: Resource<Store>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wstore::Error>> {
        let label = label_of(self, &bucket)?;
        for (key, value) in key_values {
            if let Err(e) = set(&self.settings, &label, &key, &value)? {
                return Ok(Err(wasi_error(e)));
            }
        }
        Ok(Ok(()))
    }

    fn delete_many(
        &mut self,
        bucket: Resource<Store>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wstore::Error>> {
        let label = label_of(self, &bucket)?;
        for key in keys {
            if let Err(e) = delete(&self.settings, &label, &key)? {
                return Ok(Err(wasi_error(e)));
            }
        }
        Ok(Ok(()))
    }
}
