//! The console's pages, rendered whole on the server: plain HTML, one stylesheet from the
//! Worker, no script. Every value from storage or from a form is escaped here; secrets reach a
//! page only where it exists to show them once (a key or a link just minted).

use super::forms::{Errors, UpstreamForm};
use super::session::Session;
use crate::core::connect::escape_html as esc;
use crate::core::upstream::Upstream;
use serde_json::Value;

/// The stylesheet, served at `STYLESHEET` (the pages' CSP allows styles from the Worker only).
pub const CSS: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#f6f6f4}\
header{background:#1f2933;color:#fff;padding:.6rem 1.5rem;display:flex;gap:1.5rem;align-items:center}\
header a{color:#fff}header form{margin:0 0 0 auto}main{max-width:72rem;margin:1.5rem auto;padding:0 1.5rem}\
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}table{border-collapse:collapse;width:100%;background:#fff}\
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}th{background:#eceae4}\
label{display:block;margin-top:.8rem;font-weight:600}input,select,textarea{font:inherit;padding:.35rem;box-sizing:border-box}\
input[type=text],input[type=password],textarea,select{width:100%}textarea{font-family:ui-monospace,monospace;min-height:5rem}\
button{font:inherit;padding:.35rem .9rem;margin-top:.8rem;cursor:pointer}td button{margin:0}\
.inline{display:flex;gap:.6rem;align-items:end;flex-wrap:wrap}.inline label{margin:0}.inline input{width:auto}\
.error{color:#a40000;margin:.2rem 0}.notice{background:#e7f4e4;border:1px solid #9c9;padding:.5rem .8rem}\
.warn{color:#8a4b00;font-weight:600}.once{background:#fff8dc;border:1px solid #d9b44a;padding:.8rem}\
code{font-family:ui-monospace,monospace;word-break:break-all}table+form,p+form{margin-top:1rem}.hint{color:#555;font-size:.9em;margin:.2rem 0}";

/// Where the stylesheet is served.
pub const STYLESHEET: &str = "/admin/console.css";

/// The `ADMIN_TOKEN` of `.dev.vars`: a deployment still using it is open to anyone who read
/// the README.
pub const DEV_ADMIN_TOKEN: &str = "dev-admin-token";

fn layout(title: &str, session: Option<&Session>, body: &str) -> String {
    let nav = match session {
        Some(s) => format!(
            "<header><strong>mcp-authbridge</strong><a href=\"/admin/\">Overview</a>\
             <a href=\"/admin/new-upstream\">New upstream</a>\
             <form method=\"get\" action=\"/admin/subjects\" class=\"inline\"><input type=\"text\" name=\"subject\" \
             placeholder=\"subject\" aria-label=\"Subject\" required><button type=\"submit\">Look up</button></form>\
             <form method=\"post\" action=\"/admin/sign-out\">{}<button type=\"submit\">Sign out</button></form></header>",
            csrf_field(s)
        ),
        None => "<header><strong>mcp-authbridge</strong></header>".to_string(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · mcp-authbridge</title><link rel=\"stylesheet\" href=\"{STYLESHEET}\"></head>\
         <body>{nav}<main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    )
}

fn csrf_field(session: &Session) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(&session.csrf()))
}

/// A one-button form posting to `action`, for `subject` (whose page the answer goes back to).
fn button(session: &Session, action: &str, label: &str, subject: Option<&str>) -> String {
    format!(
        "<form method=\"post\" action=\"{}\">{}{}<button type=\"submit\">{}</button></form>",
        esc(action),
        csrf_field(session),
        subject.map(subject_field).unwrap_or_default(),
        esc(label)
    )
}

/// The subject a form acts for, as a hidden field: a subject may be `.` or `..`, which a path
/// segment cannot carry through a browser.
fn subject_field(subject: &str) -> String {
    format!("<input type=\"hidden\" name=\"subject\" value=\"{}\">", esc(subject))
}

/// The subject page's URL, with a notice.
pub fn subject_href(subject: &str, done: Option<&str>) -> String {
    let done = done.map(|d| format!("&done={d}")).unwrap_or_default();
    format!("/admin/subjects?subject={}{done}", query_value(subject))
}

fn error_of(errors: &Errors, field: &str) -> String {
    errors
        .get(field)
        .map(|e| format!("<p class=\"error\" id=\"{field}-error\">{}</p>", esc(e)))
        .unwrap_or_default()
}

fn invalid(errors: &Errors, field: &str) -> String {
    if errors.contains_key(field) {
        format!(" aria-invalid=\"true\" aria-describedby=\"{field}-error\"")
    } else {
        String::new()
    }
}

/// A query value, percent-encoded (subjects may hold `+` and `@`).
pub fn query_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// The sign-in page: paste `ADMIN_TOKEN` once. `csrf`: the double-submit value of its form.
pub fn sign_in_page(csrf: &str, error: Option<&str>) -> String {
    let error =
        error.map(|e| format!("<p class=\"error\" id=\"token-error\">{}</p>", esc(e))).unwrap_or_default();
    let body = format!(
        "<p>Paste the deployment's <code>ADMIN_TOKEN</code>. It is checked once; the console then keeps a \
         session of 12 hours in a cookie of its own.</p><form method=\"post\" action=\"/admin/sign-in\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><label for=\"token\">Admin token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" required autocomplete=\"off\"{}>{error}\
         <button type=\"submit\">Sign in</button></form>",
        esc(csrf),
        if error.is_empty() { "" } else { " aria-invalid=\"true\" aria-describedby=\"token-error\"" },
    );
    layout("Sign in", None, &body)
}

/// A page that only says something, with a way back.
pub fn message_page(
    session: Option<&Session>,
    title: &str,
    text: &str,
    back: Option<(&str, &str)>,
) -> String {
    let back = back
        .map(|(href, label)| format!("<p><a href=\"{}\">{}</a></p>", esc(href), esc(label)))
        .unwrap_or_default();
    layout(title, session, &format!("<p>{}</p>{back}", esc(text)))
}

/// A secret shown once (a key or a connect link just minted).
pub fn shown_once_page(
    session: &Session,
    title: &str,
    what: &str,
    value: &str,
    expires: &str,
    back: &str,
) -> String {
    let body = format!(
        "<div class=\"once\"><p>{}</p><p><code id=\"secret\">{}</code></p><p>Expires: {}</p></div>\
         <p><a href=\"{}\">Back</a></p>",
        esc(what),
        esc(value),
        esc(expires),
        esc(back)
    );
    layout(title, Some(session), &body)
}

/// How values are sealed, as the overview shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealingState<'a> {
    /// `ENCRYPTION_KEY` is set; the id of the key that seals.
    Key {
        id: &'a str,
    },
    /// `DEV_MODE`: the public development key.
    Development,
    Missing,
    Invalid,
}

/// The deployment settings that matter to an operator.
pub struct Settings<'a> {
    pub sealing: SealingState<'a>,
    pub dev_admin_token: bool,
    pub allow_private_upstreams: bool,
    pub public_url: Option<&'a str>,
    /// The origin links are made with (`PUBLIC_URL`, or this request's).
    pub origin: &'a str,
    pub allowed_origins: &'a [String],
}

fn settings_table(s: &Settings) -> String {
    let sealing = match s.sealing {
        SealingState::Key { id } => {
            format!("<code>ENCRYPTION_KEY</code> is set (sealing key id <code>{}</code>)", esc(id))
        }
        SealingState::Development => "<span class=\"warn\">the public development key (DEV_MODE, no \
             <code>ENCRYPTION_KEY</code>): never deploy like this</span>"
            .into(),
        SealingState::Missing => {
            "<span class=\"warn\">no <code>ENCRYPTION_KEY</code>: secrets cannot be stored</span>".into()
        }
        SealingState::Invalid => {
            "<span class=\"warn\"><code>ENCRYPTION_KEY</code> is not valid base64 of 32 bytes</span>".into()
        }
    };
    let token = if s.dev_admin_token {
        "<span class=\"warn\">the development default from .dev.vars: anyone can sign in</span>"
    } else {
        "set"
    };
    let private = if s.allow_private_upstreams {
        "<span class=\"warn\">yes (ALLOW_PRIVATE_UPSTREAMS): http and private addresses allowed, for development only</span>"
    } else {
        "no: upstreams must be public https"
    };
    let public_url = match s.public_url {
        Some(u) => format!("<code>{}</code>", esc(u)),
        None => format!("not set: links use the request's origin, <code>{}</code>", esc(s.origin)),
    };
    let origins = if s.allowed_origins.is_empty() {
        "none besides the gateway's own".to_string()
    } else {
        s.allowed_origins.iter().map(|o| format!("<code>{}</code>", esc(o))).collect::<Vec<_>>().join(", ")
    };
    format!(
        "<table id=\"settings\"><tr><th>Encryption</th><td>{sealing}</td></tr><tr><th>Admin token</th><td>{token}</td></tr>\
         <tr><th>Private upstreams allowed</th><td>{private}</td></tr><tr><th>Public URL</th><td>{public_url}</td></tr>\
         <tr><th>Allowed browser origins</th><td>{origins}</td></tr></table>"
    )
}

/// `/admin/`: the settings that matter, and the upstreams.
pub fn overview_page(
    session: &Session,
    settings: &Settings,
    upstreams: &[Upstream],
    notice: Option<&str>,
) -> String {
    let mut rows = String::new();
    for u in upstreams {
        let auth = match (&u.oauth, u.user_fields.is_empty()) {
            (Some(_), _) => "OAuth",
            (None, false) => "user fields",
            (None, true) => "headers only",
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"/admin/upstreams/{id}\">{id}</a></td><td><code>{}</code></td><td>{auth}</td><td>{}</td></tr>",
            esc(&u.url),
            esc(u.public_view()["sign_in"].as_str().unwrap_or("")),
            id = esc(u.id.as_str()),
        ));
    }
    let list = if upstreams.is_empty() {
        "<p>No upstreams yet.</p>".to_string()
    } else {
        format!("<table id=\"upstreams\"><tr><th>id</th><th>url</th><th>credentials</th><th>sign-in</th></tr>{rows}</table>")
    };
    let body = format!(
        "{}<h2>Deployment</h2>{}<h2>Upstreams</h2>{list}<p><a href=\"/admin/new-upstream\">New upstream</a></p>",
        notice_html(notice),
        settings_table(settings)
    );
    layout("Overview", Some(session), &body)
}

fn notice_html(notice: Option<&str>) -> String {
    notice.map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", esc(n))).unwrap_or_default()
}

/// The notice a `done` query value stands for, after a form's redirect.
pub fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "saved" => "Upstream saved.",
        "deleted" => "Upstream deleted.",
        "key-revoked" => "Key revoked: it fails from its next request on.",
        "grant-revoked" => "Grant revoked: its tokens are refused from their next request on.",
        "disconnected" => "Connection forgotten.",
        "disconnected-revoked" => "Connection forgotten, and its tokens revoked at the authorization server.",
        _ => return None,
    })
}

