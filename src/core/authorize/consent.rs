//! The page a person sees when an MCP client asks the gateway for access (sign-in `self`): who
//! is asking (the client's name, escaped, and the host it will send the person back to), for
//! which upstream, the upstream's own fields to fill in, and Allow / Deny. What the page must
//! remember of the request travels in the form itself, sealed and short-lived.

use super::request::Authorization;
use crate::core::connect::{escape_html, fields_html, page, FormErrors};
use crate::core::ids::UpstreamId;
use crate::core::upstream::UserField;
use serde::{Deserialize, Serialize};
use url::Url;

/// How long a consent page may be answered.
pub const SESSION_MS: u64 = 10 * 60 * 1000;

/// An authorization request between its consent page and the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub resource: String,
    pub upstream: UpstreamId,
    pub expires_at: u64,
}

impl Session {
    pub fn new(a: Authorization, client_name: &str, now_ms: u64) -> Session {
        Session {
            client_id: a.client_id,
            client_name: client_name.to_string(),
            redirect_uri: a.redirect_uri,
            state: a.state,
            code_challenge: a.code_challenge,
            resource: a.resource,
            upstream: a.upstream,
            expires_at: now_ms + SESSION_MS,
        }
    }

    /// The origin the person will be sent back to (the consent page's form may redirect there).
    pub fn redirect_origin(&self) -> String {
        Url::parse(&self.redirect_uri).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
    }

    /// The host the person will be sent back to, as the page names it.
    pub fn redirect_host(&self) -> String {
        Url::parse(&self.redirect_uri).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()
    }
}

/// The consent page. `session` is the sealed `Session`; `csrf` must match the cookie set with
/// the page.
pub fn consent_page(
    s: &Session,
    fields: &[UserField],
    session: &str,
    csrf: &str,
    errors: &FormErrors,
    previous: &[(String, String)],
) -> String {
    let upstream = escape_html(s.upstream.as_str());
    let mut body = format!(
        "<p><strong>{}</strong> asks to use <strong>{upstream}</strong> on your behalf. After you allow it, \
         you are sent back to <strong>{}</strong>.</p>\
         <p>What you enter here is stored encrypted and sent only to {upstream}, with that application's \
         requests. Allow only an application you started yourself.</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"session\" value=\"{}\">",
        escape_html(&s.client_name),
        escape_html(&s.redirect_host()),
        escape_html(csrf),
        escape_html(session),
    );
    body.push_str(&fields_html(fields, errors, previous));
    body.push_str(
        "<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button></form>",
    );
    page(&format!("Allow access to {}", s.upstream.as_str()), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            client_id: "mabc_x".into(),
            client_name: "<script>alert(1)</script>".into(),
            redirect_uri: "http://127.0.0.1:9/cb".into(),
            state: None,
            code_challenge: "c".into(),
            resource: "https://gw.example/mcp/tickets".into(),
            upstream: UpstreamId::parse("tickets").unwrap(),
            expires_at: 0,
        }
    }

    #[test]
    fn the_page_names_who_asks_where_you_go_back_and_escapes_them() {
        let fields = [UserField { name: "api_key".into(), label: "API key".into(), secret: true }];
        let html = consent_page(&session(), &fields, "v1.k.sealed", "tok", &FormErrors::new(), &[]);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>"));
        assert!(html.contains("<strong>127.0.0.1</strong>"));
        assert!(html.contains("name=\"api_key\" type=\"password\""));
        assert!(html.contains("value=\"allow\"") && html.contains("value=\"deny\""));
        assert_eq!(session().redirect_host(), "127.0.0.1");
        assert_eq!(session().redirect_origin(), "http://127.0.0.1:9");
    }
}
