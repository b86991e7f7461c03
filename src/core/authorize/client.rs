//! The clients of the gateway's authorization server: RFC 7591 registration (the registration
//! travels inside the client id, sealed, so it is usable at once at every location: no
//! eventually consistent read between register and authorize), Client ID Metadata Documents
//! (an https `client_id` whose document must name itself), and redirect URI matching (exact;
//! any port on a loopback host, RFC 8252 §7.3).

use crate::core::keys::KeyHash;
use crate::core::oauth::token::AuthMethod;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use url::{Host, Url};

/// A registered client id starts so; what follows is the sealed `Registration`.
pub const CLIENT_ID_PREFIX: &str = "mabc_";
/// Redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest client name kept (it is shown on the consent page, escaped).
pub const MAX_CLIENT_NAME: usize = 100;
/// Largest registration request or metadata document read.
pub const MAX_REGISTRATION_BYTES: usize = 16 * 1024;

/// What a client registered, as it travels sealed in its client id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub redirect_uris: Vec<String>,
    pub client_name: String,
    pub auth_method: AuthMethod,
    /// For a confidential client: the SHA-256 of its secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<KeyHash>,
    pub issued_at: u64,
}

/// Why a registration (or metadata document) is refused: an RFC 7591 §3.2.2 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationError {
    /// `invalid_redirect_uri` or `invalid_client_metadata`.
    pub error: &'static str,
    pub description: String,
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

fn metadata_error(description: impl Into<String>) -> RegistrationError {
    RegistrationError { error: "invalid_client_metadata", description: description.into() }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A redirect URI the gateway sends codes to: https, or http on a loopback host (a native app,
/// RFC 8252 §7.3), absolute, without a fragment or user info.
pub fn acceptable_redirect_uri(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else { return false };
    let scheme_ok = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => is_loopback(&url),
        _ => false,
    };
    scheme_ok && url.fragment().is_none() && url.username().is_empty() && url.password().is_none()
}

/// Whether `presented` is one of the client's redirect URIs: exactly, or, for a loopback
/// registration, the same URI on any port (RFC 8252 §7.3: the port is chosen at run time).
pub fn redirect_matches(registered: &[String], presented: &str) -> bool {
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    let Ok(p) = Url::parse(presented) else { return false };
    if p.scheme() != "http" || !is_loopback(&p) {
        return false;
    }
    registered
        .iter()
        .filter_map(|r| Url::parse(r).ok())
        .any(|mut r| is_loopback(&r) && r.set_port(p.port()).is_ok() && r.as_str() == p.as_str())
}

fn client_name(value: Option<&Value>) -> String {
    let name = value.and_then(Value::as_str).unwrap_or("").trim();
    let clean: String =
        name.chars().filter(|c| !c.is_control()).take(MAX_CLIENT_NAME).collect::<String>().trim().to_string();
    if clean.is_empty() {
        "an unnamed application".into()
    } else {
        clean
    }
}

fn redirect_uris(body: &Value) -> Result<Vec<String>, RegistrationError> {
    let invalid = |d: &str| RegistrationError { error: "invalid_redirect_uri", description: d.into() };
    let list = body
        .get("redirect_uris")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("redirect_uris is required"))?;
    if list.is_empty() || list.len() > MAX_REDIRECT_URIS {
        return Err(invalid("give 1 to 10 redirect_uris"));
    }
    list.iter()
        .map(|u| match u.as_str() {
            Some(u) if acceptable_redirect_uri(u) => Ok(u.to_string()),
            _ => Err(invalid(
                "each redirect URI must be https, or http on a loopback host, without a fragment",
            )),
        })
        .collect()
}

fn grant_types_ok(body: &Value) -> bool {
    match body.get("grant_types") {
        None | Some(Value::Null) => true,
        Some(Value::Array(list)) => {
            list.iter().all(|g| matches!(g.as_str(), Some("authorization_code" | "refresh_token")))
        }
        Some(_) => false,
    }
}

