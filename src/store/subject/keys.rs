//! Keys (found by the SHA-256 of the whole key; listed and revoked by id) and the subject's
//! secrets set through the admin API.

use super::SubjectStore;
use crate::core::keys::{KeyHash, KeyRecord};
use crate::store::protocol::PutSecret;
use crate::store::schema::{KEYS, KEY_IDS, SUBJECT_SECRETS};
use worker::Result;

impl SubjectStore {
    pub(super) async fn create_key(&self, key: KeyRecord) -> Result<()> {
        self.remember_subject(&key.subject).await?;
        let storage = self.storage();
        storage.put(&KEY_IDS.key(&key.id), &key.hash).await?;
        storage.put(&KEYS.key(key.hash.as_str()), &key).await
    }

    pub(super) async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let mut keys: Vec<KeyRecord> = self.list(&KEYS).await?.into_iter().map(|(_, k)| k).collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    /// Whether the key existed; it stops working at once.
    pub(super) async fn revoke_key(&self, id: &str) -> Result<bool> {
        let storage = self.storage();
        let Some(hash) = storage.get::<KeyHash>(&KEY_IDS.key(id)).await? else { return Ok(false) };
        storage.delete(&KEYS.key(hash.as_str())).await?;
        storage.delete(&KEY_IDS.key(id)).await?;
        Ok(true)
    }

    pub(super) async fn put_secret(&self, op: PutSecret) -> Result<()> {
        self.remember_subject(&op.subject).await?;
        self.storage().put(&SUBJECT_SECRETS.key(op.name.as_str()), &op.sealed).await
    }
}
