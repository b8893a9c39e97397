//! `fetch` from the page or a worker (whichever global runs the code), with errors a mapper
//! can act on: the URL, the HTTP status, or a hint that CORS or the network blocked it.

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Response, WorkerGlobalScope};

fn start(url: &str) -> js_sys::Promise {
    let global = js_sys::global();
    match global.dyn_ref::<web_sys::Window>() {
        Some(w) => w.fetch_with_str(url),
        None => global.unchecked_ref::<WorkerGlobalScope>().fetch_with_str(url),
    }
}

/// A fetch already started, its body read as it arrives; [`Pending::bytes`] waits for it.
/// Start several, then wait, to load them in parallel: each body is read in the background
/// (not when it is awaited, which would cost a worker busy computing one more round trip
/// through the browser per fetch).
pub struct Pending {
    url: String,
    promise: JsFuture,
}

pub fn begin(url: &str) -> Pending {
    // A success's body as an ArrayBuffer; an HTTP error's Response itself (for its status).
    let read = Closure::once_into_js(|res: JsValue| -> JsValue {
        let r: &Response = res.unchecked_ref();
        match r.ok().then(|| r.array_buffer()) {
            Some(Ok(body)) => body.into(),
            _ => res,
        }
    });
    let fetched = start(url);
    // `fetched.then(read)`, through the method itself (js-sys's `then` wants a closure kept
    // alive; this one frees itself once called).
    let chained = js_sys::Reflect::get(&fetched, &"then".into())
        .and_then(|then| then.unchecked_into::<js_sys::Function>().call1(&fetched, &read))
        .map_or_else(|e| js_sys::Promise::reject(&e), JsCast::unchecked_into::<js_sys::Promise>);
    Pending { url: url.to_string(), promise: JsFuture::from(chained) }
}

impl Pending {
    pub async fn bytes(self) -> Result<Vec<u8>, String> {
        let url = self.url;
        let body = self.promise.await.map_err(|e| match e.dyn_ref::<js_sys::TypeError>() {
            // `fetch` itself failed.
            Some(_) => format!(
                "{url}: could not be loaded (network error, or the server sends no CORS header)"
            ),
            // Reading the body failed.
            None => describe(&url, &e),
        })?;
        match body.dyn_into::<ArrayBuffer>() {
            Ok(buf) => Ok(Uint8Array::new(&buf).to_vec()),
            // Not a success: `begin` passed the Response on.
            Err(res) => {
                let res: Response = res.unchecked_into();
                Err(format!("{url}: HTTP {} {}", res.status(), res.status_text()))
            }
        }
    }

    pub async fn text(self) -> Result<String, String> {
        let url = self.url.clone();
        String::from_utf8(self.bytes().await?).map_err(|_| format!("{url}: not UTF-8 text"))
    }
}

fn describe(url: &str, e: &JsValue) -> String {
    format!("{url}: {}", crate::js::message(e))
}

/// Milliseconds since the global's time origin.
pub fn now_ms() -> f64 {
    let global = js_sys::global();
    let perf = match global.dyn_ref::<web_sys::Window>() {
        Some(w) => w.performance(),
        None => global.unchecked_ref::<WorkerGlobalScope>().performance(),
    };
    perf.map_or(0.0, |p| p.now())
}
