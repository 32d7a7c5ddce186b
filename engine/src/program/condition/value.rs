//! Run-time values of conditions and their JSON form, for user data coming in and the CLI's output.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat};
use serde_json::Value as Json;

use super::print;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Number(f64),
    Text(String),
    /// Milliseconds; may be negative.
    Duration(i64),
    Time(Timestamp),
    List(Vec<Value>),
}

/// Why a JSON value is not a condition value, and where in the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct JsonError {
    /// Dotted path to the offending value, `tags[2]` for list items; empty for the document itself.
    pub path: String,
    pub kind: JsonErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonErrorKind {
    #[error("variables must be given as a JSON object")]
    NotAnObject,
    #[error("not a variable name (letters, digits and `_`, not starting with a digit)")]
    BadName,
    #[error("null means unset and cannot stand here")]
    Null,
    #[error("an object is not a value (only {{\"duration_ms\": n}} and {{\"time_ms\": n}} are)")]
    Object,
    #[error("`{key}` needs a whole number of milliseconds")]
    BadMarker { key: String },
    #[error("number cannot be read as a 64-bit float")]
    BadNumber,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.as_str() {
            "" => write!(f, "{}", self.kind),
            path => write!(f, "`{path}`: {}", self.kind),
        }
    }
}

impl JsonError {
    fn new(path: &str, kind: JsonErrorKind) -> Self {
        Self { path: path.to_owned(), kind }
    }
}

impl Value {
    /// Numbers become numbers, strings text, arrays lists; `{"duration_ms": n}` and
    /// `{"time_ms": n}` become a duration and a time. Null and other objects are refused. A list
    /// of mixed types is accepted here and refused when a condition reads it.
    pub fn from_json(json: &Json) -> Result<Value, JsonError> {
        value_at(json, "")
    }

    /// The inverse of [`Value::from_json`]. Whole numbers are written as integers; a number that is
    /// not finite has no JSON form and is written as null.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 2_f64.powi(53) => Json::from(*n as i64),
            Value::Number(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
            Value::Text(text) => Json::String(text.clone()),
            Value::Duration(ms) => serde_json::json!({ "duration_ms": ms }),
            Value::Time(at) => serde_json::json!({ "time_ms": at.millis() }),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
        }
    }
}

/// Variables from a JSON object, nested objects flattened to dotted paths:
/// `{"user": {"name": "Ana"}}` gives `user.name`. Null leaves a variable unset.
pub fn flatten_json_vars(json: &Json) -> Result<BTreeMap<String, Value>, JsonError> {
    let Json::Object(map) = json else {
        return Err(JsonError::new("", JsonErrorKind::NotAnObject));
    };
    let mut vars = BTreeMap::new();
    flatten_into(map, "", &mut vars)?;
    Ok(vars)
}

fn flatten_into(
    map: &serde_json::Map<String, Json>,
    prefix: &str,
    vars: &mut BTreeMap<String, Value>,
) -> Result<(), JsonError> {
    for (key, json) in map {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        if !is_identifier(key) {
            return Err(JsonError::new(&path, JsonErrorKind::BadName));
        }
        match json {
            Json::Null => {}
            Json::Object(inner) => match marker(inner, &path)? {
                Some(value) => {
                    vars.insert(path, value);
                }
                None => flatten_into(inner, &path, vars)?,
            },
            json => {
                let value = value_at(json, &path)?;
                vars.insert(path, value);
            }
        }
    }
    Ok(())
}

fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn value_at(json: &Json, path: &str) -> Result<Value, JsonError> {
    match json {
        Json::Null => Err(JsonError::new(path, JsonErrorKind::Null)),
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Number(n) => n.as_f64().map(Value::Number).ok_or_else(|| JsonError::new(path, JsonErrorKind::BadNumber)),
        Json::String(text) => Ok(Value::Text(text.clone())),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| value_at(item, &format!("{path}[{i}]")))
            .collect::<Result<_, _>>()
            .map(Value::List),
        Json::Object(map) => marker(map, path)?.ok_or_else(|| JsonError::new(path, JsonErrorKind::Object)),
    }
}

/// `{"duration_ms": n}` or `{"time_ms": n}`; `None` when the object has another shape.
fn marker(map: &serde_json::Map<String, Json>, path: &str) -> Result<Option<Value>, JsonError> {
    let mut entries = map.iter();
    let (Some((key, json)), None) = (entries.next(), entries.next()) else {
        return Ok(None);
    };
    let wrap: fn(i64) -> Value = match key.as_str() {
        "duration_ms" => Value::Duration,
        "time_ms" => |ms| Value::Time(Timestamp::from_millis(ms)),
        _ => return Ok(None),
    };
    match json.as_i64() {
        Some(ms) => Ok(Some(wrap(ms))),
        None => Err(JsonError::new(path, JsonErrorKind::BadMarker { key: key.clone() })),
    }
}

/// Texts in double quotes, durations as literals (`90m`), times in RFC 3339 (UTC), as the CLI
/// prints a result.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(text) => print::write_text(f, text),
            Value::Duration(ms) => print::write_duration(f, *ms),
            Value::Time(at) => match DateTime::from_timestamp_millis(at.millis()) {
                Some(at) => f.write_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
                None => write!(f, "{{\"time_ms\": {}}}", at.millis()),
            },
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}
