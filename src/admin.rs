//! The admin API (API.md §4): `Authorization: Bearer $ADMIN_TOKEN`, JSON in and out. The
//! views it answers are built here, from what the stores return.

use crate::app::App;
use crate::connect::{mint_link, LinkFor};
use crate::core::body::json_object;
use crate::core::connect::{DEFAULT_LINK_SECONDS, MAX_LINK_SECONDS};
use crate::core::connections::{rows, Row};
use crate::core::encoding::rfc3339;
use crate::core::headers::is_field_value;
use crate::core::ids::{SecretName, SubjectId, UpstreamId};
use crate::core::keys::{self, KeyHash, KeyRecord, KeyScope};
use crate::core::seal::{Context, Resealed};
use crate::core::secret::Secret;
use crate::core::throttle::Verdict;
use crate::core::upstream::{parse_upstream, require_pinned, Upstream};
use crate::error::Error;
use crate::http;
use crate::rt::{now_ms, random_bytes};
use crate::store::protocol::{
    AdminAttempt, CreateKey, DeleteConnection, Deleted, ListConnections, ListGrants, ListKeys, PutSecret,
    Reseal, RevokeGrant, RevokeKey,
};
use crate::store::schema::{guard_name, parse_config_key, ConfigKey};
use crate::store::stub::SubjectStoreStub;
use serde_json::{json, Value};
use worker::{Request, Response};

/// Longest key lifetime accepted: ten years.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// Checks the admin bearer token in constant time (digests first, so length leaks nothing),
/// then asks the client's guard object how to answer: after `throttle::MAX_FAILURES` wrong
/// tokens in a window, 429 whatever the token, so guessing gets no answer at all. The guard is
/// one Durable Object per client address (`CF-Connecting-IP`, which Cloudflare sets; one shared
/// guard without it), so the limit holds across isolates and locations. Cost: one object call
/// per admin request; the MCP path never comes here.
pub async fn authorize(app: &App, req: &Request) -> Result<(), Error> {
    let header = http::header(req, "authorization").unwrap_or_default();
    let presented = match header.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => "",
    };
    check_token(app, req, presented).await
}

/// The check of a presented admin token, under the wrong-token limit: the API's bearer token
/// and the token pasted into the operator console's sign-in count in the same guard,
/// so neither is a way around the other's limit.
pub async fn check_token(app: &App, req: &Request, presented: &str) -> Result<(), Error> {
    let expected = app.config.admin_token.as_ref().ok_or(Error::AdminDisabled)?;
    let ok = expected.ct_eq(presented);
    let client = http::header(req, "cf-connecting-ip").unwrap_or_default();
    let guard = app.store_for(&guard_name(client.trim()))?;
    match guard.call(AdminAttempt { ok }).await? {
        Verdict::Blocked { retry_after } => Err(Error::AdminRateLimited { retry_after }),
        Verdict::Checked if ok => Ok(()),
        Verdict::Checked => Err(Error::AdminUnauthorized),
    }
}

/// The JSON body, an object (`core::body::json_object`).
async fn body_json(req: &mut Request, limit: usize) -> Result<Value, Error> {
    Ok(json_object(&http::read_body(req, limit).await?)?)
}

fn name<T>(parsed: Result<T, crate::core::ids::InvalidName>, field: &str) -> Result<T, Error> {
    parsed.map_err(|e| Error::bad_request(field, e.to_string()))
}

fn secret_value(body: &Value) -> Result<Secret, Error> {
    let value = body
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_request("value", "is required and must be a string"))?;
    if value.is_empty() || !is_field_value(value) {
        return Err(Error::bad_request(
            "value",
            "must be non-empty and contain no CR, LF, NUL or other control characters",
        ));
    }
    Ok(Secret::new(value))
}

/// The admin API as OpenAPI 3.1 (`GET /admin/v1/openapi.json`): the repository's document,
/// built in, so what is served is what the e2e test checked the gateway against.
const OPENAPI: &str = include_str!("../docs/openapi.json");

pub fn openapi() -> Response {
    http::json_bytes(200, OPENAPI.as_bytes().to_vec())
}

fn items(list: Vec<Value>) -> Response {
    http::json(200, &json!({ "items": list }))
}

