//! EventBridge events from `aws.ecr`: an image push (`ECR Image Action`) or a
//! completed basic scan (`ECR Image Scan`). Other kinds, other actions and
//! untagged pushes are [`Request::Ignore`], not errors; an untagged push whose
//! event names a signature's type is [`Request::Signed`].

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;

use crate::domain::names::{Digest, RegistryId, Repository, RepositoryName, Tag};
use crate::domain::request::{Ignored, Push, Request, ScanResult, SignaturePush, Sources};
use crate::domain::signature::Untagged;
use crate::domain::scan::Findings;
use crate::input::fields::{expected, field_error, item_text, Fields};
use crate::input::InputError;

const IMAGE_ACTION: &str = "ECR Image Action";
const IMAGE_SCAN: &str = "ECR Image Scan";

/// Whether `object` is meant as an EventBridge event (then its errors are told as such).
pub(crate) fn looks_like(object: &Fields<'_>) -> bool {
    ["detail-type", "source", "detail"].iter().any(|k| object.has(k))
}

pub(crate) fn parse(payload: &Value) -> Result<Request, InputError> {
    // The envelope's fields, typed by the aws_lambda_events struct; its errors name the JSON path.
    let event: EventBridgeEvent<Value> = serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string().escape_debug().to_string();
        field_error(if path == "." { "(event)" } else { &path }, e.into_inner().to_string())
    })?;
    if event.source != "aws.ecr" && event.source != INSPECTOR {
        return Err(field_error("source", format!("expected \"aws.ecr\" or \"{INSPECTOR}\", got {:?}", event.source)));
    }
    let detail = Fields::object(&event.detail, "detail", "detail.")?;
    let event = Envelope { event: &event, detail };
    if event.event.source == INSPECTOR {
        return event.inspector();
    }
    match event.event.detail_type.as_str() {
        IMAGE_ACTION => event.push(),
        IMAGE_SCAN => event.scan(),
        other => Ok(event.ignore(format!(
            "{other:?} events are not handled; only \"{IMAGE_ACTION}\" pushes and \"{IMAGE_SCAN}\" results are"
        ))),
    }
}

/// Amazon Inspector, which sends enhanced scanning's results ([`crate::input::inspector`]).
const INSPECTOR: &str = "aws.inspector2";

pub(crate) struct Envelope<'a> {
    pub(crate) event: &'a EventBridgeEvent<Value>,
    pub(crate) detail: Fields<'a>,
}

