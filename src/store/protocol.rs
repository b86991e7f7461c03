//! What the Worker asks a subject's Durable Object, and what it answers. One JSON message per
//! call; a proxied request that succeeds makes one such call (`Resolve`).

use crate::core::connect::LinkRecord;
use crate::core::keys::KeyRecord;
use crate::core::oauth::discovery::AuthServer;
use crate::core::oauth::token::{AuthMethod, ClientAuth};
use crate::core::seal::Keyring;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Authenticate a key for an upstream and fetch the sealed per-user values it needs.
    Resolve {
        key_hash: String,
        upstream: String,
        user: Vec<String>,
        /// The templates read `{{oauth.access_token}}`: return it, refreshed if due.
        #[serde(default)]
        oauth: bool,
    },
    /// The upstream answered 401 to `rejected` (the sealed access token sent): refresh, unless
    /// another request already did.
    RefreshAfterRejection {
        upstream: String,
        rejected: String,
    },
    CreateKey {
        key: KeyRecord,
    },
    ListKeys,
    RevokeKey {
        id: String,
    },
    PutSecret {
        subject: String,
        name: String,
        sealed: String,
    },
    ListConnections,
    /// Compare-and-set: applies only while the connection is as the request saw it at
    /// `Resolve` (`seen`: its `updated_at`, or `None` when there was none), so a slow request
    /// cannot undo a reconnect that happened meanwhile.
    SetConnectionStatus {
        upstream: String,
        status: ConnectionStatus,
        seen: Option<u64>,
    },
    DeleteConnection {
        upstream: String,
    },
    CreateLink {
        hash: String,
        link: LinkRecord,
    },
    GetLink {
        hash: String,
    },
    /// Stores the values typed on the connect page and uses the link up, atomically.
    CompleteLink {
        hash: String,
        values: BTreeMap<String, String>,
        #[serde(default)]
        oauth: Option<OAuthGrant>,
        #[serde(default)]
        scopes: Option<Vec<String>>,
    },
    /// Keeps a pending authorization (≤ 10 minutes) under the SHA-256 of its `state`.
    BeginAuthorization {
        state_hash: String,
        pending: Box<PendingAuthorization>,
    },
    /// Takes a pending authorization out, once: a second callback with the same `state` finds
    /// nothing.
    TakeAuthorization {
        state_hash: String,
    },
    /// Re-seals every value the store keeps under the primary key (`ENCRYPTION_KEY` rotation);
    /// answers a `Resealed` tally.
    Reseal,
    /// To a guard object (named `admin-guard:{client}`, never a subject): one admin request from
    /// that client, `ok` when its token was right; answers a `throttle::Verdict`.
    AdminAttempt {
        ok: bool,
    },
}

/// The gateway's client registration at an authorization server, as a connection keeps it to
/// refresh and revoke on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClient {
    pub issuer: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    pub client_id: String,
    /// Sealed under `conn:{subject}:{upstream}:oauth.client_secret`.
    #[serde(default)]
    pub client_secret: Option<String>,
    pub method: AuthMethod,
    /// RFC 8707 resource sent with every token request, when the upstream wants it.
    #[serde(default)]
    pub resource: Option<String>,
}

impl OAuthClient {
    /// This client's credentials for `subject` × `upstream`, its secret opened.
    pub fn auth(&self, keyring: &Keyring, subject: &str, upstream: &str) -> Option<ClientAuth> {
        let secret = match &self.client_secret {
            Some(sealed) => Some(
                keyring
                    .open_string(&connection_value_context(subject, upstream, CLIENT_SECRET), sealed)
                    .ok()?,
            ),
            None => None,
        };
        Some(ClientAuth { client_id: self.client_id.clone(), client_secret: secret, method: self.method })
    }
}

/// A connection's OAuth tokens, sealed under `conn:{subject}:{upstream}:oauth.access_token` /
/// `oauth.refresh_token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthGrant {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    pub issued_at: u64,
    #[serde(default)]
    pub expires_at: Option<u64>,
    pub client: OAuthClient,
}

/// An authorization in flight: what the callback needs to finish it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub link_hash: String,
    pub upstream: String,
    /// The PKCE verifier, sealed under `pending:{subject}:{upstream}`.
    pub verifier: String,
    pub server: AuthServer,
    pub client: OAuthClient,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub expires_at: u64,
    /// SHA-256 (hex) of the cookie that binds the callback to the browser that started it.
    pub browser_hash: String,
}

pub fn pending_context(subject: &str, upstream: &str) -> String {
    format!("pending:{subject}:{upstream}")
}

/// What a refresh came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Refreshed {
    /// A usable access token (sealed): freshly refreshed, or already refreshed by another
    /// request; `updated_at` is the connection's, for later compare-and-set.
    Token { access_token: String, updated_at: u64 },
    /// The grant is dead (`invalid_grant`, or nothing to refresh with): the user must connect again.
    ConnectionRequired,
    /// The authorization server could not be reached or failed; nothing was changed.
    Unavailable,
}

/// What `CompleteLink` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkOutcome {
    Completed,
    NotFound,
    Expired,
    Used,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    ConnectionRequired,
}

/// A sealed value and the context it was sealed under.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedValue {
    pub context: String,
    pub sealed: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Resolved {
    InvalidKey,
    NotAllowed,
    Ok {
        subject: String,
        values: BTreeMap<String, SealedValue>,
        connection: Option<ConnectionSeen>,
        /// The access token is due and its server could not refresh it: answer 503.
        #[serde(default)]
        oauth_unavailable: bool,
    },
}

/// The connection's state as `Resolve` saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSeen {
    pub status: ConnectionStatus,
    pub updated_at: u64,
}

/// A subject × upstream connection, as stored under `conn:{upstream}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connection {
    pub status: ConnectionStatus,
    /// Values the user typed on the connect page, sealed under `conn:{subject}:{upstream}:{name}`.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthGrant>,
    pub updated_at: u64,
}

pub fn user_secret_context(subject: &str, name: &str) -> String {
    format!("user:{subject}:{name}")
}

/// Names of a connection's OAuth values: keys of `Resolved::Ok::values` and sealing contexts.
/// They cannot collide with user field names, which have no '.'.
pub const ACCESS_TOKEN: &str = "oauth.access_token";
pub const REFRESH_TOKEN: &str = "oauth.refresh_token";
pub const CLIENT_SECRET: &str = "oauth.client_secret";

/// A connection's sealed access token, as `Resolve` hands it out.
pub fn access_token_value(subject: &str, upstream: &str, sealed: String) -> SealedValue {
    SealedValue { context: connection_value_context(subject, upstream, ACCESS_TOKEN), sealed }
}

pub fn connection_value_context(subject: &str, upstream: &str, name: &str) -> String {
    format!("conn:{subject}:{upstream}:{name}")
}
