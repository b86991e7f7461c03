//! What the Worker asks a subject's Durable Object, what it answers, and the records it keeps.
//! Every operation is a struct with its reply type (`Operation::Reply`), so the stub and the
//! object agree on both by construction. One JSON message per call; a proxied request that
//! succeeds makes one such call (`Resolve`).

use crate::core::authorize::grant::{ClientReturn, CodeRecord, IssuedGrant};
use crate::core::connect::{Claim, LinkRecord};
use crate::core::connections::ConnectionSummary;
use crate::core::ids::{SecretName, SubjectId, UpstreamId};
use crate::core::keys::{KeyHash, KeyRecord};
use crate::core::oauth::discovery::AuthServer;
use crate::core::oauth::grant::{OAuthClient, OAuthGrant};
use crate::core::oauth::refresh::Failing;
use crate::core::request::{ConnectionSeen, ConnectionStatus, Place, Refreshed, UserValue};
use crate::core::seal::{Resealed, Sealed};
use crate::core::throttle::Verdict;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One operation of the subject store and the type of its answer.
pub trait Operation: Into<Op> {
    type Reply: Serialize + DeserializeOwned;
}

macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? } -> $reply:ty;)*) => {
        $(
            $(#[$doc])*
            #[derive(Serialize, Deserialize)]
            pub struct $name { $(pub $field: $ty),* }

            impl Operation for $name {
                type Reply = $reply;
            }

            impl From<$name> for Op {
                fn from(op: $name) -> Op {
                    Op::$name(op)
                }
            }
        )*

        /// Every operation, as it travels (`{"resolve": {...}}`: externally tagged, so it is read
        /// without buffering).
        #[derive(Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Op {
            $($name($name)),*
        }
    };
}

operations! {
    /// Authenticate a key for an upstream and fetch the sealed per-user values it needs; with
    /// `oauth`, the access token too, refreshed first if due. `access_token`: `key_hash` is the
    /// hash of an access token the gateway issued, not of a key. `upstream` is the name in the URL,
    /// checked or not: an unknown one must still be told apart from a bad key (401 before 404).
    Resolve {
        key_hash: KeyHash,
        access_token: bool,
        upstream: String,
        place: Option<Place>,
        user: Vec<String>,
        oauth: bool,
    } -> Resolved;
    /// The upstream answered 401 to `rejected` (the sealed access token sent): refresh, unless
    /// another request already did.
    RefreshAfterRejection { upstream: UpstreamId, rejected: Sealed } -> Refreshed;
    CreateKey { key: KeyRecord } -> ();
    ListKeys {} -> Vec<KeyRecord>;
    /// Answers whether the key existed.
    RevokeKey { id: String } -> bool;
    PutSecret { subject: SubjectId, name: SecretName, sealed: Sealed } -> ();
    /// What the admin connections list is built from: the stored connections (names only, never
    /// values), the names of the subject's secrets, and its keys (for their scopes).
    ListConnections {} -> SubjectConnections;
    /// Compare-and-set (`core::request::status_change_applies`); answers whether it applied.
    SetConnectionStatus { upstream: UpstreamId, status: ConnectionStatus, seen: Option<u64> } -> bool;
    /// Forgets the connection, then revokes its grant at the authorization server (RFC 7009).
    DeleteConnection { upstream: UpstreamId } -> Deleted;
    /// Keeps a pending authorization (≤ 10 minutes) under the SHA-256 of its `state`.
    BeginAuthorization { state_hash: KeyHash, pending: Box<PendingAuthorization> } -> ();
    /// Takes a pending authorization out, once (with the subject), if `browser` (the hash of
    /// the callback's binding cookie) is the one that started it (`core::connect::take_pending`):
    /// a second callback with the same `state` finds nothing; one from another browser leaves it.
    TakeAuthorization { state_hash: KeyHash, browser: Option<KeyHash> } -> Taken;
    /// Stores a new link, after forgetting old ones (`core::connect::links_to_forget`). A link
    /// with a token (minted for `connection_required`) is stored only when no reusable one is
    /// live (`core::connect::reusable_link`): then that one is answered instead.
    CreateLink { hash: KeyHash, link: LinkRecord } -> Option<LinkRecord>;
    /// Reads a link as `browser` (the hash of its `mab_browser` cookie) opens it; a usable link
    /// nobody opened before becomes that browser's (`LinkRecord::claim`).
    OpenLink { hash: KeyHash, browser: Option<KeyHash> } -> Option<(LinkRecord, Claim)>;
    /// Stores what the user connected (typed values, or an OAuth grant) and uses the link up,
    /// atomically; with `code`, a code of the gateway's authorization server for the connection.
    CompleteLink {
        hash: KeyHash,
        origin: String,
        values: BTreeMap<String, Sealed>,
        oauth: Option<OAuthGrant>,
        scopes: Option<Vec<String>>,
        code: Option<Box<IssuedCode>>,
    } -> LinkOutcome;
    /// Re-seals every value the store keeps under the primary key (`ENCRYPTION_KEY` rotation).
    Reseal {} -> Resealed;
    /// To a guard object (`schema::guard_name`, never a subject): one admin request from that
    /// client, `ok` when its token was right.
    AdminAttempt { ok: bool } -> Verdict;
    /// To a registration guard (`schema::registration_guard_name`): one client registration.
    RegistrationAttempt {} -> Verdict;
    /// Redeems a code (`core::authorize::grant::redeem`) for `grant`, whose tokens the Worker
    /// made; a replayed code revokes what it issued.
    RedeemCode {
        code_hash: KeyHash,
        client_id: String,
        client_name: String,
        redirect_uri: String,
        code_verifier: String,
        grant_id: String,
        refresh: KeyHash,
        access: KeyHash,
    } -> Redeemed;
    /// Rotates a grant's refresh token to `refresh`/`access` (`core::authorize::grant::present_refresh`).
    RotateRefresh { presented: KeyHash, client_id: String, refresh: KeyHash, access: KeyHash } -> Rotated;
    /// RFC 7009: ends the grant a refresh or access token (`presented`, its hash) belongs to, when
    /// `client_id` is the client it was issued to (`core::authorize::grant::revokes`); an unknown
    /// token, or another client's, changes nothing.
    RevokeToken { presented: KeyHash, client_id: String } -> ();
    /// The grants issued for this subject, oldest first (the admin list).
    ListGrants {} -> Vec<IssuedGrant>;
    /// Ends a grant by id (the admin API); answers whether it existed.
    RevokeGrant { id: String } -> bool;
}

