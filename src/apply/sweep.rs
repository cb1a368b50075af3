//! The reconcile sweep: makes the rules hold for images whose events were
//! missed (ECR delivers events best-effort; Lambda drops what it cannot
//! process in time).
//!
//! For each repository: list its tagged images (DescribeImages, page by page),
//! apply the rules to every tag as if it had just been pushed at the image's
//! `imagePushedAt` ([`assess`], pure), and write what is missing through the
//! same writes as a push ([`crate::apply::retag`]). A tag several images derive ends
//! on one: for `"move": "if-newer"` rules the highest version, for the others
//! the most recent push. The sweep stops cleanly at its write budget or
//! before the deadline and says where to resume.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::invocation::{continuation_token, ReconcileRequest};
use crate::names::{Digest, RepositoryName, Tag};
use crate::plan::{self, Phase, Plan, Verdict};
use crate::registry::{Catalog, Listed, Lookup, ReadError, Repository, TagState};
use crate::report::{Outcome, TagReport};
use crate::apply::if_newer::{self, Claim, Guard, Observed, Want};
use crate::apply::put::{self, Target};
use crate::error::{Fault, FaultKind, RetagError};
use crate::apply::retag::media_type;
use crate::rules::{RuleSet, Subject};

/// One tag as the rules say it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub tag: Tag,
    /// The image it should point at.
    pub digest: Digest,
    /// Where it points now (`None`: nowhere).
    pub current: Option<Digest>,
    pub rules: Vec<String>,
    /// `"move": "if-newer"`: the winner's version; the write is then guarded
    /// ([`crate::apply::if_newer`]), since the listing may be older than an event's write.
    pub version: Option<semver::Version>,
}

/// What the rules want of one repository's images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    /// Sorted by tag.
    pub desired: Vec<Desired>,
    /// Tags the rules derive but that cannot or may not be written now
    /// (invalid renderings, loop risks, scan-gated without a passing scan).
    pub held_back: usize,
}

/// A candidate image for one derived tag.
struct Candidate<'a> {
    image: &'a Listed,
    rules: Vec<String>,
    if_newer: bool,
    version: Option<semver::Version>,
}

/// Applies the rules to every tag of every image, each as if just pushed at
/// the image's push time, and picks one image per derived tag. Pure.
pub fn assess(
    rules: &RuleSet,
    repository: &str,
    images: &[Listed],
    repository_tags: Option<&BTreeMap<String, String>>,
) -> Assessment {
    let mut candidates: BTreeMap<Tag, Vec<Candidate<'_>>> = BTreeMap::new();
    let mut held: BTreeSet<(String, &Digest)> = BTreeSet::new();
    let mut current: HashMap<&Tag, &Digest> = HashMap::new();
    for image in images {
        for t in &image.tags {
            current.insert(t, &image.digest);
        }
    }
    for image in images {
        let at = image.pushed_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let plan_for = |phase| {
            Plan::merge(image.tags.iter().map(|t| {
                let subject = Subject { repository, tag: t.as_str(), digest: &image.digest, pushed_at: at, repository_tags };
                plan::plan(rules, &subject, phase)
            }))
        };
        let mut planned = plan_for(Phase::Push);
        // A completed scan lets the gated tags through (or blocks them), as its event would have;
        // planned again only when some tag waits for it.
        let waiting = planned.tags.iter().any(|p| matches!(p.verdict, Verdict::Deferred(_)));
        if let (true, Some(findings)) = (waiting, &image.findings) {
            let scanned = plan_for(Phase::Scan(findings));
            for p in planned.tags.iter_mut().filter(|p| matches!(p.verdict, Verdict::Deferred(_))) {
                if let Some(s) = scanned.tags.iter().find(|s| s.tag == p.tag) {
                    p.verdict = s.verdict.clone();
                }
            }
        }
        for p in planned.tags {
            match p.verdict {
                // A tag the image carries itself is never planned against it; another image may still want it.
                Verdict::Write(tag) => {
                    let version = p.if_newer.then(|| rules.version_of(&p.rules, image.tags.iter().map(Tag::as_str))).flatten();
                    candidates.entry(tag).or_default().push(Candidate { image, rules: p.rules, if_newer: p.if_newer, version });
                }
                Verdict::Invalid(_) | Verdict::Loops(_) | Verdict::Deferred(_) | Verdict::Blocked(_) => {
                    held.insert((p.tag, &image.digest));
                }
            }
        }
    }
    let desired = candidates
        .into_iter()
        .filter_map(|(tag, cands)| {
            let holder = current.get(&tag).copied();
            let winner = winner(&cands, holder)?;
            Some(Desired {
                digest: winner.image.digest.clone(),
                current: holder.cloned(),
                rules: winner.rules.clone(),
                version: if winner.if_newer { winner.version.clone() } else { None },
                tag,
            })
        })
        .collect();
    Assessment { desired, held_back: held.len() }
}

