//! Per-user connect links (API.md §3): the link record, the form a user fills in, and the
//! plain HTML pages around it. Pages work without JavaScript, say in plain words what happens,
//! and never echo a secret the user typed.

use super::encoding::rfc3339;
use super::headers::is_field_value;
use super::ids::{SubjectId, UpstreamId};
use super::keys::KeyHash;
use super::seal::Sealed;
use super::secret::Secret;
use super::upstream::UserField;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default lifetime of a link the operator asks for: 24 hours.
pub const DEFAULT_LINK_SECONDS: u64 = 24 * 3600;
/// Lifetime of a link handed out with a `connection_required` answer: 1 hour.
pub const CONNECTION_REQUIRED_LINK_SECONDS: u64 = 3600;
/// A `connection_required` link is handed out again while at least this much of it is left
/// (enough to open it, sign in and come back: a pending authorization lives 10 minutes).
pub const REUSE_MIN_REMAINING_MS: u64 = 15 * 60 * 1000;
/// Live links the operator minted, kept per subject and upstream (the oldest go).
pub const MAX_LIVE_LINKS: usize = 20;
/// How long a used or expired link is remembered (so opening it says so, 410, not 404).
pub const LINK_TOMBSTONE_MS: u64 = 7 * 24 * 3600 * 1000;
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
    /// A link minted for a `connection_required` answer keeps its token, sealed
    /// (`Context::LinkToken`), so that the next such answer hands out the same link instead of a
    /// new one; a link the operator minted has none and is never handed out again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Sealed>,
    /// The browser that opened the link first (the SHA-256 of its `mab_browser` cookie): the
    /// only one that may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_hash: Option<KeyHash>,
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

/// Who may use a link: the first browser that opens it owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    /// Nobody had opened it: `browser` owns it from now on.
    Claimed,
    /// `browser` opened it before.
    Owner,
    /// Another browser opened it first.
    OtherBrowser,
}

impl LinkRecord {
    /// What opening the link in `browser` (the hash of its cookie, `None` without one) means.
    pub fn claim(&self, browser: Option<&KeyHash>) -> Claim {
        match (&self.browser_hash, browser) {
            (None, Some(_)) => Claim::Claimed,
            (Some(owner), Some(b))
                if super::encoding::ct_eq(owner.as_str().as_bytes(), b.as_str().as_bytes()) =>
            {
                Claim::Owner
            }
            _ => Claim::OtherBrowser,
        }
    }
}

/// The link a `connection_required` answer hands out again, among a subject's links (by hash):
/// the newest usable one for `upstream` that keeps its token and has at least
/// `REUSE_MIN_REMAINING_MS` left. So a client retrying an unconnected upstream keeps giving its
/// user the same link, whichever browser opened it.
pub fn reusable_link<'a>(
    links: &'a [(String, LinkRecord)],
    upstream: &UpstreamId,
    now_ms: u64,
) -> Option<&'a LinkRecord> {
    links
        .iter()
        .map(|(_, l)| l)
        .filter(|l| l.upstream == *upstream && l.token.is_some() && l.state(now_ms) == LinkState::Usable)
        .filter(|l| l.expires_at >= now_ms + REUSE_MIN_REMAINING_MS)
        .max_by_key(|l| l.created_at)
}

/// The links to forget before a new link for `upstream` is stored (`minted_by_operator`: the
/// new one has no token): used and expired ones after `LINK_TOMBSTONE_MS`, and the oldest live
/// operator-minted ones beyond `MAX_LIVE_LINKS - 1` for that upstream. Links minted for
/// `connection_required` are bounded by reuse instead (at most two live at a time).
pub fn links_to_forget(
    links: &[(String, LinkRecord)],
    upstream: &UpstreamId,
    minted_by_operator: bool,
    now_ms: u64,
) -> Vec<String> {
    let mut forget = Vec::new();
    let mut live: Vec<&(String, LinkRecord)> = Vec::new();
    for entry in links {
        let link = &entry.1;
        let done_at = link.used_at.unwrap_or(link.expires_at);
        if link.state(now_ms) != LinkState::Usable {
            if done_at + LINK_TOMBSTONE_MS < now_ms {
                forget.push(entry.0.clone());
            }
        } else if minted_by_operator && link.upstream == *upstream && link.token.is_none() {
            live.push(entry);
        }
    }
    live.sort_by_key(|(_, l)| std::cmp::Reverse(l.created_at));
    forget.extend(live.iter().skip(MAX_LIVE_LINKS - 1).map(|(hash, _)| hash.clone()));
    forget
}

