//! Secrets at rest: AES-256-GCM under `ENCRYPTION_KEY` (ARCHITECTURE.md "Secrets at rest").
//!
//! Sealed form: `v1.<kid>.<base64url(nonce ‖ ciphertext ‖ tag)>`. `kid` names the key (first
//! 8 hex digits of SHA-256 over a label and the key), so a second key can be added and old
//! values still opened: `ENCRYPTION_KEY` is a comma-separated list, the first key seals and
//! every key opens; [`Keyring::reseal`] moves a value to the first key. Every value is sealed
//! with associated data naming where it lives, one [`Context`] each (`secret:NAME`,
//! `user:SUBJECT:NAME` ...), so a sealed value copied to another record does not open there.

use super::encoding::{b64url, b64url_decode, hex};
use super::secret::Secret;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

const VERSION: &str = "v1";

/// Where a sealed value lives: its AES-GCM associated data. The one list of them; the text of
/// each is part of the stored format and never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context<'a> {
    /// An operator secret in KV (`{{secret.NAME}}`).
    OperatorSecret { name: &'a str },
    /// An upstream's operator-registered OAuth client secret, in KV.
    OAuthClientSecret { upstream: &'a str },
    /// The gateway's RFC 7591 registration at an upstream's authorization server, in KV.
    Registration { upstream: &'a str },
    /// A subject's secret set through the admin API (`{{user.NAME}}`).
    SubjectSecret { subject: &'a str, name: &'a str },
    /// A value of a subject's connection to an upstream: typed on the connect page, or OAuth.
    Connection { subject: &'a str, upstream: &'a str, value: ConnectionValue<'a> },
    /// The PKCE verifier of an authorization in flight.
    PendingVerifier { subject: &'a str, upstream: &'a str },
    /// The upstream message URL inside a legacy SSE endpoint the gateway hands out.
    SseSession { upstream: &'a str },
    /// A client's registration at the gateway's own authorization server, inside its client id.
    GatewayClient,
    /// An authorization request in progress, carried by its consent page's form.
    AuthorizeSession,
    /// The token of a connect link minted for a `connection_required` answer, kept with the link
    /// so the next such answer hands out the same link (`core::connect::reusable_link`).
    LinkToken { subject: &'a str, upstream: &'a str },
    /// An operator console session, in its cookie (`core::console::session`).
    ConsoleSession,
}

/// The values a connection seals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionValue<'a> {
    /// A `user_fields` value typed on the connect page.
    Field(&'a str),
    AccessToken,
    RefreshToken,
    /// The client secret a grant was obtained with (a dynamic registration's).
    ClientSecret,
}

impl ConnectionValue<'_> {
    /// Its name in a sealing context; the OAuth names hold a '.', which field names cannot.
    pub fn name(&self) -> &str {
        match self {
            ConnectionValue::Field(name) => name,
            ConnectionValue::AccessToken => "oauth.access_token",
            ConnectionValue::RefreshToken => "oauth.refresh_token",
            ConnectionValue::ClientSecret => "oauth.client_secret",
        }
    }
}

impl fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Context::OperatorSecret { name } => write!(f, "secret:{name}"),
            Context::OAuthClientSecret { upstream } => write!(f, "oauth-client:{upstream}"),
            Context::Registration { upstream } => write!(f, "oauth-registration:{upstream}"),
            Context::SubjectSecret { subject, name } => write!(f, "user:{subject}:{name}"),
            Context::Connection { subject, upstream, value } => {
                write!(f, "conn:{subject}:{upstream}:{}", value.name())
            }
            Context::PendingVerifier { subject, upstream } => write!(f, "pending:{subject}:{upstream}"),
            Context::SseSession { upstream } => write!(f, "sse-session:{upstream}"),
            Context::GatewayClient => f.write_str("gateway-client"),
            Context::AuthorizeSession => f.write_str("authorize-session"),
            Context::LinkToken { subject, upstream } => write!(f, "link:{subject}:{upstream}"),
            Context::ConsoleSession => f.write_str("console-session"),
        }
    }
}

