//! Input: the only code that knows payload JSON. An invocation's text becomes
//! an [`Invocation`] (one event, an SQS batch, or a sweep request), or an
//! [`InputError`] naming the field and what was expected. Parsing is pure: the
//! clock is passed in.
//!
//! [`strict_json`] reads the text (duplicate keys refused); [`parse`] tells
//! the shape once and hands it to [`eventbridge`], [`direct`], [`sqs`] or
//! [`sweep`], which read their fields through one field reader (`fields.rs`).

pub mod direct;
pub mod eventbridge;
pub mod inspector;
pub(crate) mod fields;
pub mod sqs;
pub mod strict_json;
pub mod sweep;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::request::{ReconcileRequest, Request};
use fields::{field_error, json_kind, Fields};
pub use sqs::Message;

/// What one invocation carries.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// One EventBridge event or direct request.
    Event(Event),
    /// SQS messages (`Records`), each body one event, read by [`Message::event`].
    Batch(Vec<Message>),
    Reconcile(ReconcileRequest),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the payload is not valid JSON: {0}")]
    Json(String),
    #[error("expected a JSON object (an EventBridge event from aws.ecr or a direct request), got {0}")]
    NotAnObject(&'static str),
    #[error(
        "unrecognised event: expected an EventBridge event from aws.ecr (with `source`, `detail-type` and `detail`) \
         or a direct request like {{\"repository\": \"app\", \"tag\": \"v1.4.2\"}}"
    )]
    UnknownShape,
    #[error("field `{field}`: {problem}")]
    Field { field: String, problem: String },
}

/// Reads an invocation payload. `now` is the push time of a direct request.
pub fn parse(text: &str, now: DateTime<Utc>) -> Result<Invocation, InputError> {
    read(&strict_json::parse(text)?, now)
}

/// One event: its request, and the EventBridge event's `id` (none for a direct request), which a
/// promotion record names.
#[derive(Debug, Clone)]
pub struct Event {
    pub request: Request,
    pub id: Option<String>,
}

impl Event {
    /// A request from no EventBridge event (the command line's, a direct request's).
    pub fn direct(request: Request) -> Event {
        Event { request, id: None }
    }

    /// What a promotion record says of this event: its id, its kind and when it happened.
    pub fn recorded(&self) -> crate::domain::record::Event {
        let kind = match (&self.request, &self.id) {
            (Request::Retag(_), None) => "request",
            (Request::Retag(_), Some(_)) => "push",
            (Request::Scanned(_), _) => "scan",
            (Request::Signed(_), _) => "signature",
            (Request::Ignore(_), _) => "ignored",
        };
        let time = self.request.time().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default();
        crate::domain::record::Event { id: self.id.clone(), kind: kind.to_owned(), time }
    }
}

/// A queued message's work, with the key two deliveries of the same message share.
#[derive(Debug, Clone)]
pub struct Queued {
    pub key: String,
    pub work: Work,
}

/// What a queued message asks for.
#[derive(Debug, Clone)]
pub enum Work {
    Event(Event),
    /// A sweep a fan-out sent (one repository), or its continuation.
    Sweep(ReconcileRequest),
}

impl Message {
    /// The work this message's body holds. `now` is the push time of a direct request.
    pub fn event(&self, now: DateTime<Utc>) -> Result<Queued, InputError> {
        let value = strict_json::parse(&self.body)?;
        // The same message delivered twice is the same text, so the same value (serde_json keeps key order here).
        let key = value.to_string();
        match read(&value, now)? {
            Invocation::Event(event) => Ok(Queued { key, work: Work::Event(event) }),
            // A fan-out from the queue would send its own messages back to it, for ever.
            Invocation::Reconcile(request) if request.fan_out => {
                Err(field_error("body.reconcile.fan_out", "a queued sweep cannot fan out; send fan-out requests to the function itself"))
            }
            Invocation::Reconcile(request) => Ok(Queued { key, work: Work::Sweep(request) }),
            Invocation::Batch(_) => Err(field_error("body", "a queued message holds one event, direct request or sweep, not a batch")),
        }
    }
}

