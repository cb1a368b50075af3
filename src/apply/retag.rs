//! Writes: brings a push's planned tags in place, and says what happened to each.
//!
//! One read (BatchGetImage with the digest and every candidate tag) tells the
//! manifest and where each tag points now; then one PutImage per tag that does
//! not already point at the digest, concurrently within a bound. A push no
//! rule matches costs nothing.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::apply::Settings;
use crate::error::RetagError;
use crate::domain::artifact::Artifact;
use crate::domain::request::{Push, ScanResult, SignaturePush, Sources};
use crate::domain::signature::{self, Kind};
use crate::domain::assess::Scanned;
use crate::domain::scan::Findings;
use crate::apply::signed;
use crate::domain::names::{Digest, Tag};
use crate::domain::plan::{self, Phase, Plan, Trigger, Verdict};
use crate::apply::if_newer::{self, Claim, Guard, Observed, Want};
use crate::apply::put::{self, Target, Was};
use crate::apply::removal::{self, Pushed};
use crate::apply::promote::{self, Copied, Via};
use crate::domain::names::RepositoryName;
use crate::registry::{Blobs, Image, Lookup, Registry, Repository, Snapshot, TagState};
use crate::report::{entry, Outcome, Report, ScanReport, Status, TagReport};
use crate::domain::rules::Subject;

/// Retags one push. `Ok` when every derived tag is in place (or would be, in a dry run).
pub async fn retag<R: Blobs>(registry: &R, settings: &Settings, push: &Push) -> Result<Report, RetagError> {
    let mut handled = begin(registry, settings, push).await?;
    handled.settle(registry, settings, None).await;
    handled.conclude()
}

/// Applies the scan-gated rules to a scanned image's tags, as if each had just been pushed.
pub async fn promote_scanned<R: Blobs>(registry: &R, settings: &Settings, scan: &ScanResult) -> Result<Report, RetagError> {
    let mut handled = begin_scanned(registry, settings, scan).await?;
    handled.settle(registry, settings, None).await;
    handled.conclude()
}

/// A push's writes, up to the second look at its if-newer tags. A cosign signature
/// tag (`sha256-<hex>.sig`) where a signature-gated rule accepts cosign is a signature's push.
pub async fn begin<R: Blobs>(registry: &R, settings: &Settings, push: &Push) -> Result<Handled, RetagError> {
    if let Some(subject) = signature::cosign_subject(&push.tag) {
        if settings.rules.signed_kinds(push.repository.name.as_str()).contains(Kind::Cosign) {
            let signature = SignaturePush {
                repository: push.repository.clone(),
                digest: push.digest.clone(),
                subject: Some(subject),
                kind: Some(Kind::Cosign),
                pushed_at: push.pushed_at,
                dry_run: push.dry_run,
            };
            return Box::pin(signed::begin_signed(registry, settings, &signature)).await;
        }
    }
    let job = Job {
        repository: push.repository.clone(),
        digest: push.digest.clone(),
        artifact: Artifact::of_tag(push.tag.as_str()).or_else(|| push.artifact_media_type.as_deref().and_then(Artifact::of_media_type)),
        sources: Sources::one(push.tag.clone()),
        at: push.pushed_at,
        media_type: push.media_type.as_deref(),
        dry_run: push.dry_run || settings.dry_run,
        phase: Phase::PUSH,
        image: Default::default(),
    };
    run(registry, settings, job).await
}

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

