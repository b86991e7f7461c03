//! A subject's connections: what a request needs from them (`Resolve`, one storage read), their
//! status, the admin list, and forgetting one.

use super::SubjectStore;
use crate::core::connections::ConnectionSummary;
use crate::core::ids::{SubjectId, UpstreamId};
use crate::core::keys::{usage_due, Access, KeyRecord};
use crate::core::oauth::token::refresh_due;
use crate::core::request::{
    pick_user_value, status_change_applies, still_bound, token_after_refresh, ConnectionStatus, Place,
    UserValue,
};
use crate::core::seal::Sealed;
use crate::rt::now_ms;
use crate::store::protocol::{
    Connection, Deleted, Resolve, Resolved, SetConnectionStatus, SubjectConnections,
};
use crate::store::schema::{CONNECTIONS, GRANT_TOKENS, KEYS, SUBJECT, SUBJECT_SECRETS};
use std::collections::BTreeMap;
use worker::Result;

/// Each `{{user.NAME}}` value found, by `core::request::pick_user_value`.
fn user_values(
    names: &[String],
    conn: Option<&Connection>,
    take: &impl Fn(&str) -> Option<wasm_bindgen::JsValue>,
) -> BTreeMap<String, UserValue> {
    let mut values = BTreeMap::new();
    for name in names {
        let from_conn = conn.and_then(|c| c.values.get(name)).cloned();
        let from_subject = take(&SUBJECT_SECRETS.key(name)).and_then(|v| v.as_string()).map(Sealed::stored);
        if let Some(v) = pick_user_value(from_conn, from_subject) {
            values.insert(name.clone(), v);
        }
    }
    values
}

impl SubjectStore {
    pub(super) async fn resolve(&self, op: Resolve) -> Result<Resolved> {
        let upstream = op.upstream.as_str();
        // Everything a request may need, in one storage read: the key record, or for an access
        // token its grant's id and the store's subject.
        let key_name = match op.access_token {
            true => GRANT_TOKENS.key(op.key_hash.as_str()),
            false => KEYS.key(op.key_hash.as_str()),
        };
        let conn_name = CONNECTIONS.key(upstream);
        let mut names = vec![key_name.clone(), conn_name.clone()];
        if op.access_token {
            names.push(SUBJECT.to_string());
        }
        names.extend(op.user.iter().map(|n| SUBJECT_SECRETS.key(n)));
        let found = self.storage().get_multiple(names).await?;
        let take = |name: &str| Some(found.get(&name.into())).filter(|v| !v.is_undefined());
        let subject = if op.access_token {
            // An access token the gateway issued: valid only for the one upstream of its grant,
            // and this store's subject is the grant's.
            let grant_id = take(&key_name).and_then(|v| v.as_string());
            let subject: Option<SubjectId> = take(SUBJECT).map(serde_wasm_bindgen::from_value).transpose()?;
            match (grant_id, subject) {
                (Some(id), Some(subject))
                    if self.access_token_allows(&id, &op.key_hash, upstream).await? =>
                {
                    (subject, id)
                }
                _ => return Ok(Resolved::InvalidKey),
            }
        } else {
            let Some(record) = take(&key_name) else {
                return Ok(Resolved::InvalidKey);
            };
            let mut record: KeyRecord = serde_wasm_bindgen::from_value(record)?;
            // Found by the SHA-256 of the whole key: no byte of the key itself is ever compared,
            // so the lookup's timing says nothing about it.
            let now = now_ms();
            match record.access(upstream, now) {
                Access::Expired => return Ok(Resolved::InvalidKey),
                Access::NotAllowed => return Ok(Resolved::NotAllowed),
                Access::Allowed => {}
            }
            if usage_due(record.last_used, now) {
                record.last_used = Some(now);
                self.storage().put(&key_name, &record).await?;
            }
            (record.subject, record.id)
        };
        let (subject, credential) = subject;
        let mut conn: Option<Connection> =
            take(&conn_name).map(serde_wasm_bindgen::from_value).transpose()?;
        if let (Some(c), Some(place)) = (conn.as_mut(), &op.place) {
            if !self.keep_bound(&conn_name, c, place).await? {
                // Nothing given for the old place goes to the new one; subject secrets set
                // through the admin API are the operator's and follow the upstream.
                let values = user_values(&op.user, None, &take);
                let connection = Some(c.seen());
                return Ok(Resolved::Ok {
                    subject,
                    credential,
                    values,
                    access_token: None,
                    connection,
                    oauth_unavailable: None,
                });
            }
        }
        let values = user_values(&op.user, conn.as_ref(), &take);
        let mut access_token = None;
        let mut oauth_unavailable = None;
        if let Some(grant) = conn.as_ref().and_then(|c| c.oauth.clone()).filter(|_| op.oauth) {
            let now = now_ms();
            access_token = if refresh_due(now, grant.issued_at, grant.expires_at) {
                let outcome = self.refresh(upstream, None).await?;
                conn = self.storage().get(&conn_name).await?;
                let still_valid = grant.expires_at.is_some_and(|e| e > now);
                token_after_refresh(outcome, grant.access_token, still_valid).unwrap_or_else(|down| {
                    oauth_unavailable = Some(down.retry_after);
                    None
                })
            } else {
                Some(grant.access_token)
            };
        }
        let connection = conn.as_ref().map(Connection::seen);
        Ok(Resolved::Ok { subject, credential, values, access_token, connection, oauth_unavailable })
    }

