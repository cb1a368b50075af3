//! Promotion into another repository of the same registry (a rule's `"to"`): the image is
//! copied there by digest without moving a byte, and its tags are then written there by the
//! same path as any other tag ([`crate::apply::engine`]), which puts the manifest itself.
//!
//! The order keeps the target from ever naming what it does not hold, as ECR requires:
//! 1. the preconditions ([`ready`]): `BLOB_MOUNTING` on and the same encryption on both
//!    repositories, each read once per warm instance (the handler's registry keeps them);
//! 2. an index's children, each by digest, untagged, after its own blobs ([`copy`]);
//! 3. the image's blobs, mounted from the source where the target lacks them;
//! 4. (the caller) the tags, whose first PutImage stores the manifest;
//! 5. its referrers, by digest, once their subject is there ([`copy_referrers`]): signatures
//!    and SBOMs go along, so that verification in the target finds them.
//!
//! Whether a mount of a blob that only an untagged manifest names works, and whether a
//! PutImage into the target replicates, are ECR's to answer (docs/promotion.md):
//! a mount answered 202 is a [`Refusal::NotMounted`] naming the blob, retried on the next delivery.

use std::collections::BTreeMap;
use std::fmt;

use crate::domain::manifest::{References, Unreadable};
use crate::domain::names::{Digest, RepositoryName, Tag};
use crate::domain::rules::RuleSet;
use crate::error::Fault;
use crate::domain::signature;
use crate::registry::{Attempts, Blobs, Image, Lookup, Mount, PutError, ReadError, Repository, TagState, Target};
use crate::report::{entry, Outcome, PromotionReport, TagReport};

/// How blobs get into the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via {
    /// Mounted from the source (BLOB_MOUNTING on, the same encryption).
    pub mount: bool,
    /// `"copy_blobs": true`: what is not mounted is streamed through the function, up to this many
    /// bytes per image.
    pub stream: Option<u64>,
    /// Bytes already streamed for this image (by its index's earlier children, or the image before its referrers).
    pub spent: u64,
}

impl Via {
    /// Mounted, and streamed up to `stream` bytes when `"copy_blobs": true`; nothing streamed yet.
    pub fn new(mount: bool, stream: Option<u64>) -> Via {
        Via { mount, stream, spent: 0 }
    }

    /// The same, `bytes` more having been streamed.
    pub(crate) fn after(self, bytes: u64) -> Via {
        Via { spent: self.spent + bytes, ..self }
    }
}

/// The most a promotion streams for one image (`"copy_blobs": true`): 512 MiB, which a 128 MB
/// function moves a part (5 MiB or ECR's part size) at a time, well within its timeout.
pub const STREAM_LIMIT: u64 = 512 * 1024 * 1024;

/// Why an image could not be brought into the target: said on each of its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The account setting `BLOB_MOUNTING` is not `ENABLED`.
    MountingOff,
    /// The account setting could not be read.
    Setting(ReadError),
    EncryptionDiffers { source: String, target: String },
    TargetMissing(RepositoryName),
    /// The mount was answered 202: the registry opened an upload session instead.
    NotMounted { blob: Digest, from: RepositoryName },
    /// An index names a child the source does not hold.
    ChildMissing(Digest),
    Read { repository: RepositoryName, error: ReadError },
    Put { repository: RepositoryName, digest: Digest, error: PutError },
    Mount { blob: Digest, fault: Fault },
    Unreadable(Unreadable),
    /// Neither ECR nor the manifest names its media type, and PutImage needs one.
    MediaType(Digest),
    /// `"copy_blobs": true`, but the blobs to stream exceed [`STREAM_LIMIT`].
    TooLarge { bytes: u64, limit: u64 },
    /// A blob streamed through the function (`"copy_blobs": true`) did not arrive.
    Stream { blob: Digest, fault: Fault },
}

