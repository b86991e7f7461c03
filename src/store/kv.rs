//! Operator configuration in KV: upstreams and operator secrets (schema in `store/mod.rs`).

use crate::app::now_ms;
use crate::core::cache::TtlCache;
use crate::core::upstream::Upstream;
use crate::error::Error;
use std::cell::RefCell;
use std::future::Future;
use std::thread::LocalKey;
use worker::kv::KvStore;

pub const BINDING: &str = "CONFIG";

/// How long an isolate trusts what it read from KV. Writes through this isolate take effect at
/// once; writes through another isolate within this time (KV itself may take up to 60 s to
/// spread between locations). Keys and connections are never cached: they live in the
/// subject's Durable Object.
pub const CACHE_TTL_MS: u64 = 10_000;
const CACHE_ENTRIES: usize = 256;

thread_local! {
    static UPSTREAMS: RefCell<TtlCache<Option<Upstream>>> = RefCell::new(TtlCache::new(CACHE_TTL_MS, CACHE_ENTRIES));
    static SECRETS: RefCell<TtlCache<Option<String>>> = RefCell::new(TtlCache::new(CACHE_TTL_MS, CACHE_ENTRIES));
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

fn upstream_key(id: &str) -> String {
    format!("upstream:{id}")
}

fn secret_key(name: &str) -> String {
    format!("secret:{name}")
}

pub fn secret_context(name: &str) -> String {
    format!("secret:{name}")
}

pub fn oauth_client_context(upstream: &str) -> String {
    format!("oauth-client:{upstream}")
}

pub fn registration_context(upstream: &str) -> String {
    format!("oauth-registration:{upstream}")
}

pub struct ConfigStore {
    kv: KvStore,
}

impl ConfigStore {
    pub fn new(kv: KvStore) -> Self {
        ConfigStore { kv }
    }

    pub async fn upstream(&self, id: &str) -> Result<Option<Upstream>, Error> {
        read_through(&UPSTREAMS, id, self.upstream_uncached(id)).await
    }

    /// What KV holds now, past this isolate's cache.
    pub async fn upstream_uncached(&self, id: &str) -> Result<Option<Upstream>, Error> {
        self.kv.get(&upstream_key(id)).json().await.map_err(Error::internal)
    }

    pub async fn put_upstream(&self, upstream: &Upstream) -> Result<(), Error> {
        let text = serde_json::to_string(upstream).map_err(Error::internal)?;
        self.kv
            .put(&upstream_key(&upstream.id), text)
            .map_err(Error::internal)?
            .execute()
            .await
            .map_err(Error::internal)?;
        UPSTREAMS.with_borrow_mut(|c| c.write(&upstream.id, Some(upstream.clone()), now_ms()));
        Ok(())
    }

    pub async fn delete_upstream(&self, id: &str) -> Result<(), Error> {
        self.kv.delete(&upstream_key(id)).await.map_err(Error::internal)?;
        UPSTREAMS.with_borrow_mut(|c| c.write(id, None, now_ms()));
        Ok(())
    }

    pub async fn upstreams(&self) -> Result<Vec<Upstream>, Error> {
        let mut out = Vec::new();
        for key in self.keys("upstream:").await? {
            if let Some(u) = self.upstream(&key["upstream:".len()..]).await? {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// Every key that starts with `prefix`.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let mut list = self.kv.list().prefix(prefix.into());
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

    /// A value under a key of its own (`oauth-registration:*`).
    pub async fn raw(&self, key: &str) -> Result<Option<String>, Error> {
        self.kv.get(key).text().await.map_err(Error::internal)
    }

    pub async fn put_raw(&self, key: &str, value: String) -> Result<(), Error> {
        self.kv.put(key, value).map_err(Error::internal)?.execute().await.map_err(Error::internal)
    }

    pub async fn secret(&self, name: &str) -> Result<Option<String>, Error> {
        let key = secret_key(name);
        read_through(&SECRETS, name, async { self.kv.get(&key).text().await.map_err(Error::internal) }).await
    }

    pub async fn put_secret(&self, name: &str, sealed: String) -> Result<(), Error> {
        self.kv
            .put(&secret_key(name), sealed.clone())
            .map_err(Error::internal)?
            .execute()
            .await
            .map_err(Error::internal)?;
        SECRETS.with_borrow_mut(|c| c.write(name, Some(sealed), now_ms()));
        Ok(())
    }
}
