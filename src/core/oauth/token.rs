//! Token endpoint requests and responses (RFC 6749 §4.1.3, §5, §6; RFC 7009), client
//! authentication, and when a token needs refreshing.

use super::pkce::Verifier;
use crate::core::encoding::b64;
use crate::core::secret::Secret;
use serde::{Deserialize, Serialize};
use url::form_urlencoded;

/// How the gateway authenticates to a token endpoint (RFC 8414 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

impl AuthMethod {
    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "none" => Some(AuthMethod::None),
            _ => None,
        }
    }

    /// The method to use: the operator's choice, else what registration said, else what the
    /// AS advertises (RFC 8414 §2: `client_secret_basic` when it says nothing); `none` when
    /// there is no secret.
    pub fn choose(
        configured: Option<AuthMethod>,
        registered: Option<&str>,
        has_secret: bool,
        supported: &[String],
    ) -> Self {
        if let Some(m) = configured.or_else(|| registered.and_then(AuthMethod::parse)) {
            return m;
        }
        if !has_secret {
            return AuthMethod::None;
        }
        if supported.is_empty() || supported.iter().any(|m| m == "client_secret_basic") {
            AuthMethod::ClientSecretBasic
        } else if supported.iter().any(|m| m == "client_secret_post") {
            AuthMethod::ClientSecretPost
        } else {
            AuthMethod::ClientSecretBasic
        }
    }
}

/// The gateway's identity at one authorization server.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub method: AuthMethod,
}

/// What a token request asks for. The code exchange consumes the PKCE verifier.
pub enum Grant<'a> {
    AuthorizationCode { code: &'a str, redirect_uri: &'a str, verifier: Verifier, resource: Option<&'a str> },
    Refresh { refresh_token: &'a Secret, resource: Option<&'a str> },
}

/// A request body (form-encoded) and, for `client_secret_basic`, the `Authorization` value.
/// Both may carry secrets: no `Debug`.
pub struct TokenRequest {
    pub body: String,
    pub authorization: Option<String>,
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Adds client authentication to a form (RFC 6749 §2.3.1: basic credentials are form-encoded
/// before base64). Shared by token and revocation requests.
fn authenticate(mut form: form_urlencoded::Serializer<String>, client: &ClientAuth) -> TokenRequest {
    let secret = client.client_secret.as_ref().map(Secret::expose).unwrap_or("");
    let authorization = match client.method {
        AuthMethod::ClientSecretBasic => Some(format!(
            "Basic {}",
            b64(format!("{}:{}", form_encode(&client.client_id), form_encode(secret)).as_bytes())
        )),
        AuthMethod::ClientSecretPost => {
            form.append_pair("client_id", &client.client_id);
            form.append_pair("client_secret", secret);
            None
        }
        AuthMethod::None => {
            form.append_pair("client_id", &client.client_id);
            None
        }
    };
    TokenRequest { body: form.finish(), authorization }
}

pub fn token_request(grant: &Grant<'_>, client: &ClientAuth) -> TokenRequest {
    let mut form = form_urlencoded::Serializer::new(String::new());
    match grant {
        Grant::AuthorizationCode { code, redirect_uri, verifier, resource } => {
            form.append_pair("grant_type", "authorization_code");
            form.append_pair("code", code);
            form.append_pair("redirect_uri", redirect_uri);
            form.append_pair("code_verifier", verifier.expose());
            if let Some(r) = resource {
                form.append_pair("resource", r);
            }
        }
        Grant::Refresh { refresh_token, resource } => {
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", refresh_token.expose());
            if let Some(r) = resource {
                form.append_pair("resource", r);
            }
        }
    }
    authenticate(form, client)
}

/// An RFC 7009 revocation request for a token.
pub fn revocation_request(token: &Secret, hint: &str, client: &ClientAuth) -> TokenRequest {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token.expose());
    form.append_pair("token_type_hint", hint);
    authenticate(form, client)
}

/// A successful token response.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: Secret,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// `expires_in` arrives as a number, or (form-encoded, or from some servers) as a string.
fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Str(String),
    }
    Ok(match Option::<N>::deserialize(d)? {
        Some(N::Num(n)) => Some(n),
        Some(N::Str(s)) => s.trim().parse().ok(),
        None => None,
    })
}