pub async fn put_upstream(app: &App, mut req: Request, id: &str) -> Result<Response, Error> {
    let body = body_json(&mut req, app.config.max_body_bytes).await?;
    Ok(http::json(200, &save_upstream(app, id, &body).await?.public_view()))
}

/// Validates and stores the upstream `id` from a `PUT /admin/v1/upstreams/{id}` body (the
/// console's form makes the same body), sealing a client secret sent and keeping a stored one.
pub async fn save_upstream(app: &App, id: &str, body: &Value) -> Result<Upstream, Error> {
    let id = name(UpstreamId::parse(id), "id")?;
    let draft = parse_upstream(&id, body, app.config.allow_private_upstreams, now_ms())?;
    let store = app.config_store()?;
    // Read past the cache: the secret kept must be the one stored now.
    let kept = draft.kept_client_secret(store.upstream_uncached(id.as_str()).await?.as_ref());
    let mut upstream = draft.upstream;
    if let (Some(_), Some(oauth)) = (&kept, &upstream.oauth) {
        require_pinned(oauth)?;
    }
    if let Some(oauth) = upstream.oauth.as_mut() {
        oauth.client_secret_sealed = match draft.client_secret {
            Some(secret) => {
                let context = Context::OAuthClientSecret { upstream: id.as_str() };
                Some(app.seal(&context, secret.expose().as_bytes())?)
            }
            None => kept,
        };
    }
    store.put_upstream(&upstream).await?;
    Ok(upstream)
}

pub async fn list_upstreams(app: &App) -> Result<Response, Error> {
    let upstreams = app.config_store()?.upstreams().await?;
    Ok(items(upstreams.iter().map(|u| u.public_view()).collect()))
}

/// The upstream id of a `GET` or `DELETE` path: one no upstream can have is not found, and
/// never reaches KV (whose keys are bounded: a long one would be an error there, not a 404).
fn upstream_in_path(id: &str) -> Result<UpstreamId, Error> {
    UpstreamId::parse(id).map_err(|_| Error::NotFound { what: format!("upstream '{id}'") })
}

pub async fn get_upstream(app: &App, id: &str) -> Result<Response, Error> {
    Ok(http::json(200, &find_upstream(app, id).await?.public_view()))
}

/// The stored upstream `id`, or not found.
pub async fn find_upstream(app: &App, id: &str) -> Result<Upstream, Error> {
    let id = upstream_in_path(id)?;
    app.config_store()?
        .upstream(id.as_str())
        .await?
        .ok_or_else(|| Error::NotFound { what: format!("upstream '{id}'") })
}

pub async fn delete_upstream(app: &App, id: &str) -> Result<Response, Error> {
    remove_upstream(app, id).await?;
    Ok(http::empty(204))
}

/// Deletes the upstream `id` and the gateway's registrations at its authorization server.
pub async fn remove_upstream(app: &App, id: &str) -> Result<(), Error> {
    let id = upstream_in_path(id)?;
    let store = app.config_store()?;
    if store.upstream(id.as_str()).await?.is_none() {
        return Err(Error::NotFound { what: format!("upstream '{id}'") });
    }
    store.delete_upstream(id.as_str()).await?;
    store.delete_registrations(id.as_str()).await?;
    Ok(())
}

pub async fn put_secret(app: &App, mut req: Request, secret: &str) -> Result<Response, Error> {
    let secret = name(SecretName::parse(secret), "name")?;
    let value = secret_value(&body_json(&mut req, app.config.max_body_bytes).await?)?;
    let sealed = app.seal(&Context::OperatorSecret { name: secret.as_str() }, value.expose().as_bytes())?;
    app.config_store()?.put_secret(secret.as_str(), sealed).await?;
    Ok(http::empty(204))
}

pub async fn put_subject_secret(
    app: &App,
    mut req: Request,
    subject: &str,
    secret: &str,
) -> Result<Response, Error> {
    let subject = name(SubjectId::parse(subject), "subject")?;
    let secret = name(SecretName::parse(secret), "name")?;
    let value = secret_value(&body_json(&mut req, app.config.max_body_bytes).await?)?;
    let context = Context::SubjectSecret { subject: subject.as_str(), name: secret.as_str() };
    let sealed = app.seal(&context, value.expose().as_bytes())?;
    let store = app.store_for(subject.as_str())?;
    store.call(PutSecret { subject, name: secret, sealed }).await?;
    Ok(http::empty(204))
}

