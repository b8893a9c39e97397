//! Persistence in IndexedDB: the tag store, the rejected suggestions and the kept model, one
//! record each, so they survive reloads and browser restarts. Writes replace a record in one
//! transaction (all or nothing: a full quota leaves the old record as it was).

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbOpenDbRequest, IdbRequest, IdbTransaction, IdbTransactionMode};

const DB_NAME: &str = "accessatlas";
const DB_VERSION: u32 = 1;
const STORE: &str = "state";
/// Key of the tag store record.
pub const TAGS_KEY: &str = "tags";
/// Key of the rejected suggestions (negative examples for the next fine-tune).
pub const REJECTIONS_KEY: &str = "rejections";
/// Key of the kept (fine-tuned or imported) model, written by the model worker.
pub const MODEL_KEY: &str = "model";
/// Key of the model kept before the current one ("Undo" brings it back).
pub const PREVIOUS_MODEL_KEY: &str = "model-previous";

fn err(what: &str, e: JsValue) -> String {
    let m = crate::js::message(&e);
    if m.contains("QuotaExceeded") {
        format!(
            "IndexedDB {what}: the browser's storage for this page is full ({m}); what was saved before is kept"
        )
    } else {
        format!("IndexedDB {what}: {m}")
    }
}

/// Resolves when `tx` has committed, or fails with why it was aborted. A request's success
/// is not a write's: a storage quota is enforced as the transaction commits, after its
/// requests have succeeded. The handlers are set at once, before anything is awaited.
fn committed(tx: &IdbTransaction) -> JsFuture {
    let promise = Promise::new(&mut |resolve, reject| {
        let ok = Closure::once_into_js(move || {
            let _ = resolve.call0(&JsValue::NULL);
        });
        let t = tx.clone();
        let fail = Closure::once_into_js(move || {
            let e = js_sys::Reflect::get(&t, &"error".into())
                .ok()
                .filter(|e| !e.is_null() && !e.is_undefined())
                .unwrap_or_else(|| JsValue::from_str("the transaction was aborted"));
            let _ = reject.call1(&JsValue::NULL, &e);
        });
        tx.set_oncomplete(Some(ok.unchecked_ref()));
        tx.set_onabort(Some(fail.unchecked_ref()));
    });
    JsFuture::from(promise)
}

/// Resolves when `req` succeeds (with its result) or fails.
async fn settle(req: &IdbRequest) -> Result<JsValue, JsValue> {
    settled(req).await
}

/// [`settle`]'s future, its handlers set at once (before anything is awaited), so requests
/// queued together each have theirs before the first event fires.
fn settled(req: &IdbRequest) -> JsFuture {
    let promise = Promise::new(&mut |resolve, reject| {
        let r = req.clone();
        let ok = Closure::once_into_js(move || {
            let _ = resolve.call1(&JsValue::NULL, &r.result().unwrap_or(JsValue::UNDEFINED));
        });
        let r2 = req.clone();
        let fail = Closure::once_into_js(move || {
            let e = r2
                .error()
                .ok()
                .flatten()
                .map_or(JsValue::from_str("request failed"), JsValue::from);
            let _ = reject.call1(&JsValue::NULL, &e);
        });
        req.set_onsuccess(Some(ok.unchecked_ref()));
        req.set_onerror(Some(fail.unchecked_ref()));
    });
    JsFuture::from(promise)
}

async fn open() -> Result<IdbDatabase, String> {
    // `indexedDB` of the page or of a worker (the model worker stores the kept model).
    let factory: web_sys::IdbFactory = js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into())
        .ok()
        .filter(|f| !f.is_undefined() && !f.is_null())
        .ok_or("IndexedDB is not available in this browser (private mode?)")?
        .unchecked_into();
    let req: IdbOpenDbRequest =
        factory.open_with_u32(DB_NAME, DB_VERSION).map_err(|e| err("open", e))?;
    let upgrade = Closure::<dyn FnMut(web_sys::IdbVersionChangeEvent)>::new(
        move |e: web_sys::IdbVersionChangeEvent| {
            let Some(target) = e.target() else { return };
            let req: IdbOpenDbRequest = target.unchecked_into();
            if let Ok(db) = req.result() {
                let db: IdbDatabase = db.unchecked_into();
                if !db.object_store_names().contains(STORE) {
                    let _ = db.create_object_store(STORE);
                }
            }
        },
    );
    req.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db = settle(&req).await.map_err(|e| err("open", e))?;
    drop(upgrade);
    Ok(db.unchecked_into())
}

/// Reads a text record; `None` when it was never written (or holds no text).
pub async fn get(key: &str) -> Result<Option<String>, String> {
    Ok(get_value(key).await?.and_then(|v| v.as_string()))
}

/// Reads a record as IndexedDB keeps it (a structured clone: text, objects, `ArrayBuffer`s);
/// `None` when it was never written.
pub async fn get_value(key: &str) -> Result<Option<JsValue>, String> {
    let db = open().await?;
    let tx = db.transaction_with_str(STORE).map_err(|e| err("read", e))?;
    let req =
        tx.object_store(STORE).and_then(|s| s.get(&key.into())).map_err(|e| err("read", e))?;
    let v = settle(&req).await.map_err(|e| err("read", e))?;
    db.close();
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
}

/// Writes a text record and waits until it is stored.
pub async fn put(key: &str, value: &str) -> Result<(), String> {
    put_value(key, &value.into()).await
}

/// Writes a record (any structured-cloneable value, e.g. an object holding an `ArrayBuffer`)
/// and waits until it is stored: its transaction has committed.
pub async fn put_value(key: &str, value: &JsValue) -> Result<(), String> {
    write(&[(key, Some(value))]).await
}

/// Writes (`Some`) or deletes (`None`) several records in one transaction, and waits until it
/// has committed: all of them are stored, or, on any failure (a full quota, the page closed
/// before the commit), none, and the records stay as they were.
pub async fn write(records: &[(&str, Option<&JsValue>)]) -> Result<(), String> {
    let db = open().await?;
    let tx = db
        .transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite)
        .map_err(|e| err("write", e))?;
    let done = committed(&tx);
    let store = tx.object_store(STORE).map_err(|e| err("write", e))?;
    let mut requests = Vec::with_capacity(records.len());
    for (key, value) in records {
        let req = match value {
            Some(v) => store.put_with_key(v, &(*key).into()),
            None => store.delete(&(*key).into()),
        };
        match req {
            Ok(r) => requests.push(r),
            Err(e) => {
                let _ = tx.abort();
                db.close();
                return Err(err("write", e));
            }
        }
    }
    let pending: Vec<JsFuture> = requests.iter().map(settled).collect();
    let mut wrote = Ok(());
    for p in pending {
        if let Err(e) = p.await {
            wrote = Err(err("write", e));
            break;
        }
    }
    let kept = done.await.map(drop).map_err(|e| err("write", e));
    db.close();
    // An aborted transaction's error is the cause (a failed request's own, or the quota's).
    kept.and(wrote)
}

/// Deletes a record (no error if it does not exist).
pub async fn delete(key: &str) -> Result<(), String> {
    write(&[(key, None)]).await
}
