//! What one invocation carries: a single event (EventBridge or a direct
//! request, see [`crate::event`]), a batch of SQS messages each holding such an
//! event, or a reconcile request. Parsing is pure.

use serde_json::{Map, Value};

use crate::event::{field_error, json_kind, opt_bool, opt_typed_str, EventError};
use crate::domain::names::{RegistryId, RepositoryName};
use crate::domain::rules::glob::Glob;

/// The writes a sweep makes when the request does not say.
pub const DEFAULT_MAX_WRITES: usize = 200;
/// Above this, one invocation would spend minutes of PutImage quota (10 per second by default).
pub const MAX_WRITES_LIMIT: usize = 10_000;
const MAX_PATTERNS: usize = 100;
const RECONCILE_FIELDS: &[&str] = &["repositories", "max_writes", "continuation", "registry_id", "dry_run"];
const TOKEN_PREFIX: &str = "resume-at:";

#[derive(Debug, Clone)]
pub enum Invocation {
    /// One EventBridge event or direct request.
    Event(Value),
    /// SQS messages (`Records`), each body one event.
    Batch(Vec<Message>),
    Reconcile(ReconcileRequest),
}

/// One SQS message: its id (what `batchItemFailures` names) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub body: String,
}

/// `{"reconcile": {"repositories": ["app", "team/*"], "max_writes": 200}}`.
#[derive(Debug, Clone)]
pub struct ReconcileRequest {
    pub repositories: Vec<Glob>,
    pub max_writes: usize,
    /// From a previous answer's `continuation`: the repository to resume at.
    pub resume_at: Option<RepositoryName>,
    pub registry_id: Option<RegistryId>,
    pub dry_run: bool,
}

impl ReconcileRequest {
    /// Whether every pattern names one repository (no listing needed).
    pub fn literal_names(&self) -> Option<Vec<RepositoryName>> {
        self.repositories.iter().map(|g| RepositoryName::parse(g.source()).ok()).collect()
    }

    pub fn covers(&self, repository: &str) -> bool {
        self.repositories.iter().any(|g| g.matches(repository))
    }
}

/// The token an answer carries when a sweep stopped before `repository`'s end.
pub fn continuation_token(repository: &RepositoryName) -> String {
    format!("{TOKEN_PREFIX}{repository}")
}

pub fn classify(payload: Value) -> Result<Invocation, EventError> {
    let Some(object) = payload.as_object() else { return Ok(Invocation::Event(payload)) };
    if let Some(records) = object.get("Records") {
        return batch(records).map(Invocation::Batch);
    }
    if let Some(request) = object.get("reconcile") {
        if let Some(other) = object.keys().find(|k| *k != "reconcile") {
            return Err(field_error(&other.escape_debug().to_string(), "unknown field next to `reconcile`"));
        }
        return reconcile(request).map(Invocation::Reconcile);
    }
    Ok(Invocation::Event(payload))
}

fn batch(records: &Value) -> Result<Vec<Message>, EventError> {
    let records = records
        .as_array()
        .ok_or_else(|| field_error("Records", format!("expected an array, got {}", json_kind(records))))?;
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let path = |key: &str| format!("Records[{i}].{key}");
            let string = |key: &str| match record.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                None | Some(Value::Null) => Err(field_error(&path(key), "required")),
                Some(other) => Err(field_error(&path(key), format!("expected a string, got {}", json_kind(other)))),
            };
            let source = string("eventSource")?;
            if source != "aws:sqs" {
                return Err(field_error(&path("eventSource"), format!("expected \"aws:sqs\", got {source:?}")));
            }
            Ok(Message { id: string("messageId")?, body: string("body")? })
        })
        .collect()
}

