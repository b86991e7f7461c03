//! A connection's OAuth grant as the subject's store keeps it: the tokens, sealed, and the
//! client they were obtained with, so the store can refresh and revoke on its own.

use super::token::{AuthMethod, ClientAuth, Tokens};
use crate::core::seal::{ConnectionValue, Context, Keyring, SealError, Sealed, NONCE_LEN};
use crate::core::secret::Secret;
use crate::core::upstream::OAuthSettings;
use serde::{Deserialize, Serialize};

/// An access token lives at most this long in the gateway's eyes: a silly `expires_in` must not
/// overflow into the past.
const MAX_LIFETIME_S: u64 = 365 * 24 * 3600;

/// The gateway's client registration at an authorization server, as a connection keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClient {
    pub issuer: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    pub client_id: String,
    /// Sealed, context `Connection { value: ClientSecret }`.
    #[serde(default)]
    pub client_secret: Option<Sealed>,
    pub method: AuthMethod,
    /// RFC 8707 resource sent with every token request, when the upstream wants it.
    #[serde(default)]
    pub resource: Option<String>,
    /// The operator's client (the upstream's `oauth.client_id`): refreshes use the upstream's
    /// current settings, not this copy, so a rotated secret applies at once.
    #[serde(default)]
    pub operator: bool,
}

impl OAuthClient {
    /// This client's credentials for `subject` × `upstream`, its secret opened.
    pub fn auth(&self, keyring: &Keyring, subject: &str, upstream: &str) -> Result<ClientAuth, SealError> {
        let context = Context::Connection { subject, upstream, value: ConnectionValue::ClientSecret };
        let client_secret =
            self.client_secret.as_ref().map(|s| keyring.open_secret(&context, s)).transpose()?;
        Ok(ClientAuth { client_id: self.client_id.clone(), client_secret, method: self.method })
    }
}

/// The operator's client as the upstream is configured now; `None` when it has no client id
/// any more.
pub fn operator_client(
    settings: &OAuthSettings,
    secret: Option<Secret>,
    method: AuthMethod,
) -> Option<ClientAuth> {
    let client_id = settings.client_id.clone()?;
    let method = settings.token_endpoint_auth_method.unwrap_or(method);
    Some(ClientAuth { client_id, client_secret: secret, method })
}

/// A connection's OAuth tokens, sealed under `Connection { value: AccessToken / RefreshToken }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthGrant {
    pub access_token: Sealed,
    #[serde(default)]
    pub refresh_token: Option<Sealed>,
    pub issued_at: u64,
    #[serde(default)]
    pub expires_at: Option<u64>,
    pub client: OAuthClient,
}

/// Seals a token response into a grant for `subject` × `upstream`, issued at `now_ms`; a
/// response without a new refresh token keeps `previous_refresh` (servers that do not rotate).
pub fn seal_grant(
    keyring: &Keyring,
    (subject, upstream): (&str, &str),
    tokens: &Tokens,
    previous_refresh: Option<Sealed>,
    client: OAuthClient,
    now_ms: u64,
    mut nonce: impl FnMut() -> [u8; NONCE_LEN],
) -> OAuthGrant {
    let mut seal = |value: ConnectionValue, text: &str| {
        keyring.seal(&Context::Connection { subject, upstream, value }, text.as_bytes(), nonce())
    };
    OAuthGrant {
        access_token: seal(ConnectionValue::AccessToken, tokens.access_token.expose()),
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|rt| seal(ConnectionValue::RefreshToken, rt.expose()))
            .or(previous_refresh),
        issued_at: now_ms,
        expires_at: tokens.expires_in.map(|s| now_ms + s.min(MAX_LIFETIME_S) * 1000),
        client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::oauth::token::{parse_token_response, TokenOutcome};

    fn client(secret: Option<Sealed>) -> OAuthClient {
        OAuthClient {
            issuer: "https://as.example".into(),
            token_endpoint: "https://as.example/token".into(),
            revocation_endpoint: None,
            client_id: "c".into(),
            client_secret: secret,
            method: AuthMethod::ClientSecretBasic,
            resource: None,
            operator: false,
        }
    }

    fn issued(body: &str) -> Tokens {
        match parse_token_response(200, "application/json", body.as_bytes()) {
            TokenOutcome::Issued(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_grant_is_sealed_for_its_subject_and_upstream() {
        let ring = Keyring::new([7; 32]);
        let tokens = issued(r#"{"access_token":"at-1","refresh_token":"rt-1","expires_in":60}"#);
        let grant = seal_grant(&ring, ("alice", "gh"), &tokens, None, client(None), 1_000, || [1; 12]);
        let at =
            Context::Connection { subject: "alice", upstream: "gh", value: ConnectionValue::AccessToken };
        assert_eq!(ring.open_secret(&at, &grant.access_token).unwrap().expose(), "at-1");
        let bob = Context::Connection { subject: "bob", upstream: "gh", value: ConnectionValue::AccessToken };
        assert!(ring.open(&bob, &grant.access_token).is_err());
        assert_eq!((grant.issued_at, grant.expires_at), (1_000, Some(61_000)));

        // A server that does not rotate keeps the refresh token the grant had.
        let again = issued(r#"{"access_token":"at-2","expires_in":99999999999999}"#);
        let next = seal_grant(
            &ring,
            ("alice", "gh"),
            &again,
            grant.refresh_token.clone(),
            client(None),
            2_000,
            || [2; 12],
        );
        assert_eq!(next.refresh_token, grant.refresh_token);
        assert_eq!(next.expires_at, Some(2_000 + MAX_LIFETIME_S * 1000));
    }

    #[test]
    fn the_client_secret_opens_only_where_it_was_sealed() {
        let ring = Keyring::new([7; 32]);
        let context =
            Context::Connection { subject: "alice", upstream: "gh", value: ConnectionValue::ClientSecret };
        let c = client(Some(ring.seal(&context, b"cs", [3; 12])));
        let auth = c.auth(&ring, "alice", "gh").unwrap();
        assert_eq!(auth.client_secret.as_ref().map(Secret::expose), Some("cs"));
        assert!(c.auth(&ring, "bob", "gh").is_err());
        assert!(client(None).auth(&ring, "bob", "gh").unwrap().client_secret.is_none());
    }
}
