//! The API's errors: a status and a JSON body `{error, code, field}` that says what was wrong
//! with which field. Bad input is always a 4xx; 5xx only for the server's own trouble.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model_core::CoreError;
use model_core::wire::ErrorBody;

pub use model_core::wire::Code;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Machine-readable kind, e.g. `missing_field`.
    pub code: Code,
    /// Human-readable message.
    pub error: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, error: impl Into<String>) -> Self {
        Self { status, code, error: error.into(), field: None }
    }

    pub fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    pub fn bad_request(code: Code, error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, error)
    }

    pub fn missing(field: &str) -> Self {
        Self::bad_request(Code::MissingField, format!("the request has no `{field}` field"))
            .field(field)
    }

    pub fn wrong_type(field: &str, expected: &str, got: &str) -> Self {
        Self::bad_request(Code::WrongType, format!("`{field}` must be {expected}, got {got}"))
            .field(field)
    }

    pub fn too_large(error: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, Code::TooLarge, error)
    }

    pub fn busy(error: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, Code::Busy, error)
    }

    /// Maps an error of the shared core (decoding, metadata) to a status.
    pub fn from_core(e: CoreError) -> Self {
        let msg = e.to_string();
        match e {
            CoreError::UnknownImageFormat | CoreError::UnsupportedImageFormat(_) => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::NotAnImage, msg).field("image")
            }
            CoreError::ImageTooLarge { .. } => Self::too_large(msg).field("image"),
            CoreError::ImageDecode(_) | CoreError::EmptyImage { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, Code::BadImage, msg).field("image")
            }
            CoreError::LatitudeOutOfRange(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, Code::OutOfRange, msg).field("lat")
            }
            CoreError::LongitudeOutOfRange(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, Code::OutOfRange, msg).field("lon")
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { code: self.code, error: self.error, field: self.field };
        let mut res = (self.status, Json(&body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}
