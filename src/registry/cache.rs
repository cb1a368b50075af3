//! The lookups that can be kept per warm instance for a short time: a
//! repository's resource tags (rules with `repository_tags`: a burst of pushes
//! costs one ListTagsForResource, not one per event), its tag mutability
//! (one DescribeRepositories for the detail of a `conflict`), and a promotion's
//! preconditions: the account's `BLOB_MOUNTING` and each repository's encryption.
//!
//! A [`Registry`] decorator: the handler wraps whatever registry it is given,
//! and everything but these lookups passes straight through.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::mutability::TagMutability;
use crate::domain::signature::{Kinds, Signatures};
use crate::domain::names::{Digest, RegistryId, RepositoryName, Tag};
use crate::fault::Fault;
use crate::registry::{
    Annotated,
    Attempts, Blobs, Catalog, Image, Listed, Lookup, Mount, Page, PutError, ReadError, Registry, RemoveError, Repository, Snapshot,
    Target,
};

type Tags = BTreeMap<String, String>;

pub struct Cached<R> {
    inner: R,
    tags: Kept<Repository, Tags>,
    mutability: Kept<Repository, TagMutability>,
    /// The account setting, one per registry: only ENABLED is kept, so turning it on takes effect at once.
    mounting: Kept<(), bool>,
    encryption: Kept<Repository, (String, Option<String>)>,
}

