//! Per-request context: the bindings, the parsed configuration, and the few effects the glue
//! needs (time, randomness, the subject stores).

use crate::core::config::{Config, Encryption};
use crate::core::seal::{development_key, Keyring};
use crate::error::Error;
use crate::store::kv::{ConfigStore, BINDING};
use crate::store::protocol::Op;
use serde::de::DeserializeOwned;
use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Context, Env};

pub const SUBJECT_STORE: &str = "SUBJECTS";

pub struct App {
    pub env: Env,
    pub ctx: Context,
    pub config: Rc<Config>,
    /// `PUBLIC_URL`, or the origin the request came to: the base of the links the gateway makes.
    pub public_origin: String,
}

static DEV_KEY_ANNOUNCED: AtomicBool = AtomicBool::new(false);

pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("crypto.getRandomValues is available in Workers");
    buf
}

fn env_string(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().and_then(|v| {
        let js: &wasm_bindgen::JsValue = v.as_ref();
        js.as_string()
    })
}

thread_local! {
    // An isolate runs one version of the Worker with one set of vars and secrets: read once.
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
    static KEYRING: OnceCell<Rc<Keyring>> = const { OnceCell::new() };
}

/// The deployment's settings, for the Worker and the subject stores alike.
pub fn config(env: &Env) -> Rc<Config> {
    CONFIG.with(|c| c.get_or_init(|| Rc::new(Config::from_lookup(|name| env_string(env, name)))).clone())
}

/// The keys that seal and open stored secrets (parsed once per isolate).
pub fn keyring(config: &Config) -> Result<Rc<Keyring>, Error> {
    if let Some(ring) = KEYRING.with(|k| k.get().cloned()) {
        return Ok(ring);
    }
    let ring = Rc::new(parse_keyring(config)?);
    KEYRING.with(|k| k.set(ring.clone()).ok());
    Ok(ring)
}

fn parse_keyring(config: &Config) -> Result<Keyring, Error> {
    match &config.encryption {
        Encryption::Key(b64) => Keyring::from_base64(b64).map_err(|_| Error::EncryptionKeyInvalid),
        Encryption::Development => {
            if !DEV_KEY_ANNOUNCED.swap(true, Ordering::Relaxed) {
                worker::console_warn!(
                    "mcp-authbridge: ENCRYPTION_KEY is not set; DEV_MODE seals secrets with the PUBLIC development key. Never deploy like this: run `wrangler secret put ENCRYPTION_KEY`."
                );
            }
            Ok(Keyring::new(development_key()))
        }
        Encryption::Missing => Err(Error::EncryptionKeyMissing),
    }
}

impl App {
    pub fn new(env: Env, ctx: Context, request_origin: String) -> App {
        let config = config(&env);
        let public_origin = config.public_url.clone().unwrap_or(request_origin);
        App { env, ctx, config, public_origin }
    }

    /// A Worker var or secret, for `{{env.NAME}}`.
    pub fn env_value(&self, name: &str) -> Option<String> {
        env_string(&self.env, name)
    }

    pub fn keyring(&self) -> Result<Rc<Keyring>, Error> {
        keyring(&self.config)
    }

    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, Error> {
        Ok(self.keyring()?.seal(context, plaintext, random_bytes()))
    }

    pub fn config_store(&self) -> Result<ConfigStore, Error> {
        Ok(ConfigStore::new(self.env.kv(BINDING).map_err(Error::internal)?))
    }

    /// The routing part (Durable Object id) of a subject's keys.
    pub fn routing_for(&self, subject: &str) -> Result<String, Error> {
        let ns = self.env.durable_object(SUBJECT_STORE).map_err(Error::internal)?;
        Ok(ns.id_from_name(subject).map_err(Error::internal)?.to_string())
    }

    /// The subject store a routing part names; `None` when it is not one of ours.
    pub fn store_at(&self, routing: &str) -> Result<Option<Store>, Error> {
        let ns = self.env.durable_object(SUBJECT_STORE).map_err(Error::internal)?;
        match ns.id_from_string(routing) {
            Ok(id) => Ok(Some(Store(id.get_stub().map_err(Error::internal)?.into_rpc()))),
            Err(_) => Ok(None),
        }
    }

    pub fn store_for(&self, subject: &str) -> Result<Store, Error> {
        let ns = self.env.durable_object(SUBJECT_STORE).map_err(Error::internal)?;
        let stub = ns.id_from_name(subject).and_then(|id| id.get_stub()).map_err(Error::internal)?;
        Ok(Store(stub.into_rpc()))
    }
}

/// A subject store's stub, called over Workers RPC: its `op` method (src/js/entry.mjs) takes one
/// operation as JSON text and answers JSON text. RPC costs a fraction of a `fetch` to the object
/// (no HTTP request and response objects, no body streams): bench/RESULTS.md.
pub struct Store(JsValue);

/// Sends one operation to a subject store and reads its answer.
pub async fn call<R: DeserializeOwned>(store: &Store, op: &Op) -> Result<R, Error> {
    let js_error = |e: JsValue| Error::internal(format!("subject store: {e:?}"));
    let body = serde_json::to_string(op).map_err(Error::internal)?;
    // RPC stubs are proxies: their methods are callable but not `Function` instances, and the
    // call answers an RPC promise (a thenable); `Reflect.apply` and `then` work on both.
    let method = js_sys::Reflect::get(&store.0, &JsValue::from_str("op")).map_err(js_error)?;
    let args = js_sys::Array::of1(&JsValue::from_str(&body));
    let promise: js_sys::Promise =
        js_sys::Reflect::apply(method.unchecked_ref::<js_sys::Function>(), &store.0, &args)
            .map_err(js_error)?
            .unchecked_into();
    let answer = JsFuture::from(promise).await.map_err(js_error)?;
    let text = answer.as_string().ok_or_else(|| Error::internal("subject store answered no text"))?;
    serde_json::from_str(&text).map_err(Error::internal)
}