impl Refusal {
    /// Whether a later delivery can succeed without a person changing something.
    pub fn retryable(&self) -> bool {
        match self {
            Refusal::NotMounted { .. } => true,
            Refusal::Read { error: ReadError::Fault(f), .. }
            | Refusal::Setting(ReadError::Fault(f))
            | Refusal::Mount { fault: f, .. }
            | Refusal::Stream { fault: f, .. } => f.retryable(),
            Refusal::Put { error: PutError::Fault(f), .. } => f.retryable(),
            _ => false,
        }
    }

    pub(crate) fn reading(repository: &Repository, error: ReadError) -> Refusal {
        match error {
            ReadError::RepositoryNotFound => Refusal::TargetMissing(repository.name.clone()),
            error => Refusal::Read { repository: repository.name.clone(), error },
        }
    }
}

impl Refusal {
    /// What stands in the way.
    pub fn what(&self) -> String {
        match self {
            Refusal::MountingOff => "blob mounting is off for this registry (the account setting BLOB_MOUNTING)".to_owned(),
            Refusal::EncryptionDiffers { source, target } => format!(
                "ECR mounts blobs only between repositories with the same encryption, and the source has {source} while the target has {target}"
            ),
            Refusal::TargetMissing(name) => format!("the target repository {name} does not exist"),
            Refusal::NotMounted { blob, from } => {
                format!("the registry did not mount blob {blob} from {from} (202: it opened an upload instead)")
            }
            Refusal::ChildMissing(child) => format!("the index names {child}, which its repository does not hold"),
            Refusal::Read { repository, error } => format!("reading {repository} failed: {error}"),
            Refusal::Setting(error) => format!("reading the account setting BLOB_MOUNTING failed: {error}"),
            Refusal::Put { repository, digest, error } => format!("putting {digest} into {repository} failed: {error}"),
            Refusal::Mount { blob, fault } => format!("the mount of {blob} failed: {fault}"),
            Refusal::Unreadable(e) => e.to_string(),
            Refusal::MediaType(digest) => format!("neither ECR nor the manifest names the media type of {digest}"),
            Refusal::TooLarge { bytes, limit } => {
                format!("the blobs to copy through the function come to {bytes} bytes, over the {limit} bytes a promotion streams")
            }
            Refusal::Stream { blob, fault } => format!("streaming blob {blob} failed: {fault}"),
        }
    }

    /// What changes it.
    pub fn fix(&self) -> String {
        match self {
            Refusal::MountingOff => "turn it on with `aws ecr put-account-setting --name BLOB_MOUNTING --value ENABLED`; a redelivery or the next push then promotes".to_owned(),
            Refusal::EncryptionDiffers { .. } => "create the target with the source's encryption".to_owned(),
            Refusal::TargetMissing(_) => {
                "create it, with the source's encryption (create-on-push is not relied on: whether a mount, which comes before any manifest, triggers it is unverified)".to_owned()
            }
            Refusal::NotMounted { .. } => "a redelivery tries again; ECR mounts no blob of an image a pull-through cache created, nor one no committed manifest of the source names; \"copy_blobs\": true streams what it will not mount".to_owned(),
            Refusal::TooLarge { .. } => "promote it with replication or a registry-side copy instead; the rule's other images are not affected".to_owned(),
            _ if self.retryable() => "a redelivery tries again".to_owned(),
            _ => "see docs/promotion.md".to_owned(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not promoted: {}; {}", self.what(), self.fix())
    }
}

/// The preconditions of a mount between these repositories, explained when one fails; with
/// `stream` (`"copy_blobs": true`), a mount that cannot work means streaming instead.
pub async fn ready<R: Blobs>(registry: &R, source: &Repository, target: &Repository, stream: Option<u64>) -> Result<Via, Refusal> {
    let checked = match compatible(registry, source, target).await {
        Ok(()) => mounting(registry).await,
        Err(refusal) => Err(refusal),
    };
    match (checked, stream) {
        (Ok(()), _) => Ok(Via::new(true, stream)),
        (Err(Refusal::MountingOff | Refusal::EncryptionDiffers { .. }), Some(_)) => Ok(Via::new(false, stream)),
        (Err(refusal), _) => Err(refusal),
    }
}

/// The target exists and is encrypted as the source is.
pub async fn compatible<R: Blobs>(registry: &R, source: &Repository, target: &Repository) -> Result<(), Refusal> {
    // The target first: a missing one is the likeliest mistake, and its message the most useful.
    let theirs = registry.encryption(target).await.map_err(|e| Refusal::reading(target, e))?;
    let ours = registry.encryption(source).await.map_err(|e| Refusal::reading(source, e))?;
    if ours != theirs {
        let describe = |(kind, key): &(String, Option<String>)| key.as_ref().map_or(kind.clone(), |k| format!("{kind} with key {k}"));
        return Err(Refusal::EncryptionDiffers { source: describe(&ours), target: describe(&theirs) });
    }
    Ok(())
}

/// The account setting `BLOB_MOUNTING` is on.
pub async fn mounting<R: Blobs>(registry: &R) -> Result<(), Refusal> {
    match registry.mounting_enabled().await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Refusal::MountingOff),
        Err(error) => Err(Refusal::Setting(error)),
    }
}