    /// Whether the connection is still where its credentials were given
    /// (`core::request::still_bound`). One that moved is marked `connection_required` and kept
    /// (a reconnect revokes its grant at the server that issued it); one recorded before origins
    /// were kept is bound now.
    async fn keep_bound(&self, key: &str, conn: &mut Connection, place: &Place) -> Result<bool> {
        let grant = conn.oauth.as_ref().map(|g| (g.client.issuer.as_str(), g.client.resource.as_deref()));
        if !still_bound(conn.origin.as_deref(), grant, place) {
            if conn.status != ConnectionStatus::ConnectionRequired {
                conn.status = ConnectionStatus::ConnectionRequired;
                conn.updated_at = now_ms();
                self.storage().put(key, &*conn).await?;
            }
            return Ok(false);
        }
        if conn.origin.is_none() {
            conn.origin = Some(place.origin.clone());
            self.storage().put(key, &*conn).await?;
        }
        Ok(true)
    }

    pub(super) async fn list_connections(&self) -> Result<SubjectConnections> {
        let conns = self.list::<Connection>(&CONNECTIONS).await?;
        let connections = conns
            .into_iter()
            .filter_map(|(upstream, c)| {
                Some(ConnectionSummary {
                    upstream: UpstreamId::parse(&upstream).ok()?,
                    status: c.status,
                    expires_at: c.expires_at,
                    values: c.values.into_keys().collect(),
                    oauth: c.oauth.is_some(),
                    refreshable: c.oauth.as_ref().is_some_and(|g| g.refresh_token.is_some()),
                    scopes: c.scopes,
                    updated_at: c.updated_at,
                    problem: c.problem,
                })
            })
            .collect();
        let secrets =
            self.list::<Sealed>(&SUBJECT_SECRETS).await?.into_iter().map(|(name, _)| name).collect();
        Ok(SubjectConnections { connections, secrets, keys: self.list_keys().await? })
    }

    pub(super) async fn set_connection_status(&self, op: SetConnectionStatus) -> Result<bool> {
        let key = CONNECTIONS.key(op.upstream.as_str());
        let existing: Option<Connection> = self.storage().get(&key).await?;
        if !status_change_applies(existing.as_ref().map(Connection::seen), op.seen, op.status) {
            return Ok(false);
        }
        let conn = match existing {
            Some(c) => Connection { status: op.status, updated_at: now_ms(), ..c },
            None => Connection {
                status: op.status,
                values: BTreeMap::new(),
                expires_at: None,
                scopes: None,
                oauth: None,
                updated_at: now_ms(),
                origin: None,
                refresh_failing: None,
                problem: None,
            },
        };
        self.storage().put(&key, &conn).await?;
        Ok(true)
    }

    pub(super) async fn delete_connection(&self, upstream: &str) -> Result<Deleted> {
        let key = CONNECTIONS.key(upstream);
        let Some(conn) = self.storage().get::<Connection>(&key).await? else {
            return Ok(Deleted::NotFound);
        };
        // Forget first (so no refresh can store a new grant meanwhile), then revoke the copy
        // read (RFC 7009) where the server offers it: a server that is down does not keep the
        // user connected against the operator's wish.
        self.storage().delete(&key).await?;
        let revoked = match (&conn.oauth, self.subject().await?) {
            (Some(grant), Some(subject)) => {
                super::refresh::revoke_grant(&self.env, subject.as_str(), upstream, grant).await
            }
            _ => false,
        };
        Ok(Deleted::Deleted { revoked })
    }
}
