//! The narrow port to the registry: the reads and writes retagging needs.
//!
//! [`crate::registry::ecr::Ecr`] implements it with aws-sdk-ecr; tests can implement it
//! in memory. Everything here is what the retagging logic needs to know, with
//! the SDK's types left behind.


pub mod cache;
pub mod deadline;
pub mod ecr;
pub mod memory;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;


use crate::domain::mutability::TagMutability;
use crate::domain::signature::{Kinds, Signatures};
use crate::fault::Fault;
use crate::domain::names::{Digest, RegistryId, RepositoryName, Tag};

/// The four manifest media types ECR stores and this function re-puts.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

pub use crate::domain::names::MAX_TAGS_PER_IMAGE;

/// Every call is answered, or given up on, within this (the SDK's retries included).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// How long a put of [`Attempts::Once`] waits for its one attempt (connecting included)
/// before it gives up on it.
pub const ONE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

pub use crate::domain::names::Repository;

/// An image to put tags on: where, its exact manifest, and the media type to put it with.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub repository: &'a Repository,
    pub image: &'a Image,
    pub media_type: &'a str,
}

impl Target<'_> {
    pub fn digest(&self) -> &Digest {
        &self.image.digest
    }
}

/// How hard one PutImage tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempts {
    /// The SDK's retries, within [`OPERATION_TIMEOUT`].
    Retried,
    /// One attempt, given up after [`ONE_ATTEMPT_TIMEOUT`]: for writes decided
    /// from a read that must still be fresh when the request goes out
    /// (`"move": "if-newer"`); the caller re-reads before trying again.
    Once,
}

/// How to find the image to re-tag.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    Digest(&'a Digest),
    Tag(&'a Tag),
}

/// An image's manifest exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub digest: Digest,
    /// The manifest bytes, untouched: they are what the digest is computed over.
    pub manifest: String,
    pub media_type: Option<String>,
}

impl Image {
    /// The media type to put this manifest with: ECR's answer, else the event's, else the
    /// manifest's own ([`crate::domain::manifest::media_type`]); `None` when none says.
    pub fn media_type_or(&self, from_event: Option<&str>) -> Option<String> {
        crate::domain::manifest::media_type(self.media_type.as_deref(), from_event, &self.manifest)
    }
}

/// What one read tells: the image, and where each asked-for tag points now.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `None` when the image does not exist (any more), or is archived.
    pub image: Option<Image>,
    /// The image exists but is archived (BatchGetImage: `ImageInaccessible`): its manifest
    /// cannot be read, and a PutImage of it would restore it (a 90-day minimum charge).
    pub archived: bool,
    pub tags: BTreeMap<Tag, TagState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagState {
    At(Digest),
    /// On an image that is archived (which one ECR does not say).
    Archived,
    Absent,
    /// ECR could not say for this tag.
    Unreadable(Fault),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("repository not found")]
    RepositoryNotFound,
    #[error(transparent)]
    Fault(Fault),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    /// `ImageAlreadyExistsException`: the tag already points at this manifest.
    #[error("the tag already points at this image")]
    AlreadyExists,
    /// `ImageTagAlreadyExistsException`: the tag is immutable and exists, pointing anywhere.
    #[error("the tag is immutable and already exists")]
    TagImmutable,
    #[error("repository not found")]
    RepositoryNotFound,
    /// `LimitExceededException`: in practice the image already holds ECR's
    /// maximum of 1,000 tags. Retrying cannot help.
    #[error("LimitExceededException: {message}")]
    LimitExceeded { message: String },
    #[error(transparent)]
    Fault(Fault),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoveError {
    /// The tag no longer exists.
    #[error("the tag does not exist")]
    NotFound,
    #[error("repository not found")]
    RepositoryNotFound,
    #[error(transparent)]
    Fault(Fault),
}

/// The registry operations this function uses, and no others.
pub trait Registry: Send + Sync {
    /// One read: the image (by digest or tag) and where each of `tags` points now.
    fn read(
        &self,
        repository: &Repository,
        image: Lookup<'_>,
        tags: &[Tag],
    ) -> impl Future<Output = Result<Snapshot, ReadError>> + Send;

