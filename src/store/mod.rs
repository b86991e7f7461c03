//! Storage adapters. The schema, written down once (the keys are built and read only in
//! `schema.rs`; sealing contexts are `core::seal::Context`):
//!
//! | where | key | value | notes |
//! |---|---|---|---|
//! | KV `CONFIG` | `upstream:{id}` | `Upstream` JSON (OAuth client secret sealed, context `oauth-client:{id}`) | read-mostly, cached per isolate |
//! | KV `CONFIG` | `secret:{name}` | sealed operator secret, context `secret:{name}` | |
//! | KV `CONFIG` | `oauth-registration:{upstream}:{16 hex of sha256(issuer, redirect URI)}` | sealed RFC 7591 registration response, context `oauth-registration:{upstream}` | made once per upstream and issuer |
//! | DO `SubjectStore` (one per subject, `idFromName(subject)`) | `subject` | the subject id | written on first use |
//! | DO | `key:{sha256 hex}` | `KeyRecord` | the source of truth for keys: revocation is immediate |
//! | DO | `keyid:{id}` | sha256 hex of that key | for listing and revoking by id |
//! | DO | `usecret:{name}` | sealed subject secret, context `user:{subject}:{name}` | |
//! | DO | `conn:{upstream}` | `Connection` | connect-page values sealed, context `conn:{subject}:{upstream}:{name}`; OAuth tokens and client secret likewise, names `oauth.access_token`, `oauth.refresh_token`, `oauth.client_secret` |
//! | DO | `link:{sha256 hex}` | `LinkRecord` (a `connection_required` link's token sealed, context `link:{subject}:{upstream}`) | connect links; used and expired ones pruned when a new one is made |
//! | DO | `pending:{sha256 hex of state}` | `PendingAuthorization` (PKCE verifier sealed, context `pending:{subject}:{upstream}`) | ≤ 10 minutes, taken once |
//! | DO | `code:{sha256 hex}` | `CodeRecord` | a code of the gateway's authorization server: ≤ 10 minutes, kept once redeemed so a replay can revoke its grant |
//! | DO | `grant:{id}` | `IssuedGrant`: client id and its hash, client name, upstream, hashes of the refresh, access and replaced refresh token, times | what the gateway issued to an MCP client; `id` is `<DO id>-<16 hex>`, so it routes itself (admin API) |
//! | DO | `tok:{sha256 hex}` | id of the grant that refresh or access token belongs to | one per token of a grant, dropped with it |
//! | DO | `sealed_with` | id of the key everything here was last re-sealed under | checked once per object instance; another primary key → re-seal all (`ENCRYPTION_KEY` rotation) |
//! | DO named `admin-guard:{CF-Connecting-IP}` (not a subject: ':' is not allowed in subject ids) | `admin_attempts` | `window_start,failures` (text) | wrong admin tokens from that client, `core::throttle` |
//!
//! KV is eventually consistent (up to 60 s between locations) and holds only operator
//! configuration, which each isolate caches for `kv::CACHE_TTL_MS`; everything that must not
//! race lives in the subject's Durable Object, which the Worker calls over RPC through
//! `stub::SubjectStoreStub` with the typed operations of `protocol`.

pub mod guard;
pub mod kv;
pub mod protocol;
pub mod schema;
pub mod stub;
pub mod subject;
