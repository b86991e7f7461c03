//! OAuth token refresh, one at a time per subject (other requests wait, then find the new
//! token), and RFC 7009 revocation of a grant.

use super::SubjectStore;
use crate::core::oauth::grant::{seal_grant, OAuthGrant};
use crate::core::oauth::token::{refresh_due, Grant, TokenOutcome};
use crate::core::request::{refresh_needed, ConnectionStatus, Refreshed};
use crate::core::seal::{ConnectionValue, Context, Sealed};
use crate::oauth_client::{revoke, token_call};
use crate::rt::{self, now_ms, random_bytes};
use crate::store::protocol::Connection;
use crate::store::schema::CONNECTIONS;
use worker::{Env, Result, Storage};

/// How long a failed refresh is not retried.
const REFRESH_BACKOFF_MS: u64 = 5_000;

impl SubjectStore {
    /// One refresh at a time for this subject: other requests wait (the runtime holds them)
    /// and then find the new token instead of refreshing again.
    pub(super) async fn refresh(&self, upstream: &str, rejected: Option<Sealed>) -> Result<Refreshed> {
        let Some(subject) = self.subject().await? else { return Ok(Refreshed::ConnectionRequired) };
        // After a failure, do not queue every request behind another slow attempt for a while.
        let backoff = self.refresh_failed_until.borrow().get(upstream).copied();
        if backoff.is_some_and(|until| now_ms() < until) {
            return Ok(Refreshed::Unavailable);
        }
        let work = refresh_grant(
            self.storage(),
            self.env.clone(),
            subject.to_string(),
            upstream.to_string(),
            rejected,
        );
        let outcome = self.state.block_concurrency_while(async move { Ok(work.await) }).await?;
        let mut failed = self.refresh_failed_until.borrow_mut();
        if outcome == Refreshed::Unavailable {
            failed.insert(upstream.to_string(), now_ms() + REFRESH_BACKOFF_MS);
        } else {
            failed.remove(upstream);
        }
        Ok(outcome)
    }
}

/// Refreshes `upstream`'s token unless that is no longer needed (`core::request::refresh_needed`).
/// Never fails: a failure inside `blockConcurrencyWhile` would reset the object, so every
/// problem is an outcome.
async fn refresh_grant(
    storage: Storage,
    env: Env,
    subject: String,
    upstream: String,
    rejected: Option<Sealed>,
) -> Refreshed {
    let key = CONNECTIONS.key(&upstream);
    let mut conn = match storage.get::<Connection>(&key).await {
        Ok(Some(conn)) => conn,
        Ok(None) => return Refreshed::ConnectionRequired,
        Err(_) => return Refreshed::Unavailable,
    };
    let Some(grant) = conn.oauth.clone() else { return Refreshed::ConnectionRequired };
    let due = refresh_due(now_ms(), grant.issued_at, grant.expires_at);
    if !refresh_needed(rejected.as_ref(), &grant.access_token, due) {
        return Refreshed::Token { access_token: grant.access_token, updated_at: conn.updated_at };
    }
    let config = rt::config(&env);
    let Ok(keyring) = rt::keyring(&config) else { return Refreshed::Unavailable };
    let context =
        Context::Connection { subject: &subject, upstream: &upstream, value: ConnectionValue::RefreshToken };
    let refresh_token =
        grant.refresh_token.as_ref().and_then(|sealed| keyring.open_secret(&context, sealed).ok());
    let outcome = match (refresh_token, grant.client.auth(&keyring, &subject, &upstream)) {
        (Some(rt), Ok(client)) => {
            let req = Grant::Refresh { refresh_token: &rt, resource: grant.client.resource.as_deref() };
            token_call(&config, &client, &grant.client.token_endpoint, &req).await
        }
        // Nothing to refresh with: only the user can make a new grant.
        _ => Ok(TokenOutcome::InvalidGrant),
    };
    match outcome {
        Ok(TokenOutcome::Issued(tokens)) => {
            let fresh = seal_grant(
                &keyring,
                (&subject, &upstream),
                &tokens,
                grant.refresh_token.clone(),
                grant.client.clone(),
                now_ms(),
                random_bytes,
            );
            conn.status = ConnectionStatus::Connected;
            conn.expires_at = fresh.expires_at;
            conn.updated_at = now_ms();
            let access_token = fresh.access_token.clone();
            conn.oauth = Some(fresh);
            // Stored before the new access token is handed out: a rotated refresh token is
            // never lost, and never presented twice.
            match storage.put(&key, &conn).await {
                Ok(()) => Refreshed::Token { access_token, updated_at: conn.updated_at },
                Err(_) => Refreshed::Unavailable,
            }
        }
        Ok(TokenOutcome::InvalidGrant) => {
            conn.status = ConnectionStatus::ConnectionRequired;
            conn.oauth = None;
            conn.expires_at = None;
            conn.updated_at = now_ms();
            let _ = storage.put(&key, &conn).await;
            Refreshed::ConnectionRequired
        }
        Ok(TokenOutcome::Failed(e)) => {
            worker::console_error!("mcp-authbridge: refresh for '{upstream}' failed: {e}");
            Refreshed::Unavailable
        }
        Err(e) => {
            worker::console_error!("mcp-authbridge: refresh for '{upstream}': token endpoint {e}");
            Refreshed::Unavailable
        }
    }
}

/// RFC 7009: revokes the refresh token (which ends the grant) and the access token, where the
/// server allows; true when the grant's longest-lived token was revoked.
pub(super) async fn revoke_grant(env: &Env, subject: &str, upstream: &str, grant: &OAuthGrant) -> bool {
    let Some(endpoint) = &grant.client.revocation_endpoint else { return false };
    let config = rt::config(env);
    let Ok(keyring) = rt::keyring(&config) else { return false };
    let Ok(client) = grant.client.auth(&keyring, subject, upstream) else { return false };
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
