//! Header templates (API.md §2): literal text with `{{...}}` placeholders.
//!
//! Parsed once when an upstream is stored (a bad template is a 400 that names the header) and
//! again when a request is rendered; rendering never yields an empty or unsafe header.

use super::encoding::b64;
use super::headers::is_field_value;
use super::ids::is_name;
use std::fmt;

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// `{{secret.NAME}}`: an operator secret (admin API, sealed in KV).
    Secret(String),
    /// `{{env.NAME}}`: a Worker var or secret.
    Env(String),
    /// `{{user.NAME}}`: the subject's own value.
    User(String),
    /// `{{oauth.access_token}}`: the subject's OAuth token for this upstream.
    OAuthAccessToken,
    /// `{{subject}}`: the subject id.
    Subject,
}

impl Source {
    /// True for values that belong to the subject: missing ones mean the user must connect.
    pub fn is_per_user(&self) -> bool {
        matches!(self, Source::User(_) | Source::OAuthAccessToken)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Secret(n) => write!(f, "secret.{n}"),
            Source::Env(n) => write!(f, "env.{n}"),
            Source::User(n) => write!(f, "user.{n}"),
            Source::OAuthAccessToken => f.write_str("oauth.access_token"),
            Source::Subject => f.write_str("subject"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Value(Source),
    /// `{{basic(A, B)}}`: base64 of `A:B`.
    Basic(Source, Source),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    InvalidCharacter,
    Unclosed,
    UnknownPlaceholder(String),
    ReservedEnv(String),
    Empty,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::InvalidCharacter => f.write_str(
                "template may hold only printable ASCII (no CR, LF, NUL, other controls or non-ASCII)",
            ),
            TemplateError::Unclosed => f.write_str("template has a '{{' without a matching '}}'"),
            TemplateError::UnknownPlaceholder(p) => write!(
                f,
                "unknown placeholder {{{{{p}}}}}: use secret.NAME or user.NAME (NAME like \
                 [a-z0-9][a-z0-9_-]*), env.NAME, oauth.access_token, subject or basic(A, B)"
            ),
            TemplateError::ReservedEnv(n) => {
                write!(f, "{{{{env.{n}}}}} is not allowed: {n} is the gateway's own secret")
            }
            TemplateError::Empty => f.write_str("template is empty"),
        }
    }
}

/// Worker secrets a template may never read (API.md §2).
pub const RESERVED_ENV: [&str; 2] = ["ADMIN_TOKEN", "ENCRYPTION_KEY"];

/// Worker var names: letters, digits and '_'.
fn is_env_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn parse_source(expr: &str) -> Result<Source, TemplateError> {
    let unknown = || TemplateError::UnknownPlaceholder(expr.to_string());
    if expr == "subject" {
        return Ok(Source::Subject);
    }
    let (kind, name) = expr.split_once('.').ok_or_else(unknown)?;
    // secret and user names follow the admin API's name rule, so every placeholder names a
    // value that can actually be stored.
    match kind {
        "secret" if is_name(name) => Ok(Source::Secret(name.to_string())),
        "user" if is_name(name) => Ok(Source::User(name.to_string())),
        "env" if RESERVED_ENV.contains(&name) => Err(TemplateError::ReservedEnv(name.to_string())),
        "env" if is_env_name(name) => Ok(Source::Env(name.to_string())),
        "oauth" if name == "access_token" => Ok(Source::OAuthAccessToken),
        _ => Err(unknown()),
    }
}

fn parse_placeholder(expr: &str) -> Result<Part, TemplateError> {
    let expr = expr.trim();
    if let Some(args) = expr.strip_prefix("basic(").and_then(|r| r.strip_suffix(')')) {
        let (a, b) =
            args.split_once(',').ok_or_else(|| TemplateError::UnknownPlaceholder(expr.to_string()))?;
        return Ok(Part::Basic(parse_source(a.trim())?, parse_source(b.trim())?));
    }
    parse_source(expr).map(Part::Value)
}

impl HeaderTemplate {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if !is_field_value(text) {
            return Err(TemplateError::InvalidCharacter);
        }
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
            parts.push(parse_placeholder(&after[..end])?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(HeaderTemplate { parts })
    }