pub async fn create_key(app: &App, mut req: Request) -> Result<Response, Error> {
    let body = body_json(&mut req, app.config.max_body_bytes).await?;
    Ok(http::json(201, &mint_key(app, &body).await?))
}

/// Mints a key from a `POST /admin/v1/keys` body (the console's key form makes the same body):
/// its public view with `key`, the only time the key is shown.
pub async fn mint_key(app: &App, body: &Value) -> Result<Value, Error> {
    let subject = body_subject(body)?;
    let upstreams = match body.get("upstreams") {
        Some(Value::Array(list)) if !list.is_empty() => {
            let list = list
                .iter()
                .map(|u| {
                    u.as_str()
                        .ok_or_else(|| Error::bad_request("upstreams", "must hold upstream ids (strings)"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            name(KeyScope::parse(&list), "upstreams")?
        }
        _ => {
            return Err(Error::bad_request(
                "upstreams",
                "is required: a non-empty array of upstream ids, or [\"*\"]",
            ))
        }
    };
    let expires_in = expires_in(body, MAX_EXPIRES_IN)?;
    let label = match body.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(l)) if l.len() <= 200 && is_field_value(l) => Some(l.clone()),
        Some(_) => {
            return Err(Error::bad_request("label", "must be a string of at most 200 printable characters"))
        }
    };
    let routing = app.routing_for(subject.as_str())?;
    let key = keys::generate(&routing, &random_bytes());
    let now = now_ms();
    let record = KeyRecord {
        id: keys::key_id(&routing, &random_bytes()),
        hash: KeyHash::of(&key),
        subject: subject.clone(),
        upstreams,
        expires_at: expires_in.map(|s| now + s * 1000),
        label,
        created_at: now,
        last_used: None,
    };
    app.store_for(subject.as_str())?.call(CreateKey { key: record.clone() }).await?;
    let mut view = record.public_view();
    view["key"] = json!(key);
    Ok(view)
}

fn body_subject(body: &Value) -> Result<SubjectId, Error> {
    let subject = body
        .get("subject")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_request("subject", "is required and must be a string"))?;
    name(SubjectId::parse(subject), "subject")
}

/// The optional `expires_in` of a body: whole seconds, 1 to `max`.
fn expires_in(body: &Value, max: u64) -> Result<Option<u64>, Error> {
    match body.get("expires_in") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(s) if (1..=max).contains(&s) => Ok(Some(s)),
            _ => Err(Error::bad_request(
                "expires_in",
                format!("must be a whole number of seconds, 1 to {max}"),
            )),
        },
    }
}

pub async fn create_link(app: &App, mut req: Request) -> Result<Response, Error> {
    let body = body_json(&mut req, app.config.max_body_bytes).await?;
    Ok(http::json(201, &mint_operator_link(app, &body).await?))
}

/// Mints a connect link from a `POST /admin/v1/links` body (the console's link form makes the
/// same body): `{url, expires_at, subject, upstream}`, the only time the link is shown.
pub async fn mint_operator_link(app: &App, body: &Value) -> Result<Value, Error> {
    let subject = body_subject(body)?;
    let upstream = body
        .get("upstream")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_request("upstream", "is required and must be a string"))?;
    let upstream = name(UpstreamId::parse(upstream), "upstream")?;
    let Some(found) = app.config_store()?.upstream(upstream.as_str()).await? else {
        return Err(Error::bad_request("upstream", format!("no upstream named '{upstream}'")));
    };
    if !found.connectable() {
        return Err(Error::bad_request(
            "upstream",
            "has nothing for a user to connect: it has neither user_fields nor oauth",
        ));
    }
    let seconds = expires_in(body, MAX_LINK_SECONDS)?.unwrap_or(DEFAULT_LINK_SECONDS);
    let routing = app.routing_for(subject.as_str())?;
    let store = app.store_for(subject.as_str())?;
    let (url, expires_at) =
        mint_link(app, &store, &routing, &subject, &upstream, LinkFor::Operator { seconds }).await?;
    Ok(
        json!({ "url": url.expose(), "expires_at": rfc3339(expires_at), "subject": subject.as_str(), "upstream": upstream.as_str() }),
    )
}

pub async fn delete_connection(app: &App, subject: &str, upstream: &str) -> Result<Response, Error> {
    let revoked = disconnect(app, subject, upstream).await?;
    Ok(http::json(200, &json!({ "revoked": revoked })))
}

