//! The gateway's own MCP session (API.md §7): for an upstream with `connect_tool: true`, a
//! subject that has not connected it gets a working session instead of a 403 whose body its
//! platform never shows (OpenAI answers its developer "424 Error retrieving tool list"). The
//! session has one tool, `connect_{upstream}`, that hands out the connect link for the model to
//! give the user; a client that declared URL-mode elicitation (MCP 2025-11-25) gets the link as a
//! `URLElicitationRequiredError` (-32042) when it calls any other tool. Everything else gets an
//! MCP-correct answer: empty lists, `ping`, method-not-found. Once the subject is connected, the
//! gateway's session id answers 404 (the client starts a new session, which reaches the upstream).
//! At 2026-07-28 (stateless, no `initialize`) it answers `server/discover`, stamps every result
//! (`resultType`, list caching, its `serverInfo`), and a client that declared URL-mode
//! elicitation in the request's `_meta` gets an `input_required` result carrying the link.

use serde_json::{json, Value};

/// Session ids the gateway makes itself start with this; `u` or `n` follows: whether the client
/// declared URL-mode elicitation in its `initialize`.
pub const SESSION_PREFIX: &str = "mabs_";

/// Protocol revisions the gateway's session speaks, oldest first (`initialize` era).
const VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The first revision with `resource_link` content items.
const RESOURCE_LINKS_SINCE: &str = "2025-06-18";
/// The stateless revision: `server/discover`, per-request `_meta`, `resultType`.
const MODERN: &str = "2026-07-28";
/// Where a 2026-07-28 request's `_meta` declares URL-mode elicitation (a JSON pointer: the `/` in
/// `io.modelcontextprotocol/clientCapabilities` is written `~1`).
const META_URL_ELICITATION: &str = "/_meta/io.modelcontextprotocol~1clientCapabilities/elicitation/url";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// JSON-RPC error codes (JSON-RPC 2.0 §5.1; MCP 2025-11-25 for -32042).
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const SERVER_ERROR: i64 = -32000;
const URL_ELICITATION_REQUIRED: i64 = -32042;

/// What the client's session id says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Session {
    pub url_elicitation: bool,
}

impl Session {
    /// A new session id (for the `initialize` answer) from 16 random bytes.
    pub fn id(self, random: &[u8; 16]) -> String {
        let flag = if self.url_elicitation { 'u' } else { 'n' };
        format!("{SESSION_PREFIX}{flag}{}", super::encoding::hex(random))
    }

    /// The session a gateway-made session id names; `None` for any other (an upstream's).
    pub fn parse(id: &str) -> Option<Session> {
        let rest = id.strip_prefix(SESSION_PREFIX)?;
        let (flag, random) = rest.split_at_checked(1)?;
        let ok = random.len() == 32 && random.bytes().all(|c| c.is_ascii_hexdigit());
        match flag {
            "u" if ok => Some(Session { url_elicitation: true }),
            "n" if ok => Some(Session { url_elicitation: false }),
            _ => None,
        }
    }
}

/// What a request to the gateway's own session is about.
pub struct Asked<'a> {
    pub upstream: &'a str,
    /// The client's session (`Mcp-Session-Id`), when it is one the gateway made.
    pub session: Option<Session>,
    /// `MCP-Protocol-Version`, sent by clients after `initialize` (2025-06-18 and later).
    pub protocol_version: Option<&'a str>,
}

/// The gateway's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A JSON body with `status`; `session`: the `Mcp-Session-Id` to set (after `initialize`).
    Json { status: u16, body: Value, session: Option<String> },
    /// 202: the body held only notifications and responses.
    Accepted,
}

/// The first event of the gateway's own legacy (2024-11-05) session: where the client posts.
pub fn legacy_endpoint_event(upstream: &str, session: &str) -> String {
    format!("event: endpoint\ndata: /sse/{upstream}/messages?own={session}\n\n")
}

/// An answer on the legacy event stream.
pub fn legacy_message_event(answer: &Value) -> String {
    format!("event: message\ndata: {answer}\n\n")
}

