//! `SubjectStoreStub`: a subject's Durable Object as the Worker sees it, called over Workers RPC
//! (its `op` method, src/entry.mjs: one operation as JSON text, its answer as JSON text). RPC
//! costs a fraction of a `fetch` to the object (no HTTP request and response objects, no body
//! streams): bench/RESULTS.md.

use super::protocol::{Op, Operation};
use crate::error::Error;
use crate::plumbing;
use wasm_bindgen::{JsCast, JsValue};
use worker::{Env, ObjectNamespace};

/// The Durable Object binding of the subject stores (wrangler.toml).
pub const BINDING: &str = "SUBJECTS";

#[derive(Clone)]
pub struct SubjectStoreStub(JsValue);

fn namespace(env: &Env) -> Result<ObjectNamespace, Error> {
    env.durable_object(BINDING).map_err(Error::internal)
}

impl SubjectStoreStub {
    /// The store of the subject named `name` (a subject id, or a guard's name).
    pub fn named(env: &Env, name: &str) -> Result<SubjectStoreStub, Error> {
        let stub =
            namespace(env)?.id_from_name(name).and_then(|id| id.get_stub()).map_err(Error::internal)?;
        Ok(SubjectStoreStub(stub.into_rpc()))
    }

    /// The store a routing part (the object id inside keys, links and states) names; `None` when
    /// it is not one of ours.
    pub fn at(env: &Env, routing: &str) -> Result<Option<SubjectStoreStub>, Error> {
        let namespace = js_sys::Reflect::get(env, &JsValue::from_str(BINDING)).map_err(store_error)?;
        if !namespace.is_object() {
            return Err(Error::internal(format!(
                "the Durable Object binding {BINDING} is missing (wrangler.toml)"
            )));
        }
        Ok(plumbing::stub_at(&namespace, routing).map_err(store_error)?.map(SubjectStoreStub))
    }

    /// The routing part of the store of subject `name`.
    pub fn routing_for(env: &Env, name: &str) -> Result<String, Error> {
        Ok(namespace(env)?.id_from_name(name).map_err(Error::internal)?.to_string())
    }

    /// Sends one operation and reads its typed answer.
    pub async fn call<O: Operation>(&self, op: O) -> Result<O::Reply, Error> {
        let text = self.send(op.into()).await?;
        serde_json::from_str(&text).map_err(Error::internal)
    }

    /// The untyped half of `call`, once for every operation.
    async fn send(&self, op: Op) -> Result<String, Error> {
        let body = serde_json::to_string(&op).map_err(Error::internal)?;
        let answer = self.invoke("op", &body, None).await?;
        answer.as_string().ok_or_else(|| Error::internal("subject store answered no text"))
    }

    /// Opens the event stream of the gateway's own legacy session `id` in the store (src/entry.mjs),
    /// starting with `first`.
    pub async fn open_stream(&self, id: &str, first: &str) -> Result<web_sys::ReadableStream, Error> {
        Ok(self.invoke("openStream", id, Some(first)).await?.unchecked_into())
    }

    /// Writes `text` to that stream; `false` when it is not open (the client went away, or the
    /// store restarted).
    pub async fn push_stream(&self, id: &str, text: &str) -> Result<bool, Error> {
        Ok(self.invoke("pushStream", id, Some(text)).await?.as_bool() == Some(true))
    }

    /// Calls the store's RPC method `name` (one crossing: src/plumbing.mjs).
    async fn invoke(&self, name: &str, first: &str, second: Option<&str>) -> Result<JsValue, Error> {
        plumbing::call(&self.0, name, first, second).await.map_err(store_error)
    }
}

/// A failed call: a Durable Object that is briefly unavailable (the runtime marks such errors
/// `retryable` or `overloaded`: reset, moved, over its limits) is a 503 to retry; anything else
/// is an internal error with its cause in the log.
fn store_error(e: JsValue) -> Error {
    let flag = |name: &str| js_sys::Reflect::get(&e, &JsValue::from_str(name)).ok().and_then(|v| v.as_bool());
    if flag("retryable") == Some(true) || flag("overloaded") == Some(true) {
        worker::console_warn!("mcp-authbridge: subject store unavailable: {e:?}");
        return Error::StoreUnavailable;
    }
    Error::internal(format!("subject store: {e:?}"))
}
