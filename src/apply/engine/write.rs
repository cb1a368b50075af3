//! One repository's planned tags brought in place: one read, then the writes ([`Writes`], as a
//! sweep's), a promotion's copy first where the target lacks the image, an archived image left
//! alone.

use std::collections::BTreeMap;
use tokio::time::Instant;

use crate::apply::engine::writes::Writes;
use crate::apply::if_newer::{Claim, Observed, Want};
use crate::apply::promote::{self, Copied, Via};
use crate::apply::put::{self, Target};
use crate::apply::Settings;
use crate::domain::artifact::Artifact;
use crate::domain::names::{Digest, Tag};
use crate::error::RetagError;
use crate::registry::{Blobs, Image, Lookup, Registry, Repository, Snapshot, TagState};
use crate::report::{entry, Outcome, TagReport};

/// The planned tags of one repository: their entries, those to write, those to write if newer,
/// and, in a promotion's target, what bringing the image there copied.
#[derive(Default)]
pub(crate) struct Group {
    pub(crate) tags: BTreeMap<String, TagReport>,
    pub(crate) candidates: Vec<Tag>,
    pub(crate) wants: Vec<Want>,
    pub(crate) copied: Copied,
}

/// Where the planned tags come from: the pushed (or swept) repository and what is known of the
/// image there. An event's [`crate::apply::engine::Job`] gives it; a sweep healing a promotion builds one.
pub(crate) struct Origin<'j> {
    pub(crate) repository: &'j Repository,
    /// The image, once a read brought it: a promotion then copies it without reading it again.
    pub(crate) image: &'j std::sync::OnceLock<Image>,
    /// Known to be an artifact: only rules that opt in planned its tags.
    pub(crate) artifact: Option<&'j Artifact>,
    /// The media type the event or listing gave.
    pub(crate) media_type: Option<&'j str>,
    pub(crate) dry_run: bool,
    /// A push event's tag, confirmed by the pushed repository's read to still be on the image: an
    /// event that arrives after the tag was pushed onto another image is stale.
    pub(crate) pushed: Option<&'j Tag>,
}

/// What bringing the planned tags in place came to.
pub(crate) enum Written {
    /// Done; the if-newer tags written or found in place, for their second look.
    Claims(Vec<Claim>),
    /// Nothing written: the manifest shows an artifact, which the plan did not know.
    Artifact(Artifact),
    /// Nothing written: the pushed tag is on another image now (this one; a later event decides).
    Stale(Digest),
    /// Nothing written: the image is archived in the pushed repository.
    Archived,
}

/// Why a stale push event's tags, and its promotions', are not written.
pub(crate) fn stale(pushed: &Tag, other: &Digest) -> String {
    format!("{pushed} was pushed onto {other} since this event: the event is stale, and that image's event decides")
}

