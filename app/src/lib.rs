//! Placeholder: the Leptos app lands with the browser-app issue.
