//! The page: mounts the Leptos app (see `app::page`).

fn main() {
    #[cfg(target_arch = "wasm32")]
    app::page::start();
}
