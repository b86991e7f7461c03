//! The console's forms: what an operator typed, turned into the same JSON body the admin API
//! takes (so the one validation, `core::upstream::parse_upstream` and the admin operations,
//! judges both), and each validation error put next to the form field it concerns.

use super::super::connect::form_value;
use super::super::upstream::Upstream;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// What is wrong with a submitted form, by form field (`""`: the form as a whole).
pub type Errors = BTreeMap<&'static str, String>;

/// One error, for the form field `field`.
pub fn error(field: &'static str, message: impl Into<String>) -> Errors {
    Errors::from([(field, message.into())])
}

/// The upstream form as typed (or as the stored upstream fills it in). The OAuth client secret
/// has a field of its own, a password field never filled in or echoed back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamForm {
    pub id: String,
    pub url: String,
    pub transport: String,
    /// One `Name: template` a line.
    pub headers: String,
    /// The `user_fields` array, as JSON.
    pub user_fields: String,
    /// The `oauth` object without `client_secret`, as JSON; empty: no OAuth.
    pub oauth: String,
    pub sign_in: String,
    pub connect_tool: bool,
    /// Whether a client secret is stored (shown, never the secret).
    pub client_secret_set: bool,
}

impl UpstreamForm {
    /// The submitted form's values (`client_secret_set` is not the browser's to say).
    pub fn submitted(form: &[(String, String)]) -> UpstreamForm {
        let text = |name| form_value(form, name).unwrap_or("").trim().to_string();
        UpstreamForm {
            id: text("id"),
            url: text("url"),
            transport: text("transport"),
            headers: text("headers"),
            user_fields: text("user_fields"),
            oauth: text("oauth"),
            sign_in: text("sign_in"),
            connect_tool: form_value(form, "connect_tool").is_some(),
            client_secret_set: false,
        }
    }

    /// The form for editing `upstream` (its public view: nothing secret).
    pub fn of(upstream: &Upstream) -> UpstreamForm {
        let view = upstream.public_view();
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        let oauth = view.get("oauth").and_then(Value::as_object).map(|o| {
            let kept: Map<String, Value> = o
                .iter()
                .filter(|(k, v)| *k != "client_secret_set" && !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            pretty(&Value::Object(kept))
        });
        let text = |name: &str| view.get(name).and_then(Value::as_str).unwrap_or("").to_string();
        UpstreamForm {
            id: upstream.id.to_string(),
            url: upstream.url.clone(),
            transport: text("transport"),
            headers: upstream.headers.iter().map(|(name, t)| format!("{name}: {t}\n")).collect(),
            user_fields: if upstream.user_fields.is_empty() {
                String::new()
            } else {
                pretty(&view["user_fields"])
            },
            oauth: oauth.unwrap_or_default(),
            sign_in: text("sign_in"),
            connect_tool: upstream.connect_tool,
            client_secret_set: upstream.oauth.as_ref().is_some_and(|o| o.client_secret_sealed.is_some()),
        }
    }

    /// The admin API's `PUT /admin/v1/upstreams/{id}` body for this form, with the client
    /// secret typed (none: the stored one is kept, as a `PUT` without it keeps it). Errors
    /// here are of the form's own syntax (a header line without `:`, JSON that does not
    /// parse); everything else is the API's validation.
    pub fn body(&self, client_secret: Option<&str>) -> Result<Value, Errors> {
        let mut body = json!({ "url": self.url });
        if !self.transport.is_empty() {
            body["transport"] = json!(self.transport);
        }
        let mut headers = Map::new();
        for (n, line) in self.headers.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let Some((name, template)) = line.split_once(':') else {
                return Err(error("headers", format!("line {}: write it as Name: template", n + 1)));
            };
            let name = name.trim();
            if headers.insert(name.to_string(), json!(template.trim())).is_some() {
                return Err(error("headers", format!("headers.{name}: is listed twice")));
            }
        }
        body["headers"] = Value::Object(headers);
        if !self.user_fields.is_empty() {
            body["user_fields"] = parse_json(&self.user_fields, "user_fields")?;
        }
        if !self.oauth.is_empty() {
            let mut oauth = parse_json(&self.oauth, "oauth")?;
            if let Some(o) = oauth.as_object_mut() {
                if o.contains_key("client_secret") {
                    return Err(error("oauth", "put the client secret in its own field below, not here"));
                }
                if let Some(secret) = client_secret {
                    o.insert("client_secret".into(), json!(secret));
                }
            }
            body["oauth"] = oauth;
        } else if client_secret.is_some() {
            return Err(error("client_secret", "a client secret needs OAuth settings (oauth)"));
        }
        if !self.sign_in.is_empty() {
            body["sign_in"] = json!(self.sign_in);
        }
        body["connect_tool"] = json!(self.connect_tool);
        Ok(body)
    }
}

