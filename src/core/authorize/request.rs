//! The authorization request (RFC 6749 §4.1.1 with PKCE, RFC 7636, and `resource`, RFC 8707)
//! and its answer. Until the client and its redirect URI are known to belong together, an
//! error is a page for the person, never a redirect (RFC 6749 §4.1.2.1: no open redirector);
//! after that it goes back to the client with `error`, `state` and `iss` (RFC 9207).

use super::client::{redirect_matches, Registration};
use crate::core::encoding::b64url;
use crate::core::ids::UpstreamId;
use sha2::{Digest, Sha256};
use url::Url;

/// An authorization request whose client and redirect URI check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The gateway MCP URL asked for, and the upstream behind it.
    pub resource: String,
    pub upstream: UpstreamId,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Before the redirect URI is trusted: shown to the person as a page.
    Page(&'static str),
    /// Sent back to the client's redirect URI (RFC 6749 §4.1.2.1).
    Redirect { redirect_uri: String, state: Option<String>, error: &'static str, description: &'static str },
}

/// Whether a request refused before its redirect URI is trusted came from a program rather than
/// a browser (`Accept` names JSON, not HTML): it gets the error as JSON, so a client can tell
/// that this gateway no longer knows its registration (e.g. after the key that sealed it was
/// retired) and register again, as mcp-remote does on `invalid_client`; a person gets a page.
pub fn wants_json(accept: Option<&str>) -> bool {
    let accept = accept.unwrap_or_default().to_ascii_lowercase();
    accept.contains("application/json") && !accept.contains("text/html")
}

/// The upstream a `resource` names: `{public_origin}/mcp/{id}` or `{public_origin}/sse/{id}`.
pub fn resource_upstream(public_origin: &str, resource: &str) -> Option<UpstreamId> {
    let rest = resource.strip_prefix(public_origin)?;
    let id = rest.strip_prefix("/mcp/").or_else(|| rest.strip_prefix("/sse/"))?;
    UpstreamId::parse(id).ok()
}

/// The first step: the query's client id and redirect URI, before anything is looked up.
pub fn client_of(query: &[(String, String)]) -> Result<(String, String), Refused> {
    let one = |name: &str| {
        let mut values = query.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (Some(v), None) if !v.is_empty() => Some(v.to_string()),
            _ => None,
        }
    };
    let client_id =
        one("client_id").ok_or(Refused::Page("The application did not say who it is (client_id)."))?;
    let redirect_uri = one("redirect_uri")
        .ok_or(Refused::Page("The application did not say where to send you back (redirect_uri)."))?;
    Ok((client_id, redirect_uri))
}

/// The second step, with the client's registration: the redirect URI must be one of its own,
/// then PKCE S256 and a `resource` naming one of the gateway's MCP URLs are required.
pub fn check(
    query: &[(String, String)],
    client_id: &str,
    redirect_uri: &str,
    registration: &Registration,
    public_origin: &str,
) -> Result<Authorization, Refused> {
    if !redirect_matches(&registration.redirect_uris, redirect_uri) {
        return Err(Refused::Page("The application asked to send you to an address it did not register."));
    }
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let state = get("state");
    let refuse = |error, description| Refused::Redirect {
        redirect_uri: redirect_uri.to_string(),
        state: state.clone(),
        error,
        description,
    };
    let repeated = ["response_type", "state", "code_challenge", "code_challenge_method", "resource", "scope"]
        .iter()
        .any(|n| query.iter().filter(|(k, _)| k == n).count() > 1);
    if repeated {
        return Err(refuse("invalid_request", "a parameter is repeated"));
    }
    if get("response_type").as_deref() != Some("code") {
        return Err(refuse("unsupported_response_type", "only response_type=code"));
    }
    let challenge = get("code_challenge")
        .filter(|c| c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let (Some(code_challenge), Some("S256")) = (challenge, get("code_challenge_method").as_deref()) else {
        return Err(refuse("invalid_request", "PKCE with code_challenge_method=S256 is required"));
    };
    let Some(resource) = get("resource") else {
        return Err(refuse("invalid_target", "resource is required: the MCP URL to be used"));
    };
    let Some(upstream) = resource_upstream(public_origin, &resource) else {
        return Err(refuse("invalid_target", "resource is not an MCP URL of this gateway"));
    };
    if get("scope").is_some_and(|s| s.split(' ').any(|s| !s.is_empty() && s != super::metadata::SCOPE)) {
        return Err(refuse("invalid_scope", "the only scope is mcp"));
    }
    Ok(Authorization {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        state,
        code_challenge,
        resource,
        upstream,
    })
}

/// RFC 7636 §4.6: the verifier's S256 must be the challenge.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let shape_ok = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    shape_ok
        && crate::core::encoding::ct_eq(
            b64url(&Sha256::digest(verifier.as_bytes())).as_bytes(),
            challenge.as_bytes(),
        )
}

