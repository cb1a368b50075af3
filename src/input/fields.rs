//! One way to read a field of payload JSON: every error names the field's
//! path (`detail.image-tag`, `reconcile.max_writes`) and what was expected.

use serde_json::{Map, Value};

use crate::domain::names::InvalidName;
use crate::input::InputError;

/// An object's fields, read under a path prefix.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    object: &'a Map<String, Value>,
    /// `""`, or the object's own path and a dot (`"detail."`).
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    pub fn new(object: &'a Map<String, Value>, prefix: &'a str) -> Self {
        Fields { object, prefix }
    }

    /// `value` as an object whose fields sit at `path`.
    pub fn object(value: &'a Value, path: &'a str, prefix: &'a str) -> Result<Self, InputError> {
        value.as_object().map(|o| Fields::new(o, prefix)).ok_or_else(|| expected(path, "an object", value))
    }

    pub fn path(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key.escape_debug())
    }

    pub fn error(&self, key: &str, problem: impl Into<String>) -> InputError {
        field_error(&self.path(key), problem)
    }

    pub fn entries(&self) -> serde_json::map::Iter<'a> {
        self.object.iter()
    }

    pub fn has(&self, key: &str) -> bool {
        self.object.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    /// Refuses any field not in `known`: a typo such as "dryrun" must not silently turn into a real run.
    pub fn only(&self, known: &[&str], what: &str) -> Result<(), InputError> {
        match self.object.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(self.error(unknown, format!("unknown field; {what} has {}", known.join(", ")))),
            None => Ok(()),
        }
    }

    pub fn text(&self, key: &str) -> Result<&'a str, InputError> {
        self.optional_text(key)?.ok_or_else(|| self.error(key, "required"))
    }

    pub fn optional_text(&self, key: &str) -> Result<Option<&'a str>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(expected(&self.path(key), "a string", other)),
        }
    }

    /// A string when there is one; anything else is `None` (for echoing what an ignored event was about).
    pub fn lenient_text(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(Value::as_str)
    }

    /// `false` when absent.
    pub fn flag(&self, key: &str) -> Result<bool, InputError> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(expected(&self.path(key), "true or false", other)),
        }
    }

    /// A required name, validated by `parse`.
    pub fn name<T>(&self, key: &str, parse: impl FnOnce(&str) -> Result<T, InvalidName>) -> Result<T, InputError> {
        parse(self.text(key)?).map_err(|e| self.error(key, e.to_string()))
    }

    /// An optional name, validated by `parse`.
    pub fn optional_name<T>(&self, key: &str, parse: impl FnOnce(&str) -> Result<T, InvalidName>) -> Result<Option<T>, InputError> {
        self.optional_text(key)?.map(|s| parse(s).map_err(|e| self.error(key, e.to_string()))).transpose()
    }

    /// An optional array; `None` when absent.
    pub fn optional_array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(expected(&self.path(key), "an array", other)),
        }
    }

    /// Each item of an array through `read`, which is told the item's path.
    pub fn items<T>(
        &self,
        key: &str,
        items: &[Value],
        mut read: impl FnMut(&Value, &str) -> Result<T, InputError>,
    ) -> Result<Vec<T>, InputError> {
        let path = self.path(key);
        items.iter().enumerate().map(|(i, item)| read(item, &format!("{path}[{i}]"))).collect()
    }
}

pub(crate) fn field_error(field: &str, problem: impl Into<String>) -> InputError {
    InputError::Field { field: field.to_owned(), problem: problem.into() }
}

/// "expected a string, got a number" at `path`.
pub(crate) fn expected(path: &str, what: &str, got: &Value) -> InputError {
    field_error(path, format!("expected {what}, got {}", json_kind(got)))
}

/// An item that must be a string, at `path`.
pub(crate) fn item_text<'v>(item: &'v Value, path: &str) -> Result<&'v str, InputError> {
    item.as_str().ok_or_else(|| expected(path, "a string", item))
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