impl Envelope<'_> {
    fn push(&self) -> Result<Request, InputError> {
        let detail = &self.detail;
        let action = detail.text("action-type")?;
        let result = detail.text("result")?;
        if action != "PUSH" {
            return Ok(self.ignore(format!("action-type {action:?} is not a push")));
        }
        if result != "SUCCESS" {
            return Ok(self.ignore(format!("push result {result:?} is not SUCCESS")));
        }
        let name = detail.name("repository-name", RepositoryName::parse)?;
        let digest = detail.name("image-digest", Digest::parse)?;
        // A multi-arch push's per-platform children come with no tag, or an empty one.
        let tag = detail.optional_name("image-tag", |s| (!s.is_empty()).then(|| Tag::parse(s)).transpose())?.flatten();
        let media_type = detail.optional_text("manifest-media-type")?.map(str::to_owned);
        let artifact_media_type = detail.optional_text("artifact-media-type")?.map(str::to_owned);
        let Some(tag) = tag else {
            // A promotion record's own push (ecr-retag's, or any in-toto attestation pushed as a referrer).
            if artifact_media_type.as_deref() == Some(crate::domain::record::ARTIFACT_TYPE) {
                return Ok(self.ignore("untagged push of an in-toto attestation (a promotion record's, or another's): no rule applies to it".to_owned()));
            }
            // Only what can be a signature costs a read; a multi-arch image's children stay free.
            let kind = match Untagged::of_event(artifact_media_type.as_deref()) {
                Untagged::Signature(kind) => Some(kind),
                Untagged::MaybeSignature => None,
                Untagged::NotASignature => {
                    return Ok(self.ignore("untagged push (a per-platform child of a multi-arch image, or a push by digest)".to_owned()))
                }
            };
            return Ok(Request::Signed(SignaturePush {
                repository: self.repository(name)?,
                digest: Some(digest),
                subject: None,
                kind,
                pushed_at: self.time("the push time")?,
                dry_run: false,
            }));
        };
        Ok(Request::Retag(Push {
            repository: self.repository(name)?,
            tag,
            digest: Some(digest),
            pushed_at: self.time("the push time")?,
            media_type,
            artifact_media_type,
            dry_run: false,
        }))
    }

    fn scan(&self) -> Result<Request, InputError> {
        let detail = &self.detail;
        let status = detail.text("scan-status")?;
        if status != "COMPLETE" {
            return Ok(self.ignore(format!("scan-status {status:?} is not COMPLETE; scan-gated tags stay deferred")));
        }
        let name = detail.name("repository-name", RepositoryName::parse)?;
        let digest = detail.name("image-digest", Digest::parse)?;
        let Some(tags) = self.image_tags()? else {
            return Ok(self.ignore("the scanned image has no tag: no rule can apply".to_owned()));
        };
        let findings = self.findings()?;
        Ok(Request::Scanned(ScanResult {
            repository: self.repository(name)?,
            digest,
            tags,
            scanned_at: self.time("the scan time")?,
            findings,
        }))
    }

    /// A scanned image's `image-tags`; `None` when it has none.
    pub(crate) fn image_tags(&self) -> Result<Option<Sources>, InputError> {
        let detail = &self.detail;
        let tags = match detail.optional_array("image-tags")? {
            Some(items) => detail.items("image-tags", items, |item, path| {
                Tag::parse(item_text(item, path)?).map_err(|e| field_error(path, e.to_string()))
            })?,
            None => Vec::new(),
        };
        Ok(Sources::new(tags))
    }

    /// `finding-severity-counts`; ECR leaves them out or empty when there are none.
    pub(crate) fn findings(&self) -> Result<Findings, InputError> {
        let mut findings = Findings::default();
        let Some(counts) = self.detail.get("finding-severity-counts") else { return Ok(findings) };
        let counts = Fields::object(counts, "detail.finding-severity-counts", "detail.finding-severity-counts.")?;
        for (severity, count) in counts.entries() {
            let n = count.as_u64().ok_or_else(|| expected(&counts.path(severity), "a count (a whole number)", count))?;
            findings.counts.insert(severity.clone(), n);
        }
        Ok(findings)
    }

    fn repository(&self, name: RepositoryName) -> Result<Repository, InputError> {
        let account = self.event.account.as_deref().ok_or_else(|| field_error("account", "required: the registry's account id"))?;
        let registry_id = RegistryId::parse(account).map_err(|e| field_error("account", e.to_string()))?;
        Ok(Repository { registry_id: Some(registry_id), region: self.event.region.clone().filter(|r| !r.is_empty()), name })
    }

    pub(crate) fn time(&self, what: &str) -> Result<chrono::DateTime<chrono::Utc>, InputError> {
        self.event.time.ok_or_else(|| field_error("time", format!("required: {what} (RFC 3339)")))
    }

    /// Only well-formed names are echoed back, so nothing unescaped reaches a log line.
    pub(crate) fn ignore(&self, reason: String) -> Request {
        let detail = &self.detail;
        Request::Ignore(Ignored {
            reason,
            repository: detail.lenient_text("repository-name").and_then(|s| RepositoryName::parse(s).ok()).map(|n| n.to_string()),
            digest: detail.lenient_text("image-digest").and_then(|s| Digest::parse(s).ok()).map(|d| d.to_string()),
            tag: detail.lenient_text("image-tag").and_then(|s| Tag::parse(s).ok()).map(|t| t.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::signature::Kind;
    use crate::domain::names::Tag;
    use crate::input::testing::{event_of, field_of, now, DIGEST};
    use chrono::{DateTime, Utc};
    use serde_json::json;

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
        match event_of(payload, now()) {
            Ok(Request::Ignore(i)) => i.reason,
            other => panic!("expected ignored, got {other:?}"),
        }
    }

    #[test]
    fn a_tagged_push_becomes_a_retag_request_with_account_region_and_time() {
        let Request::Retag(push) = event_of(&push_event(), now()).unwrap() else { panic!("not a retag") };
        assert_eq!(push.repository.name.as_str(), "team/api");
        assert_eq!(push.tag.as_str(), "v1.4.2");
        assert_eq!(push.digest.unwrap().as_str(), DIGEST);
        assert_eq!(push.repository.registry_id.unwrap().as_str(), "123456789012");
        assert_eq!(push.repository.region.as_deref(), Some("eu-west-1"));
        assert_eq!(push.pushed_at.to_rfc3339(), "2026-11-24T10:15:02+00:00");
        assert_eq!(push.media_type.as_deref(), Some("application/vnd.docker.distribution.manifest.v2+json"));
        assert!(!push.dry_run);
    }

    #[test]
    fn an_untagged_push_of_a_signature_type_is_a_signature_push_and_no_other_is() {
        let untagged = |artifact: &str| {
            let mut e = with_detail("artifact-media-type", json!(artifact));
            e["detail"].as_object_mut().unwrap().remove("image-tag");
            event_of(&e, now()).unwrap()
        };
        let Request::Signed(s) = untagged("application/vnd.cncf.notary.signature") else { panic!("a signature") };
        assert_eq!((s.kind, s.subject, s.digest.map(|d| d.to_string())), (Some(Kind::Notation), None, Some(DIGEST.to_owned())));
        let Request::Signed(s) = untagged("application/vnd.oci.empty.v1+json") else { panic!("maybe a signature") };
        assert_eq!(s.kind, None, "told by its manifest");
        assert!(matches!(untagged("application/vnd.oci.image.config.v1+json"), Request::Ignore(_)), "a multi-arch child");
        let mut tagged = with_detail("artifact-media-type", json!("application/vnd.cncf.notary.signature"));
        tagged["detail"]["image-tag"] = json!("sig");
        assert!(matches!(event_of(&tagged, now()).unwrap(), Request::Retag(_)), "a tagged push is a push");
    }

    #[test]
    fn media_type_fields_are_optional() {
        let mut e = push_event();
        let detail = e["detail"].as_object_mut().unwrap();
        detail.remove("manifest-media-type");
        detail.remove("artifact-media-type");
        let Request::Retag(push) = event_of(&e, now()).unwrap() else { panic!("not a retag") };
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
        let Request::Scanned(scan) = event_of(&scan_event(), now()).unwrap() else { panic!("not a scan") };
        assert_eq!(scan.repository.name.as_str(), "team/api");
        assert_eq!(scan.digest.as_str(), DIGEST);
        assert_eq!(scan.tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["v1.4.2", "latest"]);
        assert_eq!(scan.findings.summary(), "HIGH 1, MEDIUM 4, LOW 7");
        assert_eq!(scan.scanned_at, "2026-11-24T10:15:02Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(scan.repository.registry_id.map(|r| r.to_string()).as_deref(), Some("123456789012"));

        let mut clean = scan_event();
        clean["detail"].as_object_mut().unwrap().remove("finding-severity-counts");
        let Request::Scanned(scan) = event_of(&clean, now()).unwrap() else { panic!("not a scan") };
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
            match event_of(&e, now()) {
                Err(InputError::Field { field, .. }) => field,
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
        let Request::Ignore(i) = event_of(&with_detail("action-type", json!("DELETE")), now()).unwrap() else {
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
        let envelope: [(&str, Option<Value>, &str); 6] = [
            ("time", Some(json!("yesterday")), "time"),
            ("account", Some(json!("12")), "account"),
            ("account", None, "account"),
            ("source", Some(json!("aws.s3")), "source"),
            ("detail", Some(json!("x")), "detail"),
            ("detail-type", None, "(event)"),
        ];
        for (key, value, field) in envelope {
            let mut e = push_event();
            match value.clone() {
                Some(v) => e[key] = v,
                None => drop(e.as_object_mut().unwrap().remove(key)),
            }
            assert_eq!(field_of(&e), field, "{key}: {value:?}");
        }
    }

    #[test]
    fn error_messages_say_what_was_expected() {
        let msg = event_of(&with_detail("image-digest", json!("sha256:abc")), now()).unwrap_err().to_string();
        assert_eq!(
            msg,
            "field `detail.image-digest`: expected \"sha256:\" followed by 64 lowercase hex digits, got \"sha256:abc\""
        );
    }
}