/// Forgets `subject`'s connection to `upstream`, revoking its tokens where the authorization
/// server can: whether it accepted that; not found when there is no connection.
pub async fn disconnect(app: &App, subject: &str, upstream: &str) -> Result<bool, Error> {
    let subject = name(SubjectId::parse(subject), "subject")?;
    let not_found = || Error::NotFound { what: format!("connection of '{subject}' to '{upstream}'") };
    // An id no upstream can have has no connection either.
    let upstream = UpstreamId::parse(upstream).map_err(|_| not_found())?;
    match app.store_for(subject.as_str())?.call(DeleteConnection { upstream }).await? {
        Deleted::Deleted { revoked } => Ok(revoked),
        Deleted::NotFound => Err(not_found()),
    }
}

fn subject_param(req: &Request) -> Result<SubjectId, Error> {
    let url = req.url().map_err(Error::internal)?;
    let subject = url
        .query_pairs()
        .find(|(k, _)| k == "subject")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| Error::bad_request("subject", "query parameter is required"))?;
    name(SubjectId::parse(&subject), "subject")
}

pub async fn list_keys(app: &App, req: &Request) -> Result<Response, Error> {
    Ok(items(keys_of(app, &subject_param(req)?).await?))
}

/// The views of `subject`'s keys, oldest first.
pub async fn keys_of(app: &App, subject: &SubjectId) -> Result<Vec<Value>, Error> {
    let list = app.store_for(subject.as_str())?.call(ListKeys {}).await?;
    Ok(list.iter().map(KeyRecord::public_view).collect())
}

/// The store an id made by `keys::key_id` (a key's or a grant's) routes to; `not_found` when the
/// id names none.
fn store_of_id(app: &App, id: &str, not_found: impl Fn() -> Error) -> Result<SubjectStoreStub, Error> {
    let routing = keys::key_id_routing(id).ok_or_else(&not_found)?;
    app.store_at(routing)?.ok_or_else(not_found)
}

pub async fn revoke_key(app: &App, id: &str) -> Result<Response, Error> {
    drop_key(app, id).await?;
    Ok(http::empty(204))
}

/// Revokes the key `id` (from its next request on), or not found.
pub async fn drop_key(app: &App, id: &str) -> Result<(), Error> {
    let not_found = || Error::NotFound { what: format!("key '{id}'") };
    let store = store_of_id(app, id, not_found)?;
    if store.call(RevokeKey { id: id.to_string() }).await? {
        Ok(())
    } else {
        Err(not_found())
    }
}

/// `GET /admin/v1/grants?subject=`: what the gateway's authorization server issued to MCP
/// clients for the subject, oldest first.
pub async fn list_grants(app: &App, req: &Request) -> Result<Response, Error> {
    Ok(items(grants_of(app, &subject_param(req)?).await?))
}

/// The views of `subject`'s grants, oldest first.
pub async fn grants_of(app: &App, subject: &SubjectId) -> Result<Vec<Value>, Error> {
    let list = app.store_for(subject.as_str())?.call(ListGrants {}).await?;
    let now = now_ms();
    Ok(list.iter().map(|g| g.public_view(now)).collect())
}

/// `DELETE /admin/v1/grants/{id}`: the id routes to the subject's store (`keys::key_id`); the
/// grant's tokens are refused from the next request on. Ids of grants issued before they were
/// routed (16 hex digits) are not found here: those grants end through `/oauth/revoke`.
pub async fn revoke_grant(app: &App, id: &str) -> Result<Response, Error> {
    drop_grant(app, id).await?;
    Ok(http::empty(204))
}

/// Revokes the grant `id` (its tokens, from their next request on), or not found.
pub async fn drop_grant(app: &App, id: &str) -> Result<(), Error> {
    let not_found = || Error::NotFound { what: format!("grant '{id}'") };
    let store = store_of_id(app, id, not_found)?;
    if store.call(RevokeGrant { id: id.to_string() }).await? {
        Ok(())
    } else {
        Err(not_found())
    }
}

/// `GET /admin/v1/connections?subject=`: for every upstream the subject's keys may use, what a
/// request would meet now (`core::connections::rows`), and every other stored connection.
pub async fn list_connections(app: &App, req: &Request) -> Result<Response, Error> {
    Ok(items(connections_of(app, &subject_param(req)?).await?))
}