/// The image a tag should end on. `if-newer` (every candidate's rules say
/// so): the highest version, an equal version staying where it is. Otherwise
/// the most recent push. Ties go to the current holder, then to the larger
/// digest, so every sweep picks the same.
fn winner<'c, 'a>(cands: &'c [Candidate<'a>], holder: Option<&Digest>) -> Option<&'c Candidate<'a>> {
    let by_version = cands.iter().all(|c| c.if_newer);
    let pushed = |c: &Candidate<'_>| c.image.pushed_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let holds = |c: &Candidate<'_>| Some(&c.image.digest) == holder;
    cands.iter().max_by(|a, b| {
        let version = if by_version {
            match (&a.version, &b.version) {
                (Some(x), Some(y)) => x.cmp_precedence(y),
                (x, y) => x.is_some().cmp(&y.is_some()),
            }
        } else {
            Ordering::Equal
        };
        let rest = if by_version {
            holds(a).cmp(&holds(b)).then_with(|| pushed(a).cmp(&pushed(b)))
        } else {
            pushed(a).cmp(&pushed(b)).then_with(|| holds(a).cmp(&holds(b)))
        };
        version.then(rest).then_with(|| a.image.digest.cmp(&b.image.digest))
    })
}

/// The answer to a reconcile request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    /// `complete`: every matching repository was swept; `stopped`: resume with `continuation`.
    pub status: SweepStatus,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
    /// PutImage calls made (0 in a dry run).
    pub writes: usize,
    /// A dry run: the PutImage calls a real sweep would make (they count against `max_writes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_write: Option<usize>,
    pub repositories: Vec<RepositorySweep>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SweepStatus {
    Complete,
    Stopped,
}

/// What a sweep found and did in one repository.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct RepositorySweep {
    pub repository: String,
    pub images_seen: usize,
    /// Created or moved (0 in a dry run).
    pub tags_written: usize,
    /// A dry run: tags a real sweep would create or move.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_write: Option<usize>,
    pub already_correct: usize,
    /// Immutable tags on another image.
    pub conflicts: usize,
    /// Failed writes, including full images (`tag_limit`).
    pub failed: usize,
    /// Derived but not to be written now: invalid, loop risk, or scan-gated without a passing scan.
    pub held_back: usize,
    /// Why this repository could not be swept (then the counts are what was done before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every tag written or not written for a reason worth reading.
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    pub tag: String,
    pub digest: String,
    pub rules: Vec<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl SweepReport {
    pub fn outcomes(&self) -> impl Iterator<Item = Outcome> + '_ {
        self.repositories.iter().flat_map(|r| r.changes.iter().map(|c| c.outcome))
    }
}

/// Why a sweep stops early.
enum Stop {
    Budget,
    Deadline,
}