/// A value in the sealed form. Only a [`Keyring`] makes one, and only a keyring opens it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl Sealed {
    /// A sealed value read back from storage, as stored.
    pub fn stored(text: String) -> Sealed {
        Sealed(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the key that sealed it.
    fn key_id(&self) -> Option<&str> {
        self.0.split('.').nth(1)
    }
}
pub const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// `ENCRYPTION_KEY` is not 32 bytes of base64.
    BadKey,
    /// The value is not in the sealed form.
    Malformed,
    /// No key in the ring has this id.
    UnknownKey(String),
    /// Authentication failed: wrong key, wrong context, or tampered bytes.
    Forged,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::BadKey => f.write_str(
                "ENCRYPTION_KEY must be 32 bytes, base64-encoded (or a comma-separated list of such keys)",
            ),
            SealError::Malformed => f.write_str("sealed value is malformed"),
            SealError::UnknownKey(kid) => write!(f, "sealed with unknown key id {kid}"),
            SealError::Forged => f.write_str("sealed value failed authentication"),
        }
    }
}

struct SealKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The keys a deployment can open values with; the first one seals.
pub struct Keyring {
    keys: Vec<SealKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        write!(f, "Keyring({ids:?})")
    }
}

pub fn key_id(key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"mcp-authbridge key id\0");
    h.update(key);
    hex(&h.finalize()[..4])
}

impl Keyring {
    pub fn new(primary: [u8; 32]) -> Self {
        let mut ring = Keyring { keys: Vec::new() };
        ring.push(primary);
        ring
    }

    /// Parses `ENCRYPTION_KEY`: one or more keys of 32 bytes in standard base64, separated by
    /// commas; the first seals, all open (rotation: put the new key first, keep the old after it).
    pub fn from_base64(value: &str) -> Result<Self, SealError> {
        let mut ring = Keyring { keys: Vec::new() };
        for part in value.split(',') {
            let bytes = super::encoding::b64_decode(part).ok_or(SealError::BadKey)?;
            ring.push(bytes.try_into().map_err(|_| SealError::BadKey)?);
        }
        Ok(ring)
    }

    fn push(&mut self, key: [u8; 32]) {
        let cipher = Aes256Gcm::new(&key.into());
        self.keys.push(SealKey { id: key_id(&key), cipher });
    }

    pub fn primary_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn seal(&self, context: &Context, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> Sealed {
        let key = &self.keys[0];
        let aad = context.to_string();
        let ct = key
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: aad.as_bytes() })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Sealed(format!("{VERSION}.{}.{}", key.id, b64url(&blob)))
    }

    pub fn open(&self, context: &Context, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        let mut parts = sealed.0.splitn(3, '.');
        let (Some(VERSION), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Malformed);
        };
        let blob = b64url_decode(body).ok_or(SealError::Malformed)?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let key =
            self.keys.iter().find(|k| k.id == kid).ok_or_else(|| SealError::UnknownKey(kid.to_string()))?;
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let aad = context.to_string();
        key.cipher
            .decrypt(
                &Nonce::try_from(nonce).map_err(|_| SealError::Malformed)?,
                Payload { msg: ct, aad: aad.as_bytes() },
            )
            .map_err(|_| SealError::Forged)
    }

    /// Opens a value that holds text, as a [`Secret`].
    pub fn open_secret(&self, context: &Context, sealed: &Sealed) -> Result<Secret, SealError> {
        String::from_utf8(self.open(context, sealed)?).map(Secret::new).map_err(|_| SealError::Malformed)
    }

    /// Moves `value` (sealed for `context`) to the primary key when another key of the ring
    /// sealed it, and counts what it found. A value that does not open is left as it is.
    pub fn reseal(
        &self,
        context: &Context,
        value: &mut Sealed,
        nonce: [u8; NONCE_LEN],
        tally: &mut Resealed,
    ) {
        if value.key_id() == Some(self.primary_id()) {
            tally.current += 1;
            return;
        }
        match self.open(context, value) {
            Ok(plain) => {
                *value = self.seal(context, &plain, nonce);
                tally.resealed += 1;
            }
            Err(_) => tally.unreadable += 1,
        }
    }
}

