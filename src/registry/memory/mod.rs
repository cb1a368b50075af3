//! A registry in memory, for tests: repositories holding images, tags
//! (mutable or immutable, as ECR keeps them) and resource tags; failures and
//! other writers' interference injected on request; every call logged.
//!
//! It answers the way ECR does where the function relies on it: a tag put on
//! the image it already points at is `AlreadyExists`, an existing immutable
//! tag `TagImmutable` (even on the same image), a repository that is not
//! there `RepositoryNotFound`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use crate::domain::artifact::Artifact;
use crate::domain::mutability::{Mode, TagMutability};
use crate::domain::assess::Scanned;
use crate::domain::names::{Digest, RegistryId, RepositoryName, Tag};
use crate::domain::signature::{self, Kind, Kinds, Referrer, Signatures};
use crate::domain::manifest::References;
use crate::fault::Fault;
use crate::registry::{
    Annotated, Attempts, Blobs, Catalog, Image, Mount, Listed, Lookup, Page, PutError, ReadError, Registry, RemoveError, Repository, Snapshot, TagState,
    Target,
};

/// One call the function made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// BatchGetImage, asking where this many tags point.
    Read { tags: usize },
    /// PutImage; `once`: as a single attempt ([`Attempts::Once`]).
    Put { repository: RepositoryName, tag: Tag, digest: Digest, media_type: String, once: bool },
    TagsOf(Digest),
    Remove(Tag),
    RepositoryTags(RepositoryName),
    TagMutability(RepositoryName),
    Restore(Digest),
    Repositories,
    Images(RepositoryName),
    /// A look for the image's signatures (ListImageReferrers and the rest), of these kinds.
    Signatures(Digest, Kinds),
    Describe(Digest),
    MountingEnabled,
    Encryption(RepositoryName),
    /// BatchCheckLayerAvailability of this many blobs.
    Missing(usize),
    Mount(Digest),
    /// A blob streamed through the function (GetDownloadUrlForLayer and the upload calls).
    CopyBlob(Digest),
    /// An untagged PutImage by digest.
    PutManifest(Digest),
    Referrers(Digest),
    /// ListImageReferrers of one artifact type.
    ReferrersOfType(Digest),
    /// A blob uploaded whole (the layer upload calls).
    UploadBlob(Digest),
    /// A blob's bytes read (GetDownloadUrlForLayer and the URL).
    BlobBytes(Digest),
}

impl Call {
    /// The operation, without its arguments.
    pub fn kind(&self) -> &'static str {
        match self {
            Call::Read { .. } => "read",
            Call::Put { .. } => "put",
            Call::TagsOf(_) => "tags_of",
            Call::Remove(_) => "remove",
            Call::RepositoryTags(_) => "repository_tags",
            Call::TagMutability(_) => "tag_mutability",
            Call::Restore(_) => "restore",
            Call::Repositories => "repositories",
            Call::Images(_) => "images",
            Call::Signatures(..) => "signatures",
            Call::Describe(_) => "describe",
            Call::MountingEnabled => "mounting_enabled",
            Call::Encryption(_) => "encryption",
            Call::Missing(_) => "missing",
            Call::Mount(_) => "mount",
            Call::CopyBlob(_) => "copy_blob",
            Call::PutManifest(_) => "put_manifest",
            Call::Referrers(_) => "referrers",
            Call::ReferrersOfType(_) => "referrers_of_type",
            Call::UploadBlob(_) => "upload_blob",
            Call::BlobBytes(_) => "blob_bytes",
        }
    }
}

/// A failure to answer a call with, instead of carrying it out.
#[derive(Debug, Clone)]
pub enum Failure {
    Read(ReadError),
    /// For the PutImage of one tag, or of any tag (`None`).
    Put(Option<Tag>, PutError),
    Remove(RemoveError),
    RepositoryTags(ReadError),
    Signatures(ReadError),
}

/// What another writer does to a repository's tags while a PutImage is under way.
pub type Interference = Box<dyn FnOnce(&mut BTreeMap<Tag, Digest>) + Send>;

