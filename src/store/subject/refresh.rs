//! OAuth token refresh: one flight per (subject, upstream) — requests for the same upstream
//! wait for it and take its token, requests for other upstreams and key checks never wait —
//! the outcome read through the closed table of `core::oauth::refresh`, a failing server backed
//! off with one probe at a time, and RFC 7009 revocation of a grant.

use super::SubjectStore;
use crate::core::ids::UpstreamId;
use crate::core::oauth::grant::{seal_grant, OAuthGrant};
use crate::core::oauth::refresh::{after_failure, verdict, AfterFailure, Failing, Verdict};
use crate::core::oauth::token::{refresh_due, ClientAuth, Grant, TokenOutcome};
use crate::core::request::{refresh_needed, ConnectionStatus, Refreshed};
use crate::core::seal::{ConnectionValue, Context, Keyring, Sealed};
use crate::oauth_client::{revoke, token_call};
use crate::rt::{self, now_ms, random_bytes};
use crate::store::kv::ConfigStore;
use crate::store::protocol::Connection;
use crate::store::schema::CONNECTIONS;
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use worker::{Env, Result, Storage};

/// A refresh in flight for one upstream, shared by every request that needs it.
pub(super) type Flight = Shared<LocalBoxFuture<'static, Refreshed>>;

impl SubjectStore {
    /// Refreshes `upstream`'s token, or joins the refresh already in flight for it. While its
    /// server is failing, a request that finds a probe in flight is answered at once instead
    /// of queuing behind it.
    pub(super) async fn refresh(&self, upstream: &str, rejected: Option<Sealed>) -> Result<Refreshed> {
        let Some(subject) = self.subject().await? else { return Ok(Refreshed::ConnectionRequired) };
        let in_flight = self.refreshing.borrow().get(upstream).cloned();
        if let Some((_, flight)) = in_flight {
            let conn = self.storage().get::<Connection>(&CONNECTIONS.key(upstream)).await?;
            if let Some(failing) = conn.and_then(|c| c.refresh_failing) {
                return Ok(Refreshed::Unavailable {
                    retry_after: Failing::retry_after(Some(&failing), now_ms()),
                });
            }
            return Ok(flight.await);
        }
        let generation = self.flights.get() + 1;
        self.flights.set(generation);
        let work = refresh_grant(
            self.storage(),
            self.env.clone(),
            subject.to_string(),
            upstream.to_string(),
            rejected,
        );
        let flight: Flight = work.boxed_local().shared();
        self.refreshing.borrow_mut().insert(upstream.to_string(), (generation, flight.clone()));
        let outcome = flight.await;
        let mut refreshing = self.refreshing.borrow_mut();
        if refreshing.get(upstream).is_some_and(|(g, _)| *g == generation) {
            refreshing.remove(upstream);
        }
        Ok(outcome)
    }
}

/// Refreshes `upstream`'s token unless that is no longer needed (`core::request::refresh_needed`)
/// or its server is being backed off. Never fails: every problem is an outcome.
async fn refresh_grant(
    storage: Storage,
    env: Env,
    subject: String,
    upstream: String,
    rejected: Option<Sealed>,
) -> Refreshed {
    let key = CONNECTIONS.key(&upstream);
    let Ok(Some(conn)) = storage.get::<Connection>(&key).await else { return Refreshed::ConnectionRequired };
    let Some(grant) = conn.oauth.clone() else { return Refreshed::ConnectionRequired };
    let now = now_ms();
    let due = refresh_due(now, grant.issued_at, grant.expires_at);
    if !refresh_needed(rejected.as_ref(), &grant.access_token, due) {
        return Refreshed::Token { access_token: grant.access_token, updated_at: conn.updated_at };
    }
    if !Failing::may_try(conn.refresh_failing.as_ref(), now) {
        return Refreshed::Unavailable {
            retry_after: Failing::retry_after(conn.refresh_failing.as_ref(), now),
        };
    }
    let config = rt::config(&env);
    let Ok(keyring) = rt::keyring(&config) else { return Refreshed::Unavailable { retry_after: 1 } };
    let context =
        Context::Connection { subject: &subject, upstream: &upstream, value: ConnectionValue::RefreshToken };
    let refresh_token = grant.refresh_token.as_ref().map(|sealed| keyring.open_secret(&context, sealed));
    let client = current_client(&env, &keyring, &subject, &upstream, &grant).await;
    let outcome = match (refresh_token, client) {
        (Some(Ok(rt)), Some(client)) => {
            let req = Grant::Refresh { refresh_token: &rt, resource: grant.client.resource.as_deref() };
            verdict(
                token_call(&config, &client, &grant.client.token_endpoint, &req)
                    .await
                    .map_err(|e| e.to_string()),
            )
        }
        // Nothing to refresh with: only the user can make a new grant.
        (None, _) => verdict(Ok(TokenOutcome::Refused { error: "no refresh token".into(), status: 400 })),
        // A value that does not open (a key rotation gone wrong) is the operator's to fix, never
        // a reason to end the user's grant.
        (Some(Err(_)), _) | (_, None) => verdict(Err("a sealed value of the grant does not open".into())),
    };
    // The connection may have changed while the server answered (a reconnect, a disconnect):
    // only the grant that was refreshed is updated.
    let Ok(Some(mut conn)) = storage.get::<Connection>(&key).await else {
        return Refreshed::ConnectionRequired;
    };
    if conn.oauth.as_ref().map(|g| &g.refresh_token) != Some(&grant.refresh_token) {
        return match &conn.oauth {
            Some(g) => Refreshed::Token { access_token: g.access_token.clone(), updated_at: conn.updated_at },
            None => Refreshed::ConnectionRequired,
        };
    }
    let now = now_ms();
    let (refreshed, log) = apply_verdict(&mut conn, outcome, &keyring, (&subject, &upstream), now);
    if let Some(why) = log {
        worker::console_error!("mcp-authbridge: refresh for '{upstream}': {why}");
    }
    conn.updated_at = now;
    // Stored before the new access token is handed out: a rotated refresh token is never lost,
    // and never presented twice.
    match storage.put(&key, &conn).await {
        Ok(()) => match refreshed {
            Refreshed::Token { access_token, .. } => {
                Refreshed::Token { access_token, updated_at: conn.updated_at }
            }
            other => other,
        },
        Err(_) => Refreshed::Unavailable { retry_after: 1 },
    }
}

