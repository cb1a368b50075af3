//! The sweep's pure part: what the rules want of one repository's tagged
//! images, each tag applied as if just pushed at the image's push time, and
//! which image each derived tag should end on. No I/O.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::artifact::Artifact;
use crate::names::{Digest, RepositoryName, Tag};
use crate::plan::{self, Phase, Plan, Scan, Verdict};
use crate::rules::{RuleSet, Subject};
use crate::scan::Findings;
use crate::signature::{self, Kind, Kinds, Signatures};

/// A tagged image as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub digest: Digest,
    /// Its tags (any that are no valid reference left out).
    pub tags: Vec<Tag>,
    /// `imagePushedAt`; `None` if ECR gave none.
    pub pushed_at: Option<DateTime<Utc>>,
    pub media_type: Option<String>,
    /// Its scan: the counts of a completed one (basic or enhanced), or ECR's scan status.
    pub scan: Scanned,
    /// A signature, attestation or SBOM, as the listing tells it.
    pub artifact: Option<Artifact>,
    /// In the archive storage class (or being restored from it): no tag is put on it,
    /// since a PutImage would restore it; the tags it holds still count as held.
    pub archived: bool,
    /// Signatures looked for since the listing (a listing itself shows none but cosign's tags).
    pub signatures: Signatures,
}

/// An image's scan as a listing tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// A basic scan `COMPLETE`, or an enhanced scan `ACTIVE` (Inspector scans continuously): its counts.
    Done(Findings),
    /// ECR's scan status otherwise (`PENDING`, `IN_PROGRESS`, `FAILED`, `UNSUPPORTED_IMAGE`, …);
    /// `None`: never scanned.
    NotDone(Option<String>),
}

impl Scanned {
    /// What the plan knows of the scan.
    pub fn phase(&self) -> Scan<'_> {
        match self {
            Scanned::Done(findings) => Scan::Done(findings),
            Scanned::NotDone(status) => Scan::NotYet(status.as_deref()),
        }
    }
}

/// One tag as the rules say it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// A promotion's target (`"to"`), where the tag is written and the image copied; `None`: the
    /// listed repository itself.
    pub to: Option<RepositoryName>,
    pub tag: Tag,
    /// The image it should point at.
    pub digest: Digest,
    /// Where it points now (`None`: nowhere, or in a target, not known from this listing).
    pub current: Option<Digest>,
    pub rules: Vec<String>,
    /// `"move": "if-newer"`: the winner's version; the write is then guarded
    /// (`ecr_retag::apply::if_newer`), since the listing may be older than an event's write.
    pub version: Option<semver::Version>,
}

/// What the rules want of one repository's images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    /// The repository's own tags sorted by tag, then each promotion target's.
    pub desired: Vec<Desired>,
    /// Tags the rules derive but that cannot or may not be written now (invalid
    /// renderings, loop risks, gated without a passing scan or a signature), and why.
    pub held: Vec<Held>,
    /// Images whose deferred tags a look for signatures of these kinds would decide
    /// (the listing shows cosign's tags, not referrers or managed signing).
    pub signature_looks: Vec<(Digest, Kinds)>,
}

