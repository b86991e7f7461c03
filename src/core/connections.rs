//! The admin connections list (API.md §4, last paragraph): for every upstream a subject's keys
//! may use, what a request would meet now — `connected` (every per-user value present, or a
//! live OAuth grant) or `connection_required` (with the missing value names for header
//! upstreams) — plus any other connection the subject's store still holds.

use super::ids::UpstreamId;
use super::keys::KeyRecord;
use super::request::ConnectionStatus;
use super::upstream::Upstream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A stored connection, as the subject's store reports it (never a value, only names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSummary {
    pub upstream: UpstreamId,
    pub status: ConnectionStatus,
    pub expires_at: Option<u64>,
    pub scopes: Option<Vec<String>>,
    pub updated_at: u64,
    /// Names of the values typed on the connect page.
    pub values: Vec<String>,
    /// It holds an OAuth grant; `refreshable`: with a refresh token.
    pub oauth: bool,
    pub refreshable: bool,
    /// Something the operator must fix (e.g. `invalid_client` at the authorization server).
    #[serde(default)]
    pub problem: Option<String>,
}

impl ConnectionSummary {
    /// A grant a request can still use: one that can be refreshed, or whose token has not expired.
    fn live_grant(&self, now_ms: u64) -> bool {
        self.oauth && (self.refreshable || self.expires_at.is_none_or(|e| e > now_ms))
    }
}

/// One row of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub upstream: &'a UpstreamId,
    pub status: ConnectionStatus,
    /// For an upstream whose headers read `{{user.*}}` values, when some are missing: their names.
    pub missing: Option<Vec<String>>,
    /// What the store holds for it, if anything.
    pub stored: Option<&'a ConnectionSummary>,
}

/// The rows, sorted by upstream: every upstream that one of the subject's unexpired `keys` may
/// use, and every stored connection (also for an upstream since deleted or out of scope).
/// `subject_secrets`: the names of the subject's secrets set through the admin API.
pub fn rows<'a>(
    upstreams: &'a [Upstream],
    keys: &[KeyRecord],
    stored: &'a [ConnectionSummary],
    subject_secrets: &[String],
    now_ms: u64,
) -> Vec<Row<'a>> {
    let usable_keys: Vec<&KeyRecord> =
        keys.iter().filter(|k| k.expires_at.is_none_or(|e| e > now_ms)).collect();
    let find = |id: &UpstreamId| stored.iter().find(|c| c.upstream == *id);
    let mut rows: Vec<Row<'a>> = upstreams
        .iter()
        .filter(|u| usable_keys.iter().any(|k| k.upstreams.allows(u.id.as_str())))
        .map(|u| row(u, find(&u.id), subject_secrets, now_ms))
        .collect();
    for c in stored {
        if !rows.iter().any(|r| r.upstream == &c.upstream) {
            rows.push(Row { upstream: &c.upstream, status: c.status, missing: None, stored: Some(c) });
        }
    }
    rows.sort_by(|a, b| a.upstream.cmp(b.upstream));
    rows
}