fn text_input(name: &str, label: &str, value: &str, errors: &Errors, hint: &str) -> String {
    format!(
        "<label for=\"{name}\">{label}</label>{}<input id=\"{name}\" name=\"{name}\" type=\"text\" value=\"{}\"{}>{}",
        hint_html(hint),
        esc(value),
        invalid(errors, name),
        error_of(errors, name)
    )
}

fn hint_html(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("<p class=\"hint\">{hint}</p>")
    }
}

fn textarea(name: &str, label: &str, value: &str, errors: &Errors, hint: &str) -> String {
    format!(
        "<label for=\"{name}\">{label}</label>{}<textarea id=\"{name}\" name=\"{name}\"{}>{}</textarea>{}",
        hint_html(hint),
        invalid(errors, name),
        esc(value),
        error_of(errors, name)
    )
}

fn select(name: &str, label: &str, value: &str, options: &[&str], errors: &Errors) -> String {
    let opts: String = options
        .iter()
        .map(|o| format!("<option{}>{}</option>", if *o == value { " selected" } else { "" }, esc(o)))
        .collect();
    format!(
        "<label for=\"{name}\">{label}</label><select id=\"{name}\" name=\"{name}\"{}>{opts}</select>{}",
        invalid(errors, name),
        error_of(errors, name)
    )
}

