//! The decisions of one proxied request (ARCHITECTURE.md "Request path"), each a pure function:
//! which stored value a `{{user.NAME}}` gets, how the headers render, what an upstream's answer
//! means next (relay, refresh and retry once, reconnect, operator credentials rejected, redirect
//! refused), when a token must be refreshed, and when a connection is marked again.
//! `proxy.rs` and the subject store only carry these out.

use super::seal::{ConnectionValue, Context, Sealed};
use super::secret::Secret;
use super::template::{RenderError, Source};
use super::upstream::HeaderPlan;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether a connection works, as its subject's store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    ConnectionRequired,
}

/// A connection's state as a request saw it (for compare-and-set later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSeen {
    pub status: ConnectionStatus,
    pub updated_at: u64,
}

/// Where an upstream is now, as far as credentials given for it are concerned: its origin,
/// and for OAuth the authorization server it is pinned to and the RFC 8707 resource its tokens
/// are for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub origin: String,
    pub issuer: Option<String>,
    pub resource: Option<String>,
}

/// API.md §4 "Credentials stay where the user gave them": a connection made for an origin (and
/// a grant obtained from an issuer for a resource) is used only while the upstream is still
/// there. `origin` is the one the connection recorded (none for records made before origins
/// were recorded: bound on their next use); `grant` is the grant's issuer and resource.
pub fn still_bound(origin: Option<&str>, grant: Option<(&str, Option<&str>)>, now: &Place) -> bool {
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    let origin_ok = origin.is_none_or(|o| same(o, &now.origin));
    let grant_ok = grant.is_none_or(|(issuer, resource)| {
        now.issuer.as_deref().is_none_or(|pinned| same(pinned, issuer)) && resource == now.resource.as_deref()
    });
    origin_ok && grant_ok
}

/// Where a `{{user.NAME}}` value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueOrigin {
    /// Typed by the subject on the connect page, kept with the connection.
    Connection,
    /// Set for the subject through the admin API.
    SubjectSecret,
}

/// A `{{user.NAME}}` value as the subject's store hands it out: sealed, with where it was found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserValue {
    pub origin: ValueOrigin,
    pub sealed: Sealed,
}

impl UserValue {
    /// The context it was sealed under.
    pub fn context<'a>(&self, subject: &'a str, upstream: &'a str, name: &'a str) -> Context<'a> {
        match self.origin {
            ValueOrigin::Connection => {
                Context::Connection { subject, upstream, value: ConnectionValue::Field(name) }
            }
            ValueOrigin::SubjectSecret => Context::SubjectSecret { subject, name },
        }
    }
}

/// API.md §4 "Where `{{user.X}}` comes from": the value the subject typed on the connect page
/// for this upstream wins over the subject's secret set through the admin API.
pub fn pick_user_value(from_connection: Option<Sealed>, from_subject: Option<Sealed>) -> Option<UserValue> {
    match (from_connection, from_subject) {
        (Some(sealed), _) => Some(UserValue { origin: ValueOrigin::Connection, sealed }),
        (None, Some(sealed)) => Some(UserValue { origin: ValueOrigin::SubjectSecret, sealed }),
        (None, None) => None,
    }
}

/// Why the headers could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderFailure {
    /// A value of the subject's own is missing: the subject must connect (403 + link).
    ConnectionRequired,
    /// An operator value (`secret.*`, `env.*`) is missing: the operator must set it (500).
    MissingOperatorValue(String),
    /// The rendered value of this header would not be a valid field value.
    Unsafe { header: String },
}

/// Renders every header of `plan` from the opened `values`; a missing value is never an empty
/// header (API.md §2).
pub fn render(
    plan: &HeaderPlan,
    values: &BTreeMap<Source, Secret>,
) -> Result<Vec<(String, String)>, RenderFailure> {
    plan.templates
        .iter()
        .map(|(name, t)| match t.render(|s| values.get(s).map(Secret::expose)) {
            Ok(v) => Ok((name.clone(), v)),
            Err(RenderError::Missing(s)) if s.is_per_user() => Err(RenderFailure::ConnectionRequired),
            Err(RenderError::Missing(s)) => Err(RenderFailure::MissingOperatorValue(s.to_string())),
            Err(RenderError::Unsafe) => Err(RenderFailure::Unsafe { header: name.clone() }),
        })
        .collect()
}

