//! PKCE with S256 only (RFC 7636 §4). A verifier is 32 random bytes in base64url (43 chars).

use crate::core::encoding::b64url;
use crate::core::secret::Secret;
use sha2::{Digest, Sha256};

/// A code verifier. Not `Clone`: it leaves the gateway once, sealed into the pending
/// authorization when the user is sent off, and once more, consumed by the code exchange.
pub struct Verifier(Secret);

impl Verifier {
    pub fn generate(random: &[u8; 32]) -> Verifier {
        Verifier(Secret::new(b64url(random)))
    }

    /// The verifier of a pending authorization, as opened from storage.
    pub fn opened(secret: Secret) -> Verifier {
        Verifier(secret)
    }

    /// `BASE64URL(SHA256(ASCII(code_verifier)))` (RFC 7636 §4.2).
    pub fn challenge(&self) -> String {
        challenge(self.0.expose())
    }

    /// Gives the verifier up to be sealed (it is then gone from this request).
    pub fn into_secret(self) -> Secret {
        self.0
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose()
    }
}

fn challenge(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = Verifier::generate(&[1; 32]);
        assert_eq!(v.expose().len(), 43);
        assert!(v.expose().bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let opened = Verifier::opened(Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert_eq!(opened.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