/// `"copy_blobs": true` on a rule of these tags: what the registry will not mount is streamed.
pub(crate) fn streaming(rules: &RuleSet, tags: &BTreeMap<String, TagReport>) -> Option<u64> {
    tags.values().any(|t| rules.copies_blobs(&t.rules)).then_some(STREAM_LIMIT)
}

/// Brings `image` into `target` short of its manifest, which its first tag puts: the
/// preconditions, then the copy. How the blobs got there (for its referrers to follow the same
/// way), and what was copied.
pub(crate) async fn arrive<R: Blobs>(
    registry: &R,
    source: &Repository,
    target: &Repository,
    image: &Image,
    stream: Option<u64>,
) -> Result<(Via, Copied), Refusal> {
    let via = ready(registry, source, target, stream).await?;
    let copied = copy(registry, source, target, image, via).await?;
    // The referrers stream within what the image left.
    Ok((via.after(copied.bytes), copied))
}

/// What one promotion copied, for the answer (`promotions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Blobs mounted.
    pub blobs: usize,
    /// Blobs streamed through the function, and their bytes (`"copy_blobs": true`).
    pub streamed: usize,
    pub bytes: u64,
    /// Manifests put besides the image's own: an index's children and referrers (by digest), cosign's sidecar tags.
    pub manifests: usize,
}

impl Copied {
    /// The two together: the image's copy and its referrers'.
    pub(crate) fn and(self, other: Copied) -> Copied {
        Copied {
            blobs: self.blobs + other.blobs,
            streamed: self.streamed + other.streamed,
            bytes: self.bytes + other.bytes,
            manifests: self.manifests + other.manifests,
        }
    }

    /// As the answer reports it, for the target `to`.
    pub(crate) fn report(&self, to: &RepositoryName) -> PromotionReport {
        PromotionReport {
            to: to.to_string(),
            blobs_mounted: self.blobs,
            blobs_streamed: self.streamed,
            bytes_streamed: self.bytes,
            manifests: self.manifests,
        }
    }

    /// Adds what copying one more manifest took, the manifest itself included.
    fn add(&mut self, below: Copied) {
        self.blobs += below.blobs;
        self.streamed += below.streamed;
        self.bytes += below.bytes;
        self.manifests += below.manifests + 1;
    }
}

