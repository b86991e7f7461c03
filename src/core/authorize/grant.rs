//! The token endpoint's rules for what the gateway issues to MCP clients: authorization codes
//! (single use, at most 10 minutes, bound to client, redirect URI, PKCE challenge and resource; a
//! second use revokes what the first issued, RFC 6749 §4.1.2), refresh tokens (rotated on every
//! use; the previous one works once more within 60 s for a client that lost the answer; any
//! later reuse revokes the grant, OAuth 2.1 §4.3.1) and access tokens (bound to one upstream,
//! 1 hour). Every token is stored only as its hash. Also what ends a grant from outside the token
//! endpoint (RFC 7009 revocation by its client) and how the admin API shows one.

use super::request::pkce_matches;
use crate::core::encoding::rfc3339;
use crate::core::ids::{SubjectId, UpstreamId};
use crate::core::keys::KeyHash;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long a code may wait to be redeemed.
pub const CODE_MS: u64 = 10 * 60 * 1000;
/// The default lifetime of an access token.
pub const ACCESS_TOKEN_S: u64 = 3600;
/// How long a rotated refresh token still works, once, for a client that lost the answer.
pub const RETRY_WINDOW_MS: u64 = 60_000;

/// A code as its subject's store keeps it (under the code's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    pub client_id: KeyHash,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub upstream: UpstreamId,
    pub subject: SubjectId,
    pub expires_at: u64,
    /// Set when redeemed: the grant it made, so a replay can revoke it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed_for: Option<String>,
}

/// What a code will be bound to, kept while the person connects the upstream (a form, or the
/// upstream's own OAuth in between): the client, where it is sent back, and its PKCE challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReturn {
    pub client_id: KeyHash,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
}

impl ClientReturn {
    /// Where the person goes back to the client, with `params` and the client's `state` and
    /// `iss` (`request::back_to_client`); `None` when the redirect URI no longer parses.
    pub fn location(&self, params: &[(&str, &str)], issuer: &str) -> Option<String> {
        let mut all = params.to_vec();
        all.extend(self.state.as_deref().map(|s| ("state", s)));
        super::request::back_to_client(&self.redirect_uri, &all, issuer)
    }

    /// The code for `subject`'s connection to `upstream`, issued at `now_ms`.
    pub fn code(&self, upstream: &UpstreamId, subject: &SubjectId, now_ms: u64) -> CodeRecord {
        CodeRecord {
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            code_challenge: self.code_challenge.clone(),
            upstream: upstream.clone(),
            subject: subject.clone(),
            expires_at: now_ms + CODE_MS,
            redeemed_for: None,
        }
    }
}

/// A code presented at the token endpoint.
pub struct Redemption<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
    pub now_ms: u64,
}

/// What a presented code comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// Issue a grant for it.
    Issue,
    /// Used before: revoke the grant it made (`grant id`) and refuse (`invalid_grant`).
    Replayed(String),
    /// Expired, or not for this client, redirect URI or verifier: `invalid_grant`.
    Refused(&'static str),
}

pub fn redeem(code: &CodeRecord, presented: &Redemption<'_>) -> CodeUse {
    if let Some(grant) = &code.redeemed_for {
        return CodeUse::Replayed(grant.clone());
    }
    if presented.now_ms >= code.expires_at {
        return CodeUse::Refused("the code has expired");
    }
    if !code.client_id.matches(presented.client_id) {
        return CodeUse::Refused("the code was issued to another client");
    }
    if code.redirect_uri != presented.redirect_uri {
        return CodeUse::Refused("redirect_uri differs from the authorization request's");
    }
    if !pkce_matches(presented.code_verifier, &code.code_challenge) {
        return CodeUse::Refused("code_verifier does not match the code_challenge");
    }
    CodeUse::Issue
}

