//! The catalogue of bad and odd inputs: each has one exact expected outcome,
//! and none that is not actionable may cost an AWS call.

use ecr_retag::config::Config;
use ecr_retag::lambda::{Answer, Handler};

use ecr_retag::registry::memory::Memory;
use ecr_retag::report::Status;
use ecr_retag::domain::rules::{RuleSet, RulesError};
use serde_json::{json, Value};

const DIGEST: &str = "sha256:c1c735361890448e6985e2338a833ffda0c768242425d348604a4430517a3445";

fn event() -> Value {
    json!({
        "version": "0", "id": "3f0c2b1e-8d5a-4c47-9e61-2a7b9c1d0e55",
        "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "123456789012", "time": "2026-11-24T10:15:02Z", "region": "eu-west-1", "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "team/api", "image-digest": DIGEST,
                   "action-type": "PUSH", "image-tag": "v1.4.2"}
    })
}

/// A completed basic scan of the pushed image, with these finding counts.
fn scan(counts: Value) -> String {
    let mut e = event();
    e["detail-type"] = json!("ECR Image Scan");
    e["detail"] = json!({"scan-status": "COMPLETE", "repository-name": "team/api", "image-digest": DIGEST,
                         "image-tags": ["v1.4.2"], "finding-severity-counts": counts});
    e.to_string()
}

fn scan_with(key: &str, value: Value) -> String {
    let mut e: Value = serde_json::from_str(&scan(json!({}))).unwrap();
    e["detail"][key] = value;
    e.to_string()
}

fn with(path: &[&str], value: Value) -> String {
    let mut e = event();
    let mut node = &mut e;
    for key in &path[..path.len() - 1] {
        node = &mut node[*key];
    }
    node[path[path.len() - 1]] = value;
    e.to_string()
}

fn without(path: &[&str]) -> String {
    let mut e = event();
    let mut node = &mut e;
    for key in &path[..path.len() - 1] {
        node = &mut node[*key];
    }
    node.as_object_mut().unwrap().remove(path[path.len() - 1]);
    e.to_string()
}

/// An Amazon Inspector event of this kind with this detail.
fn inspector(detail_type: &str, detail: Value) -> String {
    let mut e = event();
    e["source"] = json!("aws.inspector2");
    e["detail-type"] = json!(detail_type);
    e["detail"] = detail;
    e.to_string()
}

/// An untagged push whose event names this `artifact-media-type`.
fn untagged(artifact_media_type: Value) -> String {
    let mut e = event();
    let detail = e["detail"].as_object_mut().unwrap();
    detail.remove("image-tag");
    detail.insert("artifact-media-type".into(), artifact_media_type);
    e.to_string()
}

fn kind(detail_type: &str) -> String {
    with(&["detail-type"], json!(detail_type))
}

