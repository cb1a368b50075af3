//! A scan's result: the scanned image's tags through the scan-gated rules, as if each had
//! just been pushed, as the event engine's job ([`crate::apply::engine`]).

use crate::apply::engine::{run, Handled, Job};
use crate::apply::Settings;
use crate::domain::artifact::Artifact;
use crate::domain::assess::Scanned;
use crate::domain::plan::Phase;
use crate::domain::names::Tag;
use crate::domain::request::{Ignored, ScanResult, Sources};
use crate::report::Report;
use crate::domain::scan::Findings;
use crate::error::RetagError;
use crate::registry::{Blobs, Registry};
use crate::report::ScanReport;

/// A scan's writes, up to the second look at its if-newer tags.
pub async fn begin_scanned<R: Blobs>(registry: &R, settings: &Settings, scan: &ScanResult) -> Result<Handled, RetagError> {
    let (findings, tagged) = judged(registry, settings, scan).await?;
    // The event's tags are the image's at scan time; one pushed onto another image since is not
    // this image's version any more (a rebuild), and must not move a tag here on a late delivery.
    let sources = match tagged {
        None => scan.tags.clone(),
        Some(now) => match Sources::new(scan.tags.iter().filter(|t| now.contains(t)).cloned().collect()) {
            Some(sources) => sources,
            None => {
                let reason = format!("the scanned image's tags ({}) have moved to other images since its scan", list(&scan.tags));
                let about = Ignored { reason, repository: Some(scan.repository.name.to_string()), digest: Some(scan.digest.to_string()), tag: None };
                return Ok(Handled { report: Report::ignored(about), claims: Vec::new() });
            }
        },
    };
    let job = Job {
        repository: scan.repository.clone(),
        digest: Some(scan.digest.clone()),
        artifact: scan.tags.iter().find_map(|t| Artifact::of_tag(t.as_str())),
        sources,
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

/// The findings a gate is judged on, and the image's tags now when they were read. An event that
/// would let a gate pass may be stale (a rescan since found more, a tag was pushed onto another
/// image since; events arrive late and out of order), so ECR's findings summary and tags now (one
/// DescribeImages) decide instead. The summary also splits what Inspector's event counts only in
/// its total (a gate below MEDIUM); where neither splits it, the gate fails closed.
async fn judged<R: Registry>(registry: &R, settings: &Settings, scan: &ScanResult) -> Result<(Findings, Option<Vec<Tag>>), RetagError> {
    let name = scan.repository.name.as_str();
    let lowest = scan.tags.iter().filter_map(|t| settings.rules.lowest_scan_gate(name, t.as_str())).min();
    let Some(gate) = lowest else { return Ok((scan.findings.clone(), None)) };
    if !scan.findings.undecided(gate) && !scan.findings.passes(gate) {
        return Ok((scan.findings.clone(), None));
    }
    let listed = registry.describe(&scan.repository, &scan.digest).await.map_err(|e| RetagError::reading(&scan.repository, e))?;
    let tags = listed.as_ref().map(|l| l.tags.clone());
    Ok(match listed.map(|l| l.scan) {
        Some(Scanned::Done(summary)) if !summary.undecided(gate) => (summary, tags),
        _ => (scan.findings.clone(), tags),
    })
}

fn list(tags: &Sources) -> String {
    tags.iter().map(Tag::as_str).collect::<Vec<_>>().join(", ")
}
