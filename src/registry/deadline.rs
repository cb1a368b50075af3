//! The deadline inside an invocation: a [`Registry`] decorator that cuts any
//! ECR call still unanswered at the deadline (the SDK's backoff sleeps
//! included) and answers it as a retryable fault. So a tag whose PutImage is
//! throttled until the end ends `failed` (retryable) in a report that still
//! says what every other tag did, and the event comes back for the rest.
//!
//! For sweeps it also paces PutImage ([`Pace`]): a fanned-out sweep runs on as many
//! instances as the queue drives, and unpaced they would spend the account's PutImage
//! quota (shared with every `docker push`) on throttled calls and redeliveries.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::names::{Digest, RegistryId, RepositoryName, Tag};
use crate::domain::mutability::TagMutability;
use crate::domain::signature::{Kinds, Signatures};
use crate::fault::{Fault, FaultKind};
use crate::registry::{
    Annotated,
    Attempts, Blobs, Catalog, Image, Listed, Lookup, Mount, Page, PutError, ReadError, Registry, RemoveError, Repository, Snapshot,
    Target,
};

pub struct Deadline<'r, R> {
    inner: &'r R,
    /// `None`: no deadline (local runners); only the SDK's timeouts apply.
    at: Option<Instant>,
    /// PutImage calls start no faster than this allows (sweeps, when configured).
    pace: Option<&'r Pace>,
}

/// At most so many PutImage calls per second from one instance, evenly spaced.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    /// tokio's clock, which tests can pause.
    next: Mutex<Option<tokio::time::Instant>>,
}

impl Pace {
    /// `per_second` must be positive (checked with the configuration).
    pub fn per_second(per_second: f64) -> Pace {
        Pace { interval: Duration::from_secs_f64(1.0 / per_second.max(f64::MIN_POSITIVE)), next: Mutex::new(None) }
    }

    /// Waits for the next free slot (slots are handed out in call order).
    async fn wait(&self) {
        let slot = match self.next.lock() {
            Ok(mut next) => {
                let now = Instant::now();
                let at = next.map_or(now, |n| n.max(now));
                *next = Some(at + self.interval);
                at
            }
            Err(_) => return,
        };
        tokio::time::sleep_until(slot).await;
    }
}

impl<'r, R> Deadline<'r, R> {
    pub fn new(inner: &'r R, at: Option<Instant>) -> Self {
        Self { inner, at, pace: None }
    }

    /// The same, with PutImage calls paced (a wait past the deadline is cut like a call).
    pub fn paced(self, pace: Option<&'r Pace>) -> Self {
        Self { pace, ..self }
    }

    async fn cut<T, E>(&self, operation: &str, call: impl Future<Output = Result<T, E>>, fault: impl FnOnce(Fault) -> E) -> Result<T, E> {
        let Some(at) = self.at else { return call.await };
        match tokio::time::timeout_at(at, call).await {
            Ok(result) => result,
            Err(_) => Err(fault(Fault::new(
                FaultKind::Deadline,
                "DeadlineReached",
                format!("{operation} was not answered before the invocation's deadline; a later delivery finishes the job"),
            ))),
        }
    }
}

impl<R> Deadline<'_, R> {
    /// A PutImage, started no sooner than the pace allows.
    async fn at_pace<T>(&self, put: impl Future<Output = T>) -> T {
        if let Some(pace) = self.pace {
            pace.wait().await;
        }
        put.await
    }
}

impl<R: Registry> Registry for Deadline<'_, R> {
    async fn read(&self, repository: &Repository, image: Lookup<'_>, tags: &[Tag]) -> Result<Snapshot, ReadError> {
        self.cut("BatchGetImage", self.inner.read(repository, image, tags), ReadError::Fault).await
    }

    async fn put(&self, target: &Target<'_>, tag: &Tag, attempts: Attempts) -> Result<(), PutError> {
        self.cut("PutImage", self.at_pace(self.inner.put(target, tag, attempts)), PutError::Fault).await
    }

    async fn tags_of(&self, repository: &Repository, digest: &Digest) -> Result<Vec<Tag>, ReadError> {
        self.cut("DescribeImages", self.inner.tags_of(repository, digest), ReadError::Fault).await
    }

    async fn remove(&self, repository: &Repository, tag: &Tag) -> Result<(), RemoveError> {
        self.cut("BatchDeleteImage", self.inner.remove(repository, tag), RemoveError::Fault).await
    }

    async fn repository_tags(&self, repository: &Repository) -> Result<BTreeMap<String, String>, ReadError> {
        self.cut("ListTagsForResource", self.inner.repository_tags(repository), ReadError::Fault).await
    }

    async fn restore(&self, repository: &Repository, digest: &Digest) -> Result<(), ReadError> {
        self.cut("UpdateImageStorageClass", self.inner.restore(repository, digest), ReadError::Fault).await
    }

    async fn tag_mutability(&self, repository: &Repository) -> Result<TagMutability, ReadError> {
        self.cut("DescribeRepositories", self.inner.tag_mutability(repository), ReadError::Fault).await
    }

    async fn signatures(&self, repository: &Repository, digest: &Digest, kinds: Kinds) -> Result<Signatures, ReadError> {
        self.cut("ListImageReferrers", self.inner.signatures(repository, digest, kinds), ReadError::Fault).await
    }

    async fn describe(&self, repository: &Repository, digest: &Digest) -> Result<Option<Listed>, ReadError> {
        self.cut("DescribeImages", self.inner.describe(repository, digest), ReadError::Fault).await
    }
}

