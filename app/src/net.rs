//! `fetch` from the page or a worker (whichever global runs the code), with errors a mapper
//! can act on: the URL, the HTTP status, or a hint that CORS or the network blocked it.

use js_sys::{ArrayBuffer, Uint8Array};
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

/// A fetch already started; [`Pending::bytes`] waits for it. Start several, then wait, to
/// load them in parallel.
pub struct Pending {
    url: String,
    promise: JsFuture,
}

pub fn begin(url: &str) -> Pending {
    Pending { url: url.to_string(), promise: JsFuture::from(start(url)) }
}

impl Pending {
    pub async fn bytes(self) -> Result<Vec<u8>, String> {
        let url = self.url;
        let res: Response = self
            .promise
            .await
            .map_err(|_| {
                format!(
                    "{url}: could not be loaded (network error, or the server sends no CORS header)"
                )
            })?
            .unchecked_into();
        if !res.ok() {
            return Err(format!("{url}: HTTP {} {}", res.status(), res.status_text()));
        }
        let buf = JsFuture::from(res.array_buffer().map_err(|e| describe(&url, &e))?)
            .await
            .map_err(|e| describe(&url, &e))?;
        Ok(Uint8Array::new(&buf.unchecked_into::<ArrayBuffer>()).to_vec())
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
