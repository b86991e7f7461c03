//! What the Worker asks a subject's Durable Object, and what it answers. One JSON message per
//! call; the Worker makes at most one such call per proxied request (`Resolve`).

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
    SetConnectionStatus {
        upstream: String,
        status: ConnectionStatus,
    },
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
    Ok { subject: String, values: BTreeMap<String, SealedValue>, status: Option<ConnectionStatus> },
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
