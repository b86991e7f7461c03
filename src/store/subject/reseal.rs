//! `ENCRYPTION_KEY` rotation inside a subject store: every sealed value moved to the primary
//! key, by itself when the store is first used under a new key, or when `POST /admin/v1/reseal`
//! names the subject.

use super::SubjectStore;
use crate::core::connect::LinkRecord;
use crate::core::seal::{ConnectionValue, Context, Keyring, Resealed, Sealed};
use crate::rt::{self, random_bytes};
use crate::store::protocol::{Connection, PendingAuthorization};
use crate::store::schema::{CONNECTIONS, LINKS, PENDING, SEALED_WITH, SUBJECT_SECRETS};
use worker::{console_error, Error, Result};

impl SubjectStore {
    /// Once per object instance, before its first operation: when the primary key is not the
    /// one this store last re-sealed under (`ENCRYPTION_KEY` was rotated), re-seal now. So every
    /// subject that is used moves to the new key by itself; `POST /admin/v1/reseal` reaches the
    /// others by name.
    pub(super) async fn reseal_once(&self) {
        if self.reseal_checked.replace(true) {
            return;
        }
        let Ok(ring) = rt::keyring(&rt::config(&self.env)) else { return };
        let done = async {
            if self.storage().get::<String>(SEALED_WITH).await?.as_deref() != Some(ring.primary_id()) {
                self.reseal(&ring).await?;
            }
            Ok::<_, Error>(())
        };
        if let Err(e) = done.await {
            console_error!("mcp-authbridge: re-sealing a subject store failed: {e}");
        }
    }

    /// `Reseal`: the whole pass, now, under the isolate's keyring.
    pub(super) async fn reseal_now(&self) -> Result<Resealed> {
        let ring = rt::keyring(&rt::config(&self.env)).map_err(|e| Error::RustError(e.describe().2))?;
        self.reseal(&ring).await
    }

    /// Re-seals every sealed value kept here (subject secrets, connections, pending
    /// authorizations, the tokens of reusable links) under the primary key. Only storage calls between reads and writes, so no
    /// other operation of this object runs in between (input gates). Notes the key when every
    /// value opened.
    async fn reseal(&self, ring: &Keyring) -> Result<Resealed> {
        let mut tally = Resealed::default();
        let Some(subject) = self.subject().await? else { return Ok(tally) };
        let subject = subject.as_str();
        let storage = self.storage();
        for (name, mut sealed) in self.list::<Sealed>(&SUBJECT_SECRETS).await? {
            let context = Context::SubjectSecret { subject, name: &name };
            if ring.reseal_each([(context, &mut sealed)], random_bytes, &mut tally) {
                storage.put(&SUBJECT_SECRETS.key(&name), &sealed).await?;
            }
        }
        for (upstream, mut conn) in self.list::<Connection>(&CONNECTIONS).await? {
            let upstream = upstream.as_str();
            let at = |value| Context::Connection { subject, upstream, value };
            let mut values: Vec<(Context, &mut Sealed)> =
                conn.values.iter_mut().map(|(name, v)| (at(ConnectionValue::Field(name)), v)).collect();
            if let Some(grant) = conn.oauth.as_mut() {
                values.push((at(ConnectionValue::AccessToken), &mut grant.access_token));
                values.extend(grant.refresh_token.as_mut().map(|v| (at(ConnectionValue::RefreshToken), v)));
                values.extend(
                    grant.client.client_secret.as_mut().map(|v| (at(ConnectionValue::ClientSecret), v)),
                );
            }
            if ring.reseal_each(values, random_bytes, &mut tally) {
                storage.put(&CONNECTIONS.key(upstream), &conn).await?;
            }
        }
        for (hash, mut pending) in self.list::<PendingAuthorization>(&PENDING).await? {
            let upstream = pending.upstream.clone();
            let upstream = upstream.as_str();
            let secret = Context::Connection { subject, upstream, value: ConnectionValue::ClientSecret };
            let mut values = vec![(Context::PendingVerifier { subject, upstream }, &mut pending.verifier)];
            values.extend(pending.client.client_secret.as_mut().map(|v| (secret, v)));
            if ring.reseal_each(values, random_bytes, &mut tally) {
                storage.put(&PENDING.key(&hash), &pending).await?;
            }
        }
        for (hash, mut link) in self.list::<LinkRecord>(&LINKS).await? {
            let upstream = link.upstream.clone();
            let context = Context::LinkToken { subject, upstream: upstream.as_str() };
            if ring.reseal_each(link.token.as_mut().map(|t| (context, t)), random_bytes, &mut tally) {
                storage.put(&LINKS.key(&hash), &link).await?;
            }
        }
        if tally.unreadable == 0 {
            storage.put(SEALED_WITH, ring.primary_id()).await?;
        }
        Ok(tally)
    }
}