/// What a verdict does to the connection, and what to log.
fn apply_verdict(
    conn: &mut Connection,
    outcome: Verdict,
    keyring: &Keyring,
    (subject, upstream): (&str, &str),
    now: u64,
) -> (Refreshed, Option<String>) {
    let Some(grant) = conn.oauth.clone() else { return (Refreshed::ConnectionRequired, None) };
    let operator_client = grant.client.operator;
    let (failing, problem, log) = match outcome {
        Verdict::Issued(tokens) => {
            let fresh = seal_grant(
                keyring,
                (subject, upstream),
                &tokens,
                grant.refresh_token.clone(),
                grant.client.clone(),
                now,
                random_bytes,
            );
            let access_token = fresh.access_token.clone();
            conn.status = ConnectionStatus::Connected;
            conn.expires_at = fresh.expires_at;
            conn.oauth = Some(fresh);
            conn.refresh_failing = None;
            conn.problem = None;
            return (Refreshed::Token { access_token, updated_at: now }, None);
        }
        Verdict::Terminal(why) => return (end_grant(conn), Some(format!("the grant ended ({why})"))),
        Verdict::ClientRejected => match after_failure(true, operator_client, conn.refresh_failing, now) {
            AfterFailure::GiveUp => {
                let why = "the client stayed refused (invalid_client); the grant was given up";
                return (end_grant(conn), Some(why.into()));
            }
            AfterFailure::Keep(failing) => (
                failing,
                Some("invalid_client".to_string()),
                "the server refused the gateway's client (invalid_client); the grant is kept".to_string(),
            ),
        },
        Verdict::Transient(why) => match after_failure(false, operator_client, conn.refresh_failing, now) {
            AfterFailure::GiveUp => {
                return (end_grant(conn), Some(format!("still failing ({why}); the grant was given up")))
            }
            AfterFailure::Keep(failing) => (failing, conn.problem.clone(), why),
        },
    };
    let retry_after = Failing::retry_after(Some(&failing), now);
    conn.refresh_failing = Some(failing);
    conn.problem = problem;
    (Refreshed::Unavailable { retry_after }, Some(log))
}

/// The grant is over: the user must connect again.
fn end_grant(conn: &mut Connection) -> Refreshed {
    conn.status = ConnectionStatus::ConnectionRequired;
    conn.oauth = None;
    conn.expires_at = None;
    conn.refresh_failing = None;
    Refreshed::ConnectionRequired
}

/// The client to refresh with: an operator-registered client as the upstream is configured now
/// (a rotated secret applies at once), else the registration the grant was made with.
async fn current_client(
    env: &Env,
    keyring: &Keyring,
    subject: &str,
    upstream: &str,
    grant: &OAuthGrant,
) -> Option<ClientAuth> {
    if grant.client.operator {
        let configured = match UpstreamId::parse(upstream) {
            Ok(id) => ConfigStore::new(env.clone()).upstream(id.as_str()).await.ok().flatten(),
            Err(_) => None,
        };
        if let Some(settings) = configured.and_then(|u| u.oauth) {
            let context = Context::OAuthClientSecret { upstream };
            let secret = match &settings.client_secret_sealed {
                Some(sealed) => Some(keyring.open_secret(&context, sealed).ok()?),
                None => None,
            };
            return crate::core::oauth::grant::operator_client(&settings, secret, grant.client.method);
        }
    }
    grant.client.auth(keyring, subject, upstream).ok()
}

/// RFC 7009: revokes the refresh token (which ends the grant) and the access token, where the
/// server allows; true when the grant's longest-lived token was revoked.
pub(super) async fn revoke_grant(env: &Env, subject: &str, upstream: &str, grant: &OAuthGrant) -> bool {
    let Some(endpoint) = &grant.client.revocation_endpoint else { return false };
    let config = rt::config(env);
    let Ok(keyring) = rt::keyring(&config) else { return false };
    let Some(client) = current_client(env, &keyring, subject, upstream, grant).await else { return false };
    let tokens = [
        (grant.refresh_token.as_ref(), ConnectionValue::RefreshToken, "refresh_token"),
        (Some(&grant.access_token), ConnectionValue::AccessToken, "access_token"),
    ];
    let mut first = None;
    for (sealed, value, hint) in tokens {
        let Some(sealed) = sealed else { continue };
        let Ok(token) = keyring.open_secret(&Context::Connection { subject, upstream, value }, sealed) else {
            continue;
        };
        let ok = revoke(&config, &client, endpoint, &token, hint).await;
        first.get_or_insert(ok);
    }
    first.unwrap_or(false)
}
