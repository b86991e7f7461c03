//! Connect links (single-use, bounded per upstream, remembered a while after use) and the OAuth
//! authorizations in flight that belong to them.

use super::SubjectStore;
use crate::core::connect::{LinkRecord, LinkState};
use crate::core::ids::{SubjectId, UpstreamId};
use crate::core::keys::KeyHash;
use crate::core::request::ConnectionStatus;
use crate::rt::now_ms;
use crate::store::protocol::{
    BeginAuthorization, CompleteLink, Connection, CreateLink, LinkOutcome, PendingAuthorization,
};
use crate::store::schema::{CONNECTIONS, LINKS, PENDING};
use worker::Result;

/// How long a used or expired link is remembered.
const LINK_TOMBSTONE_MS: u64 = 7 * 24 * 3600 * 1000;

/// Live links kept per subject and upstream.
const MAX_LIVE_LINKS: usize = 20;

impl SubjectStore {
    pub(super) async fn create_link(&self, op: CreateLink) -> Result<()> {
        self.remember_subject(&op.link.subject).await?;
        self.prune_links(&op.link.upstream).await?;
        self.storage().put(&LINKS.key(op.hash.as_str()), &op.link).await
    }

    pub(super) async fn get_link(&self, hash: &KeyHash) -> Result<Option<LinkRecord>> {
        self.storage().get(&LINKS.key(hash.as_str())).await
    }

    /// Keeps a subject's links bounded: forgets used and expired ones, and keeps at most
    /// `MAX_LIVE_LINKS - 1` live links per upstream before a new one is added (a client that
    /// keeps retrying an unconnected upstream mints a link with every error).
    async fn prune_links(&self, upstream: &UpstreamId) -> Result<()> {
        let now = now_ms();
        let mut live: Vec<(String, LinkRecord)> = Vec::new();
        for (hash, link) in self.list::<LinkRecord>(&LINKS).await? {
            // A used or expired link stays a while, so that opening it again says so (410)
            // instead of "not found".
            let done_at = link.used_at.unwrap_or(link.expires_at);
            if link.state(now) != LinkState::Usable && done_at + LINK_TOMBSTONE_MS < now {
                self.storage().delete(&LINKS.key(&hash)).await?;
            } else if link.upstream == *upstream && link.state(now) == LinkState::Usable {
                live.push((hash, link));
            }
        }
        live.sort_by_key(|(_, l)| std::cmp::Reverse(l.created_at));
        for (hash, _) in live.iter().skip(MAX_LIVE_LINKS - 1) {
            self.storage().delete(&LINKS.key(hash)).await?;
        }
        Ok(())
    }

    pub(super) async fn complete_link(&self, op: CompleteLink) -> Result<LinkOutcome> {
        let storage = self.storage();
        let key = LINKS.key(op.hash.as_str());
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
            values: op.values,
            expires_at: op.oauth.as_ref().and_then(|g| g.expires_at),
            scopes: op.scopes,
            oauth: op.oauth,
            updated_at: now,
            origin: Some(op.origin),
            refresh_failing: None,
            problem: None,
        };
        link.used_at = Some(now);
        // One transaction: the link is used up exactly when the connection is stored.
        let entries = js_sys::Object::new();
        let conn_key = CONNECTIONS.key(link.upstream.as_str());
        js_sys::Reflect::set(&entries, &conn_key.as_str().into(), &serde_wasm_bindgen::to_value(&conn)?)?;
        js_sys::Reflect::set(&entries, &key.into(), &serde_wasm_bindgen::to_value(&link)?)?;
        let previous = storage.get::<Connection>(&conn_key).await?.and_then(|c| c.oauth);
        storage.put_multiple_raw(entries).await?;
        // A reconnect replaces a grant that may still be alive: end it at its server.
        if let (Some(old), Some(subject)) = (previous, self.subject().await?) {
            let (env, upstream) = (self.env.clone(), link.upstream.clone());
            self.state.wait_until(async move {
                super::refresh::revoke_grant(&env, subject.as_str(), upstream.as_str(), &old).await;
            });
        }
        Ok(LinkOutcome::Completed)
    }

    /// One authorization in flight per link (a second "Continue" replaces the first), and none
    /// kept past its time.
    pub(super) async fn begin_authorization(&self, op: BeginAuthorization) -> Result<()> {
        let storage = self.storage();
        for (hash, p) in self.list::<PendingAuthorization>(&PENDING).await? {
            if p.expires_at <= now_ms() || p.link_hash == op.pending.link_hash {
                storage.delete(&PENDING.key(&hash)).await?;
            }
        }
        storage.put(&PENDING.key(op.state_hash.as_str()), &op.pending).await
    }

    pub(super) async fn take_authorization(
        &self,
        state_hash: &KeyHash,
    ) -> Result<Option<(SubjectId, PendingAuthorization)>> {
        let storage = self.storage();
        let key = PENDING.key(state_hash.as_str());
        let pending = storage.get::<PendingAuthorization>(&key).await?;
        if pending.is_some() {
            storage.delete(&key).await?;
        }
        let usable = pending.filter(|p| p.expires_at > now_ms());
        let subject = self.subject().await?;
        Ok(usable.zip(subject).map(|(p, s)| (s, p)))
    }
}