/// Validates an RFC 7591 registration request made at `now_ms`. A confidential client
/// (`client_secret_post` / `client_secret_basic`) gets `secret_hash` of the secret the caller
/// generated; a public one (`none`, the default for MCP clients) none.
pub fn register(body: &Value, now_ms: u64, secret: Option<&str>) -> Result<Registration, RegistrationError> {
    if !body.is_object() {
        return Err(metadata_error("the registration must be a JSON object"));
    }
    let redirect_uris = redirect_uris(body)?;
    if !grant_types_ok(body) {
        return Err(metadata_error("grant_types may hold only authorization_code and refresh_token"));
    }
    if body.get("response_types").and_then(Value::as_array).is_some_and(|r| r.iter().any(|t| t != "code")) {
        return Err(metadata_error("response_types may hold only code"));
    }
    let auth_method = match body.get("token_endpoint_auth_method").and_then(Value::as_str) {
        None => AuthMethod::None,
        Some(m) => AuthMethod::parse(m).ok_or_else(|| {
            metadata_error(
                "token_endpoint_auth_method must be none, client_secret_post or client_secret_basic",
            )
        })?,
    };
    let secret_hash = match (auth_method, secret) {
        (AuthMethod::None, _) => None,
        (_, Some(s)) => Some(KeyHash::of(s)),
        (_, None) => return Err(metadata_error("a confidential client needs a secret")),
    };
    Ok(Registration {
        redirect_uris,
        client_name: client_name(body.get("client_name")),
        auth_method,
        secret_hash,
        issued_at: now_ms,
    })
}

/// A Client ID Metadata Document fetched from `client_id` (an https URL): it must name that URL
/// as its `client_id`, and is a public client.
pub fn metadata_document(
    body: &[u8],
    client_id: &str,
    now_ms: u64,
) -> Result<Registration, RegistrationError> {
    if body.len() > MAX_REGISTRATION_BYTES {
        return Err(metadata_error("the client metadata document is too large"));
    }
    let doc: Value = serde_json::from_slice(body)
        .map_err(|_| metadata_error("the client metadata document is not JSON"))?;
    if doc.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(metadata_error("the client metadata document does not name its own URL as client_id"));
    }
    let mut registration = register(&doc, now_ms, None)?;
    if registration.auth_method != AuthMethod::None {
        return Err(metadata_error(
            "a client metadata document describes a public client (token_endpoint_auth_method none)",
        ));
    }
    registration.secret_hash = None;
    Ok(registration)
}

/// What a presented `client_id` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientId<'a> {
    /// Registered here: the sealed registration that follows the prefix.
    Registered(&'a str),
    /// A Client ID Metadata Document to fetch (https, a path, no fragment).
    MetadataDocument(Url),
    Unknown,
}