impl<R: Catalog> Catalog for Deadline<'_, R> {
    async fn repositories(&self, registry_id: Option<&RegistryId>, page: Option<&str>) -> Result<Page<RepositoryName>, ReadError> {
        self.cut("DescribeRepositories", self.inner.repositories(registry_id, page), ReadError::Fault).await
    }

    async fn images(&self, repository: &Repository, page: Option<&str>) -> Result<Page<Listed>, ReadError> {
        self.cut("DescribeImages", self.inner.images(repository, page), ReadError::Fault).await
    }
}

impl<R: Blobs> Blobs for Deadline<'_, R> {
    async fn mounting_enabled(&self) -> Result<bool, ReadError> {
        self.cut("GetAccountSetting", self.inner.mounting_enabled(), ReadError::Fault).await
    }

    async fn encryption(&self, repository: &Repository) -> Result<(String, Option<String>), ReadError> {
        self.cut("DescribeRepositories", self.inner.encryption(repository), ReadError::Fault).await
    }

    async fn missing(&self, repository: &Repository, digests: &[Digest]) -> Result<Vec<Digest>, ReadError> {
        self.cut("BatchCheckLayerAvailability", self.inner.missing(repository, digests), ReadError::Fault).await
    }

    async fn mount(&self, target: &Repository, source: &Repository, digest: &Digest) -> Result<Mount, Fault> {
        self.cut("the blob mount", self.inner.mount(target, source, digest), |f| f).await
    }

    async fn copy_blob(&self, target: &Repository, source: &Repository, digest: &Digest, max_bytes: u64) -> Result<u64, Fault> {
        self.cut("the blob copy", self.inner.copy_blob(target, source, digest, max_bytes), |f| f).await
    }

    async fn put_manifest(&self, repository: &Repository, image: &Image, media_type: &str) -> Result<(), PutError> {
        // A PutImage like any other: a sweep's pace counts it.
        self.cut("PutImage", self.at_pace(self.inner.put_manifest(repository, image, media_type)), PutError::Fault).await
    }

    async fn referrers(&self, repository: &Repository, digest: &Digest) -> Result<Vec<Digest>, ReadError> {
        self.cut("ListImageReferrers", self.inner.referrers(repository, digest), ReadError::Fault).await
    }

    async fn referrers_of_type(&self, repository: &Repository, digest: &Digest, artifact_type: &str) -> Result<Vec<Annotated>, ReadError> {
        self.cut("ListImageReferrers", self.inner.referrers_of_type(repository, digest, artifact_type), ReadError::Fault).await
    }

    async fn upload_blob(&self, repository: &Repository, digest: &Digest, bytes: &[u8]) -> Result<(), Fault> {
        self.cut("the blob upload", self.inner.upload_blob(repository, digest, bytes), |f| f).await
    }

    async fn blob_bytes(&self, repository: &Repository, digest: &Digest, max_bytes: u64) -> Result<Vec<u8>, Fault> {
        self.cut("the blob download", self.inner.blob_bytes(repository, digest, max_bytes), |f| f).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paced_calls_start_evenly_spaced_whoever_asks() {
        let pace = Pace::per_second(4.0);
        let started = Instant::now();
        let waits = (0..9).map(|_| async {
            pace.wait().await;
            started.elapsed()
        });
        let mut at: Vec<Duration> = futures_util::future::join_all(waits).await;
        at.sort();
        assert_eq!(at.first(), Some(&Duration::ZERO), "the first at once");
        assert_eq!(at.last(), Some(&Duration::from_millis(2000)), "the ninth two seconds on, at 4 a second");
        assert!(at.windows(2).all(|w| w[1] - w[0] == Duration::from_millis(250)), "{at:?}");
        // After a pause, the next starts at once again: unused slots are not saved up.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let before = Instant::now();
        pace.wait().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
