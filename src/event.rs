//! Event in: turns the invocation payload into a [`Request`].
//!
//! Two shapes are accepted: an EventBridge event from `aws.ecr`, and a direct
//! request for manual use. Anything else is an [`EventError`] naming the field
//! and what was expected. Parsing is pure: the clock is passed in.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::names::{Digest, InvalidName, RegistryId, RepositoryName, Tag};
use crate::domain::scan::Findings;

/// What the payload asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A tagged image was pushed (or a person asks to treat it as pushed).
    Retag(Push),
    /// A basic scan of a tagged image completed: scan-gated rules may promote it.
    Scanned(ScanResult),
    /// A well-formed event that this function has nothing to do for.
    Ignore(Ignored),
}

impl Request {
    /// When the image was pushed or scanned (for the event-to-done latency).
    pub fn time(&self) -> Option<DateTime<Utc>> {
        match self {
            Request::Retag(push) => Some(push.pushed_at),
            Request::Scanned(scan) => Some(scan.scanned_at),
            Request::Ignore(_) => None,
        }
    }

    /// The repository the request writes to, as one key (registry, region, name):
    /// a batch handles one repository's requests in order.
    pub fn repository_key(&self) -> String {
        let (registry, region, name) = match self {
            Request::Retag(p) => (&p.registry_id, &p.region, p.repository.as_str()),
            Request::Scanned(s) => (&s.registry_id, &s.region, s.repository.as_str()),
            Request::Ignore(_) => return String::new(),
        };
        let registry = registry.as_ref().map(ToString::to_string).unwrap_or_default();
        format!("{registry}/{}/{name}", region.as_deref().unwrap_or_default())
    }
}

/// A pushed image to derive tags for.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The account that owns the registry; `None` means the caller's own.
    pub registry_id: Option<RegistryId>,
    /// The region of the registry; `None` means the function's own.
    pub region: Option<String>,
    pub repository: RepositoryName,
    pub tag: Tag,
    /// `None` only for a direct request without a digest: the tag's current digest is used.
    pub digest: Option<Digest>,
    pub pushed_at: DateTime<Utc>,
    /// `manifest-media-type` from the event, used if ECR's answer lacks one.
    pub media_type: Option<String>,
    pub dry_run: bool,
}

/// A completed basic scan (`"detail-type": "ECR Image Scan"`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScanResult {
    pub registry_id: Option<RegistryId>,
    pub region: Option<String>,
    pub repository: RepositoryName,
    pub digest: Digest,
    /// The image's tags when it was scanned; each is treated as just pushed.
    pub tags: Vec<Tag>,
    pub scanned_at: DateTime<Utc>,
    pub findings: Findings,
}

/// Why an event needs no action, with what it was about where known.
#[derive(Debug, Clone, PartialEq)]
pub struct Ignored {
    pub reason: String,
    pub repository: Option<String>,
    pub digest: Option<String>,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
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

pub(crate) fn field_error(field: &str, problem: impl Into<String>) -> EventError {
    EventError::Field { field: field.to_owned(), problem: problem.into() }
}

fn name_error(field: &str) -> impl FnOnce(InvalidName) -> EventError + '_ {
    move |e| field_error(field, e.to_string())
}

/// Parses the raw invocation payload as JSON, refusing duplicate keys: an event
/// with two `image-tag`s is ambiguous, and silently keeping the last one could
/// retag the wrong thing.
pub fn parse_json(text: &str) -> Result<Value, EventError> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = strict::StrictValue
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| EventError::Json(e.to_string()))?;
    Ok(value)
}

mod strict {
    //! A `serde_json::Value` deserializer that refuses duplicate object keys.
    use serde::de::{DeserializeSeed, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};
    use std::fmt;

    pub struct StrictValue;

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
}

const IMAGE_ACTION: &str = "ECR Image Action";
const IMAGE_SCAN: &str = "ECR Image Scan";
const DIRECT_FIELDS: &[&str] = &["repository", "tag", "digest", "registry_id", "dry_run"];

