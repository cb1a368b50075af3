//! The sweep's promotions (a rule's `"to"`). ECR delivers events best-effort, and a release tag
//! is pushed once, so a promotion whose event went missing would otherwise never happen.
//!
//! For each target the swept repository's rules promote into: one listing of the target says
//! where its tags are; a tag the rules derive that is missing there, or not on the image the
//! assessment picked (for if-newer tags the highest eligible version), is promoted as an event
//! promotes it ([`write_planned`]: blobs mounted, an index's children first, the tags, then the
//! referrers and cosign's sidecar tags). Gated rules were judged by the assessment, as for the
//! repository's own tags.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::{group, tally, would_write, Ending, Stop, Swept};
use crate::apply::engine::{write_planned, Origin, Written};
use crate::apply::promote::{self, Refusal};
use crate::apply::Settings;
use crate::domain::assess::{Desired, Listed};
use crate::domain::names::{Digest, RepositoryName, Tag};
use crate::error::RetagError;
use crate::registry::{Blobs, Catalog, Repository};
use crate::report::{Outcome, TagReport};

/// Brings `promoted` (the assessment's tags with a target) in place, within the sweep's budget.
pub(super) async fn promotions<R: Catalog + Blobs>(
    registry: &R,
    settings: &Settings,
    source: &Repository,
    promoted: Vec<Desired>,
    listed: &BTreeMap<&Digest, &Listed>,
    swept: &mut Swept,
    out_of_time: &impl Fn() -> bool,
) -> Result<Option<Stop>, RetagError> {
    let mut by_target: BTreeMap<RepositoryName, Vec<Desired>> = BTreeMap::new();
    for d in promoted {
        if let Some(to) = d.to.clone() {
            by_target.entry(to).or_default().push(d);
        }
    }
    for (to, wanted) in by_target {
        if out_of_time() {
            return Ok(Some(Stop::Deadline));
        }
        let target = Repository { name: to.clone(), ..source.clone() };
        let here = match where_tags_are(registry, &target).await {
            Ok(here) => here,
            Err(refusal) => {
                for d in wanted {
                    let mut report = TagReport::new(d.tag.as_str(), d.rules, Outcome::Failed);
                    report.refuse(refusal.to_string(), refusal.retryable());
                    swept.summary.failed += 1;
                    swept.summary.changes.push(TagReport { repository: Some(to.to_string()), digest: Some(d.digest.to_string()), ..report });
                }
                continue;
            }
        };
        let mut by_image: BTreeMap<Digest, Vec<Desired>> = BTreeMap::new();
        let mut in_place: BTreeMap<Digest, Vec<Desired>> = BTreeMap::new();
        for mut d in wanted {
            d.current = here.get(&d.tag).cloned();
            if d.current.as_ref() == Some(&d.digest) {
                swept.summary.already_correct += 1;
                super::report::in_place(swept, settings, &d);
                in_place.entry(d.digest.clone()).or_default().push(d);
            } else {
                by_image.entry(d.digest.clone()).or_default().push(d);
            }
        }
        // A signature pushed after its image was promoted has no promotion event of its own.
        if !swept.dry_run {
            for (digest, wanted) in &in_place {
                follow(registry, settings, source, &target, digest, wanted, swept).await;
            }
        }
        for (digest, mut wanted) in by_image {
            let left = swept.budget.saturating_sub(swept.writes);
            if left == 0 {
                return Ok(Some(Stop::Budget));
            }
            if out_of_time() {
                return Ok(Some(Stop::Deadline));
            }
            let cut = wanted.len() > left;
            wanted.truncate(left);
            if swept.dry_run {
                would_write(swept, &digest, wanted, Some(&to));
            } else {
                promote_one(registry, settings, source, &target, Ending::of(&digest, listed), wanted, swept).await?;
            }
            if cut {
                return Ok(Some(Stop::Budget));
            }
        }
    }
    Ok(None)
}

