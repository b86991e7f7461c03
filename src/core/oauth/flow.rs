//! The authorization code flow around the redirect: the gateway's client identity (RFC 7591
//! registration, Client ID Metadata Document), the authorization request (PKCE S256, RFC 8707
//! `resource`), and the checks on the callback (single `state`, RFC 9207 `iss`).

use super::discovery::AuthServer;
use crate::core::encoding::hex;
use crate::core::secret::Secret;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fmt;
use url::Url;

pub const CLIENT_NAME: &str = "mcp-authbridge";

/// The gateway's redirect URI: one per deployment.
pub fn redirect_uri(public_origin: &str) -> String {
    format!("{public_origin}/oauth/callback")
}

/// The URL of the gateway's Client ID Metadata Document, which is also its `client_id` at
/// servers that accept one.
pub fn client_metadata_url(public_origin: &str) -> String {
    format!("{public_origin}/oauth/client-metadata.json")
}

/// The redirect URI of a dynamic registration at `issuer`: one path per authorization server,
/// so the callback knows which server answered even when it sends no `iss` (mix-up defence,
/// RFC 9207 §1; the path is checked against the pending authorization).
pub fn issuer_redirect_uri(public_origin: &str, issuer: &str) -> String {
    let tag = hex(&Sha256::digest(issuer.trim_end_matches('/').as_bytes())[..8]);
    format!("{public_origin}/oauth/callback/{tag}")
}

/// Whether a callback came back to the redirect URI its authorization was sent with.
pub fn arrived_at(redirect_uri: &str, callback: &Url) -> bool {
    Url::parse(redirect_uri).is_ok_and(|r| r.path() == callback.path())
}

/// An RFC 7591 registration request for the gateway: a public client using PKCE, coming back
/// to `redirect`.
pub fn registration_request(public_origin: &str, redirect: &str) -> Value {
    json!({
        "client_name": CLIENT_NAME,
        "client_uri": public_origin,
        "redirect_uris": [redirect],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

/// The gateway's Client ID Metadata Document: the same client metadata, with its own URL as
/// `client_id`.
pub fn client_metadata_document(public_origin: &str) -> Value {
    let mut doc = registration_request(public_origin, &redirect_uri(public_origin));
    doc["client_id"] = json!(client_metadata_url(public_origin));
    doc
}

/// What registration gave the gateway (RFC 7591 §3.2.1).
#[derive(Debug, Clone, Deserialize)]
pub struct Registered {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// Seconds since the epoch; 0 or absent: never (RFC 7591 §3.2.1).
    #[serde(default)]
    pub client_secret_expires_at: Option<u64>,
}

impl Registered {
    /// Whether the registration can still be used at `now_ms`: its secret has not expired
    /// (a minute of margin, so a code exchange started now does not meet the expiry).
    pub fn usable(&self, now_ms: u64) -> bool {
        match self.client_secret_expires_at {
            None | Some(0) => true,
            Some(at) => now_ms + 60_000 < at.saturating_mul(1000),
        }
    }
}

pub fn parse_registration(body: &[u8]) -> Option<Registered> {
    serde_json::from_slice::<Registered>(body).ok().filter(|r| !r.client_id.is_empty())
}

/// The scopes to ask for: the operator's, else what the resource says it supports.
pub fn scopes(configured: Option<&[String]>, resource_supported: &[String]) -> Vec<String> {
    configured.map(<[String]>::to_vec).unwrap_or_else(|| resource_supported.to_vec())
}

pub struct AuthorizationRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub code_challenge: &'a str,
    pub scopes: &'a [String],
    pub resource: Option<&'a str>,
}

/// The URL the user's browser is sent to (RFC 6749 §4.1.1 with RFC 7636 and RFC 8707).
pub fn authorization_url(
    server: &AuthServer,
    req: &AuthorizationRequest<'_>,
) -> Result<String, url::ParseError> {
    let mut url = Url::parse(&server.authorization_endpoint)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", req.client_id);
        q.append_pair("redirect_uri", req.redirect_uri);
        q.append_pair("state", req.state);
        q.append_pair("code_challenge", req.code_challenge);
        q.append_pair("code_challenge_method", "S256");
        if !req.scopes.is_empty() {
            q.append_pair("scope", &req.scopes.join(" "));
        }
        if let Some(r) = req.resource {
            q.append_pair("resource", r);
        }
    }
    Ok(url.into())
}

/// What came back on the redirect URI. `Debug` hides the code and the state.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("Callback")
            .field("code", &hidden(&self.code))
            .field("state", &hidden(&self.state))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish()
    }
}

impl Callback {
    pub fn from_query(url: &Url) -> Callback {
        let mut cb = Callback::default();
        for (k, v) in url.query_pairs() {
            let slot = match k.as_ref() {
                "code" => &mut cb.code,
                "state" => &mut cb.state,
                "iss" => &mut cb.iss,
                "error" => &mut cb.error,
                _ => continue,
            };
            // A repeated parameter is a forged or broken response (RFC 6749 §3.1).
            *slot = if slot.is_some() { Some(String::new()) } else { Some(v.into_owned()) };
        }
        cb
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackError {
    /// The user (or the server) refused: `error=access_denied` and the like.
    Denied(String),
    MissingCode,
    /// RFC 9207: `iss` is not the issuer the request went to (a mix-up attack).
    WrongIssuer,
    /// RFC 9207: the server promised `iss` and the response has none.
    MissingIssuer,
}

impl fmt::Display for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallbackError::Denied(e) => write!(f, "the authorization server answered {e}"),
            CallbackError::MissingCode => f.write_str("the response carries no authorization code"),
            CallbackError::WrongIssuer => f.write_str("the response names another issuer"),
            CallbackError::MissingIssuer => {
                f.write_str("the response lacks the iss parameter its server promised")
            }
        }
    }
}