/// The upstream form: new (`form.id` typed) or editing a stored one. The client secret field
/// is always empty: a secret typed is never put back into the page.
pub fn upstream_page(
    session: &Session,
    form: &UpstreamForm,
    new: bool,
    errors: &Errors,
    notice: Option<&str>,
) -> String {
    let action = if new { "/admin/upstreams".to_string() } else { format!("/admin/upstreams/{}", form.id) };
    let id = if new {
        text_input("id", "Id", &form.id, errors, "lower case letters, digits, <code>-</code> and <code>_</code>; the MCP URL is <code>/mcp/&lt;id&gt;</code>")
    } else {
        String::new()
    };
    let secret_hint = if form.client_secret_set {
        "a client secret is stored; leave empty to keep it"
    } else {
        "for an operator-registered confidential client; needs <code>authorization_server</code> in the OAuth settings"
    };
    let body = format!(
        "{}{}<form method=\"post\" action=\"{}\">{}{id}{}{}{}{}{}{}\
         <label for=\"client_secret\">OAuth client secret</label><p class=\"hint\">{secret_hint}</p>\
         <input id=\"client_secret\" name=\"client_secret\" type=\"password\" autocomplete=\"off\" value=\"\"{}>{}\
         <label><input type=\"checkbox\" name=\"connect_tool\"{}> connect tool (offer a <code>connect</code> tool to unconnected users)</label>{}\
         <button type=\"submit\">Save</button></form>",
        notice_html(notice),
        error_of(errors, ""),
        esc(&action),
        csrf_field(session),
        text_input("url", "URL", &form.url, errors, "the upstream MCP server's URL"),
        select("transport", "Transport", &form.transport, &["streamable-http", "sse"], errors),
        textarea("headers", "Headers", &form.headers, errors, "one <code>Name: template</code> a line, e.g. <code>X-API-KEY: {{user.api_key}}</code> (API.md §2)"),
        textarea("user_fields", "User fields", &form.user_fields, errors, "JSON: <code>[{\"name\": \"api_key\", \"label\": \"API key\", \"secret\": true}]</code>; empty: none"),
        textarea("oauth", "OAuth settings", &form.oauth, errors, "JSON: <code>{\"scopes\": [...], \"client_id\": ..., \"authorization_server\": ...}</code>; empty: no OAuth"),
        select("sign_in", "Sign-in for OAuth-only clients", &form.sign_in, &["off", "self", "link"], errors),
        invalid(errors, "client_secret"),
        error_of(errors, "client_secret"),
        if form.connect_tool { " checked" } else { "" },
        error_of(errors, "connect_tool"),
    );
    let delete = if new {
        String::new()
    } else {
        format!(
            "<h2>Delete</h2>{}",
            button(session, &format!("/admin/upstreams/{}/delete", form.id), "Delete this upstream", None)
        )
    };
    let title = if new { "New upstream".to_string() } else { format!("Upstream {}", form.id) };
    layout(&title, Some(session), &format!("{body}{delete}"))
}

