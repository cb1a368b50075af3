//! The reconcile sweep: makes the rules hold for images whose events were
//! missed (ECR delivers events best-effort; Lambda drops what it cannot
//! process in time).
//!
//! For each repository: list its tagged images (DescribeImages, page by page),
//! apply the rules to every tag as if it had just been pushed at the image's
//! `imagePushedAt` ([`crate::domain::assess`], pure), and write what is missing through the
//! same step from a read to the writes as an event ([`crate::apply::engine::Writes`], one write
//! order). A tag several images derive ends
//! on one: for `"move": "if-newer"` rules the highest version, for the others
//! the most recent push. The tags a rule promotes into another repository
//! are healed there the same way ([`heal`]). The sweep stops cleanly at its
//! write budget or before the deadline and says where to resume.

use std::collections::BTreeMap;
use tokio::time::Instant;

use crate::apply::Settings;
use crate::domain::request::{continuation_token, ReconcileRequest};
use crate::domain::names::{Digest, RepositoryName, Tag};
use crate::domain::artifact::Artifact;
use crate::domain::assess::{assess, Desired, Listed};
use crate::registry::{Blobs, Catalog, Lookup, ReadError, Repository};
use crate::report::{HeldReport, Outcome, RepositorySweep, SweepReport, SweepStatus, TagReport, MAX_HELD_LISTED};
use crate::apply::engine::{Group, Writes};
use crate::apply::if_newer::{Claim, Observed, Want};
use crate::apply::put::Target;
use crate::error::{Fault, FaultKind, RetagError};

mod heal;
mod report;

use report::{settle, tally, would_write};

/// Images per repository and sweep whose signatures are looked for (one read each); the
/// rest are looked at by the next sweep (their tags stay held back meanwhile).
const MAX_SIGNATURE_LOOKS: usize = 100;

/// Why a sweep stops early.
enum Stop {
    Budget,
    Deadline,
}

