//! The deadline inside an invocation: a [`Registry`] decorator that cuts any
//! ECR call still unanswered at the deadline (the SDK's backoff sleeps
//! included) and answers it as a retryable fault. So a tag whose PutImage is
//! throttled until the end ends `failed` (retryable) in a report that still
//! says what every other tag did, and the event comes back for the rest.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

use crate::domain::names::{Digest, RegistryId, RepositoryName, Tag};
use crate::domain::mutability::TagMutability;
use crate::domain::signature::{Kinds, Signatures};
use crate::error::{Fault, FaultKind};
use crate::registry::{
    Attempts, Catalog, Listed, Lookup, Page, PutError, ReadError, Registry, RemoveError, Repository, Snapshot, Target,
};

pub struct Deadline<'r, R> {
    inner: &'r R,
    /// `None`: no deadline (local runners); only the SDK's timeouts apply.
    at: Option<Instant>,
}

impl<'r, R> Deadline<'r, R> {
    pub fn new(inner: &'r R, at: Option<Instant>) -> Self {
        Self { inner, at }
    }

    async fn cut<T, E>(&self, operation: &str, call: impl Future<Output = Result<T, E>>, fault: impl FnOnce(Fault) -> E) -> Result<T, E> {
        let Some(at) = self.at else { return call.await };
        match tokio::time::timeout_at(at.into(), call).await {
            Ok(result) => result,
            Err(_) => Err(fault(Fault::new(
                FaultKind::Deadline,
                "DeadlineReached",
                format!("{operation} was not answered before the invocation's deadline; a later delivery finishes the job"),
            ))),
        }
    }
}

impl<R: Registry> Registry for Deadline<'_, R> {
    async fn read(&self, repository: &Repository, image: Lookup<'_>, tags: &[Tag]) -> Result<Snapshot, ReadError> {
        self.cut("BatchGetImage", self.inner.read(repository, image, tags), ReadError::Fault).await
    }

    async fn put(&self, target: &Target<'_>, tag: &Tag, attempts: Attempts) -> Result<(), PutError> {
        self.cut("PutImage", self.inner.put(target, tag, attempts), PutError::Fault).await
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