/// The name of the one tool.
pub fn tool_name(upstream: &str) -> String {
    format!("connect_{upstream}")
}

/// The JSON-RPC messages of a POST body (one, or a batch), or why it is none.
fn messages(body: &[u8]) -> Result<Vec<Value>, (i64, &'static str)> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(batch)) if !batch.is_empty() => Ok(batch),
        Ok(one @ Value::Object(_)) => Ok(vec![one]),
        Ok(_) => Err((INVALID_REQUEST, "Invalid Request: not a JSON-RPC message")),
        Err(_) => Err((PARSE_ERROR, "Parse error: the body is not JSON")),
    }
}

fn method_of(m: &Value) -> Option<&str> {
    m.get("method").and_then(Value::as_str)
}

/// Whether the answer to `body` hands out the connect link (so the caller mints it first): every
/// tool call does (the connect tool's result, another tool's error result, or -32042).
pub fn needs_link(body: &[u8]) -> bool {
    let Ok(batch) = messages(body) else { return false };
    batch.iter().any(|m| method_of(m) == Some("tools/call") && m.get("id").is_some())
}

/// The answer to a POST of `body`. `link`: the connect link (when `needs_link`); `random`: for
/// a new session id.
pub fn answer(body: &[u8], asked: &Asked<'_>, link: Option<&str>, random: &[u8; 16]) -> Answer {
    let batch = match messages(body) {
        Ok(batch) => batch,
        Err((code, message)) => {
            return Answer::Json { status: 400, body: error(&Value::Null, code, message), session: None }
        }
    };
    let single = batch.len() == 1;
    let modern = asked.protocol_version == Some(MODERN);
    let mut session = None;
    let mut replies = Vec::new();
    let mut status = 200;
    for m in &batch {
        let (Some(method), Some(id)) = (method_of(m), m.get("id")) else { continue };
        let params = m.get("params").cloned().unwrap_or(Value::Null);
        let reply = match method {
            "initialize" => {
                let s =
                    Session { url_elicitation: params.pointer("/capabilities/elicitation/url").is_some() };
                session = Some(s.id(random));
                result(id, initialize_result(asked.upstream, &params))
            }
            "server/discover" if modern => result(id, stamped(discover_result(asked.upstream), true)),
            // A probe at another revision: refused as an `initialize`-era server would, so the
            // client falls back to `initialize`.
            "server/discover" => {
                status = 400;
                error(id, SERVER_ERROR, "Bad Request: this server speaks the initialize handshake")
            }
            "ping" | "logging/setLevel" => result(id, json!({})),
            "tools/list" => listed(id, json!({ "tools": [tool(asked.upstream)] }), modern),
            "resources/list" => listed(id, json!({ "resources": [] }), modern),
            "resources/templates/list" => listed(id, json!({ "resourceTemplates": [] }), modern),
            "prompts/list" => listed(id, json!({ "prompts": [] }), modern),
            "tools/call" if modern => {
                let mut reply = call(id, &params, asked, link);
                if let Some(r) = reply.get_mut("result") {
                    *r = stamped(r.take(), false);
                }
                reply
            }
            "tools/call" => call(id, &params, asked, link),
            _ => error(id, METHOD_NOT_FOUND, &format!("Method not found: {method}")),
        };
        replies.push(reply);
    }
    if replies.is_empty() {
        return Answer::Accepted;
    }
    let body = if single { replies.remove(0) } else { Value::Array(replies) };
    Answer::Json { status: if single { status } else { 200 }, body, session }
}

/// A list result; at 2026-07-28 stamped, and not to be cached (the list changes on connecting).
fn listed(id: &Value, list: Value, modern: bool) -> Value {
    result(id, if modern { stamped(list, true) } else { list })
}

