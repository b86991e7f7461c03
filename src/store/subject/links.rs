//! Connect links (single-use, owned by the first browser that opens them, reused for
//! `connection_required`, bounded per upstream, remembered a while after use) and the OAuth
//! authorizations in flight that belong to them. The rules are in `core::connect`.

use super::SubjectStore;
use crate::core::connect::{
    links_to_forget, reusable_link, take_pending, Claim, LinkRecord, LinkState, Take,
};
use crate::core::request::ConnectionStatus;
use crate::rt::now_ms;
use crate::store::protocol::{
    BeginAuthorization, CompleteLink, Connection, CreateLink, LinkOutcome, OpenLink, PendingAuthorization,
    TakeAuthorization, Taken,
};
use crate::store::schema::{CODES, CONNECTIONS, LINKS, PENDING};
use worker::Result;

impl SubjectStore {
    pub(super) async fn create_link(&self, op: CreateLink) -> Result<Option<LinkRecord>> {
        self.remember_subject(&op.link.subject).await?;
        let now = now_ms();
        let links = self.list::<LinkRecord>(&LINKS).await?;
        if op.link.token.is_some() {
            if let Some(live) = reusable_link(&links, &op.link.upstream, now) {
                return Ok(Some(live.clone()));
            }
        }
        for hash in links_to_forget(&links, &op.link.upstream, op.link.token.is_none(), now) {
            self.storage().delete(&LINKS.key(&hash)).await?;
        }
        self.storage().put(&LINKS.key(op.hash.as_str()), &op.link).await?;
        Ok(None)
    }

    pub(super) async fn open_link(&self, op: OpenLink) -> Result<Option<(LinkRecord, Claim)>> {
        let key = LINKS.key(op.hash.as_str());
        let Some(mut link) = self.storage().get::<LinkRecord>(&key).await? else { return Ok(None) };
        let claim = link.claim(op.browser.as_ref());
        if claim == Claim::Claimed && link.state(now_ms()) == LinkState::Usable {
            link.browser_hash = op.browser;
            self.storage().put(&key, &link).await?;
        }
        Ok(Some((link, claim)))
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
        if let Some(code) = &op.code {
            let code_key = CODES.key(code.hash.as_str());
            js_sys::Reflect::set(&entries, &code_key.into(), &serde_wasm_bindgen::to_value(&code.record)?)?;
        }
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

    pub(super) async fn take_authorization(&self, op: TakeAuthorization) -> Result<Taken> {
        let storage = self.storage();
        let key = PENDING.key(op.state_hash.as_str());
        let Some(pending) = storage.get::<PendingAuthorization>(&key).await? else {
            return Ok(Taken::Unknown);
        };
        let verdict = take_pending(pending.expires_at, &pending.browser_hash, op.browser.as_ref(), now_ms());
        if verdict == Take::OtherBrowser {
            return Ok(Taken::OtherBrowser);
        }
        storage.delete(&key).await?;
        Ok(match (verdict, self.subject().await?) {
            (Take::Take, Some(subject)) => Taken::Taken { subject, pending: Box::new(pending) },
            _ => Taken::Unknown,
        })
    }
}