/// Everything `image` needs in `target` before its manifest can be put there: an index's
/// children (each put by digest), and the blobs of whatever is an image. The manifest itself
/// is left to the caller's tagged PutImage.
///
/// Surveyed first (the manifests, and BatchCheckLayerAvailability for what the target lacks),
/// so that a refusal comes before any blob moves: streaming only, before any layer call; with
/// mounts, once they are tried and before anything is streamed.
pub async fn copy<R: Blobs>(registry: &R, source: &Repository, target: &Repository, image: &Image, via: Via) -> Result<Copied, Refusal> {
    let mut survey = Survey::default();
    Box::pin(survey.of(registry, source, target, image)).await?;
    let limit = via.stream.unwrap_or(0);
    // These blobs streamed, after what this image's copy has streamed already: over the limit?
    let too_large = |blobs: &[(Digest, u64)]| {
        let bytes = via.spent + blobs.iter().map(|(_, size)| size).sum::<u64>();
        (bytes > limit).then_some(Refusal::TooLarge { bytes, limit })
    };
    if let Some(refusal) = too_large(&survey.blobs).filter(|_| !via.mount) {
        return Err(refusal);
    }
    let mut copied = Copied::default();
    let mut unmounted = Vec::new();
    for (blob, size) in survey.blobs {
        let mounted = match via.mount {
            false => Mount::NotMounted,
            true => Box::pin(registry.mount(target, source, &blob)).await.map_err(|fault| Refusal::Mount { blob: blob.clone(), fault })?,
        };
        match mounted {
            Mount::Mounted => copied.blobs += 1,
            Mount::NotMounted => unmounted.push((blob, size)),
        }
    }
    if let Some((blob, _)) = unmounted.first().filter(|_| via.stream.is_none()) {
        return Err(Refusal::NotMounted { blob: blob.clone(), from: source.name.clone() });
    }
    if let Some(refusal) = too_large(&unmounted).filter(|_| !unmounted.is_empty()) {
        return Err(refusal);
    }
    for (blob, _) in unmounted {
        let spent = via.spent + copied.bytes;
        let sent = Box::pin(registry.copy_blob(target, source, &blob, limit.saturating_sub(spent)))
            .await
            .map_err(|fault| Refusal::Stream { blob: blob.clone(), fault })?;
        copied.streamed += 1;
        copied.bytes += sent;
    }
    // Children before their index, each once its blobs are there.
    for child in &survey.children {
        Box::pin(put_copied(registry, target, child, None)).await?;
        copied.manifests += 1;
    }
    Ok(copied)
}

/// What an image's copy into the target takes, surveyed before anything moves.
#[derive(Default)]
struct Survey {
    /// The blobs the target lacks, each once, with the size its manifest declares.
    blobs: Vec<(Digest, u64)>,
    /// The children the target lacks, deepest first: the order they are put in.
    children: Vec<Image>,
}

impl Survey {
    async fn of<R: Blobs>(&mut self, registry: &R, source: &Repository, target: &Repository, image: &Image) -> Result<(), Refusal> {
        let references = References::of(&image.digest, &image.manifest).map_err(Refusal::Unreadable)?;
        if !references.blobs.is_empty() {
            let missing = Box::pin(registry.missing(target, &references.blobs)).await.map_err(|e| Refusal::reading(target, e))?;
            for blob in missing {
                if !self.blobs.iter().any(|(b, _)| *b == blob) {
                    let size = references.size_of(&blob).unwrap_or(0);
                    self.blobs.push((blob, size));
                }
            }
        }
        for child in &references.children {
            if self.children.iter().any(|c| c.digest == *child) {
                continue;
            }
            let there = Box::pin(registry.read(target, Lookup::Digest(child), &[])).await.map_err(|e| Refusal::reading(target, e))?;
            if there.image.is_some() {
                continue;
            }
            let found = Box::pin(registry.read(source, Lookup::Digest(child), &[])).await.map_err(|e| Refusal::reading(source, e))?;
            let child_image = found.image.ok_or_else(|| Refusal::ChildMissing(child.clone()))?;
            // Children of children (an index of indexes) the same way, before their parent.
            Box::pin(self.of(registry, source, target, &child_image)).await?;
            self.children.push(child_image);
        }
        Ok(())
    }
}