    /// Points `tag` at the target's image by putting its manifest back unchanged.
    fn put(&self, target: &Target<'_>, tag: &Tag, attempts: Attempts) -> impl Future<Output = Result<(), PutError>> + Send;

    /// Every tag of the image `digest` (for `"move": "if-newer"`: a holder's
    /// version). Empty when the image no longer exists.
    fn tags_of(&self, repository: &Repository, digest: &Digest) -> impl Future<Output = Result<Vec<Tag>, ReadError>> + Send;

    /// Removes `tag` (for `remove_source`). ECR deletes the image with its last tag.
    fn remove(&self, repository: &Repository, tag: &Tag) -> impl Future<Output = Result<(), RemoveError>> + Send;

    /// The repository's tag mutability and exclusion filters (DescribeRepositories),
    /// for the detail of a `conflict`: what change would let the tag move.
    fn tag_mutability(&self, repository: &Repository) -> impl Future<Output = Result<TagMutability, ReadError>> + Send;

    /// Starts restoring an archived image (UpdateImageStorageClass to STANDARD; ECR takes
    /// up to 20 minutes), for rules with `"restore_archived": true`.
    fn restore(&self, repository: &Repository, digest: &Digest) -> impl Future<Output = Result<(), ReadError>> + Send;

    /// The repository's resource tags (for rules with `repository_tags`).
    fn repository_tags(
        &self,
        repository: &Repository,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, ReadError>> + Send;

    /// Whether the image `digest` has a signature of one of `kinds` (for `"when": {"signed": …}`),
    /// looked for in the cheapest order and no further than the first found: referrers of the
    /// signature artifact types (ListImageReferrers), then cosign's `.sig` tag (BatchGetImage),
    /// then managed signing's status (DescribeImageSigningStatus).
    fn signatures(
        &self,
        repository: &Repository,
        digest: &Digest,
        kinds: Kinds,
    ) -> impl Future<Output = Result<Signatures, ReadError>> + Send;

    /// One image as a listing shows it (DescribeImages by digest): its tags, push time and
    /// scan, for a signature's push, which names only the signed digest. `None`: no such image.
    fn describe(&self, repository: &Repository, digest: &Digest) -> impl Future<Output = Result<Option<Listed>, ReadError>> + Send;
}

/// One page of a listing, and the token of the next one (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

pub use crate::domain::assess::Listed;

/// The listings a reconcile sweep walks (DescribeRepositories, DescribeImages),
/// one page per call so that the sweep can stop between pages.
pub trait Catalog: Registry {
    /// Repository names in a registry (`None`: the caller's own), in the function's region.
    fn repositories(
        &self,
        registry_id: Option<&RegistryId>,
        page: Option<&str>,
    ) -> impl Future<Output = Result<Page<RepositoryName>, ReadError>> + Send;

    /// The repository's tagged images.
    fn images(&self, repository: &Repository, page: Option<&str>) -> impl Future<Output = Result<Page<Listed>, ReadError>> + Send;
}

/// The registry's settings that decide whether rules can work, for `ecr-retag doctor`:
/// read-only, and never called by the function (its role is not granted them).
pub trait Setup: Catalog {
    /// The registry's scan type (GetRegistryScanningConfiguration).
    fn scan_type(&self) -> impl Future<Output = Result<ScanType, ReadError>> + Send;

    /// How the repository is scanned, as ECR applies the registry's rules to it
    /// (BatchGetRepositoryScanningConfiguration).
    fn scan_frequency(&self, repository: &Repository) -> impl Future<Output = Result<Frequency, ReadError>> + Send;

    /// The repository's lifecycle policy text (GetLifecyclePolicy); `None`: it has none.
    fn lifecycle_policy(&self, repository: &Repository) -> impl Future<Output = Result<Option<String>, ReadError>> + Send;

    /// The repository prefixes of the registry's pull-through cache rules (DescribePullThroughCacheRules).
    fn pull_through_prefixes(&self) -> impl Future<Output = Result<Vec<String>, ReadError>> + Send;

    /// How long Amazon Inspector rescans an ECR image after its push (Inspector's GetConfiguration,
    /// `ecrConfiguration.rescanDurationState.rescanDuration`: `DAYS_3` … `LIFETIME`); `None`: not said.
    fn rescan_duration(&self) -> impl Future<Output = Result<Option<String>, ReadError>> + Send;
}

pub use crate::domain::doctor::{Frequency, ScanType};

/// A blob mount's answer: 201, or 202 (the registry opened an upload session instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    Mounted,
    NotMounted,
}

/// Blobs between the repositories of one registry, for promotion into another repository.
pub trait Blobs: Registry {
    /// The account setting `BLOB_MOUNTING` (GetAccountSetting).
    fn mounting_enabled(&self) -> impl Future<Output = Result<bool, ReadError>> + Send;

