//! `SubjectStore`: one Durable Object per subject, the single-threaded home of its keys,
//! secrets and connections. It stores and answers; sealing happens in the Worker.

use super::protocol::{Connection, ConnectionSeen, ConnectionStatus, LinkOutcome, Op, Resolved, SealedValue};
use crate::core::connect::{LinkRecord, LinkState};
use crate::core::keys::{Access, KeyRecord};
use crate::store::protocol::{connection_value_context, user_secret_context};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use worker::*;

#[durable_object]
pub struct SubjectStore {
    state: State,
}

impl DurableObject for SubjectStore {
    fn new(state: State, _env: Env) -> Self {
        SubjectStore { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let op: Op = req.json().await?;
        let reply = self.apply(op).await?;
        Response::from_json(&reply)
    }
}

/// Live links kept per subject and upstream.
const MAX_LIVE_LINKS: usize = 20;

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn to_json(v: impl Serialize) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::RustError(e.to_string()))
}

impl SubjectStore {
    fn storage(&self) -> Storage {
        self.state.storage()
    }

    async fn list_prefix<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>> {
        let map = self.storage().list_with_options(ListOptions::new().prefix(prefix)).await?;
        let mut out = Vec::new();
        for entry in map.entries() {
            let pair: js_sys::Array = entry?.into();
            let key = pair.get(0).as_string().unwrap_or_default();
            let value: T = serde_wasm_bindgen::from_value(pair.get(1))?;
            out.push((key[prefix.len()..].to_string(), value));
        }
        Ok(out)
    }

    async fn subject(&self) -> Result<Option<String>> {
        self.storage().get("subject").await
    }

    async fn remember_subject(&self, subject: &str) -> Result<()> {
        if self.subject().await?.is_none() {
            self.storage().put("subject", subject).await?;
        }
        Ok(())
    }

    async fn apply(&self, op: Op) -> Result<Value> {
        let storage = self.storage();
        match op {
            Op::Resolve { key_hash, upstream, user } => {
                to_json(self.resolve(&key_hash, &upstream, &user).await?)
            }
            Op::CreateKey { key } => {
                self.remember_subject(&key.subject).await?;
                storage.put(&format!("keyid:{}", key.id), &key.hash).await?;
                storage.put(&format!("key:{}", key.hash), &key).await?;
                Ok(json!({}))
            }
            Op::ListKeys => {
                let keys: Vec<(String, KeyRecord)> = self.list_prefix("key:").await?;
                let mut keys: Vec<KeyRecord> = keys.into_iter().map(|(_, k)| k).collect();
                keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
                to_json(keys)
            }
            Op::RevokeKey { id } => {
                let hash: Option<String> = storage.get(&format!("keyid:{id}")).await?;
                if let Some(hash) = &hash {
                    storage.delete(&format!("key:{hash}")).await?;
                    storage.delete(&format!("keyid:{id}")).await?;
                }
                Ok(json!({ "revoked": hash.is_some() }))
            }
            Op::PutSecret { subject, name, sealed } => {
                self.remember_subject(&subject).await?;
                storage.put(&format!("usecret:{name}"), sealed).await?;
                Ok(json!({}))
            }
            Op::ListConnections => {
                let conns: Vec<(String, Connection)> = self.list_prefix("conn:").await?;
                to_json(
                    conns
                        .into_iter()
                        .map(|(upstream, c)| {
                            json!({
                                "upstream": upstream,
                                "status": c.status,
                                "expires_at": c.expires_at.map(crate::core::encoding::rfc3339),
                                "scopes": c.scopes,
                                "updated_at": crate::core::encoding::rfc3339(c.updated_at),
                            })
                        })
                        .collect::<Vec<_>>(),
                )
            }
            Op::SetConnectionStatus { upstream, status, seen } => {
                let key = format!("conn:{upstream}");
                let existing: Option<Connection> = storage.get(&key).await?;
                if existing.as_ref().map(|c| c.updated_at) != seen {
                    return Ok(json!({ "applied": false }));
                }
                let conn = match existing {
                    Some(c) if c.status == status => return Ok(json!({ "applied": false })),
                    Some(c) => Connection { status, updated_at: now_ms(), ..c },
                    None => Connection {
                        status,
                        values: BTreeMap::new(),
                        expires_at: None,
                        scopes: None,
                        updated_at: now_ms(),
                    },
                };
                storage.put(&key, &conn).await?;
                Ok(json!({ "applied": true }))
            }
            Op::DeleteConnection { upstream } => {
                let deleted = storage.delete(&format!("conn:{upstream}")).await?;
                Ok(json!({ "deleted": deleted }))
            }
            Op::CreateLink { hash, link } => {
                self.remember_subject(&link.subject).await?;
                self.prune_links(&link.upstream).await?;
                storage.put(&format!("link:{hash}"), &link).await?;
                Ok(json!({}))
            }
            Op::GetLink { hash } => to_json(storage.get::<LinkRecord>(&format!("link:{hash}")).await?),
            Op::CompleteLink { hash, values } => to_json(self.complete_link(&hash, values).await?),
        }
    }