#[derive(Default)]
struct Stored {
    images: BTreeMap<Digest, (Image, Option<DateTime<Utc>>)>,
    tags: BTreeMap<Tag, Digest>,
    mutability: Option<TagMutability>,
    resource_tags: BTreeMap<String, String>,
    /// Archived images: not readable, not listed.
    archived: std::collections::BTreeSet<Digest>,
    /// Scan states other than "no scan".
    scans: BTreeMap<Digest, Scanned>,
    /// Images ECR managed signing has signed (status `COMPLETE`).
    signed_by_ecr: std::collections::BTreeSet<Digest>,
    /// Blobs uploaded or mounted here; a stored image's blobs count too, as `docker push` uploads them.
    blobs: std::collections::BTreeSet<Digest>,
    /// The bytes of blobs uploaded here (a promotion record's).
    uploaded: BTreeMap<Digest, Vec<u8>>,
    /// Another encryption than the default (`AES256`, no key).
    encryption: Option<(String, Option<String>)>,
}

#[derive(Default)]
struct State {
    repositories: BTreeMap<RepositoryName, Stored>,
    /// Each with how many more calls it answers (`None`: all of them).
    failures: Vec<(Failure, Option<usize>)>,
    before_put: Vec<Interference>,
    after_put: Vec<Interference>,
    calls: Vec<Call>,
    /// The account setting `BLOB_MOUNTING` is off (on by default here).
    mounting_disabled: bool,
    /// What the model's calls meet, and what its writes did ([`weather`]).
    weather: weather::Climate,
}

/// A registry in memory. A clone is another client of the same registry (its calls are
/// logged as that client's, [`Memory::client`]).
#[derive(Default, Clone)]
pub struct Memory {
    state: Arc<Mutex<State>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    /// Which client this is, for [`Written::client`].
    client: usize,
}

mod blobs;
mod weather;

pub use weather::{Mishap, Turn, Weather, Written};

impl Memory {
    /// A registry with these (empty, mutable) repositories.
    pub fn with_repositories(names: &[&str]) -> Memory {
        let memory = Memory::default();
        for name in names {
            memory.add_repository(name);
        }
        memory
    }

    pub fn add_repository(&self, name: &str) {
        self.lock().repositories.entry(repository_name(name)).or_default();
    }

    pub fn set_immutable(&self, repository: &str) {
        self.set_mutability(repository, TagMutability { mode: Mode::Immutable, filters: Vec::new() });
    }

    pub fn set_mutability(&self, repository: &str, mutability: TagMutability) {
        self.with(repository, |r| r.mutability = Some(mutability));
    }

    pub fn set_resource_tags(&self, repository: &str, tags: &[(&str, &str)]) {
        self.with(repository, |r| r.resource_tags = tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
    }

    /// Stores an image (as pushed at `pushed_at`, for listings) without tagging it.
    pub fn add_image(&self, repository: &str, image: Image, pushed_at: Option<DateTime<Utc>>) {
        self.with(repository, |r| {
            r.images.insert(image.digest.clone(), (image, pushed_at));
        });
    }

    /// Turns the account setting `BLOB_MOUNTING` on or off.
    pub fn set_mounting(&self, enabled: bool) {
        self.lock().mounting_disabled = !enabled;
    }

    pub fn set_encryption(&self, repository: &str, kind: &str, key: Option<&str>) {
        self.with(repository, |r| r.encryption = Some((kind.to_owned(), key.map(str::to_owned))));
    }

    /// Points `tag` at `digest`, as a push (or another writer) would.
    pub fn point(&self, repository: &str, tag: &Tag, digest: &Digest) {
        self.with(repository, |r| {
            r.tags.insert(tag.clone(), digest.clone());
        });
    }

    /// Moves an image to the archive storage class, as UpdateImageStorageClass does.
    pub fn archive(&self, repository: &str, digest: &Digest) {
        self.with(repository, |r| {
            r.archived.insert(digest.clone());
        });
    }

    /// What the image's scan says from now on (listings, [`Registry::describe`]).
    pub fn set_scan(&self, repository: &str, digest: &Digest, scan: Scanned) {
        self.with(repository, |r| {
            r.scans.insert(digest.clone(), scan);
        });
    }

    /// ECR managed signing completes for the image.
    pub fn sign_by_ecr(&self, repository: &str, digest: &Digest) {
        self.with(repository, |r| {
            r.signed_by_ecr.insert(digest.clone());
        });
    }

    pub fn tag(&self, repository: &str, tag: &Tag) -> Option<Digest> {
        self.lock().repositories.get(&repository_name(repository)).and_then(|r| r.tags.get(tag).cloned())
    }

    /// Answers the next `times` matching calls (`None`: every one) with `failure`.
    pub fn fail(&self, failure: Failure, times: Option<usize>) {
        self.lock().failures.push((failure, times));
    }

    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    /// Runs `f` on the tags right before the next PutImage is carried out (the last pushed first).
    pub fn before_put(&self, f: impl FnOnce(&mut BTreeMap<Tag, Digest>) + Send + 'static) {
        self.lock().before_put.push(Box::new(f));
    }

    /// Runs `f` on the tags right after the next PutImage landed or failed (the last pushed first).
    pub fn after_put(&self, f: impl FnOnce(&mut BTreeMap<Tag, Digest>) + Send + 'static) {
        self.lock().after_put.push(Box::new(f));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The operations called, in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.lock().calls.iter().map(Call::kind).collect()
    }

    /// The most PutImage calls that were under way at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test's panic while holding the lock leaves a state still worth reading.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with(&self, repository: &str, f: impl FnOnce(&mut Stored)) {
        f(self.lock().repositories.entry(repository_name(repository)).or_default());
    }
}