/// What a request sent upstream, as far as the answer's meaning depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// A header carried a value of the subject's own (`{{user.*}}`, `{{oauth.*}}`).
    pub per_user: bool,
    /// A header carried the subject's OAuth access token.
    pub access_token: bool,
    /// This is already the one retry after a refresh.
    pub retried: bool,
}

/// What to do with the upstream's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Pass it to the client as it is.
    Relay,
    /// The access token was refused: refresh it (or take the one another request refreshed)
    /// and send the request once more.
    RefreshAndRetry,
    /// The subject's own credentials were refused: mark the connection and answer
    /// `connection_required` with a link.
    Reconnect,
    /// Credentials that are the operator's were refused: 502 `upstream_rejected_credentials`.
    OperatorCredentialsRejected,
    /// A redirect: following it would send the subject's credentials somewhere not configured,
    /// relaying it would point the client (and its key) past the gateway: 502.
    RefuseRedirect,
}

/// API.md §4: an upstream 401 to per-user values means reconnect (after one refresh and retry
/// for OAuth); any other 401 is the operator's problem.
pub fn after_upstream(status: u16, sent: Sent) -> Next {
    match status {
        401 if sent.access_token && !sent.retried => Next::RefreshAndRetry,
        401 if sent.per_user => Next::Reconnect,
        401 => Next::OperatorCredentialsRejected,
        300..=399 if status != 304 => Next::RefuseRedirect,
        _ => Next::Relay,
    }
}

/// A connection marked `connection_required` whose values now work again (e.g. the operator
/// replaced a subject secret) is marked connected: returns the `updated_at` to compare-and-set
/// against, when it should be.
pub fn works_again(per_user: bool, seen: Option<ConnectionSeen>, status: u16) -> Option<u64> {
    match seen {
        Some(s) if per_user && s.status == ConnectionStatus::ConnectionRequired && status < 500 => {
            Some(s.updated_at)
        }
        _ => None,
    }
}

/// Compare-and-set of a connection's status: applies only while the connection is as the
/// request saw it (`seen`: its `updated_at`, `None` when there was none), so a slow request
/// cannot undo a reconnect that happened meanwhile, and only when it changes something.
pub fn status_change_applies(
    existing: Option<ConnectionSeen>,
    seen: Option<u64>,
    wanted: ConnectionStatus,
) -> bool {
    existing.map(|c| c.updated_at) == seen && existing.is_none_or(|c| c.status != wanted)
}

/// What a refresh came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refreshed {
    /// A usable access token (sealed): freshly refreshed, or already refreshed by another
    /// request; `updated_at` is the connection's, for later compare-and-set.
    Token { access_token: Sealed, updated_at: u64 },
    /// The grant is dead (`invalid_grant`, or nothing to refresh with): the user must connect again.
    ConnectionRequired,
    /// The authorization server could not be reached or failed; the grant is kept. Try again
    /// after `retry_after` seconds.
    Unavailable { retry_after: u64 },
}

/// Whether a refresh must still happen once the store holds the refresh lock: after a 401 only
/// while the refused token is still the current one (else another request already refreshed);
/// before use only while the token is due.
pub fn refresh_needed(rejected: Option<&Sealed>, current: &Sealed, due: bool) -> bool {
    match rejected {
        Some(r) => r == current,
        None => due,
    }
}

/// The access token a request uses after a refresh that was due: the fresh one; the held one
/// while it is still valid though its server failed; none when the grant ended. `Err` when it
/// expired and its server failed (503, try again).
pub fn token_after_refresh(
    outcome: Refreshed,
    held: Sealed,
    still_valid: bool,
) -> Result<Option<Sealed>, AuthorizationServerDown> {
    match outcome {
        Refreshed::Token { access_token, .. } => Ok(Some(access_token)),
        Refreshed::ConnectionRequired => Ok(None),
        Refreshed::Unavailable { .. } if still_valid => Ok(Some(held)),
        Refreshed::Unavailable { retry_after } => Err(AuthorizationServerDown { retry_after }),
    }
}

/// The upstream's authorization server failed and the token it would replace has expired: try
/// again after `retry_after` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizationServerDown {
    pub retry_after: u64,
}

