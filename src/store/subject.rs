//! `SubjectStore`: one Durable Object per subject, the single-threaded home of its keys,
//! secrets and connections. It stores and answers; the Worker seals what it stores, except
//! OAuth tokens, which the store refreshes itself: one refresh at a time per subject, the
//! rotated refresh token stored before anyone uses the new access token.

use super::protocol::{
    Connection, ConnectionSeen, ConnectionStatus, LinkOutcome, OAuthGrant, Op, PendingAuthorization,
    Refreshed, Resolved, SealedValue,
};
use crate::core::connect::{LinkRecord, LinkState};
use crate::core::keys::{Access, KeyRecord};
use crate::core::oauth::token::{refresh_due, Grant, TokenOutcome};
use crate::core::seal::{Keyring, Resealed};
use crate::core::throttle::{Attempts, Verdict};
use crate::store::protocol::{
    access_token_value, connection_value_context, pending_context, user_secret_context, ACCESS_TOKEN,
    CLIENT_SECRET, REFRESH_TOKEN,
};
use serde::Serialize;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use worker::*;

#[durable_object]
pub struct SubjectStore {
    state: State,
    env: Env,
    /// Per upstream: until when refreshing is not tried again after the server failed.
    refresh_failed_until: RefCell<HashMap<String, u64>>,
    /// Whether this instance has checked that its values are sealed under the primary key.
    reseal_checked: Cell<bool>,
}

impl DurableObject for SubjectStore {
    fn new(state: State, env: Env) -> Self {
        SubjectStore {
            state,
            env,
            refresh_failed_until: RefCell::new(HashMap::new()),
            reseal_checked: Cell::new(false),
        }
    }

    /// Not used: the Worker calls `op` over RPC. Answers 404 to anything that finds its way here.
    async fn fetch(&self, _req: Request) -> Result<Response> {
        Response::error("not found", 404)
    }
}

#[wasm_bindgen::prelude::wasm_bindgen]
impl SubjectStore {
    /// The RPC method the Worker calls (through src/js/entry.mjs): one `Op` as JSON text, its
    /// answer as JSON text.
    #[wasm_bindgen(js_name = op)]
    pub async fn op(&self, op: String) -> std::result::Result<String, wasm_bindgen::JsValue> {
        let run = async {
            let op: Op = serde_json::from_str(&op)?;
            // A guard has nothing sealed; `Reseal` does the whole pass itself and reports it.
            if !matches!(op, Op::Reseal | Op::AdminAttempt { .. }) {
                self.reseal_once().await;
            }
            let reply = self.apply(op).await?;
            serde_json::to_string(&reply).map_err(Error::from)
        };
        run.await.map_err(|e| wasm_bindgen::JsValue::from_str(&e.to_string()))
    }
}

/// Storage key of the id of the key this store last re-sealed everything under.
const SEALED_WITH: &str = "sealed_with";

/// How long a failed refresh is not retried.
const REFRESH_BACKOFF_MS: u64 = 5_000;

