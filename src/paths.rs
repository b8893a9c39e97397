//! Where the CLI keeps downloaded files.

use std::path::PathBuf;

/// The cache directory: `$ACCESSATLAS_CACHE`, else the platform cache dir + `accessatlas`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("ACCESSATLAS_CACHE") {
        return PathBuf::from(p);
    }
    dirs::cache_dir().unwrap_or_else(|| PathBuf::from(".cache")).join("accessatlas")
}