/// Runs a sweep. `stop_by`: no new ECR work starts after this instant;
/// `settle_by`: the second look at if-newer tags ends by then.
pub async fn reconcile<R: Catalog>(
    registry: &R,
    config: &Config,
    request: &ReconcileRequest,
    stop_by: Option<Instant>,
    settle_by: Option<Instant>,
) -> Result<SweepReport, RetagError> {
    let dry_run = request.dry_run || config.dry_run;
    let mut report = SweepReport {
        status: SweepStatus::Complete,
        dry_run,
        reason: None,
        continuation: None,
        writes: 0,
        would_write: dry_run.then_some(0),
        repositories: Vec::new(),
    };
    let names = repositories(registry, request).await?;
    let out_of_time = || stop_by.is_some_and(|t| Instant::now() >= t);
    let mut claims: Vec<(usize, Claim)> = Vec::new();
    for name in names {
        // PutImage calls made, or in a dry run that would be made: what max_writes limits.
        let used = report.writes + report.would_write.unwrap_or(0);
        let stop = if used >= request.max_writes {
            Some(Stop::Budget)
        } else if out_of_time() {
            Some(Stop::Deadline)
        } else {
            let repository = Repository { registry_id: request.registry_id.clone(), region: None, name: name.clone() };
            let budget = request.max_writes - used;
            let (sweep, stop) = sweep_repository(registry, config, &repository, budget, dry_run, &out_of_time).await;
            match &mut report.would_write {
                Some(would) => *would += sweep.writes,
                None => report.writes += sweep.writes,
            }
            claims.extend(sweep.claims.into_iter().map(|c| (report.repositories.len(), c)));
            report.repositories.push(sweep.summary);
            stop
        };
        if let Some(stop) = stop {
            report.status = SweepStatus::Stopped;
            report.reason = Some(match stop {
                Stop::Budget => format!("stopped at max_writes ({}); resume with `continuation`", request.max_writes),
                Stop::Deadline => "stopped before the function's deadline; resume with `continuation`".to_owned(),
            });
            report.continuation = Some(continuation_token(&name));
            break;
        }
    }
    settle(registry, config, claims, settle_by, &mut report.repositories).await;
    Ok(report)
}

/// The second look at the if-newer tags the sweep wrote (one wait for all).
async fn settle<R: Catalog>(
    registry: &R,
    config: &Config,
    claims: Vec<(usize, Claim)>,
    settle_by: Option<Instant>,
    repositories: &mut [RepositorySweep],
) {
    if claims.is_empty() {
        return;
    }
    let (owners, claims): (Vec<(usize, String, String)>, Vec<Claim>) =
        claims.into_iter().map(|(i, c)| ((i, c.want.tag.to_string(), c.image.digest.to_string()), c)).unzip();
    let revisions = if_newer::settle(registry, &config.rules, claims, config.write_concurrency, settle_by).await;
    for ((i, tag, digest), revision) in owners.into_iter().zip(revisions) {
        let (Some(revision), Some(sweep)) = (revision, repositories.get_mut(i)) else { continue };
        let at = match sweep.changes.iter().position(|c| c.tag == tag && c.digest == digest) {
            Some(at) => at,
            None => {
                // Found in place (unchanged), so not listed until now.
                sweep.already_correct = sweep.already_correct.saturating_sub(1);
                sweep.tags_written += 1;
                sweep.changes.push(Change { tag, digest, rules: Vec::new(), outcome: Outcome::Unchanged, detail: None });
                sweep.changes.len() - 1
            }
        };
        if revision.outcome.is_problem() {
            sweep.tags_written = sweep.tags_written.saturating_sub(1);
            sweep.failed += 1;
        }
        sweep.changes[at].outcome = revision.outcome;
        sweep.changes[at].detail = Some(revision.detail);
    }
}

/// The repositories to sweep, sorted, from the resume point on. Literal
/// names need no listing; a glob lists the registry's repositories.
async fn repositories<R: Catalog>(registry: &R, request: &ReconcileRequest) -> Result<Vec<RepositoryName>, RetagError> {
    let mut names = match request.literal_names() {
        Some(names) => names,
        None => {
            let mut names = Vec::new();
            let mut page: Option<String> = None;
            loop {
                let listed = registry.repositories(request.registry_id.as_ref(), page.as_deref()).await.map_err(|e| {
                    let fault = match e {
                        ReadError::Fault(f) => f,
                        ReadError::RepositoryNotFound => Fault::new(FaultKind::Permanent, "RepositoryNotFoundException", "no registry to list"),
                    };
                    let registry = request.registry_id.as_ref().map_or_else(|| "(the caller's own)".to_owned(), ToString::to_string);
                    RetagError::Listing { registry, fault }
                })?;
                names.extend(listed.items.into_iter().filter(|n| request.covers(n.as_str())));
                match listed.next {
                    Some(next) => page = Some(next),
                    None => break,
                }
            }
            names
        }
    };
    names.sort();
    names.dedup();
    if let Some(from) = &request.resume_at {
        names.retain(|n| n >= from);
    }
    Ok(names)
}