/// The redirect back to the client: its URI with `params` added to its query, and `iss`.
pub fn back_to_client(redirect_uri: &str, params: &[(&str, &str)], issuer: &str) -> Option<String> {
    let mut url = Url::parse(redirect_uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        q.append_pair("iss", issuer);
    }
    Some(url.into())
}

impl Refused {
    /// The redirect of a refusal after the redirect URI is trusted.
    pub fn redirect(&self, issuer: &str) -> Option<String> {
        let Refused::Redirect { redirect_uri, state, error, description } = self else { return None };
        let mut params = vec![("error", *error), ("error_description", *description)];
        if let Some(s) = state {
            params.push(("state", s));
        }
        back_to_client(redirect_uri, &params, issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::oauth::token::AuthMethod;

    const GW: &str = "https://gw.example";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn registration() -> Registration {
        Registration {
            redirect_uris: vec!["https://claude.ai/api/mcp/auth_callback".into()],
            client_name: "Claude".into(),
            auth_method: AuthMethod::None,
            secret_hash: None,
            issued_at: 0,
        }
    }

    fn query(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", "mabc_x"),
            ("redirect_uri", "https://claude.ai/api/mcp/auth_callback"),
            ("state", "st"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("resource", "https://gw.example/mcp/tickets"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            q.retain(|(n, _)| n != k);
            if !v.is_empty() {
                q.push((k.to_string(), v.to_string()));
            }
        }
        q
    }

    fn checked(q: &[(String, String)]) -> Result<Authorization, Refused> {
        let (id, uri) = client_of(q)?;
        check(q, &id, &uri, &registration(), GW)
    }

    #[test]
    fn a_good_request() {
        let a = checked(&query(&[])).unwrap();
        assert_eq!(a.upstream.as_str(), "tickets");
        assert_eq!(a.state.as_deref(), Some("st"));
        assert_eq!(resource_upstream(GW, "https://gw.example/sse/legacy").unwrap().as_str(), "legacy");
        assert!(resource_upstream(GW, "https://evil.example/mcp/tickets").is_none());
        assert!(resource_upstream(GW, "https://gw.example/admin/v1").is_none());
    }

    #[test]
    fn before_the_redirect_uri_is_trusted_errors_are_pages() {
        assert!(matches!(checked(&query(&[("client_id", "")])), Err(Refused::Page(_))));
        assert!(matches!(checked(&query(&[("redirect_uri", "")])), Err(Refused::Page(_))));
        assert!(matches!(
            checked(&query(&[("redirect_uri", "https://evil.example/cb")])),
            Err(Refused::Page(_))
        ));
        let mut twice = query(&[]);
        twice.push(("redirect_uri".into(), "https://evil.example/cb".into()));
        assert!(matches!(checked(&twice), Err(Refused::Page(_))));
    }

    #[test]
    fn after_it_errors_go_back_with_state_and_iss() {
        let cases = [
            (query(&[("response_type", "token")]), "unsupported_response_type"),
            (query(&[("code_challenge", "")]), "invalid_request"),
            (query(&[("code_challenge_method", "plain")]), "invalid_request"),
            (query(&[("resource", "")]), "invalid_target"),
            (query(&[("resource", "https://gw.example/mcp/Not_An_Id")]), "invalid_target"),
            (query(&[("scope", "admin")]), "invalid_scope"),
        ];
        for (q, expected) in cases {
            let err = checked(&q).unwrap_err();
            let Refused::Redirect { error, .. } = &err else { panic!("{err:?}") };
            assert_eq!(*error, expected);
            let to = Url::parse(&err.redirect(GW).unwrap()).unwrap();
            assert!(to.as_str().starts_with("https://claude.ai/api/mcp/auth_callback?"));
            let params: Vec<(String, String)> = to.query_pairs().into_owned().collect();
            assert!(
                params.contains(&("state".into(), "st".into()))
                    && params.contains(&("iss".into(), GW.into()))
            );
        }
        assert!(checked(&query(&[("scope", "mcp")])).is_ok());
    }

    #[test]
    fn pkce_s256_only() {
        assert!(pkce_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", CHALLENGE));
        assert!(!pkce_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", CHALLENGE));
        assert!(!pkce_matches(CHALLENGE, CHALLENGE), "the challenge itself is not a verifier");
        assert!(!pkce_matches("short", CHALLENGE));
        let back = back_to_client("http://127.0.0.1:9/cb?x=1", &[("code", "c"), ("state", "s")], GW).unwrap();
        assert_eq!(back, "http://127.0.0.1:9/cb?x=1&code=c&state=s&iss=https%3A%2F%2Fgw.example");
    }

    #[test]
    fn programs_get_json_people_get_a_page() {
        assert!(wants_json(Some("application/json")));
        assert!(!wants_json(Some("text/html,application/xhtml+xml,application/json;q=0.9")));
        assert!(!wants_json(Some("*/*")));
        assert!(!wants_json(None));
    }
}
