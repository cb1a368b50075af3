//! The payload as JSON, refusing duplicate keys: an event with two
//! `image-tag`s is ambiguous, and silently keeping the last one could retag
//! the wrong thing.

use serde::de::{DeserializeSeed, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

use crate::input::InputError;

/// Parses `text` as one JSON value, refusing duplicate object keys.
pub fn parse(text: &str) -> Result<Value, InputError> {
    let mut de = serde_json::Deserializer::from_str(text);
    StrictValue.deserialize(&mut de).and_then(|v| de.end().map(|()| v)).map_err(|e| InputError::Json(e.to_string()))
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
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
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key {:?}", key.escape_debug().to_string())));
            }
            let value = map.next_value_seed(StrictValue)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn raw_payloads_must_be_json_without_duplicate_keys() {
        assert_eq!(parse(r#"{"a": [1, {"b": null}], "c": 1.5}"#).unwrap(), json!({"a": [1, {"b": null}], "c": 1.5}));
        let dup = parse(r#"{"detail": {"image-tag": "v1", "image-tag": "v2"}}"#).unwrap_err();
        assert!(dup.to_string().contains("duplicate key \"image-tag\""), "{dup}");
        assert!(matches!(parse("push"), Err(InputError::Json(_))));
        assert!(matches!(parse("{} {}"), Err(InputError::Json(_))), "trailing data");
        assert!(matches!(parse(""), Err(InputError::Json(_))));
    }
}
