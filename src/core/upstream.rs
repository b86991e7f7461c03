//! Upstreams: the MCP servers behind the gateway, as the admin API defines them (API.md §4) and
//! as they are stored. Validation names the field that is wrong.

use super::headers::configured_name_error;
use super::ids::{is_name, UpstreamId};
use super::oauth::token::AuthMethod;
use super::policy::check_url;
use super::seal::Sealed;
use super::secret::Secret;
use super::template::{HeaderTemplate, Source};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    StreamableHttp,
    Sse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserField {
    pub name: String,
    pub label: String,
    #[serde(default = "default_true")]
    pub secret: bool,
}

fn default_true() -> bool {
    true
}

/// OAuth settings (the flow itself arrives with connect links). `client_secret` is stored
/// sealed and never echoed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OAuthSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Sealed, context `Context::OAuthClientSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_sealed: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_server: Option<String>,
    #[serde(default = "default_true")]
    pub resource: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    pub id: UpstreamId,
    pub url: String,
    pub transport: Transport,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub user_fields: Vec<UserField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSettings>,
    /// Whether OAuth-only MCP clients may sign in for this upstream (the gateway as their
    /// authorization server).
    #[serde(default, skip_serializing_if = "SignIn::is_off")]
    pub sign_in: SignIn,
    /// A subject that is not connected gets an MCP session from the gateway itself, with one
    /// tool that hands out the connect link (`core::connect_tool`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connect_tool: bool,
    pub updated_at: u64,
}

/// Who may authorize an OAuth-only MCP client for an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignIn {
    /// Keys only; no metadata is served for the upstream.
    #[default]
    Off,
    /// Anyone, with their own credentials only: each authorization makes a new subject.
    #[serde(rename = "self")]
    SelfService,
    /// Whoever holds a connect link for the upstream; the grant is the link's subject's.
    Link,
}

impl SignIn {
    pub fn is_off(&self) -> bool {
        *self == SignIn::Off
    }
}

/// A 400 from the admin API: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A validated `PUT /admin/v1/upstreams/{id}` body. `client_secret` is plaintext here; the
/// caller seals it before storing.
#[derive(Debug, Clone)]
pub struct UpstreamDraft {
    pub upstream: Upstream,
    pub client_secret: Option<Secret>,
    /// The body said `"client_secret": null`: drop the stored one.
    pub client_secret_cleared: bool,
}

impl UpstreamDraft {
    /// The stored client secret the new upstream keeps when the body sent none (API.md §4): the
    /// previous one, while `oauth.client_id` stays the same; a new `client_id` without a secret,
    /// or `"client_secret": null`, drops it. (A re-`PUT` that only changes scopes must not turn a
    /// confidential client public behind the operator's back.)
    pub fn kept_client_secret(&self, previous: Option<&Upstream>) -> Option<Sealed> {
        if self.client_secret.is_some() || self.client_secret_cleared {
            return None;
        }
        let next = self.upstream.oauth.as_ref()?;
        let before = previous?.oauth.as_ref()?;
        (next.client_id.is_some() && next.client_id == before.client_id)
            .then(|| before.client_secret_sealed.clone())
            .flatten()
    }
}

fn string_at(obj: &Map<String, Value>, field: &str, path: &str) -> Result<Option<String>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(FieldError::new(path, "must be a string")),
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, FieldError> {
    v.as_object().ok_or_else(|| FieldError::new(path, "must be an object"))
}