impl<R: Registry> Cached<R> {
    /// `ttl` zero: every lookup asks ECR.
    pub fn new(inner: R, ttl: Duration) -> Self {
        Self { inner, tags: Kept::new(ttl), mutability: Kept::new(ttl), mounting: Kept::new(ttl), encryption: Kept::new(ttl) }
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// The resource-tag lookup as of `now` (tests pass the clock).
    pub async fn repository_tags_at(&self, repository: &Repository, now: Instant) -> Result<Tags, ReadError> {
        self.tags.get(repository, now, self.inner.repository_tags(repository)).await
    }
}

/// Answers per key (a repository), each kept for `ttl`.
struct Kept<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Clone + Eq + std::hash::Hash, V: Clone> Kept<K, V> {
    fn new(ttl: Duration) -> Self {
        Kept { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The kept answer if it is younger than the TTL at `now`, else `fetch`'s (kept if it succeeded).
    async fn get(&self, key: &K, now: Instant, fetch: impl Future<Output = Result<V, ReadError>>) -> Result<V, ReadError> {
        self.get_if(key, now, fetch, |_| true).await
    }

    /// The same, keeping only the answers `keep` accepts.
    async fn get_if(
        &self,
        key: &K,
        now: Instant,
        fetch: impl Future<Output = Result<V, ReadError>>,
        keep: impl Fn(&V) -> bool,
    ) -> Result<V, ReadError> {
        if let Some((at, value)) = self.lock().get(key) {
            if now.saturating_duration_since(*at) < self.ttl {
                return Ok(value.clone());
            }
        }
        // Failures are not kept: the next event asks again.
        let value = fetch.await?;
        if !self.ttl.is_zero() && keep(&value) {
            self.lock().insert(key.clone(), (now, value.clone()));
        }
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<R: Registry> Registry for Cached<R> {
    async fn read(&self, repository: &Repository, image: Lookup<'_>, tags: &[Tag]) -> Result<Snapshot, ReadError> {
        self.inner.read(repository, image, tags).await
    }

    async fn put(&self, target: &Target<'_>, tag: &Tag, attempts: Attempts) -> Result<(), PutError> {
        self.inner.put(target, tag, attempts).await
    }

    async fn tags_of(&self, repository: &Repository, digest: &Digest) -> Result<Vec<Tag>, ReadError> {
        self.inner.tags_of(repository, digest).await
    }

    async fn remove(&self, repository: &Repository, tag: &Tag) -> Result<(), RemoveError> {
        self.inner.remove(repository, tag).await
    }

    async fn repository_tags(&self, repository: &Repository) -> Result<Tags, ReadError> {
        self.repository_tags_at(repository, Instant::now()).await
    }

    async fn restore(&self, repository: &Repository, digest: &Digest) -> Result<(), ReadError> {
        self.inner.restore(repository, digest).await
    }

    async fn tag_mutability(&self, repository: &Repository) -> Result<TagMutability, ReadError> {
        self.mutability.get(repository, Instant::now(), self.inner.tag_mutability(repository)).await
    }

    // Not cached: a signature may be pushed any moment, and its absence is what a deferral waits on.
    async fn signatures(&self, repository: &Repository, digest: &Digest, kinds: Kinds) -> Result<Signatures, ReadError> {
        self.inner.signatures(repository, digest, kinds).await
    }

    async fn describe(&self, repository: &Repository, digest: &Digest) -> Result<Option<Listed>, ReadError> {
        self.inner.describe(repository, digest).await
    }
}

impl<R: Blobs> Blobs for Cached<R> {
    async fn mounting_enabled(&self) -> Result<bool, ReadError> {
        self.mounting.get_if(&(), Instant::now(), self.inner.mounting_enabled(), |enabled| *enabled).await
    }

    async fn encryption(&self, repository: &Repository) -> Result<(String, Option<String>), ReadError> {
        self.encryption.get(repository, Instant::now(), self.inner.encryption(repository)).await
    }

    async fn missing(&self, repository: &Repository, digests: &[Digest]) -> Result<Vec<Digest>, ReadError> {
        self.inner.missing(repository, digests).await
    }

    async fn mount(&self, target: &Repository, source: &Repository, digest: &Digest) -> Result<Mount, Fault> {
        self.inner.mount(target, source, digest).await
    }

    async fn copy_blob(&self, target: &Repository, source: &Repository, digest: &Digest, max_bytes: u64) -> Result<u64, Fault> {
        self.inner.copy_blob(target, source, digest, max_bytes).await
    }

    async fn put_manifest(&self, repository: &Repository, image: &Image, media_type: &str) -> Result<(), PutError> {
        self.inner.put_manifest(repository, image, media_type).await
    }

    async fn referrers(&self, repository: &Repository, digest: &Digest) -> Result<Vec<Digest>, ReadError> {
        self.inner.referrers(repository, digest).await
    }

    async fn referrers_of_type(&self, repository: &Repository, digest: &Digest, artifact_type: &str) -> Result<Vec<Annotated>, ReadError> {
        self.inner.referrers_of_type(repository, digest, artifact_type).await
    }

    async fn upload_blob(&self, repository: &Repository, digest: &Digest, bytes: &[u8]) -> Result<(), Fault> {
        self.inner.upload_blob(repository, digest, bytes).await
    }

    async fn blob_bytes(&self, repository: &Repository, digest: &Digest, max_bytes: u64) -> Result<Vec<u8>, Fault> {
        self.inner.blob_bytes(repository, digest, max_bytes).await
    }
}

impl<R: Catalog> Catalog for Cached<R> {
    async fn repositories(&self, registry_id: Option<&RegistryId>, page: Option<&str>) -> Result<Page<RepositoryName>, ReadError> {
        self.inner.repositories(registry_id, page).await
    }

    async fn images(&self, repository: &Repository, page: Option<&str>) -> Result<Page<Listed>, ReadError> {
        self.inner.images(repository, page).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::names::RepositoryName;
    use crate::fault::{Fault, FaultKind};
    use crate::registry::memory::{Failure, Memory};

    /// Repositories `app` and `team/api`, each tagged `retag=enabled` and its own name.
    fn registry() -> Memory {
        let memory = Memory::with_repositories(&["app", "team/api"]);
        for name in ["app", "team/api"] {
            memory.set_resource_tags(name, &[("retag", "enabled"), ("name", name)]);
        }
        memory
    }

    fn lookups(cache: &Cached<Memory>) -> usize {
        cache.inner().kinds().iter().filter(|k| **k == "repository_tags").count()
    }

    fn repo(name: &str) -> Repository {
        Repository { registry_id: None, region: None, name: RepositoryName::parse(name).unwrap() }
    }

    #[tokio::test]
    async fn a_burst_of_pushes_costs_one_lookup_per_repository_until_the_ttl_passes() {
        let cache = Cached::new(registry(), Duration::from_secs(300));
        let t0 = Instant::now();
        for i in 0..50 {
            let tags = cache.repository_tags_at(&repo("app"), t0 + Duration::from_secs(i)).await.unwrap();
            assert_eq!(tags.get("retag").map(String::as_str), Some("enabled"));
        }
        assert_eq!(lookups(&cache), 1);
        let other = cache.repository_tags_at(&repo("team/api"), t0).await.unwrap();
        assert_eq!(other.get("name").map(String::as_str), Some("team/api"), "entries are per repository");
        assert_eq!(lookups(&cache), 2);
        cache.repository_tags_at(&repo("app"), t0 + Duration::from_secs(300)).await.unwrap();
        assert_eq!(lookups(&cache), 3, "looked up again once the TTL has passed");
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_a_zero_ttl_never_caches() {
        let cache = Cached::new(registry(), Duration::from_secs(300));
        let throttled = ReadError::Fault(Fault::new(FaultKind::Throttled, "ThrottlingException", "slow down"));
        cache.inner().fail(Failure::RepositoryTags(throttled), None);
        let t0 = Instant::now();
        assert!(cache.repository_tags_at(&repo("app"), t0).await.is_err());
        cache.inner().clear_failures();
        assert!(cache.repository_tags_at(&repo("app"), t0).await.is_ok());
        assert_eq!(lookups(&cache), 2);

        let uncached = Cached::new(registry(), Duration::ZERO);
        for _ in 0..3 {
            uncached.repository_tags_at(&repo("app"), t0).await.unwrap();
        }
        assert_eq!(lookups(&uncached), 3);
    }
}
