//! Native integration test of the pure core: the path one proxied request takes through it,
//! from a stored upstream to the headers that leave the gateway.

use mcp_authbridge::core::headers::{connection_listed, forward_request_header};
use mcp_authbridge::core::keys;
use mcp_authbridge::core::seal::Keyring;
use mcp_authbridge::core::template::Source;
use mcp_authbridge::core::upstream::parse_upstream;
use serde_json::json;
use std::collections::BTreeMap;

#[test]
fn a_request_from_key_to_upstream_headers() {
    // The operator stores an upstream and a sealed secret; the subject has a sealed value.
    let draft = parse_upstream(
        "tickets",
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
    let sealed_tenant = ring.seal("secret:tenant", b"acme", [1; 12]);
    let sealed_user = ring.seal("user:alice:api_key", b"tk_live_1", [2; 12]);

    // The client presents its key; only the digest is compared with what the store holds.
    let routing = "ab".repeat(32);
    let key = keys::generate(&routing, &[9; 32]);
    let presented = keys::from_authorization(&format!("Bearer {key}")).unwrap();
    assert_eq!(presented.routing, routing);
    assert_eq!(presented.hash, keys::hash(&key));

    // The gateway opens the values the templates read and renders every header.
    let mut values = BTreeMap::new();
    values
        .insert(Source::Secret("tenant".into()), ring.open_string("secret:tenant", &sealed_tenant).unwrap());
    values.insert(
        Source::User("api_key".into()),
        ring.open_string("user:alice:api_key", &sealed_user).unwrap(),
    );
    let plan = draft.upstream.header_plan().unwrap();
    assert_eq!(plan.user_names(), ["api_key"]);
    let rendered: BTreeMap<String, String> = plan
        .templates
        .iter()
        .map(|(name, t)| (name.clone(), t.render(|s| values.get(s).map(String::as_str)).unwrap()))
        .collect();
    assert_eq!(rendered["X-API-KEY"], "tk_live_1");
    assert_eq!(rendered["X-Tenant-ID"], "acme");
    assert_eq!(rendered["Authorization"], "Basic dGtfbGl2ZV8xOmFjbWU=");

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
}

#[test]
fn a_value_sealed_for_one_subject_does_not_open_for_another() {
    let ring = Keyring::new([42; 32]);
    let sealed = ring.seal("user:alice:api_key", b"alice-only", [3; 12]);
    assert!(ring.open("user:mallory:api_key", &sealed).is_err());
    assert!(ring.open("secret:api_key", &sealed).is_err());
}
