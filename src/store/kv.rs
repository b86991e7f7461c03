//! Operator configuration in KV: upstreams, operator secrets and the gateway's dynamic
//! registrations (schema in `store/mod.rs`, keys in `store/schema.rs`).

use super::schema::{REGISTRATIONS, SECRETS, UPSTREAMS};
use crate::core::cache::TtlCache;
use crate::core::seal::Sealed;
use crate::core::upstream::Upstream;
use crate::error::Error;
use crate::rt::now_ms;
use std::cell::RefCell;
use std::future::Future;
use std::thread::LocalKey;
use worker::kv::KvStore;
use worker::Env;

pub const BINDING: &str = "CONFIG";

/// How long an isolate trusts what it read from KV. Writes through this isolate take effect at
/// once; writes through another isolate within this time (KV itself may take up to 60 s to
/// spread between locations). Keys and connections are never cached: they live in the
/// subject's Durable Object.
pub const CACHE_TTL_MS: u64 = 10_000;
const CACHE_ENTRIES: usize = 256;

thread_local! {
    static UPSTREAM_CACHE: RefCell<TtlCache<Option<Upstream>>> = RefCell::new(TtlCache::new(CACHE_TTL_MS, CACHE_ENTRIES));
    static SECRET_CACHE: RefCell<TtlCache<Option<Sealed>>> = RefCell::new(TtlCache::new(CACHE_TTL_MS, CACHE_ENTRIES));
}

/// `key`'s value from `cache`, else from `read` (stored unless a write came in meanwhile).
async fn read_through<T: Clone>(
    cache: &'static LocalKey<RefCell<TtlCache<T>>>,
    key: &str,
    read: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    if let Some(hit) = cache.with_borrow(|c| c.get(key, now_ms())) {
        return Ok(hit);
    }
    let began = cache.with_borrow(|c| c.generation());
    let found = read.await?;
    cache.with_borrow_mut(|c| c.fill(key, found.clone(), now_ms(), began));
    Ok(found)
}

/// The KV namespace, opened only when a read gets past the isolate's caches or a write comes:
/// the worker crate's handle costs several calls into the runtime to make.
pub struct ConfigStore {
    env: Env,
}

impl ConfigStore {
    pub fn new(env: Env) -> Self {
        ConfigStore { env }
    }

    fn kv(&self) -> Result<KvStore, Error> {
        self.env.kv(BINDING).map_err(Error::internal)
    }

    pub async fn upstream(&self, id: &str) -> Result<Option<Upstream>, Error> {
        read_through(&UPSTREAM_CACHE, id, self.upstream_uncached(id)).await
    }

    /// What KV holds now, past this isolate's cache.
    pub async fn upstream_uncached(&self, id: &str) -> Result<Option<Upstream>, Error> {
        self.kv()?.get(&UPSTREAMS.key(id)).json().await.map_err(Error::internal)
    }

    pub async fn put_upstream(&self, upstream: &Upstream) -> Result<(), Error> {
        let text = serde_json::to_string(upstream).map_err(Error::internal)?;
        self.kv()?
            .put(&UPSTREAMS.key(upstream.id.as_str()), text)
            .map_err(Error::internal)?
            .execute()
            .await
            .map_err(Error::internal)?;
        UPSTREAM_CACHE.with_borrow_mut(|c| c.write(upstream.id.as_str(), Some(upstream.clone()), now_ms()));
        Ok(())
    }

    pub async fn delete_upstream(&self, id: &str) -> Result<(), Error> {
        self.kv()?.delete(&UPSTREAMS.key(id)).await.map_err(Error::internal)?;
        UPSTREAM_CACHE.with_borrow_mut(|c| c.write(id, None, now_ms()));
        Ok(())
    }

    pub async fn upstreams(&self) -> Result<Vec<Upstream>, Error> {
        let mut out = Vec::new();
        for key in self.keys(UPSTREAMS.prefix()).await? {
            if let Some(u) = self.upstream(UPSTREAMS.name_in(&key).unwrap_or_default()).await? {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// Every key that starts with `prefix`.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let kv = self.kv()?;
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let mut list = kv.list().prefix(prefix.into());
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            }
            let page = list.execute().await.map_err(Error::internal)?;
            out.extend(page.keys.into_iter().map(|k| k.name));
            if page.list_complete {
                break;
            }
            cursor = page.cursor;
        }
        Ok(out)
    }

    /// A sealed registration under its `schema::registration_key` (never cached: made rarely).
    pub async fn registration(&self, key: &str) -> Result<Option<Sealed>, Error> {
        debug_assert!(key.starts_with(REGISTRATIONS.prefix()));
        Ok(self.kv()?.get(key).text().await.map_err(Error::internal)?.map(Sealed::stored))
    }

    pub async fn put_registration(&self, key: &str, sealed: &Sealed) -> Result<(), Error> {
        self.kv()?
            .put(key, sealed.as_str())
            .map_err(Error::internal)?
            .execute()
            .await
            .map_err(Error::internal)
    }

    pub async fn delete_registration(&self, key: &str) -> Result<(), Error> {
        self.kv()?.delete(key).await.map_err(Error::internal)
    }

    /// Forgets every registration made for `upstream` (it was deleted: a new upstream with
    /// the same id starts afresh).
    pub async fn delete_registrations(&self, upstream: &str) -> Result<(), Error> {
        for key in self.keys(&REGISTRATIONS.key(&format!("{upstream}:"))).await? {
            self.delete_registration(&key).await?;
        }
        Ok(())
    }

    pub async fn secret(&self, name: &str) -> Result<Option<Sealed>, Error> {
        read_through(&SECRET_CACHE, name, self.secret_uncached(name)).await
    }

    /// What KV holds now, past this isolate's cache.
    pub async fn secret_uncached(&self, name: &str) -> Result<Option<Sealed>, Error> {
        Ok(self.kv()?.get(&SECRETS.key(name)).text().await.map_err(Error::internal)?.map(Sealed::stored))
    }

    pub async fn put_secret(&self, name: &str, sealed: Sealed) -> Result<(), Error> {
        self.kv()?
            .put(&SECRETS.key(name), sealed.as_str())
            .map_err(Error::internal)?
            .execute()
            .await
            .map_err(Error::internal)?;
        SECRET_CACHE.with_borrow_mut(|c| c.write(name, Some(sealed), now_ms()));
        Ok(())
    }
}
