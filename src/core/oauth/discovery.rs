//! Finding the authorization server: RFC 9728 Protected Resource Metadata (from the upstream's
//! 401 or its well-known URL), then RFC 8414 / OpenID Connect Discovery metadata, with the
//! issuer checked against the URL it came from.

use serde::Deserialize;
use std::fmt;
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    NotJson(&'static str),
    Missing(&'static str),
    IssuerMismatch { expected: String, got: String },
    ResourceMismatch { expected: String, got: String },
    NoS256,
    BadUrl(&'static str),
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryError::NotJson(what) => write!(f, "{what} is not a JSON object"),
            DiscoveryError::Missing(field) => write!(f, "metadata lacks {field}"),
            DiscoveryError::IssuerMismatch { expected, got } => {
                write!(f, "metadata issuer {got} is not {expected} (RFC 8414 §3.3)")
            }
            DiscoveryError::ResourceMismatch { expected, got } => {
                write!(f, "protected resource metadata names {got}, not {expected} (RFC 9728 §3.3)")
            }
            DiscoveryError::NoS256 => {
                f.write_str("the authorization server does not support PKCE with S256, which is required")
            }
            DiscoveryError::BadUrl(field) => write!(f, "{field} is not a valid URL"),
        }
    }
}

/// The `resource_metadata` parameter of a `WWW-Authenticate: Bearer ...` challenge (RFC 9728 §5.1).
pub fn resource_metadata_from_challenge(header: &str) -> Option<String> {
    let rest = header.trim();
    let params = rest.strip_prefix("Bearer").or_else(|| rest.strip_prefix("bearer"))?;
    let idx = params.find("resource_metadata=")?;
    let value = &params[idx + "resource_metadata=".len()..];
    let value = match value.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => value.split([',', ' ']).next()?,
    };
    (!value.is_empty()).then(|| value.to_string())
}

/// Inserts a well-known suffix between the host and the path (RFC 8414 §3.1, RFC 9728 §3.1).
pub fn well_known(base: &Url, suffix: &str) -> String {
    let path = base.path().trim_end_matches('/');
    format!("{}/.well-known/{suffix}{path}", base.origin().ascii_serialization())
}

/// Where to look for a resource's metadata when its 401 named none: path-inserted, then root.
pub fn protected_resource_urls(resource: &Url) -> Vec<String> {
    let mut urls = vec![well_known(resource, "oauth-protected-resource")];
    let root = format!("{}/.well-known/oauth-protected-resource", resource.origin().ascii_serialization());
    if !urls.contains(&root) {
        urls.push(root);
    }
    urls
}

