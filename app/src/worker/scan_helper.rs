//! The scan's second core: a second model worker, started by the model worker itself, that
//! scores half the points of a scan, so a scan on the CPU backend uses two cores where the
//! machine has them (one wasm thread each; wasm code here never shares memory between
//! threads).
//!
//! The helper is the same worker code (the model worker's own compiled wasm module, posted to
//! its loader `assets/scan_helper.js`), loaded with [`ToWorker::Load`]'s `scan_helper` set:
//! it loads the model as the model worker does (the kept one from IndexedDB, else the
//! shipped one) on the CPU backend and starts no helper of its own. It is used only while its
//! model is the model worker's ([`ModelInfo`] equal); a model kept, undone or imported
//! replaces it with a new helper, which reads the new kept model. Each worker takes a scan's
//! points from its queue here ([`next`]); the model worker's helper gets half of the points
//! still in the model worker's queue (those on its side of the view, [`share`]), at the
//! scan's start when it is ready then, or the moment it becomes ready during the scan. It
//! starts as soon as the model worker knows it runs on the CPU, before the model worker reads
//! its model, and loads while the model worker does, so a scan clicked the moment the model
//! is ready finds it ready or nearly. Its
//! results pass through the model worker to the page, and the page gets one `ScanDone` for
//! both halves. The page hears how many workers a scan would run on now (`ScanWorkers`).

use std::cell::RefCell;
use std::collections::VecDeque;

use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, Worker};

use crate::protocol::{BackendChoice, FromWorker, ModelInfo, ScanPoint, ToWorker};

use super::post;

struct Helper {
    worker: Worker,
    /// The model it loaded, once it is ready.
    model: Option<ModelInfo>,
}

/// One scan split between the two workers: which halves are still running, and what the
/// finished ones counted.
struct Join {
    id: u64,
    mine_running: bool,
    helper_running: bool,
    failed: usize,
    unscanned: usize,
}

/// Which half of a split scan finished.
pub(super) enum Half {
    /// The model worker's own.
    Mine,
    /// The helper's.
    Helper,
    /// The helper is gone, and its half with it.
    HelperGone,
}

/// The model worker's running scan: the points it has not taken yet, each with its place in
/// the scan (the first `first` are scored whatever the time).
struct Queue {
    id: u64,
    model: ModelInfo,
    points: VecDeque<(usize, ScanPoint)>,
    source: String,
    first: usize,
    budget_ms: f64,
    started: f64,
}

thread_local! {
    static HELPER: RefCell<Option<Helper>> = const { RefCell::new(None) };
    static JOIN: RefCell<Option<Join>> = const { RefCell::new(None) };
    static QUEUE: RefCell<Option<Queue>> = const { RefCell::new(None) };
}

/// Whether the machine has a second core for the helper.
fn two_cores() -> bool {
    let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    scope.navigator().hardware_concurrency() >= 2.0
}

/// Starts a helper (replacing any), which loads the kept or shipped model from `base`.
pub(super) fn restart(base: &str) {
    stop();
    if !two_cores() {
        return;
    }
    // Its loader (`assets/scan_helper.js`) instantiates the module this worker runs, posted
    // to it here: no second download or compile of the wasm.
    let worker = match Worker::new("./scan_helper.js") {
        Ok(w) => w,
        Err(e) => {
            web_sys::console::warn_2(&"scan helper: no second worker".into(), &e);
            return;
        }
    };
    if let Err(e) = worker.post_message(&wasm_bindgen::module()) {
        web_sys::console::warn_2(&"scan helper: cannot pass it the module".into(), &e);
        worker.terminate();
        return;
    }
    let base = base.to_string();
    let w = worker.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let Some((text, _)) = crate::transfer::unpack(&e.data()) else { return };
        let Ok(msg) = serde_json::from_str::<FromWorker>(&text) else { return };
        on_message(&w, &base, msg);
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    HELPER.with_borrow_mut(|h| *h = Some(Helper { worker, model: None }));
}

/// Tells the page that a scan now runs on two workers, once both hold the same model (each
/// calls this when it gets ready: the helper loads while the model worker does).
pub(super) fn announce() {
    let same = HELPER.with_borrow(|h| {
        h.as_ref().and_then(|h| h.model.as_ref()).is_some_and(|model| {
            super::STATE
                .with_borrow(|s| s.loaded.as_ref().is_some_and(|m| &super::info(m) == model))
        })
    });
    if same {
        post(&FromWorker::ScanWorkers { workers: 2 });
    }
}

/// Stops the helper; a scan it was part of finishes with the model worker's half.
pub(super) fn stop() {
    if let Some(h) = HELPER.with_borrow_mut(Option::take) {
        h.worker.terminate();
        if h.model.is_some() {
            post(&FromWorker::ScanWorkers { workers: 1 });
        }
    }
    if let Some(id) = JOIN.with_borrow(|j| j.as_ref().map(|j| j.id)) {
        half_done(id, Half::HelperGone, 0, 0);
    }
}

fn send(worker: &Worker, msg: &ToWorker) {
    let text = serde_json::to_string(msg).expect("messages serialise");
    let (value, transfer) = crate::transfer::pack(&text, None);
    if let Err(e) = worker.post_message_with_transfer(&value, &transfer) {
        web_sys::console::error_2(&"scan helper: postMessage failed".into(), &e);
    }
}

