//! The one place that talks to Amazon ECR: BatchGetImage and PutImage.
//!
//! Implements [`Registry`] with aws-sdk-ecr. The SDK retries throttling, 5xx
//! and transport failures with backoff (standard mode) before an error gets
//! here; what is left is classified as retryable or not.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion};
use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::config::Region;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::operation::put_image::PutImageError;
use aws_sdk_ecr::types::{ImageFailureCode, ImageIdentifier};
use aws_sdk_ecr::Client;

use crate::names::{Digest, Tag};
use crate::registry::{Fault, Image, Lookup, PutError, ReadError, Registry, Repository, Snapshot, TagState, MANIFEST_MEDIA_TYPES};

/// Timeouts sized so that a read, the writes and a re-read of conflicting tags
/// all fit in the function's 30-second timeout even when ECR hangs.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);
const MAX_ATTEMPTS: u32 = 3;
const APP_NAME: &str = "ecr-retag";

/// Connect, per-attempt and per-operation limits for every ECR call.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Standard mode: exponential backoff with jitter on throttling, 5xx and transport errors.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// aws-sdk-ecr behind the [`Registry`] port.
#[derive(Debug, Clone)]
pub struct Ecr {
    client: Client,
}

impl Ecr {
    /// Builds the client from the Lambda environment (credentials, region,
    /// `AWS_ENDPOINT_URL` for local emulators), once per execution environment.
    pub async fn from_env() -> Self {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeout_config()).retry_config(retry_config());
        // `app/ecr-retag` in the User-Agent: CloudTrail (and the test emulator) can tell its calls apart.
        if let Ok(name) = AppName::new(APP_NAME) {
            loader = loader.app_name(name);
        }
        Self::new(Client::new(&loader.load().await))
    }

    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A config override for a repository in another region than the client's.
    fn region_override(&self, repository: &Repository) -> Option<aws_sdk_ecr::config::Builder> {
        let wanted = repository.region.as_deref()?;
        let own = self.client.config().region().map(Region::as_ref);
        (own != Some(wanted)).then(|| aws_sdk_ecr::config::Builder::default().region(Region::new(wanted.to_owned())))
    }
}

impl Registry for Ecr {
    async fn read(&self, repository: &Repository, image: Lookup<'_>, tags: &[Tag]) -> Result<Snapshot, ReadError> {
        let wanted = match image {
            Lookup::Digest(d) => ImageIdentifier::builder().image_digest(d.as_str()).build(),
            Lookup::Tag(t) => ImageIdentifier::builder().image_tag(t.as_str()).build(),
        };
        let ids = std::iter::once(wanted)
            .chain(tags.iter().map(|t| ImageIdentifier::builder().image_tag(t.as_str()).build()))
            .collect();
        let request = self
            .client
            .batch_get_image()
            .repository_name(repository.name.as_str())
            .set_registry_id(repository.registry_id.as_ref().map(|r| r.to_string()))
            .set_image_ids(Some(ids))
            // All four types: ECR then returns the stored bytes and never converts.
            .set_accepted_media_types(Some(MANIFEST_MEDIA_TYPES.iter().map(|s| s.to_string()).collect()));
        let output = match self.region_override(repository) {
            Some(o) => request.customize().config_override(o).send().await,
            None => request.send().await,
        };
        let output = output.map_err(|e| match e.as_service_error() {
            Some(s) if s.is_repository_not_found_exception() => ReadError::RepositoryNotFound,
            _ => ReadError::Fault(fault(&e)),
        })?;

        let mut snapshot = Snapshot::default();
        for found in output.images() {
            let id = found.image_id();
            let Some(digest) = id.and_then(|i| i.image_digest()).and_then(|d| Digest::parse(d).ok()) else { continue };
            let tag = id.and_then(|i| i.image_tag());
            let is_wanted = match image {
                Lookup::Digest(d) => *d == digest,
                Lookup::Tag(t) => tag == Some(t.as_str()),
            };
            if let (true, None, Some(manifest)) = (is_wanted, &snapshot.image, found.image_manifest()) {
                snapshot.image = Some(Image {
                    digest: digest.clone(),
                    manifest: manifest.to_owned(),
                    media_type: found.image_manifest_media_type().map(str::to_owned),
                });
            }
            if let Some(t) = tag.and_then(|t| tags.iter().find(|w| w.as_str() == t)) {
                snapshot.tags.insert(t.clone(), TagState::At(digest));
            }
        }
        for failure in output.failures() {
            let id = failure.image_id();
            let code = failure.failure_code();
            let not_found = matches!(code, Some(ImageFailureCode::ImageNotFound));
            let fault = || Fault {
                code: code.map_or("Unknown", |c| c.as_str()).to_owned(),
                message: failure.failure_reason().unwrap_or_default().to_owned(),
                retryable: matches!(
                    code,
                    Some(ImageFailureCode::UpstreamTooManyRequests | ImageFailureCode::UpstreamUnavailable)
                ),
            };
            let tag = id.and_then(|i| i.image_tag());
            let is_image = match image {
                Lookup::Digest(d) => id.and_then(|i| i.image_digest()) == Some(d.as_str()) && tag.is_none(),
                Lookup::Tag(t) => tag == Some(t.as_str()),
            };
            if is_image && !not_found && snapshot.image.is_none() {
                return Err(ReadError::Fault(fault()));
            }
            if let Some(t) = tag.and_then(|t| tags.iter().find(|w| w.as_str() == t)) {
                let state = if not_found { TagState::Absent } else { TagState::Unreadable(fault()) };
                snapshot.tags.entry(t.clone()).or_insert(state);
            }
        }
        // A tag ECR's answer does not mention is treated as absent: the PutImage
        // that follows is the arbiter (ImageAlreadyExistsException means it was there).
        for t in tags {
            snapshot.tags.entry(t.clone()).or_insert(TagState::Absent);
        }
        Ok(snapshot)
    }

