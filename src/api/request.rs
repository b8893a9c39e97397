//! `POST /api/predict` bodies: `multipart/form-data` (fields `image` (the file), `lat`, `lon`,
//! `source`) or `application/json` (`{"image": base64, "lat": .., "lon": .., "source": ..}`).
//! `source` is optional (default `user`, as `accessatlas predict`). Every problem becomes an
//! [`ApiError`] naming the field.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;

use super::error::{ApiError, Code};

pub const DEFAULT_SOURCE: &str = "user";

/// A parsed, not yet validated, prediction request.
#[derive(Debug)]
pub struct PredictRequest {
    pub image: Bytes,
    pub lat: f64,
    pub lon: f64,
    pub source: String,
}

/// Reads and parses the body; `max_body` bounds what is kept.
pub async fn parse(req: Request, max_body: usize) -> Result<PredictRequest, ApiError> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let is_multipart = ctype.starts_with("multipart/form-data");
    if !is_multipart && !ctype.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedContentType,
            format!(
                "Content-Type `{}` is not supported: send multipart/form-data or application/json",
                truncate(&ctype)
            ),
        ));
    }
    let (parts, body) = req.into_parts();
    let body = read_body(body, max_body).await?;
    if is_multipart {
        multipart(Request::from_parts(parts, Body::from(body))).await
    } else {
        json(&body)
    }
}

/// How much of an oversized body is read and thrown away before answering 413, so the client
/// (which is still sending) gets the answer instead of a reset connection; past it, the
/// connection is closed.
const DRAIN_FACTOR: usize = 4;

/// The whole body, at most `max` bytes. A longer one is read on (and discarded) up to
/// `DRAIN_FACTOR * max` and refused with 413.
async fn read_body(mut body: Body, max: usize) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(Code::BadBody, format!("reading the body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen <= max {
            buf.extend_from_slice(&data);
        } else if seen > DRAIN_FACTOR * max {
            break;
        }
    }
    if seen > max {
        return Err(ApiError::too_large(format!(
            "the request body is over the limit of {max} bytes"
        )));
    }
    Ok(Bytes::from(buf))
}

fn number(field: &str, text: &str) -> Result<f64, ApiError> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| ApiError::wrong_type(field, "a number", &format!("`{}`", truncate(text))))
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

#[derive(Default)]
struct Fields {
    image: Option<Bytes>,
    lat: Option<f64>,
    lon: Option<f64>,
    source: Option<String>,
}

impl Fields {
    fn finish(self) -> Result<PredictRequest, ApiError> {
        Ok(PredictRequest {
            image: self.image.ok_or_else(|| ApiError::missing("image"))?,
            lat: self.lat.ok_or_else(|| ApiError::missing("lat"))?,
            lon: self.lon.ok_or_else(|| ApiError::missing("lon"))?,
            source: self.source.unwrap_or_else(|| DEFAULT_SOURCE.to_string()),
        })
    }
}

fn duplicate(field: &str) -> ApiError {
    ApiError::bad_request(Code::DuplicateField, format!("`{field}` is given twice")).field(field)
}

fn unknown(field: &str) -> ApiError {
    ApiError::bad_request(
        Code::UnknownField,
        format!("unknown field `{}` (expected image, lat, lon, source)", truncate(field)),
    )
    .field(field)
}

async fn multipart(req: Request) -> Result<PredictRequest, ApiError> {
    let mut mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::bad_request(Code::BadMultipart, e.body_text()))?;
    let mut f = Fields::default();
    let part_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(e.body_text())
        } else {
            ApiError::bad_request(Code::BadMultipart, e.body_text())
        }
    };
    while let Some(field) = mp.next_field().await.map_err(part_error)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "image" => {
                let bytes = field.bytes().await.map_err(part_error)?;
                if f.image.replace(bytes).is_some() {
                    return Err(duplicate("image"));
                }
            }
            "lat" | "lon" | "source" => {
                let text = field.text().await.map_err(|e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        part_error(e)
                    } else {
                        ApiError::wrong_type(&name, "UTF-8 text", "bytes")
                    }
                })?;
                let dup = match name.as_str() {
                    "lat" => f.lat.replace(number("lat", &text)?).is_some(),
                    "lon" => f.lon.replace(number("lon", &text)?).is_some(),
                    _ => f.source.replace(text.trim().to_string()).is_some(),
                };
                if dup {
                    return Err(duplicate(&name));
                }
            }
            _ => return Err(unknown(&name)),
        }
    }
    f.finish()
}

