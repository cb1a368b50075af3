//! What ECR says about images beyond their manifests: listings (DescribeImages)
//! with their scans, and an image's signatures (ListImageReferrers, cosign's
//! `.sig` tag, DescribeImageSigningStatus).

use aws_sdk_ecr::types::{
    ArtifactStatusFilter, ImageDetail, ImageIdentifier, ImageStatus, ListImageReferrersFilter, ScanStatus, SigningStatus,
    SubjectIdentifier,
};
use chrono::DateTime;

use super::{fault, registry_id, Ecr};
use crate::domain::artifact::Artifact;
use crate::domain::assess::Scanned;
use crate::domain::names::{Digest, Tag};
use crate::domain::scan::Findings;
use crate::domain::signature::{self, Kind, Kinds, Signatures};
use crate::fault::{Fault, FaultKind};
use crate::registry::{Listed, Lookup, ReadError, Registry, Repository};

/// Inspector's severity for findings it has not rated: counted with the findings below
/// MEDIUM that a gate at LOW cannot place (as its event does), not as an unknown severity.
const UNTRIAGED: &str = "UNTRIAGED";

/// One image of a DescribeImages answer; `None` for one without a valid digest.
pub(super) fn listed(d: &ImageDetail) -> Option<Listed> {
    let digest = Digest::parse(d.image_digest()?).ok()?;
    let tags: Vec<Tag> = d.image_tags().iter().filter_map(|t| Tag::parse(t).ok()).collect();
    let artifact = Artifact::of_listing(tags.iter().map(Tag::as_str), d.subject_manifest_digest(), d.artifact_media_type());
    Some(Listed {
        digest,
        tags,
        pushed_at: d.image_pushed_at().and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        media_type: d.image_manifest_media_type().map(str::to_owned),
        scan: scanned(d),
        artifact,
        archived: d.image_status().is_some_and(|s| *s != ImageStatus::Active),
        signatures: Signatures::default(),
    })
}

/// A basic scan is done when `COMPLETE`; an enhanced (continuous) scan reports `ACTIVE`
/// with the current counts. Any other status is reported as it is.
fn scanned(d: &ImageDetail) -> Scanned {
    let status = d.image_scan_status().and_then(|s| s.status());
    match (status, d.image_scan_findings_summary()) {
        (Some(ScanStatus::Complete | ScanStatus::Active), Some(summary)) => {
            let mut findings = Findings::default();
            for (severity, n) in summary.finding_severity_counts().into_iter().flatten() {
                let n = u64::try_from(*n).unwrap_or(0);
                match severity.as_str() {
                    UNTRIAGED => findings.unsplit = Some(findings.unsplit.unwrap_or(0).saturating_add(n)),
                    name => {
                        findings.counts.insert(name.to_owned(), n);
                    }
                }
            }
            Scanned::Done(findings)
        }
        // Complete with no summary: no finding at all.
        (Some(ScanStatus::Complete | ScanStatus::Active), None) => Scanned::Done(Findings::default()),
        (status, _) => Scanned::NotDone(status.map(|s| s.as_str().to_owned())),
    }
}

impl Ecr {
    pub(super) async fn describe_one(&self, repository: &Repository, digest: &Digest) -> Result<Option<Listed>, ReadError> {
        let request = self
            .client
            .describe_images()
            .repository_name(repository.name.as_str())
            .set_registry_id(registry_id(repository))
            .image_ids(ImageIdentifier::builder().image_digest(digest.as_str()).build());
        let output = send_read_or_absent!(self, repository, request, is_image_not_found_exception)?;
        Ok(output.and_then(|o| o.image_details().iter().find_map(listed)))
    }

    /// Cheapest first, and no further than the first kind found: the referrers of the
    /// signature artifact types in one call, then the `.sig` tag, then managed signing.
    pub(super) async fn find_signatures(&self, repository: &Repository, digest: &Digest, kinds: Kinds) -> Result<Signatures, ReadError> {
        let mut seen = Signatures::default();
        let types = kinds.artifact_types();
        if !types.is_empty() {
            let referred = self.referrers(repository, digest, &types).await?;
            seen.looked = Kinds::of(kinds.iter().filter(|k| k.artifact_type().is_some()));
            seen.found = referred;
            if !seen.found.is_empty() {
                return Ok(seen);
            }
        }
        if kinds.contains(Kind::Cosign) {
            if let Some(tag) = signature::cosign_tag(digest) {
                let snapshot = self.read(repository, Lookup::Tag(&tag), &[]).await?;
                seen.looked = seen.looked.with(Kind::Cosign);
                if snapshot.image.is_some() || snapshot.archived {
                    seen.found = seen.found.with(Kind::Cosign);
                    return Ok(seen);
                }
            }
        }
        if kinds.contains(Kind::Managed) {
            seen.looked = seen.looked.with(Kind::Managed);
            if self.signed_by_ecr(repository, digest).await? {
                seen.found = seen.found.with(Kind::Managed);
            }
        }
        Ok(seen)
    }

    /// ListImageReferrers, filtered to these artifact types: the kinds of active referrers.
    async fn referrers(&self, repository: &Repository, digest: &Digest, artifact_types: &[&str]) -> Result<Kinds, ReadError> {
        let subject = subject(digest)?;
        let filter = ListImageReferrersFilter::builder()
            .set_artifact_types(Some(artifact_types.iter().map(|t| (*t).to_owned()).collect()))
            .artifact_status(ArtifactStatusFilter::Any)
            .build();
        let request = self
            .client
            .list_image_referrers()
            .repository_name(repository.name.as_str())
            .set_registry_id(registry_id(repository))
            .subject_id(subject)
            .filter(filter)
            .max_results(50);
        let output = send_read!(self, repository, request)?;
        Ok(Kinds::of(output.referrers().iter().filter_map(|r| r.artifact_type().and_then(Kind::of_artifact_type))))
    }

    /// Whether ECR managed signing completed for any signing profile.
    async fn signed_by_ecr(&self, repository: &Repository, digest: &Digest) -> Result<bool, ReadError> {
        let request = self
            .client
            .describe_image_signing_status()
            .repository_name(repository.name.as_str())
            .set_registry_id(registry_id(repository))
            .image_id(ImageIdentifier::builder().image_digest(digest.as_str()).build());
        let output = send_read_or_absent!(self, repository, request, is_image_not_found_exception)?;
        Ok(output.is_some_and(|o| o.signing_statuses().iter().any(|s| s.status() == Some(&SigningStatus::Complete))))
    }
}

/// ListImageReferrers' subject: the image `digest` names.
pub(super) fn subject(digest: &Digest) -> Result<SubjectIdentifier, ReadError> {
    SubjectIdentifier::builder()
        .image_digest(digest.as_str())
        .build()
        .map_err(|e| ReadError::Fault(Fault::new(FaultKind::Permanent, "InvalidRequest", e.to_string())))
}