/// Parses an invocation payload. `now` is the push time of a direct request.
pub fn parse(payload: &Value, now: DateTime<Utc>) -> Result<Request, EventError> {
    let object = payload.as_object().ok_or_else(|| EventError::NotAnObject(json_kind(payload)))?;
    if ["detail-type", "source", "detail"].iter().any(|k| object.contains_key(*k)) {
        parse_eventbridge(payload)
    } else if DIRECT_FIELDS.iter().any(|k| object.contains_key(*k)) {
        parse_direct(object, now)
    } else {
        Err(EventError::UnknownShape)
    }
}

fn parse_eventbridge(payload: &Value) -> Result<Request, EventError> {
    let event: EventBridgeEvent<Value> = serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string().escape_debug().to_string();
        field_error(if path == "." { "(event)" } else { &path }, e.into_inner().to_string())
    })?;
    if event.source != "aws.ecr" {
        return Err(field_error("source", format!("expected \"aws.ecr\", got {:?}", event.source)));
    }
    let detail = event
        .detail
        .as_object()
        .ok_or_else(|| field_error("detail", format!("expected an object, got {}", json_kind(&event.detail))))?;
    // Only well-formed names are echoed back, so nothing unescaped reaches a log line.
    let about = |reason: String| Ignored {
        reason,
        repository: opt_str(detail, "repository-name").and_then(|s| RepositoryName::parse(s).ok()).map(|n| n.to_string()),
        digest: opt_str(detail, "image-digest").and_then(|s| Digest::parse(s).ok()).map(|d| d.to_string()),
        tag: opt_str(detail, "image-tag").and_then(|s| Tag::parse(s).ok()).map(|t| t.to_string()),
    };
    if event.detail_type == IMAGE_SCAN {
        return parse_scan(&event, detail, about);
    }
    if event.detail_type != IMAGE_ACTION {
        return Ok(Request::Ignore(about(format!(
            "{:?} events are not handled; only \"{IMAGE_ACTION}\" pushes and \"{IMAGE_SCAN}\" results are",
            event.detail_type
        ))));
    }

    let action = req_str(detail, "action-type", "detail.action-type")?;
    let result = req_str(detail, "result", "detail.result")?;
    if action != "PUSH" {
        return Ok(Request::Ignore(about(format!("action-type {action:?} is not a push"))));
    }
    if result != "SUCCESS" {
        return Ok(Request::Ignore(about(format!("push result {result:?} is not SUCCESS"))));
    }
    let repository = RepositoryName::parse(req_str(detail, "repository-name", "detail.repository-name")?)
        .map_err(name_error("detail.repository-name"))?;
    let digest = Digest::parse(req_str(detail, "image-digest", "detail.image-digest")?)
        .map_err(name_error("detail.image-digest"))?;
    let tag = match detail.get("image-tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(Tag::parse(s).map_err(name_error("detail.image-tag"))?),
        Some(other) => {
            return Err(field_error("detail.image-tag", format!("expected a string, got {}", json_kind(other))))
        }
    };
    let media_type = match detail.get("manifest-media-type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(field_error(
                "detail.manifest-media-type",
                format!("expected a string, got {}", json_kind(other)),
            ))
        }
    };
    let Some(tag) = tag else {
        return Ok(Request::Ignore(about(
            "untagged push (a per-platform child of a multi-arch image, or a push by digest)".to_owned(),
        )));
    };
    let account = event.account.ok_or_else(|| field_error("account", "required: the registry's account id"))?;
    let registry_id = RegistryId::parse(&account).map_err(name_error("account"))?;
    let pushed_at = event.time.ok_or_else(|| field_error("time", "required: the push time (RFC 3339)"))?;

    Ok(Request::Retag(Push {
        registry_id: Some(registry_id),
        region: event.region.filter(|r| !r.is_empty()),
        repository,
        tag,
        digest: Some(digest),
        pushed_at,
        media_type,
        dry_run: false,
    }))
}