/// The cookie (before any `__Host-` prefix) that binds an OAuth callback to the browser that
/// pressed "Continue", one per pending authorization, named after its `state` (the first 16 hex
/// digits of the SHA-256 of it), so two connects in one browser do not overwrite each other.
pub fn oauth_binding_cookie(state_hash: &KeyHash) -> String {
    format!("mab_oauth_{}", &state_hash.as_str()[..16])
}

/// What a callback may do with the pending authorization its `state` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Take it out (once) and finish.
    Take,
    /// Past its time: forget it.
    Expired,
    /// Another browser came back with it: leave it for the browser that started the sign-in,
    /// so a `state` that leaked (a log, a shoulder) cannot use the user's flow up.
    OtherBrowser,
}

/// Checked before the pending authorization is taken (login CSRF, RFC 6749 §10.12): `binding`
/// is the hash of the cookie set when the user pressed "Continue", `presented` that of the
/// cookie the callback came with.
pub fn take_pending(expires_at: u64, binding: &KeyHash, presented: Option<&KeyHash>, now_ms: u64) -> Take {
    if expires_at <= now_ms {
        Take::Expired
    } else if presented
        .is_some_and(|p| super::encoding::ct_eq(p.as_str().as_bytes(), binding.as_str().as_bytes()))
    {
        Take::Take
    } else {
        Take::OtherBrowser
    }
}

/// A page that refuses: its status, title and text, which always names what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    LinkNotFound,
    LinkExpired,
    LinkUsed,
    /// The link's upstream was deleted.
    ServiceGone,
    /// Another browser opened the link first.
    OtherBrowser,
    /// The form's CSRF check failed.
    FormNotVerified,
    /// A callback whose `state` is not one of ours, or no longer pending.
    CallbackUnknown,
    /// The callback came to another browser than the one that started the sign-in.
    CallbackOtherBrowser,
    CallbackNoCode,
    /// RFC 9207: the response names another issuer, or none where one was promised.
    CallbackWrongIssuer,
    /// The user did not allow access.
    Denied,
    /// The authorization server could not be found, reached or used.
    ServerFailed,
}

impl Refusal {
    pub fn page(self) -> (u16, &'static str, &'static str) {
        match self {
            Refusal::LinkNotFound => {
                (404, "Link not found", "This connect link is not valid. Ask whoever sent it for a new one.")
            }
            Refusal::LinkExpired => {
                (410, "Link expired", "This connect link has expired. Ask whoever sent it for a new one.")
            }
            Refusal::LinkUsed => (
                410,
                "Link already used",
                "This connect link was already used. If you need to connect again, ask for a new link.",
            ),
            Refusal::ServiceGone => (
                404,
                "Service not found",
                "The service this link was for is no longer set up here. Ask whoever sent the link.",
            ),
            Refusal::OtherBrowser => (
                403,
                "Link opened in another browser",
                "This connect link was first opened in another browser, and only that browser can use it. \
                 Open it there; if you cannot (or your browser blocks cookies), ask whoever sent it for a new link.",
            ),
            Refusal::FormNotVerified => (
                403,
                "Please try again",
                "This form could not be verified (it was sent from another page, or your browser blocked its \
                 cookie). Open the link again and resubmit.",
            ),
            Refusal::CallbackUnknown => (
                400,
                "Sign-in not accepted",
                "This sign-in response was already used, has expired, or was not sent by this gateway. \
                 Open your connect link again to start over.",
            ),
            Refusal::CallbackOtherBrowser => (
                400,
                "Sign-in not accepted",
                "This sign-in was started in another browser. Finish it there, or open your connect link \
                 again in this browser.",
            ),
            Refusal::CallbackNoCode => (
                400,
                "Sign-in not accepted",
                "The sign-in response carries no code. Open your connect link again and sign in once more.",
            ),
            Refusal::CallbackWrongIssuer => (
                400,
                "Sign-in not accepted",
                "The sign-in response did not come from the expected server. Open your connect link again; \
                 if this keeps happening, tell whoever sent it.",
            ),
            Refusal::Denied => (
                403,
                "Not connected",
                "You did not allow access, so nothing was changed. To connect later, open your connect link again.",
            ),
            Refusal::ServerFailed => (
                502,
                "Cannot connect right now",
                "The provider's sign-in service failed or could not be reached. Open your connect link again \
                 later; if it keeps failing, tell whoever sent it.",
            ),
        }
    }
}

/// The value of field `name` in a submitted form (its first).
pub fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
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
        let value = form_value(submitted, &field.name).map(str::trim).unwrap_or("");
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
    csp_with_form_targets(targets)
}

/// The CSP of a page whose form is answered by a redirect to `origin` (the gateway's consent
/// page, answered by a redirect to the client): that one origin, and no other, as form target.
pub fn page_csp_redirecting_to(origin: &str) -> String {
    csp_with_form_targets(&format!("'self' {origin}"))
}