fn only_fields(obj: &Map<String, Value>, allowed: &[&str], prefix: &str) -> Result<(), FieldError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(FieldError::new(
            format!("{prefix}{k}"),
            format!("unknown field; expected one of: {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// The OAuth settings, the client secret sent (if any), and whether it was sent as `null`.
type ParsedOAuth = (OAuthSettings, Option<Secret>, bool);

fn parse_oauth(v: &Value, allow_private: bool) -> Result<ParsedOAuth, FieldError> {
    let obj = object(v, "oauth")?;
    only_fields(
        obj,
        &[
            "scopes",
            "client_id",
            "client_secret",
            "token_endpoint_auth_method",
            "authorization_server",
            "resource",
        ],
        "oauth.",
    )?;
    let scopes = match obj.get("scopes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|s| match s.as_str() {
                    Some(s)
                        if !s.is_empty()
                            && s.bytes().all(|c| c > 0x20 && c < 0x7f && c != b'"' && c != b'\\') =>
                    {
                        Ok(s.to_string())
                    }
                    _ => Err(FieldError::new(
                        "oauth.scopes",
                        "each scope must be a non-empty string without spaces",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(FieldError::new("oauth.scopes", "must be an array of strings")),
    };
    let method = match string_at(obj, "token_endpoint_auth_method", "oauth.token_endpoint_auth_method")? {
        None => None,
        Some(m) => Some(AuthMethod::parse(&m).ok_or_else(|| {
            FieldError::new(
                "oauth.token_endpoint_auth_method",
                "must be client_secret_basic, client_secret_post or none",
            )
        })?),
    };
    let resource = match obj.get("resource") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(FieldError::new("oauth.resource", "must be true or false")),
    };
    let settings = OAuthSettings {
        scopes,
        client_id: string_at(obj, "client_id", "oauth.client_id")?,
        client_secret_sealed: None,
        token_endpoint_auth_method: method,
        authorization_server: match string_at(obj, "authorization_server", "oauth.authorization_server")? {
            Some(url) => Some(
                check_url(&url, allow_private)
                    .map_err(|e| FieldError::new("oauth.authorization_server", e.to_string()))?
                    .to_string(),
            ),
            None => None,
        },
        resource,
    };
    let secret = string_at(obj, "client_secret", "oauth.client_secret")?.map(Secret::new);
    if secret.is_some() {
        require_pinned(&settings)?;
    }
    Ok((settings, secret, obj.get("client_secret") == Some(&Value::Null)))
}

/// The operator's client secret goes only to the server the operator named, never to
/// whichever server discovery finds: with a secret (sent or kept), `authorization_server` is
/// required.
pub fn require_pinned(settings: &OAuthSettings) -> Result<(), FieldError> {
    match settings.authorization_server {
        Some(_) => Ok(()),
        None => Err(FieldError::new(
            "oauth.authorization_server",
            "is required with oauth.client_secret: the secret is sent only to the server named here",
        )),
    }
}

fn parse_user_fields(v: &Value) -> Result<Vec<UserField>, FieldError> {
    let items = v.as_array().ok_or_else(|| FieldError::new("user_fields", "must be an array"))?;
    let mut fields: Vec<UserField> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("user_fields[{i}]");
        let obj = object(item, &path)?;
        only_fields(obj, &["name", "label", "secret"], &format!("{path}."))?;
        let name = string_at(obj, "name", &format!("{path}.name"))?
            .filter(|n| is_name(n))
            .ok_or_else(|| FieldError::new(format!("{path}.name"), "must match [a-z0-9][a-z0-9_-]{0,63}"))?;
        if fields.iter().any(|f| f.name == name) {
            return Err(FieldError::new(format!("{path}.name"), "is listed twice"));
        }
        let label = string_at(obj, "label", &format!("{path}.label"))?.unwrap_or_else(|| name.clone());
        let secret = match obj.get("secret") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(FieldError::new(format!("{path}.secret"), "must be true or false")),
        };
        fields.push(UserField { name, label, secret });
    }
    Ok(fields)
}

/// Validates an admin `PUT` body for upstream `id`.
pub fn parse_upstream(
    id: &UpstreamId,
    body: &Value,
    allow_private: bool,
    now_ms: u64,
) -> Result<UpstreamDraft, FieldError> {
    let obj = object(body, "body")?;
    only_fields(
        obj,
        &["url", "transport", "headers", "user_fields", "oauth", "sign_in", "connect_tool"],
        "",
    )?;
    let url = string_at(obj, "url", "url")?.ok_or_else(|| FieldError::new("url", "is required"))?;
    let url = check_url(&url, allow_private).map_err(|e| FieldError::new("url", e.to_string()))?.to_string();
    let transport = match string_at(obj, "transport", "transport")?.as_deref() {
        None | Some("streamable-http") => Transport::StreamableHttp,
        Some("sse") => Transport::Sse,
        Some(_) => return Err(FieldError::new("transport", "must be \"streamable-http\" or \"sse\"")),
    };
    let mut headers = BTreeMap::new();
    if let Some(h) = obj.get("headers").filter(|v| !v.is_null()) {
        for (name, template) in object(h, "headers")? {
            let path = format!("headers.{name}");
            if let Some(why) = configured_name_error(name) {
                return Err(FieldError::new(path, why));
            }
            if headers.keys().any(|k: &String| k.eq_ignore_ascii_case(name)) {
                return Err(FieldError::new(path, "is listed twice (header names are case-insensitive)"));
            }
            let text = template.as_str().ok_or_else(|| FieldError::new(&path, "must be a string"))?;
            HeaderTemplate::parse(text).map_err(|e| FieldError::new(&path, e.to_string()))?;
            headers.insert(name.clone(), text.to_string());
        }
    }
    let user_fields = match obj.get("user_fields") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => parse_user_fields(v)?,
    };
    let (oauth, client_secret, client_secret_cleared) = match obj.get("oauth") {
        None | Some(Value::Null) => (None, None, false),
        Some(v) => {
            let (settings, secret, cleared) = parse_oauth(v, allow_private)?;
            (Some(settings), secret, cleared)
        }
    };
    let sign_in = match string_at(obj, "sign_in", "sign_in")?.as_deref() {
        None | Some("off") => SignIn::Off,
        Some("self") => SignIn::SelfService,
        Some("link") => SignIn::Link,
        Some(_) => return Err(FieldError::new("sign_in", "must be \"off\", \"self\" or \"link\"")),
    };
    let connect_tool = match obj.get("connect_tool") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(FieldError::new("connect_tool", "must be true or false")),
    };
    let upstream = Upstream {
        id: id.clone(),
        url,
        transport,
        headers,
        user_fields,
        oauth,
        sign_in,
        connect_tool,
        updated_at: now_ms,
    };
    let plan = upstream.header_plan()?;
    if upstream.sign_in == SignIn::SelfService {
        // Anyone may sign in: nothing of the operator's may reach the upstream for them.
        if let Some(s) = plan.sources.iter().find(|s| matches!(s, Source::Secret(_) | Source::Env(_))) {
            return Err(FieldError::new(
                "sign_in",
                format!("\"self\" lets anyone use this upstream with their own credentials, but a header template reads {{{{{s}}}}}, the operator's"),
            ));
        }
    }
    if upstream.oauth.is_none() {
        if let Some((name, _)) =
            plan.templates.iter().find(|(_, t)| t.sources().any(|s| *s == Source::OAuthAccessToken))
        {
            return Err(FieldError::new(
                format!("headers.{name}"),
                "uses {{oauth.access_token}} but the upstream has no oauth settings",
            ));
        }
    }
    Ok(UpstreamDraft { upstream, client_secret, client_secret_cleared })
}

