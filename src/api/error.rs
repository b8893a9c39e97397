//! The API's errors: a status and a JSON body `{error, code, field}` that says what was wrong
//! with which field. Bad input is always a 4xx; 5xx only for the server's own trouble.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model_core::CoreError;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// Machine-readable kind, e.g. `missing_field`.
    pub code: &'static str,
    /// Human-readable message.
    pub error: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, error: impl Into<String>) -> Self {
        Self { status, code, error: error.into(), field: None }
    }

    pub fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    pub fn bad_request(code: &'static str, error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, error)
    }

    pub fn missing(field: &str) -> Self {
        Self::bad_request("missing_field", format!("the request has no `{field}` field"))
            .field(field)
    }

    pub fn wrong_type(field: &str, expected: &str, got: &str) -> Self {
        Self::bad_request("wrong_type", format!("`{field}` must be {expected}, got {got}"))
            .field(field)
    }

    pub fn too_large(error: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", error)
    }

    pub fn busy(error: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", error)
    }

    /// Maps an error of the shared core (decoding, metadata) to a status.
    pub fn from_core(e: CoreError) -> Self {
        let msg = e.to_string();
        match e {
            CoreError::UnknownImageFormat | CoreError::UnsupportedImageFormat(_) => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_an_image", msg).field("image")
            }
            CoreError::ImageTooLarge { .. } => Self::too_large(msg).field("image"),
            CoreError::ImageDecode(_) | CoreError::EmptyImage { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_image", msg).field("image")
            }
            CoreError::LatitudeOutOfRange(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "out_of_range", msg).field("lat")
            }
            CoreError::LongitudeOutOfRange(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "out_of_range", msg).field("lon")
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(&self)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}
