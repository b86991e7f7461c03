//! Operator configuration in KV: upstreams and operator secrets (schema in `store/mod.rs`).

use crate::core::upstream::Upstream;
use crate::error::Error;
use worker::kv::KvStore;

pub const BINDING: &str = "CONFIG";

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

pub struct ConfigStore {
    kv: KvStore,
}

impl ConfigStore {
    pub fn new(kv: KvStore) -> Self {
        ConfigStore { kv }
    }

    pub async fn upstream(&self, id: &str) -> Result<Option<Upstream>, Error> {
        self.kv.get(&upstream_key(id)).json().await.map_err(Error::internal)
    }

    pub async fn put_upstream(&self, upstream: &Upstream) -> Result<(), Error> {
        let text = serde_json::to_string(upstream).map_err(Error::internal)?;
        self.kv
            .put(&upstream_key(&upstream.id), text)
            .map_err(Error::internal)?
            .execute()
            .await
            .map_err(Error::internal)
    }

    pub async fn delete_upstream(&self, id: &str) -> Result<(), Error> {
        self.kv.delete(&upstream_key(id)).await.map_err(Error::internal)
    }

    pub async fn upstreams(&self) -> Result<Vec<Upstream>, Error> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let mut list = self.kv.list().prefix("upstream:".into());
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            }
            let page = list.execute().await.map_err(Error::internal)?;
            for key in &page.keys {
                if let Some(u) = self.upstream(&key.name["upstream:".len()..]).await? {
                    out.push(u);
                }
            }
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
        self.kv.get(&secret_key(name)).text().await.map_err(Error::internal)
    }

    pub async fn put_secret(&self, name: &str, sealed: String) -> Result<(), Error> {
        self.kv
            .put(&secret_key(name), sealed)
            .map_err(Error::internal)?
            .execute()
            .await
            .map_err(Error::internal)
    }
}
