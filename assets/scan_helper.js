// The scan helper's loader (app/src/worker/scan_helper.rs). The model worker starts this
// worker and posts it the WebAssembly module it was itself instantiated from, so the helper
// runs the same wasm without fetching or compiling it again (a second compile of the worker's
// wasm took most of the helper's start on two cores).
importScripts("./worker.js");
self.onmessage = (event) => {
  self.onmessage = null;
  wasm_bindgen({ module_or_path: event.data });
};