fn csp_with_form_targets(targets: &str) -> String {
    page_csp_with("'unsafe-inline'", targets)
}

/// The pages' CSP with its style sources (the connect pages inline their few rules; the
/// operator console links a stylesheet from the Worker, `'self'`) and form targets.
pub fn page_csp_with(style_src: &str, form_targets: &str) -> String {
    format!(
        "default-src 'none'; style-src {style_src}; form-action {form_targets}; frame-ancestors 'none'; base-uri 'none'"
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

pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape_html(title)
    )
}

/// A page that only says something: success, or what went wrong and what to do.
/// How a connection was made, as its success page names it: a link seen by someone else cannot
/// bind an account without the page saying whose, and with what.
pub enum ConnectedWith<'a> {
    /// The fields typed, by label.
    Fields(Vec<&'a str>),
    /// A sign-in at this authorization server (its host).
    SignIn(&'a str),
}

/// The text of the page after a link completed.
pub fn connected_text(upstream: &str, subject: &str, with: &ConnectedWith<'_>) -> String {
    let how = match with {
        ConnectedWith::Fields(labels) if labels.is_empty() => String::new(),
        ConnectedWith::Fields(labels) => format!(", with the {} you entered", labels.join(", ")),
        ConnectedWith::SignIn(host) => format!(", with the account you signed in to at {host}"),
    };
    format!(
        "Your account for {upstream} is connected for {subject}{how}. If that is not you, tell whoever sent \
         you the link. You can close this page."
    )
}

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
    body.push_str(&fields_html(fields, errors, previous));
    body.push_str("<button type=\"submit\">Connect</button></form>");
    page(&format!("Connect {upstream}"), &body)
}