/// The referrers and cosign sidecars of an image already promoted, copied where the target
/// lacks them: one ListImageReferrers and one BatchGetImage in the source per image, more only
/// when something is missing. A failure is the sweep's (a later one tries again).
async fn follow<R: Blobs>(registry: &R, settings: &Settings, source: &Repository, target: &Repository, digest: &Digest, wanted: &[Desired], swept: &mut Swept) {
    let stream = wanted.iter().any(|d| settings.rules.copies_blobs(&d.rules)).then_some(promote::STREAM_LIMIT);
    let followed = async {
        let via = promote::ready(registry, source, target, stream).await?;
        let referrers = promote::copy_referrers(registry, source, target, digest, via).await?;
        let sidecars = promote::copy_sidecars(registry, source, target, digest, via.after(referrers.bytes)).await?;
        Ok::<_, Refusal>(referrers.and(sidecars))
    };
    match Box::pin(followed).await {
        Ok(copied) if copied != promote::Copied::default() => {
            swept.writes += copied.manifests;
            swept.summary.promotions.push(copied.report(&target.name));
        }
        Ok(_) => {}
        Err(refusal) => {
            let mut report = TagReport::new(wanted[0].tag.as_str(), wanted[0].rules.clone(), Outcome::Failed);
            report.refuse(format!("in place, but the image's referrers (signatures, SBOMs) did not follow: {refusal}"), refusal.retryable());
            swept.summary.failed += 1;
            swept.summary.changes.push(TagReport { repository: Some(target.name.to_string()), digest: Some(digest.to_string()), ..report });
        }
    }
}

/// Where each tag of the target points, from its listing (DescribeImages, page by page).
async fn where_tags_are<R: Catalog>(registry: &R, target: &Repository) -> Result<BTreeMap<Tag, Digest>, Refusal> {
    let mut here = BTreeMap::new();
    let mut page: Option<String> = None;
    loop {
        let listed = registry.images(target, page.as_deref()).await.map_err(|e| Refusal::reading(target, e))?;
        for image in listed.items {
            here.extend(image.tags.into_iter().map(|t| (t, image.digest.clone())));
        }
        match listed.next {
            Some(next) => page = Some(next),
            None => return Ok(here),
        }
    }
}

