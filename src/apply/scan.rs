//! A scan's result: the scanned image's tags through the scan-gated rules, as if each had
//! just been pushed, as the event engine's job ([`crate::apply::engine`]).

use crate::apply::engine::{run, Handled, Job};
use crate::apply::Settings;
use crate::domain::artifact::Artifact;
use crate::domain::assess::Scanned;
use crate::domain::plan::Phase;
use crate::domain::request::ScanResult;
use crate::domain::scan::Findings;
use crate::error::RetagError;
use crate::registry::{Blobs, Registry};
use crate::report::ScanReport;

/// A scan's writes, up to the second look at its if-newer tags.
pub async fn begin_scanned<R: Blobs>(registry: &R, settings: &Settings, scan: &ScanResult) -> Result<Handled, RetagError> {
    let findings = split_findings(registry, settings, scan).await?;
    let job = Job {
        repository: scan.repository.clone(),
        digest: Some(scan.digest.clone()),
        artifact: scan.tags.iter().find_map(|t| Artifact::of_tag(t.as_str())),
        sources: scan.tags.clone(),
        at: scan.scanned_at,
        media_type: None,
        dry_run: settings.dry_run,
        phase: Phase::scan(&findings),
        image: Default::default(),
    };
    let mut handled = run(registry, settings, job).await?;
    handled.report.scan =
        Some(ScanReport { image_tags: scan.tags.iter().map(ToString::to_string).collect(), findings: findings.counts.clone() });
    Ok(handled)
}

/// The findings a gate is judged on. An event that would let a gate pass may be stale (a
/// rescan since found more, and events arrive late and out of order), so ECR's findings summary
/// now (one DescribeImages) decides instead when it has one. It also splits what Inspector's
/// event counts only in its total (a gate below MEDIUM); where neither splits it, the gate fails closed.
async fn split_findings<R: Registry>(registry: &R, settings: &Settings, scan: &ScanResult) -> Result<Findings, RetagError> {
    let name = scan.repository.name.as_str();
    let lowest = scan.tags.iter().filter_map(|t| settings.rules.lowest_scan_gate(name, t.as_str())).min();
    let Some(gate) = lowest else { return Ok(scan.findings.clone()) };
    if !scan.findings.undecided(gate) && !scan.findings.passes(gate) {
        return Ok(scan.findings.clone());
    }
    let listed = registry.describe(&scan.repository, &scan.digest).await.map_err(|e| RetagError::reading(&scan.repository, e))?;
    Ok(match listed.map(|l| l.scan) {
        Some(Scanned::Done(summary)) if !summary.undecided(gate) => summary,
        _ => scan.findings.clone(),
    })
}