/// Runs a sweep. `stop_by`: no new ECR work starts after this instant;
/// `settle_by`: the second look at if-newer tags ends by then.
pub async fn reconcile<R: Catalog + Blobs>(
    registry: &R,
    settings: &Settings,
    request: &ReconcileRequest,
    stop_by: Option<Instant>,
    settle_by: Option<Instant>,
) -> Result<SweepReport, RetagError> {
    let dry_run = request.dry_run || settings.dry_run;
    let mut report = SweepReport {
        status: SweepStatus::Complete,
        dry_run,
        reason: None,
        continuation: None,
        writes: 0,
        would_write: dry_run.then_some(0),
        repositories: Vec::new(),
        enqueued: None,
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
            let repository = request.repository(name.clone());
            let budget = request.max_writes - used;
            let (sweep, stop) = sweep_repository(registry, settings, &repository, budget, dry_run, &out_of_time).await;
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
    settle(registry, settings, claims, settle_by, &mut report.repositories).await;
    Ok(report)
}

/// The repositories a sweep covers, sorted, from its continuation on (literal names cost no listing).
pub async fn repositories<R: Catalog>(registry: &R, request: &ReconcileRequest) -> Result<Vec<RepositoryName>, RetagError> {
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
                    RetagError::listing(request.registry_id.as_ref(), fault)
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
    /// Only report what would be written.
    dry_run: bool,
    writes: usize,
    /// The most writes this repository may take (what the sweep's `max_writes` leaves).
    budget: usize,
    /// If-newer tags written, for the second look at the end of the sweep.
    claims: Vec<Claim>,
}

async fn sweep_repository<R: Catalog + Blobs>(
    registry: &R,
    settings: &Settings,
    repository: &Repository,
    budget: usize,
    dry_run: bool,
    out_of_time: &impl Fn() -> bool,
) -> (Swept, Option<Stop>) {
    let name = repository.name.as_str();
    let summary = RepositorySweep { repository: name.to_owned(), would_write: dry_run.then_some(0), ..RepositorySweep::default() };
    let mut swept = Swept { summary, dry_run, writes: 0, budget, claims: Vec::new() };
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
    swept.summary.artifacts = images.iter().filter(|i| i.artifact.is_some()).count();
    swept.summary.archived = images.iter().filter(|i| i.archived).count();

    let rules = &settings.rules;
    let needs_tags = images.iter().flat_map(|i| &i.tags).any(|t| rules.needs_repository_tags(name, t.as_str()));
    let repository_tags = if needs_tags {
        match registry.repository_tags(repository).await {
            Ok(tags) => Some(tags),
            Err(e) => return failed(swept, RetagError::reading(repository, e)),
        }
    } else {
        None
    };

    let mut assessment = assess(rules, name, &images, repository_tags.as_ref());
    if !assessment.signature_looks.is_empty() {
        // Signed-gated tags the listing cannot decide (referrers and managed signing are not
        // listed): one look per image, then the rules again with what was found.
        for (digest, kinds) in assessment.signature_looks.iter().take(MAX_SIGNATURE_LOOKS) {
            if out_of_time() {
                return (swept, Some(Stop::Deadline));
            }
            match registry.signatures(repository, digest, *kinds).await {
                Ok(seen) => images.iter_mut().filter(|i| i.digest == *digest).for_each(|i| i.signatures = seen),
                Err(e) => return failed(swept, RetagError::reading(repository, e)),
            }
        }
        assessment = assess(rules, name, &images, repository_tags.as_ref());
    }
    swept.summary.held_back = assessment.held.len();
    swept.summary.held = assessment
        .held
        .iter()
        .take(MAX_HELD_LISTED)
        .map(|h| HeldReport {
            repository: h.to.as_ref().map(ToString::to_string),
            tag: h.tag.clone(),
            digest: h.digest.to_string(),
            reason: h.reason.clone(),
        })
        .collect();
    for h in assessment.held.iter().filter(|h| h.carried && h.to.is_none()) {
        report::carried(&mut swept, settings, &h.tag, &h.digest, &h.rules, None);
    }
    // The repository's own tags first, then each target's.
    let (own, promoted): (Vec<Desired>, Vec<Desired>) = assessment.desired.into_iter().partition(|d| d.to.is_none());
    // Grouped by the image each tag should end on: one read per image, then its writes.
    let mut by_image: BTreeMap<Digest, Vec<Desired>> = BTreeMap::new();
    for d in own {
        if d.current.as_ref() == Some(&d.digest) {
            swept.summary.already_correct += 1;
            report::in_place(&mut swept, settings, &d);
        } else {
            by_image.entry(d.digest.clone()).or_default().push(d);
        }
    }
    let listed: BTreeMap<&Digest, &Listed> = images.iter().map(|i| (&i.digest, i)).collect();

    for (digest, mut wanted) in by_image {
        let left = swept.budget.saturating_sub(swept.writes);
        if left == 0 {
            return (swept, Some(Stop::Budget));
        }
        if out_of_time() {
            return (swept, Some(Stop::Deadline));
        }
        let cut = wanted.len() > left;
        wanted.truncate(left);
        let ending = Ending::of(&digest, &listed);
        match apply(registry, settings, repository, ending, wanted, &mut swept).await {
            Ok(()) => {}
            Err(e) => return failed(swept, e),
        }
        if cut {
            return (swept, Some(Stop::Budget));
        }
    }
    match heal::promotions(registry, settings, repository, promoted, &listed, &mut swept, out_of_time).await {
        Ok(stop) => (swept, stop),
        Err(e) => failed(swept, e),
    }
}

/// The image a group of tags should end on, as the listing shows it.
#[derive(Clone, Copy)]
struct Ending<'a> {
    digest: &'a Digest,
    media_type: Option<&'a str>,
    /// A signature, attestation or SBOM, as the listing tells it.
    artifact: Option<&'a Artifact>,
}

