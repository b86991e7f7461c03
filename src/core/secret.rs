//! `Secret`: the one way a secret travels through the code (the admin token, encryption keys,
//! client secrets, OAuth tokens, values a user typed). It prints as `***`, has no `PartialEq`
//! (compare with [`Secret::ct_eq`], in constant time), and shows its value only through
//! [`Secret::expose`], so every place that needs the plain text says so.

use super::encoding::ct_eq;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The plain text, for the one place that must send, seal or render it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with a presented value in constant time: digests first, so not even the
    /// length of the secret shows in the timing.
    pub fn ct_eq(&self, presented: &str) -> bool {
        ct_eq(&Sha256::digest(self.0.as_bytes()), &Sha256::digest(presented.as_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "sk-live-123");
        assert!(s.ct_eq("sk-live-123"));
        assert!(!s.ct_eq("sk-live-12"));
        let parsed: Secret = serde_json::from_str("\"t\"").unwrap();
        assert_eq!(parsed.expose(), "t");
    }
}