/// What `Resolve` found.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolved {
    InvalidKey,
    NotAllowed,
    Ok {
        subject: SubjectId,
        /// The id of the key, or of the grant whose access token it was (for the request log).
        #[serde(default)]
        credential: String,
        /// Each `{{user.NAME}}` value found, by name.
        values: BTreeMap<String, UserValue>,
        /// The OAuth access token, sealed (`Connection { value: AccessToken }`).
        access_token: Option<Sealed>,
        connection: Option<ConnectionSeen>,
        /// The access token has expired and its server could not refresh it: answer 503, and
        /// say when to try again (seconds).
        oauth_unavailable: Option<u64>,
    },
}

/// A code of the gateway's authorization server, kept under its hash until redeemed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedCode {
    pub hash: KeyHash,
    pub record: CodeRecord,
}

/// What `RedeemCode` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Redeemed {
    Issued,
    /// `invalid_grant`, with why (for the log; the client gets the RFC 6749 code only).
    Refused(String),
}

/// What `RotateRefresh` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rotated {
    /// New tokens for the grant's upstream.
    Issued { upstream: UpstreamId },
    /// Not a refresh token of this client here (`invalid_grant`).
    Refused,
    /// A replaced refresh token presented again: the grant is revoked (`invalid_grant`).
    Revoked,
}

/// What `DeleteConnection` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deleted {
    NotFound,
    /// `revoked`: the authorization server accepted the revocation of the grant.
    Deleted {
        revoked: bool,
    },
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

/// What `TakeAuthorization` found.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Taken {
    Taken {
        subject: SubjectId,
        pending: Box<PendingAuthorization>,
    },
    /// None pending under this `state` (never issued, used, or expired).
    Unknown,
    /// Pending, but started in another browser: left as it is.
    OtherBrowser,
}

/// What `ListConnections` answers.
#[derive(Serialize, Deserialize)]
pub struct SubjectConnections {
    pub connections: Vec<ConnectionSummary>,
    pub secrets: Vec<String>,
    pub keys: Vec<KeyRecord>,
}

/// An authorization in flight: what the callback needs to finish it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub link_hash: KeyHash,
    pub upstream: UpstreamId,
    /// The PKCE verifier, sealed (`Context::PendingVerifier`).
    pub verifier: Sealed,
    pub server: AuthServer,
    pub client: OAuthClient,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub expires_at: u64,
    /// Binds the callback to the browser that started it.
    pub browser_hash: KeyHash,
    /// The upstream's origin when the connect began: what the connection is bound to.
    #[serde(default)]
    pub origin: Option<String>,
    /// Inside an authorization of the gateway's own (sign-in): the client to send the person
    /// back to, with a code, once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<ClientReturn>,
}

/// A subject × upstream connection, as stored under `schema::CONNECTIONS`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connection {
    pub status: ConnectionStatus,
    /// Values the user typed on the connect page, sealed (`Connection { value: Field(name) }`).
    #[serde(default)]
    pub values: BTreeMap<String, Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthGrant>,
    pub updated_at: u64,
    /// Where the connection was made: the upstream's origin then. Records made before this was
    /// kept have none, and are bound on their next use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The grant's refreshes are failing: since when, and when to try again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_failing: Option<Failing>,
    /// Something the operator must fix (e.g. `invalid_client`), shown in the connections list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Connection {
    pub fn seen(&self) -> ConnectionSeen {
        ConnectionSeen { status: self.status, updated_at: self.updated_at }
    }
}