fn parse_scan(
    event: &EventBridgeEvent<Value>,
    detail: &Map<String, Value>,
    about: impl Fn(String) -> Ignored,
) -> Result<Request, EventError> {
    let status = req_str(detail, "scan-status", "detail.scan-status")?;
    if status != "COMPLETE" {
        return Ok(Request::Ignore(about(format!("scan-status {status:?} is not COMPLETE; scan-gated tags stay deferred"))));
    }
    let repository = RepositoryName::parse(req_str(detail, "repository-name", "detail.repository-name")?)
        .map_err(name_error("detail.repository-name"))?;
    let digest = Digest::parse(req_str(detail, "image-digest", "detail.image-digest")?)
        .map_err(name_error("detail.image-digest"))?;
    let tags = match detail.get("image-tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("detail.image-tags[{i}]");
                match item {
                    Value::String(s) => Tag::parse(s).map_err(|e| field_error(&path, e.to_string())),
                    other => Err(field_error(&path, format!("expected a string, got {}", json_kind(other)))),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(field_error("detail.image-tags", format!("expected an array, got {}", json_kind(other))))
        }
    };
    if tags.is_empty() {
        return Ok(Request::Ignore(about("the scanned image has no tag: no rule can apply".to_owned())));
    }
    let mut findings = Findings::default();
    match detail.get("finding-severity-counts") {
        // No findings: ECR leaves the counts out or empty.
        None | Some(Value::Null) => {}
        Some(Value::Object(counts)) => {
            for (severity, count) in counts {
                let n = count.as_u64().ok_or_else(|| {
                    field_error(
                        &format!("detail.finding-severity-counts.{}", severity.escape_debug()),
                        format!("expected a count (a whole number), got {}", json_kind(count)),
                    )
                })?;
                findings.counts.insert(severity.clone(), n);
            }
        }
        Some(other) => {
            return Err(field_error(
                "detail.finding-severity-counts",
                format!("expected an object, got {}", json_kind(other)),
            ))
        }
    }
    let account = event.account.as_deref().ok_or_else(|| field_error("account", "required: the registry's account id"))?;
    let registry_id = RegistryId::parse(account).map_err(name_error("account"))?;
    let scanned_at = event.time.ok_or_else(|| field_error("time", "required: the scan time (RFC 3339)"))?;
    Ok(Request::Scanned(ScanResult {
        registry_id: Some(registry_id),
        region: event.region.clone().filter(|r| !r.is_empty()),
        repository,
        digest,
        tags,
        scanned_at,
        findings,
    }))
}

fn parse_direct(object: &Map<String, Value>, now: DateTime<Utc>) -> Result<Request, EventError> {
    if let Some(unknown) = object.keys().find(|k| !DIRECT_FIELDS.contains(&k.as_str())) {
        // A typo such as "dryrun" must not silently turn into a real run.
        return Err(field_error(&unknown.escape_debug().to_string(), format!("unknown field; a direct request has {}", DIRECT_FIELDS.join(", "))));
    }
    let repository =
        RepositoryName::parse(req_str(object, "repository", "repository")?).map_err(name_error("repository"))?;
    let tag = Tag::parse(req_str(object, "tag", "tag")?).map_err(name_error("tag"))?;
    let digest = opt_typed_str(object, "digest", "digest")?
        .map(|d| Digest::parse(d).map_err(name_error("digest")))
        .transpose()?;
    let registry_id = opt_typed_str(object, "registry_id", "registry_id")?
        .map(|r| RegistryId::parse(r).map_err(name_error("registry_id")))
        .transpose()?;
    let dry_run = opt_bool(object, "dry_run", "dry_run")?;
    Ok(Request::Retag(Push {
        registry_id,
        region: None,
        repository,
        tag,
        digest,
        pushed_at: now,
        media_type: None,
        dry_run,
    }))
}