fn on_message(worker: &Worker, base: &str, msg: FromWorker) {
    let ours = HELPER.with_borrow(|h| h.as_ref().is_some_and(|h| &h.worker == worker));
    if !ours {
        return;
    }
    match msg {
        FromWorker::Started => send(
            worker,
            &ToWorker::Load {
                base: base.to_string(),
                backend: BackendChoice::Cpu,
                scan_helper: true,
            },
        ),
        FromWorker::Ready { model, .. } => {
            HELPER.with_borrow_mut(|h| {
                if let Some(h) = h {
                    h.model = Some(model);
                }
            });
            announce();
            share();
        }
        FromWorker::ScanResult { .. } => post(&msg),
        FromWorker::ScanDone { id, failed, unscanned, .. } => {
            half_done(id, Half::Helper, failed, unscanned);
        }
        FromWorker::Failed { message, .. } => {
            web_sys::console::warn_1(&format!("scan helper: {message}").into());
            stop();
        }
        _ => {}
    }
}

/// Starts scan `id` of the model worker (`model` loaded): its points go into the queue that
/// [`next`] takes them from, and half of them to the helper if it holds this model now.
pub(super) fn start_scan(
    model: ModelInfo,
    id: u64,
    points: Vec<ScanPoint>,
    source: &str,
    first: usize,
    budget_ms: f64,
) {
    // A scan still running is over for the page (it only listens to the newest id).
    JOIN.with_borrow_mut(|j| *j = None);
    QUEUE.with_borrow_mut(|q| {
        *q = Some(Queue {
            id,
            model,
            points: points.into_iter().enumerate().collect(),
            source: source.to_string(),
            first,
            budget_ms,
            started: crate::net::now_ms(),
        })
    });
    share();
}

/// The next point of scan `id` with its place in the scan, and the `SCAN_AHEAD` after it
/// (whose tiles may load meanwhile); `None` when the queue is empty or holds another scan.
pub(super) fn next(id: u64, ahead: usize) -> Option<((usize, ScanPoint), Vec<ScanPoint>)> {
    QUEUE.with_borrow_mut(|q| {
        let q = q.as_mut().filter(|q| q.id == id)?;
        let p = q.points.pop_front()?;
        Some((p, q.points.iter().take(ahead).map(|(_, p)| p.clone()).collect()))
    })
}

/// Ends scan `id`'s queue, returning how many points it still held (unscanned).
pub(super) fn finish(id: u64) -> usize {
    QUEUE.with_borrow_mut(|q| match q.take() {
        Some(mine) if mine.id == id => mine.points.len(),
        other => {
            *q = other;
            0
        }
    })
}

/// Whether scan `id` was shared with the helper.
pub(super) fn shared(id: u64) -> bool {
    JOIN.with_borrow(|j| j.as_ref().is_some_and(|j| j.id == id))
}

/// Gives the helper half of the points still in the running scan's queue, by place
/// ([`crate::scan::halves`]: each worker's points share more of their tiles; each half stays
/// most promising first, so both go on with the best), when the helper holds the scan's model
/// and the scan is not shared yet.
fn share() {
    let Some(worker) = QUEUE.with_borrow(|q| {
        let q = q.as_ref()?;
        HELPER.with_borrow(|h| {
            h.as_ref().filter(|h| h.model.as_ref() == Some(&q.model)).map(|h| h.worker.clone())
        })
    }) else {
        return;
    };
    let msg = QUEUE.with_borrow_mut(|q| {
        let q = q.as_mut()?;
        if q.points.len() < 2 || shared(q.id) {
            return None;
        }
        let queue = std::mem::take(&mut q.points).into_iter().collect();
        let (mine, theirs) = crate::scan::halves(queue, q.first, |p| (p.lat, p.lon));
        q.points = mine.into();
        let first = theirs.iter().filter(|(i, _)| *i < q.first).count();
        JOIN.with_borrow_mut(|j| {
            *j = Some(Join {
                id: q.id,
                mine_running: true,
                helper_running: true,
                failed: 0,
                unscanned: 0,
            })
        });
        Some(ToWorker::Scan {
            id: q.id,
            points: theirs.into_iter().map(|(_, p)| p).collect(),
            source: q.source.clone(),
            first,
            budget_ms: (q.budget_ms - (crate::net::now_ms() - q.started)).max(0.0),
        })
    });
    if let Some(msg) = msg {
        send(&worker, &msg);
    }
}

/// One half of split scan `id` finished; the page hears `ScanDone` when both have. False when
/// `id` is not a split scan (the model worker then says `ScanDone` itself).
pub(super) fn half_done(id: u64, half: Half, failed: usize, unscanned: usize) -> bool {
    let (split, done) = JOIN.with_borrow_mut(|j| {
        let Some(join) = j.as_mut().filter(|join| join.id == id) else { return (false, None) };
        join.failed += failed;
        join.unscanned += unscanned;
        match half {
            Half::Mine => join.mine_running = false,
            Half::Helper | Half::HelperGone => join.helper_running = false,
        }
        let done = !join.mine_running && !join.helper_running;
        (true, done.then(|| j.take()).flatten())
    });
    if let Some(j) = done {
        post(&FromWorker::ScanDone {
            id: j.id,
            failed: j.failed,
            unscanned: j.unscanned,
            workers: 2,
        });
    }
    split
}
