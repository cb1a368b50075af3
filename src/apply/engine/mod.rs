//! The event engine: whatever triggered it (a push, a scan, a signature: [`crate::apply::push`],
//! [`crate::apply::scan`], [`crate::apply::signed`]), a [`Job`] names an image and the tags the
//! rules are applied to; [`run`] plans them, groups them per repository (the pushed one, and each
//! promotion target), brings each group in place ([`write`]), retires pushed tags where a rule
//! says so, and reports every tag's outcome. The if-newer tags get their second look through
//! [`Handled::settle`] before the report is final.
//!
//! One read (BatchGetImage with the digest and every candidate tag) tells the manifest and where
//! each tag points now; then one PutImage per tag that does not already point at the digest,
//! concurrently within a bound. A job no rule matches costs nothing.

use std::collections::BTreeMap;
use tokio::time::Instant;

use chrono::{DateTime, Utc};

use crate::apply::if_newer::{self, Claim, Want};
use crate::apply::promote::Copied;
use crate::apply::removal::{self, Pushed};
use crate::apply::Settings;
use crate::domain::artifact::Artifact;
use crate::domain::names::{Digest, RepositoryName, Tag};
use crate::domain::plan::{self, Phase, Plan, Trigger, Verdict};
use crate::domain::request::Sources;
use crate::domain::rules::Subject;
use crate::error::RetagError;
use crate::registry::{Blobs, Image, Lookup, Registry, Repository};
use crate::report::{Outcome, Report, Status, TagReport};

mod write;
mod writes;

pub(crate) use writes::Writes;

pub(crate) use write::{write_planned, Group, Origin, Written};
use write::{artifact_reason, read};

/// An event whose writes are done, but whose if-newer tags still need their
/// second look ([`if_newer::settle`]) before the report is final.
#[derive(Debug)]
pub struct Handled {
    pub report: Report,
    pub claims: Vec<Claim>,
}

impl Handled {
    /// The second look at this event's if-newer tags (none: no wait), no later than `stop_by`.
    pub async fn settle<R: Registry>(&mut self, registry: &R, settings: &Settings, stop_by: Option<Instant>) {
        Handled::settle_all(registry, settings, &mut [self], stop_by).await;
    }

    /// The second look for several events at once: one wait, one read per image.
    pub async fn settle_all<R: Registry>(registry: &R, settings: &Settings, handled: &mut [&mut Handled], stop_by: Option<Instant>) {
        let mut owners = Vec::new();
        let mut claims = Vec::new();
        for (i, h) in handled.iter_mut().enumerate() {
            for claim in h.claims.drain(..) {
                // Where the tag is: a promotion's `stable` is another entry than the pushed repository's.
                owners.push((i, claim.repository.name.to_string(), claim.want.tag.to_string()));
                claims.push(claim);
            }
        }
        if claims.is_empty() {
            return;
        }
        let revisions = if_newer::settle(registry, &settings.rules, claims, settings.write_concurrency, stop_by).await;
        for ((i, repository, tag), revision) in owners.into_iter().zip(revisions) {
            let report = &mut handled[i].report;
            let home = report.repository.clone().unwrap_or_default();
            let entry = report.tags.iter_mut().find(|t| t.tag == tag && t.repository.as_deref().unwrap_or(&home) == repository);
            if let (Some(revision), Some(entry)) = (revision, entry) {
                revision.apply(entry);
            }
        }
    }

    /// The second look, then the verdict: what every single event's path ends with.
    pub async fn finish<R: Registry>(mut self, registry: &R, settings: &Settings, stop_by: Option<Instant>) -> Result<Report, RetagError> {
        self.settle(registry, settings, stop_by).await;
        self.conclude()
    }

    /// `Ok` when every derived tag is in place (or would be), and every record it calls for attached.
    pub fn conclude(self) -> Result<Report, RetagError> {
        let report = self.report;
        let unrecorded = || report.records.iter().filter(|r| r.outcome == crate::report::RecordOutcome::Failed);
        if report.problems().next().is_some() || unrecorded().next().is_some() {
            let retryable = report.problems().any(|t| t.retryable) || unrecorded().any(|r| r.retryable);
            return Err(RetagError::TagsNotApplied { report: Box::new(report), retryable });
        }
        Ok(report)
    }
}