/// How long a used or expired link is remembered.
const LINK_TOMBSTONE_MS: u64 = 7 * 24 * 3600 * 1000;

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
            Op::Resolve { key_hash, upstream, user, oauth } => {
                to_json(self.resolve(&key_hash, &upstream, &user, oauth).await?)
            }
            Op::RefreshAfterRejection { upstream, rejected } => {
                to_json(self.refresh(&upstream, Some(rejected)).await?)
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
                        oauth: None,
                        updated_at: now_ms(),
                    },
                };
                storage.put(&key, &conn).await?;
                Ok(json!({ "applied": true }))
            }
            Op::DeleteConnection { upstream } => {
                let key = format!("conn:{upstream}");
                let Some(conn) = storage.get::<Connection>(&key).await? else {
                    return Ok(json!({ "deleted": false }));
                };
                // Forget first (so no refresh can store a new grant meanwhile), then revoke the
                // copy read (RFC 7009) where the server offers it: a server that is down does not
                // keep the user connected against the operator's wish.
                storage.delete(&key).await?;
                let revoked = match (&conn.oauth, self.subject().await?) {
                    (Some(grant), Some(subject)) => revoke_grant(&self.env, &subject, &upstream, grant).await,
                    _ => false,
                };
                Ok(json!({ "deleted": true, "revoked": revoked }))
            }
            Op::BeginAuthorization { state_hash, pending } => {
                // One authorization in flight per link (a second "Continue" replaces the first),
                // and none kept past its time.
                for (hash, p) in self.list_prefix::<PendingAuthorization>("pending:").await? {
                    if p.expires_at <= now_ms() || p.link_hash == pending.link_hash {
                        storage.delete(&format!("pending:{hash}")).await?;
                    }
                }
                storage.put(&format!("pending:{state_hash}"), &pending).await?;
                Ok(json!({}))
            }
            Op::TakeAuthorization { state_hash } => {
                let key = format!("pending:{state_hash}");
                let pending = storage.get::<PendingAuthorization>(&key).await?;
                if pending.is_some() {
                    storage.delete(&key).await?;
                }
                let usable = pending.filter(|p| p.expires_at > now_ms());
                let subject = self.subject().await?;
                to_json(usable.zip(subject).map(|(p, s)| (s, p)))
            }
            Op::CreateLink { hash, link } => {
                self.remember_subject(&link.subject).await?;
                self.prune_links(&link.upstream).await?;
                storage.put(&format!("link:{hash}"), &link).await?;
                Ok(json!({}))
            }
            Op::GetLink { hash } => to_json(storage.get::<LinkRecord>(&format!("link:{hash}")).await?),
            Op::CompleteLink { hash, values, oauth, scopes } => {
                to_json(self.complete_link(&hash, values, oauth, scopes).await?)
            }
            Op::Reseal => {
                let ring = crate::app::keyring(&crate::app::config(&self.env))
                    .map_err(|e| Error::RustError(e.describe().2))?;
                to_json(self.reseal(&ring).await?)
            }
            Op::AdminAttempt { ok } => {
                let stored: Option<String> = storage.get("admin_attempts").await?;
                let mut attempts = Attempts::parse(stored.as_deref().unwrap_or_default());
                let before = attempts;
                let verdict = attempts.attempt(now_ms(), ok);
                if attempts != before {
                    storage.put("admin_attempts", attempts.stored()).await?;
                }
                // The seconds to wait when blocked, else null.
                Ok(match verdict {
                    Verdict::Blocked { retry_after } => json!(retry_after),
                    Verdict::Checked => Value::Null,
                })
            }
        }
    }

    /// Once per object instance, before its first operation: when the primary key is not the
    /// one this store last re-sealed under (`ENCRYPTION_KEY` was rotated), re-seal now. So every
    /// subject that is used moves to the new key by itself; `POST /admin/v1/reseal` reaches the
    /// others by name.
    async fn reseal_once(&self) {
        if self.reseal_checked.replace(true) {
            return;
        }
        let Ok(ring) = crate::app::keyring(&crate::app::config(&self.env)) else { return };
        let done = async {
            if self.storage().get::<String>(SEALED_WITH).await?.as_deref() != Some(ring.primary_id()) {
                self.reseal(&ring).await?;
            }
            Ok::<_, Error>(())
        };
        if let Err(e) = done.await {
            console_error!("mcp-authbridge: re-sealing a subject store failed: {e}");
        }
    }

    /// Re-seals every sealed value kept here (subject secrets, connections, pending
    /// authorizations) under the primary key. Only storage calls between reads and writes, so no
    /// other operation of this object runs in between (input gates). Notes the key when every
    /// value opened.
    async fn reseal(&self, ring: &Keyring) -> Result<Resealed> {
        let mut tally = Resealed::default();
        let Some(subject) = self.subject().await? else { return Ok(tally) };
        let storage = self.storage();
        let one = |context: String, value: Option<&mut String>, tally: &mut Resealed| {
            if let Some(value) = value {
                ring.reseal(&context, value, crate::app::random_bytes(), tally);
            }
        };
        for (name, mut sealed) in self.list_prefix::<String>("usecret:").await? {
            let before = tally.resealed;
            one(user_secret_context(&subject, &name), Some(&mut sealed), &mut tally);
            if tally.resealed > before {
                storage.put(&format!("usecret:{name}"), sealed).await?;
            }
        }
        for (upstream, mut conn) in self.list_prefix::<Connection>("conn:").await? {
            let before = tally.resealed;
            let context = |name: &str| connection_value_context(&subject, &upstream, name);
            for (name, value) in conn.values.iter_mut() {
                one(context(name), Some(value), &mut tally);
            }
            if let Some(grant) = conn.oauth.as_mut() {
                one(context(ACCESS_TOKEN), Some(&mut grant.access_token), &mut tally);
                one(context(REFRESH_TOKEN), grant.refresh_token.as_mut(), &mut tally);
                one(context(CLIENT_SECRET), grant.client.client_secret.as_mut(), &mut tally);
            }
            if tally.resealed > before {
                storage.put(&format!("conn:{upstream}"), &conn).await?;
            }
        }
        for (hash, mut pending) in self.list_prefix::<PendingAuthorization>("pending:").await? {
            let before = tally.resealed;
            let upstream = pending.upstream.clone();
            one(pending_context(&subject, &upstream), Some(&mut pending.verifier), &mut tally);
            let context = connection_value_context(&subject, &upstream, CLIENT_SECRET);
            one(context, pending.client.client_secret.as_mut(), &mut tally);
            if tally.resealed > before {
                storage.put(&format!("pending:{hash}"), &pending).await?;
            }
        }
        if tally.unreadable == 0 {
            storage.put(SEALED_WITH, ring.primary_id()).await?;
        }
        Ok(tally)
    }

    /// Keeps a subject's links bounded: forgets used and expired ones, and keeps at most
    /// `MAX_LIVE_LINKS - 1` live links per upstream before a new one is added (a client that
    /// keeps retrying an unconnected upstream mints a link with every error).
    async fn prune_links(&self, upstream: &str) -> Result<()> {
        let now = now_ms();
        let mut live: Vec<(String, LinkRecord)> = Vec::new();
        for (hash, link) in self.list_prefix::<LinkRecord>("link:").await? {
            // A used or expired link stays a while, so that opening it again says so (410)
            // instead of "not found".
            let done_at = link.used_at.unwrap_or(link.expires_at);
            if link.state(now) != LinkState::Usable && done_at + LINK_TOMBSTONE_MS < now {
                self.storage().delete(&format!("link:{hash}")).await?;
            } else if link.upstream == upstream && link.state(now) == LinkState::Usable {
                live.push((hash, link));
            }
        }
        live.sort_by_key(|(_, l)| std::cmp::Reverse(l.created_at));
        for (hash, _) in live.iter().skip(MAX_LIVE_LINKS - 1) {
            self.storage().delete(&format!("link:{hash}")).await?;
        }
        Ok(())
    }

    async fn complete_link(
        &self,
        hash: &str,
        values: BTreeMap<String, String>,
        oauth: Option<OAuthGrant>,
        scopes: Option<Vec<String>>,
    ) -> Result<LinkOutcome> {
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
            expires_at: oauth.as_ref().and_then(|g| g.expires_at),
            scopes,
            oauth,
            updated_at: now,
        };
        link.used_at = Some(now);
        // One transaction: the link is used up exactly when the connection is stored.
        let entries = js_sys::Object::new();
        let conn_key = format!("conn:{}", link.upstream);
        js_sys::Reflect::set(&entries, &conn_key.as_str().into(), &serde_wasm_bindgen::to_value(&conn)?)?;
        js_sys::Reflect::set(&entries, &key.into(), &serde_wasm_bindgen::to_value(&link)?)?;
        let previous = storage.get::<Connection>(&conn_key).await?.and_then(|c| c.oauth);
        storage.put_multiple_raw(entries).await?;
        // A reconnect replaces a grant that may still be alive: end it at its server.
        if let (Some(old), Some(subject)) = (previous, self.subject().await?) {
            let (env, upstream) = (self.env.clone(), link.upstream.clone());
            self.state.wait_until(async move {
                revoke_grant(&env, &subject, &upstream, &old).await;
            });
        }
        Ok(LinkOutcome::Completed)
    }

    /// One refresh at a time for this subject: other requests wait (the runtime holds them)
    /// and then find the new token instead of refreshing again.
    async fn refresh(&self, upstream: &str, rejected: Option<String>) -> Result<Refreshed> {
        let Some(subject) = self.subject().await? else { return Ok(Refreshed::ConnectionRequired) };
        // After a failure, do not queue every request behind another slow attempt for a while.
        let backoff = self.refresh_failed_until.borrow().get(upstream).copied();
        if backoff.is_some_and(|until| now_ms() < until) {
            return Ok(Refreshed::Unavailable);
        }
        let work = refresh_grant(self.storage(), self.env.clone(), subject, upstream.to_string(), rejected);
        let outcome = self.state.block_concurrency_while(async move { Ok(work.await) }).await?;
        let mut failed = self.refresh_failed_until.borrow_mut();
        if outcome == Refreshed::Unavailable {
            failed.insert(upstream.to_string(), now_ms() + REFRESH_BACKOFF_MS);
        } else {
            failed.remove(upstream);
        }
        Ok(outcome)
    }

    async fn resolve(
        &self,
        key_hash: &str,
        upstream: &str,
        user: &[String],
        oauth: bool,
    ) -> Result<Resolved> {
        let storage = self.storage();
        // Everything a request may need, in one storage read.
        let key_name = format!("key:{key_hash}");
        let conn_name = format!("conn:{upstream}");
        let mut names = vec![key_name.clone(), conn_name.clone()];
        names.extend(user.iter().map(|n| format!("usecret:{n}")));
        let found = storage.get_multiple(names).await?;
        let take = |name: &str| Some(found.get(&name.into())).filter(|v| !v.is_undefined());
        let Some(record) = take(&key_name) else {
            return Ok(Resolved::InvalidKey);
        };
        let record: KeyRecord = serde_wasm_bindgen::from_value(record)?;
        // Found by the SHA-256 of the whole key: no byte of the key itself is ever compared, so
        // the lookup's timing says nothing about it.
        match record.access(upstream, now_ms()) {
            Access::Expired => return Ok(Resolved::InvalidKey),
            Access::NotAllowed => return Ok(Resolved::NotAllowed),
            Access::Allowed => {}
        }
        let subject = record.subject;
        let conn: Option<Connection> = take(&conn_name).map(serde_wasm_bindgen::from_value).transpose()?;
        let mut values = BTreeMap::new();
        for name in user {
            let from_conn = conn.as_ref().and_then(|c| c.values.get(name)).map(|sealed| SealedValue {
                context: connection_value_context(&subject, upstream, name),
                sealed: sealed.clone(),
            });
            let value = match from_conn {
                Some(v) => Some(v),
                None => take(&format!("usecret:{name}"))
                    .and_then(|v| v.as_string())
                    .map(|sealed| SealedValue { context: user_secret_context(&subject, name), sealed }),
            };
            if let Some(v) = value {
                values.insert(name.clone(), v);
            }
        }
        let mut conn = conn;
        let mut oauth_unavailable = false;
        if let Some(grant) = conn.as_ref().and_then(|c| c.oauth.clone()).filter(|_| oauth) {
            let now = now_ms();
            let token = if refresh_due(now, grant.issued_at, grant.expires_at) {
                let outcome = self.refresh(upstream, None).await?;
                conn = storage.get(&format!("conn:{upstream}")).await?;
                match outcome {
                    Refreshed::Token { access_token, .. } => Some(access_token),
                    Refreshed::ConnectionRequired => None,
                    // Still valid for a while: use it; expired: the client gets a 503 to retry.
                    Refreshed::Unavailable if grant.expires_at.is_some_and(|e| e > now) => {
                        Some(grant.access_token)
                    }
                    Refreshed::Unavailable => {
                        oauth_unavailable = true;
                        None
                    }
                }
            } else {
                Some(grant.access_token)
            };
            if let Some(sealed) = token {
                values.insert(ACCESS_TOKEN.into(), access_token_value(&subject, upstream, sealed));
            }
        }
        let connection = conn.map(|c| ConnectionSeen { status: c.status, updated_at: c.updated_at });
        Ok(Resolved::Ok { subject, values, connection, oauth_unavailable })
    }
}