impl<'a> Ending<'a> {
    fn of(digest: &'a Digest, listed: &BTreeMap<&Digest, &'a Listed>) -> Ending<'a> {
        let image = listed.get(digest);
        Ending { digest, media_type: image.and_then(|i| i.media_type.as_deref()), artifact: image.and_then(|i| i.artifact.as_ref()) }
    }
}

/// The tags to bring onto one image as the engine takes them: each with its entry (the rules it
/// came from; the writes mark its outcome), the if-newer ones apart.
fn group(wanted: Vec<Desired>) -> Group {
    let mut group = Group::default();
    for d in wanted {
        group.tags.insert(d.tag.to_string(), TagReport::new(d.tag.as_str(), d.rules.clone(), Outcome::Failed));
        match d.version {
            Some(version) => group.wants.push(Want { tag: d.tag, version, rules: d.rules }),
            None => group.candidates.push(d.tag),
        }
    }
    group
}

/// Brings `wanted` (all to end on one image) in place: one read for the
/// manifest and where the tags point now, then the writes. A dry run only reports.
async fn apply<R: Catalog>(
    registry: &R,
    settings: &Settings,
    repository: &Repository,
    ending: Ending<'_>,
    wanted: Vec<Desired>,
    swept: &mut Swept,
) -> Result<(), RetagError> {
    let Ending { digest, media_type: media, .. } = ending;
    if swept.dry_run {
        would_write(swept, digest, wanted, None);
        return Ok(());
    }
    let tags: Vec<Tag> = wanted.iter().map(|d| d.tag.clone()).collect();
    let read_at = Instant::now();
    let snapshot = registry.read(repository, Lookup::Digest(digest), &tags).await.map_err(|e| RetagError::reading(repository, e))?;
    let Some(image) = snapshot.image else {
        // Deleted since the listing: the next sweep sees the repository without it.
        return Ok(());
    };
    // Every wanted tag gets an entry (the rules it came from); the shared step marks its outcome.
    let Group { tags: mut reports, candidates, wants, .. } = group(wanted);
    let writes = Writes::sort(digest, Observed { at: read_at, tags: snapshot.tags }, candidates, wants, &mut reports);
    swept.writes += writes.len();
    let media_type = writes.media_type(&image, media, false)?;
    let target = Target { repository, image: &image, media_type: &media_type };
    swept.claims.extend(writes.apply(registry, settings, target, false, &mut reports).await?);
    tally(&mut swept.summary, reports, digest, None);
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    //! The sweep on the in-memory registry: what it writes, in which order, within which budget.
    use super::*;
    use crate::domain::rules::glob::Glob;
    use crate::domain::rules::RuleSet;
    use crate::registry::memory::{Call, Memory};
    use crate::registry::Image;

    /// If-newer moving tags, and a plain date stamp per push.
    const RULES: &str = r#"{"rules":[
        {"name":"lines","semver":true,"move":"if-newer","tags":["stable","v{major}","v{major}.{minor}"]},
        {"name":"stamp","semver":true,"tags":["built-{date:%Y%m%d}"]}]}"#;
    const MEDIA: &str = "application/vnd.oci.image.manifest.v1+json";

    pub(super) fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    pub(super) fn tag(t: &str) -> Tag {
        Tag::parse(t).unwrap()
    }

    /// Image `n` pushed into `repository` as `version` on day `day` of November 2026.
    pub(super) fn pushed(memory: &Memory, repository: &str, n: u8, version: &str, day: u32) {
        let manifest = format!(r#"{{"schemaVersion":2,"mediaType":"{MEDIA}","n":{n}}}"#);
        let at = format!("2026-11-{day:02}T10:00:00Z").parse().unwrap();
        memory.add_image(repository, Image { digest: digest(n), manifest, media_type: Some(MEDIA.into()) }, Some(at));
        memory.point(repository, &tag(version), &digest(n));
    }

    pub(super) fn request(globs: &[&str], max_writes: usize) -> ReconcileRequest {
        ReconcileRequest {
            repositories: globs.iter().map(|g| Glob::parse(g).unwrap()).collect(),
            max_writes,
            resume_at: None,
            registry_id: None,
            dry_run: false,
            fan_out: false,
        }
    }

    fn settings() -> Settings {
        Settings::new(RuleSet::from_json(RULES).unwrap())
    }

    fn puts(memory: &Memory) -> Vec<String> {
        memory.calls().into_iter().filter_map(|c| if let Call::Put { tag, .. } = c { Some(tag.to_string()) } else { None }).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn versions_pushed_out_of_order_without_events_end_where_events_in_order_would_put_them() {
        let memory = Memory::with_repositories(&["app"]);
        pushed(&memory, "app", 1, "v1.4.2", 1);
        pushed(&memory, "app", 2, "v1.5.0", 2);
        pushed(&memory, "app", 3, "v1.4.3", 3); // a hotfix, after the newer release
        let report = reconcile(&memory, &settings(), &request(&["app"], 50), None, None).await.unwrap();
        assert_eq!((report.status, report.writes), (SweepStatus::Complete, 7));
        let at = |t: &str| memory.tag("app", &tag(t));
        for (t, n) in [("stable", 2), ("v1", 2), ("v1.5", 2), ("v1.4", 3), ("built-20261101", 1), ("built-20261102", 2), ("built-20261103", 3)] {
            assert_eq!(at(t), Some(digest(n)), "{t}");
        }
        assert_eq!(report.repositories[0].tags_written, 7);

        // A second sweep reads and writes nothing.
        memory.clear_calls();
        let again = reconcile(&memory, &settings(), &request(&["app"], 50), None, None).await.unwrap();
        assert_eq!((again.writes, again.repositories[0].already_correct), (0, 7));
        assert!(puts(&memory).is_empty(), "{:?}", memory.calls());
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_writes_in_an_events_order_guarded_tags_first() {
        let memory = Memory::with_repositories(&["app"]);
        pushed(&memory, "app", 1, "v1.4.2", 24);
        reconcile(&memory, &settings(), &request(&["app"], 50), None, None).await.unwrap();
        let puts = puts(&memory);
        assert_eq!(puts.len(), 4, "{puts:?}");
        assert_eq!(puts.last().map(String::as_str), Some("built-20261124"), "the plain tag after the if-newer ones: {puts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_stops_at_its_write_budget_and_resumes_where_it_said() {
        let memory = Memory::with_repositories(&["team/a", "team/b"]);
        pushed(&memory, "team/a", 1, "v1.0.0", 1);
        pushed(&memory, "team/b", 2, "v2.0.0", 1);
        let first = reconcile(&memory, &settings(), &request(&["team/*"], 4), None, None).await.unwrap();
        assert_eq!((first.status, first.writes, first.continuation.as_deref()), (SweepStatus::Stopped, 4, Some("resume-at:team/b")));
        assert_eq!(memory.tag("team/b", &tag("stable")), None);
        let resumed = ReconcileRequest { resume_at: Some(RepositoryName::parse("team/b").unwrap()), ..request(&["team/*"], 4) };
        let second = reconcile(&memory, &settings(), &resumed, None, None).await.unwrap();
        assert_eq!((second.status, second.writes), (SweepStatus::Complete, 4));
        assert_eq!(memory.tag("team/b", &tag("stable")), Some(digest(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dry_run_sweep_counts_what_it_would_write_and_writes_nothing() {
        let memory = Memory::with_repositories(&["team/a", "team/b"]);
        pushed(&memory, "team/a", 1, "v1.0.0", 1);
        pushed(&memory, "team/b", 2, "v2.0.0", 1);
        let report = reconcile(&memory, &settings(), &ReconcileRequest { dry_run: true, ..request(&["team/*"], 50) }, None, None).await.unwrap();
        assert_eq!((report.writes, report.would_write), (0, Some(8)));
        assert!(puts(&memory).is_empty());
        assert!(memory.calls().iter().all(|c| !matches!(c, Call::Read { .. })), "a dry run reads no manifest");
    }
}