/// What the subject page shows: the admin API's views of the subject's keys, connections and
/// grants (the same JSON `GET /admin/v1/{keys,connections,grants}` answer), the upstreams a
/// link can be minted for, and the key form as typed with its errors.
pub struct SubjectView<'a> {
    pub subject: &'a str,
    pub keys: &'a [Value],
    pub connections: &'a [Value],
    pub grants: &'a [Value],
    pub linkable: Vec<&'a str>,
    pub key_form: &'a [(String, String)],
    pub key_errors: &'a Errors,
    pub link_errors: &'a Errors,
    pub notice: Option<&'a str>,
}

fn cell(v: &Value, name: &str) -> String {
    match &v[name] {
        Value::Null => "—".into(),
        Value::String(s) => esc(s),
        Value::Array(items) => {
            esc(&items.iter().map(|i| i.as_str().unwrap_or("").to_string()).collect::<Vec<_>>().join(", "))
        }
        other => esc(&other.to_string()),
    }
}

/// `/admin/subjects?subject=`: keys, connections and grants of one subject, with what can be
/// done to each.
pub fn subject_page(session: &Session, v: &SubjectView) -> String {
    let me = Some(v.subject);
    let revoke = |what: &str, item: &Value| {
        let action = format!("/admin/{what}/{}/revoke", item["id"].as_str().unwrap_or(""));
        button(session, &action, "Revoke", me)
    };
    let columns = ["label", "upstreams", "created_at", "expires_at", "last_used"];
    let keys = rows(v.keys, &columns, |k| revoke("keys", k));
    let keys =
        table("keys", &["label", "upstreams", "created", "expires", "last used", ""], &keys, "No keys.");
    let typed = |n| super::super::connect::form_value(v.key_form, n).unwrap_or("");
    let key_form = format!(
        "<form method=\"post\" action=\"/admin/keys\">{}{}{}<div class=\"inline\"><div>{}</div><div>{}</div><div>{}</div>\
         <button type=\"submit\">Mint a key</button></div></form>",
        csrf_field(session),
        subject_field(v.subject),
        error_of(v.key_errors, ""),
        text_input("upstreams", "Upstreams", typed("upstreams"), v.key_errors, "ids, comma-separated, or <code>*</code>"),
        text_input("label", "Label", typed("label"), v.key_errors, "optional"),
        text_input("expires_in_days", "Expires in days", typed("expires_in_days"), v.key_errors, "empty: never"),
    );
    let mut conns = String::new();
    for c in v.connections {
        let upstream = c["upstream"].as_str().unwrap_or("");
        let missing = match c.get("missing").and_then(Value::as_array) {
            Some(names) if names.is_empty() => "none".to_string(),
            Some(_) => cell(c, "missing"),
            None => String::new(),
        };
        let action = if c["updated_at"].is_null() {
            String::new()
        } else {
            button(session, &format!("/admin/connections/{upstream}/disconnect"), "Disconnect", me)
        };
        conns.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{missing}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            esc(upstream),
            cell(c, "status"),
            cell(c, "expires_at"),
            cell(c, "updated_at"),
            if c.get("problem").is_some() { cell(c, "problem") } else { String::new() },
        ));
    }
    let conns = table(
        "connections",
        &["upstream", "status", "missing", "expires", "updated", "problem", ""],
        &conns,
        "No connections, and no key that could use one.",
    );
    let options: String = v.linkable.iter().map(|u| format!("<option>{}</option>", esc(u))).collect();
    let link_form = if v.linkable.is_empty() {
        "<p>No upstream has anything for a user to connect.</p>".to_string()
    } else {
        format!(
            "<form method=\"post\" action=\"/admin/links\">{}{}{}<div class=\"inline\"><div><label for=\"link-upstream\">Upstream</label>\
             <select id=\"link-upstream\" name=\"upstream\"{}>{options}</select>{}</div>\
             <button type=\"submit\">Mint a connect link</button></div></form>",
            csrf_field(session),
            subject_field(v.subject),
            error_of(v.link_errors, ""),
            invalid(v.link_errors, "upstream"),
            error_of(v.link_errors, "upstream"),
        )
    };
    let columns = ["client_name", "client_id", "upstream", "created_at", "last_used"];
    let grants = rows(v.grants, &columns, |g| revoke("grants", g));
    let grants = table(
        "grants",
        &["client", "client id", "upstream", "created", "last used", ""],
        &grants,
        "No grants.",
    );
    let body = format!(
        "{}<h2>Keys</h2>{keys}{key_form}<h2>Connections</h2>{conns}{link_form}<h2>Grants</h2>{grants}",
        notice_html(v.notice)
    );
    layout(&format!("Subject {}", v.subject), Some(session), &body)
}

