//! Per-request context: the bindings, the parsed configuration, the public origin, and the
//! handles to storage (KV and the subject stores). Effects that need no request live in `rt`.

use crate::core::config::Config;
use crate::core::seal::{Context, Keyring, Sealed};
use crate::error::Error;
use crate::rt;
use crate::store::kv::ConfigStore;
use crate::store::stub::SubjectStoreStub;
use std::rc::Rc;
use worker::Env;

pub struct App {
    pub env: Env,
    pub ctx: worker::Context,
    pub config: Rc<Config>,
    /// `PUBLIC_URL`, or the origin the request came to: the base of the links the gateway makes.
    pub public_origin: String,
}

impl App {
    pub fn new(env: Env, ctx: worker::Context, request_origin: String) -> App {
        let config = rt::config(&env);
        let public_origin = config.public_url.clone().unwrap_or(request_origin);
        App { env, ctx, config, public_origin }
    }

    /// A Worker var or secret, for `{{env.NAME}}`.
    pub fn env_value(&self, name: &str) -> Option<String> {
        rt::env_string(&self.env, name)
    }

    pub fn keyring(&self) -> Result<Rc<Keyring>, Error> {
        rt::keyring(&self.config)
    }

    pub fn seal(&self, context: &Context, plaintext: &[u8]) -> Result<Sealed, Error> {
        Ok(self.keyring()?.seal(context, plaintext, rt::random_bytes()))
    }

    pub fn config_store(&self) -> Result<ConfigStore, Error> {
        Ok(ConfigStore::new(self.env.clone()))
    }

    /// The routing part (Durable Object id) of a subject's keys, links and states.
    pub fn routing_for(&self, subject: &str) -> Result<String, Error> {
        SubjectStoreStub::routing_for(&self.env, subject)
    }

    /// The subject store a routing part names; `None` when it is not one of ours.
    pub fn store_at(&self, routing: &str) -> Result<Option<SubjectStoreStub>, Error> {
        SubjectStoreStub::at(&self.env, routing)
    }

    pub fn store_for(&self, subject: &str) -> Result<SubjectStoreStub, Error> {
        SubjectStoreStub::named(&self.env, subject)
    }
}