    async fn put(&self, repository: &Repository, image: &Image, media_type: &str, tag: &Tag) -> Result<(), PutError> {
        let request = self
            .client
            .put_image()
            .repository_name(repository.name.as_str())
            .set_registry_id(repository.registry_id.as_ref().map(|r| r.to_string()))
            .image_manifest(&image.manifest)
            .image_manifest_media_type(media_type)
            // ECR checks the bytes against this digest, so a changed manifest can never land.
            .image_digest(image.digest.as_str())
            .image_tag(tag.as_str());
        let result = match self.region_override(repository) {
            Some(o) => request.customize().config_override(o).send().await,
            None => request.send().await,
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.as_service_error() {
                Some(PutImageError::ImageAlreadyExistsException(_)) => PutError::AlreadyExists,
                Some(PutImageError::ImageTagAlreadyExistsException(_)) => PutError::TagImmutable,
                Some(PutImageError::RepositoryNotFoundException(_)) => PutError::RepositoryNotFound,
                _ => PutError::Fault(fault(&e)),
            }),
        }
    }
}

/// Classifies what is left of a call after the SDK's own retries.
fn fault<E>(error: &SdkError<E, HttpResponse>) -> Fault
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // Transport failures are described by their whole source chain, kept short.
    let mut message = DisplayErrorContext(error).to_string();
    if let Some((cut, _)) = message.char_indices().nth(300) {
        message.truncate(cut);
        message.push('…');
    }
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let message = service.err().message().unwrap_or("(no message)").to_owned();
            let status = service.raw().status().as_u16();
            let retryable = status >= 500
                || status == 429
                || matches!(code.as_str(), "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "ServerException");
            Fault { code, message, retryable }
        }
        SdkError::TimeoutError(_) => Fault { code: "Timeout".into(), message, retryable: true },
        SdkError::DispatchFailure(_) => Fault { code: "DispatchFailure".into(), message, retryable: true },
        SdkError::ResponseError(_) => Fault { code: "ResponseError".into(), message, retryable: true },
        SdkError::ConstructionFailure(_) => Fault { code: "ConstructionFailure".into(), message, retryable: false },
        _ => Fault { code: "Unknown".into(), message, retryable: true },
    }
}