/// A table row per item: its `columns`, then its `action` cell.
fn rows(items: &[Value], columns: &[&str], action: impl Fn(&Value) -> String) -> String {
    let mut out = String::new();
    for item in items {
        out.push_str("<tr>");
        for column in columns {
            out.push_str(&format!("<td>{}</td>", cell(item, column)));
        }
        out.push_str(&format!("<td>{}</td></tr>", action(item)));
    }
    out
}

fn table(id: &str, heads: &[&str], rows: &str, empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p id=\"{id}\">{empty}</p>");
    }
    let heads: String = heads.iter().map(|h| format!("<th>{h}</th>")).collect();
    format!("<table id=\"{id}\"><tr>{heads}</tr>{rows}</table>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session() -> Session {
        Session::new(0, &[3; 32])
    }

    #[test]
    fn every_form_carries_the_sessions_csrf_token_and_posts_here() {
        let s = session();
        let keys = [
            json!({"id": "k1", "label": "<b>", "upstreams": ["a"], "created_at": "t", "expires_at": null, "last_used": null}),
        ];
        let grants = [
            json!({"id": "g1", "client_name": "App", "client_id": "c", "upstream": "a", "created_at": "t", "last_used": "t"}),
        ];
        let conns = [
            json!({"upstream": "a", "status": "connection_required", "missing": ["api_key"], "updated_at": "t", "expires_at": null}),
        ];
        let errors = Errors::new();
        let html = subject_page(
            &s,
            &SubjectView {
                subject: "al+ce@x",
                keys: &keys,
                connections: &conns,
                grants: &grants,
                linkable: vec!["a"],
                key_form: &[],
                key_errors: &errors,
                link_errors: &errors,
                notice: notice("key-revoked"),
            },
        );
        let forms = html.matches("<form method=\"post\"").count();
        assert_eq!(forms, 6, "sign-out, revoke key, mint key, disconnect, mint link, revoke grant");
        assert_eq!(html.matches(&format!("name=\"csrf\" value=\"{}\"", s.csrf())).count(), forms);
        assert!(html.contains("action=\"/admin/keys/k1/revoke\""));
        assert_eq!(
            html.matches("name=\"subject\" value=\"al+ce@x\"").count(),
            5,
            "every subject form says whose"
        );
        assert_eq!(subject_href("al+ce@x", Some("saved")), "/admin/subjects?subject=al%2Bce%40x&done=saved");
        assert!(html.contains("&lt;b&gt;") && !html.contains("<b>"));
        assert!(html.contains("Key revoked"));
        assert!(html.contains("api_key"));
        assert!(!html.contains("<script") && !html.contains("style="));
    }

    #[test]
    fn the_upstream_form_shows_each_error_next_to_its_field_and_never_a_secret() {
        let s = session();
        let form = UpstreamForm { id: "t".into(), headers: "X: {{user.<x>".into(), ..Default::default() };
        let errors = Errors::from([("headers", "headers.X: unclosed {{".to_string())]);
        let html = upstream_page(&s, &form, true, &errors, None);
        let field = html.find("<textarea id=\"headers\"").unwrap();
        let error = html.find("<p class=\"error\" id=\"headers-error\">headers.X: unclosed {{</p>").unwrap();
        assert!(error > field && error - field < 200, "right after the field");
        assert!(html.contains("aria-describedby=\"headers-error\""));
        assert!(html.contains("X: {{user.&lt;x&gt;</textarea>"), "what was typed, escaped");
        assert!(html.contains("name=\"client_secret\" type=\"password\" autocomplete=\"off\" value=\"\""));
        assert!(html.contains("action=\"/admin/upstreams\""));
    }

    #[test]
    fn settings_say_what_is_unsafe() {
        let s = session();
        let origins = vec!["https://app.example".to_string()];
        let settings = Settings {
            sealing: SealingState::Development,
            dev_admin_token: true,
            allow_private_upstreams: true,
            public_url: None,
            origin: "http://127.0.0.1:8787",
            allowed_origins: &origins,
        };
        let html = overview_page(&s, &settings, &[], None);
        assert!(html.contains("public development key"));
        assert!(html.contains("development default"));
        assert!(html.contains("ALLOW_PRIVATE_UPSTREAMS"));
        assert!(html.contains("request's origin, <code>http://127.0.0.1:8787</code>"));
        assert!(html.contains("https://app.example"));
        let deployed = Settings {
            sealing: SealingState::Key { id: "abcd1234" },
            dev_admin_token: false,
            allow_private_upstreams: false,
            public_url: Some("https://gw.example"),
            ..settings
        };
        let html = overview_page(&s, &deployed, &[], None);
        assert!(!html.contains("class=\"warn\""), "{html}");
        assert!(html.contains("abcd1234") && html.contains("https://gw.example"));
    }

    #[test]
    fn sign_in_and_shown_once_pages() {
        let html = sign_in_page("c\"x", Some("That is not the admin token."));
        assert!(html.contains("value=\"c&quot;x\"") && html.contains("type=\"password\""));
        assert!(html.contains("That is not the admin token."));
        assert!(!html.contains("Sign out"));
        let once = shown_once_page(&session(), "Key minted", "Shown only now", "mab_<k>", "never", "/admin/");
        assert!(once.contains("mab_&lt;k&gt;"));
        assert_eq!(query_value("a+b@c"), "a%2Bb%40c");
        assert_eq!(notice("nope"), None);
    }
}
