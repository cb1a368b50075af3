//! A sweep request: `{"reconcile": {"repositories": ["app", "team/*"], ...}}`, read; and
//! written ([`message`]) for the sweeps a fan-out sends to the queue.

use serde_json::{json, Value};

use crate::domain::names::{RegistryId, RepositoryName};
use crate::domain::request::{continuation_token, ReconcileRequest, DEFAULT_MAX_WRITES, MAX_WRITES_LIMIT};
use crate::domain::rules::glob::Glob;
use crate::input::fields::{field_error, item_text, Fields};
use crate::input::InputError;

const FIELDS: &[&str] = &["repositories", "max_writes", "continuation", "registry_id", "dry_run", "fan_out"];
const MAX_PATTERNS: usize = 100;

pub(crate) fn parse(request: &Value) -> Result<ReconcileRequest, InputError> {
    let object = Fields::object(request, "reconcile", "reconcile.")?;
    object.only(FIELDS, "a reconcile request")?;
    let patterns = match object.optional_array("repositories")? {
        Some(items) if !items.is_empty() && items.len() <= MAX_PATTERNS => items,
        Some(items) => {
            let problem = format!("expected 1 to {MAX_PATTERNS} repository names or globs, got {}", items.len());
            return Err(object.error("repositories", problem));
        }
        None => return Err(object.error("repositories", "required: repository names or globs, such as [\"app\", \"team/*\"]")),
    };
    let repositories = object.items("repositories", patterns, |item, path| {
        Glob::parse(item_text(item, path)?).map_err(|e| field_error(path, format!("the glob {e}")))
    })?;
    let max_writes = match object.get("max_writes") {
        None => DEFAULT_MAX_WRITES,
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_WRITES_LIMIT).contains(n))
            .ok_or_else(|| object.error("max_writes", format!("expected a whole number from 1 to {MAX_WRITES_LIMIT}, got {v}")))?,
    };
    let registry_id = object.optional_name("registry_id", RegistryId::parse)?;
    let dry_run = object.flag("dry_run")?;
    let fan_out = object.flag("fan_out")?;
    let mut parsed = ReconcileRequest { repositories, max_writes, resume_at: None, registry_id, dry_run, fan_out };
    if let Some(token) = object.optional_text("continuation")? {
        let bad = |why: &str| object.error("continuation", format!("{why}; pass the `continuation` of the previous answer unchanged"));
        parsed.resume_from(token).map_err(|why| bad(&why.to_string()))?;
    }
    Ok(parsed)
}

/// The request as a message body that [`parse`] reads back the same, resuming at `resume_at`.
pub fn message(request: &ReconcileRequest, resume_at: Option<&RepositoryName>) -> String {
    let patterns: Vec<&str> = request.repositories.iter().map(|g| g.source()).collect();
    let mut body = json!({"repositories": patterns, "max_writes": request.max_writes});
    if let Some(name) = resume_at {
        body["continuation"] = json!(continuation_token(name));
    }
    if let Some(id) = &request.registry_id {
        body["registry_id"] = json!(id.to_string());
    }
    if request.dry_run {
        body["dry_run"] = json!(true);
    }
    if request.fan_out {
        body["fan_out"] = json!(true);
    }
    json!({ "reconcile": body }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::names::RepositoryName;
    use crate::domain::request::continuation_token;
    use crate::input::{self, Invocation};
    use serde_json::json;

    fn request(body: Value) -> Result<ReconcileRequest, InputError> {
        match input::parse(&json!({ "reconcile": body }).to_string(), chrono::DateTime::UNIX_EPOCH)? {
            Invocation::Reconcile(r) => Ok(r),
            other => panic!("not a reconcile request: {other:?}"),
        }
    }

    fn problem(body: Value) -> (String, String) {
        match request(body) {
            Err(InputError::Field { field, problem }) => (field, problem),
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
    fn a_written_sweep_message_reads_back_as_the_same_sweep() {
        let fanned = request(json!({"repositories": ["team/*"], "max_writes": 40, "registry_id": "123456789012", "dry_run": true, "fan_out": true})).unwrap();
        let name = RepositoryName::parse("team/web").unwrap();
        let one = fanned.of_one(&name);
        assert!(!one.fan_out && one.covers("team/web") && !one.covers("team/api"), "one repository, swept where it is read");
        let text = message(&one, Some(&name));
        let back = match input::parse(&text, chrono::DateTime::UNIX_EPOCH).unwrap() {
            Invocation::Reconcile(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(message(&back, back.resume_at.as_ref()), text, "{text}");
        assert_eq!((back.max_writes, back.dry_run, back.fan_out, back.resume_at.unwrap()), (40, true, false, name));
        assert_eq!(back.registry_id.unwrap().to_string(), "123456789012");
        let plain = message(&request(json!({"repositories": ["app"]})).unwrap(), None);
        assert_eq!(plain, r#"{"reconcile":{"repositories":["app"],"max_writes":200}}"#);
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
            (json!({"repositories": ["app"], "fan_out": 1}), "reconcile.fan_out"),
        ];
        for (body, field) in cases {
            assert_eq!(problem(body.clone()).0, field, "{body}");
        }
    }
}