fn reconcile(request: &Value) -> Result<ReconcileRequest, EventError> {
    let object: &Map<String, Value> = request
        .as_object()
        .ok_or_else(|| field_error("reconcile", format!("expected an object, got {}", json_kind(request))))?;
    if let Some(unknown) = object.keys().find(|k| !RECONCILE_FIELDS.contains(&k.as_str())) {
        return Err(field_error(
            &format!("reconcile.{}", unknown.escape_debug()),
            format!("unknown field; a reconcile request has {}", RECONCILE_FIELDS.join(", ")),
        ));
    }
    let patterns = match object.get("repositories") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_PATTERNS => items,
        Some(Value::Array(items)) => {
            return Err(field_error(
                "reconcile.repositories",
                format!("expected 1 to {MAX_PATTERNS} repository names or globs, got {}", items.len()),
            ))
        }
        None | Some(Value::Null) => {
            return Err(field_error("reconcile.repositories", "required: repository names or globs, such as [\"app\", \"team/*\"]"))
        }
        Some(other) => {
            return Err(field_error("reconcile.repositories", format!("expected an array, got {}", json_kind(other))))
        }
    };
    let repositories = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = format!("reconcile.repositories[{i}]");
            let text = p.as_str().ok_or_else(|| field_error(&path, format!("expected a string, got {}", json_kind(p))))?;
            Glob::parse(text).map_err(|e| field_error(&path, format!("the glob {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let max_writes = match object.get("max_writes") {
        None | Some(Value::Null) => DEFAULT_MAX_WRITES,
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_WRITES_LIMIT).contains(n))
            .ok_or_else(|| field_error("reconcile.max_writes", format!("expected a whole number from 1 to {MAX_WRITES_LIMIT}, got {v}")))?,
    };
    let registry_id = opt_typed_str(object, "registry_id", "reconcile.registry_id")?
        .map(|r| RegistryId::parse(r).map_err(|e| field_error("reconcile.registry_id", e.to_string())))
        .transpose()?;
    let dry_run = opt_bool(object, "dry_run", "reconcile.dry_run")?;
    let mut parsed = ReconcileRequest { repositories, max_writes, resume_at: None, registry_id, dry_run };
    if let Some(token) = opt_typed_str(object, "continuation", "reconcile.continuation")? {
        let bad = |why: &str| field_error("reconcile.continuation", format!("{why}; pass the `continuation` of the previous answer unchanged"));
        let name = token.strip_prefix(TOKEN_PREFIX).ok_or_else(|| bad("not a continuation token"))?;
        let name = RepositoryName::parse(name).map_err(|_| bad("not a continuation token"))?;
        if !parsed.covers(name.as_str()) {
            return Err(bad("the token belongs to a sweep of other repositories"));
        }
        parsed.resume_at = Some(name);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> Result<ReconcileRequest, EventError> {
        match classify(json!({ "reconcile": body }))? {
            Invocation::Reconcile(r) => Ok(r),
            other => panic!("not a reconcile request: {other:?}"),
        }
    }

    fn problem(body: Value) -> (String, String) {
        match request(body) {
            Err(EventError::Field { field, problem }) => (field, problem),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_reconcile_request_names_repositories_and_a_write_budget() {
        let r = request(json!({"repositories": ["app", "team/*"], "max_writes": 50})).unwrap();
        assert!(r.covers("app") && r.covers("team/api") && !r.covers("team/api/x") && !r.covers("other"));
        assert_eq!((r.max_writes, r.dry_run, r.resume_at.is_none()), (50, false, true));
        assert_eq!(r.literal_names(), None, "a glob needs the repository listing");
        let r = request(json!({"repositories": ["app", "team/api"], "dry_run": true})).unwrap();
        assert_eq!(r.max_writes, DEFAULT_MAX_WRITES);
        assert!(r.dry_run);
        assert_eq!(r.literal_names().unwrap().iter().map(|n| n.as_str()).collect::<Vec<_>>(), ["app", "team/api"]);
    }

    #[test]
    fn a_continuation_token_resumes_within_the_same_repositories_only() {
        let token = continuation_token(&RepositoryName::parse("team/web").unwrap());
        let r = request(json!({"repositories": ["team/*"], "continuation": token})).unwrap();
        assert_eq!(r.resume_at.unwrap().as_str(), "team/web");
        assert_eq!(problem(json!({"repositories": ["app"], "continuation": token})).1,
            "the token belongs to a sweep of other repositories; pass the `continuation` of the previous answer unchanged");
        assert_eq!(problem(json!({"repositories": ["app"], "continuation": "app"})).0, "reconcile.continuation");
    }

    #[test]
    fn a_malformed_reconcile_request_names_the_field() {
        let cases = [
            (json!({}), "reconcile.repositories"),
            (json!({"repositories": []}), "reconcile.repositories"),
            (json!({"repositories": "app"}), "reconcile.repositories"),
            (json!({"repositories": ["App"]}), "reconcile.repositories[0]"),
            (json!({"repositories": ["app", 3]}), "reconcile.repositories[1]"),
            (json!({"repositories": ["app"], "max_writes": 0}), "reconcile.max_writes"),
            (json!({"repositories": ["app"], "max_writes": 10001}), "reconcile.max_writes"),
            (json!({"repositories": ["app"], "max_writes": "5"}), "reconcile.max_writes"),
            (json!({"repositories": ["app"], "dry_run": "yes"}), "reconcile.dry_run"),
            (json!({"repositories": ["app"], "registry_id": "12"}), "reconcile.registry_id"),
            (json!({"repositories": ["app"], "dryrun": true}), "reconcile.dryrun"),
        ];
        for (body, field) in cases {
            assert_eq!(problem(body.clone()).0, field, "{body}");
        }
        assert!(matches!(classify(json!({"reconcile": {"repositories": ["a"]}, "tag": "v1"})), Err(EventError::Field { .. })));
    }

    #[test]
    fn the_samples_in_events_are_what_they_say() {
        for sample in [include_str!("../events/reconcile.json"), include_str!("../events/reconcile-dry-run.json")] {
            let value: Value = serde_json::from_str(sample).unwrap();
            assert!(matches!(classify(value), Ok(Invocation::Reconcile(_))), "{sample}");
        }
        let batch: Value = serde_json::from_str(include_str!("../events/sqs-batch.json")).unwrap();
        let Ok(Invocation::Batch(messages)) = classify(batch) else { panic!("a batch") };
        assert_eq!(messages.len(), 3);
    }

    #[test]
    fn sqs_records_become_messages_and_anything_else_is_one_event() {
        let batch = json!({"Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": "{}", "receiptHandle": "r"},
            {"messageId": "m2", "eventSource": "aws:sqs", "body": "x"}]});
        match classify(batch).unwrap() {
            Invocation::Batch(m) => assert_eq!(m, [Message { id: "m1".into(), body: "{}".into() }, Message { id: "m2".into(), body: "x".into() }]),
            other => panic!("{other:?}"),
        }
        let sns = json!({"Records": [{"EventSource": "aws:sns", "messageId": "m"}]});
        assert!(matches!(classify(sns), Err(EventError::Field { field, .. }) if field == "Records[0].eventSource"));
        assert!(matches!(classify(json!({"repository": "app", "tag": "v1"})).unwrap(), Invocation::Event(_)));
        assert!(matches!(classify(json!([1])).unwrap(), Invocation::Event(_)), "the event parser says what is wrong");
    }
}
