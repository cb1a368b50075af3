//! Events as ECR, EventBridge and SQS deliver them, and handing one to the handler.

use super::*;

/// An EventBridge "ECR Image Action" PUSH event, as ECR sends it.
pub fn push_event(repository: &str, digest: &str, tag: &str, media_type: Option<&str>) -> serde_json::Value {
    let mut detail = serde_json::json!({
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "action-type": "PUSH",
        "image-tag": tag,
    });
    if let Some(m) = media_type {
        detail["manifest-media-type"] = m.into();
    }
    serde_json::json!({
        "version": "0",
        "id": "3f0c2b1e-8d5a-4c47-9e61-2a7b9c1d0e55",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": "2026-11-24T10:15:02Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    })
}

/// The untagged push of a signature manifest, as ECR sends it (no `image-tag`).
pub fn signature_event(repo: &str, digest: &str, artifact_type: &str) -> serde_json::Value {
    let mut event = push_event(repo, digest, "unused", Some("application/vnd.oci.image.manifest.v1+json"));
    let detail = event["detail"].as_object_mut().unwrap();
    detail.remove("image-tag");
    detail.insert("artifact-media-type".into(), artifact_type.into());
    event
}

/// An SQS event as Lambda delivers a batch: `(message id, body)` each.
pub fn sqs_batch(messages: &[(&str, String)]) -> String {
    let records: Vec<_> = messages
        .iter()
        .map(|(id, body)| serde_json::json!({"messageId": id, "receiptHandle": "r", "body": body, "eventSource": "aws:sqs", "awsRegion": REGION}))
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

/// The sample event file `events/NAME`.
pub fn sample_event(name: &str) -> serde_json::Value {
    let path = root().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Tests hand one event to the handler the way Lambda does: as payload text,
/// through `Handler::invoke_at` (the entry point `invoke` wraps), with a
/// deadline far enough away not to matter.
pub trait Invoke {
    /// One event's answer; `now` is the push time of a direct request.
    async fn handle(&self, payload: &serde_json::Value, now: chrono::DateTime<chrono::Utc>) -> Result<ecr_retag::report::Report, ecr_retag::error::RetagError>;
}

impl<R: ecr_retag::registry::Catalog + ecr_retag::registry::Blobs> Invoke for ecr_retag::lambda::Handler<R> {
    async fn handle(&self, payload: &serde_json::Value, now: chrono::DateTime<chrono::Utc>) -> Result<ecr_retag::report::Report, ecr_retag::error::RetagError> {
        let now = std::time::SystemTime::from(now);
        match self.invoke_at(&payload.to_string(), now + std::time::Duration::from_secs(600), now).await? {
            ecr_retag::lambda::Answer::Event(report) => Ok(report),
            other => panic!("expected one event's answer, got {other:?}"),
        }
    }
}
