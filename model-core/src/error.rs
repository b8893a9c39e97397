//! Errors of the shared core. Callers add file names and line numbers as context.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    #[error("unknown encoder `{0}` (expected one of: {1})")]
    UnknownEncoder(String, String),
    #[error("unknown label `{0}` (expected one of: {1})")]
    UnknownLabel(String, String),
    #[error("image could not be decoded: {0}")]
    ImageDecode(String),
    #[error("the bytes are not a PNG or JPEG image")]
    UnknownImageFormat,
    #[error("{0} images are not supported (PNG or JPEG)")]
    UnsupportedImageFormat(String),
    #[error("image is {width}x{height} = {} pixels, over the limit of {max_pixels}", u64::from(*width) * u64::from(*height))]
    ImageTooLarge { width: u32, height: u32, max_pixels: u64 },
    #[error("image has size {width}x{height}, expected at least 1x1")]
    EmptyImage { width: u32, height: u32 },
    #[error("latitude {0} is outside -85.0511..=85.0511 (Web Mercator) or not a number")]
    LatitudeOutOfRange(f64),
    #[error("longitude {0} is outside -180..=180 or not a number")]
    LongitudeOutOfRange(f64),
    #[error("zoom {0} is outside 0..=24")]
    ZoomOutOfRange(u8),
    #[error("model file is corrupt or truncated: {0}")]
    CorruptModel(String),
    #[error("model config does not match the weights: {0}")]
    ConfigMismatch(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("batch is inconsistent: {0}")]
    BadBatch(String),
    #[error("not enough tags to fine-tune: {0}")]
    NotEnoughTags(String),
    #[error("{0}")]
    TileSourceUnreachable(String),
    #[error("backend error: {0}")]
    Backend(String),
}