/// Where to look for an issuer's metadata, in the order MCP clients use: RFC 8414 with path
/// insertion, OpenID Connect with path insertion, OpenID Connect appended to the path.
pub fn authorization_server_urls(issuer: &Url) -> Vec<String> {
    let mut urls =
        vec![well_known(issuer, "oauth-authorization-server"), well_known(issuer, "openid-configuration")];
    let appended = format!("{}/.well-known/openid-configuration", issuer.as_str().trim_end_matches('/'));
    if !urls.contains(&appended) {
        urls.push(appended);
    }
    urls
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResource {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
}

#[derive(Deserialize)]
struct RawPrm {
    resource: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Parses RFC 9728 metadata; its `resource` must be the resource it was fetched for.
pub fn parse_protected_resource(body: &[u8], expected: &str) -> Result<ProtectedResource, DiscoveryError> {
    let raw: RawPrm =
        serde_json::from_slice(body).map_err(|_| DiscoveryError::NotJson("protected resource metadata"))?;
    let resource = raw.resource.ok_or(DiscoveryError::Missing("resource"))?;
    if !same_url(&resource, expected) {
        return Err(DiscoveryError::ResourceMismatch { expected: expected.into(), got: resource });
    }
    if raw.authorization_servers.is_empty() {
        return Err(DiscoveryError::Missing("authorization_servers"));
    }
    Ok(ProtectedResource {
        resource,
        authorization_servers: raw.authorization_servers,
        scopes_supported: raw.scopes_supported,
    })
}

/// What the gateway needs from an authorization server's metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthServer {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// RFC 9207: the callback must then carry `iss`.
    pub iss_parameter_supported: bool,
    /// The AS accepts a URL to a Client ID Metadata Document as `client_id`.
    pub client_id_metadata_document_supported: bool,
}

#[derive(Deserialize)]
struct RawAs {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    registration_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    client_id_metadata_document_supported: bool,
}

fn url_field(value: Option<String>, field: &'static str) -> Result<String, DiscoveryError> {
    let value = value.ok_or(DiscoveryError::Missing(field))?;
    Url::parse(&value).map_err(|_| DiscoveryError::BadUrl(field))?;
    Ok(value)
}

/// Parses RFC 8414 / OIDC metadata fetched for `expected_issuer`, which it must name exactly.
pub fn parse_authorization_server(body: &[u8], expected_issuer: &str) -> Result<AuthServer, DiscoveryError> {
    let raw: RawAs =
        serde_json::from_slice(body).map_err(|_| DiscoveryError::NotJson("authorization server metadata"))?;
    let issuer = raw.issuer.ok_or(DiscoveryError::Missing("issuer"))?;
    if issuer != expected_issuer && !same_url(&issuer, expected_issuer) {
        return Err(DiscoveryError::IssuerMismatch { expected: expected_issuer.into(), got: issuer });
    }
    if !raw.code_challenge_methods_supported.iter().any(|m| m == "S256") {
        return Err(DiscoveryError::NoS256);
    }
    let optional_url = |v: Option<String>, field| v.map(|u| url_field(Some(u), field)).transpose();
    Ok(AuthServer {
        issuer,
        authorization_endpoint: url_field(raw.authorization_endpoint, "authorization_endpoint")?,
        token_endpoint: url_field(raw.token_endpoint, "token_endpoint")?,
        registration_endpoint: optional_url(raw.registration_endpoint, "registration_endpoint")?,
        revocation_endpoint: optional_url(raw.revocation_endpoint, "revocation_endpoint")?,
        token_endpoint_auth_methods_supported: raw.token_endpoint_auth_methods_supported,
        scopes_supported: raw.scopes_supported,
        iss_parameter_supported: raw.authorization_response_iss_parameter_supported,
        client_id_metadata_document_supported: raw.client_id_metadata_document_supported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn challenge_parameters() {
        let h = r#"Bearer error="invalid_token", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp""#;
        assert_eq!(
            resource_metadata_from_challenge(h).as_deref(),
            Some("https://mcp.example/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            resource_metadata_from_challenge("Bearer resource_metadata=https://a.example/x, realm=r")
                .as_deref(),
            Some("https://a.example/x")
        );
        assert_eq!(resource_metadata_from_challenge(r#"Bearer realm="x""#), None);
        assert_eq!(resource_metadata_from_challenge(r#"Basic resource_metadata="x""#), None);
    }

    #[test]
    fn well_known_urls_insert_the_path() {
        let r = Url::parse("https://mcp.example/tenant/mcp").unwrap();
        assert_eq!(
            protected_resource_urls(&r),
            [
                "https://mcp.example/.well-known/oauth-protected-resource/tenant/mcp",
                "https://mcp.example/.well-known/oauth-protected-resource"
            ]
        );
        let issuer = Url::parse("https://auth.example/realms/a").unwrap();
        assert_eq!(
            authorization_server_urls(&issuer),
            [
                "https://auth.example/.well-known/oauth-authorization-server/realms/a",
                "https://auth.example/.well-known/openid-configuration/realms/a",
                "https://auth.example/realms/a/.well-known/openid-configuration"
            ]
        );
        let root = Url::parse("https://auth.example/").unwrap();
        assert_eq!(
            authorization_server_urls(&root),
            [
                "https://auth.example/.well-known/oauth-authorization-server",
                "https://auth.example/.well-known/openid-configuration"
            ]
        );
    }

    fn as_json() -> serde_json::Value {
        json!({
            "issuer": "https://auth.example",
            "authorization_endpoint": "https://auth.example/authorize",
            "token_endpoint": "https://auth.example/token",
            "registration_endpoint": "https://auth.example/register",
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true
        })
    }

    #[test]
    fn authorization_server_metadata() {
        let a =
            parse_authorization_server(as_json().to_string().as_bytes(), "https://auth.example/").unwrap();
        assert_eq!(a.token_endpoint, "https://auth.example/token");
        assert!(a.iss_parameter_supported);
        assert_eq!(a.revocation_endpoint, None);

        let mut other = as_json();
        other["issuer"] = json!("https://evil.example");
        assert!(matches!(
            parse_authorization_server(other.to_string().as_bytes(), "https://auth.example"),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
        let mut plain = as_json();
        plain["code_challenge_methods_supported"] = json!(["plain"]);
        assert_eq!(
            parse_authorization_server(plain.to_string().as_bytes(), "https://auth.example"),
            Err(DiscoveryError::NoS256)
        );
        let mut no_token = as_json();
        no_token.as_object_mut().unwrap().remove("token_endpoint");
        assert_eq!(
            parse_authorization_server(no_token.to_string().as_bytes(), "https://auth.example"),
            Err(DiscoveryError::Missing("token_endpoint"))
        );
        assert!(parse_authorization_server(b"<html>", "https://auth.example").is_err());
    }

    #[test]
    fn protected_resource_metadata() {
        let body = json!({"resource": "https://mcp.example/mcp", "authorization_servers": ["https://auth.example"], "scopes_supported": ["read"]});
        let p = parse_protected_resource(body.to_string().as_bytes(), "https://mcp.example/mcp").unwrap();
        assert_eq!(p.authorization_servers, ["https://auth.example"]);
        assert_eq!(p.scopes_supported, ["read"]);
        assert!(matches!(
            parse_protected_resource(body.to_string().as_bytes(), "https://other.example/mcp"),
            Err(DiscoveryError::ResourceMismatch { .. })
        ));
        let empty = json!({"resource": "https://mcp.example/mcp"});
        assert_eq!(
            parse_protected_resource(empty.to_string().as_bytes(), "https://mcp.example/mcp"),
            Err(DiscoveryError::Missing("authorization_servers"))
        );
    }
}