impl State {
    /// The first failure `pick` answers for, counted down.
    fn take_failure<E>(&mut self, pick: impl Fn(&Failure) -> Option<E>) -> Option<E> {
        let index = self.failures.iter().position(|(f, times)| times != &Some(0) && pick(f).is_some())?;
        let (failure, times) = &mut self.failures[index];
        let error = pick(failure);
        if let Some(n) = times {
            *n -= 1;
        }
        error
    }

    fn stored(&self, repository: &Repository) -> Result<&Stored, ReadError> {
        self.repositories.get(&repository.name).ok_or(ReadError::RepositoryNotFound)
    }
}

fn repository_name(name: &str) -> RepositoryName {
    // Test set-up names its repositories; a bad one is the test's own mistake.
    RepositoryName::parse(name).unwrap_or_else(|e| panic!("a test repository name: {e}"))
}

impl Registry for Memory {
    async fn read(&self, repository: &Repository, image: Lookup<'_>, tags: &[Tag]) -> Result<Snapshot, ReadError> {
        let mut state = self.enter(Call::Read { tags: tags.len() }).await.map_err(ReadError::Fault)?;
        if let Some(e) = state.take_failure(|f| if let Failure::Read(e) = f { Some(e.clone()) } else { None }) {
            return Err(e);
        }
        let stored = state.stored(repository)?;
        let digest = match image {
            Lookup::Digest(d) => Some(d.clone()),
            Lookup::Tag(t) => stored.tags.get(t).cloned(),
        };
        let archived = digest.as_ref().is_some_and(|d| stored.archived.contains(d));
        Ok(Snapshot {
            archived,
            image: digest.filter(|_| !archived).and_then(|d| stored.images.get(&d)).map(|(image, _)| image.clone()),
            tags: tags
                .iter()
                .map(|t| {
                    let state = match stored.tags.get(t) {
                        None => TagState::Absent,
                        Some(d) if stored.archived.contains(d) => TagState::Archived,
                        Some(d) => TagState::At(d.clone()),
                    };
                    (t.clone(), state)
                })
                .collect(),
        })
    }

    async fn put(&self, target: &Target<'_>, tag: &Tag, attempts: Attempts) -> Result<(), PutError> {
        let (repository, image) = (target.repository, target.image);
        let call = Call::Put { repository: repository.name.clone(), tag: tag.clone(), digest: image.digest.clone(), media_type: target.media_type.to_owned(), once: attempts == Attempts::Once };
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        // Other writes may start meanwhile, as they would over the network.
        tokio::task::yield_now().await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let (mut state, mishap) = self.enter_put(call, attempts).await;
        let failure = state.take_failure(|f| match f {
            Failure::Put(None, e) => Some(e.clone()),
            Failure::Put(Some(t), e) if t == tag => Some(e.clone()),
            _ => None,
        });
        let before = state.before_put.pop();
        let after = state.after_put.pop();
        let Some(stored) = state.repositories.get_mut(&repository.name) else { return Err(PutError::RepositoryNotFound) };
        if let Some(interfere) = before {
            interfere(&mut stored.tags);
        }
        let result = match failure {
            Some(e) => Err(e),
            None => self.land(&mut state, repository, tag, image, mishap),
        };
        if let Some(interfere) = after {
            if let Some(stored) = state.repositories.get_mut(&repository.name) {
                interfere(&mut stored.tags);
            }
        }
        result
    }

    async fn tags_of(&self, repository: &Repository, digest: &Digest) -> Result<Vec<Tag>, ReadError> {
        let state = self.enter(Call::TagsOf(digest.clone())).await.map_err(ReadError::Fault)?;
        let stored = state.stored(repository)?;
        let mut found: Vec<Tag> = stored.tags.iter().filter(|(_, d)| *d == digest).map(|(t, _)| t.clone()).collect();
        found.sort();
        Ok(found)
    }

