//! Per-user connect links (API.md §3): the link record, the form a user fills in, and the
//! plain HTML pages around it. Pages work without JavaScript, say in plain words what happens,
//! and never echo a secret the user typed.

use super::encoding::rfc3339;
use super::headers::is_field_value;
use super::ids::{SubjectId, UpstreamId};
use super::secret::Secret;
use super::upstream::UserField;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default link lifetime: 24 hours.
pub const DEFAULT_LINK_SECONDS: u64 = 24 * 3600;
/// Longest link lifetime accepted: 30 days.
pub const MAX_LINK_SECONDS: u64 = 30 * 24 * 3600;
/// Longest value a user may type into a field.
pub const MAX_FIELD_LEN: usize = 4096;

/// A link as stored in its subject's Durable Object, under the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub subject: SubjectId,
    pub upstream: UpstreamId,
    pub expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<u64>,
    pub created_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Usable,
    Expired,
    Used,
}

impl LinkRecord {
    pub fn state(&self, now_ms: u64) -> LinkState {
        if self.used_at.is_some() {
            LinkState::Used
        } else if self.expires_at <= now_ms {
            LinkState::Expired
        } else {
            LinkState::Usable
        }
    }
}

/// What is wrong with a submitted form, per field (shown next to the field).
pub type FormErrors = BTreeMap<String, &'static str>;

