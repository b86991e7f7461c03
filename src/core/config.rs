//! Deployment settings (API.md §5), read from Worker vars and secrets through a lookup so the
//! parsing stays pure and testable.

use super::secret::Secret;

pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 60_000;

/// How values are sealed in this deployment.
#[derive(Debug, Clone)]
pub enum Encryption {
    /// `ENCRYPTION_KEY` is set (base64 of 32 bytes, or a list; validated when used).
    Key(Secret),
    /// `wrangler dev` with `DEV_MODE=true` and no key: a fixed, public development key.
    Development,
    /// Deployed without a key: storing or reading secrets is refused.
    Missing,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub admin_token: Option<Secret>,
    pub encryption: Encryption,
    pub allow_private_upstreams: bool,
    pub allowed_origins: Vec<String>,
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    pub upstream_timeout_ms: u64,
    /// One log line per proxied request (API.md §5c); `REQUEST_LOGS=off` turns them off.
    pub request_logs: bool,
}

fn truthy(v: Option<String>) -> bool {
    matches!(v.as_deref().map(str::trim), Some("true" | "1" | "yes"))
}

impl Config {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Config {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let encryption = match non_empty("ENCRYPTION_KEY") {
            Some(k) => Encryption::Key(Secret::new(k)),
            None if truthy(get("DEV_MODE")) => Encryption::Development,
            None => Encryption::Missing,
        };
        Config {
            admin_token: non_empty("ADMIN_TOKEN").map(|t| Secret::new(t.trim())),
            encryption,
            allow_private_upstreams: truthy(get("ALLOW_PRIVATE_UPSTREAMS")),
            allowed_origins: non_empty("ALLOWED_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_string())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            public_url: non_empty("PUBLIC_URL").map(|u| u.trim().trim_end_matches('/').to_string()),
            max_body_bytes: non_empty("MAX_BODY_BYTES")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            request_logs: !matches!(
                non_empty("REQUEST_LOGS").map(|v| v.trim().to_ascii_lowercase()).as_deref(),
                Some("off" | "false" | "0" | "no")
            ),
            upstream_timeout_ms: non_empty("UPSTREAM_TIMEOUT_MS")
                .and_then(|v| v.trim().parse().ok())
                .filter(|ms| *ms > 0)
                .unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_MS),
        }
    }

    /// Whether a browser `Origin` may call the MCP routes: the gateway's own origin (`own`:
    /// `PUBLIC_URL`, else the request's), or one in `ALLOWED_ORIGINS`. Anything else is refused:
    /// the DNS-rebinding and cross-site guard of the MCP transport spec. Requests without
    /// `Origin` (server-side clients) are not asked. (A rebinding page's origin is the host it
    /// sent the request to; on Cloudflare's edge that host routes only to this Worker, so the
    /// request's own origin can be trusted there; `PUBLIC_URL` pins it anywhere.)
    pub fn origin_allowed(&self, origin: &str, own: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        origin.eq_ignore_ascii_case(own.trim_end_matches('/'))
            || self.allowed_origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_safe() {
        let c = config(&[]);
        assert!(c.admin_token.is_none());
        assert!(matches!(c.encryption, Encryption::Missing));
        assert!(!c.allow_private_upstreams);
        assert!(c.allowed_origins.is_empty());
        assert_eq!(c.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(c.upstream_timeout_ms, 60_000);
        assert!(c.request_logs, "request logs are on unless turned off");
        assert!(!c.origin_allowed("https://evil.example", "https://gw.example"));
    }

    #[test]
    fn the_gateways_own_origin_is_always_allowed() {
        let c = config(&[("ALLOWED_ORIGINS", "https://app.example")]);
        assert!(c.origin_allowed("https://gw.example", "https://gw.example"));
        assert!(c.origin_allowed("https://GW.example/", "https://gw.example"));
        assert!(c.origin_allowed("https://app.example", "https://gw.example"));
        assert!(!c.origin_allowed("https://evil.example", "https://gw.example"));
        assert!(
            !c.origin_allowed("https://gw.example:8443", "https://gw.example"),
            "another port is another origin"
        );
        assert!(!c.origin_allowed("http://gw.example", "https://gw.example"), "another scheme too");
        assert!(!c.origin_allowed("null", "https://gw.example"));
    }

    #[test]
    fn reads_every_setting() {
        let c = config(&[
            ("ADMIN_TOKEN", "t"),
            ("ENCRYPTION_KEY", "k"),
            ("DEV_MODE", "true"),
            ("ALLOW_PRIVATE_UPSTREAMS", "true"),
            ("ALLOWED_ORIGINS", "https://a.example, https://b.example/"),
            ("PUBLIC_URL", "https://gw.example/"),
            ("MAX_BODY_BYTES", "1024"),
            ("UPSTREAM_TIMEOUT_MS", "1500"),
            ("REQUEST_LOGS", "off"),
        ]);
        assert!(!c.request_logs);
        assert!(matches!(&c.encryption, Encryption::Key(k) if k.expose() == "k"));
        assert!(c.admin_token.as_ref().is_some_and(|t| t.ct_eq("t")));
        let printed = format!("{c:?}");
        assert!(!printed.contains("\"t\"") && !printed.contains("\"k\""), "{printed}");
        assert!(c.allow_private_upstreams);
        assert!(c.origin_allowed("https://b.example", "https://gw.example"));
        assert!(c.origin_allowed("https://A.example", "https://gw.example"));
        assert!(!c.origin_allowed("https://c.example", "https://gw.example"));
        assert_eq!(c.public_url.as_deref(), Some("https://gw.example"));
        assert_eq!((c.max_body_bytes, c.upstream_timeout_ms), (1024, 1500));
    }

    #[test]
    fn development_key_only_in_dev_mode() {
        assert!(matches!(config(&[("DEV_MODE", "true")]).encryption, Encryption::Development));
        assert!(matches!(config(&[("DEV_MODE", "false")]).encryption, Encryption::Missing));
        assert!(matches!(config(&[("ENCRYPTION_KEY", " ")]).encryption, Encryption::Missing));
        assert_eq!(config(&[("UPSTREAM_TIMEOUT_MS", "0")]).upstream_timeout_ms, 60_000);
    }
}