/// The image's referrers the target lacks, copied by digest (their blobs mounted first).
pub async fn copy_referrers<R: Blobs>(registry: &R, source: &Repository, target: &Repository, digest: &Digest, via: Via) -> Result<Copied, Refusal> {
    let theirs = registry.referrers(source, digest).await.map_err(|e| Refusal::reading(source, e))?;
    if theirs.is_empty() {
        return Ok(Copied::default());
    }
    let ours = registry.referrers(target, digest).await.map_err(|e| Refusal::reading(target, e))?;
    let mut copied = Copied::default();
    for referrer in theirs.iter().filter(|r| !ours.contains(r)) {
        let found = Box::pin(registry.read(source, Lookup::Digest(referrer), &[])).await.map_err(|e| Refusal::reading(source, e))?;
        // Deleted since the listing: nothing to copy.
        let Some(image) = found.image else { continue };
        let below = Box::pin(copy(registry, source, target, &image, via.after(copied.bytes))).await?;
        Box::pin(put_copied(registry, target, &image, None)).await?;
        copied.add(below);
    }
    Ok(copied)
}

/// cosign's sidecar tags of the image (`sha256-<hex>.sig`, `.att`, `.sbom`), which cosign keeps
/// as tags in the image's own repository rather than as referrers: copied under the same tag and
/// digest where the target lacks them or holds another (cosign re-pushes `.sig` as signatures
/// are added). One read in the source says which exist; one in the target, only if any does.
pub async fn copy_sidecars<R: Blobs>(registry: &R, source: &Repository, target: &Repository, digest: &Digest, via: Via) -> Result<Copied, Refusal> {
    let tags = signature::cosign_sidecars(digest);
    let theirs = registry.read(source, Lookup::Digest(digest), &tags).await.map_err(|e| Refusal::reading(source, e))?;
    let present: Vec<(Tag, Digest)> = tags
        .into_iter()
        .filter_map(|t| match theirs.tags.get(&t) {
            Some(TagState::At(d)) => Some((t, d.clone())),
            _ => None,
        })
        .collect();
    if present.is_empty() {
        return Ok(Copied::default());
    }
    let asked: Vec<Tag> = present.iter().map(|(t, _)| t.clone()).collect();
    let ours = registry.read(target, Lookup::Digest(digest), &asked).await.map_err(|e| Refusal::reading(target, e))?;
    let mut copied = Copied::default();
    for (tag, sidecar) in present {
        if matches!(ours.tags.get(&tag), Some(TagState::At(d)) if *d == sidecar) {
            continue;
        }
        let found = Box::pin(registry.read(source, Lookup::Digest(&sidecar), &[])).await.map_err(|e| Refusal::reading(source, e))?;
        // Replaced or deleted since: the next promotion copies what is there then.
        let Some(image) = found.image else { continue };
        let below = Box::pin(copy(registry, source, target, &image, via.after(copied.bytes))).await?;
        Box::pin(put_copied(registry, target, &image, Some(&tag))).await?;
        copied.add(below);
    }
    Ok(copied)
}

/// A copied manifest put into the target: by digest (an index's child, a referrer), or under
/// `tag` (a cosign sidecar tag, whose name is its link to the image).
async fn put_copied<R: Blobs>(registry: &R, target: &Repository, image: &Image, tag: Option<&Tag>) -> Result<(), Refusal> {
    let media_type = image.media_type_or(None).ok_or_else(|| Refusal::MediaType(image.digest.clone()))?;
    let put = match tag {
        None => registry.put_manifest(target, image, &media_type).await,
        Some(tag) => registry.put(&Target { repository: target, image, media_type: &media_type }, tag, Attempts::Retried).await,
    };
    match put {
        // A concurrent promotion of the same image put it first.
        Ok(()) | Err(PutError::AlreadyExists) => Ok(()),
        Err(PutError::RepositoryNotFound) => Err(Refusal::TargetMissing(target.name.clone())),
        Err(error) => Err(Refusal::Put { repository: target.name.clone(), digest: image.digest.clone(), error }),
    }
}