fn parse_json(text: &str, field: &'static str) -> Result<Value, Errors> {
    serde_json::from_str(text).map_err(|e| error(field, format!("not JSON: {e}")))
}

/// The form field an admin API validation error (`Error::BadRequest`'s field: `url`,
/// `headers.X-API-KEY`, `user_fields[0].name`, `oauth.scopes` …) belongs next to, with the
/// message it shows there (naming the exact part when the field holds several).
pub fn upstream_field(api_field: &str, message: &str) -> (&'static str, String) {
    let top = api_field.split(['.', '[']).next().unwrap_or("");
    let field = match (api_field, top) {
        ("oauth.client_secret", _) => "client_secret",
        (_, "id") => "id",
        (_, "url") => "url",
        (_, "transport") => "transport",
        (_, "headers") => "headers",
        (_, "user_fields") => "user_fields",
        (_, "oauth") => "oauth",
        (_, "sign_in") => "sign_in",
        (_, "connect_tool") => "connect_tool",
        _ => "",
    };
    let shown = if api_field == field { message.to_string() } else { format!("{api_field}: {message}") };
    (field, shown)
}

/// The key form as typed: the `POST /admin/v1/keys` body for `subject` (`upstreams` a list
/// separated by commas or spaces, `expires_in_days` whole days), or what is wrong with it.
pub fn key_body(subject: &str, form: &[(String, String)]) -> Result<Value, Errors> {
    let upstreams: Vec<&str> =
        form_value(form, "upstreams").unwrap_or("").split([',', ' ']).filter(|s| !s.is_empty()).collect();
    let mut body = json!({ "subject": subject, "upstreams": upstreams });
    if let Some(label) = form_value(form, "label").map(str::trim).filter(|l| !l.is_empty()) {
        body["label"] = json!(label);
    }
    match form_value(form, "expires_in_days").map(str::trim).filter(|d| !d.is_empty()) {
        None => {}
        Some(days) => match days.parse::<u64>() {
            Ok(d) if d > 0 => body["expires_in"] = json!(d.saturating_mul(86_400)),
            _ => return Err(error("expires_in_days", "a whole number of days, at least 1 (empty: never)")),
        },
    }
    Ok(body)
}