/// What one request needs to know about an upstream's headers, computed once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPlan {
    pub templates: Vec<(String, HeaderTemplate)>,
    /// Every value the templates read, sorted, each once.
    pub sources: Vec<Source>,
}

impl HeaderPlan {
    /// The subject's values the templates read (`{{user.NAME}}`).
    pub fn user_names(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter_map(|s| if let Source::User(n) = s { Some(n.clone()) } else { None })
            .collect()
    }

    /// Whether any header carries a value of the subject's own (so an upstream 401 means the
    /// subject must reconnect, not that the operator's configuration is wrong).
    pub fn per_user(&self) -> bool {
        self.sources.iter().any(Source::is_per_user)
    }

    /// Whether a header carries the subject's OAuth access token.
    pub fn uses_oauth(&self) -> bool {
        self.sources.contains(&Source::OAuthAccessToken)
    }
}

impl Upstream {
    /// The parsed header templates and the values they read, including the implicit
    /// `Authorization: Bearer {{oauth.access_token}}` of an OAuth upstream without one. A stored
    /// template that no longer parses is an error, never a header silently left out.
    pub fn header_plan(&self) -> Result<HeaderPlan, FieldError> {
        let has_auth = self.headers.keys().any(|k| k.eq_ignore_ascii_case("authorization"));
        let implicit =
            (self.oauth.is_some() && !has_auth).then_some(("Authorization", "Bearer {{oauth.access_token}}"));
        let templates = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(implicit)
            .map(|(k, v)| match HeaderTemplate::parse(v) {
                Ok(t) => Ok((k.to_string(), t)),
                Err(e) => Err(FieldError::new(format!("headers.{k}"), e.to_string())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut sources: Vec<Source> = templates.iter().flat_map(|(_, t)| t.sources().cloned()).collect();
        sources.sort();
        sources.dedup();
        Ok(HeaderPlan { templates, sources })
    }

    /// Where it is now, for `core::request::still_bound`.
    pub fn place(&self) -> super::request::Place {
        let origin = url::Url::parse(&self.url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        let oauth = self.oauth.as_ref();
        super::request::Place {
            origin,
            issuer: oauth.and_then(|o| o.authorization_server.clone()),
            resource: oauth.filter(|o| o.resource).map(|_| self.url.clone()),
        }
    }

    /// What the admin API shows: never a secret.
    /// Whether a user has anything to connect: typed values, or an OAuth sign-in.
    pub fn connectable(&self) -> bool {
        !self.user_fields.is_empty() || self.oauth.is_some()
    }

    pub fn public_view(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "url": self.url,
            "transport": self.transport,
            "headers": self.headers,
            "user_fields": self.user_fields,
            "sign_in": self.sign_in,
            "connect_tool": self.connect_tool,
            "updated_at": super::encoding::rfc3339(self.updated_at),
        });
        if let Some(o) = &self.oauth {
            v["oauth"] = json!({
                "scopes": o.scopes,
                "client_id": o.client_id,
                "client_secret_set": o.client_secret_sealed.is_some(),
                "token_endpoint_auth_method": o.token_endpoint_auth_method,
                "authorization_server": o.authorization_server,
                "resource": o.resource,
            });
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> UpstreamId {
        UpstreamId::parse("svc").unwrap()
    }

    fn parse(body: Value) -> Result<UpstreamDraft, FieldError> {
        parse_upstream(&svc(), &body, true, 1_000)
    }

    fn field_of(body: Value) -> String {
        parse(body).unwrap_err().field
    }

    #[test]
    fn accepts_a_full_upstream() {
        let d = parse(json!({
            "url": "http://127.0.0.1:9000/mcp",
            "transport": "sse",
            "headers": {"X-API-KEY": "{{user.api_key}}", "X-Tenant-ID": "{{secret.tenant}}"},
            "user_fields": [{"name": "api_key", "label": "API key"}],
            "oauth": {"scopes": ["read"], "client_id": "c", "client_secret": "s", "resource": false,
                      "authorization_server": "https://as.example"}
        }))
        .unwrap();
        assert_eq!(d.upstream.transport, Transport::Sse);
        assert_eq!(d.client_secret.as_ref().map(Secret::expose), Some("s"));
        assert!(!format!("{d:?}").contains("\"s\""), "Debug never shows the client secret");
        assert!(d.upstream.user_fields[0].secret);
        let plan = d.upstream.header_plan().unwrap();
        let names: Vec<&str> = plan.templates.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-API-KEY", "X-Tenant-ID", "Authorization"]);
        assert_eq!(plan.user_names(), ["api_key"]);
        assert!(plan.sources.contains(&Source::Secret("tenant".into())));
        assert!(plan.per_user());
        let view = d.upstream.public_view().to_string();
        assert!(!view.contains("\"s\""), "client secret never echoed: {view}");
        assert!(view.contains("client_secret_set"));
    }

    #[test]
    fn a_stored_template_that_no_longer_parses_is_an_error() {
        let mut u = parse(json!({"url": "https://a.example/"})).unwrap().upstream;
        u.headers.insert("X-Bad".into(), "{{nope}}".into());
        assert_eq!(u.header_plan().unwrap_err().field, "headers.X-Bad");
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(json!({})), "url");
        assert_eq!(field_of(json!({"url": 5})), "url");
        assert_eq!(field_of(json!({"url": "ftp://x"})), "url");
        assert_eq!(field_of(json!({"url": "http://169.254.169.254/"})), "url");
        assert_eq!(field_of(json!({"url": "http://a.example/", "transport": "ws"})), "transport");
        assert_eq!(field_of(json!({"url": "http://a.example/", "nope": 1})), "nope");
        assert_eq!(field_of(json!({"url": "http://a.example/", "headers": {"X": "a\r\nb"}})), "headers.X");
        assert_eq!(
            field_of(json!({"url": "http://a.example/", "headers": {"Mcp-Session-Id": "x"}})),
            "headers.Mcp-Session-Id"
        );
        assert_eq!(
            field_of(json!({"url": "http://a.example/", "headers": {"X": "{{env.ADMIN_TOKEN}}"}})),
            "headers.X"
        );
        assert_eq!(field_of(json!({"url": "http://a.example/", "headers": {"X": 1}})), "headers.X");
        assert_eq!(
            field_of(json!({"url": "http://a.example/", "headers": {"X": "{{oauth.access_token}}"}})),
            "headers.X"
        );
        assert_eq!(
            field_of(json!({"url": "http://a.example/", "headers": {"x": "1", "X": "2"}})),
            "headers.x"
        );
        assert_eq!(
            field_of(json!({"url": "http://a.example/", "user_fields": [{"label": "x"}]})),
            "user_fields[0].name"
        );
        assert_eq!(
            field_of(json!({"url": "http://a.example/", "oauth": {"token_endpoint_auth_method": "jwt"}})),
            "oauth.token_endpoint_auth_method"
        );
        assert_eq!(
            field_of(json!({"url": "http://a.example/", "oauth": {"scopes": ["a b"]}})),
            "oauth.scopes"
        );
        assert_eq!(field_of(json!([])), "body");
        assert_eq!(
            field_of(json!({"url": "http://a.example/", "headers": {"X": "{{secret.API}}"}})),
            "headers.X"
        );
        assert_eq!(
            field_of(json!({"url": "http://a.example/", "user_fields": [{"name": "Key"}]})),
            "user_fields[0].name"
        );
        assert_eq!(
            field_of(
                json!({"url": "http://a.example/", "oauth": {"authorization_server": "http://169.254.169.254/"}})
            ),
            "oauth.authorization_server"
        );
        assert!(parse_upstream(&svc(), &json!({"url": "http://a.example/"}), false, 0).is_err());
        assert_eq!(
            field_of(json!({"url": "http://a.example/", "oauth": {"client_id": "c", "client_secret": "s"}})),
            "oauth.authorization_server"
        );
    }

    #[test]
    fn sign_in_self_takes_nothing_of_the_operators() {
        let d = parse(
            json!({"url": "https://a.example/", "headers": {"X-API-KEY": "{{user.k}}"}, "sign_in": "self"}),
        )
        .unwrap();
        assert_eq!(d.upstream.sign_in, SignIn::SelfService);
        assert_eq!(d.upstream.public_view()["sign_in"], "self");
        assert_eq!(parse(json!({"url": "https://a.example/"})).unwrap().upstream.sign_in, SignIn::Off);
        for operator in ["{{secret.t}}", "{{env.T}}", "Basic {{basic(user.k, secret.t)}}"] {
            let body = json!({"url": "https://a.example/", "headers": {"X": operator}, "sign_in": "self"});
            assert_eq!(field_of(body), "sign_in", "{operator}");
        }
        let tool = parse(json!({"url": "https://a.example/", "connect_tool": true})).unwrap().upstream;
        assert!(tool.connect_tool && tool.public_view()["connect_tool"] == true);
        assert_eq!(field_of(json!({"url": "https://a.example/", "connect_tool": "yes"})), "connect_tool");
        let link = json!({"url": "https://a.example/", "headers": {"X": "{{secret.t}}"}, "sign_in": "link"});
        assert_eq!(parse(link).unwrap().upstream.sign_in, SignIn::Link);
        assert_eq!(field_of(json!({"url": "https://a.example/", "sign_in": "everyone"})), "sign_in");
        let stored =
            serde_json::to_value(parse(json!({"url": "https://a.example/"})).unwrap().upstream).unwrap();
        assert!(stored.get("sign_in").is_none(), "off is not stored");
    }

    #[test]
    fn a_re_put_without_client_secret_keeps_it_while_the_client_id_stays() {
        let mut stored =
            parse(json!({"url": "https://a.example/", "oauth": {"client_id": "c1"}})).unwrap().upstream;
        stored.oauth.as_mut().unwrap().client_secret_sealed = Some(Sealed::stored("v1.k.sealed".into()));
        let kept = |body: Value| parse(body).unwrap().kept_client_secret(Some(&stored));
        let sealed = Some(Sealed::stored("v1.k.sealed".into()));
        assert_eq!(
            kept(json!({"url": "https://a.example/", "oauth": {"client_id": "c1", "scopes": ["x"]}})),
            sealed
        );
        assert_eq!(kept(json!({"url": "https://b.example/", "oauth": {"client_id": "c1"}})), sealed);
        assert_eq!(
            kept(json!({"url": "https://a.example/", "oauth": {"client_id": "c2"}})),
            None,
            "a new client"
        );
        assert_eq!(kept(json!({"url": "https://a.example/", "oauth": {}})), None, "no client id: no secret");
        assert_eq!(kept(json!({"url": "https://a.example/"})), None, "no oauth at all");
        assert_eq!(
            kept(json!({"url": "https://a.example/", "oauth": {"client_id": "c1", "client_secret": null}})),
            None,
            "null drops it"
        );
        let new =
            parse(json!({"url": "https://a.example/", "oauth": {"client_id": "c1", "client_secret": "s2", "authorization_server": "https://as.example"}}))
                .unwrap();
        assert_eq!(new.kept_client_secret(Some(&stored)), None, "a new secret is sealed instead");
        assert_eq!(
            parse(json!({"url": "https://a.example/", "oauth": {"client_id": "c1"}}))
                .unwrap()
                .kept_client_secret(None),
            None
        );
    }

    #[test]
    fn explicit_authorization_wins_over_the_oauth_default() {
        let d = parse(json!({"url": "https://a.example/", "headers": {"authorization": "Token {{oauth.access_token}}"}, "oauth": {}})).unwrap();
        let plan = d.upstream.header_plan().unwrap();
        let names: Vec<&str> = plan.templates.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["authorization"]);
    }
}
