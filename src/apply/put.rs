//! PutImage, tag by tag: the one write every path shares (a push, a scan, a
//! sweep, an if-newer move), and the outcome each tag gets from ECR's answer.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};

use crate::domain::names::{Digest, Tag};
use crate::error::{Fault, FaultKind, RetagError};
use crate::registry::{Attempts, Lookup, PutError, ReadError, Registry, TagState, MAX_TAGS_PER_IMAGE};
pub use crate::registry::Target;
use crate::report::{entry, Outcome, TagReport};

/// Where a tag pointed when it was read: what its write is reported against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Was {
    Nowhere,
    At(Digest),
    /// On an archived image (ECR does not say which).
    Archived,
}

impl Was {
    pub fn of(previous: Option<&Digest>) -> Was {
        previous.map_or(Was::Nowhere, |d| Was::At(d.clone()))
    }

    /// The outcome of writing the tag (or, in a dry run, of what would be written), and its detail.
    pub fn outcome(&self, dry_run: bool) -> (Outcome, Option<String>) {
        let moved = if dry_run { Outcome::WouldMove } else { Outcome::Moved };
        match self {
            Was::Nowhere => (if dry_run { Outcome::WouldCreate } else { Outcome::Created }, None),
            Was::At(d) => (moved, Some(format!("was {d}"))),
            Was::Archived => (moved, Some("was on an archived image".to_owned())),
        }
    }
}

/// Runs the PutImage calls (the SDK retrying each) and records each tag's
/// outcome against where it was when read.
pub async fn write<R: Registry>(
    registry: &R,
    target: &Target<'_>,
    to_write: Vec<(Tag, Was)>,
    concurrency: usize,
    tags: &mut BTreeMap<String, TagReport>,
) -> Result<(), RetagError> {
    let results: Vec<_> = stream::iter(to_write)
        .map(|(tag, previous)| async move {
            let result = registry.put(target, &tag, Attempts::Retried).await;
            (tag, previous, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;

    let mut immutable = Vec::new();
    for (tag, previous, result) in results {
        match record(entry(tags, &tag), result, &previous) {
            Answer::Done => {}
            Answer::Immutable => immutable.push(tag),
            Answer::RepositoryNotFound => return Err(RetagError::repository_not_found(target.repository)),
        }
    }
    resolve_immutable(registry, target, immutable, tags).await;
    Ok(())
}

/// What an answer to PutImage leaves to the caller.
pub enum Answer {
    /// The tag's outcome is recorded.
    Done,
    /// ImageTagAlreadyExistsException: only a re-read tells "already ours" from a conflict.
    Immutable,
    RepositoryNotFound,
}

/// Records PutImage's answer for one tag.
pub fn record(entry: &mut TagReport, result: Result<(), PutError>, previous: &Was) -> Answer {
    match result {
        Ok(()) => {
            let (outcome, detail) = previous.outcome(false);
            entry.mark(outcome, detail);
        }
        // Someone (a concurrent delivery of this same event) put it there first.
        Err(PutError::AlreadyExists) => entry.mark(Outcome::Unchanged, None),
        Err(PutError::TagImmutable) => return Answer::Immutable,
        Err(PutError::RepositoryNotFound) => return Answer::RepositoryNotFound,
        Err(PutError::LimitExceeded { message }) => entry.mark(Outcome::TagLimit, Some(tag_limit(&message))),
        Err(PutError::Fault(fault)) => entry.fail(&fault),
    }
    Answer::Done
}

/// ECR answers ImageTagAlreadyExistsException for an immutable tag wherever it
/// points, so only a fresh look tells "already ours" from a real conflict.
pub async fn resolve_immutable<R: Registry>(
    registry: &R,
    target: &Target<'_>,
    immutable: Vec<Tag>,
    tags: &mut BTreeMap<String, TagReport>,
) {
    if immutable.is_empty() {
        return;
    }
    let digest = target.digest();
    match registry.read(target.repository, Lookup::Digest(digest), &immutable).await {
        Ok(now) => {
            let mut conflicts = Vec::new();
            for tag in immutable {
                let entry = entry(tags, &tag);
                let conflict = |holder: String| (Outcome::Conflict, Some(format!("the tag is immutable and points at {holder}")));
                let (outcome, detail) = match now.tags.get(&tag) {
                    Some(TagState::At(d)) if d == digest => (Outcome::Unchanged, None),
                    Some(TagState::At(other)) => conflict(other.to_string()),
                    Some(TagState::Archived) => conflict("an archived image".to_owned()),
                    Some(TagState::Unreadable(fault)) => {
                        entry.fail(fault);
                        continue;
                    }
                    Some(TagState::Absent) | None => {
                        entry.fail(&Fault::new(
                            FaultKind::Server,
                            "ImageTagAlreadyExistsException",
                            "ECR refused the immutable tag, yet it points nowhere on a re-read",
                        ));
                        continue;
                    }
                };
                entry.mark(outcome, detail);
                if outcome == Outcome::Conflict {
                    conflicts.push(tag);
                }
            }
            explain_conflicts(registry, target, &conflicts, tags).await;
        }
        Err(e) => {
            let fault = read_fault(e);
            for tag in immutable {
                entry(tags, &tag).fail(&fault);
            }
        }
    }
}

/// A conflict's detail also names the repository's mutability and exclusion filters, and
/// the change that would let the tag move: one DescribeRepositories, only now (cached per
/// instance). Without it the detail stays as it is.
async fn explain_conflicts<R: Registry>(registry: &R, target: &Target<'_>, conflicts: &[Tag], tags: &mut BTreeMap<String, TagReport>) {
    if conflicts.is_empty() {
        return;
    }
    let Ok(mutability) = registry.tag_mutability(target.repository).await else { return };
    for tag in conflicts {
        let entry = entry(tags, tag);
        let advice = mutability.advice(target.repository.name.as_str(), tag.as_str());
        entry.detail = Some(match entry.detail.take() {
            Some(detail) => format!("{detail}; {advice}"),
            None => advice,
        });
    }
}

fn tag_limit(message: &str) -> String {
    format!(
        "ECR refused the tag: an image holds at most {MAX_TAGS_PER_IMAGE} tags and this one is full \
         (LimitExceededException: {message}); remove old tags from the image, or see docs/reliability.md, \"Tags per image\""
    )
}

/// A read that failed for some tags only: its fault.
pub fn read_fault(e: ReadError) -> Fault {
    match e {
        ReadError::Fault(f) => f,
        ReadError::RepositoryNotFound => {
            Fault::new(FaultKind::Permanent, "RepositoryNotFoundException", "the repository disappeared while tagging")
        }
    }
}