impl Keyring {
    /// [`Keyring::reseal`] for each of a record's values; true when one of them changed (the
    /// record must then be written back).
    pub fn reseal_each<'a>(
        &self,
        values: impl IntoIterator<Item = (Context<'a>, &'a mut Sealed)>,
        mut nonce: impl FnMut() -> [u8; NONCE_LEN],
        tally: &mut Resealed,
    ) -> bool {
        let before = tally.resealed;
        for (context, value) in values {
            self.reseal(&context, value, nonce(), tally);
        }
        tally.resealed > before
    }
}

/// What a re-sealing pass found: values moved to the primary key, values already under it, and
/// values no key of the ring opens (sealed under a key no longer listed, or damaged).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resealed {
    pub resealed: u32,
    pub current: u32,
    pub unreadable: u32,
}

/// The fixed key `wrangler dev` uses when no `ENCRYPTION_KEY` is set. Public by design: it only
/// ever protects local development data, and the Worker says so loudly when it uses it.
pub fn development_key() -> [u8; 32] {
    Sha256::digest(b"mcp-authbridge development key: never use in production").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(byte: u8) -> Keyring {
        Keyring::new([byte; 32])
    }

    fn secret(name: &str) -> Context<'_> {
        Context::OperatorSecret { name }
    }

    fn user(name: &str) -> Context<'_> {
        Context::SubjectSecret { subject: "s", name }
    }

    fn forge(text: &str) -> Sealed {
        Sealed::stored(text.to_string())
    }

    #[test]
    fn contexts_keep_their_stored_text() {
        let field = ConnectionValue::Field("api_key");
        let cases = [
            (Context::OperatorSecret { name: "t" }, "secret:t"),
            (Context::OAuthClientSecret { upstream: "gh" }, "oauth-client:gh"),
            (Context::Registration { upstream: "gh" }, "oauth-registration:gh"),
            (Context::SubjectSecret { subject: "a@b", name: "k" }, "user:a@b:k"),
            (Context::Connection { subject: "a", upstream: "gh", value: field }, "conn:a:gh:api_key"),
            (
                Context::Connection { subject: "a", upstream: "gh", value: ConnectionValue::AccessToken },
                "conn:a:gh:oauth.access_token",
            ),
            (
                Context::Connection { subject: "a", upstream: "gh", value: ConnectionValue::RefreshToken },
                "conn:a:gh:oauth.refresh_token",
            ),
            (
                Context::Connection { subject: "a", upstream: "gh", value: ConnectionValue::ClientSecret },
                "conn:a:gh:oauth.client_secret",
            ),
            (Context::PendingVerifier { subject: "a", upstream: "gh" }, "pending:a:gh"),
            (Context::SseSession { upstream: "gh" }, "sse-session:gh"),
            (Context::GatewayClient, "gateway-client"),
            (Context::AuthorizeSession, "authorize-session"),
            (Context::LinkToken { subject: "a", upstream: "gh" }, "link:a:gh"),
            (Context::ConsoleSession, "console-session"),
        ];
        for (context, text) in cases {
            assert_eq!(context.to_string(), text);
        }
    }

    #[test]
    fn seal_then_open_round_trips() {
        let r = ring(1);
        let sealed = r.seal(&secret("github"), b"ghp_token", [9; 12]);
        assert!(sealed.as_str().starts_with(&format!("v1.{}.", r.primary_id())));
        assert!(!sealed.as_str().contains("ghp_token"));
        assert_eq!(r.open(&secret("github"), &sealed).unwrap(), b"ghp_token");
        assert_eq!(r.open_secret(&secret("github"), &sealed).unwrap().expose(), "ghp_token");
    }

    #[test]
    fn other_context_key_or_tampering_fails() {
        let r = ring(1);
        let sealed = r.seal(&secret("a"), b"value", [1; 12]);
        assert_eq!(r.open(&secret("b"), &sealed), Err(SealError::Forged));
        assert_eq!(r.open(&user("a"), &sealed), Err(SealError::Forged));
        let other = ring(2);
        assert!(matches!(other.open(&secret("a"), &sealed), Err(SealError::UnknownKey(_))));
        let mut bytes = sealed.as_str().as_bytes().to_vec();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            r.open(&secret("a"), &forge(std::str::from_utf8(&bytes).unwrap())),
            Err(SealError::Forged)
        );
        for bad in ["", "v1", "v1.x", "v2.abc.def", &format!("v1.{}.AAAA", r.primary_id())] {
            assert!(r.open(&secret("a"), &forge(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_parsing() {
        let b64 = super::super::encoding::b64(&[3u8; 32]);
        assert_eq!(Keyring::from_base64(&b64).unwrap().primary_id(), key_id(&[3; 32]));
        assert_eq!(Keyring::from_base64("c2hvcnQ=").unwrap_err(), SealError::BadKey);
        assert_eq!(Keyring::from_base64("not base64!").unwrap_err(), SealError::BadKey);
        assert_ne!(key_id(&development_key()), key_id(&[0; 32]));
        let two = format!("{b64}, {}", super::super::encoding::b64(&[4u8; 32]));
        assert_eq!(Keyring::from_base64(&two).unwrap().primary_id(), key_id(&[3; 32]));
        for bad in [format!("{b64},"), format!("{b64},c2hvcnQ="), ",".into()] {
            assert_eq!(Keyring::from_base64(&bad).unwrap_err(), SealError::BadKey, "{bad}");
        }
    }

    fn ring_of(bytes: &[u8]) -> Keyring {
        let list: Vec<String> = bytes.iter().map(|b| super::super::encoding::b64(&[*b; 32])).collect();
        Keyring::from_base64(&list.join(",")).unwrap()
    }

    #[test]
    fn rotation_the_first_key_seals_every_key_opens() {
        let old = ring_of(&[1]);
        let sealed_old = old.seal(&secret("a"), b"value", [1; 12]);
        let rotated = ring_of(&[2, 1]);
        assert_eq!(rotated.open(&secret("a"), &sealed_old).unwrap(), b"value");
        let sealed_new = rotated.seal(&secret("a"), b"value", [2; 12]);
        assert!(sealed_new.as_str().starts_with(&format!("v1.{}.", key_id(&[2; 32]))));
        assert!(matches!(old.open(&secret("a"), &sealed_new), Err(SealError::UnknownKey(_))));
    }

    #[test]
    fn reseal_moves_old_values_to_the_primary_key_and_counts() {
        let old = ring_of(&[1]);
        let rotated = ring_of(&[2, 1]);
        let new_only = ring_of(&[2]);
        let mut tally = Resealed::default();
        let mut value = old.seal(&user("k"), b"v1", [1; 12]);
        rotated.reseal(&user("k"), &mut value, [3; 12], &mut tally);
        assert_eq!(new_only.open(&user("k"), &value).unwrap(), b"v1");
        let before = value.clone();
        rotated.reseal(&user("k"), &mut value, [4; 12], &mut tally);
        assert_eq!(value, before, "a value under the primary key is left alone");
        let mut foreign = ring_of(&[9]).seal(&user("k"), b"x", [5; 12]);
        let mut wrong_context = old.seal(&user("other"), b"x", [6; 12]);
        let (f0, w0) = (foreign.clone(), wrong_context.clone());
        rotated.reseal(&user("k"), &mut foreign, [7; 12], &mut tally);
        rotated.reseal(&user("k"), &mut wrong_context, [8; 12], &mut tally);
        assert_eq!((foreign, wrong_context), (f0, w0), "what does not open is left as it is");
        assert_eq!(tally, Resealed { resealed: 1, current: 1, unreadable: 2 });
    }
}