/// A JSON object's members in order, duplicates kept (`serde_json::Value` keeps only the
/// last of a repeated key, which would hide a client's mistake).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visitor)
    }
}

fn json(body: &[u8]) -> Result<PredictRequest, ApiError> {
    // Syntax first, so invalid JSON is `bad_json` whatever its shape.
    serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| {
        ApiError::bad_request(Code::BadJson, format!("the body is not valid JSON: {e}"))
    })?;
    let Members(obj) = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request(Code::BadJson, "the body must be a JSON object"))?;
    let mut seen = std::collections::HashSet::new();
    if let Some((k, _)) = obj.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        return Err(duplicate(k));
    }
    let type_name = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    };
    let mut f = Fields::default();
    for (k, v) in &obj {
        match k.as_str() {
            "image" => {
                let s = v.as_str().ok_or_else(|| {
                    ApiError::wrong_type("image", "a base64 string", type_name(v))
                })?;
                // Accept a data URL as browsers make them (`data:image/png;base64,...`).
                let b64 = s.split_once(";base64,").map_or(s, |(_, b)| b);
                let bytes =
                    base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| {
                        ApiError::bad_request(
                            Code::BadBase64,
                            format!("`image` is not valid base64: {e}"),
                        )
                        .field("image")
                    })?;
                f.image = Some(Bytes::from(bytes));
            }
            "lat" | "lon" => {
                let n =
                    v.as_f64().ok_or_else(|| ApiError::wrong_type(k, "a number", type_name(v)))?;
                if k == "lat" {
                    f.lat = Some(n);
                } else {
                    f.lon = Some(n);
                }
            }
            "source" => {
                let s =
                    v.as_str().ok_or_else(|| ApiError::wrong_type(k, "a string", type_name(v)))?;
                f.source = Some(s.trim().to_string());
            }
            _ => return Err(unknown(k)),
        }
    }
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_are_checked_by_name_and_type() {
        let ok = json(br#"{"image":"iVBORw0KGgo=","lat":60.1,"lon":24.9}"#).unwrap();
        assert_eq!((ok.lat, ok.lon, ok.source.as_str()), (60.1, 24.9, DEFAULT_SOURCE));
        assert_eq!(&ok.image[..4], b"\x89PNG");
        let data_url = json(
            br#"{"image":"data:image/png;base64,iVBORw0KGgo=","lat":1,"lon":2,"source":"osm"}"#,
        )
        .unwrap();
        assert_eq!((data_url.image.len(), data_url.source.as_str()), (8, "osm"));

        let e = json(br#"{"image":"iVBORw0KGgo=","lon":24.9}"#).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.field.as_deref()),
            (StatusCode::BAD_REQUEST, Code::MissingField, Some("lat"))
        );
        let e = json(br#"{"image":"iVBORw0KGgo=","lat":"north","lon":24.9}"#).unwrap_err();
        assert_eq!((e.code.as_str(), e.field.as_deref()), ("wrong_type", Some("lat")));
        assert!(e.error.contains("a string"), "{}", e.error);
        let e = json(br#"{"image":"***","lat":1,"lon":2}"#).unwrap_err();
        assert_eq!((e.code.as_str(), e.field.as_deref()), ("bad_base64", Some("image")));
        let e = json(br#"{"image":"iVBORw0KGgo=","lat":1,"lon":2,"latitude":3}"#).unwrap_err();
        assert_eq!(e.code, "unknown_field");
        assert_eq!(json(b"[1]").unwrap_err().code, "bad_json");
        // serde_json::Value would keep the last `lat`; a repeated key is refused instead.
        let e = json(br#"{"image":"iVBORw0KGgo=","lat":1,"lon":2,"lat":3}"#).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.field.as_deref()),
            (StatusCode::BAD_REQUEST, Code::DuplicateField, Some("lat"))
        );
        assert_eq!(json(b"{").unwrap_err().code, "bad_json");
    }

    #[test]
    fn numbers_in_text_fields() {
        assert_eq!(number("lat", " 60.5 ").unwrap(), 60.5);
        let e = number("lon", "east").unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (StatusCode::BAD_REQUEST, Some("lon")));
    }
}