    /// The repository's encryption (DescribeRepositories): its type and KMS key, as ECR names them.
    fn encryption(&self, repository: &Repository) -> impl Future<Output = Result<(String, Option<String>), ReadError>> + Send;

    /// Which of `digests` the repository lacks (BatchCheckLayerAvailability, 100 a call).
    fn missing(&self, repository: &Repository, digests: &[Digest]) -> impl Future<Output = Result<Vec<Digest>, ReadError>> + Send;

    /// Mounts the blob `digest` from `source` into `target` (the registry API's
    /// `POST /v2/<target>/blobs/uploads/?mount=<digest>&from=<source>`).
    fn mount(&self, target: &Repository, source: &Repository, digest: &Digest) -> impl Future<Output = Result<Mount, Fault>> + Send;

    /// PutImage of a manifest by its digest and untagged: an index's child, or a referrer.
    /// `AlreadyExists` when the repository holds it already.
    fn put_manifest(&self, repository: &Repository, image: &Image, media_type: &str) -> impl Future<Output = Result<(), PutError>> + Send;

    /// Copies the blob `digest` from `source` into `target` through the function, for a registry
    /// that will not mount it: GetDownloadUrlForLayer, then InitiateLayerUpload, UploadLayerPart and
    /// CompleteLayerUpload, a part at a time. Refused (permanently) past `max_bytes`. The bytes sent.
    fn copy_blob(&self, target: &Repository, source: &Repository, digest: &Digest, max_bytes: u64) -> impl Future<Output = Result<u64, Fault>> + Send;

    /// The digests of the image's active referrers of any artifact type (ListImageReferrers):
    /// its signatures, SBOMs and attestations.
    fn referrers(&self, repository: &Repository, digest: &Digest) -> impl Future<Output = Result<Vec<Digest>, ReadError>> + Send;

    /// The image's active referrers of one artifact type, with their annotations
    /// (ListImageReferrers with a filter): promotion records, told apart without reading them.
    fn referrers_of_type(
        &self,
        repository: &Repository,
        digest: &Digest,
        artifact_type: &str,
    ) -> impl Future<Output = Result<Vec<Annotated>, ReadError>> + Send;

    /// Uploads a small blob whole (InitiateLayerUpload, one UploadLayerPart, CompleteLayerUpload):
    /// a promotion record's. A blob already there is no error.
    fn upload_blob(&self, repository: &Repository, digest: &Digest, bytes: &[u8]) -> impl Future<Output = Result<(), Fault>> + Send;

    /// A blob's bytes (GetDownloadUrlForLayer, then the URL), refused past `max_bytes`: a record's
    /// envelope, for `ecr-retag why`.
    fn blob_bytes(&self, repository: &Repository, digest: &Digest, max_bytes: u64) -> impl Future<Output = Result<Vec<u8>, Fault>> + Send;
}

/// A referrer as ListImageReferrers lists it: its digest and its manifest's annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotated {
    pub digest: Digest,
    pub annotations: BTreeMap<String, String>,
}
