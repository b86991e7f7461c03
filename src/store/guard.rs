//! The admin-token guard: one Durable Object per client address (`schema::guard_name`), which
//! counts that client's wrong admin tokens (`core::throttle`) so the limit holds across
//! isolates and locations. It is the subject store's class under a name no subject can have;
//! it keeps nothing but the count.

use super::schema::{ADMIN_ATTEMPTS, REGISTRATION_ATTEMPTS};
use crate::core::throttle::{Attempts, Verdict};
use crate::rt::now_ms;
use worker::{Result, Storage};

/// One admin request from the guarded client, `ok` when its token was right.
pub async fn attempt(storage: &Storage, ok: bool) -> Result<Verdict> {
    counted(storage, ADMIN_ATTEMPTS, |a| a.attempt(now_ms(), ok)).await
}

/// One client registration from the guarded client address.
pub async fn registration(storage: &Storage) -> Result<Verdict> {
    counted(storage, REGISTRATION_ATTEMPTS, |a| a.registration(now_ms())).await
}

async fn counted(
    storage: &Storage,
    key: &str,
    count: impl FnOnce(&mut Attempts) -> Verdict,
) -> Result<Verdict> {
    let stored: Option<String> = storage.get(key).await?;
    let mut attempts = Attempts::parse(stored.as_deref().unwrap_or_default());
    let before = attempts;
    let verdict = count(&mut attempts);
    if attempts != before {
        storage.put(key, attempts.stored()).await?;
    }
    Ok(verdict)
}