    /// Every value this template reads, in order of appearance.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.parts
            .iter()
            .flat_map(|p| match p {
                Part::Literal(_) => [None, None],
                Part::Value(s) => [Some(s), None],
                Part::Basic(a, b) => [Some(a), Some(b)],
            })
            .flatten()
    }

    /// Renders with `lookup`; a missing or empty value is an error, never an empty header.
    pub fn render<'a>(&self, lookup: impl Fn(&Source) -> Option<&'a str>) -> Result<String, RenderError> {
        let get = |s: &Source| match lookup(s) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(RenderError::Missing(s.clone())),
        };
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Value(s) => out.push_str(get(s)?),
                Part::Basic(a, b) => out.push_str(&b64(format!("{}:{}", get(a)?, get(b)?).as_bytes())),
            }
        }
        let out = out.trim_matches([' ', '\t']).to_string();
        if out.is_empty() || !is_field_value(&out) {
            return Err(RenderError::Unsafe);
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// A value the template reads is not there.
    Missing(Source),
    /// The rendered value is empty or would not be a valid field value (CR, LF, NUL ...).
    Unsafe,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &Source) -> Option<&'static str> {
        match s {
            Source::Secret(n) if n == "api" => Some("sk-123"),
            Source::User(n) if n == "client_id" => Some("id:1"),
            Source::User(n) if n == "client_secret" => Some("s3cret"),
            Source::User(n) if n == "bad" => Some("x\r\nInjected: 1"),
            Source::User(n) if n == "empty" => Some(""),
            Source::Env(n) if n == "TENANT" => Some("acme"),
            Source::Subject => Some("alice@example.com"),
            Source::OAuthAccessToken => Some("at-1"),
            _ => None,
        }
    }

    #[test]
    fn renders_every_placeholder_kind() {
        let cases = [
            ("ApiKey {{secret.api}}", "ApiKey sk-123"),
            ("{{ env.TENANT }}", "acme"),
            ("Bearer {{oauth.access_token}}", "Bearer at-1"),
            ("{{subject}}", "alice@example.com"),
            // base64("id:1:s3cret")
            ("Basic {{basic(user.client_id, user.client_secret)}}", "Basic aWQ6MTpzM2NyZXQ="),
            ("plain", "plain"),
            ("{{secret.api}}-{{env.TENANT}}", "sk-123-acme"),
        ];
        for (template, want) in cases {
            let t = HeaderTemplate::parse(template).unwrap();
            assert_eq!(t.render(values).unwrap(), want, "{template}");
        }
    }

    #[test]
    fn lists_sources_in_order() {
        let t = HeaderTemplate::parse("{{basic(user.a, secret.b)}} {{subject}}").unwrap();
        let got: Vec<String> = t.sources().map(|s| s.to_string()).collect();
        assert_eq!(got, ["user.a", "secret.b", "subject"]);
        assert!(Source::User("a".into()).is_per_user());
        assert!(!Source::Secret("a".into()).is_per_user());
    }

    #[test]
    fn refuses_bad_templates() {
        use TemplateError::*;
        let cases = [
            ("a\r\nb", InvalidCharacter),
            ("a\nb", InvalidCharacter),
            ("a\0b", InvalidCharacter),
            ("café", InvalidCharacter),
            ("{{secret.API_KEY}}", UnknownPlaceholder("secret.API_KEY".into())),
            ("{{user._x}}", UnknownPlaceholder("user._x".into())),
            ("{{env.A-B}}", UnknownPlaceholder("env.A-B".into())),
            ("", Empty),
            ("  ", Empty),
            ("{{secret.api", Unclosed),
            ("{{nope}}", UnknownPlaceholder("nope".into())),
            ("{{secret.}}", UnknownPlaceholder("secret.".into())),
            ("{{oauth.refresh_token}}", UnknownPlaceholder("oauth.refresh_token".into())),
            ("{{env.ADMIN_TOKEN}}", ReservedEnv("ADMIN_TOKEN".into())),
            ("{{basic(env.ENCRYPTION_KEY, user.a)}}", ReservedEnv("ENCRYPTION_KEY".into())),
            ("{{basic(user.a)}}", UnknownPlaceholder("basic(user.a)".into())),
            ("{{user.a b}}", UnknownPlaceholder("user.a b".into())),
        ];
        for (template, want) in cases {
            assert_eq!(HeaderTemplate::parse(template), Err(want), "{template:?}");
        }
    }

    #[test]
    fn missing_or_unsafe_values_never_render() {
        let missing = HeaderTemplate::parse("{{user.nope}}").unwrap();
        assert_eq!(missing.render(values), Err(RenderError::Missing(Source::User("nope".into()))));
        let empty = HeaderTemplate::parse("x {{user.empty}}").unwrap();
        assert_eq!(empty.render(values), Err(RenderError::Missing(Source::User("empty".into()))));
        let injected = HeaderTemplate::parse("{{user.bad}}").unwrap();
        assert_eq!(injected.render(values), Err(RenderError::Unsafe));
        let missing_secret = HeaderTemplate::parse("{{secret.other}}").unwrap();
        assert_eq!(missing_secret.render(values), Err(RenderError::Missing(Source::Secret("other".into()))));
    }
}
