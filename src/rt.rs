//! The runtime leaf: the few effects every part of the glue may use — the clock, randomness,
//! the isolate's configuration and keyring (read once per isolate), and its cache of Client ID
//! Metadata Documents. It imports nothing of the glue but the error type, so anything may import it.

use crate::core::authorize::client::Registration;
use crate::core::cache::TtlCache;
use crate::core::config::{Config, Encryption};
use crate::core::seal::{development_key, Keyring};
use crate::error::Error;
use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use worker::Env;

pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("crypto.getRandomValues is available in Workers");
    buf
}

/// A Worker var or secret as text.
pub fn env_string(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().and_then(|v| {
        let js: &wasm_bindgen::JsValue = v.as_ref();
        js.as_string()
    })
}

static DEV_KEY_ANNOUNCED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // An isolate runs one version of the Worker with one set of vars and secrets: read once.
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
    static KEYRING: OnceCell<Rc<Keyring>> = const { OnceCell::new() };
    static CLIENT_DOCUMENTS: RefCell<TtlCache<Registration>> =
        RefCell::new(TtlCache::new(CLIENT_DOCUMENT_MS, CLIENT_DOCUMENTS_KEPT));
}

/// How long a fetched Client ID Metadata Document is trusted without fetching it again, and how
/// many an isolate keeps.
const CLIENT_DOCUMENT_MS: u64 = 5 * 60 * 1000;
const CLIENT_DOCUMENTS_KEPT: usize = 64;

/// The client a metadata document at `url` described, fetched less than 5 minutes ago here.
pub fn cached_client_document(url: &str) -> Option<Registration> {
    CLIENT_DOCUMENTS.with(|c| c.borrow().get(url, now_ms()))
}

pub fn remember_client_document(url: &str, client: Registration) {
    CLIENT_DOCUMENTS.with(|c| c.borrow_mut().write(url, client, now_ms()));
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
        Encryption::Key(b64) => Keyring::from_base64(b64.expose()).map_err(|_| Error::EncryptionKeyInvalid),
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
