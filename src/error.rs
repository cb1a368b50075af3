//! Why an invocation failed ([`RetagError`]) and whether a later delivery can succeed; built
//! on [`Fault`], a failed call typed by its kind ([`crate::fault`]).

pub use crate::fault::{Fault, FaultKind};
use crate::input::InputError;
use crate::domain::names::RegistryId;
use crate::registry::{ReadError, Repository};
use crate::report::Report;

/// Why an invocation failed. [`RetagError::retryable`] tells whether a later
/// delivery of the same event can succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RetagError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] InputError),
    #[error("repository {repository:?} not found in registry {registry}")]
    RepositoryNotFound { repository: String, registry: String },
    #[error("image {reference} not found in repository {repository:?} (deleted after the push?)")]
    ImageNotFound { repository: String, reference: String },
    #[error("cannot tell the manifest media type of {digest}: neither ECR's answer, the event nor the manifest names one")]
    UnknownMediaType { digest: String },
    #[error("reading repository {repository:?} from ECR failed: {fault}")]
    Read { repository: String, fault: Fault },
    #[error("listing the repositories of registry {registry} failed: {fault}")]
    Listing { registry: String, fault: Fault },
    #[error("{}", not_applied(.report))]
    TagsNotApplied { report: Box<Report>, retryable: bool },
    #[error("stopped before Lambda's timeout with {waiting_for} still unanswered; a later delivery finishes the job")]
    DeadlineExceeded { waiting_for: String },
    #[error("the sweep of {repository:?} left {failed} tag(s) failed or the repository unread; a later delivery finishes it")]
    SweepIncomplete { repository: String, failed: usize },
    #[error("a fan-out sends its sweeps to the event queue, and there is none: deploy with Delivery=queue (RETAG_SWEEP_QUEUE_URL)")]
    NoQueue,
    #[error("sending sweep messages to the event queue failed, {sent} sent before: {fault}")]
    Enqueue { sent: usize, fault: Fault },
}

impl RetagError {
    pub fn retryable(&self) -> bool {
        match self {
            RetagError::Read { fault, .. } | RetagError::Listing { fault, .. } | RetagError::Enqueue { fault, .. } => fault.retryable(),
            RetagError::TagsNotApplied { retryable, .. } => *retryable,
            RetagError::DeadlineExceeded { .. } | RetagError::SweepIncomplete { .. } => true,
            _ => false,
        }
    }

    /// `Retryable.<Kind>` or `Permanent.<Kind>`: the Lambda error type.
    pub fn error_type(&self) -> String {
        let kind = match self {
            RetagError::InvalidEvent(_) => "InvalidEvent",
            RetagError::RepositoryNotFound { .. } => "RepositoryNotFound",
            RetagError::ImageNotFound { .. } => "ImageNotFound",
            RetagError::UnknownMediaType { .. } => "UnknownMediaType",
            RetagError::Read { .. } | RetagError::Listing { .. } => "ReadFailed",
            RetagError::TagsNotApplied { .. } => "TagsNotApplied",
            RetagError::DeadlineExceeded { .. } => "DeadlineExceeded",
            RetagError::SweepIncomplete { .. } => "SweepIncomplete",
            RetagError::NoQueue => "NoQueue",
            RetagError::Enqueue { .. } => "EnqueueFailed",
        };
        format!("{}.{kind}", if self.retryable() { "Retryable" } else { "Permanent" })
    }

    /// `repository` is gone.
    pub fn repository_not_found(repository: &Repository) -> RetagError {
        RetagError::RepositoryNotFound {
            repository: repository.name.to_string(),
            registry: registry_label(repository.registry_id.as_ref()),
        }
    }

    /// A failed listing of a registry's repositories.
    pub fn listing(registry_id: Option<&RegistryId>, fault: Fault) -> RetagError {
        RetagError::Listing { registry: registry_label(registry_id), fault }
    }

    /// A failed read of `repository`, as the invocation's error.
    pub fn reading(repository: &Repository, e: ReadError) -> RetagError {
        match e {
            ReadError::Fault(fault) if fault.kind == FaultKind::Deadline => {
                RetagError::DeadlineExceeded { waiting_for: format!("a read of {:?}", repository.name.as_str()) }
            }
            ReadError::RepositoryNotFound => RetagError::repository_not_found(repository),
            ReadError::Fault(fault) => RetagError::Read { repository: repository.name.to_string(), fault },
        }
    }

    /// The per-tag report, when the failure happened after planning.
    pub fn report(&self) -> Option<&Report> {
        match self {
            RetagError::TagsNotApplied { report, .. } => Some(report),
            _ => None,
        }
    }
}

/// The per-tag report of an invocation's result, when there is one.
pub fn report_of(result: &Result<Report, RetagError>) -> Option<&Report> {
    match result {
        Ok(report) => Some(report),
        Err(e) => e.report(),
    }
}

fn not_applied(report: &Report) -> String {
    let problems: Vec<String> = report
        .problems()
        .map(|t| match &t.detail {
            Some(d) => format!("`{}` {} ({d})", t.tag, t.outcome),
            None => format!("`{}` {}", t.tag, t.outcome),
        })
        .collect();
    let unrecorded: Vec<String> = report
        .records
        .iter()
        .filter(|r| r.outcome == crate::report::RecordOutcome::Failed)
        .map(|r| format!("rule {:?} in {}: {}", r.rule, r.repository, r.detail.as_deref().unwrap_or("failed")))
        .collect();
    if problems.is_empty() {
        return format!(
            "the tags are in place for {}@{}, but {} promotion record(s) could not be attached: {}",
            report.repository.as_deref().unwrap_or("?"),
            report.digest.as_deref().unwrap_or("?"),
            unrecorded.len(),
            unrecorded.join("; ")
        );
    }
    format!(
        "{} of {} tags not in place for {}@{}: {}",
        problems.len(),
        report.tags.len(),
        report.repository.as_deref().unwrap_or("?"),
        report.digest.as_deref().unwrap_or("?"),
        problems.join("; ")
    )
}

/// A registry as messages name it.
fn registry_label(registry_id: Option<&RegistryId>) -> String {
    registry_id.map_or_else(|| "(the caller's own)".to_owned(), ToString::to_string)
}
