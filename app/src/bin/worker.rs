//! The model worker (a dedicated Web Worker; see `app::worker`).

fn main() {
    #[cfg(target_arch = "wasm32")]
    app::worker::start();
}