    async fn remove(&self, repository: &Repository, tag: &Tag) -> Result<(), RemoveError> {
        let mut state = self.enter(Call::Remove(tag.clone())).await.map_err(RemoveError::Fault)?;
        if let Some(e) = state.take_failure(|f| if let Failure::Remove(e) = f { Some(e.clone()) } else { None }) {
            return Err(e);
        }
        let stored = state.repositories.get_mut(&repository.name).ok_or(RemoveError::RepositoryNotFound)?;
        stored.tags.remove(tag).map(|_| ()).ok_or(RemoveError::NotFound)
    }

    async fn restore(&self, repository: &Repository, digest: &Digest) -> Result<(), ReadError> {
        let state = self.enter(Call::Restore(digest.clone())).await.map_err(ReadError::Fault)?;
        // ECR takes up to 20 minutes: the image stays unreadable here.
        state.stored(repository).map(|_| ())
    }

    async fn tag_mutability(&self, repository: &Repository) -> Result<TagMutability, ReadError> {
        let state = self.enter(Call::TagMutability(repository.name.clone())).await.map_err(ReadError::Fault)?;
        let mutable = TagMutability { mode: Mode::Mutable, filters: Vec::new() };
        Ok(state.stored(repository)?.mutability.clone().unwrap_or(mutable))
    }

    async fn repository_tags(&self, repository: &Repository) -> Result<BTreeMap<String, String>, ReadError> {
        let mut state = self.enter(Call::RepositoryTags(repository.name.clone())).await.map_err(ReadError::Fault)?;
        if let Some(e) = state.take_failure(|f| if let Failure::RepositoryTags(e) = f { Some(e.clone()) } else { None }) {
            return Err(e);
        }
        Ok(state.stored(repository)?.resource_tags.clone())
    }

    /// Every kind looked for at once (ECR's order and early stop are [`crate::registry::ecr`]'s).
    async fn signatures(&self, repository: &Repository, digest: &Digest, kinds: Kinds) -> Result<Signatures, ReadError> {
        let mut state = self.enter(Call::Signatures(digest.clone(), kinds)).await.map_err(ReadError::Fault)?;
        if let Some(e) = state.take_failure(|f| if let Failure::Signatures(e) = f { Some(e.clone()) } else { None }) {
            return Err(e);
        }
        let found = state.stored(repository)?.signed(digest);
        Ok(Signatures { looked: kinds, found: Kinds::of(found.iter().filter(|k| kinds.contains(*k))) })
    }

    async fn describe(&self, repository: &Repository, digest: &Digest) -> Result<Option<Listed>, ReadError> {
        let state = self.enter(Call::Describe(digest.clone())).await.map_err(ReadError::Fault)?;
        let stored = state.stored(repository)?;
        Ok(stored.images.get(digest).map(|(image, pushed_at)| stored.listed(image, *pushed_at)))
    }
}

impl Stored {
    /// The kinds of signature the image `digest` has.
    fn signed(&self, digest: &Digest) -> Kinds {
        let referrers = self.images.values().filter_map(|(image, _)| Referrer::of_manifest(&image.manifest)).filter(|r| r.subject == *digest);
        let mut found = Kinds::of(referrers.map(|r| r.kind));
        if signature::cosign_tag(digest).is_some_and(|t| self.tags.contains_key(&t)) {
            found = found.with(Kind::Cosign);
        }
        if self.signed_by_ecr.contains(digest) {
            found = found.with(Kind::Managed);
        }
        found
    }

    fn listed(&self, image: &Image, pushed_at: Option<DateTime<Utc>>) -> Listed {
        let mut tags: Vec<Tag> = self.tags.iter().filter(|(_, d)| **d == image.digest).map(|(t, _)| t.clone()).collect();
        tags.sort();
        let artifact = Artifact::of_manifest(&image.manifest).or_else(|| tags.iter().find_map(|t| Artifact::of_tag(t.as_str())));
        Listed {
            digest: image.digest.clone(),
            tags,
            pushed_at,
            media_type: image.media_type.clone(),
            scan: self.scans.get(&image.digest).cloned().unwrap_or(Scanned::NotDone(None)),
            artifact,
            archived: self.archived.contains(&image.digest),
            signatures: Signatures::default(),
        }
    }
}