fn req_str<'a>(object: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, EventError> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(field_error(path, "required")),
        Some(other) => Err(field_error(path, format!("expected a string, got {}", json_kind(other)))),
    }
}

/// An optional string field; `path` names it in the error.
pub(crate) fn opt_typed_str<'a>(object: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>, EventError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(field_error(path, format!("expected a string, got {}", json_kind(other)))),
    }
}

/// An optional boolean field, `false` when absent; `path` names it in the error.
pub(crate) fn opt_bool(object: &Map<String, Value>, key: &str, path: &str) -> Result<bool, EventError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(field_error(path, format!("expected true or false, got {}", json_kind(other)))),
    }
}

fn opt_str<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "sha256:16eb06ced985216bb14744c43dad833c58f56296d152e580542d0e8630f63316";

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    fn push_event() -> Value {
        json!({
            "version": "0", "id": "3f0c2b1e-8d5a-4c47-9e61-2a7b9c1d0e55",
            "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-24T10:15:02Z", "region": "eu-west-1",
            "resources": [],
            "detail": {
                "result": "SUCCESS", "repository-name": "team/api", "image-digest": DIGEST,
                "action-type": "PUSH", "image-tag": "v1.4.2",
                "manifest-media-type": "application/vnd.docker.distribution.manifest.v2+json",
                "artifact-media-type": "application/vnd.docker.container.image.v1+json"
            }
        })
    }

    fn with_detail(key: &str, value: Value) -> Value {
        let mut e = push_event();
        e["detail"][key] = value;
        e
    }

    fn ignored_reason(payload: &Value) -> String {
        match parse(payload, now()) {
            Ok(Request::Ignore(i)) => i.reason,
            other => panic!("expected ignored, got {other:?}"),
        }
    }

    fn field_of(payload: &Value) -> String {
        match parse(payload, now()) {
            Err(EventError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_tagged_push_becomes_a_retag_request_with_account_region_and_time() {
        let Request::Retag(push) = parse(&push_event(), now()).unwrap() else { panic!("not a retag") };
        assert_eq!(push.repository.as_str(), "team/api");
        assert_eq!(push.tag.as_str(), "v1.4.2");
        assert_eq!(push.digest.unwrap().as_str(), DIGEST);
        assert_eq!(push.registry_id.unwrap().as_str(), "123456789012");
        assert_eq!(push.region.as_deref(), Some("eu-west-1"));
        assert_eq!(push.pushed_at.to_rfc3339(), "2026-11-24T10:15:02+00:00");
        assert_eq!(push.media_type.as_deref(), Some("application/vnd.docker.distribution.manifest.v2+json"));
        assert!(!push.dry_run);
    }

    #[test]
    fn media_type_fields_are_optional() {
        let mut e = push_event();
        let detail = e["detail"].as_object_mut().unwrap();
        detail.remove("manifest-media-type");
        detail.remove("artifact-media-type");
        let Request::Retag(push) = parse(&e, now()).unwrap() else { panic!("not a retag") };
        assert_eq!(push.media_type, None);
    }

    #[test]
    fn non_push_actions_failures_and_untagged_children_are_ignored() {
        assert!(ignored_reason(&with_detail("action-type", json!("DELETE"))).contains("DELETE"));
        assert!(ignored_reason(&with_detail("action-type", json!("UPDATE_STORAGE_CLASS"))).contains("not a push"));
        assert!(ignored_reason(&with_detail("result", json!("FAILED"))).contains("FAILED"));
        assert!(ignored_reason(&with_detail("image-tag", json!(""))).contains("untagged"));
        let mut child = push_event();
        child["detail"].as_object_mut().unwrap().remove("image-tag");
        assert!(ignored_reason(&child).contains("untagged"));
    }

    #[test]
    fn other_ecr_event_kinds_are_ignored_not_errors() {
        for kind in ["ECR Replication Action", "ECR Pull Through Cache Action", "ECR Referrer Action"] {
            let mut e = push_event();
            e["detail-type"] = json!(kind);
            assert!(ignored_reason(&e).contains(kind), "{kind}");
        }
    }

    fn scan_event() -> Value {
        json!({
            "version": "0", "id": "3f0c2b1e-8d5a-4c47-9e61-2a7b9c1d0e55",
            "detail-type": "ECR Image Scan", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-24T10:15:02Z", "region": "eu-west-1",
            "resources": ["arn:aws:ecr:eu-west-1:123456789012:repository/team/api"],
            "detail": {
                "scan-status": "COMPLETE", "repository-name": "team/api",
                "finding-severity-counts": {"HIGH": 1, "MEDIUM": 4, "LOW": 7},
                "image-digest": DIGEST, "image-tags": ["v1.4.2", "latest"]
            }
        })
    }

    #[test]
    fn a_completed_scan_carries_the_images_tags_and_findings() {
        let Request::Scanned(scan) = parse(&scan_event(), now()).unwrap() else { panic!("not a scan") };
        assert_eq!(scan.repository.as_str(), "team/api");
        assert_eq!(scan.digest.as_str(), DIGEST);
        assert_eq!(scan.tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["v1.4.2", "latest"]);
        assert_eq!(scan.findings.summary(), "HIGH 1, MEDIUM 4, LOW 7");
        assert_eq!(scan.scanned_at, "2026-11-24T10:15:02Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(scan.registry_id.map(|r| r.to_string()).as_deref(), Some("123456789012"));

        let mut clean = scan_event();
        clean["detail"].as_object_mut().unwrap().remove("finding-severity-counts");
        let Request::Scanned(scan) = parse(&clean, now()).unwrap() else { panic!("not a scan") };
        assert!(scan.findings.counts.is_empty(), "no counts: a clean scan");
    }

    #[test]
    fn scans_that_did_not_complete_or_have_no_tag_are_ignored_and_bad_ones_named() {
        let mut failed = scan_event();
        failed["detail"]["scan-status"] = json!("FAILED");
        assert!(ignored_reason(&failed).contains("not COMPLETE"));
        for tags in [json!([]), Value::Null] {
            let mut untagged = scan_event();
            untagged["detail"]["image-tags"] = tags;
            assert!(ignored_reason(&untagged).contains("no tag"));
        }
        let field = |key: &str, value: Value| {
            let mut e = scan_event();
            e["detail"][key] = value;
            match parse(&e, now()) {
                Err(EventError::Field { field, .. }) => field,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(field("image-tags", json!(["ok", "bad tag"])), "detail.image-tags[1]");
        assert_eq!(field("image-tags", json!("v1")), "detail.image-tags");
        assert_eq!(field("finding-severity-counts", json!({"HIGH": -1})), "detail.finding-severity-counts.HIGH");
        assert_eq!(field("finding-severity-counts", json!([1])), "detail.finding-severity-counts");
        assert_eq!(field("scan-status", json!(1)), "detail.scan-status");
    }

    #[test]
    fn ignored_events_carry_what_they_were_about() {
        let Request::Ignore(i) = parse(&with_detail("action-type", json!("DELETE")), now()).unwrap() else {
            panic!()
        };
        assert_eq!(i.repository.as_deref(), Some("team/api"));
        assert_eq!(i.tag.as_deref(), Some("v1.4.2"));
        assert_eq!(i.digest.as_deref(), Some(DIGEST));
    }

    #[test]
    fn malformed_events_name_the_field() {
        assert_eq!(field_of(&with_detail("image-digest", json!("sha256:abc"))), "detail.image-digest");
        assert_eq!(field_of(&with_detail("image-digest", json!(5))), "detail.image-digest");
        assert_eq!(field_of(&with_detail("repository-name", json!("App"))), "detail.repository-name");
        assert_eq!(field_of(&with_detail("image-tag", json!("bad tag"))), "detail.image-tag");
        assert_eq!(field_of(&with_detail("image-tag", json!(["v1"]))), "detail.image-tag");
        assert_eq!(field_of(&with_detail("action-type", Value::Null)), "detail.action-type");
        let mut e = push_event();
        e["time"] = json!("yesterday");
        assert_eq!(field_of(&e), "time");
        let mut e = push_event();
        e["account"] = json!("12");
        assert_eq!(field_of(&e), "account");
        let mut e = push_event();
        e.as_object_mut().unwrap().remove("account");
        assert_eq!(field_of(&e), "account");
        let mut e = push_event();
        e["source"] = json!("aws.s3");
        assert_eq!(field_of(&e), "source");
        let mut e = push_event();
        e["detail"] = json!("x");
        assert_eq!(field_of(&e), "detail");
        let mut e = push_event();
        e.as_object_mut().unwrap().remove("detail-type");
        assert_eq!(field_of(&e), "(event)");
    }

    #[test]
    fn non_objects_and_unknown_shapes_are_errors() {
        assert_eq!(parse(&json!([1]), now()), Err(EventError::NotAnObject("an array")));
        assert_eq!(parse(&json!("push"), now()), Err(EventError::NotAnObject("a string")));
        assert_eq!(parse(&json!({"hello": 1}), now()), Err(EventError::UnknownShape));
    }

    #[test]
    fn a_direct_request_uses_the_invocation_time() {
        let req = json!({"repository": "app", "tag": "v1.4.2", "digest": DIGEST, "registry_id": "123456789012", "dry_run": true});
        let Request::Retag(push) = parse(&req, now()).unwrap() else { panic!() };
        assert_eq!(push.pushed_at, now());
        assert_eq!(push.digest.unwrap().as_str(), DIGEST);
        assert!(push.dry_run);
        assert_eq!(push.region, None);

        let Request::Retag(push) = parse(&json!({"repository": "app", "tag": "v1"}), now()).unwrap() else { panic!() };
        assert_eq!(push.digest, None, "without a digest the tag's current one is used");
        assert_eq!(push.registry_id, None);
        assert!(!push.dry_run);
    }

    #[test]
    fn direct_requests_reject_typos_and_bad_values() {
        assert_eq!(field_of(&json!({"repository": "app", "tag": "v1", "dryrun": true})), "dryrun");
        assert_eq!(field_of(&json!({"repository": "app"})), "tag");
        assert_eq!(field_of(&json!({"tag": "v1"})), "repository");
        assert_eq!(field_of(&json!({"repository": "app", "tag": "v1", "dry_run": "yes"})), "dry_run");
        assert_eq!(field_of(&json!({"repository": "app", "tag": "v1", "digest": "latest"})), "digest");
        assert_eq!(field_of(&json!({"repository": "app", "tag": "v1", "registry_id": 123})), "registry_id");
    }

    #[test]
    fn raw_payloads_must_be_json_without_duplicate_keys() {
        assert_eq!(parse_json(r#"{"a": [1, {"b": null}], "c": 1.5}"#).unwrap(), json!({"a": [1, {"b": null}], "c": 1.5}));
        let dup = parse_json(r#"{"detail": {"image-tag": "v1", "image-tag": "v2"}}"#).unwrap_err();
        assert!(dup.to_string().contains("duplicate key \"image-tag\""), "{dup}");
        assert!(matches!(parse_json("push"), Err(EventError::Json(_))));
        assert!(matches!(parse_json("{} {}"), Err(EventError::Json(_))), "trailing data");
        assert!(matches!(parse_json(""), Err(EventError::Json(_))));
    }

    #[test]
    fn error_messages_say_what_was_expected() {
        let msg = parse(&with_detail("image-digest", json!("sha256:abc")), now()).unwrap_err().to_string();
        assert_eq!(
            msg,
            "field `detail.image-digest`: expected \"sha256:\" followed by 64 lowercase hex digits, got \"sha256:abc\""
        );
    }
}
