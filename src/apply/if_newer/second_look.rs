//! The second look: every if-newer tag an invocation left on its image is read
//! again [`SETTLE`] after its write, when every write decided before it has
//! landed; a lower version found there is put back.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use futures_util::future::join_all;
use semver::Version;

use super::{Claim, Guard, Observed, SETTLE};
use crate::apply::put::{read_fault, Target};
use crate::domain::names::Tag;
use crate::domain::rules::RuleSet;
use crate::registry::{Lookup, Registry, TagState};
use crate::report::{Outcome, TagReport};

/// Second looks per claim; each repair needs one more.
const LOOKS: u32 = 3;
/// Kept free before the deadline for the second look's read.
const LOOK_ALLOWANCE: Duration = Duration::from_secs(1);

/// What the second look changed about a claimed tag's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub outcome: Outcome,
    pub detail: String,
    pub retryable: bool,
}

impl Revision {
    pub fn apply(&self, entry: &mut TagReport) {
        entry.outcome = self.outcome;
        entry.detail = Some(self.detail.clone());
        entry.retryable = self.retryable;
    }
}

/// The second look at every claim, [`SETTLE`] after its write, repairing what a
/// lower version took meanwhile. Returns, in the claims' order, what changed
/// about each outcome (`None`: the tag is where this invocation put it). Gives up
/// on claims it cannot look at before `stop_by` (retryable: a later delivery looks again).
pub async fn settle<R: Registry>(
    registry: &R,
    rules: &RuleSet,
    claims: Vec<Claim>,
    concurrency: usize,
    stop_by: Option<Instant>,
) -> Vec<Option<Revision>> {
    let mut revisions: Vec<Option<Revision>> = vec![None; claims.len()];
    let mut open: Vec<(usize, Claim)> = claims.into_iter().enumerate().collect();
    for _ in 0..LOOKS {
        let Some(latest) = open.iter().map(|(_, c)| c.touched).max() else { break };
        let until = latest + SETTLE;
        if stop_by.is_some_and(|s| until + LOOK_ALLOWANCE > s) {
            break;
        }
        tokio::time::sleep_until(until).await;
        let looks = join_all(group(open).into_iter().map(|claims| look(registry, rules, claims, concurrency))).await;
        open = Vec::new();
        for (index, result) in looks.into_iter().flatten() {
            match result {
                Look::Done(revision) => revisions[index] = revision,
                Look::Again(claim) => open.push((index, *claim)),
            }
        }
    }
    for (index, claim) in open {
        revisions[index] = Some(Revision {
            outcome: Outcome::Failed,
            detail: match claim.undid {
                Some(_) => "put back after a lower version's late write, and not looked at again before the deadline; a later delivery looks again".into(),
                None => format!(
                    "written, but the deadline came before the second look {} ms later (for a lower version's late write); a later delivery looks again",
                    SETTLE.as_millis()
                ),
            },
            retryable: true,
        });
    }
    revisions
}

/// The claims on one image of one repository: one read looks at them all.
fn group(open: Vec<(usize, Claim)>) -> Vec<Vec<(usize, Claim)>> {
    let mut groups: Vec<Vec<(usize, Claim)>> = Vec::new();
    for (index, claim) in open {
        match groups.iter_mut().find(|g| g[0].1.repository == claim.repository && g[0].1.image.digest == claim.image.digest) {
            Some(g) => g.push((index, claim)),
            None => groups.push(vec![(index, claim)]),
        }
    }
    groups
}

enum Look {
    Done(Option<Revision>),
    /// Put back: to be looked at again.
    Again(Box<Claim>),
}

