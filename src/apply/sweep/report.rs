//! What a sweep reports of each repository: the tags a dry run would write, the outcome of each
//! tag written, and the second look's revisions of its if-newer tags.

use std::collections::BTreeMap;
use tokio::time::Instant;

use super::Swept;
use crate::apply::if_newer::{self, Claim};
use crate::apply::Settings;
use crate::domain::assess::Desired;
use crate::domain::names::{Digest, RepositoryName};
use crate::registry::Catalog;
use crate::report::{Outcome, RepositorySweep, TagReport};

/// The second look at the if-newer tags the sweep wrote (one wait for all).
pub(super) async fn settle<R: Catalog>(
    registry: &R,
    settings: &Settings,
    claims: Vec<(usize, Claim)>,
    settle_by: Option<Instant>,
    repositories: &mut [RepositorySweep],
) {
    if claims.is_empty() {
        return;
    }
    // Which repository's summary, and which of its entries, each revision goes to.
    let owners: Vec<_> =
        claims.iter().map(|(i, c)| (*i, c.repository.name.to_string(), c.want.tag.to_string(), c.image.digest.to_string())).collect();
    let claims = claims.into_iter().map(|(_, c)| c).collect();
    let revisions = if_newer::settle(registry, &settings.rules, claims, settings.write_concurrency, settle_by).await;
    for ((i, repository, tag, digest), revision) in owners.into_iter().zip(revisions) {
        let (Some(revision), Some(sweep)) = (revision, repositories.get_mut(i)) else { continue };
        // A promotion's tag is listed with its target's name.
        let place = (repository != sweep.repository).then_some(repository);
        let at = match sweep.changes.iter().position(|c| c.tag == tag && c.digest.as_deref() == Some(digest.as_str()) && c.repository == place) {
            Some(at) => at,
            None => {
                // Found in place (counted already correct), so not listed until now.
                let found = TagReport::new(tag, Vec::new(), Outcome::Unchanged);
                sweep.changes.push(TagReport { digest: Some(digest), repository: place, ..found });
                sweep.changes.len() - 1
            }
        };
        // Move the tag from the count it was in to the one its revised outcome belongs to.
        let was_written = matches!(sweep.changes[at].outcome, Outcome::Created | Outcome::Moved);
        let before = if was_written { &mut sweep.tags_written } else { &mut sweep.already_correct };
        *before = before.saturating_sub(1);
        let after = if revision.outcome.is_problem() {
            &mut sweep.failed
        } else if was_written || revision.outcome == Outcome::Repaired {
            &mut sweep.tags_written
        } else {
            // Superseded: a newer version holds the tag, as it should.
            &mut sweep.already_correct
        };
        *after += 1;
        sweep.changes[at].outcome = revision.outcome;
        sweep.changes[at].detail = Some(revision.detail);
    }
}

/// A tag found in place, kept when a rule of it records (the record step looks for its record).
pub(super) fn in_place(swept: &mut Swept, settings: &Settings, d: &Desired) {
    carried(swept, settings, d.tag.as_str(), &d.digest, &d.rules, d.to.as_ref());
}

/// A tag an image carries, kept when a rule of it records: a desired one, or one held back since
/// it was written (a gated tag whose rescan failed keeps its image, and gets its record all the same).
pub(super) fn carried(swept: &mut Swept, settings: &Settings, tag: &str, digest: &Digest, rules: &[String], to: Option<&RepositoryName>) {
    if !swept.dry_run && rules.iter().any(|r| settings.rules.records(r)) {
        let report = TagReport::new(tag, rules.to_vec(), Outcome::Unchanged);
        swept.summary.in_place.push(TagReport { digest: Some(digest.to_string()), repository: to.map(ToString::to_string), ..report });
    }
}

/// A dry run's tags, from the listings alone (a dry run reads no manifest).
pub(super) fn would_write(swept: &mut Swept, digest: &Digest, wanted: Vec<Desired>, to: Option<&RepositoryName>) {
    swept.writes += wanted.len();
    *swept.summary.would_write.get_or_insert(0) += wanted.len();
    for d in wanted {
        let (outcome, detail) = match &d.current {
            Some(p) => (Outcome::WouldMove, Some(format!("was {p}"))),
            None => (Outcome::WouldCreate, None),
        };
        let report = TagReport::new(d.tag.as_str(), d.rules, outcome);
        swept.summary.changes.push(TagReport { digest: Some(digest.to_string()), detail, repository: to.map(ToString::to_string), ..report });
    }
}

/// Counts each written tag's outcome in the summary, and lists every one that is not in place
/// already; `to`: a promotion's target.
pub(super) fn tally(summary: &mut RepositorySweep, reports: BTreeMap<String, TagReport>, digest: &Digest, to: Option<&RepositoryName>) {
    for r in reports.into_values() {
        match r.outcome {
            Outcome::Created | Outcome::Moved => summary.tags_written += 1,
            // A newer version took the tag since the listing.
            Outcome::SkippedNotNewer => summary.already_correct += 1,
            Outcome::Unchanged => summary.already_correct += 1,
            Outcome::Conflict => summary.conflicts += 1,
            _ => summary.failed += 1,
        }
        let r = TagReport { digest: Some(digest.to_string()), repository: to.map(ToString::to_string), ..r };
        if r.outcome != Outcome::Unchanged {
            summary.changes.push(r);
        } else {
            // Found in place after all: its record is looked for (only recorded rules' are kept).
            summary.in_place.push(r);
        }
    }
}