/// What a request to `upstream` would meet now (`core::request::render` decides the same at
/// request time: a missing per-user value is `connection_required`).
fn row<'a>(
    upstream: &'a Upstream,
    stored: Option<&'a ConnectionSummary>,
    subject_secrets: &[String],
    now_ms: u64,
) -> Row<'a> {
    // A template that no longer parses answers 500 to every request: nothing the user can do.
    let (needed, oauth) = match upstream.header_plan() {
        Ok(plan) => (plan.user_names(), plan.uses_oauth()),
        Err(_) => (Vec::new(), false),
    };
    let have: BTreeSet<&str> = stored
        .iter()
        .flat_map(|c| c.values.iter())
        .chain(subject_secrets.iter())
        .map(String::as_str)
        .collect();
    let missing: Vec<String> = needed.iter().filter(|n| !have.contains(n.as_str())).cloned().collect();
    let marked = stored.is_some_and(|c| c.status == ConnectionStatus::ConnectionRequired);
    let no_grant = oauth && !stored.is_some_and(|c| c.live_grant(now_ms));
    let status = if marked || no_grant || !missing.is_empty() {
        ConnectionStatus::ConnectionRequired
    } else {
        ConnectionStatus::Connected
    };
    let missing = (status == ConnectionStatus::ConnectionRequired && !needed.is_empty()).then_some(missing);
    Row { upstream: &upstream.id, status, missing, stored }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::SubjectId;
    use crate::core::keys::{KeyHash, KeyScope};
    use crate::core::upstream::parse_upstream;
    use serde_json::json;
    use ConnectionStatus::*;

    fn upstream(id: &str, body: serde_json::Value) -> Upstream {
        parse_upstream(&UpstreamId::parse(id).unwrap(), &body, true, 0).unwrap().upstream
    }

    fn key(scope: &[&str], expires_at: Option<u64>) -> KeyRecord {
        KeyRecord {
            id: "k".into(),
            hash: KeyHash::of("k"),
            subject: SubjectId::parse("s").unwrap(),
            upstreams: KeyScope::parse(scope).unwrap(),
            expires_at,
            label: None,
            created_at: 0,
            last_used: None,
        }
    }

    fn stored(id: &str, status: ConnectionStatus, values: &[&str], oauth: bool) -> ConnectionSummary {
        ConnectionSummary {
            upstream: UpstreamId::parse(id).unwrap(),
            status,
            expires_at: oauth.then_some(100),
            scopes: None,
            updated_at: 1,
            values: values.iter().map(|v| v.to_string()).collect(),
            oauth,
            refreshable: false,
            problem: None,
        }
    }

    fn upstreams() -> Vec<Upstream> {
        let fields = json!([{"name": "api_key"}, {"name": "region"}]);
        vec![
            upstream(
                "tickets",
                json!({"url": "https://t.example/", "headers": {"X-Key": "{{user.api_key}}", "X-Region": "{{user.region}}"}, "user_fields": fields}),
            ),
            upstream("oauthy", json!({"url": "https://o.example/", "oauth": {}})),
            upstream("operator", json!({"url": "https://p.example/", "headers": {"X-Key": "{{secret.k}}"}})),
            upstream(
                "elsewhere",
                json!({"url": "https://e.example/", "headers": {"X-Key": "{{user.api_key}}"}}),
            ),
        ]
    }

    fn table<'a>(rows: &[Row<'a>]) -> Vec<(&'a str, ConnectionStatus, Option<Vec<String>>)> {
        rows.iter().map(|r| (r.upstream.as_str(), r.status, r.missing.clone())).collect()
    }

    #[test]
    fn every_upstream_the_keys_may_use_says_what_a_request_would_meet() {
        let ups = upstreams();
        let keys = [key(&["tickets", "oauthy", "operator"], None), key(&["elsewhere"], Some(5))];
        let missing = |names: &[&str]| Some(names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        // Nothing stored, nothing set: what each needs from the user; the expired key counts not.
        assert_eq!(
            table(&rows(&ups, &keys, &[], &[], 10)),
            [
                ("oauthy", ConnectionRequired, None),
                ("operator", Connected, None),
                ("tickets", ConnectionRequired, missing(&["api_key", "region"])),
            ]
        );
        // Admin-set secrets count like typed values, and together they make it work.
        let typed = [stored("tickets", Connected, &["region"], false)];
        assert_eq!(
            table(&rows(&ups, &keys, &typed, &["api_key".into()], 10))[2],
            ("tickets", Connected, None)
        );
        assert_eq!(
            table(&rows(&ups, &keys, &[], &["api_key".into()], 10))[2],
            ("tickets", ConnectionRequired, missing(&["region"]))
        );
        // Marked after an upstream 401: required, though every value is present.
        let marked = [stored("tickets", ConnectionRequired, &["api_key", "region"], false)];
        assert_eq!(
            table(&rows(&ups, &keys, &marked, &[], 10))[2],
            ("tickets", ConnectionRequired, missing(&[]))
        );
    }

    #[test]
    fn an_oauth_upstream_is_connected_while_its_grant_is_live() {
        let ups = upstreams();
        let keys = [key(&["*"], None)];
        let grant = [stored("oauthy", Connected, &[], true)];
        assert_eq!(table(&rows(&ups, &keys, &grant, &[], 50))[1], ("oauthy", Connected, None));
        assert_eq!(
            table(&rows(&ups, &keys, &grant, &[], 100))[1],
            ("oauthy", ConnectionRequired, None),
            "expired, no refresh token"
        );
        let mut refreshable = grant.clone();
        refreshable[0].refreshable = true;
        assert_eq!(table(&rows(&ups, &keys, &refreshable, &[], 1000))[1], ("oauthy", Connected, None));
        let dead = [stored("oauthy", ConnectionRequired, &[], true)];
        assert_eq!(table(&rows(&ups, &keys, &dead, &[], 50))[1], ("oauthy", ConnectionRequired, None));
    }

    #[test]
    fn stored_connections_outside_the_keys_are_still_listed() {
        let ups = upstreams();
        let gone = [
            stored("deleted", Connected, &["api_key"], false),
            stored("elsewhere", ConnectionRequired, &[], false),
        ];
        let listed = rows(&ups, &[], &gone, &[], 10);
        assert_eq!(table(&listed), [("deleted", Connected, None), ("elsewhere", ConnectionRequired, None)]);
        assert_eq!(listed[0].stored, Some(&gone[0]));
    }
}