/// `allow_http`: also an http URL (`ALLOW_PRIVATE_UPSTREAMS`, local development and tests only;
/// the documents' own rules still apply).
pub fn classify_client_id(client_id: &str, allow_http: bool) -> ClientId<'_> {
    if let Some(sealed) = client_id.strip_prefix(CLIENT_ID_PREFIX) {
        return ClientId::Registered(sealed);
    }
    match Url::parse(client_id) {
        Ok(url)
            if (url.scheme() == "https" || (allow_http && url.scheme() == "http"))
                && url.path() != "/"
                && url.fragment().is_none()
                && url.username().is_empty() =>
        {
            ClientId::MetadataDocument(url)
        }
        _ => ClientId::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redirect_uris_https_or_loopback() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "https://chatgpt.com/connector/oauth/abc",
            "http://127.0.0.1:33418/callback",
            "http://localhost/cb",
            "http://[::1]:8080/cb",
        ] {
            assert!(acceptable_redirect_uri(ok), "{ok}");
        }
        for bad in [
            "http://example.com/cb",
            "https://x.example/cb#frag",
            "https://u:p@x.example/cb",
            "javascript:alert(1)",
            "cursor://callback",
            "/relative",
            "http://127.0.0.2.evil.example/cb",
        ] {
            assert!(!acceptable_redirect_uri(bad), "{bad}");
        }
    }

    #[test]
    fn redirect_matching_is_exact_except_the_loopback_port() {
        let reg = vec![
            "http://127.0.0.1:1234/cb".to_string(),
            "https://claude.ai/api/mcp/auth_callback".to_string(),
        ];
        assert!(redirect_matches(&reg, "https://claude.ai/api/mcp/auth_callback"));
        assert!(redirect_matches(&reg, "http://127.0.0.1:5555/cb"));
        assert!(redirect_matches(&reg, "http://127.0.0.1/cb"));
        assert!(!redirect_matches(&reg, "http://127.0.0.1:5555/other"));
        assert!(!redirect_matches(&reg, "https://claude.ai/api/mcp/auth_callback/"));
        assert!(!redirect_matches(&reg, "https://claude.ai/api/mcp/auth_callback?x=1"));
        assert!(!redirect_matches(&reg, "http://localhost:5555/cb"), "another loopback name is another URI");
        assert!(!redirect_matches(&reg, "https://claude.ai.evil.example/api/mcp/auth_callback"));
    }

    #[test]
    fn registration_requests() {
        let r = register(
            &json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "mcp-remote\u{7}"}),
            5,
            None,
        )
        .unwrap();
        assert_eq!((r.client_name.as_str(), r.auth_method, r.issued_at), ("mcp-remote", AuthMethod::None, 5));
        assert!(r.secret_hash.is_none());
        let c = register(&json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_post"}), 5, Some("s3"))
            .unwrap();
        assert!(c.secret_hash.as_ref().is_some_and(|h| h.matches("s3")));
        assert_eq!(c.client_name, "an unnamed application");
        let long = "n".repeat(500);
        assert_eq!(
            register(&json!({"redirect_uris": ["https://a.example/cb"], "client_name": long}), 0, None)
                .unwrap()
                .client_name
                .len(),
            MAX_CLIENT_NAME
        );
        let err = |body: Value| register(&body, 0, None).unwrap_err().error;
        assert_eq!(err(json!({})), "invalid_redirect_uri");
        assert_eq!(err(json!({"redirect_uris": ["http://evil.example/cb"]})), "invalid_redirect_uri");
        assert_eq!(err(json!({"redirect_uris": vec!["https://a.example/cb"; 11]})), "invalid_redirect_uri");
        assert_eq!(
            err(json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]})),
            "invalid_client_metadata"
        );
        assert_eq!(
            err(json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]})),
            "invalid_client_metadata"
        );
        assert_eq!(
            err(
                json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(err(json!([])), "invalid_client_metadata");
    }

    #[test]
    fn metadata_documents_name_themselves() {
        let url = "https://app.example/oauth/client.json";
        let doc =
            json!({"client_id": url, "client_name": "App", "redirect_uris": ["https://app.example/cb"]})
                .to_string();
        assert_eq!(metadata_document(doc.as_bytes(), url, 0).unwrap().client_name, "App");
        let other =
            json!({"client_id": "https://evil.example/c.json", "redirect_uris": ["https://app.example/cb"]})
                .to_string();
        assert!(metadata_document(other.as_bytes(), url, 0).is_err());
        let confidential = json!({"client_id": url, "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}).to_string();
        assert!(metadata_document(confidential.as_bytes(), url, 0).is_err());
        assert!(metadata_document(&vec![b' '; MAX_REGISTRATION_BYTES + 1], url, 0).is_err());
        assert_eq!(classify_client_id("mabc_v1.k.x", false), ClientId::Registered("v1.k.x"));
        assert!(matches!(classify_client_id(url, false), ClientId::MetadataDocument(_)));
        for unknown in ["https://app.example/", "http://app.example/c.json", "abc", "https://app.example/c#x"]
        {
            assert_eq!(classify_client_id(unknown, false), ClientId::Unknown, "{unknown}");
        }
        let local = "http://127.0.0.1:9/client.json";
        assert!(matches!(classify_client_id(local, true), ClientId::MetadataDocument(_)));
        assert_eq!(classify_client_id(local, false), ClientId::Unknown);
    }
}
