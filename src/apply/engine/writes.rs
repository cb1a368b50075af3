//! The one step from a read to the writes, for events and sweeps alike: the tags asked for are
//! sorted by where the read found them, then written in one order, the guarded if-newer ones
//! first while the read is fresh ([`crate::apply::if_newer::FRESH`]), then the rest.

use std::collections::BTreeMap;

use crate::apply::if_newer::{Claim, Guard, Observed, Want};
use crate::apply::put::{self, Target, Was};
use crate::apply::Settings;
use crate::domain::names::{Digest, Tag};
use crate::error::RetagError;
use crate::registry::{Image, Registry, Repository, TagState};
use crate::report::{entry, Outcome, TagReport};

/// What one read of a repository calls for, to bring tags onto one image.
pub(crate) struct Writes {
    to_write: Vec<(Tag, Was)>,
    wants: Vec<Want>,
    observed: Observed,
    /// If-newer tags the read found in place already: no write, only their second look.
    wants_in_place: usize,
    /// A promotion's source, where the guard also reads a holder's version.
    origin: Option<Repository>,
}

impl Writes {
    /// Sorts `candidates` by where `observed` found them: in place (`unchanged`), unreadable
    /// (failed, retryable as its fault says) or to write. `wants` are decided by their guard.
    pub(crate) fn sort(
        digest: &Digest,
        observed: Observed,
        candidates: Vec<Tag>,
        wants: Vec<Want>,
        tags: &mut BTreeMap<String, TagReport>,
    ) -> Writes {
        let mut to_write = Vec::new();
        for tag in candidates {
            let was = match observed.tags.get(&tag) {
                Some(TagState::At(d)) if d == digest => {
                    entry(tags, &tag).mark(Outcome::Unchanged, None);
                    continue;
                }
                Some(TagState::Unreadable(fault)) => {
                    entry(tags, &tag).fail(fault);
                    continue;
                }
                Some(TagState::At(other)) => Was::At(other.clone()),
                Some(TagState::Archived) => Was::Archived,
                Some(TagState::Absent) | None => Was::Nowhere,
            };
            to_write.push((tag, was));
        }
        let wants_in_place =
            wants.iter().filter(|w| matches!(observed.tags.get(&w.tag), Some(TagState::At(d)) if d == digest)).count();
        Writes { to_write, wants, observed, wants_in_place, origin: None }
    }

    /// Writes into a promotion's target from `source`: a holder's version is read there too
    /// (the target's images carry only the promoted tags).
    pub(crate) fn promoted_from(self, source: &Repository) -> Writes {
        Writes { origin: Some(source.clone()), ..self }
    }

    /// PutImage calls this takes, one per tag not in place (an if-newer tag's retries after fresh
    /// reads aside): what a sweep's `max_writes` counts.
    pub(crate) fn len(&self) -> usize {
        self.to_write.len() + self.wants.len() - self.wants_in_place
    }

    /// Nothing to put. An if-newer tag found in place may still be put back after its second
    /// look, so it counts here.
    pub(crate) fn is_empty(&self) -> bool {
        self.to_write.is_empty() && self.wants.is_empty()
    }

    /// The media type PutImage is given: the manifest's own, else `hint` (the event's). Only
    /// asked for when something is put, so an unknown one fails only a write.
    pub(crate) fn media_type(&self, image: &Image, hint: Option<&str>, dry_run: bool) -> Result<String, RetagError> {
        if dry_run || self.is_empty() {
            return Ok(String::new());
        }
        image.media_type_or(hint).ok_or_else(|| RetagError::UnknownMediaType { digest: image.digest.to_string() })
    }

    /// The writes, guarded ones first; a dry run only reports. Returns the if-newer tags left
    /// on the image, for their second look.
    pub(crate) async fn apply<R: Registry>(
        self,
        registry: &R,
        settings: &Settings,
        target: Target<'_>,
        dry_run: bool,
        tags: &mut BTreeMap<String, TagReport>,
    ) -> Result<Vec<Claim>, RetagError> {
        let Writes { to_write, wants, observed, origin, .. } = self;
        let mut claims = Vec::new();
        if !wants.is_empty() {
            let (rules, concurrency, origin) = (&settings.rules, settings.write_concurrency, origin.as_ref());
            let guard = Guard { registry, rules, target, concurrency, dry_run, origin };
            claims = guard.write(wants, Some(observed), tags).await?;
        }
        if dry_run {
            for (tag, previous) in to_write {
                let (outcome, detail) = previous.outcome(true);
                entry(tags, &tag).mark(outcome, detail);
            }
        } else if !to_write.is_empty() {
            put::write(registry, &target, to_write, settings.write_concurrency, tags).await?;
        }
        Ok(claims)
    }
}
