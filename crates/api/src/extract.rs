//! Request extractors whose rejections are scanplane's JSON errors, and the one validation
//! every request goes through here: no string anywhere in a request (body field, path
//! parameter, query parameter) may hold a NUL character. PostgreSQL cannot store NUL in
//! text, so without this a NUL would be a database error on one backend and a stored value
//! on the other; here it is a 422 naming the field on both.

use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// The problem named for a NUL character.
const NUL_PROBLEM: &str = "must not contain NUL (\\u0000) characters";

/// Checks one request string: a 422 naming `field` when it holds a NUL character.
pub fn no_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        Err(ApiError::invalid(field, NUL_PROBLEM))
    } else {
        Ok(())
    }
}

/// The path (`targets[2]`, `options.depth`) of the first string in `value` that holds a NUL
/// character, keys included.
fn find_nul(value: &Value, path: &mut String) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = find_nul(v, path);
            if !found {
                path.truncate(len);
            }
            found
        }),
        Value::Object(map) => map.iter().any(|(k, v)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            if k.contains('\0') {
                path.push_str(&k.replace('\0', "\\u0000"));
                return true;
            }
            path.push_str(k);
            let found = find_nul(v, path);
            if !found {
                path.truncate(len);
            }
            found
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Checks every string of a JSON document (see [`no_nul`]).
pub fn no_nul_in_json(value: &Value) -> Result<(), ApiError> {
    let mut path = String::new();
    if find_nul(value, &mut path) {
        let field = if path.is_empty() {
            "request body"
        } else {
            &path
        };
        return Err(ApiError::invalid(field, NUL_PROBLEM));
    }
    Ok(())
}

fn path_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    if path == "." || path.is_empty() {
        e.inner().to_string()
    } else {
        format!("{path}: {}", e.inner())
    }
}

/// JSON body extractor: content type, size limit and syntax as `axum::Json`, then the NUL
/// check, then the typed fields (errors name the field).
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state).await?;
        no_nul_in_json(&value)?;
        serde_path_to_error::deserialize(value)
            .map(AppJson)
            .map_err(|e| ApiError::invalid("request body", path_error(e)))
    }
}

/// Query-string extractor: the NUL check on every name and value, then the typed fields.
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default().as_bytes();
        for (name, value) in form_urlencoded::parse(query) {
            no_nul("query string", &name)?;
            no_nul(&name, &value)?;
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query));
        serde_path_to_error::deserialize(de)
            .map(AppQuery)
            .map_err(|e| ApiError::malformed(format!("query string: {}", path_error(e))))
    }
}

/// Path-parameter extractor: the NUL check on every parameter, then the typed value.
pub struct AppPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::malformed(format!("path: {}", e.body_text())))?;
        for (name, value) in &raw {
            no_nul(name, value)?;
        }
        let Path(value) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::malformed(format!("path: {}", e.body_text())))?;
        Ok(AppPath(value))
    }
}

/// A page cursor as given by a previous page's `next_cursor` (the id of its last item):
/// anything else is a 400 rather than a silently wrong page. Empty means no cursor.
pub fn cursor(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(c) if c.is_empty() => Ok(None),
        Some(c) => match uuid::Uuid::try_parse(&c) {
            Ok(id) if id.hyphenated().to_string() == c => Ok(Some(c)),
            _ => Err(ApiError::malformed(format!(
                "cursor: {c:?} is not a next_cursor of a previous page"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nul_field(v: Value) -> Option<String> {
        no_nul_in_json(&v).err().map(|e| e.message)
    }

    #[test]
    fn a_nul_anywhere_names_its_field() {
        assert_eq!(
            nul_field(json!({"name": "ok", "targets": ["a", "b"]})),
            None
        );
        let m = nul_field(json!({"name": "a\u{0}b"})).unwrap();
        assert!(m.starts_with("name: "), "{m}");
        let m = nul_field(json!({"name": "x", "targets": ["a", "b\u{0}"]})).unwrap();
        assert!(m.starts_with("targets[1]: "), "{m}");
        let m = nul_field(json!({"options": {"deep": [{"k": "\u{0}"}]}})).unwrap();
        assert!(m.starts_with("options.deep[0].k: "), "{m}");
        let m = nul_field(json!({"options": {"bad\u{0}key": 1}})).unwrap();
        assert!(m.starts_with("options.bad\\u0000key: "), "{m}");
        let m = nul_field(json!("\u{0}")).unwrap();
        assert!(m.starts_with("request body: "), "{m}");
    }

    #[test]
    fn cursors_are_ids_from_a_previous_page() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(cursor(Some(id.clone())).unwrap(), Some(id.clone()));
        assert_eq!(cursor(None).unwrap(), None);
        assert_eq!(cursor(Some(String::new())).unwrap(), None);
        for bad in ["zzz", "1", &id.to_uppercase(), &id.replace('-', "")] {
            let e = cursor(Some(bad.to_string())).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad}");
            assert!(e.message.starts_with("cursor: "), "{}", e.message);
        }
    }
}