/// The key form field an admin API error of `POST /admin/v1/keys` belongs next to.
pub fn key_field(api_field: &str) -> &'static str {
    match api_field {
        "upstreams" => "upstreams",
        "label" => "label",
        "expires_in" => "expires_in_days",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::UpstreamId;
    use crate::core::upstream::parse_upstream;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn form() -> UpstreamForm {
        UpstreamForm::submitted(&pairs(&[
            ("id", " tickets "),
            ("url", "https://mcp.example/mcp"),
            ("transport", "streamable-http"),
            ("headers", "X-API-KEY: {{user.api_key}}\r\n\r\nX-Tenant: acme"),
            ("user_fields", r#"[{"name": "api_key", "label": "API key"}]"#),
            ("sign_in", "off"),
        ]))
    }

    #[test]
    fn a_typed_form_is_the_api_body_and_round_trips_through_the_stored_upstream() {
        let f = form();
        assert_eq!(f.id, "tickets");
        let body = f.body(None).unwrap();
        assert_eq!(body["headers"], json!({ "X-API-KEY": "{{user.api_key}}", "X-Tenant": "acme" }));
        assert_eq!(body["connect_tool"], json!(false));
        assert!(body.get("oauth").is_none());
        let id = UpstreamId::parse("tickets").unwrap();
        let stored = parse_upstream(&id, &body, false, 0).unwrap().upstream;
        let again = UpstreamForm::of(&stored);
        assert_eq!(again.url, f.url);
        let reparsed = parse_upstream(&id, &again.body(None).unwrap(), false, 0).unwrap().upstream;
        assert_eq!(reparsed, stored, "the edit form holds the upstream as stored");
    }

    #[test]
    fn oauth_settings_round_trip_without_the_secret() {
        let mut f = form();
        f.oauth = r#"{"client_id": "cid", "authorization_server": "https://as.example"}"#.into();
        let body = f.body(Some("s3cret")).unwrap();
        assert_eq!(body["oauth"]["client_secret"], "s3cret");
        let id = UpstreamId::parse("tickets").unwrap();
        let mut stored = parse_upstream(&id, &body, false, 0).unwrap().upstream;
        stored.oauth.as_mut().unwrap().client_secret_sealed =
            Some(crate::core::seal::Sealed::stored("v1.x.y".into()));
        let again = UpstreamForm::of(&stored);
        assert!(again.client_secret_set);
        assert!(!again.oauth.contains("client_secret"), "{}", again.oauth);
        assert!(again.body(None).unwrap()["oauth"].get("client_secret").is_none(), "kept, not sent");
        f.oauth = r#"{"client_secret": "x"}"#.into();
        assert!(f.body(None).unwrap_err()["oauth"].contains("its own field"));
        f.oauth.clear();
        assert!(f.body(Some("x")).unwrap_err().contains_key("client_secret"));
    }

    #[test]
    fn syntax_errors_name_their_field() {
        let mut f = form();
        f.headers = "X-API-KEY {{user.api_key}}".into();
        assert!(f.body(None).unwrap_err()["headers"].starts_with("line 1:"));
        f.headers = "A: 1\nA: 2".into();
        assert!(f.body(None).unwrap_err()["headers"].contains("listed twice"));
        f.headers.clear();
        f.user_fields = "[{".into();
        assert!(f.body(None).unwrap_err()["user_fields"].starts_with("not JSON"));
    }

    #[test]
    fn validation_errors_go_next_to_their_field() {
        let id = UpstreamId::parse("t").unwrap();
        let mut f = form();
        f.headers = "X-API-KEY: {{user.api_key".into();
        let e = parse_upstream(&id, &f.body(None).unwrap(), false, 0).unwrap_err();
        let (field, shown) = upstream_field(&e.field, &e.message);
        assert_eq!(field, "headers");
        assert!(shown.starts_with("headers.X-API-KEY: "), "{shown}");
        assert_eq!(upstream_field("url", "must be https"), ("url", "must be https".into()));
        assert_eq!(upstream_field("user_fields[0].name", "m").0, "user_fields");
        assert_eq!(upstream_field("oauth.scopes", "m").0, "oauth");
        assert_eq!(upstream_field("oauth.client_secret", "m").0, "client_secret");
        assert_eq!(upstream_field("body", "m").0, "");
    }

    #[test]
    fn the_key_form_is_the_api_body() {
        let body = key_body(
            "alice",
            &pairs(&[("upstreams", "a, b"), ("label", " laptop "), ("expires_in_days", "2")]),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({ "subject": "alice", "upstreams": ["a", "b"], "label": "laptop", "expires_in": 172_800 })
        );
        assert_eq!(key_body("a", &pairs(&[("upstreams", "*")])).unwrap()["upstreams"], json!(["*"]));
        assert!(key_body("a", &pairs(&[("expires_in_days", "0")]))
            .unwrap_err()
            .contains_key("expires_in_days"));
        assert!(key_body("a", &pairs(&[("expires_in_days", "x")])).is_err());
        assert_eq!(key_field("expires_in"), "expires_in_days");
        assert_eq!(key_field("subject"), "");
    }
}