/// A grant the gateway issued, as its subject's store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedGrant {
    /// `<store id>-<16 hex>` (`keys::key_id`), so the admin API finds its store by the id alone;
    /// grants issued before were 16 hex digits only.
    pub id: String,
    /// The hash of the client id: what every check compares (in constant time).
    pub client_id: KeyHash,
    /// The client id itself (public, RFC 6749 §2.2), for the admin list; `None` in grants issued
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub client_name: String,
    pub upstream: UpstreamId,
    pub refresh: KeyHash,
    /// The refresh token this one replaced: it works once more within the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Replaced>,
    pub access: KeyHash,
    pub access_expires_at: u64,
    pub created_at: u64,
    /// When its code was redeemed or its refresh token last rotated (not every use of its access
    /// token: that would be a write per MCP request). `None` in grants issued before redemption
    /// set it and never refreshed since: then it is `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<u64>,
}

impl IssuedGrant {
    /// Every token the grant still answers to, as the token index holds them: its refresh and
    /// access tokens, and the refresh token it replaced (retry window, reuse detection).
    pub fn tokens(&self) -> Vec<KeyHash> {
        let mut tokens = vec![self.refresh.clone(), self.access.clone()];
        tokens.extend(self.previous.as_ref().map(|p| p.hash.clone()));
        tokens
    }

    /// What the admin API lists (`GET /admin/v1/grants`): never a token hash.
    /// `access_expires_at` only while the current access token is live.
    pub fn public_view(&self, now_ms: u64) -> Value {
        let mut view = json!({
            "id": self.id,
            "client_name": self.client_name,
            "client_id": self.client,
            "upstream": self.upstream,
            "created_at": rfc3339(self.created_at),
            "last_used": rfc3339(self.last_used.unwrap_or(self.created_at)),
        });
        if now_ms < self.access_expires_at {
            view["access_expires_at"] = json!(rfc3339(self.access_expires_at));
        }
        view
    }
}

/// A refresh token that was rotated away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    pub hash: KeyHash,
    pub at: u64,
    /// Its one retry was used: any further presentation is a reuse.
    pub retried: bool,
}

/// What a presented refresh token comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshUse {
    /// The current one: rotate (new refresh and access tokens, this one becomes `previous`).
    Rotate,
    /// The one just replaced, within the window, presented for the first time since: rotate
    /// again from it (the client lost the answer). The window then closes.
    Retry,
    /// A replaced one presented again, or after the window: someone holds a copy. Revoke the grant.
    Reuse,
    /// Not this grant's, or not this client's.
    Unknown,
}

pub fn present_refresh(grant: &IssuedGrant, presented: &KeyHash, client_id: &str, now_ms: u64) -> RefreshUse {
    if !grant.client_id.matches(client_id) {
        return RefreshUse::Unknown;
    }
    if &grant.refresh == presented {
        return RefreshUse::Rotate;
    }
    match &grant.previous {
        Some(r) if &r.hash == presented && !r.retried && now_ms < r.at + RETRY_WINDOW_MS => RefreshUse::Retry,
        Some(r) if &r.hash == presented => RefreshUse::Reuse,
        _ => RefreshUse::Unknown,
    }
}

/// The grant after a rotation at `now_ms` to `refresh`/`access`. A retry rotates from the
/// previous token and marks it retried: presented once more, it is a reuse.
pub fn rotated(
    grant: &IssuedGrant,
    used: RefreshUse,
    refresh: KeyHash,
    access: KeyHash,
    now_ms: u64,
) -> IssuedGrant {
    let previous = match (used, &grant.previous) {
        (RefreshUse::Retry, Some(r)) => Some(Replaced { retried: true, ..r.clone() }),
        _ => Some(Replaced { hash: grant.refresh.clone(), at: now_ms, retried: false }),
    };
    IssuedGrant {
        refresh,
        previous,
        access,
        access_expires_at: now_ms + ACCESS_TOKEN_S * 1000,
        last_used: Some(now_ms),
        ..grant.clone()
    }
}

/// Whether an access token presented on `/mcp/{upstream}` is usable there at `now_ms`: the
/// grant's current one, unexpired, for this upstream (a token for A is refused on B).
pub fn access_allowed(grant: &IssuedGrant, presented: &KeyHash, upstream: &str, now_ms: u64) -> bool {
    &grant.access == presented && now_ms < grant.access_expires_at && grant.upstream.as_str() == upstream
}

