//! How messages cross between the page and the model worker: the message as JSON text, and
//! model weights, when a message carries them, beside it as an `ArrayBuffer` in the transfer
//! list (moved to the other side, not copied, and never base64 inside the JSON).

use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

/// The value to post and its transfer list: the text alone, or `{msg, bytes}` with `bytes`'
/// buffer transferred.
pub fn pack(text: &str, bytes: Option<&[u8]>) -> (JsValue, Array) {
    let transfer = Array::new();
    let Some(bytes) = bytes else { return (JsValue::from_str(text), transfer) };
    let buffer = Uint8Array::from(bytes).buffer();
    let obj = Object::new();
    let _ = Reflect::set(&obj, &"msg".into(), &JsValue::from_str(text));
    let _ = Reflect::set(&obj, &"bytes".into(), &buffer);
    transfer.push(&buffer);
    (obj.into(), transfer)
}

/// The text and the bytes of a value [`pack`] made; `None` for anything else.
pub fn unpack(data: &JsValue) -> Option<(String, Option<Vec<u8>>)> {
    if let Some(text) = data.as_string() {
        return Some((text, None));
    }
    let text = Reflect::get(data, &"msg".into()).ok()?.as_string()?;
    let buffer = Reflect::get(data, &"bytes".into()).ok()?.dyn_into::<ArrayBuffer>().ok()?;
    Some((text, Some(Uint8Array::new(&buffer).to_vec())))
}

/// Bytes as a fresh `ArrayBuffer` (for IndexedDB, which stores it as it is).
pub fn to_buffer(bytes: &[u8]) -> ArrayBuffer {
    Uint8Array::from(bytes).buffer()
}

/// An `ArrayBuffer`'s bytes; `None` for any other value.
pub fn from_buffer(v: &JsValue) -> Option<Vec<u8>> {
    v.dyn_ref::<ArrayBuffer>().map(|b| Uint8Array::new(b).to_vec())
}
