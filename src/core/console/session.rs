//! The operator console's session and its CSRF tokens. A session is a sealed cookie value
//! (`Context::ConsoleSession`) holding its expiry, a binding to the `ADMIN_TOKEN` it was signed
//! in with (so rotating the token ends every session) and a random id the CSRF tokens of its
//! forms derive from. Nothing is stored server-side: the keyring's authentication is the check.

use super::super::encoding::{b64url, ct_eq, hex};
use super::super::secret::Secret;
use sha2::{Digest, Sha256};

/// How long a console session lasts: 12 hours, then the token is pasted again.
pub const SESSION_MS: u64 = 12 * 3600 * 1000;
/// The session cookie's name (before any `__Host-` prefix).
pub const SESSION_COOKIE: &str = "mab_console";

/// What binds a session to the admin token: the first 16 hex digits of a labelled SHA-256 of
/// it. Only ever inside the sealed cookie, so not even this prefix is visible to the browser.
pub fn token_binding(admin_token: &Secret) -> String {
    let mut h = Sha256::new();
    h.update(b"mcp-authbridge console session\0");
    h.update(admin_token.expose().as_bytes());
    hex(&h.finalize()[..8])
}

/// A signed-in console session, as opened from its cookie.
#[derive(Clone)]
pub struct Session {
    pub expires_at: u64,
    /// Random, per sign-in; secret (it makes the CSRF tokens), so it never prints.
    id: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session {{ expires_at: {}, id: *** }}", self.expires_at)
    }
}

impl Session {
    /// A new session for the token `binding`, from `now`, with 32 random bytes as its id.
    pub fn new(now_ms: u64, random: &[u8; 32]) -> Session {
        Session { expires_at: now_ms + SESSION_MS, id: b64url(random) }
    }

    /// The plaintext sealed into the cookie: `expires_at.binding.id`.
    pub fn plaintext(&self, binding: &str) -> String {
        format!("{}.{binding}.{}", self.expires_at, self.id)
    }

    /// Reads an opened cookie: `None` when it is malformed, expired at `now`, or bound to
    /// another admin token than `binding` (the token was rotated since).
    pub fn open(plaintext: &str, binding: &str, now_ms: u64) -> Option<Session> {
        let mut parts = plaintext.splitn(3, '.');
        let expires_at: u64 = parts.next()?.parse().ok()?;
        let bound = parts.next()?;
        let id = parts.next()?;
        (ct_eq(bound.as_bytes(), binding.as_bytes()) && now_ms < expires_at && id.len() == 43)
            .then(|| Session { expires_at, id: id.to_string() })
    }

    /// The CSRF token every form of this session carries: derived from the session's secret id,
    /// so a page of another site can neither read nor make it.
    pub fn csrf(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"mcp-authbridge console csrf\0");
        h.update(self.id.as_bytes());
        b64url(&h.finalize())
    }

    /// Whether a submitted form's `csrf` value is this session's (constant time).
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|s| ct_eq(s.as_bytes(), self.csrf().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_until_it_expires_and_only_for_its_token() {
        let binding = token_binding(&Secret::new("adm_one"));
        let s = Session::new(1_000, &[7; 32]);
        assert_eq!(s.expires_at, 1_000 + 12 * 3600 * 1000);
        let text = s.plaintext(&binding);
        let opened = Session::open(&text, &binding, s.expires_at - 1).expect("live");
        assert_eq!(opened.csrf(), s.csrf());
        assert!(Session::open(&text, &binding, s.expires_at).is_none(), "expired at its time");
        let rotated = token_binding(&Secret::new("adm_two"));
        assert_ne!(rotated, binding);
        assert!(Session::open(&text, &rotated, 2_000).is_none(), "a rotated ADMIN_TOKEN ends it");
        for bad in ["", "x", "1.2", "abc.def.ghi", &format!("99999999999999.{binding}.short")] {
            assert!(Session::open(bad, &binding, 0).is_none(), "{bad}");
        }
        assert_eq!(binding.len(), 16);
        assert!(!format!("{s:?}").contains(&b64url(&[7; 32])), "the id never prints");
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let a = Session::new(0, &[1; 32]);
        let b = Session::new(0, &[2; 32]);
        assert!(a.csrf_ok(Some(&a.csrf())));
        assert!(!a.csrf_ok(Some(&b.csrf())));
        assert!(!a.csrf_ok(None));
        assert!(!a.csrf_ok(Some("")));
        assert!(!a.csrf().contains(&b64url(&[1; 32])), "the token does not reveal the id");
    }
}
