//! Property tests of every parser and renderer in the pure core: nothing panics on any input,
//! every rejection is a value, and the invariants the gateway relies on hold (no CR/LF/NUL in a
//! header, chunking never changes an SSE stream, sealed values round-trip and detect tampering).
//! Bounded here (proptest's default case count); for a longer run:
//! `PROPTEST_CASES=100000 cargo test --release --test properties`.

use mcp_authbridge::core::connect::validate_form;
use mcp_authbridge::core::headers::{configured_name_error, is_field_value, is_token};
use mcp_authbridge::core::ids::UpstreamId;
use mcp_authbridge::core::keys;
use mcp_authbridge::core::mcp::peek;
use mcp_authbridge::core::oauth::discovery::{
    parse_authorization_server, parse_protected_resource, resource_metadata_from_challenge,
};
use mcp_authbridge::core::oauth::flow::{parse_registration, Callback};
use mcp_authbridge::core::oauth::token::parse_token_response;
use mcp_authbridge::core::policy::{check_url, PolicyError};
use mcp_authbridge::core::seal::{Context, Keyring, Sealed};
use mcp_authbridge::core::sse::EndpointRewriter;
use mcp_authbridge::core::template::HeaderTemplate;
use mcp_authbridge::core::upstream::{parse_upstream, UserField};
use proptest::prelude::*;
use std::net::Ipv4Addr;

fn rewrite_all(chunks: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut r = EndpointRewriter::new(|e: &str| Ok(format!("/gw?s=<{e}>")));
    let mut out = Vec::new();
    for c in chunks {
        out.extend(r.push(c).map_err(|e| format!("{e:?}"))?);
    }
    Ok(out)
}

/// An SSE stream: events made of `event`, `data`, `id` and comment lines, any line ending.
fn sse_stream() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        "[a-z]{0,8}".prop_map(|v| format!("event: {v}")),
        Just("event: endpoint".to_string()),
        "[ -~]{0,40}".prop_map(|v| format!("data: {v}")),
        "[0-9]{1,4}".prop_map(|v| format!("id: {v}")),
        "[ -~]{0,20}".prop_map(|v| format!(": {v}")),
    ];
    let eol = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    let event = (prop::collection::vec((line, eol.clone()), 1..5), eol)
        .prop_map(|(lines, end)| lines.into_iter().map(|(l, e)| format!("{l}{e}")).collect::<String>() + end);
    prop::collection::vec(event, 0..8).prop_map(|events| events.concat().into_bytes())
}

fn split_at_points(bytes: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for c in cuts {
        chunks.push(bytes[start..c].to_vec());
        start = c;
    }
    chunks.push(bytes[start..].to_vec());
    chunks
}