/// One read (the manifest, and where each tag points now), then the writes:
/// guarded ones first while that read is fresh, then the rest. An archived
/// image gets no write: putting its manifest again would restore it.
///
/// `to`: a promotion's target, where the tags are read and written; the image is read from
/// the pushed repository and copied there first ([`promote`]) unless the target holds it.
pub(crate) async fn write_planned<R: Blobs>(
    registry: &R,
    settings: &Settings,
    job: &Origin<'_>,
    digest: &Digest,
    to: Option<&Repository>,
    group: &mut Group,
) -> Result<Written, RetagError> {
    let (candidates, wants, tags) = (std::mem::take(&mut group.candidates), std::mem::take(&mut group.wants), &mut group.tags);
    if candidates.is_empty() && wants.is_empty() {
        return Ok(Written::Claims(Vec::new()));
    }
    let (rules, name) = (&settings.rules, job.repository.name.as_str());
    let place = to.unwrap_or(job.repository);
    let asked: Vec<Tag> = candidates.iter().chain(wants.iter().map(|w| &w.tag)).cloned().collect();
    let confirm = job.pushed.filter(|t| to.is_none() && !asked.contains(t));
    let looked: Vec<Tag> = asked.iter().chain(confirm).cloned().collect();
    let read_at = Instant::now();
    let snapshot = match registry.read(place, Lookup::Digest(digest), &looked).await {
        Ok(snapshot) => snapshot,
        // A target's failure is its tags', not the whole event's: the pushed repository's tags stand.
        Err(e) if to.is_some() => {
            promote::refuse(tags, &asked, &promote::Refusal::reading(place, e));
            return Ok(Written::Claims(Vec::new()));
        }
        Err(e) => return Err(RetagError::reading(place, e)),
    };
    let Snapshot { image: found, tags: mut current, archived } = snapshot;
    if let Some(pushed) = job.pushed.filter(|_| to.is_none()) {
        let state = if confirm.is_some() { current.remove(pushed) } else { current.get(pushed).cloned() };
        if let Some(TagState::At(other)) = state.filter(|s| !matches!(s, TagState::At(d) if d == digest)) {
            let detail = stale(pushed, &other);
            for tag in &asked {
                entry(tags, tag).mark(Outcome::Superseded, Some(detail.clone()));
            }
            return Ok(Written::Stale(other));
        }
    }
    // Not in the target yet: the pushed repository's image, to be copied (read unless known).
    let arriving = to.is_some() && found.is_none();
    let (found, archived) = match (arriving, job.image.get()) {
        (true, Some(_)) => (None, false),
        (true, None) => {
            let source = read(registry, job.repository, Lookup::Digest(digest), &[]).await?;
            (source.image, source.archived)
        }
        (false, _) => (found, archived),
    };
    if archived {
        archived_image(registry, settings, job, if arriving { job.repository } else { place }, digest, &asked, tags).await;
        return Ok(if to.is_none() { Written::Archived } else { Written::Claims(Vec::new()) });
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
    if let (None, Some(artifact)) = (job.artifact, Artifact::of_manifest(&image.manifest)) {
        return Ok(Written::Artifact(artifact));
    }
    // Escaped (Debug) so a manifest's newlines stay inside one log line.
    tracing::debug!(digest = %image.digest, media_type = ?image.media_type, manifest = ?image.manifest, "manifest read");
    let writes = Writes::sort(digest, Observed { at: read_at, tags: current }, candidates, wants, tags);
    let writes = if to.is_some() { writes.promoted_from(job.repository) } else { writes };
    // An if-newer tag found in place may still need putting back after its second look.
    let media_type = writes.media_type(image, job.media_type, job.dry_run)?;
    let mut via = Via::new(true, promote::streaming(rules, tags));
    if let (Some(target), true, false) = (to, arriving, job.dry_run) {
        // Boxed, as the other nested steps: the event's future would otherwise outgrow a thread's stack.
        match Box::pin(promote::arrive(registry, job.repository, target, image, via.stream)).await {
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
    let claims = writes.apply(registry, settings, target, job.dry_run, tags).await?;
    if let (Some(target), false) = (to, job.dry_run) {
        let referrers = Box::pin(promote::referrers_follow(registry, job.repository, target, digest, via, tags)).await;
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
    job: &Origin<'_>,
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
            (Some(Err(e)), true) => entry.fail(&put::read_fault(e.clone())),
            _ => entry.mark(Outcome::Archived, Some(ARCHIVED.to_owned())),
        }
    }
}

/// What a tag says once its archived image's restore has started.
const RESTORING: &str = "the image was archived: its restore has started (up to 20 minutes; a 90-day minimum storage charge), and a redelivery or the next sweep writes the tag once it is active";

/// Why a tag is not put on an archived image.
const ARCHIVED: &str = "the image is archived: putting it again would restore it (a 90-day minimum storage charge, up to 20 minutes), so it is not written; restore it first (aws ecr update-image-storage-class --target-storage-class STANDARD) or let a rule do it (\"restore_archived\": true), and a redelivery or the next sweep writes the tag";

pub(super) async fn read<R: Registry>(
    registry: &R,
    repository: &Repository,
    image: Lookup<'_>,
    tags: &[Tag],
) -> Result<Snapshot, RetagError> {
    registry.read(repository, image, tags).await.map_err(|e| RetagError::reading(repository, e))
}

pub(super) fn artifact_reason(artifact: &Artifact) -> String {
    format!("{}: an artifact, not an image; no rule that matches opts in to artifacts (\"artifacts\": true)", artifact.describe())
}
