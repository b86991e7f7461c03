//! What a refresh's outcome means for the grant (a closed table), and how a grant whose
//! authorization server keeps failing is retried: exponential backoff with one probe at a time,
//! and after `GIVE_UP_MS` of failures the user is asked to connect again rather than getting
//! 503 for ever.

use super::token::{TokenOutcome, Tokens};
use serde::{Deserialize, Serialize};

/// OAuth errors that say "try again later", not "this grant is dead" (RFC 6749 §5.2 and the
/// registry of error codes; `slow_down` is RFC 8628's).
const TRANSIENT_ERRORS: [&str; 3] = ["temporarily_unavailable", "server_error", "slow_down"];

/// After this long of failing refreshes the grant is given up: `connection_required`.
pub const GIVE_UP_MS: u64 = 10 * 60 * 1000;
/// The first wait after a failure; it doubles with each further failure, up to `MAX_BACKOFF_MS`.
pub const FIRST_BACKOFF_MS: u64 = 1_000;
pub const MAX_BACKOFF_MS: u64 = 60_000;

/// What a refresh attempt came to, for the grant.
#[derive(Debug, Clone)]
pub enum Verdict {
    Issued(Tokens),
    /// The grant is dead: `invalid_grant` and every refusal that means the same under another
    /// name (e.g. GitHub's `bad_refresh_token`, even with HTTP 200). Only the user can make a new
    /// one: `connection_required` with a link.
    Terminal(String),
    /// `invalid_client`: the gateway's client was refused, which the user cannot fix and which
    /// may pass (a rotation in progress, a brief outage). The grant is kept; the operator is told.
    ClientRejected,
    /// The server could not answer now (unreachable, 5xx, `temporarily_unavailable` ...).
    Transient(String),
}

/// The closed table: every outcome of a refresh is exactly one verdict.
pub fn verdict(outcome: Result<TokenOutcome, String>) -> Verdict {
    match outcome {
        Ok(TokenOutcome::Issued(tokens)) => Verdict::Issued(tokens),
        Ok(TokenOutcome::Refused { error, .. }) if error == "invalid_client" => Verdict::ClientRejected,
        Ok(TokenOutcome::Refused { error, status })
            if TRANSIENT_ERRORS.contains(&error.as_str()) || status >= 500 =>
        {
            Verdict::Transient(format!("{error} ({status})"))
        }
        Ok(TokenOutcome::Refused { error, status }) => Verdict::Terminal(format!("{error} ({status})")),
        Ok(TokenOutcome::Failed(why)) | Err(why) => Verdict::Transient(why),
    }
}

/// A grant whose refreshes fail, as its connection records it (so the bound holds across
/// restarts of the subject's store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failing {
    /// When the first of the failures in a row happened.
    pub since: u64,
    pub failures: u32,
    /// Not tried again before this.
    pub next_try: u64,
}

impl Failing {
    /// The record after one more failure at `now`.
    pub fn after(previous: Option<Failing>, now: u64) -> Failing {
        let (since, failures) = match previous {
            Some(p) => (p.since, p.failures.saturating_add(1)),
            None => (now, 1),
        };
        let wait = FIRST_BACKOFF_MS.saturating_mul(1 << (failures - 1).min(16)).min(MAX_BACKOFF_MS);
        Failing { since, failures, next_try: now + wait }
    }

    /// Whether a request at `now` may try the server again (it is then the one probe: others
    /// meanwhile are answered 503 at once instead of queuing behind a failing server).
    pub fn may_try(failing: Option<&Failing>, now: u64) -> bool {
        failing.is_none_or(|f| now >= f.next_try)
    }

    /// Seconds a client should wait before trying again.
    pub fn retry_after(failing: Option<&Failing>, now: u64) -> u64 {
        failing.map_or(1, |f| f.next_try.saturating_sub(now).div_ceil(1000).max(1))
    }

    /// Whether the failures have lasted long enough to give the grant up.
    pub fn given_up(&self, now: u64) -> bool {
        now.saturating_sub(self.since) >= GIVE_UP_MS
    }
}

/// What a failed refresh does to the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Keep the grant; try again as `failing` says.
    Keep(Failing),
    /// The failures have lasted `GIVE_UP_MS`: the user must connect again.
    GiveUp,
}

