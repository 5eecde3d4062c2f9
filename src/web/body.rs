//! Request bodies: JSON objects of at most 1 MB, parsed strictly (a duplicated key is an
//! error, not a silent last-one-wins), with the reason and a manager's credentials that
//! any change may carry.

use axum::{
    extract::{FromRequest, Request},
    http::header,
};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::ApiError;

/// The largest body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// A JSON object from the request body.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
            });
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        if bytes.is_empty() {
            return Ok(Self(Map::new()));
        }
        if !json {
            return Err(ApiError::BadRequest(
                "the body must be JSON with Content-Type: application/json".into(),
            ));
        }
        parse_object(&bytes).map(Self)
    }
}

/// Parses a JSON object, refusing duplicate keys, trailing data and anything not an object.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        )),
    }
}

/// A `serde_json::Value` that refuses an object with the same key twice.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key \"{key}\"")));
            }
            let value = map.next_value_seed(Strict)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Takes a required text member out of a body, or says which is missing.
pub fn take_text(body: &mut Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match body.remove(name) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(ApiError::Validation(vec![
            crate::domain::field::FieldError::new(name, "is required (text)"),
        ])),
    }
}

/// What any change may carry besides its fields.
#[derive(Default)]
pub struct Extras {
    pub reason: Option<String>,
    /// A manager's credentials for this one request (a security override).
    pub authorize: Option<(String, String)>,
}

/// Takes `reason` and `authorize` out of a body, leaving the record's fields.
pub fn take_extras(body: &mut Map<String, Value>) -> Result<Extras, ApiError> {
    let reason = match body.remove("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(ApiError::Validation(vec![
                crate::domain::field::FieldError::new("reason", "must be text"),
            ]));
        }
    };
    let authorize = match body.remove("authorize") {
        None | Some(Value::Null) => None,
        Some(Value::Object(mut creds)) => {
            let mut text = |name: &str| match creds.remove(name) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s),
                _ => Err(crate::domain::field::FieldError::new(
                    format!("authorize.{name}"),
                    "is required",
                )),
            };
            match (text("username"), text("password")) {
                (Ok(u), Ok(p)) => Some((u, p)),
                (u, p) => {
                    let errors = [u.err(), p.err()].into_iter().flatten().collect();
                    return Err(ApiError::Validation(errors));
                }
            }
        }
        Some(_) => {
            return Err(ApiError::Validation(vec![
                crate::domain::field::FieldError::new(
                    "authorize",
                    "must be {\"username\", \"password\"}",
                ),
            ]));
        }
    };
    Ok(Extras { reason, authorize })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_and_deep_nesting_are_refused() {
        assert!(parse_object(br#"{"a": 1, "a": 2}"#).is_err());
        assert!(parse_object(br#"{"a": {"b": 1, "b": 1}}"#).is_err());
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_object(deep.as_bytes()).is_err());
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"{} {}").is_err());
        assert!(parse_object(b"{\"a\": \"\xff\"}").is_err());
        assert_eq!(
            parse_object(br#"{"a": [1, {"b": null}]}"#).unwrap().len(),
            1
        );
    }
}