/// What to bring in place, whatever triggered it.
pub(crate) struct Job<'a> {
    pub(crate) repository: Repository,
    /// `None`: a direct request naming only a tag; resolved with one read.
    pub(crate) digest: Option<Digest>,
    /// The tags the rules are applied to, each as if just pushed.
    pub(crate) sources: Sources,
    /// A signature, attestation or SBOM, as told so far (its tag, the event, then its manifest).
    pub(crate) artifact: Option<Artifact>,
    pub(crate) at: DateTime<Utc>,
    pub(crate) media_type: Option<&'a str>,
    pub(crate) dry_run: bool,
    pub(crate) phase: Phase<'a>,
    /// The pushed image, once a read brought it: a promotion then copies it without reading it again.
    pub(crate) image: std::sync::OnceLock<Image>,
}

impl Job<'_> {
    /// Where its planned tags come from, for the writes.
    fn origin(&self) -> Origin<'_> {
        Origin {
            repository: &self.repository,
            image: &self.image,
            artifact: self.artifact.as_ref(),
            media_type: self.media_type,
            dry_run: self.dry_run,
            pushed: (self.phase.trigger == Trigger::Push && self.digest.is_some()).then(|| self.sources.first()),
        }
    }
}

pub(crate) async fn run<R: Blobs>(registry: &R, settings: &Settings, job: Job<'_>) -> Result<Handled, RetagError> {
    let rules = &settings.rules;
    let name = job.repository.name.as_str();
    let mut report = Report {
        status: if job.dry_run { Status::DryRun } else { Status::Applied },
        reason: None,
        repository: Some(name.to_owned()),
        registry_id: job.repository.registry_id.as_ref().map(ToString::to_string),
        digest: job.digest.as_ref().map(ToString::to_string),
        source_tag: (job.phase.trigger == Trigger::Push).then(|| job.sources.first().to_string()),
        scan: None,
        signature: None,
        tags: Vec::new(),
        promotions: Vec::new(),
        records: Vec::new(),
        subject: None,
        // A signature's push comes with the kind it brings; a gate's look adds what it finds.
        signatures_found: job.phase.signatures.found,
    };
    let relevant = |t: &Tag| match job.phase.trigger {
        Trigger::Push => rules.any_match(name, t.as_str()),
        Trigger::Scan => rules.any_scan_gated_match(name, t.as_str()),
        Trigger::Signature => rules.any_signed_gated_match(name, t.as_str()),
    };
    if !job.sources.iter().any(relevant) {
        report.status = Status::Ignored;
        report.reason = Some(match job.phase.trigger {
            Trigger::Push => "no rule matches this repository and tag".to_owned(),
            Trigger::Scan => "no scan-gated rule matches this repository and the image's tags".to_owned(),
            Trigger::Signature => "no signature-gated rule matches this repository and the signed image's tags".to_owned(),
        });
        return Ok(Handled { report, claims: Vec::new() });
    }
    if let Some(artifact) = &job.artifact {
        if !job.sources.iter().any(|t| rules.any_artifact_match(name, t.as_str())) {
            report.status = Status::Ignored;
            report.reason = Some(artifact_reason(artifact));
            return Ok(Handled { report, claims: Vec::new() });
        }
    }

    // Only when a rule that may apply requires them; cached per instance by the handler's registry.
    let repository_tags = if job.sources.iter().any(|t| rules.needs_repository_tags(name, t.as_str())) {
        Some(registry.repository_tags(&job.repository).await.map_err(|e| RetagError::reading(&job.repository, e))?)
    } else {
        None
    };

    // A direct request without a digest: the tag's current digest (one extra read).
    let digest = match &job.digest {
        Some(d) => d.clone(),
        None => {
            let source = job.sources.first();
            let found = read(registry, &job.repository, Lookup::Tag(source), &[]).await?;
            let image = found.image.ok_or_else(|| RetagError::ImageNotFound {
                repository: name.to_owned(),
                reference: format!("tag {source}"),
            })?;
            image.digest
        }
    };
    report.digest = Some(digest.to_string());

    let plan_with = |phase| {
        Plan::merge(job.sources.iter().map(|source| {
            let subject = Subject {
                repository: name,
                tag: source,
                digest: &digest,
                pushed_at: job.at,
                repository_tags: repository_tags.as_ref(),
                artifact: job.artifact.is_some(),
            };
            plan::plan(rules, &subject, phase)
        }))
    };
    let mut plan = plan_with(job.phase);
    // Signature-gated tags whose other conditions hold: one look decides them, before any write.
    let look_for = plan.signatures_to_look_for();
    if !look_for.is_empty() {
        let seen = registry.signatures(&job.repository, &digest, look_for).await.map_err(|e| RetagError::reading(&job.repository, e))?;
        report.signatures_found = report.signatures_found.union(seen.found);
        plan = plan_with(job.phase.with_signatures(seen));
    }
    if plan.tags.is_empty() && plan.removals.is_empty() {
        report.status = Status::Ignored;
        report.reason = Some(match &repository_tags {
            Some(have) => {
                let unmet: Vec<String> =
                    job.sources.iter().flat_map(|t| rules.unmet_repository_tags(name, t.as_str(), have)).collect();
                format!("no rule applies: {}", unmet.join("; "))
            }
            None => "no rule derives a tag other than the pushed one".to_owned(),
        });
        return Ok(Handled { report, claims: Vec::new() });
    }

    // The pushed repository's tags, then each promotion target's (`"to"`), each written on its own.
    let mut groups: BTreeMap<Option<RepositoryName>, Group> = BTreeMap::new();
    for planned in &plan.tags {
        let Group { tags, candidates, wants, .. } = groups.entry(planned.to.clone()).or_default();
        let entry = TagReport::new(planned.tag.as_str(), planned.rules.clone(), Outcome::Invalid);
        let (outcome, detail) = match &planned.verdict {
            Verdict::Write(tag) => {
                match planned.if_newer.clone() {
                    Some(version) => wants.push(Want { tag: tag.clone(), version, rules: planned.rules.clone() }),
                    None => candidates.push(tag.clone()),
                }
                (Outcome::Invalid, None)
            }
            Verdict::Invalid(reason) | Verdict::Loops(reason) => (Outcome::Invalid, Some(reason.clone())),
            // A scan's or a signature's sources are the image's own tags: one of them is in place
            // (an earlier event wrote it), whatever this event cannot decide. Not so in a promotion's target.
            Verdict::Deferred(_) if planned.to.is_none() && job.sources.iter().any(|t| t.as_str() == planned.tag) => {
                (Outcome::Unchanged, None)
            }
            Verdict::Deferred(why) => (Outcome::Deferred, Some(why.clone())),
            Verdict::Blocked(why) => (Outcome::Blocked, Some(why.clone())),
        };
        tags.insert(planned.tag.clone(), TagReport { outcome, detail, ..entry });
    }

    let mut claims = Vec::new();
    let mut source_tags = BTreeMap::new();
    // What the pushed repository's read found that holds its promotions back too.
    let mut held: Option<(Outcome, String)> = None;
    for (to, mut group) in groups {
        if let (Some((outcome, detail)), Some(to)) = (&held, &to) {
            for planned in group.candidates.iter().chain(group.wants.iter().map(|w| &w.tag)) {
                crate::report::entry(&mut group.tags, planned).mark(*outcome, Some(detail.clone()));
            }
            report.tags.extend(group.tags.into_values().map(|t| TagReport { repository: Some(to.to_string()), ..t }));
            continue;
        }
        let target = to.as_ref().map(|name| Repository { name: name.clone(), ..job.repository.clone() });
        // Boxed: each group's writes, a promotion's copy among them, are a deep future of their own.
        match Box::pin(write_planned(registry, settings, &job.origin(), &digest, target.as_ref(), &mut group)).await? {
            Written::Claims(written) => claims.extend(written),
            Written::Stale(other) => held = Some((Outcome::Superseded, write::stale(job.sources.first(), &other))),
            // A copy already in a target is no archived image, but the source's archive says it is retired.
            Written::Archived => {
                let detail = format!("the image is archived in {}: not promoted while it is (restore it first)", job.repository.name);
                held = Some((Outcome::Archived, detail));
            }
            Written::Artifact(artifact) => {
                // Told only by the manifest: planned again as an artifact, where only rules that opt in apply.
                let job = Job { artifact: Some(artifact), digest: Some(digest), ..job };
                return Box::pin(run(registry, settings, job)).await;
            }
        }
        match to {
            None => source_tags = group.tags,
            Some(to) => {
                if group.copied != Copied::default() {
                    report.promotions.push(group.copied.report(&to));
                }
                report.tags.extend(group.tags.into_values().map(|t| TagReport { repository: Some(to.to_string()), ..t }));
            }
        }
    }

    // Removals concern the pushed repository only (a promoting rule cannot remove its source).
    let sources = Pushed { repository: &job.repository, digest: &digest, dry_run: job.dry_run };
    removal::remove_sources(registry, &sources, &plan.removals, &mut source_tags).await?;

    let promoted = std::mem::take(&mut report.tags);
    report.tags = source_tags.into_values().chain(promoted).collect();
    report.subject = job.image.get().map(|image| {
        let media_type = image.media_type_or(job.media_type).unwrap_or_default();
        Box::new(crate::domain::record::Descriptor::of(&media_type, image.manifest.as_bytes()))
    });
    Ok(Handled { report, claims })
}
