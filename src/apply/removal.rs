//! `remove_source`: a pushed tag retired once the tags its rules derive are in place.

use std::collections::{BTreeMap, BTreeSet};

use crate::apply::put::read_fault;
use crate::error::RetagError;
use crate::domain::names::{Digest, Tag};
use crate::domain::plan::Removal;
use crate::registry::{Lookup, Registry, RemoveError, Repository, TagState};
use crate::report::{Outcome, TagReport};

/// The pushed image whose source tags may be retired, and whether this is a dry run.
pub struct Pushed<'a> {
    pub repository: &'a Repository,
    pub digest: &'a Digest,
    pub dry_run: bool,
}

/// `remove_source`: retires each pushed tag whose removing rules' tags all
/// landed, unless that would leave the image untagged or the tag moved on.
pub async fn remove_sources<R: Registry>(
    registry: &R,
    sources: &Pushed<'_>,
    removals: &[Removal],
    tags: &mut BTreeMap<String, TagReport>,
) -> Result<(), RetagError> {
    let mut by_source: BTreeMap<&Tag, Vec<&Removal>> = BTreeMap::new();
    for r in removals {
        by_source.entry(&r.source).or_default().push(r);
    }
    for (source, removals) in by_source {
        if tags.contains_key(source.as_str()) {
            // Another pushed tag derives this one: it stays (a scan event listing both).
            continue;
        }
        let rules: Vec<String> = removals.iter().map(|r| r.rule.clone()).collect();
        let derived: BTreeSet<&str> = removals.iter().flat_map(|r| r.tags.iter().map(String::as_str)).collect();
        let decision = removal_decision(&derived, tags, sources.dry_run);
        let mut entry = TagReport::new(source.as_str(), rules, Outcome::Kept);
        match decision {
            Err(why) => entry.detail = Some(why),
            Ok(()) if sources.dry_run => entry.outcome = Outcome::WouldRemove,
            Ok(()) => remove(registry, sources, source, &derived, &mut entry).await?,
        }
        tags.insert(source.to_string(), entry);
    }
    Ok(())
}

/// Whether every tag the removing rules derived is in place.
fn removal_decision(derived: &BTreeSet<&str>, tags: &BTreeMap<String, TagReport>, dry_run: bool) -> Result<(), String> {
    if derived.is_empty() {
        return Err("kept: the rule derives no other tag, so removing it would leave nothing in its place".into());
    }
    let missing: Vec<String> = derived
        .iter()
        .filter_map(|t| {
            let outcome = tags.get(*t).map(|r| r.outcome);
            let landed = match outcome {
                Some(Outcome::Created | Outcome::Moved | Outcome::Unchanged) => true,
                Some(Outcome::WouldCreate | Outcome::WouldMove) => dry_run,
                _ => false,
            };
            (!landed).then(|| format!("`{t}` {}", outcome.map_or("missing".to_owned(), |o| o.to_string())))
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("kept: not every derived tag is in place ({})", missing.join(", ")))
    }
}

/// Re-reads right before BatchDeleteImage (which deletes by tag whatever it
/// points at), so a tag pushed again meanwhile, or an image that would be left
/// without its derived tags, is never removed.
async fn remove<R: Registry>(
    registry: &R,
    sources: &Pushed<'_>,
    source: &Tag,
    derived: &BTreeSet<&str>,
    entry: &mut TagReport,
) -> Result<(), RetagError> {
    let (repository, digest) = (sources.repository, sources.digest);
    let mut ask = vec![source.clone()];
    ask.extend(derived.iter().filter_map(|t| Tag::parse(t).ok()));
    let now = match registry.read(repository, Lookup::Digest(digest), &ask).await {
        Ok(now) => now,
        Err(e) => {
            entry.fail(&read_fault(e));
            return Ok(());
        }
    };
    match now.tags.get(source) {
        Some(TagState::At(d)) if d == digest => {}
        Some(TagState::At(other)) => {
            entry.mark(Outcome::Kept, Some(format!("kept: the tag now points at {other}")));
            return Ok(());
        }
        Some(TagState::Archived) => {
            entry.mark(Outcome::Kept, Some("kept: the tag now points at an archived image".into()));
            return Ok(());
        }
        Some(TagState::Unreadable(fault)) => {
            entry.fail(fault);
            return Ok(());
        }
        Some(TagState::Absent) | None => {
            entry.mark(Outcome::Removed, Some("already gone".into()));
            return Ok(());
        }
    }
    if !ask[1..].iter().any(|t| now.tags.get(t) == Some(&TagState::At(digest.clone()))) {
        let why = "kept: no derived tag points at the image any more, removing it would leave the image untagged";
        entry.mark(Outcome::Kept, Some(why.into()));
        return Ok(());
    }
    match registry.remove(repository, source).await {
        Ok(()) => entry.mark(Outcome::Removed, None),
        Err(RemoveError::NotFound) => entry.mark(Outcome::Removed, Some("already gone".into())),
        Err(RemoveError::RepositoryNotFound) => return Err(RetagError::repository_not_found(repository)),
        Err(RemoveError::Fault(fault)) => entry.fail(&fault),
    }
    Ok(())
}