/// Every tag of a promotion that could not go ahead fails with the reason.
pub(crate) fn refuse(tags: &mut BTreeMap<String, TagReport>, asked: &[Tag], refusal: &Refusal) {
    for tag in asked {
        entry(tags, tag).refuse(refusal.to_string(), refusal.retryable());
    }
}

/// Once the image is in the target (a tag of it is in place), its referrers follow; if they
/// cannot, its tags say so and fail retryably, so that a redelivery copies them. What was copied.
pub(crate) async fn referrers_follow<R: Blobs>(
    registry: &R,
    source: &Repository,
    target: &Repository,
    digest: &Digest,
    via: Via,
    tags: &mut BTreeMap<String, TagReport>,
) -> Copied {
    let landed = |t: &TagReport| matches!(t.outcome, Outcome::Created | Outcome::Moved | Outcome::Unchanged | Outcome::Repaired);
    if !tags.values().any(landed) {
        return Copied::default();
    }
    let followed = match copy_referrers(registry, source, target, digest, via).await {
        Ok(referrers) => copy_sidecars(registry, source, target, digest, via.after(referrers.bytes)).await.map(|s| referrers.and(s)),
        Err(refusal) => Err(refusal),
    };
    match followed {
        Ok(copied) => copied,
        Err(refusal) => {
            for t in tags.values_mut().filter(|t| landed(t)) {
                t.refuse(format!("written, but the image's referrers (signatures, SBOMs) did not follow: {refusal}"), true);
            }
            Copied::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::memory::{Call, Memory};

    fn repo(name: &str) -> Repository {
        Repository::own(RepositoryName::parse(name).unwrap())
    }

    #[tokio::test]
    async fn streaming_stands_in_for_a_mount_that_cannot_work_but_not_for_a_missing_target() {
        let memory = Memory::with_repositories(&["dev/api", "prod/api"]);
        let (source, target) = (repo("dev/api"), repo("prod/api"));
        let stream = Some(STREAM_LIMIT);
        assert_eq!(ready(&memory, &source, &target, None).await, Ok(Via::new(true, None)));
        memory.set_mounting(false);
        assert_eq!(ready(&memory, &source, &target, None).await, Err(Refusal::MountingOff));
        assert_eq!(ready(&memory, &source, &target, stream).await, Ok(Via::new(false, stream)), "streamed instead");
        memory.set_mounting(true);
        memory.set_encryption("prod/api", "KMS", Some("arn:aws:kms:eu-west-1:123456789012:key/k"));
        let differs = ready(&memory, &source, &target, None).await.unwrap_err();
        assert_eq!(differs.what(), "ECR mounts blobs only between repositories with the same encryption, and the source has AES256 \
                                    while the target has KMS with key arn:aws:kms:eu-west-1:123456789012:key/k");
        assert!(!differs.retryable());
        assert_eq!(ready(&memory, &source, &target, stream).await, Ok(Via::new(false, stream)));
        let missing = ready(&memory, &source, &repo("prod/gone"), stream).await;
        assert_eq!(missing, Err(Refusal::TargetMissing(RepositoryName::parse("prod/gone").unwrap())), "streaming needs a target too");
    }

    /// An image manifest of one config and one layer of `mib` MiB (declared), and its digest.
    fn image(n: u8, mib: u64) -> Image {
        let d = |m: u8| format!("sha256:{}", format!("{m:02x}").repeat(32));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"digest":"{}","size":10}},"layers":[{{"digest":"{}","size":{}}}]}}"#,
            d(n),
            d(n + 1),
            mib * 1024 * 1024
        );
        Image { digest: Digest::parse(&d(n + 100)).unwrap(), manifest, media_type: Some("application/vnd.oci.image.manifest.v1+json".into()) }
    }

    #[tokio::test]
    async fn what_an_index_streams_counts_its_children_together_against_the_limit() {
        let memory = Memory::with_repositories(&["dev/api", "prod/api"]);
        let (source, target) = (repo("dev/api"), repo("prod/api"));
        let (amd, arm) = (image(1, 300), image(3, 300));
        for child in [&amd, &arm] {
            memory.add_image("dev/api", child.clone(), None);
        }
        let index = Image {
            digest: Digest::parse(&format!("sha256:{}", "cc".repeat(32))).unwrap(),
            manifest: format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}"}},{{"digest":"{}"}}]}}"#, amd.digest, arm.digest),
            media_type: Some("application/vnd.oci.image.index.v1+json".into()),
        };
        let streamed = Via::new(false, Some(STREAM_LIMIT));
        let err = copy(&memory, &source, &target, &index, streamed).await.unwrap_err();
        // 300 MiB each: refused before anything of either moved.
        assert_eq!(err, Refusal::TooLarge { bytes: (600 << 20) + 20, limit: STREAM_LIMIT });
        let moved = memory.calls().into_iter().filter(|c| matches!(c, Call::CopyBlob(_) | Call::Mount(_) | Call::PutManifest(_))).count();
        assert_eq!(moved, 0, "{:?}", memory.calls());
        let copied = copy(&memory, &source, &target, &amd, streamed).await.unwrap();
        assert_eq!((copied.streamed, copied.bytes), (2, (300 << 20) + 10), "one child alone is within the limit");
    }

    #[tokio::test]
    async fn with_mounts_the_limit_counts_only_what_the_registry_would_not_mount_and_nothing_streams_past_it() {
        let memory = Memory::with_repositories(&["dev/api", "prod/api"]);
        let (source, target) = (repo("dev/api"), repo("prod/api"));
        let big = image(5, 600);
        memory.add_image("dev/api", big.clone(), None);
        let both = Via::new(true, Some(STREAM_LIMIT));
        let copied = copy(&memory, &source, &target, &big, both).await.unwrap();
        assert_eq!((copied.blobs, copied.streamed), (2, 0), "600 MiB mounted: nothing streams, so no limit applies");

        let other = Memory::with_repositories(&["dev/api", "prod/api"]);
        other.add_image("dev/api", big.clone(), None);
        other.set_encryption("prod/api", "KMS", Some("k")); // mounts answer 202
        let err = copy(&other, &source, &target, &big, both).await.unwrap_err();
        assert_eq!(err, Refusal::TooLarge { bytes: (600 << 20) + 10, limit: STREAM_LIMIT });
        assert!(other.calls().iter().all(|c| !matches!(c, Call::CopyBlob(_))), "mounts tried, nothing streamed: {:?}", other.calls());
    }

    #[test]
    fn only_a_declined_mount_or_a_passing_fault_is_worth_a_redelivery() {
        let d = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let throttled = Fault::new(crate::error::FaultKind::Throttled, "ThrottlingException", "slow down");
        let denied = Fault::new(crate::error::FaultKind::Permanent, "AccessDeniedException", "no");
        let name = RepositoryName::parse("dev/api").unwrap();
        assert!(Refusal::NotMounted { blob: d.clone(), from: name.clone() }.retryable());
        assert!(Refusal::Mount { blob: d.clone(), fault: throttled.clone() }.retryable());
        assert!(Refusal::Stream { blob: d.clone(), fault: throttled }.retryable());
        assert!(!Refusal::Stream { blob: d.clone(), fault: denied }.retryable());
        assert!(!Refusal::MountingOff.retryable() && !Refusal::TargetMissing(name).retryable());
        assert!(!Refusal::TooLarge { bytes: 1, limit: 0 }.retryable());
    }
}
