//! Opt-in repositories: rules with `repository_tags` need the repository's
//! resource tags, looked up once and kept per warm instance for a short time,
//! so a burst of pushes costs one ListTagsForResource, not one per event.
//!
//! A [`Registry`] decorator: the handler wraps whatever registry it is given,
//! and everything but this lookup passes straight through.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::names::{Digest, RegistryId, RepositoryName, Tag};
use crate::registry::{
    Attempts, Catalog, Listed, Lookup, Page, PutError, ReadError, Registry, RemoveError, Repository, Snapshot, Target,
};

type Tags = BTreeMap<String, String>;

pub struct CachedRepositoryTags<R> {
    inner: R,
    ttl: Duration,
    entries: Mutex<HashMap<Repository, (Instant, Tags)>>,
}

impl<R: Registry> CachedRepositoryTags<R> {
    /// `ttl` zero: every lookup asks ECR.
    pub fn new(inner: R, ttl: Duration) -> Self {
        Self { inner, ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// The lookup as of `now` (tests pass the clock).
    pub async fn repository_tags_at(&self, repository: &Repository, now: Instant) -> Result<Tags, ReadError> {
        if let Some((at, tags)) = self.lock().get(repository) {
            if now.saturating_duration_since(*at) < self.ttl {
                return Ok(tags.clone());
            }
        }
        // Failures are not kept: the next event asks again.
        let tags = self.inner.repository_tags(repository).await?;
        if !self.ttl.is_zero() {
            self.lock().insert(repository.clone(), (now, tags.clone()));
        }
        Ok(tags)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Repository, (Instant, Tags)>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<R: Registry> Registry for CachedRepositoryTags<R> {
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
}

impl<R: Catalog> Catalog for CachedRepositoryTags<R> {
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
    use crate::error::{Fault, FaultKind};
    use crate::registry::memory::{Failure, Memory};

    /// Repositories `app` and `team/api`, each tagged `retag=enabled` and its own name.
    fn registry() -> Memory {
        let memory = Memory::with_repositories(&["app", "team/api"]);
        for name in ["app", "team/api"] {
            memory.set_resource_tags(name, &[("retag", "enabled"), ("name", name)]);
        }
        memory
    }

    fn lookups(cache: &CachedRepositoryTags<Memory>) -> usize {
        cache.inner().kinds().iter().filter(|k| **k == "repository_tags").count()
    }

    fn repo(name: &str) -> Repository {
        Repository { registry_id: None, region: None, name: RepositoryName::parse(name).unwrap() }
    }

    #[tokio::test]
    async fn a_burst_of_pushes_costs_one_lookup_per_repository_until_the_ttl_passes() {
        let cache = CachedRepositoryTags::new(registry(), Duration::from_secs(300));
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
        let cache = CachedRepositoryTags::new(registry(), Duration::from_secs(300));
        let throttled = ReadError::Fault(Fault::new(FaultKind::Throttled, "ThrottlingException", "slow down"));
        cache.inner().fail(Failure::RepositoryTags(throttled), None);
        let t0 = Instant::now();
        assert!(cache.repository_tags_at(&repo("app"), t0).await.is_err());
        cache.inner().clear_failures();
        assert!(cache.repository_tags_at(&repo("app"), t0).await.is_ok());
        assert_eq!(lookups(&cache), 2);

        let uncached = CachedRepositoryTags::new(registry(), Duration::ZERO);
        for _ in 0..3 {
            uncached.repository_tags_at(&repo("app"), t0).await.unwrap();
        }
        assert_eq!(lookups(&uncached), 3);
    }
}