async fn look<R: Registry>(registry: &R, rules: &RuleSet, claims: Vec<(usize, Claim)>, concurrency: usize) -> Vec<(usize, Look)> {
    let first = &claims[0].1;
    let (repository, image, media_type) = (first.repository.clone(), first.image.clone(), first.media_type.clone());
    let asked: Vec<Tag> = claims.iter().map(|(_, c)| c.want.tag.clone()).collect();
    let at = Instant::now();
    let (view, archived) = match registry.read(&repository, Lookup::Digest(&image.digest), &asked).await {
        Ok(snapshot) => (Observed { at, tags: snapshot.tags }, snapshot.archived),
        Err(e) => {
            let fault = read_fault(e);
            let failed = Revision {
                outcome: Outcome::Failed,
                detail: format!("written, but the second look (for a lower version's late write) failed: {fault}"),
                retryable: fault.retryable(),
            };
            return claims.into_iter().map(|(i, _)| (i, Look::Done(Some(failed.clone())))).collect();
        }
    };
    let origin = first.origin.clone();
    let guard = Guard {
        registry,
        rules,
        target: Target { repository: &repository, image: &image, media_type: &media_type },
        concurrency,
        dry_run: false,
        origin: origin.as_ref(),
    };
    let mut out = Vec::with_capacity(claims.len());
    for (index, claim) in claims {
        let state = view.tags.get(&claim.want.tag).cloned();
        let result = match state {
            Some(TagState::At(d)) if d == image.digest => Look::Done(claim.undid.as_ref().map(|(undone, version)| Revision {
                outcome: Outcome::Repaired,
                detail: format!("a lower version's late write moved it to {undone}{}; put back", at_version(version.as_ref())),
                retryable: false,
            })),
            // Archived since the write: its version no longer counts, so whoever took the tag keeps it.
            Some(TagState::At(holder)) if archived => Look::Done(Some(Revision {
                outcome: Outcome::Superseded,
                detail: format!("written, then the image was archived; left on {holder}"),
                retryable: false,
            })),
            Some(TagState::At(holder)) => {
                // Decided like any write: a fresh view, the holder's version.
                let observed = Observed { at: view.at, tags: BTreeMap::from([(claim.want.tag.clone(), TagState::At(holder.clone()))]) };
                let mut scratch = BTreeMap::new();
                match guard.write(vec![claim.want.clone()], Some(observed), &mut scratch).await {
                    Ok(mut again) if !again.is_empty() => {
                        let held = super::holder_tags(registry, &repository, origin.as_ref(), &holder).await.ok();
                        let version = held.and_then(|t| rules.version_of(&claim.want.rules, t.iter().map(Tag::as_str)));
                        tracing::warn!(
                            repository = %repository.name,
                            tag = %claim.want.tag,
                            digest = %image.digest,
                            version = %claim.want.version,
                            undone = %holder,
                            undone_version = %version.as_ref().map(ToString::to_string).unwrap_or_default(),
                            "if-newer tag put back after a lower version's late write"
                        );
                        let mut claim = again.remove(0);
                        claim.undid = Some((holder, version));
                        Look::Again(Box::new(claim))
                    }
                    Ok(_) => {
                        let report = scratch.remove(claim.want.tag.as_str());
                        Look::Done(Some(match report {
                            Some(r) if r.outcome == Outcome::SkippedNotNewer => Revision {
                                outcome: Outcome::Superseded,
                                detail: format!("written, then taken by a newer version: {}", r.detail.unwrap_or_default()),
                                retryable: false,
                            },
                            Some(r) => Revision {
                                outcome: if r.outcome.is_problem() { r.outcome } else { Outcome::Failed },
                                detail: format!("a lower version's late write took it, and putting it back failed: {}", r.detail.unwrap_or_default()),
                                retryable: r.retryable || !r.outcome.is_problem(),
                            },
                            None => Revision { outcome: Outcome::Failed, detail: "no outcome for the repair".into(), retryable: true },
                        }))
                    }
                    Err(e) => Look::Done(Some(Revision { outcome: Outcome::Failed, detail: e.to_string(), retryable: e.retryable() })),
                }
            }
            // Removed by someone since, or moved onto an image since archived (whose version
            // cannot be read): not this function's to put back.
            Some(TagState::Absent | TagState::Archived) | None => Look::Done(None),
            Some(TagState::Unreadable(fault)) => Look::Done(Some(Revision {
                outcome: Outcome::Failed,
                detail: format!("written, but the second look (for a lower version's late write) failed: {fault}"),
                retryable: fault.retryable(),
            })),
        };
        out.push((index, result));
    }
    out
}

fn at_version(version: Option<&Version>) -> String {
    version.map_or_else(|| " (no version)".to_owned(), |v| format!(" (version {v})"))
}