/// Checks a callback for the pending request to `server`; returns the code.
pub fn check_callback(cb: &Callback, server: &AuthServer) -> Result<String, CallbackError> {
    match &cb.iss {
        Some(iss) if iss != &server.issuer => return Err(CallbackError::WrongIssuer),
        None if server.iss_parameter_supported => return Err(CallbackError::MissingIssuer),
        _ => {}
    }
    if let Some(error) = &cb.error {
        return Err(CallbackError::Denied(error.clone()));
    }
    cb.code.clone().filter(|c| !c.is_empty()).ok_or(CallbackError::MissingCode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(iss_supported: bool) -> AuthServer {
        AuthServer {
            issuer: "https://auth.example".into(),
            authorization_endpoint: "https://auth.example/authorize?tenant=a".into(),
            token_endpoint: "https://auth.example/token".into(),
            registration_endpoint: None,
            revocation_endpoint: None,
            token_endpoint_auth_methods_supported: vec![],
            scopes_supported: vec![],
            iss_parameter_supported: iss_supported,
            client_id_metadata_document_supported: false,
        }
    }

    #[test]
    fn the_authorization_url_carries_pkce_state_and_resource() {
        let scopes = vec!["tickets:read".to_string(), "offline".to_string()];
        let url = authorization_url(
            &server(true),
            &AuthorizationRequest {
                client_id: "cid",
                redirect_uri: "https://gw.example/oauth/callback",
                state: "mabs_x",
                code_challenge: "ch",
                scopes: &scopes,
                resource: Some("https://mcp.example/mcp"),
            },
        )
        .unwrap();
        assert_eq!(
            url,
            "https://auth.example/authorize?tenant=a&response_type=code&client_id=cid&redirect_uri=https%3A%2F%2Fgw.example%2Foauth%2Fcallback&state=mabs_x&code_challenge=ch&code_challenge_method=S256&scope=tickets%3Aread+offline&resource=https%3A%2F%2Fmcp.example%2Fmcp"
        );
    }

    fn cb(q: &str) -> Callback {
        Callback::from_query(&Url::parse(&format!("https://gw.example/oauth/callback?{q}")).unwrap())
    }

    #[test]
    fn callbacks_are_checked() {
        assert_eq!(
            check_callback(&cb("code=c&state=s&iss=https%3A%2F%2Fauth.example"), &server(true)),
            Ok("c".into())
        );
        assert_eq!(check_callback(&cb("code=c&state=s"), &server(false)), Ok("c".into()));
        assert_eq!(check_callback(&cb("code=c&state=s"), &server(true)), Err(CallbackError::MissingIssuer));
        assert_eq!(
            check_callback(&cb("code=c&state=s&iss=https%3A%2F%2Fevil.example"), &server(false)),
            Err(CallbackError::WrongIssuer)
        );
        assert_eq!(
            check_callback(&cb("error=access_denied&state=s&iss=https%3A%2F%2Fauth.example"), &server(true)),
            Err(CallbackError::Denied("access_denied".into()))
        );
        assert_eq!(check_callback(&cb("state=s"), &server(false)), Err(CallbackError::MissingCode));
        assert_eq!(
            check_callback(&cb("code=a&code=b&state=s"), &server(false)),
            Err(CallbackError::MissingCode)
        );
    }

    #[test]
    fn each_issuer_has_its_own_redirect_path() {
        let a = issuer_redirect_uri("https://gw.example", "https://as-a.example");
        let b = issuer_redirect_uri("https://gw.example", "https://as-b.example");
        assert_ne!(a, b);
        assert_eq!(a, issuer_redirect_uri("https://gw.example", "https://as-a.example/"));
        assert!(
            a.starts_with("https://gw.example/oauth/callback/")
                && a.len() == "https://gw.example/oauth/callback/".len() + 16
        );
        let back = |u: &str| Url::parse(u).unwrap();
        assert!(arrived_at(&a, &back(&format!("{a}?code=c&state=s"))));
        assert!(!arrived_at(&a, &back(&format!("{b}?code=c&state=s"))), "another server's path");
        assert!(!arrived_at(&a, &back("https://gw.example/oauth/callback?code=c")));
        assert!(arrived_at(
            "https://gw.example/oauth/callback",
            &back("https://gw.example/oauth/callback?code=c")
        ));
    }

    #[test]
    fn client_identity_documents() {
        let doc = client_metadata_document("https://gw.example");
        assert_eq!(doc["client_id"], "https://gw.example/oauth/client-metadata.json");
        assert_eq!(doc["redirect_uris"][0], "https://gw.example/oauth/callback");
        assert_eq!(
            registration_request("https://gw.example", "https://gw.example/oauth/callback/x")
                ["redirect_uris"][0],
            "https://gw.example/oauth/callback/x"
        );
        let expiring =
            parse_registration(br#"{"client_id":"a","client_secret":"s","client_secret_expires_at":1000}"#)
                .unwrap();
        assert!(expiring.usable(900_000) && !expiring.usable(940_001));
        assert!(parse_registration(br#"{"client_id":"a","client_secret_expires_at":0}"#)
            .unwrap()
            .usable(u64::MAX / 2));
        let reg = parse_registration(
            br#"{"client_id":"abc","client_secret":"s","token_endpoint_auth_method":"client_secret_basic"}"#,
        )
        .unwrap();
        assert_eq!(reg.client_secret.as_ref().map(Secret::expose), Some("s"));
        assert!(parse_registration(br#"{"client_id":""}"#).is_none());
        assert_eq!(scopes(None, &["a".into()]), ["a"]);
        assert_eq!(scopes(Some(&["b".into()]), &["a".into()]), ["b"]);
    }
}