enum Expect {
    /// An error of type Permanent.InvalidEvent whose message contains this.
    Error(&'static str),
    /// `ignored`, the reason containing this.
    Ignored(&'static str),
    /// Actionable: it gets as far as the registry.
    Reaches,
    /// An SQS batch answered with exactly these failed message ids.
    Failed(&'static [&'static str]),
}
use Expect::*;

fn catalogue() -> Vec<(&'static str, String, Expect)> {
    let huge = "a".repeat(2_000_000);
    vec![
        // Not JSON, not an object.
        ("empty payload", String::new(), Error("not valid JSON")),
        ("not JSON", "push v1.4.2".into(), Error("not valid JSON")),
        ("truncated JSON", event().to_string()[..40].to_owned(), Error("not valid JSON")),
        ("trailing garbage", format!("{} x", event()), Error("not valid JSON")),
        ("null", "null".into(), Error("expected a JSON object")),
        ("number", "42".into(), Error("expected a JSON object")),
        ("string", "\"ECR Image Action\"".into(), Error("expected a JSON object")),
        ("array of events", format!("[{}]", event()), Error("expected a JSON object")),
        ("empty object", "{}".into(), Error("unrecognised event")),
        ("unrelated object", r#"{"hello":"world"}"#.into(), Error("unrecognised event")),
        ("deeply nested", format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)), Error("not valid JSON")),
        // Duplicate keys are ambiguous.
        ("duplicate image-tag", event().to_string().replace(r#""image-tag":"v1.4.2""#, r#""image-tag":"v1.4.2","image-tag":"latest""#), Error("duplicate key \"image-tag\"")),
        ("duplicate top-level key", event().to_string().replacen('{', r#"{"source":"aws.s3","#, 1), Error("duplicate key \"source\"")),
        // Envelope fields.
        ("other source", with(&["source"], json!("aws.s3")), Error("field `source`: expected \"aws.ecr\"")),
        ("source not a string", with(&["source"], json!(7)), Error("field `source`")),
        ("no detail-type", without(&["detail-type"]), Error("missing field `detail-type`")),
        ("no detail", without(&["detail"]), Error("missing field `detail`")),
        ("detail is a string", with(&["detail"], json!("PUSH")), Error("field `detail`: expected an object")),
        ("no account", without(&["account"]), Error("field `account`: required")),
        ("account too short", with(&["account"], json!("12345")), Error("field `account`: expected a registry id of 12 digits")),
        ("account a number", with(&["account"], json!(123456789012u64)), Error("field `account`")),
        ("no time", without(&["time"]), Error("field `time`: required")),
        ("time not RFC 3339", with(&["time"], json!("24/11/2026")), Error("field `time`")),
        // Other ECR event kinds and non-push actions are ignored, not errors.
        ("scan without scan-status", kind("ECR Image Scan"), Error("field `detail.scan-status`: required")),
        ("scan, no gated rule", scan(json!({"HIGH": 1})), Ignored("no scan-gated rule matches")),
        ("scan not complete", scan_with("scan-status", json!("FAILED")), Ignored("scan-status \"FAILED\" is not COMPLETE")),
        ("scan of an untagged image", scan_with("image-tags", json!([])), Ignored("no tag")),
        ("scan, negative count", scan(json!({"HIGH": -1})), Error("field `detail.finding-severity-counts.HIGH`")),
        ("scan, fractional count", scan(json!({"HIGH": 1.5})), Error("expected a count")),
        ("scan, tags not a list", scan_with("image-tags", json!("v1.4.2")), Error("field `detail.image-tags`: expected an array")),
        ("replication", kind("ECR Replication Action"), Ignored("\"ECR Replication Action\" events are not handled")),
        ("inspector finding", inspector("Inspector2 Finding", json!({"scan-status": "INITIAL_SCAN_COMPLETE"})), Ignored("\"Inspector2 Finding\" events are not handled")),
        ("inspector scan naming the repository", inspector("Inspector2 Scan", json!({"scan-status": "INITIAL_SCAN_COMPLETE", "repository-name": "team/api"})), Error("field `detail.repository-name`: expected the repository's ARN")),
        ("pull through cache", kind("ECR Pull Through Cache Action"), Ignored("\"ECR Pull Through Cache Action\"")),
        ("referrer action", kind("ECR Referrer Action"), Ignored("\"ECR Referrer Action\"")),
        ("unknown future kind", kind("ECR Something New"), Ignored("\"ECR Something New\" events are not handled")),
        ("delete", with(&["detail", "action-type"], json!("DELETE")), Ignored("action-type \"DELETE\" is not a push")),
        ("archive", with(&["detail", "action-type"], json!("UPDATE_STORAGE_CLASS")), Ignored("is not a push")),
        ("failed push", with(&["detail", "result"], json!("FAILED")), Ignored("push result \"FAILED\" is not SUCCESS")),
        ("lowercase success", with(&["detail", "result"], json!("success")), Ignored("is not SUCCESS")),
        ("untagged child", without(&["detail", "image-tag"]), Ignored("untagged push")),
        ("empty tag", with(&["detail", "image-tag"], json!("")), Ignored("untagged push")),
        ("null tag", with(&["detail", "image-tag"], Value::Null), Ignored("untagged push")),
        // Untagged pushes that may be signatures cost nothing where no rule gates on signatures.
        ("untagged Notation signature", untagged(json!("application/vnd.cncf.notary.signature")), Ignored("no signature-gated rule covers this repository")),
        ("untagged Sigstore bundle", untagged(json!("application/vnd.dev.sigstore.bundle.v0.3+json")), Ignored("no signature-gated rule")),
        ("untagged OCI artifact", untagged(json!("application/vnd.oci.empty.v1+json")), Ignored("no signature-gated rule")),
        ("untagged image config type", untagged(json!("application/vnd.oci.image.config.v1+json")), Ignored("untagged push (a per-platform child")),
        ("untagged, artifact type a number", untagged(json!(5)), Error("field `detail.artifact-media-type`: expected a string")),
        // Detail fields.
        ("no action-type", without(&["detail", "action-type"]), Error("field `detail.action-type`: required")),
        ("action-type a list", with(&["detail", "action-type"], json!(["PUSH"])), Error("field `detail.action-type`: expected a string, got an array")),
        ("no result", without(&["detail", "result"]), Error("field `detail.result`: required")),
        ("no repository", without(&["detail", "repository-name"]), Error("field `detail.repository-name`: required")),
        ("uppercase repository", with(&["detail", "repository-name"], json!("Team/API")), Error("field `detail.repository-name`: expected an ECR repository name")),
        ("repository with //", with(&["detail", "repository-name"], json!("team//api")), Error("detail.repository-name")),
        ("repository one character", with(&["detail", "repository-name"], json!("a")), Error("detail.repository-name")),
        ("repository unicode", with(&["detail", "repository-name"], json!("äpp")), Error("detail.repository-name")),
        ("repository too long", with(&["detail", "repository-name"], json!("a".repeat(257))), Error("detail.repository-name")),
        ("no digest", without(&["detail", "image-digest"]), Error("field `detail.image-digest`: required")),
        ("digest without algorithm", with(&["detail", "image-digest"], json!(&DIGEST[7..])), Error("field `detail.image-digest`: expected \"sha256:\" followed by 64 lowercase hex digits")),
        ("digest sha512", with(&["detail", "image-digest"], json!(format!("sha512:{}", &DIGEST[7..]))), Error("detail.image-digest")),
        ("digest uppercase hex", with(&["detail", "image-digest"], json!(DIGEST.to_uppercase().replace("SHA256", "sha256"))), Error("detail.image-digest")),
        ("digest too short", with(&["detail", "image-digest"], json!(&DIGEST[..70])), Error("detail.image-digest")),
        ("digest a number", with(&["detail", "image-digest"], json!(5)), Error("field `detail.image-digest`: expected a string, got a number")),
        ("tag with a space", with(&["detail", "image-tag"], json!("v1 .4")), Error("field `detail.image-tag`: expected a tag")),
        ("tag with a colon", with(&["detail", "image-tag"], json!("app:v1")), Error("detail.image-tag")),
        ("tag starting with a dot", with(&["detail", "image-tag"], json!(".v1")), Error("detail.image-tag")),
        ("tag of 129 characters", with(&["detail", "image-tag"], json!("v".repeat(129))), Error("detail.image-tag")),
        ("tag unicode", with(&["detail", "image-tag"], json!("v1.0.0-β")), Error("detail.image-tag")),
        ("tag with NUL", with(&["detail", "image-tag"], json!("v1\u{0}")), Error("detail.image-tag")),
        ("tag an object", with(&["detail", "image-tag"], json!({"v": 1})), Error("field `detail.image-tag`: expected a string, got an object")),
        ("media type a number", with(&["detail", "manifest-media-type"], json!(1)), Error("field `detail.manifest-media-type`")),
        ("huge tag", with(&["detail", "image-tag"], json!(huge.clone())), Error("detail.image-tag")),
        ("huge unknown field", with(&["detail", "padding"], json!(huge.clone())), Reaches),
        // Direct requests.
        ("direct: neither tag nor digest", r#"{"repository":"app"}"#.into(), Error("field `tag`: required")),
        ("direct: digest but no tag", format!(r#"{{"repository":"app","digest":"{DIGEST}"}}"#), Error("field `tag`: required")),
        ("direct: both tag and digest", format!(r#"{{"repository":"app","tag":"v1.4.2","digest":"{DIGEST}"}}"#), Reaches),
        ("direct: tag only", r#"{"repository":"app","tag":"v1.4.2"}"#.into(), Reaches),
        ("direct: no repository", r#"{"tag":"v1.4.2"}"#.into(), Error("field `repository`: required")),
        ("direct: typo dryrun", r#"{"repository":"app","tag":"v1.4.2","dryrun":true}"#.into(), Error("field `dryrun`: unknown field")),
        ("direct: unknown field with newline", "{\"repository\":\"app\",\"tag\":\"v1\",\"x\\ny\":1}".into(), Error("field `x\\ny`: unknown field")),
        ("direct: dry_run a string", r#"{"repository":"app","tag":"v1.4.2","dry_run":"true"}"#.into(), Error("field `dry_run`: expected true or false")),
        ("direct: registry id short", r#"{"repository":"app","tag":"v1.4.2","registry_id":"1"}"#.into(), Error("field `registry_id`")),
        ("direct: tag a number", r#"{"repository":"app","tag":1}"#.into(), Error("field `tag`: expected a string, got a number")),
        ("direct: bad digest", r#"{"repository":"app","tag":"v1","digest":"latest"}"#.into(), Error("field `digest`")),
        ("direct: no rule matches", r#"{"repository":"app","tag":"latest"}"#.into(), Ignored("no rule matches")),
        // Reconcile requests.
        ("reconcile: not an object", r#"{"reconcile":1}"#.into(), Error("field `reconcile`: expected an object")),
        ("reconcile: no repositories", r#"{"reconcile":{}}"#.into(), Error("field `reconcile.repositories`: required")),
        ("reconcile: uppercase glob", r#"{"reconcile":{"repositories":["App"]}}"#.into(), Error("field `reconcile.repositories[0]`")),
        ("reconcile: no writes allowed", r#"{"reconcile":{"repositories":["app"],"max_writes":0}}"#.into(), Error("field `reconcile.max_writes`")),
        ("reconcile: another sweep's token", r#"{"reconcile":{"repositories":["app"],"continuation":"resume-at:other"}}"#.into(), Error("field `reconcile.continuation`")),
        ("reconcile: a field beside it", r#"{"reconcile":{"repositories":["app"]},"tag":"v1"}"#.into(), Error("unknown field next to `reconcile`")),
        ("reconcile: typo in a field", r#"{"reconcile":{"repositories":["app"],"maxwrites":5}}"#.into(), Error("field `reconcile.maxwrites`: unknown field")),
        ("reconcile: one repository", r#"{"reconcile":{"repositories":["app"]}}"#.into(), Reaches),
        ("reconcile: fan_out not a flag", r#"{"reconcile":{"repositories":["app"],"fan_out":"yes"}}"#.into(), Error("field `reconcile.fan_out`")),
        // SQS batches.
        ("sqs: Records not an array", r#"{"Records":{}}"#.into(), Error("field `Records`: expected an array")),
        ("sqs: records from SNS", r#"{"Records":[{"EventSource":"aws:sns","messageId":"m"}]}"#.into(), Error("field `Records[0].eventSource`: required")),
        ("sqs: a record without body", r#"{"Records":[{"eventSource":"aws:sqs","messageId":"m"}]}"#.into(), Error("field `Records[0].body`: required")),
        ("sqs: empty batch", r#"{"Records":[]}"#.into(), Failed(&[])),
        (
            "sqs: bodies that are no event, direct request or sweep",
            json!({"Records": [
                {"eventSource": "aws:sqs", "messageId": "m1", "body": "not json"},
                {"eventSource": "aws:sqs", "messageId": "m2", "body": "{}"},
                {"eventSource": "aws:sqs", "messageId": "m3", "body": "{\"reconcile\":{\"repositories\":[\"app\"],\"fan_out\":true}}"},
                {"eventSource": "aws:sqs", "messageId": "m4", "body": "{\"repository\":\"app\",\"tag\":\"latest\"}"}
            ]})
            .to_string(),
            // A queued sweep may not fan out (its messages would feed the queue for ever).
            Failed(&["m1", "m2", "m3"]),
        ),
    ]
}

#[tokio::test]
async fn a_fan_out_without_a_queue_fails_at_once_saying_how_to_deploy_one() {
    let rules = RuleSet::from_json(r#"{"rules":[{"name":"release","semver":true,"tags":["stable"]}]}"#).unwrap();
    let handler = Handler::new(Memory::with_repositories(&["app"]), Config::with_rules(rules));
    let answer = handler.invoke(r#"{"reconcile":{"repositories":["**"],"fan_out":true}}"#, std::time::SystemTime::UNIX_EPOCH).await;
    let e = answer.err().unwrap();
    assert_eq!(e.error_type(), "Permanent.NoQueue");
    assert!(e.to_string().contains("deploy with Delivery=queue"), "{e}");
    assert_eq!(handler.registry().calls().len(), 0, "not even the listing");
}

#[tokio::test]
async fn every_bad_or_odd_input_gets_its_exact_outcome_and_costs_nothing() {
    let rules = RuleSet::from_json(r#"{"rules":[{"name":"release","semver":true,"tags":["stable"]}]}"#).unwrap();
    let cases = catalogue();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for (name, payload, expect) in cases {
        assert!(names.insert(name), "duplicate case name {name}");
        // No repository at all: whatever reaches the registry is counted, and answered "not found".
        let registry = Memory::default();
        let handler = Handler::new(registry, Config::with_rules(rules.clone()));
        let answer = handler.invoke(&payload, std::time::SystemTime::UNIX_EPOCH).await;
        let calls = handler.registry().calls().len();
        if let Failed(ids) = expect {
            match answer {
                Ok(Answer::Batch(b)) => {
                    let failed: Vec<&str> = b.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
                    assert_eq!(failed, ids, "{name}");
                }
                other => panic!("{name}: expected a batch answer, got {other:?}"),
            }
            assert_eq!(calls, 0, "{name}");
            continue;
        }
        if let Reaches = expect {
            assert!(calls > 0, "{name}: {answer:?}");
            continue;
        }
        let result = answer.map(|a| match a {
            Answer::Event(report) => report,
            other => panic!("{name}: expected one event's answer, got {other:?}"),
        });
        match expect {
            Error(text) => {
                let e = result.as_ref().err().unwrap_or_else(|| panic!("{name}: expected an error, got {result:?}"));
                assert_eq!(e.error_type(), "Permanent.InvalidEvent", "{name}: {e}");
                let message = e.to_string();
                assert!(message.contains(text), "{name}: {message:?} lacks {text:?}");
                assert!(message.len() < 1_000, "{name}: the message stays short ({} bytes)", message.len());
                assert_eq!(calls, 0, "{name}");
            }
            Ignored(text) => {
                let report = result.unwrap_or_else(|e| panic!("{name}: expected ignored, got {e}"));
                assert_eq!(report.status, Status::Ignored, "{name}");
                let reason = report.reason.unwrap_or_default();
                assert!(reason.contains(text), "{name}: {reason:?} lacks {text:?}");
                assert_eq!(calls, 0, "{name}");
            }
            Reaches | Failed(_) => unreachable!("handled above"),
        }
    }
}

#[test]
fn every_invalid_rule_set_names_the_rule_and_field() {
    let rule = |body: &str| format!(r#"{{"rules":[{{"name":"r",{body}}}]}}"#);
    let cases: Vec<(String, &str, &str)> = vec![
        (rule(r#""tags":["x"]"#), "rule \"r\", field `match`", "required unless"),
        (rule(r#""match":"x","semver":true,"tags":["x"]"#), "rule \"r\", field `match`", "exclusive"),
        (rule(r#""match":"(","tags":["x"]"#), "rule \"r\", field `match`", "not a valid regex"),
        (rule(r#""match":"x","prerelease":true,"tags":["x"]"#), "rule \"r\", field `prerelease`", "semver"),
        (rule(r#""semver":true"#), "rule \"r\", field `tags`", "required"),
        (rule(r#""semver":true,"tags":[]"#), "rule \"r\", field `tags`", "empty"),
        (rule(r#""semver":true,"tags":["v{majr}"]"#), "rule \"r\", field `tags[0]`", "unknown placeholder `{majr}`"),
        (rule(r#""semver":true,"tags":["{sha}"]"#), "rule \"r\", field `tags[0]`", "unknown placeholder"),
        (rule(r#""match":"(?<sha>.*)","tags":["{major}"]"#), "rule \"r\", field `tags[0]`", "only in rules with \"semver\": true"),
        (rule(r#""semver":true,"tags":["{date}"]"#), "rule \"r\", field `tags[0]`", "without a format"),
        (rule(r#""semver":true,"tags":["{date:%Q}"]"#), "rule \"r\", field `tags[0]`", "invalid strftime"),
        (rule(r#""semver":true,"tags":["{digest:0}"]"#), "rule \"r\", field `tags[0]`", "from 1 to 64"),
        (rule(r#""semver":true,"tags":["v{major"]"#), "rule \"r\", field `tags[0]`", "unclosed"),
        (rule(r#""semver":true,"tags":["v}"]"#), "rule \"r\", field `tags[0]`", "unmatched"),
        (rule(r#""semver":true,"tags":["-{major}"]"#), "rule \"r\", field `tags[0]`", "can never render a valid tag"),
        (rule(r#""semver":true,"tags":["x","","y"]"#), "rule \"r\", field `tags[1]`", "is empty"),
        (rule(r#""semver":true,"repositories":[],"tags":["x"]"#), "rule \"r\", field `repositories`", "empty list"),
        (rule(r#""semver":true,"repositories":["ok","Bad"],"tags":["x"]"#), "rule \"r\", field `repositories[1]`", "'B'"),
        (rule(r#""semver":"yes","tags":["x"]"#), "rule \"r\", field `semver`", "invalid type"),
        (rule(r#""semver":true,"artifacts":"yes","tags":["x"]"#), "rule \"r\", field `artifacts`", "invalid type"),
        (rule(r#""semver":true,"tag":["x"]"#), "rule \"r\", field `tag`", "did you mean `tags`?"),
        (r#"{"rules":[{"semver":true,"tags":["x"]}]}"#.into(), "rule #1 (unnamed), field `name`", "required"),
        (r#"{"rules":[{"name":" ","semver":true,"tags":["x"]}]}"#.into(), "rule \" \", field `name`", "empty"),
        (r#"{"rules":[{"name":"a","semver":true,"tags":["x"]},{"name":"a","semver":true,"tags":["y"]}]}"#.into(), "rule \"a\", field `name`", "unique"),
        (r#"{"rules":[]}"#.into(), "the rule set, field `rules`", "at least one rule"),
        (r#"{"rules":[5]}"#.into(), "rule #1 (unnamed), field `(rule)`", "must be an object"),
    ];
    for (json, locus, text) in cases {
        match RuleSet::from_json(&json) {
            Err(e @ RulesError::Invalid(_)) => {
                let message = e.to_string();
                assert!(message.contains(&format!("{locus}: ")), "{json}: {message}");
                assert!(message.contains(text), "{json}: {message}");
            }
            other => panic!("{json}: expected a rule problem, got {other:?}"),
        }
    }
    for broken in ["", "{", "{\"rules\": [", "rules: []"] {
        let e = RuleSet::from_json(broken).unwrap_err();
        assert!(e.to_string().starts_with("the rule set is not valid JSON"), "{broken}: {e}");
    }
    // Valid JSON of the wrong shape is told as such, with the shape.
    for (misshapen, text) in [
        ("{}", "has no \"rules\""),
        ("[]", "not a list"),
        (r#"{"rule":[]}"#, "did you mean \"rules\"?"),
        (r#"{"rules":{}}"#, "must be a list of rules"),
        ("null", "got null"),
    ] {
        match RuleSet::from_json(misshapen) {
            Err(e @ RulesError::Shape(_)) => assert!(e.to_string().contains(text), "{misshapen}: {e}"),
            other => panic!("{misshapen}: expected a shape error, got {other:?}"),
        }
    }
}
