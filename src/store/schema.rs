//! Every storage key, built and read in one place (the schema table is in `store/mod.rs`).
//! A `Family` is one key prefix: the same value builds a key and reads the name back out of
//! it, so no other module spells a key.

use crate::core::encoding::hex;
use sha2::{Digest, Sha256};

/// Keys of one kind: `{prefix}{name}`.
pub struct Family(&'static str);

impl Family {
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.0)
    }

    pub fn prefix(&self) -> &'static str {
        self.0
    }

    /// The name inside one of this family's keys.
    pub fn name_in<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.0)
    }
}

// --- KV `CONFIG`: operator configuration ---

/// `upstream:{id}` → `Upstream` JSON.
pub const UPSTREAMS: Family = Family("upstream:");
/// `secret:{name}` → a sealed operator secret.
pub const SECRETS: Family = Family("secret:");
/// `oauth-registration:{upstream}:{16 hex}` → the gateway's sealed RFC 7591 registration.
pub const REGISTRATIONS: Family = Family("oauth-registration:");

/// The KV key of a dynamic registration: per upstream, issuer and redirect URI (a Worker
/// reachable under two origins registers once for each).
pub fn registration_key(upstream: &str, issuer: &str, redirect_uri: &str) -> String {
    let digest = Sha256::digest(format!("{issuer}\n{redirect_uri}").as_bytes());
    REGISTRATIONS.key(&format!("{upstream}:{}", hex(&digest[..8])))
}

/// What a KV key holds, read back from a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKey<'a> {
    Upstream(&'a str),
    Secret(&'a str),
    Registration {
        upstream: &'a str,
    },
    /// Not one of ours.
    Other,
}

pub fn parse_config_key(key: &str) -> ConfigKey<'_> {
    if let Some(id) = UPSTREAMS.name_in(key) {
        ConfigKey::Upstream(id)
    } else if let Some(name) = SECRETS.name_in(key) {
        ConfigKey::Secret(name)
    } else if let Some((upstream, _)) = REGISTRATIONS.name_in(key).and_then(|k| k.rsplit_once(':')) {
        ConfigKey::Registration { upstream }
    } else {
        ConfigKey::Other
    }
}

// --- a subject's Durable Object ---

/// The subject id, written on first use.
pub const SUBJECT: &str = "subject";
/// The id of the key everything in the store was last re-sealed under.
pub const SEALED_WITH: &str = "sealed_with";
/// `key:{sha256 hex}` → `KeyRecord`.
pub const KEYS: Family = Family("key:");
/// `keyid:{id}` → the sha256 hex of that key.
pub const KEY_IDS: Family = Family("keyid:");
/// `usecret:{name}` → a sealed subject secret.
pub const SUBJECT_SECRETS: Family = Family("usecret:");
/// `conn:{upstream}` → `Connection`.
pub const CONNECTIONS: Family = Family("conn:");
/// `link:{sha256 hex}` → `LinkRecord`.
pub const LINKS: Family = Family("link:");
/// `pending:{sha256 hex of state}` → `PendingAuthorization`.
pub const PENDING: Family = Family("pending:");
/// `code:{sha256 hex}` → `CodeRecord`: a code the gateway's authorization server issued.
pub const CODES: Family = Family("code:");
/// `grant:{id}` → `IssuedGrant`: what the gateway issued to an MCP client.
pub const GRANTS: Family = Family("grant:");
/// `tok:{sha256 hex}` → the id of the grant a refresh or access token belongs to.
pub const GRANT_TOKENS: Family = Family("tok:");

// --- the admin guard's Durable Object ---

/// The name of the guard object of one client address. ':' is not allowed in a subject id, so
/// a guard never shares a subject's store.
pub fn guard_name(client: &str) -> String {
    format!("admin-guard:{client}")
}

/// The guard's failure count, `window_start,failures`.
pub const ADMIN_ATTEMPTS: &str = "admin_attempts";

/// The name of the object that counts one client address's registrations at the gateway's
/// authorization server (not a subject either: ':').
pub fn registration_guard_name(client: &str) -> String {
    format!("register-guard:{client}")
}

/// Its count, `window_start,registrations`.
pub const REGISTRATION_ATTEMPTS: &str = "registration_attempts";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back() {
        assert_eq!(UPSTREAMS.key("gh"), "upstream:gh");
        assert_eq!(parse_config_key(&UPSTREAMS.key("gh")), ConfigKey::Upstream("gh"));
        assert_eq!(parse_config_key(&SECRETS.key("t")), ConfigKey::Secret("t"));
        let reg = registration_key("gh", "https://as.example", "https://gw.example/oauth/callback");
        assert!(
            reg.starts_with("oauth-registration:gh:") && reg.len() == "oauth-registration:gh:".len() + 16
        );
        assert_eq!(parse_config_key(&reg), ConfigKey::Registration { upstream: "gh" });
        assert_eq!(parse_config_key("something-else"), ConfigKey::Other);
        assert_eq!(CONNECTIONS.name_in("conn:gh"), Some("gh"));
        assert_eq!(CONNECTIONS.name_in("link:gh"), None);
        assert_eq!(guard_name("1.2.3.4"), "admin-guard:1.2.3.4");
        assert!(crate::core::ids::SubjectId::parse(&guard_name("x")).is_err());
    }
}