/// One image's promotion into `target`, as its event would have made it; counted in the sweep.
async fn promote_one<R: Blobs>(
    registry: &R,
    settings: &Settings,
    source: &Repository,
    target: &Repository,
    ending: Ending<'_>,
    wanted: Vec<Desired>,
    swept: &mut Swept,
) -> Result<(), RetagError> {
    let Ending { digest, media_type, artifact } = ending;
    let image = OnceLock::new();
    // An artifact the listing told of: only rules that opt in derived its tags, and they promote it.
    let origin = Origin { repository: source, image: &image, artifact, media_type, dry_run: false, pushed: None };
    let mut group = group(wanted);
    let planned = group.candidates.len() + group.wants.len();
    match Box::pin(write_planned(registry, settings, &origin, digest, Some(target), &mut group)).await? {
        Written::Claims(claims) => swept.claims.extend(claims),
        // The listing did not tell, the manifest does: no rule that promotes it opted in to artifacts.
        Written::Artifact(_) | Written::Stale(_) | Written::Archived => return Ok(()),
    }
    // The tags, and what the copy put by digest (an index's children, referrers, sidecars).
    swept.writes += planned + group.copied.manifests;
    if group.copied != promote::Copied::default() {
        swept.summary.promotions.push(group.copied.report(&target.name));
    }
    tally(&mut swept.summary, group.tags, digest, Some(&target.name));
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Promotions whose events never came, healed by a sweep of their source on the in-memory registry.
    use super::super::tests::{digest, pushed, request, tag};
    use crate::apply::sweep::reconcile;
    use crate::apply::Settings;
    use crate::domain::request::ReconcileRequest;
    use crate::domain::rules::RuleSet;
    use crate::registry::memory::{Call, Memory};
    use crate::report::{Outcome, SweepStatus};

    const PROMOTE: &str = r#"{"rules":[
        {"name":"prod","semver":true,"move":"if-newer","to":"prod/app","tags":["stable","v{major}","v{major}.{minor}"]},
        {"name":"exact","semver":true,"to":"prod/app","tags":["{version}"]}]}"#;

    fn settings() -> Settings {
        Settings::new(RuleSet::from_json(PROMOTE).unwrap())
    }

    fn puts_into(memory: &Memory, repository: &str) -> Vec<String> {
        memory
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Put { repository: r, tag, .. } if r.as_str() == repository => Some(tag.to_string()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn versions_pushed_out_of_order_without_events_end_in_the_target_as_if_every_event_had_come_in_order() {
        let memory = Memory::with_repositories(&["dev/app", "prod/app"]);
        pushed(&memory, "dev/app", 1, "v1.4.2", 1);
        pushed(&memory, "dev/app", 2, "v1.5.0", 2);
        pushed(&memory, "dev/app", 3, "v1.4.3", 3); // a hotfix, after the newer release

        let report = reconcile(&memory, &settings(), &request(&["dev/app"], 50), None, None).await.unwrap();
        assert_eq!(report.status, SweepStatus::Complete);
        let at = |t: &str| memory.tag("prod/app", &tag(t));
        for (t, n) in [("stable", 2), ("v1", 2), ("v1.5", 2), ("v1.4", 3), ("1.4.2", 1), ("1.5.0", 2), ("1.4.3", 3)] {
            assert_eq!(at(t), Some(digest(n)), "{t} in the target");
        }
        assert_eq!(memory.tag("dev/app", &tag("stable")), None, "the source gets none of the target's tags");
        let swept = &report.repositories[0];
        assert_eq!((swept.tags_written, report.writes), (7, 7));
        assert!(swept.changes.iter().all(|c| c.repository.as_deref() == Some("prod/app") && c.outcome == Outcome::Created), "{:?}", swept.changes);

        memory.clear_calls();
        let again = reconcile(&memory, &settings(), &request(&["dev/app"], 50), None, None).await.unwrap();
        assert_eq!((again.writes, again.repositories[0].already_correct), (0, 7));
        assert!(puts_into(&memory, "prod/app").is_empty(), "a second sweep writes nothing: {:?}", memory.calls());
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_promotion_of_a_newer_version_moves_the_targets_tags_and_a_dry_run_only_says_so() {
        let memory = Memory::with_repositories(&["dev/app", "prod/app"]);
        pushed(&memory, "dev/app", 1, "v1.4.2", 1);
        reconcile(&memory, &settings(), &request(&["dev/app"], 50), None, None).await.unwrap();
        pushed(&memory, "dev/app", 2, "v1.5.0", 2); // its event was lost

        memory.clear_calls();
        let dry = ReconcileRequest { dry_run: true, ..request(&["dev/app"], 50) };
        let report = reconcile(&memory, &settings(), &dry, None, None).await.unwrap();
        assert_eq!((report.writes, report.would_write), (0, Some(4)), "stable, v1, v1.5, 1.5.0");
        assert!(puts_into(&memory, "prod/app").is_empty());
        let stable = report.repositories[0].changes.iter().find(|c| c.tag == "stable").unwrap();
        assert_eq!((stable.repository.as_deref(), stable.outcome), (Some("prod/app"), Outcome::WouldMove));
        assert_eq!(stable.detail.as_deref(), Some(format!("was {}", digest(1)).as_str()));

        let report = reconcile(&memory, &settings(), &request(&["dev/app"], 50), None, None).await.unwrap();
        assert_eq!(report.writes, 4);
        assert_eq!(memory.tag("prod/app", &tag("stable")), Some(digest(2)));
        assert_eq!(memory.tag("prod/app", &tag("v1.4")), Some(digest(1)), "v1.4 stays on 1.4.2");
    }

    #[tokio::test(start_paused = true)]
    async fn an_artifact_a_rule_opts_in_to_is_promoted_by_the_sweep_too() {
        let memory = Memory::with_repositories(&["dev/app", "prod/app"]);
        let subject = digest(1);
        let manifest = format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","subject":{{"digest":"{subject}"}}}}"#);
        let at = "2026-11-01T10:00:00Z".parse().unwrap();
        let media_type = Some("application/vnd.oci.image.manifest.v1+json".to_owned());
        memory.add_image("dev/app", crate::registry::Image { digest: digest(9), manifest, media_type }, Some(at));
        memory.point("dev/app", &tag("sbom-1"), &digest(9));
        let rules = r#"{"rules":[{"name":"sboms","match":"^sbom-.*","artifacts":true,"to":"prod/app","tags":["{tag}-released"]}]}"#;
        let settings = Settings::new(RuleSet::from_json(rules).unwrap());
        let report = reconcile(&memory, &settings, &request(&["dev/app"], 50), None, None).await.unwrap();
        assert_eq!(memory.tag("prod/app", &tag("sbom-1-released")), Some(digest(9)), "{report:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn promotions_count_against_max_writes_and_resume_from_their_source() {
        let memory = Memory::with_repositories(&["dev/app", "prod/app"]);
        pushed(&memory, "dev/app", 1, "v1.4.2", 1);
        pushed(&memory, "dev/app", 2, "v1.5.0", 2);
        let first = reconcile(&memory, &settings(), &request(&["dev/app"], 3), None, None).await.unwrap();
        assert_eq!((first.status, first.writes), (SweepStatus::Stopped, 3));
        assert_eq!(puts_into(&memory, "prod/app").len(), 3, "{:?}", memory.calls());
        let rest = reconcile(&memory, &settings(), &request(&["dev/app"], 50), None, None).await.unwrap();
        assert_eq!((rest.status, rest.writes), (SweepStatus::Complete, 3), "6 tags in all");
    }
}