struct Swept {
    summary: RepositorySweep,
    writes: usize,
    /// If-newer tags written, for the second look at the end of the sweep.
    claims: Vec<Claim>,
}

async fn sweep_repository<R: Catalog>(
    registry: &R,
    config: &Config,
    repository: &Repository,
    budget: usize,
    dry_run: bool,
    out_of_time: &impl Fn() -> bool,
) -> (Swept, Option<Stop>) {
    let name = repository.name.as_str();
    let summary = RepositorySweep { repository: name.to_owned(), would_write: dry_run.then_some(0), ..RepositorySweep::default() };
    let mut swept = Swept { summary, writes: 0, claims: Vec::new() };
    let failed = |mut swept: Swept, e: RetagError| match e {
        // Calls are being cut: the next repository would fare no better.
        RetagError::DeadlineExceeded { .. } => (swept, Some(Stop::Deadline)),
        e => {
            swept.summary.error = Some(e.to_string());
            (swept, None)
        }
    };

    let mut images = Vec::new();
    let mut page: Option<String> = None;
    loop {
        if out_of_time() {
            return (swept, Some(Stop::Deadline));
        }
        match registry.images(repository, page.as_deref()).await {
            Ok(listed) => {
                images.extend(listed.items);
                match listed.next {
                    Some(next) => page = Some(next),
                    None => break,
                }
            }
            Err(e) => return failed(swept, RetagError::reading(repository, e)),
        }
    }
    swept.summary.images_seen = images.len();

    let rules = &config.rules;
    let needs_tags = images.iter().flat_map(|i| &i.tags).any(|t| rules.needs_repository_tags(name, t.as_str()));
    let repository_tags = if needs_tags {
        match registry.repository_tags(repository).await {
            Ok(tags) => Some(tags),
            Err(e) => return failed(swept, RetagError::reading(repository, e)),
        }
    } else {
        None
    };

    let assessment = assess(rules, name, &images, repository_tags.as_ref());
    swept.summary.held_back = assessment.held_back;
    // Grouped by the image each tag should end on: one read per image, then its writes.
    let mut by_image: BTreeMap<Digest, Vec<Desired>> = BTreeMap::new();
    for d in assessment.desired {
        if d.current.as_ref() == Some(&d.digest) {
            swept.summary.already_correct += 1;
        } else {
            by_image.entry(d.digest.clone()).or_default().push(d);
        }
    }
    let media_types: HashMap<&Digest, Option<&str>> = images.iter().map(|i| (&i.digest, i.media_type.as_deref())).collect();

    for (digest, mut wanted) in by_image {
        let left = budget - swept.writes;
        if left == 0 {
            return (swept, Some(Stop::Budget));
        }
        if out_of_time() {
            return (swept, Some(Stop::Deadline));
        }
        let cut = wanted.len() > left;
        wanted.truncate(left);
        let media = media_types.get(&digest).copied().flatten();
        match apply(registry, config, repository, &digest, media, wanted, dry_run, &mut swept).await {
            Ok(()) => {}
            Err(e) => return failed(swept, e),
        }
        if cut {
            return (swept, Some(Stop::Budget));
        }
    }
    (swept, None)
}