/// The one place that tells the shapes apart.
fn read(value: &Value, now: DateTime<Utc>) -> Result<Invocation, InputError> {
    let object = value.as_object().map(|o| Fields::new(o, "")).ok_or(InputError::NotAnObject(json_kind(value)))?;
    if let Some(records) = object.get("Records") {
        return sqs::parse(records).map(Invocation::Batch);
    }
    if let Some(request) = object.get("reconcile") {
        if let Some(other) = object.entries().map(|(k, _)| k).find(|k| *k != "reconcile") {
            return Err(object.error(other, "unknown field next to `reconcile`"));
        }
        return sweep::parse(request).map(Invocation::Reconcile);
    }
    if eventbridge::looks_like(&object) {
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        eventbridge::parse(value).map(|request| Invocation::Event(Event { request, id }))
    } else if direct::looks_like(&object) {
        direct::parse(&object, now).map(|request| Invocation::Event(Event::direct(request)))
    } else {
        Err(InputError::UnknownShape)
    }
}

/// What the readers' unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub const DIGEST: &str = "sha256:16eb06ced985216bb14744c43dad833c58f56296d152e580542d0e8630f63316";

    pub fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    /// One event's request, from a JSON value.
    pub fn event_of(value: &Value, now: DateTime<Utc>) -> Result<Request, InputError> {
        match parse(&value.to_string(), now)? {
            Invocation::Event(event) => Ok(event.request),
            other => panic!("not one event: {other:?}"),
        }
    }

    /// The field a payload's error names.
    pub fn field_of(payload: &Value) -> String {
        match event_of(payload, now()) {
            Err(InputError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn non_objects_and_unknown_shapes_are_errors() {
        assert_eq!(parse("[1]", now()).unwrap_err(), InputError::NotAnObject("an array"));
        assert_eq!(parse("\"push\"", now()).unwrap_err(), InputError::NotAnObject("a string"));
        assert_eq!(parse(r#"{"hello": 1}"#, now()).unwrap_err(), InputError::UnknownShape);
        let beside = parse(r#"{"reconcile": {"repositories": ["a"]}, "tag": "v1"}"#, now()).unwrap_err();
        assert_eq!(beside.to_string(), "field `tag`: unknown field next to `reconcile`");
    }

    #[test]
    fn the_samples_in_events_are_what_they_say() {
        for sample in [include_str!("../../events/reconcile.json"), include_str!("../../events/reconcile-dry-run.json")] {
            assert!(matches!(parse(sample, now()), Ok(Invocation::Reconcile(_))), "{sample}");
        }
        let Ok(Invocation::Batch(messages)) = parse(include_str!("../../events/sqs-batch.json"), now()) else { panic!("a batch") };
        assert_eq!(messages.len(), 3);
        assert!(messages.iter().all(|m| m.event(now()).is_ok()), "each body is one event");
    }

    #[test]
    fn sqs_records_become_messages_whose_bodies_are_read_one_by_one() {
        let batch = json!({"Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": "{\"repository\": \"app\", \"tag\": \"v1\"}", "receiptHandle": "r"},
            {"messageId": "m2", "eventSource": "aws:sqs", "body": "x"},
            {"messageId": "m3", "eventSource": "aws:sqs", "body": "{\"reconcile\": {\"repositories\": [\"app\"]}}"},
            {"messageId": "m5", "eventSource": "aws:sqs", "body": "{\"reconcile\": {\"repositories\": [\"app\"], \"fan_out\": true}}"}]});
        let Invocation::Batch(m) = parse(&batch.to_string(), now()).unwrap() else { panic!("a batch") };
        assert_eq!(m.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m1", "m2", "m3", "m5"]);
        let first = m[0].event(now()).unwrap();
        assert!(matches!(first.work, Work::Event(Event { request: Request::Retag(_), .. })));
        // Whitespace aside, the same event is the same key.
        let again = Message { id: "m4".into(), body: "{\"repository\":\"app\",  \"tag\":\"v1\"}".into() };
        assert_eq!(again.event(now()).unwrap().key, first.key);
        assert!(matches!(m[1].event(now()), Err(InputError::Json(_))));
        assert!(matches!(m[2].event(now()).unwrap().work, Work::Sweep(r) if r.covers("app")), "a fanned-out sweep");
        // A fan-out from the queue would feed the queue for ever.
        assert!(matches!(m[3].event(now()), Err(InputError::Field { field, .. }) if field == "body.reconcile.fan_out"));
        let sns = json!({"Records": [{"EventSource": "aws:sns", "messageId": "m"}]});
        assert!(matches!(parse(&sns.to_string(), now()), Err(InputError::Field { field, .. }) if field == "Records[0].eventSource"));
    }
}
