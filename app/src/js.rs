//! JavaScript values as words for people: an `Error`'s message, a thrown string, or the
//! value's JSON, never a Rust `Debug` dump of a `JsValue`.

use wasm_bindgen::{JsCast, JsValue};

/// What a thrown JavaScript value says.
pub fn message(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        let name = String::from(err.name());
        let msg = String::from(err.message());
        return if name.is_empty() || name == "Error" { msg } else { format!("{name}: {msg}") };
    }
    if let Ok(m) = js_sys::Reflect::get(e, &"message".into())
        && let Some(m) = m.as_string()
    {
        return m;
    }
    js_sys::JSON::stringify(e)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| "an unknown error".into())
}