/// Whether a revocation request (RFC 7009 §2.1) from the authenticated client `client_id`, for
/// the token whose hash is `presented`, ends `grant`. Any of the grant's tokens ends all of it:
/// a refresh token because revoking one SHOULD also end the grant's access tokens (§2.1), the
/// access token because the server MAY end the grant with it, and a client that revokes either is
/// signing out (§1) — ending only the access token would leave it a refresh token it asked to be
/// rid of, and a grant with no access token. Another client's token changes nothing and is
/// answered like an unknown one (§2.2: 200): the token endpoint tells another client nothing
/// about a refresh token either (`present_refresh`), so revocation must not become a way to learn
/// whether someone's token is live. (§2.1 says such a request is refused with an error: bent on
/// purpose, for that reason.)
pub fn revokes(grant: &IssuedGrant, presented: &KeyHash, client_id: &str) -> bool {
    grant.client_id.matches(client_id) && grant.tokens().contains(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn code() -> CodeRecord {
        CodeRecord {
            client_id: KeyHash::of("mabc_client"),
            redirect_uri: "http://127.0.0.1:9/cb".into(),
            code_challenge: CHALLENGE.into(),
            upstream: UpstreamId::parse("tickets").unwrap(),
            subject: SubjectId::parse("alice").unwrap(),
            expires_at: 1_000,
            redeemed_for: None,
        }
    }

    fn at<'a>(
        client_id: &'a str,
        redirect_uri: &'a str,
        code_verifier: &'a str,
        now_ms: u64,
    ) -> Redemption<'a> {
        Redemption { client_id, redirect_uri, code_verifier, now_ms }
    }

    #[test]
    fn codes_are_single_use_and_bound() {
        let c = code();
        assert_eq!(redeem(&c, &at("mabc_client", "http://127.0.0.1:9/cb", VERIFIER, 999)), CodeUse::Issue);
        assert!(matches!(
            redeem(&c, &at("mabc_client", "http://127.0.0.1:9/cb", VERIFIER, 1_000)),
            CodeUse::Refused(_)
        ));
        assert!(matches!(
            redeem(&c, &at("mabc_other", "http://127.0.0.1:9/cb", VERIFIER, 5)),
            CodeUse::Refused(_)
        ));
        assert!(matches!(
            redeem(&c, &at("mabc_client", "http://127.0.0.1:10/cb", VERIFIER, 5)),
            CodeUse::Refused(_)
        ));
        assert!(matches!(
            redeem(&c, &at("mabc_client", "http://127.0.0.1:9/cb", &VERIFIER.replace('d', "e"), 5)),
            CodeUse::Refused(_)
        ));
        let used = CodeRecord { redeemed_for: Some("g1".into()), ..c };
        assert_eq!(
            redeem(&used, &at("mabc_client", "http://127.0.0.1:9/cb", VERIFIER, 5)),
            CodeUse::Replayed("g1".into())
        );
    }

    fn grant() -> IssuedGrant {
        IssuedGrant {
            id: "g1".into(),
            client_id: KeyHash::of("mabc_client"),
            client: Some("mabc_client".into()),
            client_name: "App".into(),
            upstream: UpstreamId::parse("tickets").unwrap(),
            refresh: KeyHash::of("r1"),
            previous: None,
            access: KeyHash::of("a1"),
            access_expires_at: 3_600_000,
            created_at: 0,
            last_used: None,
        }
    }

    #[test]
    fn refresh_rotation_with_one_retry() {
        let g = grant();
        assert_eq!(present_refresh(&g, &KeyHash::of("r1"), "mabc_client", 10), RefreshUse::Rotate);
        assert_eq!(present_refresh(&g, &KeyHash::of("r1"), "mabc_other", 10), RefreshUse::Unknown);
        assert_eq!(present_refresh(&g, &KeyHash::of("zz"), "mabc_client", 10), RefreshUse::Unknown);
        let g2 = rotated(&g, RefreshUse::Rotate, KeyHash::of("r2"), KeyHash::of("a2"), 100);
        assert_eq!(g2.previous, Some(Replaced { hash: KeyHash::of("r1"), at: 100, retried: false }));
        assert_eq!(g2.access_expires_at, 100 + ACCESS_TOKEN_S * 1000);
        assert_eq!(present_refresh(&g2, &KeyHash::of("r2"), "mabc_client", 200), RefreshUse::Rotate);
        assert_eq!(
            present_refresh(&g2, &KeyHash::of("r1"), "mabc_client", 100 + RETRY_WINDOW_MS - 1),
            RefreshUse::Retry
        );
        assert_eq!(
            present_refresh(&g2, &KeyHash::of("r1"), "mabc_client", 100 + RETRY_WINDOW_MS),
            RefreshUse::Reuse
        );
        // After the one retry, the old token is a reuse however soon.
        let g3 = rotated(&g2, RefreshUse::Retry, KeyHash::of("r3"), KeyHash::of("a3"), 150);
        assert_eq!(present_refresh(&g3, &KeyHash::of("r1"), "mabc_client", 151), RefreshUse::Reuse);
        assert_eq!(present_refresh(&g3, &KeyHash::of("r3"), "mabc_client", 151), RefreshUse::Rotate);
        assert_eq!(present_refresh(&g3, &KeyHash::of("r2"), "mabc_client", 151), RefreshUse::Unknown);
    }

    #[test]
    fn access_tokens_are_for_one_upstream_until_they_expire() {
        let g = grant();
        assert!(access_allowed(&g, &KeyHash::of("a1"), "tickets", 5));
        assert!(!access_allowed(&g, &KeyHash::of("a1"), "other", 5), "a token for A is refused on B");
        assert!(!access_allowed(&g, &KeyHash::of("a1"), "tickets", 3_600_000));
        assert!(!access_allowed(&g, &KeyHash::of("a2"), "tickets", 5));
    }

    #[test]
    fn revocation_ends_the_grant_for_its_own_client_only() {
        let g = rotated(&grant(), RefreshUse::Rotate, KeyHash::of("r2"), KeyHash::of("a2"), 100);
        for token in ["r2", "a2", "r1"] {
            assert!(revokes(&g, &KeyHash::of(token), "mabc_client"), "{token} is the grant's");
            assert!(!revokes(&g, &KeyHash::of(token), "mabc_other"), "{token}: another client's request");
        }
        assert!(!revokes(&g, &KeyHash::of("a1"), "mabc_client"), "a replaced access token is gone");
        assert!(!revokes(&g, &KeyHash::of("zz"), "mabc_client"));
        assert_eq!(g.tokens(), vec![KeyHash::of("r2"), KeyHash::of("a2"), KeyHash::of("r1")]);
    }

    #[test]
    fn the_admin_view_shows_no_token_and_the_access_expiry_while_live() {
        let g = grant();
        let view = g.public_view(5);
        assert_eq!(view["client_id"], "mabc_client");
        assert_eq!(view["client_name"], "App");
        assert_eq!(view["upstream"], "tickets");
        assert_eq!(view["created_at"], "1970-01-01T00:00:00Z");
        assert_eq!(view["last_used"], "1970-01-01T00:00:00Z", "never refreshed: its creation");
        assert_eq!(view["access_expires_at"], "1970-01-01T01:00:00Z");
        let text = view.to_string();
        for hash in g.tokens().iter().chain([&g.client_id]) {
            assert!(!text.contains(hash.as_str()), "no hash in the view");
        }
        assert!(g.public_view(3_600_000).get("access_expires_at").is_none(), "expired: not shown");
        let refreshed = rotated(&g, RefreshUse::Rotate, KeyHash::of("r2"), KeyHash::of("a2"), 7_000);
        assert_eq!(refreshed.public_view(7_000)["last_used"], "1970-01-01T00:00:07Z");
        let old: IssuedGrant = serde_json::from_value(json!({
            "id": "0123456789abcdef", "client_id": KeyHash::of("c"), "client_name": "Old",
            "upstream": "tickets", "refresh": KeyHash::of("r"), "access": KeyHash::of("a"),
            "access_expires_at": 0, "created_at": 0
        }))
        .unwrap();
        assert_eq!(old.public_view(1)["client_id"], Value::Null, "kept before the id was");
    }
}
