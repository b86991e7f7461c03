//! The calls into `src/plumbing.mjs`: runtime plumbing that moves a request's bytes across the
//! JS↔wasm boundary in one crossing where the worker crate's wrappers take many (a header each,
//! an object property each, a promise each; bench/RESULTS.md). No decision is made on the JS
//! side; header lists cross as one text (`core::headers::HeaderList`). A leaf: it imports nothing
//! of the glue.

use js_sys::{Array, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/src/plumbing.mjs")]
extern "C" {
    #[wasm_bindgen(js_name = headerList)]
    fn header_list_js(headers: &web_sys::Headers) -> String;
    #[wasm_bindgen(js_name = head)]
    fn head_js(request: &web_sys::Request) -> String;
    #[wasm_bindgen(js_name = readBody)]
    fn read_body_js(request: &web_sys::Request, declared: u8, limit: f64, peek: f64, drain: f64) -> Promise;
    #[wasm_bindgen(js_name = send, catch)]
    fn send_js(
        url: &str,
        method: &str,
        headers: &str,
        body: Option<Uint8Array>,
        timeout_ms: f64,
    ) -> Result<Promise, JsValue>;
    #[wasm_bindgen(js_name = relay, catch)]
    fn relay_js(
        upstream: &web_sys::Response,
        dropped: &str,
        empty: bool,
    ) -> Result<web_sys::Response, JsValue>;
    #[wasm_bindgen(js_name = call, catch)]
    fn call_js(stub: &JsValue, name: &str, first: &str, second: Option<&str>) -> Result<Promise, JsValue>;
    #[wasm_bindgen(js_name = stubAt, catch)]
    fn stub_at_js(namespace: &JsValue, hex: &str) -> Result<JsValue, JsValue>;
}

/// A request's method, URL and header list, as `method\nurl\n<header list>`.
pub fn head(request: &web_sys::Request) -> String {
    head_js(request)
}

/// A header list (`name\nvalue\n…`, names in lower case as the runtime gives them).
pub fn header_list(headers: &web_sys::Headers) -> String {
    header_list_js(headers)
}

/// What the declared length of a body says before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// No length: read and count.
    Unknown = 0,
    /// Within the limit: the runtime delivers exactly that, read in one piece.
    Within = 1,
    /// Over the limit: only its head is kept.
    Over = 2,
}

/// A request body: `(bytes, true)` when whole, `(its first `peek` bytes, false)` when over
/// `limit`, the rest drained up to `drain` bytes.
pub async fn read_body(
    request: &web_sys::Request,
    declared: Declared,
    limit: usize,
    peek: usize,
    drain: usize,
) -> Result<(Vec<u8>, bool), JsValue> {
    let promise = read_body_js(request, declared as u8, limit as f64, peek as f64, drain as f64);
    let pair: Array = JsFuture::from(promise).await?.unchecked_into();
    let bytes: Uint8Array = pair.get(0).unchecked_into();
    Ok((bytes.to_vec(), pair.get(1).as_bool() == Some(true)))
}

/// Why `send` failed.
pub enum SendError {
    /// No response headers within the deadline (the request was aborted).
    Timeout,
    /// The runtime's error.
    Failed(JsValue),
}

/// `fetch` with a header list, no redirect followed, and a deadline for the response headers.
pub async fn send(
    url: &str,
    method: &str,
    headers: &str,
    body: Option<&[u8]>,
    timeout_ms: u64,
) -> Result<web_sys::Response, SendError> {
    let body = body.map(Uint8Array::from);
    let sent = send_js(url, method, headers, body, timeout_ms as f64).map_err(SendError::Failed)?;
    match JsFuture::from(sent).await {
        Ok(resp) => Ok(resp.unchecked_into()),
        Err(e) if e.as_string().as_deref() == Some("timeout") => Err(SendError::Timeout),
        Err(e) => Err(SendError::Failed(e)),
    }
}

/// `upstream`'s answer passed on with its status, without the headers named in `drop` (a header
/// list of names only), with its body unless `empty`.
pub fn relay(upstream: &web_sys::Response, drop: &str, empty: bool) -> Result<web_sys::Response, JsValue> {
    relay_js(upstream, drop, empty)
}

/// Calls the RPC method `name` of a Durable Object stub with one or two text arguments.
pub async fn call(stub: &JsValue, name: &str, first: &str, second: Option<&str>) -> Result<JsValue, JsValue> {
    JsFuture::from(call_js(stub, name, first, second)?).await
}

/// The stub of the Durable Object with id `hex` in `namespace`; `None` when `hex` is not one.
pub fn stub_at(namespace: &JsValue, hex: &str) -> Result<Option<JsValue>, JsValue> {
    let stub = stub_at_js(namespace, hex)?;
    Ok(if stub.is_null() { None } else { Some(stub) })
}