proptest! {
    #[test]
    fn sse_rewriting_does_not_depend_on_chunking(stream in sse_stream(), points in prop::collection::vec(any::<usize>(), 0..6)) {
        // A trailing lone CR may still become CRLF: end every stream with a comment line.
        let mut stream = stream;
        stream.extend_from_slice(b": end\n\n");
        let whole = rewrite_all(&[stream.clone()]);
        let chunked = rewrite_all(&split_at_points(&stream, &points));
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn sse_rewriter_takes_any_bytes(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let _ = rewrite_all(&chunks);
    }

    #[test]
    fn templates_never_render_an_unsafe_header(text in "\\PC{0,40}", value in "\\PC{0,20}") {
        if let Ok(t) = HeaderTemplate::parse(&text) {
            if let Ok(out) = t.render(|_| Some(value.as_str())) {
                prop_assert!(is_field_value(&out) && !out.is_empty());
                prop_assert!(!out.contains(['\r', '\n', '\0']));
            }
        }
    }

    #[test]
    fn template_parsing_takes_any_text(text in any::<String>()) {
        let _ = HeaderTemplate::parse(&text);
    }

    #[test]
    fn keys_and_tokens_parse_any_text(text in any::<String>()) {
        let _ = keys::from_authorization(&text);
        let _ = keys::parse_link(&text);
        let _ = keys::parse_state(&text);
        let _ = keys::key_id_routing(&text);
    }

    #[test]
    fn generated_keys_round_trip(routing in "[0-9a-f]{64}", random in any::<[u8; 32]>()) {
        let key = keys::generate(&routing, &random);
        let parsed = keys::from_authorization(&format!("Bearer {key}")).unwrap();
        prop_assert_eq!(parsed.routing, routing);
        prop_assert_eq!(parsed.hash, keys::hash(&key));
    }

    #[test]
    fn sealed_values_round_trip_and_detect_tampering(
        plain in prop::collection::vec(any::<u8>(), 0..200),
        name in "[a-z:]{1,20}",
        nonce in any::<[u8; 12]>(),
        flip in any::<usize>(),
    ) {
        let ring = Keyring::new([5; 32]);
        let context = Context::OperatorSecret { name: &name };
        let sealed = ring.seal(&context, &plain, nonce);
        prop_assert_eq!(ring.open(&context, &sealed).unwrap(), plain);
        let elsewhere = Context::SubjectSecret { subject: "s", name: &name };
        prop_assert!(ring.open(&elsewhere, &sealed).is_err());
        let mut bytes = sealed.as_str().as_bytes().to_vec();
        let i = flip % bytes.len();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        if let Ok(tampered) = String::from_utf8(bytes) {
            if tampered != sealed.as_str() {
                prop_assert!(ring.open(&context, &Sealed::stored(tampered)).is_err());
            }
        }
    }

    #[test]
    fn opening_takes_any_text(text in any::<String>()) {
        let _ = Keyring::new([5; 32]).open(&Context::OperatorSecret { name: "c" }, &Sealed::stored(text));
    }

    #[test]
    fn url_policy_takes_any_text(text in any::<String>(), allow in any::<bool>()) {
        let _ = check_url(&text, allow);
    }

    #[test]
    fn private_ipv4_is_refused_in_decimal_and_hex(a in prop_oneof![Just(10u8), Just(127u8)], b in any::<u8>(), c in any::<u8>(), d in any::<u8>()) {
        let ip = u32::from(Ipv4Addr::new(a, b, c, d));
        for spelling in [ip.to_string(), format!("0x{ip:x}")] {
            let verdict = check_url(&format!("https://{spelling}/mcp"), false);
            prop_assert!(matches!(verdict, Err(PolicyError::Private(_))), "{} -> {:?}", spelling, verdict);
        }
    }

    #[test]
    fn jsonrpc_peek_takes_any_bytes(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = peek(&body);
    }

    #[test]
    fn oauth_parsers_take_any_bytes(body in prop::collection::vec(any::<u8>(), 0..200), status in any::<u16>(), ct in "[a-z/;= -]{0,40}", text in any::<String>()) {
        let _ = parse_token_response(status, &ct, &body);
        let _ = parse_authorization_server(&body, "https://auth.example");
        let _ = parse_protected_resource(&body, "https://mcp.example/mcp");
        let _ = parse_registration(&body);
        let _ = resource_metadata_from_challenge(&text);
        if let Ok(url) = url::Url::parse(&format!("https://gw.example/oauth/callback?{text}")) {
            let _ = Callback::from_query(&url);
        }
    }

    #[test]
    fn accepted_form_values_are_safe_header_values(value in any::<String>()) {
        let fields = [UserField { name: "k".into(), label: "K".into(), secret: true }];
        if let Ok(values) = validate_form(&fields, &[("k".into(), value)]) {
            prop_assert!(is_field_value(values["k"].expose()));
        }
    }

    #[test]
    fn configured_header_names_are_tokens(name in any::<String>()) {
        if configured_name_error(&name).is_none() {
            prop_assert!(is_token(&name));
        }
    }

    #[test]
    fn upstream_bodies_never_panic(json in "\\PC{0,120}") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) {
            let _ = parse_upstream(&UpstreamId::parse("x").unwrap(), &v, true, 0);
        }
    }
}