/// Refreshes `upstream`'s token unless that is no longer needed: it is not due (or, after a
/// 401, the rejected token was already replaced). Never fails: a failure inside
/// `blockConcurrencyWhile` would reset the object, so every problem is an outcome.
async fn refresh_grant(
    storage: Storage,
    env: Env,
    subject: String,
    upstream: String,
    rejected: Option<String>,
) -> Refreshed {
    let key = format!("conn:{upstream}");
    let mut conn = match storage.get::<Connection>(&key).await {
        Ok(Some(conn)) => conn,
        Ok(None) => return Refreshed::ConnectionRequired,
        Err(_) => return Refreshed::Unavailable,
    };
    let Some(grant) = conn.oauth.clone() else { return Refreshed::ConnectionRequired };
    let now = now_ms();
    let current = Refreshed::Token { access_token: grant.access_token.clone(), updated_at: conn.updated_at };
    match &rejected {
        Some(r) if *r != grant.access_token => return current,
        None if !refresh_due(now, grant.issued_at, grant.expires_at) => return current,
        _ => {}
    }
    let config = crate::app::config(&env);
    let Ok(keyring) = crate::app::keyring(&config) else { return Refreshed::Unavailable };
    let refresh_token = grant.refresh_token.as_deref().and_then(|sealed| {
        keyring.open_string(&connection_value_context(&subject, &upstream, REFRESH_TOKEN), sealed).ok()
    });
    let outcome = match (refresh_token, grant.client.auth(&keyring, &subject, &upstream)) {
        (Some(rt), Some(client)) => {
            let req = Grant::Refresh { refresh_token: &rt, resource: grant.client.resource.as_deref() };
            crate::oauth::token_call(&config, &client, &grant.client.token_endpoint, &req).await
        }
        // Nothing to refresh with: only the user can make a new grant.
        _ => Some(TokenOutcome::InvalidGrant),
    };
    match outcome {
        Some(TokenOutcome::Issued(tokens)) => {
            let fresh = crate::oauth::seal_grant(
                &keyring,
                &subject,
                &upstream,
                &tokens,
                grant.refresh_token.clone(),
                grant.client.clone(),
            );
            conn.status = ConnectionStatus::Connected;
            conn.expires_at = fresh.expires_at;
            conn.updated_at = now_ms();
            let access_token = fresh.access_token.clone();
            conn.oauth = Some(fresh);
            // Stored before the new access token is handed out: a rotated refresh token is
            // never lost, and never presented twice.
            match storage.put(&key, &conn).await {
                Ok(()) => Refreshed::Token { access_token, updated_at: conn.updated_at },
                Err(_) => Refreshed::Unavailable,
            }
        }
        Some(TokenOutcome::InvalidGrant) => {
            conn.status = ConnectionStatus::ConnectionRequired;
            conn.oauth = None;
            conn.expires_at = None;
            conn.updated_at = now_ms();
            let _ = storage.put(&key, &conn).await;
            Refreshed::ConnectionRequired
        }
        Some(TokenOutcome::Failed(e)) => {
            worker::console_error!("mcp-authbridge: refresh for '{upstream}' failed: {e}");
            Refreshed::Unavailable
        }
        None => Refreshed::Unavailable,
    }
}

/// RFC 7009: revokes the refresh token (which ends the grant) and the access token, where the
/// server allows; true when the grant's longest-lived token was revoked.
async fn revoke_grant(env: &Env, subject: &str, upstream: &str, grant: &OAuthGrant) -> bool {
    let Some(endpoint) = &grant.client.revocation_endpoint else { return false };
    let config = crate::app::config(env);
    let Ok(keyring) = crate::app::keyring(&config) else { return false };
    let Some(client) = grant.client.auth(&keyring, subject, upstream) else { return false };
    let tokens = [
        (grant.refresh_token.as_ref(), REFRESH_TOKEN, "refresh_token"),
        (Some(&grant.access_token), ACCESS_TOKEN, "access_token"),
    ];
    let mut first = None;
    for (sealed, name, hint) in tokens {
        let Some(sealed) = sealed else { continue };
        let Ok(token) = keyring.open_string(&connection_value_context(subject, upstream, name), sealed)
        else {
            continue;
        };
        let ok = crate::oauth::revoke(&config, &client, endpoint, &token, hint).await;
        first.get_or_insert(ok);
    }
    first.unwrap_or(false)
}