/// A derived tag held back from one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// A promotion's target; `None`: the listed repository.
    pub to: Option<RepositoryName>,
    pub tag: String,
    pub digest: Digest,
    pub reason: String,
    /// The rules that derive it.
    pub rules: Vec<String>,
    /// The image carries the tag already (a gated tag whose gate fails since it was written).
    pub carried: bool,
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
    // Keyed by where the tag is written: a promotion's `stable` is another tag than the listed repository's.
    let mut candidates: BTreeMap<(Option<RepositoryName>, Tag), Vec<Candidate<'_>>> = BTreeMap::new();
    let mut held: BTreeMap<(Option<RepositoryName>, String, &Digest), Held> = BTreeMap::new();
    let mut signature_looks = Vec::new();
    let signed_by_cosign: BTreeSet<Digest> = images.iter().flat_map(|i| &i.tags).filter_map(signature::cosign_subject).collect();
    let mut current: BTreeMap<&Tag, &Digest> = BTreeMap::new();
    for image in images {
        for t in &image.tags {
            current.insert(t, &image.digest);
        }
    }
    for image in images.iter().filter(|i| !i.archived) {
        let at = image.pushed_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        // The listing shows every tag: cosign's `.sig` tags are looked for, for free.
        let cosign = Signatures { looked: Kinds::of([Kind::Cosign]), found: Kinds::NONE };
        let cosign = if signed_by_cosign.contains(&image.digest) { Signatures { found: cosign.looked, ..cosign } } else { cosign };
        // As on a push, with what the listing (and any look since) tells of the scan and signatures.
        let phase = Phase { scan: image.scan.phase(), ..Phase::PUSH }.with_signatures(cosign).with_signatures(image.signatures);
        let planned = Plan::merge(image.tags.iter().map(|t| {
            let subject = Subject { repository, tag: t, digest: &image.digest, pushed_at: at, repository_tags, artifact: image.artifact.is_some() };
            plan::plan(rules, &subject, phase)
        }));
        let mut look_for = Kinds::NONE;
        for p in planned.tags {
            // Only the listed repository's tags are seen on the image; a target's are not listed here.
            let carried = image.tags.iter().find(|t| p.to.is_none() && t.as_str() == p.tag);
            let verdict = match (p.look_for, carried) {
                // On the image already, and only a look could say more: it was written when its
                // gate held, and a look per image and sweep would be spent for nothing.
                (Some(_), Some(tag)) => Verdict::Write(tag.clone()),
                (Some(kinds), None) => {
                    look_for = look_for.union(kinds);
                    p.verdict
                }
                (None, _) => p.verdict,
            };
            match verdict {
                // A tag the image carries itself is never planned against it; another image may still want it.
                Verdict::Write(tag) => {
                    let if_newer = p.if_newer.is_some();
                    let candidate = Candidate { image, rules: p.rules, if_newer, version: p.if_newer };
                    candidates.entry((p.to, tag)).or_default().push(candidate);
                }
                Verdict::Invalid(reason) | Verdict::Loops(reason) | Verdict::Deferred(reason) | Verdict::Blocked(reason) => {
                    let entry = Held { to: p.to.clone(), tag: p.tag.clone(), digest: image.digest.clone(), reason, rules: p.rules, carried: carried.is_some() };
                    held.insert((p.to, p.tag, &image.digest), entry);
                }
            }
        }
        if !look_for.is_empty() {
            signature_looks.push((image.digest.clone(), look_for));
        }
    }
    let desired = candidates
        .into_iter()
        .filter_map(|((to, tag), cands)| {
            let holder = if to.is_none() { current.get(&tag).copied() } else { None };
            let winner = winner(&cands, holder)?;
            Some(Desired {
                to,
                digest: winner.image.digest.clone(),
                current: holder.cloned(),
                rules: winner.rules.clone(),
                version: if winner.if_newer { winner.version.clone() } else { None },
                tag,
            })
        })
        .collect();
    let held = held.into_values().collect();
    Assessment { desired, held, signature_looks }
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
            scan: Scanned::NotDone(None),
            artifact: None,
            archived: false,
            signatures: Signatures::default(),
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
    fn an_archived_image_is_passed_over_and_if_newer_tags_go_to_the_highest_active_version() {
        let mut archived = image(2, &["v1.4.0"], 2);
        archived.archived = true;
        let images = [image(1, &["v1.3.0"], 1), archived];
        let got = wanted(IF_NEWER, &images);
        assert_eq!(got["stable"], (1, None), "1.4.0 is archived: 1.3.0 is the highest active");
        assert!(!got.contains_key("v1.4"), "nothing is derived for the archived image");
    }

    #[test]
    fn an_artifact_in_the_listing_derives_only_for_rules_that_opt_in() {
        let catch_all = r#"{"rules":[{"name":"all","match":".*","tags":["latest"]}]}"#;
        let mut signature = image(2, &["signed-v1"], 2);
        signature.artifact = Some(crate::artifact::Artifact::Referrer { subject: digest(1).to_string() });
        let images = [image(1, &["v1.3.0"], 1), signature];
        assert_eq!(wanted(catch_all, &images), BTreeMap::from([("latest".to_owned(), (1, None))]), "the later push is a signature");
        let opted = r#"{"rules":[{"name":"all","match":".*","artifacts":true,"tags":["latest"]}]}"#;
        assert_eq!(wanted(opted, &images)["latest"], (2, None));
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
        unscanned.scan = Scanned::NotDone(Some("PENDING".into()));
        let a = assess(&rules, "app", std::slice::from_ref(&unscanned), None);
        assert_eq!(a.desired.len(), 1, "v1 written");
        assert_eq!(a.held.len(), 1, "stable waits for a scan");
        assert_eq!(a.held[0].reason, "waits for the image scan: written then if no finding is above MEDIUM (ECR's scan status: PENDING)");

        unscanned.scan = Scanned::Done(Findings { unsplit: None, counts: [("LOW".to_owned(), 3)].into() });
        let a = assess(&rules, "app", std::slice::from_ref(&unscanned), None);
        assert_eq!(a.desired.iter().map(|d| d.tag.as_str()).collect::<Vec<_>>(), ["stable", "v1"]);

        unscanned.scan = Scanned::Done(Findings { unsplit: None, counts: [("HIGH".to_owned(), 1)].into() });
        let a = assess(&rules, "app", std::slice::from_ref(&unscanned), None);
        assert_eq!(a.desired.len(), 1);
        assert_eq!((a.held[0].tag.as_str(), a.held[0].reason.as_str()), ("stable", "the scan found HIGH 1; the rule allows findings up to MEDIUM"));
    }

    #[test]
    fn an_image_inspector_no_longer_scans_is_held_with_a_reason_a_person_can_act_on() {
        let rules = RuleSet::from_json(r#"{"rules":[{"name":"safe","semver":true,"when":{"scan":"HIGH"},"to":"prod/app","tags":["stable"]}]}"#).unwrap();
        let mut old = image(1, &["v1.0.0"], 1);
        old.scan = Scanned::NotDone(Some(crate::plan::EXPIRED.to_owned()));
        let a = assess(&rules, "app", std::slice::from_ref(&old), None);
        assert!(a.desired.is_empty());
        assert_eq!((a.held[0].to.as_ref().map(|t| t.as_str()), a.held[0].tag.as_str()), (Some("prod/app"), "stable"));
        let reason = &a.held[0].reason;
        assert!(reason.contains("SCAN_ELIGIBILITY_EXPIRED") && reason.contains("push the image again") && reason.contains("rescanDuration"), "{reason}");
    }

    #[test]
    fn signed_tags_follow_a_cosign_tag_in_the_listing_and_ask_for_a_look_otherwise() {
        let rules = RuleSet::from_json(r#"{"rules":[{"name":"signed","semver":true,"when":{"signed":true},"tags":["stable"]}]}"#).unwrap();
        let (signed, unsigned) = (image(1, &["v1.0.0"], 1), image(2, &["v1.1.0"], 2));
        let cosign = image(3, &[signature::cosign_tag(&digest(1)).unwrap().as_str()], 2);
        let a = assess(&rules, "app", &[signed.clone(), unsigned.clone(), cosign.clone()], None);
        assert_eq!(a.desired.iter().map(|d| (d.tag.as_str(), d.digest.clone())).collect::<Vec<_>>(), [("stable", digest(1))]);
        assert_eq!(a.signature_looks, [(digest(2), Kinds::of([Kind::Notation, Kind::Sigstore]))], "cosign is seen in the listing");

        let mut looked = unsigned;
        looked.signatures = Signatures { looked: Kinds::of([Kind::Notation, Kind::Sigstore]), found: Kinds::of([Kind::Notation]) };
        let a = assess(&rules, "app", &[signed, looked.clone(), cosign], None);
        assert_eq!(a.desired.iter().map(|d| (d.tag.as_str(), d.digest.clone())).collect::<Vec<_>>(), [("stable", digest(2))], "the newer push");
        assert!(a.signature_looks.is_empty());

        looked.signatures.found = Kinds::NONE;
        let a = assess(&rules, "app", &[looked], None);
        assert!(a.desired.is_empty() && a.signature_looks.is_empty(), "looked, none: waits for the signature's push");
        assert!(a.held[0].reason.starts_with("waits for a signature"), "{:?}", a.held);
    }

    #[test]
    fn a_promotion_wants_the_same_winners_in_its_target_and_is_told_apart_from_the_own_tags() {
        let rules = r#"{"rules":[
            {"name":"lines","semver":true,"move":"if-newer","tags":["stable"]},
            {"name":"prod","semver":true,"move":"if-newer","to":"prod/app","tags":["stable","v{major}.{minor}"]}]}"#;
        let images = [image(1, &["v1.4.2", "stable"], 1), image(2, &["v1.5.0"], 2), image(3, &["v1.4.3"], 3)];
        let a = assess(&RuleSet::from_json(rules).unwrap(), "app", &images, None);
        let n = |d: &Digest| (1..=9).find(|i| digest(*i) == *d).unwrap();
        let got: Vec<(Option<&str>, &str, u8, Option<u8>)> =
            a.desired.iter().map(|d| (d.to.as_ref().map(|t| t.as_str()), d.tag.as_str(), n(&d.digest), d.current.as_ref().map(n))).collect();
        assert_eq!(
            got,
            [
                (None, "stable", 2, Some(1)),
                (Some("prod/app"), "stable", 2, None),
                (Some("prod/app"), "v1.4", 3, None),
                (Some("prod/app"), "v1.5", 2, None),
            ],
            "the hotfix pushed last takes v1.4 only; where the target's tags are now is the target's listing to say"
        );
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