/// The views of `subject`'s connections, by upstream (`core::connections::rows`).
pub async fn connections_of(app: &App, subject: &SubjectId) -> Result<Vec<Value>, Error> {
    let held = app.store_for(subject.as_str())?.call(ListConnections {}).await?;
    let upstreams = app.config_store()?.upstreams().await?;
    let list = rows(&upstreams, &held.keys, &held.connections, &held.secrets, now_ms());
    Ok(list.iter().map(connection_view).collect())
}

fn connection_view(row: &Row) -> Value {
    let c = row.stored;
    let mut view = json!({
        "id": row.upstream,
        "upstream": row.upstream,
        "status": row.status,
        "expires_at": c.and_then(|c| c.expires_at).map(rfc3339),
        "scopes": c.and_then(|c| c.scopes.as_ref()),
        "updated_at": c.map(|c| rfc3339(c.updated_at)),
    });
    if let Some(missing) = &row.missing {
        view["missing"] = json!(missing);
    }
    if let Some(problem) = c.and_then(|c| c.problem.as_ref()) {
        view["problem"] = json!(problem);
    }
    view
}

/// Subjects one `POST /admin/v1/reseal` re-seals at most: each is a subrequest, and a Worker
/// invocation may make only 50 on the free plan.
const MAX_RESEAL_SUBJECTS: usize = 40;

/// `POST /admin/v1/reseal {subjects?: [..]}` (`ENCRYPTION_KEY` rotation): re-seals under the
/// first key every operator value in KV (secrets, OAuth client secrets, registrations) and every
/// value of the subjects named. A subject store also does this by itself when it is next used;
/// KV has no compare-and-set, so a config write racing this pass may be undone: run it while no
/// one changes upstreams or secrets. Answers what it found: once nothing is left under the old
/// key (and nothing is unreadable), the old key may go.
pub async fn reseal(app: &App, mut req: Request) -> Result<Response, Error> {
    let body = body_json(&mut req, app.config.max_body_bytes).await?;
    let subjects: Vec<SubjectId> = match body.get("subjects") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) if list.len() <= MAX_RESEAL_SUBJECTS => list
            .iter()
            .map(|s| name(SubjectId::parse(s.as_str().unwrap_or_default()), "subjects"))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(Error::bad_request(
                "subjects",
                format!("must be an array of at most {MAX_RESEAL_SUBJECTS} subject ids"),
            ))
        }
    };
    let ring = app.keyring()?;
    let store = app.config_store()?;
    let mut config = Resealed::default();
    // Read past the isolate caches: what is written back must be what KV holds now.
    for key in store.keys("").await? {
        match parse_config_key(&key) {
            ConfigKey::Upstream(id) => {
                let Some(mut upstream) = store.upstream_uncached(id).await? else { continue };
                let sealed = upstream.oauth.as_mut().and_then(|o| o.client_secret_sealed.as_mut());
                let values = sealed.map(|s| (Context::OAuthClientSecret { upstream: id }, s));
                if ring.reseal_each(values, random_bytes, &mut config) {
                    store.put_upstream(&upstream).await?;
                }
            }
            ConfigKey::Secret(name) => {
                let Some(mut value) = store.secret_uncached(name).await? else { continue };
                if ring.reseal_each(
                    [(Context::OperatorSecret { name }, &mut value)],
                    random_bytes,
                    &mut config,
                ) {
                    store.put_secret(name, value).await?;
                }
            }
            ConfigKey::Registration { upstream } => {
                let Some(mut value) = store.registration(&key).await? else { continue };
                if ring.reseal_each(
                    [(Context::Registration { upstream }, &mut value)],
                    random_bytes,
                    &mut config,
                ) {
                    store.put_registration(&key, &value).await?;
                }
            }
            ConfigKey::Other => {}
        }
    }
    let mut done = serde_json::Map::new();
    for subject in subjects {
        let tally = app.store_for(subject.as_str())?.call(Reseal {}).await?;
        done.insert(subject.to_string(), json!(tally));
    }
    Ok(http::json(200, &json!({ "key_id": ring.primary_id(), "config": config, "subjects": done })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_document_is_openapi_3_1_json() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"].as_object().unwrap().keys().all(|p| p.starts_with("/admin/v1/")));
    }
}