/// An error response (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenError {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// What a token endpoint answered, as read; what it means for a grant is
/// `core::oauth::refresh::verdict`.
#[derive(Debug, Clone)]
pub enum TokenOutcome {
    Issued(Tokens),
    /// An OAuth error response (RFC 6749 §5.2), with the HTTP status it came with (some servers
    /// answer errors with 200).
    Refused {
        error: String,
        status: u16,
    },
    /// Neither tokens nor an OAuth error: an HTML error page, a 5xx, a token of another type.
    Failed(String),
}

/// Reads a token endpoint answer: JSON, or form-encoded (GitHub answers so unless asked for
/// JSON). Bearer tokens only.
pub fn parse_token_response(status: u16, content_type: &str, body: &[u8]) -> TokenOutcome {
    let form = content_type.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded");
    let value: Option<serde_json::Value> = if form {
        let map: serde_json::Map<String, serde_json::Value> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
            .collect();
        Some(serde_json::Value::Object(map))
    } else {
        serde_json::from_slice(body).ok()
    };
    let Some(value) = value else {
        return TokenOutcome::Failed(format!(
            "token endpoint answered {status} with a body that is not JSON"
        ));
    };
    if value.get("error").is_some() || !(200..300).contains(&status) {
        return match serde_json::from_value::<TokenError>(value) {
            Ok(e) => TokenOutcome::Refused { error: e.error, status },
            Err(_) => TokenOutcome::Failed(format!("token endpoint answered {status}")),
        };
    }
    match serde_json::from_value::<Tokens>(value) {
        Ok(t) if t.token_type.as_deref().is_none_or(|tt| tt.eq_ignore_ascii_case("bearer")) => {
            TokenOutcome::Issued(t)
        }
        Ok(_) => TokenOutcome::Failed("token endpoint issued a token that is not a Bearer token".into()),
        Err(_) => TokenOutcome::Failed("token response lacks access_token".into()),
    }
}

