//! What the gateway's own authorization server keeps in a subject's store: codes and the grants
//! it issued to MCP clients, every token only as its hash, with an index from each token hash
//! to its grant (`schema::GRANT_TOKENS`). The rules are `core::authorize::grant`.

use super::SubjectStore;
use crate::core::authorize::grant::{
    access_allowed, present_refresh, redeem, revokes, rotated, CodeRecord, CodeUse, IssuedGrant, Redemption,
    RefreshUse, ACCESS_TOKEN_S,
};
use crate::core::keys::{usage_due, KeyHash};
use crate::rt::now_ms;
use crate::store::protocol::{RedeemCode, Redeemed, RevokeToken, RotateRefresh, Rotated};
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
                self.revoke_grant(&grant).await?;
                return Ok(Redeemed::Refused("the code was used before: its grant is revoked".into()));
            }
            CodeUse::Refused(why) => return Ok(Redeemed::Refused(why.into())),
        }
        let now = now_ms();
        let grant = IssuedGrant {
            id: op.grant_id,
            client_id: code.client_id.clone(),
            client: Some(op.client_id),
            client_name: op.client_name,
            upstream: code.upstream.clone(),
            refresh: op.refresh,
            previous: None,
            access: op.access,
            access_expires_at: now + ACCESS_TOKEN_S * 1000,
            created_at: now,
            last_used: Some(now),
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
                self.revoke_grant(&grant.id).await?;
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
        let key = GRANTS.key(id);
        let Some(mut grant) = self.storage().get::<IssuedGrant>(&key).await? else { return Ok(false) };
        let now = now_ms();
        let allowed = access_allowed(&grant, access, upstream, now);
        if allowed && usage_due(grant.last_used, now) {
            grant.last_used = Some(now);
            self.storage().put(&key, &grant).await?;
        }
        Ok(allowed)
    }

    /// RFC 7009 revocation: ends the grant the presented token is indexed to, when
    /// `core::authorize::grant::revokes` says so; anything else changes nothing.
    pub(super) async fn revoke_token(&self, op: RevokeToken) -> Result<()> {
        let storage = self.storage();
        let Some(id) = storage.get::<String>(&GRANT_TOKENS.key(op.presented.as_str())).await? else {
            return Ok(());
        };
        let grant = storage.get::<IssuedGrant>(&GRANTS.key(&id)).await?;
        if grant.is_some_and(|g| revokes(&g, &op.presented, &op.client_id)) {
            self.revoke_grant(&id).await?;
        }
        Ok(())
    }

    /// The subject's grants, oldest first.
    pub(super) async fn list_grants(&self) -> Result<Vec<IssuedGrant>> {
        let mut grants: Vec<IssuedGrant> = self.list(&GRANTS).await?.into_iter().map(|(_, g)| g).collect();
        grants.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(grants)
    }

    /// Stores `grant` with its token index; the tokens of `before` it no longer has are dropped.
    async fn store_grant(&self, grant: &IssuedGrant, before: Option<&IssuedGrant>) -> Result<()> {
        let storage = self.storage();
        let keep = grant.tokens();
        if let Some(before) = before {
            for old in before.tokens() {
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

    /// Revokes a grant: it and every token of it are forgotten, so its access token is refused on
    /// the next request (`access_token_allows` reads the grant every time). Answers whether it
    /// existed.
    pub(super) async fn revoke_grant(&self, id: &str) -> Result<bool> {
        let storage = self.storage();
        let Some(grant) = storage.get::<IssuedGrant>(&GRANTS.key(id)).await? else { return Ok(false) };
        for token in grant.tokens() {
            storage.delete(&GRANT_TOKENS.key(token.as_str())).await?;
        }
        storage.delete(&GRANTS.key(id)).await?;
        Ok(true)
    }
}