/// The origin, path and query (without `?`) of a request's URL as the runtime gives it: absolute
/// and already in its WHATWG serialisation (host lower-cased, default port dropped, no
/// fragment), so no parse is needed to take it apart.
pub fn split_url(url: &str) -> (&str, &str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_at = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    let (origin, rest) = url.split_at(path_at);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (origin, if path.is_empty() { "/" } else { path }, query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::UpstreamId;

    #[test]
    fn a_request_url_splits_into_origin_path_and_query() {
        assert_eq!(split_url("https://gw.example/mcp/tickets"), ("https://gw.example", "/mcp/tickets", ""));
        assert_eq!(
            split_url("http://127.0.0.1:8787/sse/t/messages?s=v1.a.b&x=%2F"),
            ("http://127.0.0.1:8787", "/sse/t/messages", "s=v1.a.b&x=%2F")
        );
        assert_eq!(split_url("https://gw.example"), ("https://gw.example", "/", ""));
        assert_eq!(split_url("https://gw.example/?a=1"), ("https://gw.example", "/", "a=1"));
        // The same origin as the URL parser gives.
        for url in ["https://gw.example/a", "http://127.0.0.1:8787/mcp/x?y", "https://[::1]:9/p"] {
            let parsed = url::Url::parse(url).unwrap();
            assert_eq!(split_url(url).0, parsed.origin().ascii_serialization(), "{url}");
            assert_eq!(split_url(url).1, parsed.path(), "{url}");
        }
    }
    use crate::core::seal::Keyring;
    use crate::core::upstream::parse_upstream;
    use serde_json::json;

    fn sealed(n: u8) -> Sealed {
        Keyring::new([1; 32]).seal(&Context::SseSession { upstream: "x" }, &[n], [n; 12])
    }

    #[test]
    fn typed_on_the_page_wins_over_the_admin_value() {
        let v = pick_user_value(Some(sealed(1)), Some(sealed(2))).unwrap();
        assert_eq!((v.origin, v.sealed), (ValueOrigin::Connection, sealed(1)));
        let v = pick_user_value(None, Some(sealed(2))).unwrap();
        assert_eq!((v.origin, v.sealed), (ValueOrigin::SubjectSecret, sealed(2)));
        assert!(pick_user_value(None, None).is_none());
        assert_eq!(
            pick_user_value(Some(sealed(1)), None).unwrap().context("a", "gh", "k").to_string(),
            "conn:a:gh:k"
        );
        assert_eq!(
            pick_user_value(None, Some(sealed(1))).unwrap().context("a", "gh", "k").to_string(),
            "user:a:k"
        );
    }

    fn plan(headers: serde_json::Value) -> HeaderPlan {
        let id = UpstreamId::parse("svc").unwrap();
        parse_upstream(&id, &json!({"url": "https://a.example/", "headers": headers}), false, 0)
            .unwrap()
            .upstream
            .header_plan()
            .unwrap()
    }

    #[test]
    fn rendering_names_what_is_missing() {
        let p = plan(json!({"X-Key": "{{user.k}}", "X-Tenant": "{{secret.t}}"}));
        let mut values = BTreeMap::new();
        assert_eq!(render(&p, &values), Err(RenderFailure::ConnectionRequired));
        values.insert(Source::User("k".into()), Secret::new("uk"));
        assert_eq!(render(&p, &values), Err(RenderFailure::MissingOperatorValue("secret.t".into())));
        values.insert(Source::Secret("t".into()), Secret::new("acme"));
        assert_eq!(
            render(&p, &values).unwrap(),
            [("X-Key".to_string(), "uk".to_string()), ("X-Tenant".to_string(), "acme".to_string())]
        );
        values.insert(Source::User("k".into()), Secret::new("a\r\nInjected: 1"));
        assert_eq!(render(&p, &values), Err(RenderFailure::Unsafe { header: "X-Key".into() }));
    }

    #[test]
    fn what_an_upstream_answer_means() {
        let oauth = Sent { per_user: true, access_token: true, retried: false };
        let typed = Sent { per_user: true, access_token: false, retried: false };
        let operator = Sent { per_user: false, access_token: false, retried: false };
        let cases = [
            (401, oauth, Next::RefreshAndRetry),
            (401, Sent { retried: true, ..oauth }, Next::Reconnect),
            (401, typed, Next::Reconnect),
            (401, operator, Next::OperatorCredentialsRejected),
            (403, typed, Next::Relay),
            (200, oauth, Next::Relay),
            (200, Sent { retried: true, ..oauth }, Next::Relay),
            (302, typed, Next::RefuseRedirect),
            (307, operator, Next::RefuseRedirect),
            (304, operator, Next::Relay),
            (404, operator, Next::Relay),
            (500, oauth, Next::Relay),
        ];
        for (status, sent, next) in cases {
            assert_eq!(after_upstream(status, sent), next, "{status} {sent:?}");
        }
    }

    #[test]
    fn a_connection_is_marked_again_only_when_it_was_marked_and_the_answer_was_not_a_failure() {
        let required = ConnectionSeen { status: ConnectionStatus::ConnectionRequired, updated_at: 7 };
        let connected = ConnectionSeen { status: ConnectionStatus::Connected, updated_at: 7 };
        assert_eq!(works_again(true, Some(required), 200), Some(7));
        assert_eq!(works_again(true, Some(required), 404), Some(7));
        assert_eq!(works_again(true, Some(required), 502), None);
        assert_eq!(works_again(false, Some(required), 200), None);
        assert_eq!(works_again(true, Some(connected), 200), None);
        assert_eq!(works_again(true, None, 200), None);
    }

    #[test]
    fn credentials_stay_where_they_were_given() {
        let here = Place {
            origin: "https://mcp.example".into(),
            issuer: Some("https://as.example/".into()),
            resource: Some("https://mcp.example/mcp".into()),
        };
        let grant = Some(("https://as.example", Some("https://mcp.example/mcp")));
        assert!(still_bound(Some("https://mcp.example"), grant, &here));
        assert!(still_bound(None, grant, &here), "a record from before origins were kept");
        assert!(still_bound(Some("https://mcp.example"), None, &here), "typed values");
        assert!(!still_bound(Some("https://evil.example"), None, &here), "moved to another origin");
        let other_as = Place { issuer: Some("https://other-as.example".into()), ..here.clone() };
        assert!(!still_bound(Some("https://mcp.example"), grant, &other_as), "another authorization server");
        let other_path = Place { resource: Some("https://mcp.example/v2".into()), ..here.clone() };
        assert!(!still_bound(Some("https://mcp.example"), grant, &other_path), "tokens for another resource");
        let not_pinned = Place { issuer: None, ..here.clone() };
        assert!(still_bound(Some("https://mcp.example"), grant, &not_pinned));
    }

    #[test]
    fn status_changes_are_compare_and_set() {
        let c = |status, updated_at| Some(ConnectionSeen { status, updated_at });
        use ConnectionStatus::*;
        assert!(status_change_applies(c(Connected, 5), Some(5), ConnectionRequired));
        assert!(!status_change_applies(c(Connected, 6), Some(5), ConnectionRequired), "changed meanwhile");
        assert!(!status_change_applies(c(Connected, 5), Some(5), Connected), "nothing to change");
        assert!(status_change_applies(None, None, ConnectionRequired));
        assert!(!status_change_applies(None, Some(5), Connected), "deleted meanwhile");
        assert!(!status_change_applies(c(Connected, 5), None, ConnectionRequired), "made meanwhile");
    }

    #[test]
    fn refresh_once_whoever_asks() {
        let (current, old) = (sealed(1), sealed(2));
        assert!(refresh_needed(Some(&current), &current, false), "the refused token is current");
        assert!(!refresh_needed(Some(&old), &current, true), "another request refreshed already");
        assert!(refresh_needed(None, &current, true));
        assert!(!refresh_needed(None, &current, false));
    }

    #[test]
    fn which_token_after_a_due_refresh() {
        let fresh = Refreshed::Token { access_token: sealed(3), updated_at: 1 };
        assert_eq!(token_after_refresh(fresh, sealed(1), false), Ok(Some(sealed(3))));
        assert_eq!(token_after_refresh(Refreshed::ConnectionRequired, sealed(1), true), Ok(None));
        let down = Refreshed::Unavailable { retry_after: 4 };
        assert_eq!(token_after_refresh(down.clone(), sealed(1), true), Ok(Some(sealed(1))));
        assert_eq!(
            token_after_refresh(down, sealed(1), false),
            Err(AuthorizationServerDown { retry_after: 4 })
        );
    }
}
