//! The pages a person sees when an MCP client asks the gateway for access: with sign-in `link`,
//! first a field for the connect link they were given (it names the account); then consent: who
//! is asking (the client's name, escaped, and the host it will send the person back to), for
//! which upstream and which account, the upstream's own fields to fill in (or, for an upstream
//! with its own OAuth, that its sign-in page comes next), and Allow / Deny. What the pages must
//! remember of the request travels in the form itself, sealed and short-lived.

use super::grant::ClientReturn;
use super::request::Authorization;
use crate::core::connect::{escape_html, fields_html, page, FormErrors};
use crate::core::ids::{SubjectId, UpstreamId};
use crate::core::keys::KeyHash;
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
    /// Sign-in `link`: the connect link the person gave, once checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkRef>,
}

/// A connect link, as an authorization keeps it: where its store is, its hash, its subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRef {
    pub routing: String,
    pub hash: KeyHash,
    pub subject: SubjectId,
}

/// Which page of the authorization the person is on.
pub enum Step<'a> {
    /// Sign-in `link`: paste the connect link.
    PasteLink,
    /// Allow or deny; `fields` to fill in first, or `oauth`: the upstream's sign-in comes next.
    Consent { fields: &'a [UserField], oauth: bool },
}

/// The link token in what a person pasted: a connect URL (`…/connect/{token}`) or the bare token.
pub fn pasted_link(text: &str) -> &str {
    let text = text.trim();
    let token = text.rsplit_once("/connect/").map_or(text, |(_, t)| t);
    token.split(['?', '#', '/']).next().unwrap_or_default()
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
            link: None,
        }
    }

    /// What the code will be bound to.
    pub fn client_return(&self) -> ClientReturn {
        ClientReturn {
            client_id: KeyHash::of(&self.client_id),
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            code_challenge: self.code_challenge.clone(),
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

/// The page of `step`. `session` is the sealed `Session`; `csrf` must match the cookie set with
/// the page.
pub fn consent_page(
    s: &Session,
    step: &Step<'_>,
    session: &str,
    csrf: &str,
    errors: &FormErrors,
    previous: &[(String, String)],
) -> String {
    let upstream = escape_html(s.upstream.as_str());
    let mut body = format!(
        "<p><strong>{}</strong> asks to use <strong>{upstream}</strong> on your behalf. After you allow it, \
         you are sent back to <strong>{}</strong>.</p>",
        escape_html(&s.client_name),
        escape_html(&s.redirect_host()),
    );
    match (step, &s.link) {
        (Step::PasteLink, _) => body.push_str(
            "<p>Paste the connect link you were given for this service: it says which account to use.</p>",
        ),
        (Step::Consent { .. }, Some(link)) => body.push_str(&format!(
            "<p>This connects the account of <strong>{}</strong>. If that is not you, deny.</p>",
            escape_html(link.subject.as_str())
        )),
        (Step::Consent { .. }, None) => {
            body.push_str("<p>This makes a new account of its own for that application.</p>")
        }
    }
    body.push_str(match step {
        Step::Consent { oauth: true, .. } => {
            "<p>After you allow it, you sign in at the service itself; the gateway then keeps your access \
             encrypted and uses it only with that application's requests. Allow only an application you \
             started yourself.</p>"
        }
        _ => {
            "<p>What you enter here is stored encrypted and sent only to the service, with that \
             application's requests. Allow only an application you started yourself.</p>"
        }
    });
    body.push_str(&format!(
        "<form method=\"post\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"session\" value=\"{}\">",
        escape_html(csrf),
        escape_html(session),
    ));
    let allow = match step {
        Step::PasteLink => {
            let link = [UserField { name: "link".into(), label: "Connect link".into(), secret: true }];
            body.push_str(&fields_html(&link, errors, &[]));
            "Continue"
        }
        Step::Consent { fields, oauth } => {
            body.push_str(&fields_html(fields, errors, previous));
            if *oauth {
                "Allow and sign in"
            } else {
                "Allow"
            }
        }
    };
    body.push_str(&format!(
        "<button type=\"submit\" name=\"decision\" value=\"allow\">{allow}</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button></form>",
    ));
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
            link: None,
        }
    }

    #[test]
    fn the_page_names_who_asks_where_you_go_back_and_escapes_them() {
        let fields = [UserField { name: "api_key".into(), label: "API key".into(), secret: true }];
        let step = Step::Consent { fields: &fields, oauth: false };
        let html = consent_page(&session(), &step, "v1.k.sealed", "tok", &FormErrors::new(), &[]);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>"));
        assert!(html.contains("<strong>127.0.0.1</strong>"));
        assert!(html.contains("name=\"api_key\" type=\"password\""));
        assert!(html.contains("value=\"allow\"") && html.contains("value=\"deny\""));
        assert!(html.contains("a new account of its own"));
        assert_eq!(session().redirect_host(), "127.0.0.1");
        assert_eq!(session().redirect_origin(), "http://127.0.0.1:9");
    }

    #[test]
    fn with_a_link_the_page_names_the_account_and_asks_for_the_link_first() {
        let link = LinkRef {
            routing: "r".into(),
            hash: KeyHash::of("t"),
            subject: SubjectId::parse("alice").unwrap(),
        };
        let s = Session { link: Some(link), ..session() };
        let paste = consent_page(&session(), &Step::PasteLink, "v1", "tok", &FormErrors::new(), &[]);
        assert!(paste.contains("name=\"link\" type=\"password\"") && paste.contains(">Continue<"));
        let oauth =
            consent_page(&s, &Step::Consent { fields: &[], oauth: true }, "v1", "t", &FormErrors::new(), &[]);
        assert!(oauth.contains("the account of <strong>alice</strong>"));
        assert!(oauth.contains("you sign in at the service itself") && oauth.contains(">Allow and sign in<"));
    }

    #[test]
    fn a_pasted_link_is_its_token() {
        assert_eq!(pasted_link(" https://gw.example/connect/mabl_r_abc \n"), "mabl_r_abc");
        assert_eq!(pasted_link("https://gw.example/connect/mabl_r_abc?x=1#y"), "mabl_r_abc");
        assert_eq!(pasted_link("mabl_r_abc"), "mabl_r_abc");
        assert_eq!(pasted_link(""), "");
    }
}