/// A 2026-07-28 result: `resultType` (kept when set: `input_required`), the gateway's
/// `serverInfo`, and for cacheable results `ttlMs: 0` with `cacheScope: "private"`.
fn stamped(mut result: Value, cacheable: bool) -> Value {
    let Some(obj) = result.as_object_mut() else { return result };
    obj.entry("resultType").or_insert(json!("complete"));
    if cacheable {
        obj.insert("ttlMs".into(), json!(0));
        obj.insert("cacheScope".into(), json!("private"));
    }
    let info = json!({ "name": "mcp-authbridge", "version": env!("CARGO_PKG_VERSION") });
    obj.insert("_meta".into(), json!({ META_SERVER_INFO: info }));
    result
}

fn discover_result(upstream: &str) -> Value {
    json!({
        "supportedVersions": [MODERN],
        "capabilities": { "tools": { "listChanged": false } },
        "instructions": instructions(upstream),
    })
}

fn instructions(upstream: &str) -> String {
    format!(
        "The user has not connected their {upstream} account yet, so its tools are not available. \
         Call {} to get a link for the user to connect it.",
        tool_name(upstream)
    )
}

fn result(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

fn initialize_result(upstream: &str, params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked.filter(|v| VERSIONS.contains(v)).unwrap_or(VERSIONS[VERSIONS.len() - 1]);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "mcp-authbridge", "title": format!("{upstream} (not connected yet)"), "version": env!("CARGO_PKG_VERSION") },
        "instructions": instructions(upstream),
    })
}

fn tool(upstream: &str) -> Value {
    json!({
        "name": tool_name(upstream),
        "title": format!("Connect {upstream}"),
        "description": format!(
            "The user has not connected their {upstream} account yet, so the tools of {upstream} are not \
             available. Call this tool first: it returns a link. Give the link to the user, ask them to \
             open it in their browser and connect their account, and to tell you when they are done; \
             the tools of {upstream} then appear in a new session."
        ),
        "inputSchema": { "type": "object", "properties": {} },
        "annotations": { "readOnlyHint": true, "openWorldHint": false },
    })
}

fn connect_text(upstream: &str, link: &str) -> String {
    format!(
        "The user must connect their {upstream} account before its tools can be used. Give the user \
         this link to open in their browser: {link}\nThe link works once, for one hour. After the user \
         has connected, the tools of {upstream} appear in a new session (start one, or list the tools again)."
    )
}

fn call(id: &Value, params: &Value, asked: &Asked<'_>, link: Option<&str>) -> Value {
    let upstream = asked.upstream;
    let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
    let Some(link) = link else {
        return error(id, SERVER_ERROR, &format!("no connect link could be made for {upstream}: try again"));
    };
    let message = format!("Connect your {upstream} account to continue.");
    let elicitation =
        json!({ "mode": "url", "elicitationId": link_id(link), "url": link, "message": message });
    // Another tool of the upstream, called before connecting.
    let other = name != tool_name(upstream);
    if other && params.pointer(META_URL_ELICITATION).is_some() {
        // 2026-07-28: the client asked for it in this request; -32042 is not sent at this revision.
        let request = json!({ "method": "elicitation/create", "params": elicitation });
        return result(
            id,
            json!({ "resultType": "input_required", "inputRequests": { "connect": request } }),
        );
    }
    if other && asked.session.is_some_and(|s| s.url_elicitation) {
        let mut e = error(id, URL_ELICITATION_REQUIRED, &message);
        e["error"]["data"] = json!({ "elicitations": [elicitation] });
        return e;
    }
    let mut content = vec![json!({ "type": "text", "text": connect_text(upstream, link) })];
    if asked.protocol_version.is_some_and(|v| v >= RESOURCE_LINKS_SINCE) {
        content.push(json!({
            "type": "resource_link",
            "uri": link,
            "name": tool_name(upstream),
            "title": format!("Connect {upstream}"),
            "mimeType": "text/html",
        }));
    }
    // For another tool, an error result the model reads.
    result(id, json!({ "content": content, "isError": other }))
}