/// The inputs of a form for `fields`, with the errors of a previous submit next to them. Values
/// typed into secret fields are never put back into the page.
pub(crate) fn fields_html(
    fields: &[UserField],
    errors: &FormErrors,
    previous: &[(String, String)],
) -> String {
    let mut out = String::new();
    for field in fields {
        let id = escape_html(&field.name);
        let kind = if field.secret { "password" } else { "text" };
        let value = if field.secret {
            String::new()
        } else {
            form_value(previous, &field.name).map(escape_html).unwrap_or_default()
        };
        let error = errors.get(&field.name);
        out.push_str(&format!(
            "<label for=\"{id}\">{}</label><input id=\"{id}\" name=\"{id}\" type=\"{kind}\" value=\"{value}\" \
             required autocomplete=\"off\"{}>",
            escape_html(&field.label),
            if error.is_some() { format!(" aria-describedby=\"{id}-error\" aria-invalid=\"true\"") } else { String::new() }
        ));
        if let Some(e) = error {
            out.push_str(&format!("<p class=\"error\" id=\"{id}-error\">{}</p>", escape_html(e)));
        }
    }
    out
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

    fn link(upstream: &str, created_at: u64, expires_at: u64, token: bool) -> LinkRecord {
        LinkRecord {
            subject: SubjectId::parse("a").unwrap(),
            upstream: UpstreamId::parse(upstream).unwrap(),
            expires_at,
            used_at: None,
            created_at,
            token: token.then(|| Sealed::stored(format!("v1.x.{created_at}"))),
            browser_hash: None,
        }
    }

    const MIN: u64 = 60 * 1000;

    #[test]
    fn a_live_connection_required_link_is_reused_while_enough_of_it_is_left() {
        let u = UpstreamId::parse("u").unwrap();
        let hour = 60 * MIN;
        let links = vec![
            ("old".to_string(), link("u", 0, hour, true)),
            ("newer".to_string(), link("u", 10 * MIN, 10 * MIN + hour, true)),
            ("admin".to_string(), link("u", 20 * MIN, 20 * MIN + 24 * hour, false)),
            ("other".to_string(), link("v", 30 * MIN, 30 * MIN + hour, true)),
        ];
        assert_eq!(reusable_link(&links, &u, 30 * MIN).map(|l| l.created_at), Some(10 * MIN), "the newest");
        // 25 retries within the hour keep finding the same one...
        for minute in 30..=55 {
            assert_eq!(reusable_link(&links, &u, minute * MIN).map(|l| l.created_at), Some(10 * MIN));
        }
        // ...until less than 15 minutes of it are left; admin links are never handed out again.
        assert_eq!(reusable_link(&links, &u, 56 * MIN), None);
        let mut used = links.clone();
        used[1].1.used_at = Some(31 * MIN);
        assert_eq!(reusable_link(&used, &u, 32 * MIN).map(|l| l.created_at), Some(0));
        let mut claimed = links.clone();
        claimed[1].1.browser_hash = Some(KeyHash::of("someone"));
        assert_eq!(
            reusable_link(&claimed, &u, 30 * MIN).map(|l| l.created_at),
            Some(10 * MIN),
            "reused even once a browser owns it: that is the user looking at it"
        );
    }

    #[test]
    fn operator_links_are_bounded_per_upstream_and_old_ones_forgotten() {
        let u = UpstreamId::parse("u").unwrap();
        let day = 24 * 60 * MIN;
        let mut links: Vec<(String, LinkRecord)> =
            (0..25).map(|i| (format!("a{i}"), link("u", i, 30 * day, false))).collect();
        links.push(("cr".into(), link("u", 100, 30 * day, true)));
        links.push(("v".into(), link("v", 0, 30 * day, false)));
        let mut done = link("u", 0, 1, false);
        done.used_at = Some(1);
        links.push(("done-long-ago".into(), done.clone()));
        let mut recent = done;
        recent.used_at = Some(8 * day);
        links.push(("done-recently".into(), recent));
        let mut forget = links_to_forget(&links, &u, true, 8 * day);
        forget.sort();
        let mut want: Vec<String> = (0..6).map(|i| format!("a{i}")).collect();
        want.push("done-long-ago".into());
        want.sort();
        assert_eq!(forget, want, "19 operator links stay (the new one makes 20); others untouched");
        assert_eq!(links_to_forget(&links, &u, false, 8 * day), ["done-long-ago"]);
    }

    #[test]
    fn the_first_browser_owns_a_link() {
        let mut l = link("u", 0, 10, true);
        let (mine, theirs) = (KeyHash::of("mine"), KeyHash::of("theirs"));
        assert_eq!(l.claim(Some(&mine)), Claim::Claimed);
        assert_eq!(l.claim(None), Claim::OtherBrowser, "no cookie: cannot claim, cannot prove");
        l.browser_hash = Some(mine.clone());
        assert_eq!(l.claim(Some(&mine)), Claim::Owner);
        assert_eq!(l.claim(Some(&theirs)), Claim::OtherBrowser);
        assert_eq!(l.claim(None), Claim::OtherBrowser);
    }

    #[test]
    fn each_pending_authorization_has_its_own_cookie() {
        let (a, b) = (KeyHash::of("mabs_a"), KeyHash::of("mabs_b"));
        assert_ne!(oauth_binding_cookie(&a), oauth_binding_cookie(&b));
        assert!(oauth_binding_cookie(&a).starts_with("mab_oauth_"));
        assert_eq!(oauth_binding_cookie(&a).len(), "mab_oauth_".len() + 16);
        assert!(super::super::headers::is_token(&oauth_binding_cookie(&a)));
    }

    #[test]
    fn a_callback_takes_its_pending_authorization_only_in_the_browser_that_started_it() {
        let (mine, theirs) = (KeyHash::of("mine"), KeyHash::of("theirs"));
        assert_eq!(take_pending(10, &mine, Some(&mine), 9), Take::Take);
        assert_eq!(take_pending(10, &mine, Some(&theirs), 9), Take::OtherBrowser);
        assert_eq!(take_pending(10, &mine, None, 9), Take::OtherBrowser);
        assert_eq!(take_pending(10, &mine, Some(&mine), 10), Take::Expired);
        assert_eq!(take_pending(10, &mine, Some(&theirs), 11), Take::Expired);
    }

    #[test]
    fn every_refusal_page_says_what_to_do_next() {
        use Refusal::*;
        for r in [
            LinkNotFound,
            LinkExpired,
            LinkUsed,
            ServiceGone,
            OtherBrowser,
            FormNotVerified,
            CallbackUnknown,
            CallbackOtherBrowser,
            CallbackNoCode,
            CallbackWrongIssuer,
            Denied,
            ServerFailed,
        ] {
            let (status, _, text) = r.page();
            assert!((400..600).contains(&status), "{r:?}");
            assert!(
                ["Open ", "open your connect link", "ask ", "Ask "].iter().any(|step| text.contains(step)),
                "{r:?} names no next step: {text}"
            );
        }
    }

    #[test]
    fn link_states() {
        let mut link = link("u", 0, 10, false);
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

    #[test]
    fn the_success_page_says_whose_account_and_with_what() {
        let typed = connected_text("tickets", "alice", &ConnectedWith::Fields(vec!["API key", "Region"]));
        assert!(typed.contains("connected for alice, with the API key, Region you entered"));
        let signed = connected_text("tickets", "bob", &ConnectedWith::SignIn("id.example"));
        assert!(signed.contains("connected for bob, with the account you signed in to at id.example"));
        assert!(!connected_text("t", "c", &ConnectedWith::Fields(vec![])).contains("with"));
    }
}