impl Catalog for Memory {
    /// One page with every repository.
    async fn repositories(&self, _: Option<&RegistryId>, _: Option<&str>) -> Result<Page<RepositoryName>, ReadError> {
        let state = self.enter(Call::Repositories).await.map_err(ReadError::Fault)?;
        Ok(Page { items: state.repositories.keys().cloned().collect(), next: None })
    }

    /// One page with every tagged image.
    async fn images(&self, repository: &Repository, _: Option<&str>) -> Result<Page<Listed>, ReadError> {
        let state = self.enter(Call::Images(repository.name.clone())).await.map_err(ReadError::Fault)?;
        let stored = state.stored(repository)?;
        let mut items: Vec<Listed> = stored
            .images
            .values()
            .map(|(image, pushed_at)| stored.listed(image, *pushed_at))
            .filter(|listed| !listed.tags.is_empty())
            .collect();
        items.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(Page { items, next: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Fault, FaultKind};

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn image(n: u8) -> Image {
        Image { digest: digest(n), manifest: format!("{{\"n\":{n}}}"), media_type: None }
    }

    async fn put(memory: &Memory, repository: &Repository, n: u8, tag: &Tag, attempts: Attempts) -> Result<(), PutError> {
        memory.put(&Target { repository, image: &image(n), media_type: "m" }, tag, attempts).await
    }

    fn app() -> Repository {
        Repository::own(RepositoryName::parse("app").unwrap())
    }

    #[tokio::test]
    async fn it_answers_puts_the_way_ecr_does() {
        let memory = Memory::with_repositories(&["app"]);
        let stable = Tag::parse("stable").unwrap();
        assert_eq!(put(&memory, &app(), 1, &stable, Attempts::Retried).await, Ok(()));
        assert_eq!(put(&memory, &app(), 1, &stable, Attempts::Retried).await, Err(PutError::AlreadyExists));
        assert_eq!(put(&memory, &app(), 2, &stable, Attempts::Retried).await, Ok(()), "a mutable tag moves");
        memory.set_immutable("app");
        assert_eq!(put(&memory, &app(), 3, &stable, Attempts::Retried).await, Err(PutError::TagImmutable));
        assert_eq!(memory.tag("app", &stable), Some(digest(2)));
        let gone = Repository::own(RepositoryName::parse("gone").unwrap());
        assert_eq!(put(&memory, &gone, 1, &stable, Attempts::Retried).await, Err(PutError::RepositoryNotFound));
        assert!(matches!(memory.read(&gone, Lookup::Digest(&digest(1)), &[]).await, Err(ReadError::RepositoryNotFound)));
        assert_eq!(memory.kinds(), ["put", "put", "put", "put", "put", "read"]);
    }

    #[tokio::test]
    async fn failures_answer_as_many_calls_as_told_and_interference_lands_around_a_put() {
        let memory = Memory::with_repositories(&["app"]);
        let (v1, v2) = (Tag::parse("v1").unwrap(), Tag::parse("v2").unwrap());
        let throttled = PutError::Fault(Fault::new(FaultKind::Throttled, "ThrottlingException", "slow down"));
        memory.fail(Failure::Put(Some(v1.clone()), throttled.clone()), Some(1));
        assert_eq!(put(&memory, &app(), 1, &v2, Attempts::Retried).await, Ok(()), "another tag is not affected");
        assert_eq!(put(&memory, &app(), 1, &v1, Attempts::Retried).await, Err(throttled));
        assert_eq!(put(&memory, &app(), 1, &v1, Attempts::Retried).await, Ok(()), "once only");
        let moved = v2.clone();
        memory.after_put(move |tags| {
            tags.insert(moved, digest(9));
        });
        assert_eq!(put(&memory, &app(), 2, &v1, Attempts::Once).await, Ok(()));
        assert_eq!(memory.tag("app", &v2), Some(digest(9)), "another writer landed right after");
        assert!(matches!(memory.calls().last(), Some(Call::Put { once: true, .. })));
    }

    #[tokio::test]
    async fn listings_show_the_tagged_images() {
        let memory = Memory::with_repositories(&["app", "web"]);
        memory.add_image("app", image(1), None);
        memory.add_image("app", image(2), None);
        memory.point("app", &Tag::parse("v1").unwrap(), &digest(2));
        let names = memory.repositories(None, None).await.unwrap().items;
        assert_eq!(names.iter().map(RepositoryName::as_str).collect::<Vec<_>>(), ["app", "web"]);
        let listed = memory.images(&app(), None).await.unwrap().items;
        assert_eq!(listed.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(), [digest(2)], "untagged images are not listed");
    }
}
