//! What the gateway's own authorization server keeps in a subject's store: codes and the grants
//! it issued to MCP clients, every token only as its hash, with an index from each token hash
//! to its grant (`schema::GRANT_TOKENS`). The rules are `core::authorize::grant`.

use super::SubjectStore;
use crate::core::authorize::grant::{
    access_allowed, present_refresh, redeem, rotated, CodeRecord, CodeUse, IssuedGrant, Redemption,
    RefreshUse, ACCESS_TOKEN_S,
};
use crate::core::keys::KeyHash;
use crate::rt::now_ms;
use crate::store::protocol::{RedeemCode, Redeemed, RotateRefresh, Rotated};
use crate::store::schema::{CODES, GRANTS, GRANT_TOKENS};
use worker::Result;

impl SubjectStore {
    pub(super) async fn redeem_code(&self, op: RedeemCode) -> Result<Redeemed> {
        let storage = self.storage();
        let key = CODES.key(op.code_hash.as_str());
        let Some(mut code) = storage.get::<CodeRecord>(&key).await? else {
            return Ok(Redeemed::Refused("unknown code".into()));
        };
        let presented = Redemption {
            client_id: &op.client_id,
            redirect_uri: &op.redirect_uri,
            code_verifier: &op.code_verifier,
            now_ms: now_ms(),
        };
        match redeem(&code, &presented) {
            CodeUse::Issue => {}
            // RFC 6749 §4.1.2: a code used twice revokes what it issued.
            CodeUse::Replayed(grant) => {
                self.revoke_grant_id(&grant).await?;
                return Ok(Redeemed::Refused("the code was used before: its grant is revoked".into()));
            }
            CodeUse::Refused(why) => return Ok(Redeemed::Refused(why.into())),
        }
        let now = now_ms();
        let grant = IssuedGrant {
            id: op.grant_id,
            client_id: code.client_id.clone(),
            client_name: op.client_name,
            upstream: code.upstream.clone(),
            refresh: op.refresh,
            previous: None,
            access: op.access,
            access_expires_at: now + ACCESS_TOKEN_S * 1000,
            created_at: now,
            last_used: None,
        };
        code.redeemed_for = Some(grant.id.clone());
        storage.put(&key, &code).await?;
        self.store_grant(&grant, None).await?;
        Ok(Redeemed::Issued)
    }

    pub(super) async fn rotate_refresh(&self, op: RotateRefresh) -> Result<Rotated> {
        let storage = self.storage();
        let Some(id) = storage.get::<String>(&GRANT_TOKENS.key(op.presented.as_str())).await? else {
            return Ok(Rotated::Refused);
        };
        let Some(grant) = storage.get::<IssuedGrant>(&GRANTS.key(&id)).await? else {
            return Ok(Rotated::Refused);
        };
        let used = present_refresh(&grant, &op.presented, &op.client_id, now_ms());
        match used {
            RefreshUse::Rotate | RefreshUse::Retry => {
                let next = rotated(&grant, used, op.refresh, op.access, now_ms());
                self.store_grant(&next, Some(&grant)).await?;
                Ok(Rotated::Issued { upstream: next.upstream })
            }
            RefreshUse::Reuse => {
                self.revoke_grant_id(&grant.id).await?;
                Ok(Rotated::Revoked)
            }
            RefreshUse::Unknown => Ok(Rotated::Refused),
        }
    }

    /// Whether `access`, indexed to grant `id`, is a live access token of it for `upstream`.
    pub(super) async fn access_token_allows(
        &self,
        id: &str,
        access: &KeyHash,
        upstream: &str,
    ) -> Result<bool> {
        let grant = self.storage().get::<IssuedGrant>(&GRANTS.key(id)).await?;
        Ok(grant.is_some_and(|g| access_allowed(&g, access, upstream, now_ms())))
    }

    /// Stores `grant` with its token index; the tokens of `before` it no longer has are dropped.
    async fn store_grant(&self, grant: &IssuedGrant, before: Option<&IssuedGrant>) -> Result<()> {
        let storage = self.storage();
        let mut keep = vec![grant.refresh.clone(), grant.access.clone()];
        keep.extend(grant.previous.as_ref().map(|p| p.hash.clone()));
        if let Some(before) = before {
            for old in tokens_of(before) {
                if !keep.contains(&old) {
                    storage.delete(&GRANT_TOKENS.key(old.as_str())).await?;
                }
            }
        }
        for token in &keep {
            storage.put(&GRANT_TOKENS.key(token.as_str()), &grant.id).await?;
        }
        storage.put(&GRANTS.key(&grant.id), grant).await
    }

    /// Revokes a grant: it and every token of it are forgotten.
    async fn revoke_grant_id(&self, id: &str) -> Result<()> {
        let storage = self.storage();
        if let Some(grant) = storage.get::<IssuedGrant>(&GRANTS.key(id)).await? {
            for token in tokens_of(&grant) {
                storage.delete(&GRANT_TOKENS.key(token.as_str())).await?;
            }
            storage.delete(&GRANTS.key(id)).await?;
        }
        Ok(())
    }
}

fn tokens_of(grant: &IssuedGrant) -> Vec<KeyHash> {
    let mut tokens = vec![grant.refresh.clone(), grant.access.clone()];
    tokens.extend(grant.previous.as_ref().map(|p| p.hash.clone()));
    tokens
}