/// A failed refresh (`client_rejected`: `invalid_client`) at `now`, after `previous` failures.
/// An operator's client that is refused is never given up for it (reconnecting would not help:
/// only the operator can fix the client); every other failure is, after `GIVE_UP_MS`.
pub fn after_failure(
    client_rejected: bool,
    operator_client: bool,
    previous: Option<Failing>,
    now: u64,
) -> AfterFailure {
    let failing = Failing::after(previous, now);
    if failing.given_up(now) && !(client_rejected && operator_client) {
        AfterFailure::GiveUp
    } else {
        AfterFailure::Keep(failing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::oauth::token::parse_token_response;

    fn answered(status: u16, body: &str) -> Verdict {
        verdict(Ok(parse_token_response(status, "application/json", body.as_bytes())))
    }

    #[test]
    fn every_outcome_has_one_meaning() {
        assert!(matches!(answered(200, r#"{"access_token":"a","token_type":"Bearer"}"#), Verdict::Issued(_)));
        for terminal in [
            (400, r#"{"error":"invalid_grant"}"#),
            (400, r#"{"error":"unauthorized_client"}"#),
            (400, r#"{"error":"bad_refresh_token"}"#),
            (200, r#"{"error":"bad_refresh_token"}"#),
            (401, r#"{"error":"invalid_scope"}"#),
            (400, r#"{"error":"some_future_code"}"#),
        ] {
            assert!(matches!(answered(terminal.0, terminal.1), Verdict::Terminal(_)), "{terminal:?}");
        }
        assert!(matches!(answered(401, r#"{"error":"invalid_client"}"#), Verdict::ClientRejected));
        assert!(matches!(answered(400, r#"{"error":"invalid_client"}"#), Verdict::ClientRejected));
        for transient in [
            (400, r#"{"error":"temporarily_unavailable"}"#),
            (400, r#"{"error":"server_error"}"#),
            (400, r#"{"error":"slow_down"}"#),
            (503, r#"{"error":"invalid_grant"}"#),
            (502, "<html>bad gateway</html>"),
            (200, r#"{"token_type":"Bearer"}"#),
        ] {
            assert!(matches!(answered(transient.0, transient.1), Verdict::Transient(_)), "{transient:?}");
        }
        assert!(matches!(verdict(Err("timeout".into())), Verdict::Transient(_)));
    }

    #[test]
    fn backoff_doubles_allows_one_probe_and_gives_up_after_ten_minutes() {
        let first = Failing::after(None, 1_000);
        assert_eq!(first, Failing { since: 1_000, failures: 1, next_try: 2_000 });
        assert!(!Failing::may_try(Some(&first), 1_999));
        assert!(Failing::may_try(Some(&first), 2_000));
        assert!(Failing::may_try(None, 0));
        assert_eq!(Failing::retry_after(Some(&first), 1_001), 1);
        let second = Failing::after(Some(first), 2_000);
        assert_eq!((second.since, second.failures, second.next_try), (1_000, 2, 4_000));
        let mut f = second;
        for _ in 0..40 {
            f = Failing::after(Some(f), f.next_try);
        }
        let capped = Failing::after(Some(f), 5);
        assert_eq!((capped.failures, capped.next_try), (43, 5 + MAX_BACKOFF_MS));
        assert_eq!(Failing::retry_after(Some(&capped), 5), 60);
        assert!(!first.given_up(1_000 + GIVE_UP_MS - 1));
        assert!(first.given_up(1_000 + GIVE_UP_MS));
    }

    #[test]
    fn only_an_operator_client_refused_is_never_given_up() {
        let late = 1_000 + GIVE_UP_MS;
        let start = Some(Failing::after(None, 1_000));
        assert!(matches!(after_failure(false, false, None, 5), AfterFailure::Keep(f) if f.since == 5));
        assert_eq!(
            after_failure(false, false, start, late),
            AfterFailure::GiveUp,
            "a server down for 10 minutes"
        );
        assert_eq!(
            after_failure(false, true, start, late),
            AfterFailure::GiveUp,
            "transient, operator client"
        );
        assert_eq!(
            after_failure(true, false, start, late),
            AfterFailure::GiveUp,
            "a dynamic registration refused"
        );
        assert!(
            matches!(after_failure(true, true, start, late), AfterFailure::Keep(_)),
            "the operator must fix it"
        );
    }
}
