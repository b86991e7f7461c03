//! Gateway keys (API.md §1): `mab_<routing>_<secret>`; connect-link tokens (API.md §3):
//! `mabl_<routing>_<secret>`; OAuth `state` values: `mabs_<routing>_<secret>`. All built the same
//! way, so each finds its subject's store by itself.
//!
//! `routing` is the 64-hex-digit id of the subject's Durable Object, so a key finds its store
//! without any index; `secret` is 32 random bytes in base64url. Only the SHA-256 of the whole
//! key is ever stored. A key id (for listing and revoking) is `<routing>-<16 hex digits>` for the
//! same reason: it routes itself; so is the id of a grant the gateway's authorization server
//! issued.

use super::encoding::{b64url, hex};
use super::ids::{SubjectId, UpstreamId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "mab_";
pub const LINK_PREFIX: &str = "mabl_";
pub const STATE_PREFIX: &str = "mabs_";
/// What the gateway's authorization server issues (codes, refresh and access tokens), built like
/// keys so each finds its subject's store by itself.
pub const CODE_PREFIX: &str = "mabx_";
pub const REFRESH_PREFIX: &str = "mabr_";
pub const ACCESS_PREFIX: &str = "maba_";
const ROUTING_LEN: usize = 64;
pub const SECRET_BYTES: usize = 32;
const SECRET_B64_LEN: usize = 43; // 32 bytes, base64url without padding

/// The SHA-256 (hex) of a key, link token, OAuth `state` or browser binding: the only form in
/// which any of them is stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn of(token: &str) -> KeyHash {
        KeyHash(hex(&Sha256::digest(token.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with the hash of a presented token.
    pub fn matches(&self, token: &str) -> bool {
        super::encoding::ct_eq(self.0.as_bytes(), KeyHash::of(token).0.as_bytes())
    }
}

/// A key as the client sent it, checked for shape. Holds the digest, not the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedKey {
    pub routing: String,
    pub hash: KeyHash,
}

pub fn is_routing(s: &str) -> bool {
    s.len() == ROUTING_LEN && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Builds a new key for the store `routing` from 32 random bytes.
pub fn generate(routing: &str, random: &[u8; SECRET_BYTES]) -> String {
    format!("{PREFIX}{routing}_{}", b64url(random))
}

/// Builds a new connect-link token for the store `routing` from 32 random bytes.
pub fn generate_link(routing: &str, random: &[u8; SECRET_BYTES]) -> String {
    format!("{LINK_PREFIX}{routing}_{}", b64url(random))
}

/// Builds a new OAuth `state` for the store `routing` from 32 random bytes.
pub fn generate_state(routing: &str, random: &[u8; SECRET_BYTES]) -> String {
    format!("{STATE_PREFIX}{routing}_{}", b64url(random))
}

/// Builds a routed token with `prefix` (`CODE_PREFIX`, `REFRESH_PREFIX`, `ACCESS_PREFIX`).
pub fn generate_routed(prefix: &str, routing: &str, random: &[u8; SECRET_BYTES]) -> String {
    format!("{prefix}{routing}_{}", b64url(random))
}

/// A routed token with `prefix`, checked for shape.
pub fn parse_routed(prefix: &str, token: &str) -> Option<PresentedKey> {
    parse_with(prefix, token)
}

/// What a client presented on an MCP URL: a gateway key, or an access token the gateway issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Key(PresentedKey),
    AccessToken(PresentedKey),
}

impl Credential {
    pub fn presented(&self) -> &PresentedKey {
        match self {
            Credential::Key(k) | Credential::AccessToken(k) => k,
        }
    }
}

/// Reads the client credential from an `Authorization` value: a key (`Bearer mab_…` or bare) or
/// an access token (`Bearer maba_…`).
pub fn credential_from_authorization(value: &str) -> Option<Credential> {
    let token = bearer(value)?;
    parse(token)
        .map(Credential::Key)
        .or_else(|| parse_with(ACCESS_PREFIX, token).map(Credential::AccessToken))
}

/// The credential in an `Authorization` value: after `Bearer`, or the whole value.
fn bearer(value: &str) -> Option<&str> {
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => Some(rest.trim()),
        Some(_) => None,
        None => Some(value),
    }
}

/// Builds a key id (or a grant id) for the store `routing` from 8 random bytes.
pub fn key_id(routing: &str, random: &[u8; 8]) -> String {
    format!("{routing}-{}", hex(random))
}

/// The store a key id routes to, when the id is well formed.
pub fn key_id_routing(id: &str) -> Option<&str> {
    let (routing, tail) = id.split_once('-')?;
    (is_routing(routing) && tail.len() == 16 && tail.bytes().all(|c| c.is_ascii_hexdigit()))
        .then_some(routing)
}

pub fn hash(key: &str) -> KeyHash {
    KeyHash::of(key)
}

/// Reads the client credential from an `Authorization` value: `Bearer <key>` or a bare key.
pub fn from_authorization(value: &str) -> Option<PresentedKey> {
    parse(bearer(value)?)
}

pub fn parse(key: &str) -> Option<PresentedKey> {
    parse_with(PREFIX, key)
}

/// A connect-link token from a URL path, checked for shape.
pub fn parse_link(token: &str) -> Option<PresentedKey> {
    parse_with(LINK_PREFIX, token)
}

/// An OAuth `state` from a callback, checked for shape.
pub fn parse_state(state: &str) -> Option<PresentedKey> {
    parse_with(STATE_PREFIX, state)
}

fn parse_with(prefix: &str, key: &str) -> Option<PresentedKey> {
    let rest = key.strip_prefix(prefix)?;
    let (routing, secret) = rest.split_at_checked(ROUTING_LEN)?;
    let secret = secret.strip_prefix('_')?;
    let secret_ok = secret.len() >= SECRET_B64_LEN
        && secret.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    (is_routing(routing) && secret_ok).then(|| PresentedKey { routing: routing.to_string(), hash: hash(key) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTING: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn generated_keys_parse_back_with_their_hash() {
        let key = generate(ROUTING, &[7u8; 32]);
        assert!(key.starts_with("mab_0123"));
        assert_eq!(key.len(), 4 + 64 + 1 + 43);
        let parsed = parse(&key).unwrap();
        assert_eq!(parsed.routing, ROUTING);
        assert_eq!(parsed.hash, hash(&key));
        assert_eq!(from_authorization(&format!("Bearer {key}")), Some(parsed.clone()));
        assert_eq!(from_authorization(&format!("bearer  {key} ")), Some(parsed.clone()));
        assert_eq!(from_authorization(&key), Some(parsed));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let key = generate(ROUTING, &[7u8; 32]);
        assert_eq!(from_authorization(&format!("Basic {key}")), None);
        assert_eq!(parse(&key[..key.len() - 1]), None, "short secret");
        assert_eq!(parse(&key.replace("mab_", "mak_")), None);
        assert_eq!(parse(&key.replacen('0', "G", 1)), None, "routing not hex");
        assert_eq!(parse(&format!("{key}!")), None);
        assert_eq!(parse("mab_"), None);
        assert_eq!(parse("mab_é"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn link_tokens_are_not_keys() {
        let link = generate_link(ROUTING, &[7u8; 32]);
        assert_eq!(parse_link(&link).unwrap().routing, ROUTING);
        assert_eq!(parse(&link), None);
        assert_eq!(parse_link(&generate(ROUTING, &[7u8; 32])), None);
        let state = generate_state(ROUTING, &[8u8; 32]);
        assert_eq!(parse_state(&state).unwrap().routing, ROUTING);
        assert_eq!(parse_state(&link), None);
    }

    #[test]
    fn key_ids_route_themselves() {
        let id = key_id(ROUTING, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(key_id_routing(&id), Some(ROUTING));
        assert_eq!(key_id_routing("nope"), None);
        assert_eq!(key_id_routing(&format!("{ROUTING}-123")), None);
    }
}

/// Which upstreams a key may reach. Stored and shown as a list of ids, `["*"]` for all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    All,
    Only(Vec<UpstreamId>),
}

/// The list entry that means every upstream.
pub const ALL_UPSTREAMS: &str = "*";

impl KeyScope {
    /// Reads an admin API or stored list: ids, or `"*"` anywhere for all upstreams.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<KeyScope, super::ids::InvalidName> {
        if list.iter().any(|u| u.as_ref() == ALL_UPSTREAMS) {
            return Ok(KeyScope::All);
        }
        list.iter().map(|u| UpstreamId::parse(u.as_ref())).collect::<Result<_, _>>().map(KeyScope::Only)
    }

    pub fn allows(&self, upstream: &str) -> bool {
        match self {
            KeyScope::All => true,
            KeyScope::Only(ids) => ids.iter().any(|u| u.as_str() == upstream),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        match self {
            KeyScope::All => vec![ALL_UPSTREAMS],
            KeyScope::Only(ids) => ids.iter().map(UpstreamId::as_str).collect(),
        }
    }
}

impl Serialize for KeyScope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for KeyScope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        KeyScope::parse(&list).map_err(serde::de::Error::custom)
    }
}

/// A key as stored in its subject's Durable Object: the hash, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub hash: KeyHash,
    pub subject: SubjectId,
    pub upstreams: KeyScope,
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub created_at: u64,
    /// When a request last used it, to the minute (`usage_due`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<u64>,
}

/// How stale a stored last use may get: requests within it write nothing, so the hot path pays
/// at most one storage write a minute per key or grant.
pub const USAGE_RESOLUTION_MS: u64 = 60_000;

/// Whether a use at `now_ms` should be written, after the last one written at `last_used`.
pub fn usage_due(last_used: Option<u64>, now_ms: u64) -> bool {
    last_used.is_none_or(|t| now_ms.saturating_sub(t) >= USAGE_RESOLUTION_MS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    Expired,
    NotAllowed,
}

impl KeyRecord {
    pub fn access(&self, upstream: &str, now_ms: u64) -> Access {
        if self.expires_at.is_some_and(|t| t <= now_ms) {
            Access::Expired
        } else if self.upstreams.allows(upstream) {
            Access::Allowed
        } else {
            Access::NotAllowed
        }
    }

    /// What the admin API lists: everything but the hash.
    pub fn public_view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "subject": self.subject,
            "upstreams": self.upstreams,
            "label": self.label,
            "expires_at": self.expires_at.map(super::encoding::rfc3339),
            "created_at": super::encoding::rfc3339(self.created_at),
            "last_used": self.last_used.map(super::encoding::rfc3339),
        })
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    fn record(upstreams: &[&str], expires_at: Option<u64>) -> KeyRecord {
        KeyRecord {
            id: "id".into(),
            hash: KeyHash::of("k"),
            subject: SubjectId::parse("alice").unwrap(),
            upstreams: KeyScope::parse(upstreams).unwrap(),
            expires_at,
            label: None,
            created_at: 0,
            last_used: None,
        }
    }

    #[test]
    fn scope_and_expiry() {
        assert_eq!(record(&["a"], None).access("a", 5), Access::Allowed);
        assert_eq!(record(&["a"], None).access("b", 5), Access::NotAllowed);
        assert_eq!(record(&["*"], None).access("b", 5), Access::Allowed);
        assert_eq!(record(&["*"], Some(10)).access("b", 9), Access::Allowed);
        assert_eq!(record(&["*"], Some(10)).access("b", 10), Access::Expired);
        let view = record(&["a"], Some(0)).public_view();
        assert_eq!(view["expires_at"], "1970-01-01T00:00:00Z");
        assert!(view.get("hash").is_none());
        assert_eq!(view["upstreams"], serde_json::json!(["a"]));
        assert_eq!(record(&["a", "*"], None).public_view()["upstreams"], serde_json::json!(["*"]));
    }

    #[test]
    fn scopes_are_stored_as_lists() {
        let stored = serde_json::to_string(&KeyScope::parse(&["a", "b"]).unwrap()).unwrap();
        assert_eq!(stored, r#"["a","b"]"#);
        assert_eq!(serde_json::from_str::<KeyScope>(r#"["*"]"#).unwrap(), KeyScope::All);
        assert!(serde_json::from_str::<KeyScope>(r#"["Not An Id"]"#).is_err());
        assert!(KeyHash::of("mab_x").matches("mab_x"));
        assert!(!KeyHash::of("mab_x").matches("mab_y"));
    }

    #[test]
    fn a_use_is_written_at_most_once_a_minute() {
        assert!(usage_due(None, 5));
        assert!(!usage_due(Some(1_000), 1_000 + USAGE_RESOLUTION_MS - 1));
        assert!(usage_due(Some(1_000), 1_000 + USAGE_RESOLUTION_MS));
        assert!(!usage_due(Some(9_000), 1_000), "a clock that went back writes nothing");
    }
}