/// Brings `wanted` (all to end on `digest`) in place: one read for the
/// manifest and where the tags point now, then the writes. A dry run only reports.
#[allow(clippy::too_many_arguments)]
async fn apply<R: Catalog>(
    registry: &R,
    config: &Config,
    repository: &Repository,
    digest: &Digest,
    media: Option<&str>,
    wanted: Vec<Desired>,
    dry_run: bool,
    swept: &mut Swept,
) -> Result<(), RetagError> {
    if dry_run {
        // From the listing alone: a dry run reads no manifest.
        swept.writes += wanted.len();
        *swept.summary.would_write.get_or_insert(0) += wanted.len();
        for d in wanted {
            let (outcome, detail) = match &d.current {
                Some(p) => (Outcome::WouldMove, Some(format!("was {p}"))),
                None => (Outcome::WouldCreate, None),
            };
            swept.summary.changes.push(Change { tag: d.tag.to_string(), digest: digest.to_string(), rules: d.rules, outcome, detail });
        }
        return Ok(());
    }
    let tags: Vec<Tag> = wanted.iter().map(|d| d.tag.clone()).collect();
    let read_at = Instant::now();
    let snapshot = registry.read(repository, Lookup::Digest(digest), &tags).await.map_err(|e| RetagError::reading(repository, e))?;
    let Some(image) = snapshot.image else {
        // Deleted since the listing: the next sweep sees the repository without it.
        return Ok(());
    };
    let mut reports: BTreeMap<String, TagReport> = BTreeMap::new();
    let mut to_write = Vec::new();
    let mut wants = Vec::new();
    for d in wanted {
        let report = TagReport { tag: d.tag.to_string(), rules: d.rules.clone(), outcome: Outcome::Failed, detail: None, retryable: false };
        match (snapshot.tags.get(&d.tag), d.version) {
            // Someone (an event) put it there since the listing.
            (Some(TagState::At(now)), _) if now == digest => swept.summary.already_correct += 1,
            (Some(TagState::Unreadable(fault)), _) => {
                reports.insert(d.tag.to_string(), TagReport { detail: Some(fault.to_string()), retryable: fault.retryable(), ..report });
            }
            (_, Some(version)) => {
                reports.insert(d.tag.to_string(), report);
                wants.push(Want { tag: d.tag, version, rules: d.rules });
            }
            (Some(TagState::At(other)), None) => {
                reports.insert(d.tag.to_string(), report);
                to_write.push((d.tag, Some(other.clone())));
            }
            (Some(TagState::Absent) | None, None) => {
                reports.insert(d.tag.to_string(), report);
                to_write.push((d.tag, None));
            }
        }
    }
    swept.writes += to_write.len() + wants.len();
    if !to_write.is_empty() || !wants.is_empty() {
        let media_type = media_type(&image, media)?;
        let target = Target { repository, image: &image, media_type: &media_type };
        put::write(registry, &target, to_write, config.write_concurrency, &mut reports).await?;
        if !wants.is_empty() {
            let guard = Guard { registry, rules: &config.rules, target, concurrency: config.write_concurrency, dry_run: false };
            let observed = Observed { at: read_at, tags: snapshot.tags };
            swept.claims.extend(guard.write(wants, Some(observed), &mut reports).await?);
        }
    }
    for r in reports.into_values() {
        match r.outcome {
            Outcome::Created | Outcome::Moved => swept.summary.tags_written += 1,
            // A newer version took the tag since the listing.
            Outcome::SkippedNotNewer => swept.summary.already_correct += 1,
            Outcome::Unchanged => swept.summary.already_correct += 1,
            Outcome::Conflict => swept.summary.conflicts += 1,
            _ => swept.summary.failed += 1,
        }
        if r.outcome != Outcome::Unchanged {
            swept.summary.changes.push(Change {
                tag: r.tag,
                digest: digest.to_string(),
                rules: r.rules,
                outcome: r.outcome,
                detail: r.detail,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Findings;

    const IF_NEWER: &str = r#"{"rules":[{"name":"release","semver":true,"move":"if-newer","tags":["stable","v{major}","v{major}.{minor}"]}]}"#;
    const ALWAYS: &str = r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}","v{major}.{minor}"]}]}"#;

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    /// Image `n` with these tags, pushed on day `day` of November 2026.
    fn image(n: u8, tags: &[&str], day: u32) -> Listed {
        Listed {
            digest: digest(n),
            tags: tags.iter().map(|t| Tag::parse(t).unwrap()).collect(),
            pushed_at: Some(format!("2026-11-{day:02}T10:00:00Z").parse().unwrap()),
            media_type: None,
            findings: None,
        }
    }

    /// tag -> (image it should end on, image it is on now)
    fn wanted(rules: &str, images: &[Listed]) -> BTreeMap<String, (u8, Option<u8>)> {
        let rules = RuleSet::from_json(rules).unwrap();
        let n = |d: &Digest| (1..=9).find(|i| digest(*i) == *d).unwrap();
        assess(&rules, "app", images, None)
            .desired
            .iter()
            .map(|d| (d.tag.to_string(), (n(&d.digest), d.current.as_ref().map(n))))
            .collect()
    }

    #[test]
    fn if_newer_tags_end_on_the_highest_version_whatever_the_push_order() {
        // Given v1.3.0 pushed before the hotfix v1.2.9, listed in either order
        let older_first = [image(1, &["v1.3.0"], 1), image(2, &["v1.2.9"], 2)];
        let newer_first = [image(2, &["v1.2.9"], 2), image(1, &["v1.3.0"], 1)];
        for images in [&older_first, &newer_first] {
            // Then stable and v1 belong to 1.3.0, v1.2 to the hotfix
            let expect: BTreeMap<String, (u8, Option<u8>)> =
                [("stable", (1, None)), ("v1", (1, None)), ("v1.2", (2, None)), ("v1.3", (1, None))]
                    .into_iter()
                    .map(|(t, w)| (t.to_owned(), w))
                    .collect();
            assert_eq!(wanted(IF_NEWER, images), expect);
        }
    }

    #[test]
    fn always_tags_end_on_the_most_recent_push() {
        let images = [image(1, &["v1.3.0", "stable", "v1"], 1), image(2, &["v1.2.9"], 2)];
        let w = wanted(ALWAYS, &images);
        assert_eq!(w["stable"], (2, Some(1)), "the hotfix was pushed last: stable moves to it");
        assert_eq!(w["v1"], (2, Some(1)));
        assert_eq!(w["v1.3"], (1, None));
    }

    #[test]
    fn tags_already_in_place_are_reported_as_such() {
        let images = [image(1, &["v1.3.0", "stable", "v1", "v1.3"], 1)];
        let w = wanted(IF_NEWER, &images);
        assert!(w.values().all(|(want, now)| Some(*want) == *now), "{w:?}");
    }

    #[test]
    fn an_equal_version_stays_where_it_is_and_ties_are_decided_the_same_way_every_time() {
        // Two builds of 1.3.0 (tagged `v1.3.0` and `1.3.0`): equal precedence.
        let images = [image(1, &["v1.3.0", "stable"], 1), image(2, &["1.3.0"], 2)];
        assert_eq!(wanted(IF_NEWER, &images)["stable"], (1, Some(1)), "the holder keeps an equal version");
        let images = [image(3, &["latest"], 5), image(2, &["latest-b"], 5)];
        let rules = r#"{"rules":[{"name":"any","match":"latest.*","tags":["edge"]}]}"#;
        assert_eq!(wanted(rules, &images)["edge"], (3, None), "same push time, no holder: the larger digest");
    }

    #[test]
    fn scan_gated_tags_need_a_passing_completed_scan() {
        let rules = RuleSet::from_json(
            r#"{"rules":[{"name":"safe","semver":true,"when":{"scan":"MEDIUM"},"tags":["stable"]},{"name":"rel","semver":true,"tags":["v{major}"]}]}"#,
        )
        .unwrap();
        let mut unscanned = image(1, &["v1.0.0"], 1);
        let a = assess(&rules, "app", std::slice::from_ref(&unscanned), None);
        assert_eq!((a.desired.len(), a.held_back), (1, 1), "v1 written, stable waits for a scan");

        unscanned.findings = Some(Findings { counts: [("LOW".to_owned(), 3)].into() });
        let a = assess(&rules, "app", std::slice::from_ref(&unscanned), None);
        assert_eq!(a.desired.iter().map(|d| d.tag.as_str()).collect::<Vec<_>>(), ["stable", "v1"]);

        unscanned.findings = Some(Findings { counts: [("HIGH".to_owned(), 1)].into() });
        let a = assess(&rules, "app", std::slice::from_ref(&unscanned), None);
        assert_eq!((a.desired.len(), a.held_back), (1, 1), "blocked by the HIGH finding");
    }

    #[test]
    fn date_stamps_come_from_each_image_push_time() {
        let rules = r#"{"rules":[{"name":"nightly","match":"main-.*","tags":["main-{date:%Y%m%d}"]}]}"#;
        let images = [image(1, &["main-abc"], 3), image(2, &["main-def"], 4), image(3, &["main-0f0"], 4)];
        let w = wanted(rules, &images);
        assert_eq!(w.keys().collect::<Vec<_>>(), ["main-20261103", "main-20261104"]);
        assert_eq!(w["main-20261104"].0, 3, "same day: the same push time, so the larger digest");
    }
}
