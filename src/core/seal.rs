//! Secrets at rest: AES-256-GCM under `ENCRYPTION_KEY` (ARCHITECTURE.md "Secrets at rest").
//!
//! Sealed form: `v1.<kid>.<base64url(nonce ‖ ciphertext ‖ tag)>`. `kid` names the key (first
//! 8 hex digits of SHA-256 over a label and the key), so a second key can be added and old
//! values still opened: `ENCRYPTION_KEY` is a comma-separated list, the first key seals and
//! every key opens; [`Keyring::reseal`] moves a value to the first key. Every value is sealed with associated data naming where it lives
//! (`secret:NAME`, `user:SUBJECT:NAME` ...), so a sealed value copied to another record does
//! not open there.

use super::encoding::{b64url, b64url_decode, hex};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};
use std::fmt;

const VERSION: &str = "v1";
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

    pub fn seal(&self, context: &str, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> String {
        let key = &self.keys[0];
        let ct = key
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        format!("{VERSION}.{}.{}", key.id, b64url(&blob))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let mut parts = sealed.splitn(3, '.');
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
        key.cipher
            .decrypt(
                &Nonce::try_from(nonce).map_err(|_| SealError::Malformed)?,
                Payload { msg: ct, aad: context.as_bytes() },
            )
            .map_err(|_| SealError::Forged)
    }

    pub fn open_string(&self, context: &str, sealed: &str) -> Result<String, SealError> {
        String::from_utf8(self.open(context, sealed)?).map_err(|_| SealError::Malformed)
    }

    /// Moves `value` (sealed for `context`) to the primary key when another key of the ring
    /// sealed it, and counts what it found. A value that does not open is left as it is.
    pub fn reseal(&self, context: &str, value: &mut String, nonce: [u8; NONCE_LEN], tally: &mut Resealed) {
        if value.split('.').nth(1) == Some(self.primary_id()) {
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

/// What a re-sealing pass found: values moved to the primary key, values already under it, and
/// values no key of the ring opens (sealed under a key no longer listed, or damaged).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

    #[test]
    fn seal_then_open_round_trips() {
        let r = ring(1);
        let sealed = r.seal("secret:github", b"ghp_token", [9; 12]);
        assert!(sealed.starts_with(&format!("v1.{}.", r.primary_id())));
        assert!(!sealed.contains("ghp_token"));
        assert_eq!(r.open("secret:github", &sealed).unwrap(), b"ghp_token");
        assert_eq!(r.open_string("secret:github", &sealed).unwrap(), "ghp_token");
    }

    #[test]
    fn other_context_key_or_tampering_fails() {
        let r = ring(1);
        let sealed = r.seal("secret:a", b"value", [1; 12]);
        assert_eq!(r.open("secret:b", &sealed), Err(SealError::Forged));
        let other = ring(2);
        assert!(matches!(other.open("secret:a", &sealed), Err(SealError::UnknownKey(_))));
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(r.open("secret:a", &String::from_utf8(bytes).unwrap()), Err(SealError::Forged));
        for bad in ["", "v1", "v1.x", "v2.abc.def", &format!("v1.{}.AAAA", r.primary_id())] {
            assert!(r.open("secret:a", bad).is_err(), "{bad}");
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
        let sealed_old = old.seal("secret:a", b"value", [1; 12]);
        let rotated = ring_of(&[2, 1]);
        assert_eq!(rotated.open("secret:a", &sealed_old).unwrap(), b"value");
        let sealed_new = rotated.seal("secret:a", b"value", [2; 12]);
        assert!(sealed_new.starts_with(&format!("v1.{}.", key_id(&[2; 32]))));
        assert!(matches!(old.open("secret:a", &sealed_new), Err(SealError::UnknownKey(_))));
    }

    #[test]
    fn reseal_moves_old_values_to_the_primary_key_and_counts() {
        let old = ring_of(&[1]);
        let rotated = ring_of(&[2, 1]);
        let new_only = ring_of(&[2]);
        let mut tally = Resealed::default();
        let mut value = old.seal("user:s:k", b"v1", [1; 12]);
        rotated.reseal("user:s:k", &mut value, [3; 12], &mut tally);
        assert_eq!(new_only.open("user:s:k", &value).unwrap(), b"v1");
        let before = value.clone();
        rotated.reseal("user:s:k", &mut value, [4; 12], &mut tally);
        assert_eq!(value, before, "a value under the primary key is left alone");
        let mut foreign = ring_of(&[9]).seal("user:s:k", b"x", [5; 12]);
        let mut wrong_context = old.seal("user:s:other", b"x", [6; 12]);
        let (f0, w0) = (foreign.clone(), wrong_context.clone());
        rotated.reseal("user:s:k", &mut foreign, [7; 12], &mut tally);
        rotated.reseal("user:s:k", &mut wrong_context, [8; 12], &mut tally);
        assert_eq!((foreign, wrong_context), (f0, w0), "what does not open is left as it is");
        assert_eq!(tally, Resealed { resealed: 1, current: 1, unreadable: 2 });
    }
}