/// Whether an access token should be refreshed before use: when less than min(60 s, half its
/// lifetime) remains (ARCHITECTURE.md "Request path", step 4).
pub fn refresh_due(now_ms: u64, issued_at_ms: u64, expires_at_ms: Option<u64>) -> bool {
    let Some(expires_at) = expires_at_ms else { return false };
    let lifetime = expires_at.saturating_sub(issued_at_ms);
    let margin = (lifetime / 2).min(60_000);
    now_ms + margin >= expires_at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(method: AuthMethod) -> ClientAuth {
        ClientAuth { client_id: "my client:1".into(), client_secret: Some(Secret::new("s&cret")), method }
    }

    #[test]
    fn code_exchange_with_each_client_authentication() {
        let grant = Grant::AuthorizationCode {
            code: "c o",
            redirect_uri: "https://gw.example/oauth/callback",
            verifier: Verifier::opened(Secret::new("v")),
            resource: Some("https://mcp.example/mcp"),
        };
        let basic = token_request(&grant, &client(AuthMethod::ClientSecretBasic));
        assert_eq!(
            basic.body,
            "grant_type=authorization_code&code=c+o&redirect_uri=https%3A%2F%2Fgw.example%2Foauth%2Fcallback&code_verifier=v&resource=https%3A%2F%2Fmcp.example%2Fmcp"
        );
        // base64("my+client%3A1:s%26cret")
        assert_eq!(basic.authorization.as_deref(), Some("Basic bXkrY2xpZW50JTNBMTpzJTI2Y3JldA=="));
        let post = token_request(&grant, &client(AuthMethod::ClientSecretPost));
        assert!(post.body.ends_with("&client_id=my+client%3A1&client_secret=s%26cret"));
        assert_eq!(post.authorization, None);
        let none = token_request(&grant, &client(AuthMethod::None));
        assert!(none.body.ends_with("&client_id=my+client%3A1") && !none.body.contains("secret"));
    }

    #[test]
    fn refresh_and_revocation_requests() {
        let rt = Secret::new("rt");
        let r =
            token_request(&Grant::Refresh { refresh_token: &rt, resource: None }, &client(AuthMethod::None));
        assert_eq!(r.body, "grant_type=refresh_token&refresh_token=rt&client_id=my+client%3A1");
        let v = revocation_request(&rt, "refresh_token", &client(AuthMethod::ClientSecretPost));
        assert_eq!(
            v.body,
            "token=rt&token_type_hint=refresh_token&client_id=my+client%3A1&client_secret=s%26cret"
        );
    }

    #[test]
    fn choosing_the_method() {
        let s = |v: &[&str]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(
            AuthMethod::choose(Some(AuthMethod::ClientSecretPost), None, true, &[]),
            AuthMethod::ClientSecretPost
        );
        assert_eq!(AuthMethod::choose(None, Some("none"), false, &[]), AuthMethod::None);
        assert_eq!(AuthMethod::choose(None, None, false, &s(&["client_secret_basic"])), AuthMethod::None);
        assert_eq!(AuthMethod::choose(None, None, true, &[]), AuthMethod::ClientSecretBasic);
        assert_eq!(
            AuthMethod::choose(None, None, true, &s(&["client_secret_post"])),
            AuthMethod::ClientSecretPost
        );
    }

    #[test]
    fn json_and_form_token_responses() {
        let json = br#"{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","scope":"a b"}"#;
        let TokenOutcome::Issued(t) = parse_token_response(200, "application/json; charset=utf-8", json)
        else {
            panic!("json")
        };
        assert_eq!(
            (t.access_token.expose(), t.expires_in, t.refresh_token.as_ref().map(Secret::expose)),
            ("at", Some(3600), Some("rt"))
        );
        let form = b"access_token=gho_1&scope=repo&token_type=bearer&expires_in=28800";
        let TokenOutcome::Issued(t) = parse_token_response(200, "application/x-www-form-urlencoded", form)
        else {
            panic!("form")
        };
        assert_eq!(
            (t.access_token.expose(), t.expires_in, t.refresh_token.as_ref().map(Secret::expose)),
            ("gho_1", Some(28800), None)
        );
        assert!(!format!("{t:?}").contains("gho_1"), "Debug never shows a token");
    }

    #[test]
    fn token_errors() {
        assert!(matches!(
            parse_token_response(
                400,
                "application/json",
                br#"{"error":"invalid_grant","error_description":"gone"}"#
            ),
            TokenOutcome::Refused { error, status: 400 } if error == "invalid_grant"
        ));
        assert!(matches!(
            parse_token_response(200, "application/x-www-form-urlencoded", b"error=bad_refresh_token"),
            TokenOutcome::Refused { error, status: 200 } if error == "bad_refresh_token"
        ));
        assert!(matches!(parse_token_response(500, "text/html", b"<h1>oops"), TokenOutcome::Failed(_)));
        assert!(matches!(
            parse_token_response(401, "application/json", br#"{"error":"invalid_client"}"#),
            TokenOutcome::Refused { error, status: 401 } if error == "invalid_client"
        ));
        assert!(matches!(
            parse_token_response(503, "application/json", br#"{"error":"temporarily_unavailable"}"#),
            TokenOutcome::Refused { status: 503, .. }
        ));
        assert!(matches!(
            parse_token_response(502, "application/json", br#"{"message":"bad gateway"}"#),
            TokenOutcome::Failed(_)
        ));
        assert!(matches!(
            parse_token_response(200, "application/json", br#"{"token_type":"Bearer"}"#),
            TokenOutcome::Failed(_)
        ));
        assert!(matches!(
            parse_token_response(200, "application/json", br#"{"access_token":"a","token_type":"mac"}"#),
            TokenOutcome::Failed(_)
        ));
    }

    #[test]
    fn refresh_timing() {
        // A one-hour token refreshes in its last minute.
        assert!(!refresh_due(3_540_000 - 1, 0, Some(3_600_000)));
        assert!(refresh_due(3_540_000, 0, Some(3_600_000)));
        // A ten-second token refreshes at half its life.
        assert!(!refresh_due(4_999, 0, Some(10_000)));
        assert!(refresh_due(5_000, 0, Some(10_000)));
        assert!(!refresh_due(5_000, 0, None), "no expiry: refresh only after a 401");
    }
}
