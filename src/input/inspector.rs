//! Amazon Inspector's `Inspector2 Scan` event (`source` `aws.inspector2`): with
//! enhanced scanning, ECR sends no `ECR Image Scan` event, and this is the
//! first result for a pushed image. It names the repository by its ARN, and its
//! counts are CRITICAL, HIGH and MEDIUM, with the rest only in `TOTAL`.

use crate::domain::names::{Digest, RegistryId, Repository, RepositoryName};
use crate::domain::request::{Request, ScanResult};
use crate::input::eventbridge::Envelope;
use crate::input::fields::field_error;
use crate::input::InputError;

const SCAN: &str = "Inspector2 Scan";
const COMPLETE: &str = "INITIAL_SCAN_COMPLETE";

impl Envelope<'_> {
    pub(crate) fn inspector(&self) -> Result<Request, InputError> {
        let kind = self.event.detail_type.as_str();
        if kind != SCAN {
            return Ok(self.ignore(format!("{kind:?} events are not handled; of Amazon Inspector's, only {SCAN:?} results are")));
        }
        let detail = &self.detail;
        let status = detail.text("scan-status")?;
        if status != COMPLETE {
            return Ok(self.ignore(format!("scan-status {status:?} is not {COMPLETE}; scan-gated tags stay deferred")));
        }
        let repository = repository_of_arn(detail.text("repository-name")?).ok_or_else(|| {
            field_error("detail.repository-name", "expected the repository's ARN, arn:aws:ecr:REGION:ACCOUNT:repository/NAME")
        })?;
        let digest = detail.name("image-digest", Digest::parse)?;
        let Some(tags) = self.image_tags()? else {
            return Ok(self.ignore("the scanned image has no tag: no rule can apply".to_owned()));
        };
        if detail.get("finding-severity-counts").is_none() {
            return Err(field_error("detail.finding-severity-counts", "required: without it the scan cannot pass a gate"));
        }
        let mut findings = self.findings()?;
        // TOTAL is a sum, not a severity: what it counts beyond the named severities is below MEDIUM.
        let total = findings
            .counts
            .remove("TOTAL")
            .ok_or_else(|| field_error("detail.finding-severity-counts.TOTAL", "required: Inspector's count of every finding"))?;
        // Saturating: the counts come from outside, and no sum of them may overflow.
        let named = findings.counts.values().fold(0u64, |sum, n| sum.saturating_add(*n));
        findings.unsplit = Some(total.saturating_sub(named));
        Ok(Request::Scanned(ScanResult { repository, digest, tags, scanned_at: self.time("the scan time")?, findings }))
    }
}

/// `arn:PARTITION:ecr:REGION:ACCOUNT:repository/NAME`, as a repository in that registry and region.
fn repository_of_arn(arn: &str) -> Option<Repository> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, _partition, service, region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if prefix != "arn" || service != "ecr" || region.is_empty() {
        return None;
    }
    let name = RepositoryName::parse(resource.strip_prefix("repository/")?).ok()?;
    Some(Repository { registry_id: Some(RegistryId::parse(account).ok()?), region: Some(region.to_owned()), name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scan::Severity;
    use crate::input::testing::{event_of, field_of, now};
    use serde_json::{json, Value};

    /// The sample in `events/`: HIGH 1, MEDIUM 4, TOTAL 12.
    fn inspector_scan() -> Value {
        serde_json::from_str(include_str!("../../events/inspector-scan.json")).unwrap()
    }

    #[test]
    fn an_inspector_scan_is_a_scan_result_of_the_repository_its_arn_names() {
        let Request::Scanned(scan) = event_of(&inspector_scan(), now()).unwrap() else { panic!("not a scan") };
        assert_eq!(scan.repository.name.as_str(), "team/api");
        assert_eq!(scan.repository.region.as_deref(), Some("eu-west-1"));
        assert_eq!(scan.repository.registry_id.map(|r| r.to_string()).as_deref(), Some("123456789012"));
        assert_eq!(scan.findings.unsplit, Some(7), "TOTAL 12 less the 5 named");
        assert!(!scan.findings.counts.contains_key("TOTAL"), "a sum, not a severity");
        assert!(scan.findings.passes(Severity::High) && !scan.findings.passes(Severity::Medium), "HIGH 1");
        assert!(scan.findings.undecided(Severity::Low), "LOW cannot be told from TOTAL");
    }

    #[test]
    fn other_inspector_events_are_ignored_and_bad_ones_named() {
        let mut finding = inspector_scan();
        finding["detail-type"] = json!("Inspector2 Finding");
        assert!(matches!(event_of(&finding, now()), Ok(Request::Ignore(i)) if i.reason.contains("\"Inspector2 Finding\" events are not handled")));
        let mut pending = inspector_scan();
        pending["detail"]["scan-status"] = json!("PENDING_INITIAL_SCAN");
        assert!(matches!(event_of(&pending, now()), Ok(Request::Ignore(_))));
        let with = |key: &str, value: Value| {
            let mut e = inspector_scan();
            e["detail"][key] = value;
            field_of(&e)
        };
        assert_eq!(with("repository-name", json!("team/api")), "detail.repository-name", "an ARN, not a name");
        assert_eq!(with("repository-name", json!("arn:aws:s3:::bucket")), "detail.repository-name");
        assert_eq!(with("finding-severity-counts", json!({"HIGH": 1})), "detail.finding-severity-counts.TOTAL");
        let mut huge = inspector_scan();
        huge["detail"]["finding-severity-counts"] = json!({"CRITICAL": u64::MAX, "HIGH": u64::MAX, "TOTAL": 1});
        let Ok(Request::Scanned(scan)) = event_of(&huge, now()) else { panic!("a scan") };
        assert_eq!(scan.findings.unsplit, Some(0), "the named counts saturate instead of overflowing");
        assert!(!scan.findings.passes(Severity::High), "the CRITICAL findings block a HIGH gate");
        let mut clean = inspector_scan();
        clean["detail"].as_object_mut().unwrap().remove("finding-severity-counts");
        assert_eq!(field_of(&clean), "detail.finding-severity-counts", "fail closed");
    }
}
