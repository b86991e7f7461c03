//! What the Worker asks a subject's Durable Object, and what it answers. One JSON message per
//! call; a proxied request that succeeds makes one such call (`Resolve`).

use crate::core::connect::LinkRecord;
use crate::core::keys::KeyRecord;
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
    Ok { subject: String, values: BTreeMap<String, SealedValue>, connection: Option<ConnectionSeen> },
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
    pub updated_at: u64,
}

pub fn user_secret_context(subject: &str, name: &str) -> String {
    format!("user:{subject}:{name}")
}

pub fn connection_value_context(subject: &str, upstream: &str, name: &str) -> String {
    format!("conn:{subject}:{upstream}:{name}")
}