/// Checks a submitted form against the upstream's fields; returns each field's value.
pub fn validate_form(
    fields: &[UserField],
    submitted: &[(String, String)],
) -> Result<BTreeMap<String, Secret>, FormErrors> {
    let mut values = BTreeMap::new();
    let mut errors = FormErrors::new();
    for field in fields {
        let value = submitted.iter().find(|(k, _)| *k == field.name).map(|(_, v)| v.trim()).unwrap_or("");
        if value.is_empty() {
            errors.insert(field.name.clone(), "Please fill this in.");
        } else if value.len() > MAX_FIELD_LEN {
            errors.insert(field.name.clone(), "This is too long (at most 4096 characters).");
        } else if !is_field_value(value) {
            errors.insert(field.name.clone(), "Use printable ASCII characters only, on one line.");
        } else {
            values.insert(field.name.clone(), Secret::new(value));
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Headers every page carries besides its CSP: no framing, no leaking the link through
/// `Referer`, no caching, no sniffing.
pub const PAGE_HEADERS: [(&str, &str); 5] = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
];

/// The pages' Content-Security-Policy: no scripts, no framing, forms post only here. The OAuth
/// confirm form is answered by a redirect to the authorization server, and browsers apply
/// `form-action` to that redirect too, so that page also allows https (and http in local
/// development) as a form target.
pub fn page_csp(form_redirects: bool, allow_http: bool) -> String {
    let targets = match (form_redirects, allow_http) {
        (false, _) => "'self'",
        (true, false) => "'self' https:",
        (true, true) => "'self' https: http:",
    };
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Who the page connects: a link belongs to one subject, and whoever opens it should know which.
fn whose(subject: &str) -> String {
    format!(
        "<p>This connects the account of <strong>{}</strong>. If that is not you, close this page.</p>",
        escape_html(subject)
    )
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}\
label{display:block;margin-top:1rem;font-weight:600}input{display:block;width:100%;padding:.5rem;font:inherit;box-sizing:border-box}\
.error{color:#a40000}button{margin-top:1.5rem;padding:.6rem 1.2rem;font:inherit}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape_html(title)
    )
}

/// A page that only says something: success, or what went wrong and what to do.
pub fn message_page(title: &str, message: &str) -> String {
    page(title, &format!("<p>{}</p>", escape_html(message)))
}

/// The form for an upstream's `user_fields`. `csrf` goes in a hidden field and must match the
/// cookie set with the page. Values typed into secret fields are never put back into the page.
pub fn form_page(
    subject: &str,
    upstream: &str,
    fields: &[UserField],
    csrf: &str,
    expires_at: u64,
    errors: &FormErrors,
    previous: &[(String, String)],
) -> String {
    let mut body = format!(
        "<p>Connect your account for <strong>{}</strong>. What you enter here is stored encrypted and sent \
         only to that service, with your requests.</p>{}<p>This link works once and expires at {} (UTC).</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape_html(upstream),
        whose(subject),
        rfc3339(expires_at),
        escape_html(csrf)
    );
    for field in fields {
        let id = escape_html(&field.name);
        let kind = if field.secret { "password" } else { "text" };
        let value = if field.secret {
            String::new()
        } else {
            previous.iter().find(|(k, _)| *k == field.name).map(|(_, v)| escape_html(v)).unwrap_or_default()
        };
        let error = errors.get(&field.name);
        body.push_str(&format!(
            "<label for=\"{id}\">{}</label><input id=\"{id}\" name=\"{id}\" type=\"{kind}\" value=\"{value}\" \
             required autocomplete=\"off\"{}>",
            escape_html(&field.label),
            if error.is_some() { format!(" aria-describedby=\"{id}-error\" aria-invalid=\"true\"") } else { String::new() }
        ));
        if let Some(e) = error {
            body.push_str(&format!("<p class=\"error\" id=\"{id}-error\">{}</p>", escape_html(e)));
        }
    }
    body.push_str("<button type=\"submit\">Connect</button></form>");
    page(&format!("Connect {upstream}"), &body)
}

/// The confirm step for an OAuth upstream: one button, then the redirect to its sign-in page.
pub fn confirm_page(subject: &str, upstream: &str, csrf: &str, expires_at: u64) -> String {
    let body = format!(
        "<p>Connect your account for <strong>{u}</strong>. You will be sent to its sign-in page; after you \
         agree there, you come back here. The gateway then keeps your access encrypted and uses it only \
         for your requests to {u}.</p>{}<p>This link works once and expires at {} (UTC).</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\">Continue to sign in</button></form>",
        whose(subject),
        rfc3339(expires_at),
        escape_html(csrf),
        u = escape_html(upstream),
    );
    page(&format!("Connect {upstream}"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<UserField> {
        vec![
            UserField { name: "api_key".into(), label: "Your <API> key".into(), secret: true },
            UserField { name: "region".into(), label: "Region".into(), secret: false },
        ]
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn link_states() {
        let mut link = LinkRecord {
            subject: SubjectId::parse("a").unwrap(),
            upstream: UpstreamId::parse("u").unwrap(),
            expires_at: 10,
            used_at: None,
            created_at: 0,
        };
        assert_eq!(link.state(9), LinkState::Usable);
        assert_eq!(link.state(10), LinkState::Expired);
        link.used_at = Some(5);
        assert_eq!(link.state(6), LinkState::Used);
    }

    #[test]
    fn forms_are_validated_field_by_field() {
        let ok = validate_form(&fields(), &pairs(&[("api_key", " k1 "), ("region", "eu"), ("extra", "x")]))
            .unwrap();
        assert_eq!(ok.get("api_key").map(Secret::expose), Some("k1"));
        assert_eq!(ok.len(), 2, "unknown fields are ignored");
        let errors = validate_form(&fields(), &pairs(&[("api_key", "a\r\nb")])).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors["api_key"].contains("printable"));
        assert!(errors["region"].contains("fill"));
        let long = "x".repeat(MAX_FIELD_LEN + 1);
        let errors = validate_form(&fields(), &pairs(&[("api_key", &long), ("region", "é")])).unwrap_err();
        assert!(errors["api_key"].contains("too long"));
        assert!(errors["region"].contains("printable"));
    }

    #[test]
    fn pages_escape_and_never_echo_secrets() {
        let mut errors = FormErrors::new();
        errors.insert("region".into(), "Please fill this in.");
        let html = form_page(
            "alice@example.com",
            "tick<ets>",
            &fields(),
            "csrf\"x",
            0,
            &errors,
            &pairs(&[("api_key", "typed-secret"), ("region", "<eu>")]),
        );
        assert!(html.contains("Your &lt;API&gt; key"));
        assert!(html.contains("tick&lt;ets&gt;"));
        assert!(html.contains("value=\"csrf&quot;x\""));
        assert!(html.contains("value=\"&lt;eu&gt;\""));
        assert!(!html.contains("typed-secret"));
        assert!(html.contains("type=\"password\""));
        assert!(html.contains("aria-invalid=\"true\""));
        assert!(!html.contains("<script"));
        assert_eq!(escape_html("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert!(message_page("Done", "<b>").contains("&lt;b&gt;"));
        assert!(html.contains("account of <strong>alice@example.com</strong>"));
        let confirm = confirm_page("bob", "git<hub>", "tok", 0);
        assert!(confirm.contains("<strong>bob</strong>"));
        assert!(page_csp(false, true).contains("form-action 'self';"));
        assert!(page_csp(true, false).contains("form-action 'self' https:;"));
        assert!(
            confirm.contains("git&lt;hub&gt;")
                && confirm.contains("value=\"tok\"")
                && confirm.contains("<form method=\"post\">")
        );
    }
}
