//! A signature's push: the image it signs gets the tags its signature-gated
//! rules (`"when": {"signed": …}`) were waiting for.
//!
//! Reads only what a signature needs: nothing in a repository no such rule
//! covers, or for a kind no rule accepts; the signature's manifest for its
//! `subject` (a cosign tag names the image itself); then the signed image's
//! tags, push time and scan in one DescribeImages, so that a rule that also
//! gates on the scan is decided in the same event.

use crate::apply::engine::{self, Handled, Job};
use crate::apply::Settings;
use crate::domain::names::Digest;
use crate::domain::plan::{Phase, Trigger};
use crate::domain::request::{Ignored, SignaturePush, Sources};
use crate::domain::signature::{Kind, Kinds, Referrer, Signatures};
use crate::error::RetagError;
use crate::registry::{Blobs, Lookup};
use crate::report::{Report, SignatureReport};

/// A signature's writes, up to the second look at its if-newer tags.
pub async fn begin_signed<R: Blobs>(registry: &R, settings: &Settings, signature: &SignaturePush) -> Result<Handled, RetagError> {
    let repository = &signature.repository;
    let name = repository.name.as_str();
    let ignored = |reason: String| {
        let about = Ignored { reason, repository: Some(name.to_owned()), digest: signature.digest.as_ref().map(Digest::to_string), tag: None };
        Ok(Handled { report: Report::ignored(about), claims: Vec::new() })
    };
    let accepted = settings.rules.signed_kinds(name);
    if accepted.is_empty() {
        return ignored("untagged push: no signature-gated rule covers this repository".to_owned());
    }
    if let Some(kind) = signature.kind.filter(|k| !accepted.contains(*k)) {
        return ignored(format!("a {kind} signature: no signature-gated rule of this repository accepts that kind ({accepted})"));
    }
    let referrer = match (&signature.subject, &signature.digest) {
        (Some(subject), _) => Referrer { subject: subject.clone(), kind: Kind::Cosign },
        (None, Some(digest)) => {
            let snapshot = registry.read(repository, Lookup::Digest(digest), &[]).await.map_err(|e| RetagError::reading(repository, e))?;
            let Some(image) = snapshot.image else {
                return ignored(format!("the pushed manifest {digest} is no longer readable in the repository (deleted or archived since)"));
            };
            match Referrer::of_manifest(&image.manifest) {
                Some(referrer) => referrer,
                None => {
                    return ignored(
                        "untagged push of no signature: its manifest has no subject, or an artifact type other than a signature's"
                            .to_owned(),
                    )
                }
            }
        }
        (None, None) => return ignored("a signature push that names no manifest".to_owned()),
    };
    if !accepted.contains(referrer.kind) {
        return ignored(format!("a {} signature: no signature-gated rule of this repository accepts that kind ({accepted})", referrer.kind));
    }
    let Some(image) = registry.describe(repository, &referrer.subject).await.map_err(|e| RetagError::reading(repository, e))? else {
        return ignored(format!("the signed image {} is not in the repository", referrer.subject));
    };
    let Some(sources) = Sources::new(image.tags.clone()) else {
        return ignored(format!("the signed image {} has no tag: no rule can apply", referrer.subject));
    };
    let seen = Kinds::of([referrer.kind]);
    let job = Job {
        repository: repository.clone(),
        digest: Some(referrer.subject.clone()),
        sources,
        artifact: None,
        // Date stamps render from the image's push, as the sweep renders them.
        at: image.pushed_at.unwrap_or(signature.pushed_at),
        media_type: image.media_type.as_deref(),
        dry_run: signature.dry_run || settings.dry_run,
        phase: Phase { trigger: Trigger::Signature, scan: image.scan.phase(), ..Phase::PUSH }
            .with_signatures(Signatures { looked: seen, found: seen }),
        image: Default::default(),
    };
    let mut handled = engine::run(registry, settings, job).await?;
    handled.report.signature = Some(SignatureReport {
        digest: signature.digest.as_ref().map(Digest::to_string),
        kind: referrer.kind.to_string(),
        image_tags: {
            let mut tags: Vec<String> = image.tags.iter().map(ToString::to_string).collect();
            tags.sort();
            tags
        },
    });
    Ok(handled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::assess::Scanned;
    use crate::domain::names::{Repository, RepositoryName, Tag};
    use crate::domain::request::{Push, ScanResult};
    use crate::domain::rules::RuleSet;
    use crate::domain::scan::Findings;
    use crate::domain::signature::cosign_tag;
    use crate::registry::memory::Memory;
    use crate::registry::Image;
    use crate::report::Outcome;

    const RULES: &str = r#"{"rules":[
        {"name":"signed","semver":true,"when":{"signed":true},"tags":["stable"]},
        {"name":"both","semver":true,"when":{"signed":["notation"],"scan":"MEDIUM"},"tags":["prod"]},
        {"name":"plain","semver":true,"tags":["v{major}"]}
    ]}"#;
    const NOTATION: &str = "application/vnd.cncf.notary.signature";
    const MEDIA: &str = "application/vnd.oci.image.manifest.v1+json";

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn app() -> Repository {
        Repository::own(RepositoryName::parse("app").unwrap())
    }

    fn settings() -> Settings {
        Settings::new(RuleSet::from_json(RULES).unwrap())
    }

    /// Image 1 tagged `v1.4.2`.
    fn registry() -> Memory {
        let memory = Memory::with_repositories(&["app"]);
        let image = Image { digest: digest(1), manifest: r#"{"schemaVersion":2}"#.into(), media_type: Some(MEDIA.into()) };
        memory.add_image("app", image, Some("2026-11-24T10:15:02Z".parse().unwrap()));
        memory.point("app", &Tag::parse("v1.4.2").unwrap(), &digest(1));
        memory
    }

    /// A Notation signature of image 1, stored untagged as manifest `n`.
    fn sign_with_notation(memory: &Memory, n: u8) -> SignaturePush {
        let manifest = format!(r#"{{"schemaVersion":2,"mediaType":"{MEDIA}","artifactType":"{NOTATION}","subject":{{"digest":"{}"}}}}"#, digest(1));
        memory.add_image("app", Image { digest: digest(n), manifest, media_type: Some(MEDIA.into()) }, None);
        SignaturePush { repository: app(), digest: Some(digest(n)), subject: None, kind: Some(Kind::Notation), pushed_at: "2026-11-24T10:16:00Z".parse().unwrap(), dry_run: false }
    }

    fn push(tag: &str, d: &Digest) -> Push {
        Push {
            repository: app(),
            tag: Tag::parse(tag).unwrap(),
            digest: Some(d.clone()),
            pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(),
            media_type: None,
            artifact_media_type: None,
            dry_run: false,
        }
    }

    fn scan(findings: Findings) -> ScanResult {
        ScanResult {
            repository: app(),
            digest: digest(1),
            tags: Sources::one(Tag::parse("v1.4.2").unwrap()),
            scanned_at: "2026-11-24T10:20:00Z".parse().unwrap(),
            findings,
        }
    }

    fn outcomes(report: &Report) -> Vec<(&str, Outcome)> {
        report.tags.iter().map(|t| (t.tag.as_str(), t.outcome)).collect()
    }

    async fn signed(memory: &Memory, signature: &SignaturePush) -> Report {
        begin_signed(memory, &settings(), signature).await.unwrap().conclude().unwrap()
    }

    fn at(memory: &Memory, tag: &str) -> Option<Digest> {
        memory.tag("app", &Tag::parse(tag).unwrap())
    }

    #[tokio::test]
    async fn a_push_defers_the_signed_tag_and_the_signature_push_brings_it_once() {
        let memory = registry();
        let report = crate::apply::begin_push(&memory, &settings(), &push("v1.4.2", &digest(1))).await.unwrap().conclude().unwrap();
        assert_eq!(outcomes(&report), [("prod", Outcome::Deferred), ("stable", Outcome::Deferred), ("v1", Outcome::Created)]);
        assert_eq!(memory.kinds(), ["signatures", "read", "put"], "one look for a signature, then the usual read and write");

        let signature = sign_with_notation(&memory, 7);
        memory.clear_calls();
        let report = signed(&memory, &signature).await;
        assert_eq!(outcomes(&report), [("prod", Outcome::Deferred), ("stable", Outcome::Created)], "prod still waits for its scan");
        assert_eq!(report.signature.as_ref().map(|s| (s.kind.as_str(), s.image_tags.clone())), Some(("notation", vec!["v1".to_owned(), "v1.4.2".to_owned()])));
        assert_eq!(at(&memory, "stable"), Some(digest(1)));
        assert_eq!(memory.kinds(), ["read", "describe", "read", "put"], "the signature's manifest, the image's tags, then the write");

        memory.clear_calls();
        let again = signed(&memory, &signature).await;
        assert_eq!(outcomes(&again), [("prod", Outcome::Deferred), ("stable", Outcome::Unchanged)]);
        assert!(!memory.kinds().contains(&"put"), "a redelivery writes nothing more");
    }

    #[tokio::test]
    async fn a_cosign_signature_tag_brings_the_tags_of_the_image_it_names() {
        let memory = registry();
        let sig = cosign_tag(&digest(1)).unwrap();
        memory.add_image("app", Image { digest: digest(8), manifest: "{}".into(), media_type: Some(MEDIA.into()) }, None);
        memory.point("app", &sig, &digest(8));
        let report = crate::apply::begin_push(&memory, &settings(), &push(sig.as_str(), &digest(8))).await.unwrap().conclude().unwrap();
        assert_eq!(outcomes(&report), [("prod", Outcome::Deferred), ("stable", Outcome::Created)], "prod waits for its scan");
        assert_eq!(report.digest.as_deref(), Some(digest(1).as_str()), "the signed image, not the signature");
        assert_eq!(memory.kinds(), ["describe", "read", "put"], "the tag names the image: no manifest read of the signature");
        assert_eq!(at(&memory, "stable"), Some(digest(1)));
    }

    #[tokio::test]
    async fn scan_and_signature_in_either_order_write_the_tag_on_the_last_one() {
        // Scan first: no signature yet, so deferred; the signature then finds the scan in the listing.
        let memory = registry();
        let clean = Findings::default();
        let report = crate::apply::promote_scanned(&memory, &settings(), &scan(clean.clone())).await.unwrap();
        assert_eq!(outcomes(&report), [("prod", Outcome::Deferred)]);
        assert_eq!(memory.kinds(), ["describe", "signatures"], "the findings now, one look; nothing to write, so no manifest read");
        memory.set_scan("app", &digest(1), Scanned::Done(clean.clone()));
        let report = signed(&memory, &sign_with_notation(&memory, 7)).await;
        assert_eq!(outcomes(&report), [("prod", Outcome::Created), ("stable", Outcome::Created)]);

        // Signature first: the scan is pending, so prod waits; the scan's event then finds the signature.
        let memory = registry();
        memory.set_scan("app", &digest(1), Scanned::NotDone(Some("IN_PROGRESS".into())));
        let report = signed(&memory, &sign_with_notation(&memory, 7)).await;
        assert_eq!(outcomes(&report), [("prod", Outcome::Deferred), ("stable", Outcome::Created)]);
        assert!(report.tags[0].detail.as_deref().is_some_and(|d| d.contains("ECR's scan status: IN_PROGRESS")), "{:?}", report.tags[0]);
        memory.clear_calls();
        let report = crate::apply::promote_scanned(&memory, &settings(), &scan(clean.clone())).await.unwrap();
        assert_eq!(outcomes(&report), [("prod", Outcome::Created)]);
        assert_eq!(memory.kinds(), ["describe", "signatures", "read", "put"], "no summary yet: the event decides");
        let high = Findings { unsplit: None, counts: [("HIGH".to_owned(), 2)].into() };
        let memory = registry();
        memory.set_scan("app", &digest(1), Scanned::Done(high));
        let report = signed(&memory, &sign_with_notation(&memory, 7)).await;
        assert_eq!(outcomes(&report), [("prod", Outcome::Blocked), ("stable", Outcome::Created)]);
    }

    #[tokio::test]
    async fn pushes_that_cannot_matter_cost_nothing_and_non_signatures_one_read() {
        let memory = registry();
        let plain = Settings::new(RuleSet::from_json(r#"{"rules":[{"name":"plain","semver":true,"tags":["v{major}"]}]}"#).unwrap());
        let signature = sign_with_notation(&memory, 7);
        let report = begin_signed(&memory, &plain, &signature).await.unwrap().report;
        assert!(report.reason.as_deref().is_some_and(|r| r.contains("no signature-gated rule")), "{report:?}");
        let cosign_only = Settings::new(RuleSet::from_json(r#"{"rules":[{"name":"c","semver":true,"when":{"signed":["cosign"]},"tags":["s"]}]}"#).unwrap());
        let report = begin_signed(&memory, &cosign_only, &signature).await.unwrap().report;
        assert!(report.reason.as_deref().is_some_and(|r| r.contains("accepts that kind")), "{report:?}");
        assert!(memory.calls().is_empty(), "decided from the event alone");

        // An OCI artifact with an empty config: read, and found to be an SBOM.
        let sbom = format!(r#"{{"artifactType":"application/spdx+json","subject":{{"digest":"{}"}}}}"#, digest(1));
        memory.add_image("app", Image { digest: digest(9), manifest: sbom, media_type: Some(MEDIA.into()) }, None);
        let maybe = SignaturePush { kind: None, digest: Some(digest(9)), ..signature };
        let report = signed(&memory, &maybe).await;
        assert!(report.reason.as_deref().is_some_and(|r| r.contains("no signature")), "{report:?}");
        assert_eq!(memory.kinds(), ["read"]);
    }
}