    /// Keeps a subject's links bounded: forgets used and expired ones, and keeps at most
    /// `MAX_LIVE_LINKS - 1` live links per upstream before a new one is added (a client that
    /// keeps retrying an unconnected upstream mints a link with every error).
    async fn prune_links(&self, upstream: &str) -> Result<()> {
        let now = now_ms();
        let mut live: Vec<(String, LinkRecord)> = Vec::new();
        for (hash, link) in self.list_prefix::<LinkRecord>("link:").await? {
            if link.state(now) != LinkState::Usable {
                self.storage().delete(&format!("link:{hash}")).await?;
            } else if link.upstream == upstream {
                live.push((hash, link));
            }
        }
        live.sort_by_key(|(_, l)| std::cmp::Reverse(l.created_at));
        for (hash, _) in live.iter().skip(MAX_LIVE_LINKS - 1) {
            self.storage().delete(&format!("link:{hash}")).await?;
        }
        Ok(())
    }

    async fn complete_link(&self, hash: &str, values: BTreeMap<String, String>) -> Result<LinkOutcome> {
        let storage = self.storage();
        let key = format!("link:{hash}");
        let Some(mut link) = storage.get::<LinkRecord>(&key).await? else {
            return Ok(LinkOutcome::NotFound);
        };
        let now = now_ms();
        match link.state(now) {
            LinkState::Used => return Ok(LinkOutcome::Used),
            LinkState::Expired => return Ok(LinkOutcome::Expired),
            LinkState::Usable => {}
        }
        let conn = Connection {
            status: ConnectionStatus::Connected,
            values,
            expires_at: None,
            scopes: None,
            updated_at: now,
        };
        link.used_at = Some(now);
        // One transaction: the link is used up exactly when the connection is stored.
        let entries = js_sys::Object::new();
        let conn_key = format!("conn:{}", link.upstream);
        js_sys::Reflect::set(&entries, &conn_key.into(), &serde_wasm_bindgen::to_value(&conn)?)?;
        js_sys::Reflect::set(&entries, &key.into(), &serde_wasm_bindgen::to_value(&link)?)?;
        storage.put_multiple_raw(entries).await?;
        Ok(LinkOutcome::Completed)
    }

    async fn resolve(&self, key_hash: &str, upstream: &str, user: &[String]) -> Result<Resolved> {
        let storage = self.storage();
        let Some(record) = storage.get::<KeyRecord>(&format!("key:{key_hash}")).await? else {
            return Ok(Resolved::InvalidKey);
        };
        // Found by the SHA-256 of the whole key: no byte of the key itself is ever compared, so
        // the lookup's timing says nothing about it.
        match record.access(upstream, now_ms()) {
            Access::Expired => return Ok(Resolved::InvalidKey),
            Access::NotAllowed => return Ok(Resolved::NotAllowed),
            Access::Allowed => {}
        }
        let subject = record.subject;
        let conn: Option<Connection> = storage.get(&format!("conn:{upstream}")).await?;
        let mut values = BTreeMap::new();
        for name in user {
            let from_conn = conn.as_ref().and_then(|c| c.values.get(name)).map(|sealed| SealedValue {
                context: connection_value_context(&subject, upstream, name),
                sealed: sealed.clone(),
            });
            let value = match from_conn {
                Some(v) => Some(v),
                None => storage
                    .get::<String>(&format!("usecret:{name}"))
                    .await?
                    .map(|sealed| SealedValue { context: user_secret_context(&subject, name), sealed }),
            };
            if let Some(v) = value {
                values.insert(name.clone(), v);
            }
        }
        let connection = conn.map(|c| ConnectionSeen { status: c.status, updated_at: c.updated_at });
        Ok(Resolved::Ok { subject, values, connection })
    }
}
