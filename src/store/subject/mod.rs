//! `SubjectStore`: one Durable Object per subject, the single-threaded home of its keys,
//! secrets, links and connections. It stores and answers; the Worker seals what it stores,
//! except OAuth tokens, which the store refreshes itself: one refresh at a time per upstream,
//! the rotated refresh token stored before anyone uses the new access token.
//!
//! Split by concern: `keys` (keys and subject secrets), `links` (connect links and pending
//! authorizations), `connections` (resolving a request's values, status, forgetting),
//! `refresh` (token refresh and revocation), `reseal` (`ENCRYPTION_KEY` rotation), `grants`
//! (what the gateway's own authorization server issued: codes, grants, their tokens); the admin
//! guard, which uses the same class under another name, is `store::guard`.

mod connections;
mod grants;
mod keys;
mod links;
mod refresh;
mod reseal;

use super::protocol::{self as p, Op, Operation};
use super::schema::{Family, SUBJECT};
use crate::core::ids::SubjectId;
use futures_util::future::FutureExt;
use serde::de::DeserializeOwned;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use worker::*;

#[durable_object]
pub struct SubjectStore {
    state: State,
    env: Env,
    /// Per upstream: the refresh in flight, with its generation (`refresh::refresh`).
    refreshing: RefCell<HashMap<String, (u64, refresh::Flight)>>,
    /// The last generation handed out.
    flights: Cell<u64>,
    /// Whether this instance has checked that its values are sealed under the primary key.
    reseal_checked: Cell<bool>,
}

impl DurableObject for SubjectStore {
    fn new(state: State, env: Env) -> Self {
        SubjectStore {
            state,
            env,
            refreshing: RefCell::new(HashMap::new()),
            flights: Cell::new(0),
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
    /// The RPC method the Worker calls (through src/entry.mjs): one `Op` as JSON text, its
    /// answer as JSON text.
    #[wasm_bindgen(js_name = op)]
    pub async fn op(&self, op: String) -> std::result::Result<String, wasm_bindgen::JsValue> {
        let run = async {
            let op: Op = serde_json::from_str(&op)?;
            // A guard has nothing sealed; `Reseal` does the whole pass itself and reports it.
            if !matches!(op, Op::Reseal(_) | Op::AdminAttempt(_) | Op::RegistrationAttempt(_)) {
                self.reseal_once().await;
            }
            self.apply(op).await
        };
        run.await.map_err(|e| wasm_bindgen::JsValue::from_str(&e.to_string()))
    }
}

/// An operation's answer as it travels; typed by the operation, so each arm below answers
/// what the stub expects.
fn answer<O: Operation>(reply: O::Reply) -> Result<String> {
    serde_json::to_string(&reply).map_err(Error::from)
}

impl SubjectStore {
    async fn apply(&self, op: Op) -> Result<String> {
        match op {
            // The hot path inline; every other operation behind a boxed future, compiled by the
            // runtime when first used (see `routes::cold`).
            Op::Resolve(o) => answer::<p::Resolve>(self.resolve(o).await?),
            other => self.apply_cold(other).boxed_local().await,
        }
    }

    async fn apply_cold(&self, op: Op) -> Result<String> {
        match op {
            Op::Resolve(_) => Err(Error::RustError("Resolve is answered inline by `apply`".into())),
            Op::RefreshAfterRejection(o) => {
                answer::<p::RefreshAfterRejection>(self.refresh(o.upstream.as_str(), Some(o.rejected)).await?)
            }
            Op::CreateKey(o) => answer::<p::CreateKey>(self.create_key(o.key).await?),
            Op::ListKeys(_) => answer::<p::ListKeys>(self.list_keys().await?),
            Op::RevokeKey(o) => answer::<p::RevokeKey>(self.revoke_key(&o.id).await?),
            Op::PutSecret(o) => answer::<p::PutSecret>(self.put_secret(o).await?),
            Op::ListConnections(_) => answer::<p::ListConnections>(self.list_connections().await?),
            Op::SetConnectionStatus(o) => {
                answer::<p::SetConnectionStatus>(self.set_connection_status(o).await?)
            }
            Op::DeleteConnection(o) => {
                answer::<p::DeleteConnection>(self.delete_connection(o.upstream.as_str()).await?)
            }
            Op::BeginAuthorization(o) => answer::<p::BeginAuthorization>(self.begin_authorization(o).await?),
            Op::TakeAuthorization(o) => answer::<p::TakeAuthorization>(self.take_authorization(o).await?),
            Op::CreateLink(o) => answer::<p::CreateLink>(self.create_link(o).await?),
            Op::OpenLink(o) => answer::<p::OpenLink>(self.open_link(o).await?),
            Op::CompleteLink(o) => answer::<p::CompleteLink>(self.complete_link(o).await?),
            Op::Reseal(_) => answer::<p::Reseal>(self.reseal_now().await?),
            Op::AdminAttempt(o) => {
                answer::<p::AdminAttempt>(super::guard::attempt(&self.storage(), o.ok).await?)
            }
            Op::RedeemCode(o) => answer::<p::RedeemCode>(self.redeem_code(o).await?),
            Op::RotateRefresh(o) => answer::<p::RotateRefresh>(self.rotate_refresh(o).await?),
            Op::RevokeToken(o) => answer::<p::RevokeToken>(self.revoke_token(o).await?),
            Op::ListGrants(_) => answer::<p::ListGrants>(self.list_grants().await?),
            Op::RevokeGrant(o) => answer::<p::RevokeGrant>(self.revoke_grant(&o.id).await?),
            Op::RegistrationAttempt(_) => {
                answer::<p::RegistrationAttempt>(super::guard::registration(&self.storage()).await?)
            }
        }
    }

    fn storage(&self) -> Storage {
        self.state.storage()
    }

    /// Every entry of `family`, by name.
    async fn list<T: DeserializeOwned>(&self, family: &Family) -> Result<Vec<(String, T)>> {
        let map = self.storage().list_with_options(ListOptions::new().prefix(family.prefix())).await?;
        let mut out = Vec::new();
        for entry in map.entries() {
            let pair: js_sys::Array = entry?.into();
            let key = pair.get(0).as_string().unwrap_or_default();
            let value: T = serde_wasm_bindgen::from_value(pair.get(1))?;
            out.push((family.name_in(&key).unwrap_or_default().to_string(), value));
        }
        Ok(out)
    }

    async fn subject(&self) -> Result<Option<SubjectId>> {
        self.storage().get(SUBJECT).await
    }

    async fn remember_subject(&self, subject: &SubjectId) -> Result<()> {
        if self.subject().await?.is_none() {
            self.storage().put(SUBJECT, subject).await?;
        }
        Ok(())
    }
}