/// An elicitation id for a link that says nothing of the link: the first 16 hex digits of its
/// SHA-256 (the same link, the same id, so a client can tell a repeated request).
fn link_id(link: &str) -> String {
    crate::core::keys::KeyHash::of(link).as_str()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://gw.example/connect/mabl_r_abc";

    fn asked(session: Option<Session>, version: Option<&'static str>) -> Asked<'static> {
        Asked { upstream: "tickets", session, protocol_version: version }
    }

    fn json_of(a: Answer) -> (u16, Value, Option<String>) {
        match a {
            Answer::Json { status, body, session } => (status, body, session),
            Answer::Accepted => panic!("202"),
        }
    }

    #[test]
    fn initialize_answers_as_the_gateway_and_remembers_url_elicitation_in_the_session_id() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{"url":{}}},"clientInfo":{"name":"c","version":"1"}}}"#;
        let (status, reply, session) = json_of(answer(body, &asked(None, None), None, &[7; 16]));
        assert_eq!(status, 200);
        assert_eq!(reply["result"]["protocolVersion"], "2025-06-18");
        assert_eq!(reply["result"]["serverInfo"]["name"], "mcp-authbridge");
        let id = session.unwrap();
        assert_eq!(Session::parse(&id), Some(Session { url_elicitation: true }));
        let unknown = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2031-01-01","capabilities":{}}}"#;
        let (_, reply, session) = json_of(answer(unknown, &asked(None, None), None, &[7; 16]));
        assert_eq!(reply["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(Session::parse(&session.unwrap()), Some(Session { url_elicitation: false }));
        assert_eq!(Session::parse("upstream-session"), None);
        assert_eq!(Session::parse("mabs_x0123"), None);
    }

    #[test]
    fn the_one_tool_hands_out_the_link_as_text_and_as_a_resource_link() {
        let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        assert!(!needs_link(list));
        let (_, reply, _) = json_of(answer(list, &asked(None, None), None, &[0; 16]));
        let tools = reply["result"]["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0]["name"], "connect_tickets");
        assert!(tools[0]["description"].as_str().unwrap().contains("Call this tool first"));

        let call = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"connect_tickets","arguments":{}}}"#;
        assert!(needs_link(call));
        let (_, reply, _) = json_of(answer(call, &asked(None, Some("2025-11-25")), Some(LINK), &[0; 16]));
        let content = reply["result"]["content"].as_array().unwrap();
        assert!(content[0]["text"].as_str().unwrap().contains(LINK));
        assert_eq!(content[1]["type"], "resource_link");
        assert_eq!(content[1]["uri"], LINK);
        assert_eq!(reply["result"]["isError"], false);
        // Before 2025-06-18 (no header), only the text: older clients know no resource_link.
        let (_, reply, _) = json_of(answer(call, &asked(None, None), Some(LINK), &[0; 16]));
        assert_eq!(reply["result"]["content"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn other_tools_are_an_error_result_or_with_url_elicitation_a_32042() {
        let call = br#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"list_tickets"}}"#;
        let (_, reply, _) = json_of(answer(call, &asked(None, Some("2025-11-25")), Some(LINK), &[0; 16]));
        assert_eq!(reply["result"]["isError"], true);
        assert!(reply["result"]["content"][0]["text"].as_str().unwrap().contains(LINK));
        let eliciting = asked(Some(Session { url_elicitation: true }), Some("2025-11-25"));
        let (_, reply, _) = json_of(answer(call, &eliciting, Some(LINK), &[0; 16]));
        assert_eq!(reply["id"], "a");
        assert_eq!(reply["error"]["code"], -32042);
        let e = &reply["error"]["data"]["elicitations"][0];
        assert_eq!((e["mode"].as_str(), e["url"].as_str()), (Some("url"), Some(LINK)));
        assert_eq!(e["elicitationId"].as_str().unwrap().len(), 16);
        // The connect tool itself still answers with the link.
        let own = br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"connect_tickets"}}"#;
        let (_, reply, _) = json_of(answer(own, &eliciting, Some(LINK), &[0; 16]));
        assert_eq!(reply["result"]["isError"], false);
    }

    #[test]
    fn at_2026_07_28_discover_answers_results_are_stamped_and_url_elicitation_is_input_required() {
        let modern = asked(None, Some("2026-07-28"));
        let discover = br#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}"#;
        let (status, reply, session) = json_of(answer(discover, &modern, None, &[0; 16]));
        assert_eq!((status, session), (200, None));
        let r = &reply["result"];
        assert_eq!(r["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!((r["resultType"].as_str(), r["ttlMs"].as_i64()), (Some("complete"), Some(0)));
        assert_eq!(r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "mcp-authbridge");
        let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
        let (_, reply, _) = json_of(answer(list, &modern, None, &[0; 16]));
        assert_eq!(
            (reply["result"]["cacheScope"].as_str(), reply["result"]["tools"][0]["name"].as_str()),
            (Some("private"), Some("connect_tickets"))
        );
        let eliciting = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami","_meta":{"io.modelcontextprotocol/clientCapabilities":{"elicitation":{"url":{}}}}}}"#;
        let (_, reply, _) = json_of(answer(eliciting, &modern, Some(LINK), &[0; 16]));
        let r = &reply["result"];
        assert_eq!(r["resultType"], "input_required");
        let request = &r["inputRequests"]["connect"];
        assert_eq!(
            (
                request["method"].as_str(),
                request["params"]["mode"].as_str(),
                request["params"]["url"].as_str()
            ),
            (Some("elicitation/create"), Some("url"), Some(LINK))
        );
        assert!(reply.get("error").is_none(), "no -32042 at this revision");
        let plain = br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"connect_tickets"}}"#;
        let (_, reply, _) = json_of(answer(plain, &modern, Some(LINK), &[0; 16]));
        assert_eq!(
            (reply["result"]["resultType"].as_str(), reply["result"]["isError"].as_bool()),
            (Some("complete"), Some(false))
        );
    }

    #[test]
    fn legacy_sessions_post_to_their_own_endpoint_and_hear_back_on_the_stream() {
        let id = Session::default().id(&[1; 16]);
        assert_eq!(
            legacy_endpoint_event("tickets", &id),
            format!("event: endpoint\ndata: /sse/tickets/messages?own={id}\n\n")
        );
        assert_eq!(legacy_message_event(&json!({"id": 1})), "event: message\ndata: {\"id\":1}\n\n");
    }

    #[test]
    fn everything_else_gets_an_mcp_answer() {
        let a = asked(None, None);
        let notification = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(answer(notification, &a, None, &[0; 16]), Answer::Accepted);
        for (method, key) in [
            ("resources/list", "resources"),
            ("prompts/list", "prompts"),
            ("resources/templates/list", "resourceTemplates"),
        ] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#);
            let (status, reply, _) = json_of(answer(body.as_bytes(), &a, None, &[0; 16]));
            assert_eq!((status, reply["result"][key].as_array().map(Vec::len)), (200, Some(0)), "{method}");
        }
        let (_, reply, _) =
            json_of(answer(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, &a, None, &[0; 16]));
        assert_eq!(reply["result"], json!({}));
        let (status, reply, _) =
            json_of(answer(br#"{"jsonrpc":"2.0","id":1,"method":"sampling/x"}"#, &a, None, &[0; 16]));
        assert_eq!((status, reply["error"]["code"].as_i64()), (200, Some(-32601)));
        let (status, reply, _) =
            json_of(answer(br#"{"jsonrpc":"2.0","id":9,"method":"server/discover"}"#, &a, None, &[0; 16]));
        assert_eq!(
            (status, reply["error"]["code"].as_i64(), reply["id"].as_i64()),
            (400, Some(-32000), Some(9))
        );
        let (status, reply, _) = json_of(answer(b"{not json", &a, None, &[0; 16]));
        assert_eq!((status, reply["error"]["code"].as_i64()), (400, Some(-32700)));
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#;
        let (status, reply, _) = json_of(answer(batch, &a, None, &[0; 16]));
        assert_eq!((status, reply.as_array().map(Vec::len)), (200, Some(2)));
    }
}
