//! The page: mounts the Leptos app (see `app::ui`).

fn main() {
    #[cfg(target_arch = "wasm32")]
    app::ui::start();
}