/// Inspector's event counts CRITICAL, HIGH and MEDIUM only. Where a gate below MEDIUM
/// applies and the rest is not zero, ECR's findings summary (one DescribeImages) splits it;
/// if that does not either (no summary yet, UNTRIAGED findings), the gate fails closed.
async fn split_findings<R: Registry>(registry: &R, settings: &Settings, scan: &ScanResult) -> Result<Findings, RetagError> {
    let name = scan.repository.name.as_str();
    let lowest = scan.tags.iter().filter_map(|t| settings.rules.lowest_scan_gate(name, t.as_str())).min();
    if !lowest.is_some_and(|gate| scan.findings.undecided(gate)) {
        return Ok(scan.findings.clone());
    }
    let listed = registry.describe(&scan.repository, &scan.digest).await.map_err(|e| RetagError::reading(&scan.repository, e))?;
    Ok(match listed.map(|l| l.scan) {
        Some(Scanned::Done(summary)) if lowest.is_some_and(|gate| !summary.undecided(gate)) => summary,
        _ => scan.findings.clone(),
    })
}

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

    /// `Ok` when every derived tag is in place (or would be).
    pub fn conclude(self) -> Result<Report, RetagError> {
        let report = self.report;
        if report.problems().next().is_some() {
            let retryable = report.problems().any(|t| t.retryable);
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
    for (to, mut group) in groups {
        let target = to.as_ref().map(|name| Repository { name: name.clone(), ..job.repository.clone() });
        // Boxed: each group's writes, a promotion's copy among them, are a deep future of their own.
        match Box::pin(write_planned(registry, settings, &job, &digest, target.as_ref(), &mut group)).await? {
            Written::Claims(written) => claims.extend(written),
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
    Ok(Handled { report, claims })
}

/// The planned tags of one repository: their entries, those to write, those to write if newer,
/// and, in a promotion's target, what bringing the image there copied.
#[derive(Default)]
struct Group {
    tags: BTreeMap<String, TagReport>,
    candidates: Vec<Tag>,
    wants: Vec<Want>,
    copied: Copied,
}

/// What bringing the planned tags in place came to.
enum Written {
    /// Done; the if-newer tags written or found in place, for their second look.
    Claims(Vec<Claim>),
    /// Nothing written: the manifest shows an artifact, which the plan did not know.
    Artifact(Artifact),
}

/// One read (the manifest, and where each tag points now), then the writes:
/// guarded ones first while that read is fresh, then the rest. An archived
/// image gets no write: putting its manifest again would restore it.
///
/// `to`: a promotion's target, where the tags are read and written; the image is read from
/// the pushed repository and copied there first ([`promote`]) unless the target holds it.
async fn write_planned<R: Blobs>(
    registry: &R,
    settings: &Settings,
    job: &Job<'_>,
    digest: &Digest,
    to: Option<&Repository>,
    group: &mut Group,
) -> Result<Written, RetagError> {
    let (candidates, wants, tags) = (std::mem::take(&mut group.candidates), std::mem::take(&mut group.wants), &mut group.tags);
    if candidates.is_empty() && wants.is_empty() {
        return Ok(Written::Claims(Vec::new()));
    }
    let (rules, name) = (&settings.rules, job.repository.name.as_str());
    let place = to.unwrap_or(&job.repository);
    let asked: Vec<Tag> = candidates.iter().chain(wants.iter().map(|w| &w.tag)).cloned().collect();
    let read_at = Instant::now();
    let snapshot = match registry.read(place, Lookup::Digest(digest), &asked).await {
        Ok(snapshot) => snapshot,
        // A target's failure is its tags', not the whole event's: the pushed repository's tags stand.
        Err(e) if to.is_some() => {
            promote::refuse(tags, &asked, &promote::Refusal::reading(place, e));
            return Ok(Written::Claims(Vec::new()));
        }
        Err(e) => return Err(RetagError::reading(place, e)),
    };
    let Snapshot { image: found, tags: current, archived } = snapshot;
    // Not in the target yet: the pushed repository's image, to be copied (read unless known).
    let arriving = to.is_some() && found.is_none();
    let (found, archived) = match (arriving, job.image.get()) {
        (true, Some(_)) => (None, false),
        (true, None) => {
            let source = read(registry, &job.repository, Lookup::Digest(digest), &[]).await?;
            (source.image, source.archived)
        }
        (false, _) => (found, archived),
    };
    if archived {
        archived_image(registry, settings, job, if arriving { &job.repository } else { place }, digest, &asked, tags).await;
        return Ok(Written::Claims(Vec::new()));
    }
    let not_found = || RetagError::ImageNotFound { repository: name.to_owned(), reference: digest.to_string() };
    // The pushed repository's image is kept in the job, for a promotion to copy without reading it again.
    let owned: Image;
    let image: &Image = match (to, found) {
        (None, Some(image)) => job.image.get_or_init(|| image),
        (Some(_), Some(image)) => {
            owned = image;
            &owned
        }
        (None, None) => return Err(not_found()),
        (Some(_), None) => job.image.get().ok_or_else(not_found)?,
    };
    if let (None, Some(artifact)) = (&job.artifact, Artifact::of_manifest(&image.manifest)) {
        return Ok(Written::Artifact(artifact));
    }
    // Escaped (Debug) so a manifest's newlines stay inside one log line.
    tracing::debug!(digest = %image.digest, media_type = ?image.media_type, manifest = ?image.manifest, "manifest read");
    let mut to_write = Vec::new();
    for tag in candidates {
        let entry = entry(tags, &tag);
        match current.get(&tag) {
            Some(TagState::At(d)) if d == digest => entry.mark(Outcome::Unchanged, None),
            Some(TagState::At(other)) => to_write.push((tag, Was::At(other.clone()))),
            Some(TagState::Archived) => to_write.push((tag, Was::Archived)),
            Some(TagState::Absent) | None => to_write.push((tag, Was::Nowhere)),
            Some(TagState::Unreadable(fault)) => entry.fail(fault),
        }
    }
    // An if-newer tag found in place may still need putting back after its second look.
    let media_type = if job.dry_run || (to_write.is_empty() && wants.is_empty()) {
        // Nothing is put: no media type needed (and an unknown one is no reason to fail).
        String::new()
    } else {
        media_type(image, job.media_type)?
    };
    let mut via = Via::new(true, promote::streaming(rules, tags));
    if let (Some(target), true, false) = (to, arriving, job.dry_run) {
        // Boxed, as the other nested steps: the event's future would otherwise outgrow a thread's stack.
        match Box::pin(promote::arrive(registry, &job.repository, target, image, via.stream)).await {
            Ok((used, copied)) => {
                via = used;
                group.copied = copied;
            }
            Err(refusal) => {
                promote::refuse(tags, &asked, &refusal);
                return Ok(Written::Claims(Vec::new()));
            }
        }
    }
    let target = Target { repository: place, image, media_type: &media_type };
    let mut claims = Vec::new();
    if !wants.is_empty() {
        let guard = Guard { registry, rules, target, concurrency: settings.write_concurrency, dry_run: job.dry_run };
        claims = guard.write(wants, Some(Observed { at: read_at, tags: current }), tags).await?;
    }
    if job.dry_run {
        for (tag, previous) in to_write {
            let (outcome, detail) = previous.outcome(true);
            entry(tags, &tag).mark(outcome, detail);
        }
    } else if !to_write.is_empty() {
        put::write(registry, &target, to_write, settings.write_concurrency, tags).await?;
    }
    if let (Some(target), false) = (to, job.dry_run) {
        let referrers = Box::pin(promote::referrers_follow(registry, &job.repository, target, digest, via, tags)).await;
        group.copied = group.copied.and(referrers);
    }
    Ok(Written::Claims(claims))
}

/// An archived image gets no tag: putting it again would restore it. Tags of a rule
/// that says `"restore_archived": true` start its restore instead (one call), and follow
/// once it is active (a redelivery, or the next sweep).
async fn archived_image<R: Registry>(
    registry: &R,
    settings: &Settings,
    job: &Job<'_>,
    place: &Repository,
    digest: &Digest,
    asked: &[Tag],
    tags: &mut BTreeMap<String, TagReport>,
) {
    let restoring: Vec<&Tag> =
        asked.iter().filter(|t| tags.get(t.as_str()).is_some_and(|r| settings.rules.restores_archived(&r.rules))).collect();
    let started = match (restoring.is_empty(), job.dry_run) {
        (true, _) => None,
        (false, true) => Some(Ok("would start its restore (\"restore_archived\": true); a dry run writes nothing")),
        (false, false) => Some(registry.restore(place, digest).await.map(|()| RESTORING)),
    };
    for tag in asked {
        let entry = entry(tags, tag);
        match (&started, restoring.contains(&tag)) {
            (Some(Ok(detail)), true) if job.dry_run => entry.mark(Outcome::Archived, Some((*detail).to_owned())),
            (Some(Ok(detail)), true) => entry.mark(Outcome::Restoring, Some((*detail).to_owned())),
            (Some(Err(e)), true) => entry.fail(&crate::apply::put::read_fault(e.clone())),
            _ => entry.mark(Outcome::Archived, Some(ARCHIVED.to_owned())),
        }
    }
}

/// What a tag says once its archived image's restore has started.
const RESTORING: &str = "the image was archived: its restore has started (up to 20 minutes; a 90-day minimum storage charge), and a redelivery or the next sweep writes the tag once it is active";

/// Why a tag is not put on an archived image.
const ARCHIVED: &str = "the image is archived: putting it again would restore it (a 90-day minimum storage charge, up to 20 minutes), so it is not written; restore it first (aws ecr update-image-storage-class --target-storage-class STANDARD) or let a rule do it (\"restore_archived\": true), and a redelivery or the next sweep writes the tag";

async fn read<R: Registry>(
    registry: &R,
    repository: &Repository,
    image: Lookup<'_>,
    tags: &[Tag],
) -> Result<Snapshot, RetagError> {
    registry.read(repository, image, tags).await.map_err(|e| RetagError::reading(repository, e))
}

fn artifact_reason(artifact: &Artifact) -> String {
    format!("{}: an artifact, not an image; no rule that matches opts in to artifacts (\"artifacts\": true)", artifact.describe())
}

/// ECR's own answer first, then the event's, then the manifest's `mediaType`
/// (OCI indexes and artifacts may have none, and PutImage then needs one).
pub(crate) fn media_type(image: &Image, from_event: Option<&str>) -> Result<String, RetagError> {
    #[derive(Deserialize)]
    struct Declared {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    image
        .media_type
        .clone()
        .or_else(|| from_event.map(str::to_owned))
        .or_else(|| serde_json::from_str::<Declared>(&image.manifest).ok().and_then(|d| d.media_type))
        .ok_or_else(|| RetagError::UnknownMediaType { digest: image.digest.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Fault, FaultKind};
    use crate::registry::memory::{Call, Failure, Memory};
    use crate::registry::PutError;
    use crate::domain::rules::RuleSet;

    const RELEASE: &str = r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}","v{major}.{minor}","{date:%Y%m%d}"]}]}"#;
    const MEDIA: &str = "application/vnd.docker.distribution.manifest.v2+json";

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn tag(t: &str) -> Tag {
        Tag::parse(t).unwrap()
    }

    /// Repository "app" holding image `d`.
    fn app_with(d: &Digest, manifest: &str, media_type: Option<&str>) -> Memory {
        let memory = Memory::with_repositories(&["app"]);
        memory.add_image("app", Image { digest: d.clone(), manifest: manifest.into(), media_type: media_type.map(Into::into) }, None);
        memory
    }

    fn point(memory: &Memory, t: &str, d: &Digest) {
        memory.point("app", &tag(t), d);
    }

    fn tag_at(memory: &Memory, t: &str) -> Option<Digest> {
        memory.tag("app", &tag(t))
    }

    /// The calls in short: `read N`, `put TAG MEDIA-TYPE`, `tags_of HHHH`, `remove TAG`, `repository_tags`.
    fn log(memory: &Memory) -> Vec<String> {
        memory
            .calls()
            .into_iter()
            .map(|c| match c {
                Call::Read { tags } => format!("read {tags}"),
                Call::Put { tag, media_type, .. } => format!("put {tag} {media_type}"),
                Call::TagsOf(d) => format!("tags_of {}", &d.hex()[..4]),
                Call::Remove(t) => format!("remove {t}"),
                other => other.kind().to_owned(),
            })
            .collect()
    }

    fn throttled(t: &str, message: &str) -> Failure {
        Failure::Put(Some(tag(t)), PutError::Fault(Fault::new(FaultKind::Throttled, "ThrottlingException", message)))
    }

    fn config(rules: &str) -> Settings {
        Settings::new(RuleSet::from_json(rules).unwrap())
    }

    fn push(t: &str, d: Option<&Digest>) -> Push {
        Push {
            repository: Repository::own(crate::domain::names::RepositoryName::parse("app").unwrap()),
            tag: tag(t),
            digest: d.cloned(),
            pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(),
            media_type: None,
            artifact_media_type: None,
            dry_run: false,
        }
    }

    fn outcomes(report: &Report) -> Vec<(&str, Outcome)> {
        report.tags.iter().map(|t| (t.tag.as_str(), t.outcome)).collect()
    }

    async fn run(fake: &Memory, rules: &str, p: &Push) -> Result<Report, RetagError> {
        retag(fake, &config(rules), p).await
    }

    #[tokio::test]
    async fn given_a_release_push_then_each_derived_tag_is_created_with_one_read() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        point(&fake, "v1.4.2", &d);
        let report = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
        assert_eq!(report.status, Status::Applied);
        assert_eq!(
            outcomes(&report),
            [("20261124", Outcome::Created), ("stable", Outcome::Created), ("v1", Outcome::Created), ("v1.4", Outcome::Created)]
        );
        let mut calls = log(&fake);
        calls.sort();
        assert_eq!(
            calls,
            [
                format!("put 20261124 {MEDIA}"),
                format!("put stable {MEDIA}"),
                format!("put v1 {MEDIA}"),
                format!("put v1.4 {MEDIA}"),
                "read 4".to_string()
            ]
        );
        for t in ["stable", "v1", "v1.4", "20261124"] {
            assert_eq!(tag_at(&fake, t), Some(d.clone()));
        }
        assert_eq!(fake.max_in_flight(), 4, "independent writes run concurrently");
    }

    #[tokio::test]
    async fn given_the_tags_are_in_place_when_the_event_comes_again_then_nothing_is_written() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
        fake.clear_calls();
        let report = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
        assert!(report.tags.iter().all(|t| t.outcome == Outcome::Unchanged), "{report:?}");
        assert_eq!(log(&fake), ["read 4"]);
    }

    #[tokio::test]
    async fn given_no_rule_matches_then_no_call_is_made() {
        let fake = Memory::with_repositories(&["app"]);
        let report = run(&fake, RELEASE, &push("latest", Some(&digest(1)))).await.unwrap();
        assert_eq!(report.status, Status::Ignored);
        assert!(report.reason.unwrap().contains("no rule matches"));
        assert!(log(&fake).is_empty());
    }

    #[tokio::test]
    async fn given_stable_on_another_image_then_it_moves_and_says_from_where() {
        let (old, new) = (digest(1), digest(2));
        let fake = app_with(&new, "{}", Some(MEDIA));
        point(&fake, "stable", &old);
        let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#, &push("v2.0.0", Some(&new)))
            .await
            .unwrap();
        assert_eq!(report.tags[0].outcome, Outcome::Moved);
        assert_eq!(report.tags[0].detail.as_deref(), Some(format!("was {old}").as_str()));
        assert_eq!(tag_at(&fake, "stable"), Some(new));
    }

    #[tokio::test]
    async fn a_dry_run_reads_but_never_writes() {
        let (old, new) = (digest(1), digest(2));
        let fake = app_with(&new, "{}", Some(MEDIA));
        point(&fake, "stable", &old);
        let mut p = push("v2.0.0", Some(&new));
        p.dry_run = true;
        let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable","v{major}"]}]}"#, &p).await.unwrap();
        assert_eq!(report.status, Status::DryRun);
        assert_eq!(outcomes(&report), [("stable", Outcome::WouldMove), ("v2", Outcome::WouldCreate)]);
        assert_eq!(log(&fake), ["read 2"]);
        assert_eq!(tag_at(&fake, "stable"), Some(old));
    }

    #[tokio::test]
    async fn an_immutable_tag_already_on_this_image_is_unchanged_and_elsewhere_a_conflict() {
        let (mine, other) = (digest(1), digest(2));
        let fake = app_with(&mine, "{}", Some(MEDIA));
        fake.set_immutable("app");
        point(&fake, "stable", &other);
        let err = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable","v{major}"]}]}"#, &push("v1.0.0", Some(&mine)))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Permanent.TagsNotApplied");
        let report = err.report().unwrap();
        assert_eq!(outcomes(report), [("stable", Outcome::Conflict), ("v1", Outcome::Created)]);
        assert!(err.to_string().contains("`stable` conflict (the tag is immutable and points at"), "{err}");
        assert_eq!(log(&fake).iter().filter(|c| c.starts_with("read")).count(), 2, "conflicts are re-read once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_look_revises_the_promoted_tag_it_concerns_not_the_home_tag_of_the_same_name() {
        let (mine, newer) = (digest(3), digest(4));
        let fake = app_with(&mine, "{}", Some(MEDIA));
        fake.add_repository("prod/app");
        fake.add_image("prod/app", Image { digest: newer.clone(), manifest: r#"{"n":4}"#.into(), media_type: Some(MEDIA.into()) }, None);
        fake.point("prod/app", &tag("v1.4.0"), &newer);
        // The last registered runs first: the home put sees nothing; right after the target's, a
        // newer version takes the target's `stable`.
        let moved = newer.clone();
        fake.after_put(move |tags| {
            tags.insert(tag("stable"), moved);
        });
        fake.after_put(|_| {});
        let rules = r#"{"rules":[
            {"name":"home","semver":true,"repositories":["app"],"move":"if-newer","tags":["stable"]},
            {"name":"promote","semver":true,"repositories":["app"],"to":"prod/{repository}","move":"if-newer","tags":["stable"]}]}"#;
        let report = run(&fake, rules, &push("v1.3.0", Some(&mine))).await.unwrap();
        let got: Vec<(Option<&str>, &str, Outcome)> = report.tags.iter().map(|t| (t.repository.as_deref(), t.tag.as_str(), t.outcome)).collect();
        assert_eq!(got, [(None, "stable", Outcome::Created), (Some("prod/app"), "stable", Outcome::Superseded)]);
        assert_eq!((tag_at(&fake, "stable"), fake.tag("prod/app", &tag("stable"))), (Some(mine), Some(newer)));
    }

    #[tokio::test]
    async fn an_immutable_tag_written_by_a_concurrent_delivery_is_unchanged() {
        // The read says absent, but by the time of PutImage another delivery wrote them all.
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        fake.set_immutable("app");
        let theirs = d.clone();
        fake.before_put(move |tags| {
            for t in ["20261124", "stable", "v1", "v1.4"] {
                tags.insert(tag(t), theirs.clone());
            }
        });
        let report = retag(&fake, &config(RELEASE), &push("v1.4.2", Some(&d))).await.unwrap();
        assert!(report.tags.iter().all(|t| t.outcome == Outcome::Unchanged), "{report:?}");
    }

    #[tokio::test]
    async fn a_retryable_write_failure_fails_the_invocation_as_retryable_and_keeps_the_rest() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        fake.fail(throttled("v1", "Rate exceeded"), None);
        let err = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap_err();
        assert_eq!(err.error_type(), "Retryable.TagsNotApplied");
        let report = err.report().unwrap();
        assert_eq!(report.tags.iter().filter(|t| t.outcome == Outcome::Created).count(), 3);
        assert!(err.to_string().starts_with("1 of 4 tags not in place for app@sha256:0101"), "{err}");
        assert!(err.to_string().contains("`v1` failed (ThrottlingException: Rate exceeded)"), "{err}");
    }

    #[tokio::test]
    async fn a_deleted_image_or_repository_is_a_permanent_error() {
        let fake = Memory::with_repositories(&["app"]);
        let err = run(&fake, RELEASE, &push("v1.4.2", Some(&digest(9)))).await.unwrap_err();
        assert_eq!(err.error_type(), "Permanent.ImageNotFound");
        assert!(err.to_string().contains(&digest(9).to_string()));

        let fake = Memory::default();
        let err = run(&fake, RELEASE, &push("v1.4.2", Some(&digest(9)))).await.unwrap_err();
        assert_eq!(err.error_type(), "Permanent.RepositoryNotFound");
        assert_eq!(log(&fake).len(), 1, "no retry storm: one read, then stop");
    }

    #[tokio::test]
    async fn a_direct_request_without_digest_uses_the_tags_current_image() {
        let d = digest(3);
        let fake = app_with(&d, "{}", Some(MEDIA));
        point(&fake, "v1.4.2", &d);
        let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["sha-{digest:6}"]}]}"#, &push("v1.4.2", None))
            .await
            .unwrap();
        assert_eq!(report.digest.as_deref(), Some(d.as_str()));
        assert_eq!(outcomes(&report), [("sha-030303", Outcome::Created)]);
        assert_eq!(log(&fake)[0], "read 0", "first the tag is resolved");

        let err = run(&fake, RELEASE, &push("v9.9.9", None)).await.unwrap_err();
        assert_eq!(err.error_type(), "Permanent.ImageNotFound");
    }

    #[tokio::test]
    async fn an_invalid_rendering_fails_permanently_but_valid_tags_are_written() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        let err = run(&fake, r#"{"rules":[{"name":"r","match":"x(.*)","tags":["{1}","ok"]}]}"#, &push("x", Some(&d)))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Permanent.TagsNotApplied");
        assert_eq!(outcomes(err.report().unwrap()), [("", Outcome::Invalid), ("ok", Outcome::Created)]);
    }

    #[tokio::test]
    async fn the_media_type_falls_back_to_the_event_then_the_manifest() {
        let d = digest(1);
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let fake = app_with(&d, index, None);
        run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
        assert!(log(&fake).iter().any(|c| c == "put stable application/vnd.oci.image.index.v1+json"));

        let fake = app_with(&d, r#"{"schemaVersion":2,"manifests":[]}"#, None);
        let mut p = push("v1.4.2", Some(&d));
        p.media_type = Some("application/vnd.oci.image.index.v1+json".into());
        run(&fake, RELEASE, &p).await.unwrap();
        assert!(log(&fake).iter().any(|c| c == "put stable application/vnd.oci.image.index.v1+json"));

        let fake = app_with(&d, r#"{"schemaVersion":2,"manifests":[]}"#, None);
        let err = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap_err();
        assert_eq!(err.error_type(), "Permanent.UnknownMediaType");
        assert!(log(&fake).iter().all(|c| c.starts_with("read")), "nothing is written without a media type");
    }

    const CAREFUL: &str = r#"{"rules":[{"name":"release","semver":true,"move":"if-newer","tags":["stable","v{major}","v{major}.{minor}"]}]}"#;

    // Paused clock: the second look's wait passes at once.
    #[tokio::test(start_paused = true)]
    async fn given_v1_3_0_holds_the_line_when_v1_2_9_is_pushed_then_only_v1_2_moves() {
        let (old_line, new_line, hotfix) = (digest(1), digest(2), digest(3));
        let fake = app_with(&hotfix, "{}", Some(MEDIA));
        for t in ["v1.3.0", "v1.3", "v1", "stable"] {
            point(&fake, t, &new_line);
        }
        point(&fake, "v1.2", &old_line);
        point(&fake, "v1.2.8", &old_line);
        let report = run(&fake, CAREFUL, &push("v1.2.9", Some(&hotfix))).await.unwrap();
        assert_eq!(
            outcomes(&report),
            [("stable", Outcome::SkippedNotNewer), ("v1", Outcome::SkippedNotNewer), ("v1.2", Outcome::Moved)]
        );
        assert_eq!(
            report.tags[0].detail.as_deref(),
            Some(format!("held by {new_line} at version 1.3.0; 1.2.9 is not newer").as_str())
        );
        assert_eq!((tag_at(&fake, "stable"), tag_at(&fake, "v1.2")), (Some(new_line.clone()), Some(hotfix)));
        let mut calls = log(&fake);
        calls.sort();
        assert_eq!(
            calls,
            [format!("put v1.2 {MEDIA}"), "read 1".into(), "read 3".into(), "tags_of 0101".into(), "tags_of 0202".into()],
            "one look per holder, and a second look at the moved tag"
        );
    }

    // Paused clock: the second look's wait passes at once.
    #[tokio::test(start_paused = true)]
    async fn a_newer_version_moves_and_a_holder_without_version_counts_as_older() {
        let (held, pushed) = (digest(1), digest(2));
        let fake = app_with(&pushed, "{}", Some(MEDIA));
        point(&fake, "v1.3.0", &held);
        point(&fake, "stable", &held);
        let report = run(&fake, CAREFUL, &push("v1.10.0", Some(&pushed))).await.unwrap();
        assert_eq!(outcomes(&report), [("stable", Outcome::Moved), ("v1", Outcome::Created), ("v1.10", Outcome::Created)], "1.10 > 1.3 by precedence, not by text");

        let fake = app_with(&pushed, "{}", Some(MEDIA));
        point(&fake, "stable", &held);
        point(&fake, "latest", &held);
        let report = run(&fake, CAREFUL, &push("v0.1.0", Some(&pushed))).await.unwrap();
        assert_eq!(report.tags.iter().find(|t| t.tag == "stable").map(|t| t.outcome), Some(Outcome::Moved));
    }

    // Paused clock: the second look's wait passes at once.
    #[tokio::test(start_paused = true)]
    async fn if_newer_costs_no_extra_read_unless_a_tag_would_move() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        run(&fake, CAREFUL, &push("v1.4.2", Some(&d))).await.unwrap();
        assert!(log(&fake).iter().all(|c| !c.starts_with("tags_of")), "{:?}", log(&fake));
    }

    const GATED: &str = r#"{"rules":[
        {"name":"scanned","semver":true,"when":{"scan":"MEDIUM"},"tags":["stable"]},
        {"name":"plain","semver":true,"tags":["v{major}"]}
    ]}"#;

    fn scan(d: &Digest, tags: &[&str], findings: &[(&str, u64)]) -> ScanResult {
        ScanResult {
            repository: Repository::own(crate::domain::names::RepositoryName::parse("app").unwrap()),
            digest: d.clone(),
            tags: Sources::new(tags.iter().map(|t| tag(t)).collect()).unwrap(),
            scanned_at: "2026-11-24T10:20:00Z".parse().unwrap(),
            findings: crate::domain::scan::Findings { unsplit: None, counts: findings.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect() },
        }
    }

    #[tokio::test]
    async fn a_scan_gated_tag_is_deferred_on_push_and_written_when_the_scan_passes() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        let report = run(&fake, GATED, &push("v1.4.2", Some(&d))).await.unwrap();
        assert_eq!(outcomes(&report), [("stable", Outcome::Deferred), ("v1", Outcome::Created)]);
        assert_eq!(tag_at(&fake, "stable"), None);

        let report = promote_scanned(&fake, &config(GATED), &scan(&d, &["v1.4.2", "v1"], &[("MEDIUM", 4), ("LOW", 7)])).await.unwrap();
        assert_eq!(outcomes(&report), [("stable", Outcome::Created)], "the ungated v1 is not touched again");
        assert_eq!(tag_at(&fake, "stable"), Some(d));
        let scanned = report.scan.unwrap();
        assert_eq!((scanned.image_tags.len(), scanned.findings.get("MEDIUM")), (2, Some(&4)));
    }

    #[tokio::test]
    async fn a_scan_with_findings_above_the_gate_blocks_without_writing() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        let report = promote_scanned(&fake, &config(GATED), &scan(&d, &["v1.4.2"], &[("HIGH", 1), ("MEDIUM", 4)])).await.unwrap();
        assert_eq!(report.status, Status::Applied, "a policy decision, not an error to retry");
        assert_eq!(outcomes(&report), [("stable", Outcome::Blocked)]);
        assert_eq!(report.tags[0].detail.as_deref(), Some("the scan found HIGH 1, MEDIUM 4; the rule allows findings up to MEDIUM"));
        assert!(log(&fake).is_empty(), "nothing to write, nothing read");

        let all_deferred = r#"{"rules":[{"name":"g","semver":true,"when":{"scan":"LOW"},"tags":["stable"]}]}"#;
        run(&fake, all_deferred, &push("v1.4.2", Some(&d))).await.unwrap();
        assert!(log(&fake).is_empty(), "a push whose tags all wait costs no call");
        let ungated = promote_scanned(&fake, &config(RELEASE), &scan(&d, &["v1.4.2"], &[])).await.unwrap();
        assert_eq!(ungated.status, Status::Ignored);
    }

    const RETIRE: &str = r#"{"rules":[{"name":"retire","match":"latest","remove_source":true,"tags":["edge","main"]}]}"#;

    #[tokio::test]
    async fn the_source_tag_is_removed_once_every_derived_tag_is_in_place() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        point(&fake, "latest", &d);
        let report = run(&fake, RETIRE, &push("latest", Some(&d))).await.unwrap();
        assert_eq!(outcomes(&report), [("edge", Outcome::Created), ("latest", Outcome::Removed), ("main", Outcome::Created)]);
        assert_eq!((tag_at(&fake, "latest"), tag_at(&fake, "edge")), (None, Some(d.clone())));
        assert_eq!(log(&fake).last().map(String::as_str), Some("remove latest"));
        assert_eq!(log(&fake).iter().filter(|c| c.starts_with("read")).count(), 2, "a re-read right before removing");

        // The event comes again: nothing left to do.
        let report = run(&fake, RETIRE, &push("latest", Some(&d))).await.unwrap();
        assert_eq!(report.tags.iter().find(|t| t.tag == "latest").and_then(|t| t.detail.as_deref()), Some("already gone"));
    }

    #[tokio::test]
    async fn the_source_tag_stays_when_a_derived_tag_did_not_land_or_it_moved_on() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        point(&fake, "latest", &d);
        fake.fail(throttled("main", "slow"), None);
        let err = run(&fake, RETIRE, &push("latest", Some(&d))).await.unwrap_err();
        let latest = err.report().unwrap().tags.iter().find(|t| t.tag == "latest").unwrap().clone();
        assert_eq!(latest.outcome, Outcome::Kept);
        assert_eq!(latest.detail.as_deref(), Some("kept: not every derived tag is in place (`main` failed)"));
        assert!(log(&fake).iter().all(|c| !c.starts_with("remove")));
        assert_eq!(tag_at(&fake, "latest"), Some(d.clone()));

        // The pipeline pushed `latest` again (another image) before this event was handled.
        let fake = app_with(&d, "{}", Some(MEDIA));
        point(&fake, "latest", &digest(2));
        let report = run(&fake, RETIRE, &push("latest", Some(&d))).await.unwrap();
        let latest = report.tags.iter().find(|t| t.tag == "latest").unwrap();
        assert_eq!(latest.outcome, Outcome::Kept);
        assert!(latest.detail.as_deref().unwrap().contains("now points at sha256:0202"), "{latest:?}");
        assert_eq!(tag_at(&fake, "latest"), Some(digest(2)));

        // A rule deriving nothing but the source itself never removes it.
        let fake = app_with(&d, "{}", Some(MEDIA));
        point(&fake, "latest", &d);
        let own = r#"{"rules":[{"name":"self","match":"latest","remove_source":true,"tags":["{tag}"]}]}"#;
        let report = run(&fake, own, &push("latest", Some(&d))).await.unwrap();
        assert_eq!(outcomes(&report), [("latest", Outcome::Kept)]);
        assert_eq!(tag_at(&fake, "latest"), Some(d));
    }

    #[tokio::test]
    async fn rules_with_repository_tags_apply_only_to_repositories_that_carry_them() {
        let opt_in = r#"{"rules":[{"name":"opt-in","semver":true,"repository_tags":{"retag":"enabled"},"tags":["stable"]}]}"#;
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        let report = run(&fake, opt_in, &push("v1.0.0", Some(&d))).await.unwrap();
        assert_eq!(report.status, Status::Ignored);
        assert_eq!(report.reason.as_deref(), Some("no rule applies: rule \"opt-in\" needs repository tag retag=enabled"));
        assert_eq!(log(&fake), ["repository_tags"]);

        let fake = app_with(&d, "{}", Some(MEDIA));
        fake.set_resource_tags("app", &[("retag", "enabled")]);
        let report = run(&fake, opt_in, &push("v1.0.0", Some(&d))).await.unwrap();
        assert_eq!(outcomes(&report), [("stable", Outcome::Created)]);
        assert!(run(&fake, RELEASE, &push("v1.0.0", Some(&d))).await.is_ok());
        assert_eq!(log(&fake).iter().filter(|c| *c == "repository_tags").count(), 1, "rules without the field never look");
    }

    #[tokio::test]
    async fn writes_stay_within_the_concurrency_bound() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        let mut c = config(r#"{"rules":[{"name":"r","semver":true,"tags":["a","b","c","d","e"]}]}"#);
        c.write_concurrency = 2;
        retag(&fake, &c, &push("v1.0.0", Some(&d))).await.unwrap();
        assert_eq!(fake.max_in_flight(), 2);
        assert_eq!(log(&fake).len(), 6);
    }

    const CATCH_ALL: &str = r#"{"rules":[{"name":"all","match":".*","tags":["latest"]}]}"#;

    #[tokio::test]
    async fn a_signature_tag_is_ignored_as_an_artifact_without_a_call() {
        let d = digest(2);
        let fake = app_with(&d, "{}", Some(MEDIA));
        for tag in [format!("sha256-{}.sig", digest(1).hex()), format!("sha256-{}", digest(1).hex())] {
            let report = run(&fake, CATCH_ALL, &push(&tag, Some(&d))).await.unwrap();
            assert_eq!(report.status, Status::Ignored, "{tag}");
            let reason = report.reason.unwrap();
            assert!(reason.contains("an artifact, not an image") && reason.contains(&tag), "{reason}");
        }
        assert!(log(&fake).is_empty(), "told by the tag: no call");
        assert_eq!(tag_at(&fake, "latest"), None);
    }

    #[tokio::test]
    async fn an_event_naming_an_sbom_type_costs_no_call() {
        let d = digest(2);
        let fake = app_with(&d, "{}", Some(MEDIA));
        let mut p = push("v1.4.2", Some(&d));
        p.artifact_media_type = Some("application/spdx+json".into());
        let report = run(&fake, CATCH_ALL, &p).await.unwrap();
        assert_eq!(report.reason.as_deref().map(|r| r.starts_with("an SPDX SBOM (media type application/spdx+json)")), Some(true));
        assert!(log(&fake).is_empty());
    }

    #[tokio::test]
    async fn a_referrer_told_only_by_its_manifest_is_read_once_and_never_written() {
        let d = digest(2);
        let referrer = format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.empty.v1+json"}},"layers":[],"subject":{{"digest":"{}"}}}}"#, digest(1));
        let fake = app_with(&d, &referrer, Some(MEDIA));
        let report = run(&fake, CATCH_ALL, &push("signed", Some(&d))).await.unwrap();
        assert_eq!(report.status, Status::Ignored);
        assert!(report.reason.unwrap().starts_with(&format!("a referrer of {}", digest(1))));
        assert_eq!(log(&fake), ["read 1"], "the read that shows the manifest, and no write");
    }

    #[tokio::test]
    async fn only_a_rule_that_opts_in_tags_an_artifact() {
        let rules = r#"{"rules":[
            {"name":"all","match":".*","tags":["latest"]},
            {"name":"signatures","match":"sha256-.*","artifacts":true,"tags":["signature"]}
        ]}"#;
        let d = digest(2);
        let fake = app_with(&d, "{}", Some(MEDIA));
        let report = run(&fake, rules, &push(&format!("sha256-{}.sig", digest(1).hex()), Some(&d))).await.unwrap();
        assert_eq!(outcomes(&report), [("signature", Outcome::Created)], "not latest: that rule does not opt in");
        assert_eq!(tag_at(&fake, "latest"), None);
    }


    #[tokio::test]
    async fn an_archived_image_gets_no_tag_and_says_why_without_failing() {
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        fake.archive("app", &d);
        let report = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
        assert!(report.tags.iter().all(|t| t.outcome == Outcome::Archived), "{report:?}");
        assert!(report.tags[0].detail.as_deref().unwrap().starts_with("the image is archived: putting it again would restore it"));
        assert_eq!(log(&fake), ["read 4"], "one read, no write");
    }

    #[tokio::test]
    async fn a_tag_held_by_an_archived_image_moves_off_it() {
        let (old, new) = (digest(1), digest(2));
        let fake = app_with(&new, "{}", Some(MEDIA));
        point(&fake, "stable", &old);
        fake.archive("app", &old);
        let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#, &push("v2.0.0", Some(&new))).await.unwrap();
        assert_eq!(outcomes(&report), [("stable", Outcome::Moved)]);
        assert_eq!(report.tags[0].detail.as_deref(), Some("was on an archived image"));
        assert_eq!(tag_at(&fake, "stable"), Some(new));
    }


    #[tokio::test]
    async fn a_rule_that_says_restore_archived_starts_the_restore_once_and_writes_nothing_yet() {
        let rules = r#"{"rules":[{"name":"r","semver":true,"restore_archived":true,"tags":["stable","v{major}"]}]}"#;
        let d = digest(1);
        let fake = app_with(&d, "{}", Some(MEDIA));
        fake.archive("app", &d);
        let report = run(&fake, rules, &push("v1.4.2", Some(&d))).await.unwrap();
        assert_eq!(outcomes(&report), [("stable", Outcome::Restoring), ("v1", Outcome::Restoring)]);
        assert!(report.tags[0].detail.as_deref().unwrap().starts_with("the image was archived: its restore has started"));
        assert_eq!(log(&fake), ["read 2", "restore"], "one restore for the image, no write");

        let mut p = push("v1.4.2", Some(&d));
        p.dry_run = true;
        fake.clear_calls();
        let report = run(&fake, rules, &p).await.unwrap();
        assert!(report.tags.iter().all(|t| t.outcome == Outcome::Archived && t.detail.as_deref().unwrap().starts_with("would start its restore")));
        assert_eq!(log(&fake), ["read 2"], "a dry run starts nothing");
    }

}
