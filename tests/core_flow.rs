//! Native integration test of the pure core: the path one proxied request takes through the
//! real decision functions, from a stored upstream and a presented key to the headers that
//! leave the gateway and what the upstream's answer means.

use mcp_authbridge::core::headers::{connection_listed, forward_request_header};
use mcp_authbridge::core::ids::UpstreamId;
use mcp_authbridge::core::keys::{self, KeyHash};
use mcp_authbridge::core::request::{after_upstream, pick_user_value, render, Next, RenderFailure, Sent};
use mcp_authbridge::core::seal::{ConnectionValue, Context, Keyring};
use mcp_authbridge::core::secret::Secret;
use mcp_authbridge::core::template::Source;
use mcp_authbridge::core::upstream::parse_upstream;
use serde_json::json;
use std::collections::BTreeMap;

#[test]
fn a_request_from_key_to_upstream_headers() {
    // The operator stores an upstream and a sealed secret; the subject has a sealed value set
    // by the admin and another typed on the connect page.
    let id = UpstreamId::parse("tickets").unwrap();
    let draft = parse_upstream(
        &id,
        &json!({
            "url": "https://mcp.tickets.example/mcp",
            "headers": {
                "X-API-KEY": "{{user.api_key}}",
                "X-Tenant-ID": "{{secret.tenant}}",
                "Authorization": "Basic {{basic(user.api_key, secret.tenant)}}"
            }
        }),
        false,
        0,
    )
    .unwrap();
    let ring = Keyring::new([42; 32]);
    let tenant = Context::OperatorSecret { name: "tenant" };
    let sealed_tenant = ring.seal(&tenant, b"acme", [1; 12]);
    let by_admin =
        ring.seal(&Context::SubjectSecret { subject: "alice", name: "api_key" }, b"tk_admin", [2; 12]);
    let typed = pick_user_value(None, Some(by_admin)).unwrap();

    // The client presents its key; only the digest is compared with what the store holds.
    let routing = "ab".repeat(32);
    let key = keys::generate(&routing, &[9; 32]);
    let presented = keys::from_authorization(&format!("Bearer {key}")).unwrap();
    assert_eq!(presented.routing, routing);
    assert_eq!(presented.hash, KeyHash::of(&key));

    // The gateway opens each value under the context the store names, and renders.
    let plan = draft.upstream.header_plan().unwrap();
    assert_eq!(plan.user_names(), ["api_key"]);
    let mut values = BTreeMap::new();
    values.insert(Source::Secret("tenant".into()), ring.open_secret(&tenant, &sealed_tenant).unwrap());
    let user = ring.open_secret(&typed.context("alice", "tickets", "api_key"), &typed.sealed).unwrap();
    values.insert(Source::User("api_key".into()), user);
    let rendered: BTreeMap<String, String> = render(&plan, &values).unwrap().into_iter().collect();
    assert_eq!(rendered["X-API-KEY"], "tk_admin");
    assert_eq!(rendered["X-Tenant-ID"], "acme");
    assert_eq!(rendered["Authorization"], "Basic dGtfYWRtaW46YWNtZQ==");

    // What the user typed on the connect page wins over the admin's value.
    let admin_value = typed.sealed.clone();
    let field = ConnectionValue::Field("api_key");
    let page_value = ring.seal(
        &Context::Connection { subject: "alice", upstream: "tickets", value: field },
        b"tk_typed",
        [4; 12],
    );
    let chosen = pick_user_value(Some(page_value), Some(admin_value)).unwrap();
    let opened = ring.open_secret(&chosen.context("alice", "tickets", "api_key"), &chosen.sealed).unwrap();
    assert_eq!(opened.expose(), "tk_typed");

    // Without the subject's value the request asks the user to connect, never sends an empty header.
    values.remove(&Source::User("api_key".into()));
    assert_eq!(render(&plan, &values), Err(RenderFailure::ConnectionRequired));

    // The client's own headers: its credential and hop-by-hop fields stay behind.
    let client = [
        ("authorization", true),
        ("mcp-session-id", false),
        ("mcp-protocol-version", false),
        ("connection", true),
        ("x-trace", true),
        ("accept", false),
    ];
    let listed = connection_listed(Some("x-trace"));
    for (name, dropped) in client {
        assert_eq!(!forward_request_header(name, &listed), dropped, "{name}");
    }

    // The upstream refuses the subject's values: reconnect; refuses a redirect: never followed.
    let sent = Sent { per_user: plan.per_user(), access_token: plan.uses_oauth(), retried: false };
    assert_eq!(after_upstream(401, sent), Next::Reconnect);
    assert_eq!(after_upstream(302, sent), Next::RefuseRedirect);
    assert_eq!(after_upstream(200, sent), Next::Relay);
}

#[test]
fn a_value_sealed_for_one_subject_does_not_open_for_another() {
    let ring = Keyring::new([42; 32]);
    let sealed =
        ring.seal(&Context::SubjectSecret { subject: "alice", name: "api_key" }, b"alice-only", [3; 12]);
    assert!(ring.open(&Context::SubjectSecret { subject: "mallory", name: "api_key" }, &sealed).is_err());
    assert!(ring.open(&Context::OperatorSecret { name: "api_key" }, &sealed).is_err());
    let secret =
        ring.open_secret(&Context::SubjectSecret { subject: "alice", name: "api_key" }, &sealed).unwrap();
    assert_eq!(format!("{secret:?}"), "***");
    assert_eq!(secret.expose(), "alice-only");
    assert!(Secret::new("alice-only").ct_eq(secret.expose()));
}
