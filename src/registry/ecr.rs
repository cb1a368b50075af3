//! The one place that talks to Amazon ECR: BatchGetImage and PutImage, and
//! for the optional rule features DescribeImages (`"move": "if-newer"`),
//! BatchDeleteImage (`remove_source`) and ListTagsForResource (plus
//! DescribeRepositories for an ARN it cannot build; `repository_tags`);
//! `ecr/images.rs`: listings, scans and signatures (`"when": {"signed": …}`);
//! `ecr/setup.rs`: the registry settings `ecr-retag doctor` reads, which the function never does;
//! `ecr/blobs.rs`: blobs for promotion into another repository (the registry API's mounts).
//!
//! Implements [`Registry`] with aws-sdk-ecr. The SDK retries throttling, 5xx
//! and transport failures with backoff (standard mode) before an error gets
//! here; what is left is classified as retryable or not.

use std::collections::BTreeMap;

use aws_config::{AppName, BehaviorVersion};
use aws_sdk_ecr::config::Region;
use aws_sdk_ecr::operation::put_image::PutImageError;
use aws_sdk_ecr::types::{
    DescribeImagesFilter, ImageFailureCode, ImageIdentifier, ImageStatusFilter, TagStatus,
    TargetStorageClass,
};
use aws_sdk_ecr::Client;

mod calls;

use crate::fault::{Fault, FaultKind};
use calls::{single_attempt, TagLimitIsFinal};
pub(crate) use calls::fault;
pub use calls::{retry_config, timeout_config};
use crate::domain::names::{Digest, RegistryId, RepositoryName, Tag};
use crate::registry::{
    Attempts, Catalog, Image, Listed, Lookup, Page, PutError, ReadError, Registry, RemoveError, Repository, Snapshot, TagState, Target,
    MANIFEST_MEDIA_TYPES,
};
use crate::domain::mutability::{Filter, Mode, TagMutability};
use crate::domain::signature::{Kinds, Signatures};

const APP_NAME: &str = "ecr-retag";

/// Sends a request, in the repository's region when that is not the client's.
/// A macro: every operation's fluent builder is a different type.
macro_rules! send {
    ($ecr:expr, $repository:expr, $request:expr) => {
        match $ecr.region_override($repository) {
            Some(o) => $request.customize().config_override(o).send().await,
            None => $request.send().await,
        }
    };
}

/// The same, for a read whose one telling error is RepositoryNotFoundException: anything else is a fault.
macro_rules! send_read {
    ($ecr:expr, $repository:expr, $request:expr) => {
        send!($ecr, $repository, $request).map_err(|e| match e.as_service_error() {
            Some(s) if s.is_repository_not_found_exception() => ReadError::RepositoryNotFound,
            _ => ReadError::Fault(fault(&e)),
        })
    };
}

/// The same, for a read with one more error that is an answer (`$absent`, e.g. the image is
/// gone): `Ok(None)` then, `Ok(Some(output))` otherwise.
macro_rules! send_read_or_absent {
    ($ecr:expr, $repository:expr, $request:expr, $absent:ident) => {
        match send!($ecr, $repository, $request) {
            Ok(output) => Ok(Some(output)),
            Err(e) => match e.as_service_error() {
                Some(s) if s.$absent() => Ok(None),
                Some(s) if s.is_repository_not_found_exception() => Err(ReadError::RepositoryNotFound),
                _ => Err(ReadError::Fault(fault(&e))),
            },
        }
    };
}

mod blobs;
mod images;
mod setup;

/// What a command line may set instead of the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub region: Option<String>,
    /// A profile of the shared config and credentials files (`~/.aws/config`).
    pub profile: Option<String>,
}

/// aws-sdk-ecr behind the [`Registry`] port.
#[derive(Debug, Clone)]
pub struct Ecr {
    client: Client,
    /// The configuration it was made from, for the doctor's one call to another service
    /// (Inspector); `None` when made from a bare client.
    sdk: Option<aws_config::SdkConfig>,
    /// The registry API (`/v2/…`), for blob mounts; built on first use.
    registry_api: std::sync::Arc<blobs::RegistryApi>,
}

impl Ecr {
    /// Builds the client from the Lambda environment (credentials, region,
    /// `AWS_ENDPOINT_URL` for local emulators), once per execution environment.
    pub async fn from_env() -> Self {
        Self::from_env_with(Overrides::default()).await
    }

    /// The same, with a region or a shared-config profile named on a command line.
    pub async fn from_env_with(overrides: Overrides) -> Self {
        Self::from_conf(&sdk_config(overrides).await)
    }

    /// From an SDK configuration already loaded (shared with the queue's client).
    pub fn from_conf(sdk: &aws_config::SdkConfig) -> Self {
        let ecr = Self { sdk: Some(sdk.clone()), ..Self::new(Client::new(sdk)) };
        // AWS_ENDPOINT_URL (a local emulator) serves the registry API too.
        match sdk.endpoint_url() {
            Some(url) => ecr.with_registry_endpoint(url),
            None => ecr,
        }
    }

    /// The registry API at `url` rather than the registry's own address (GetAuthorizationToken's
    /// proxyEndpoint): a local emulator's.
    pub fn with_registry_endpoint(self, url: &str) -> Self {
        Self { registry_api: std::sync::Arc::new(blobs::RegistryApi::at(Some(url.to_owned()))), ..self }
    }

    /// Wraps any client (the tests' too) with the one retry rule ecr-retag adds.
    pub fn new(client: Client) -> Self {
        let config = client.config().to_builder().retry_classifier(TagLimitIsFinal).build();
        Self { client: Client::from_conf(config), sdk: None, registry_api: std::sync::Arc::new(blobs::RegistryApi::at(None)) }
    }

    /// PutImage of the manifest's exact bytes under `tag` (`None`: by digest only), with the given config override.
    async fn put_image(&self, target: &Target<'_>, tag: Option<&Tag>, config: Option<aws_sdk_ecr::config::Builder>) -> Result<(), PutError> {
        let Target { repository, image, media_type } = *target;
        let request = self
            .client
            .put_image()
            .repository_name(repository.name.as_str())
            .set_registry_id(registry_id(repository))
            .image_manifest(&image.manifest)
            .image_manifest_media_type(media_type)
            // ECR checks the bytes against this digest, so a changed manifest can never land.
            .image_digest(image.digest.as_str())
            .set_image_tag(tag.map(ToString::to_string));
        let sent = match config {
            Some(o) => request.customize().config_override(o).send().await,
            None => request.send().await,
        };
        match sent {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.as_service_error() {
                Some(PutImageError::ImageAlreadyExistsException(_)) => PutError::AlreadyExists,
                Some(PutImageError::ImageTagAlreadyExistsException(_)) => PutError::TagImmutable,
                Some(PutImageError::RepositoryNotFoundException(_)) => PutError::RepositoryNotFound,
                Some(PutImageError::LimitExceededException(l)) => {
                    PutError::LimitExceeded { message: l.message().unwrap_or("(no message)").to_owned() }
                }
                _ => PutError::Fault(fault(&e)),
            }),
        }
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
            .set_registry_id(registry_id(repository))
            .set_image_ids(Some(ids))
            // All four types: ECR then returns the stored bytes and never converts.
            .set_accepted_media_types(Some(MANIFEST_MEDIA_TYPES.iter().map(|s| s.to_string()).collect()));
        let output = send_read!(self, repository, request)?;

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
            let archived = matches!(code, Some(ImageFailureCode::ImageInaccessible));
            let fault = || {
                let kind = match code {
                    Some(ImageFailureCode::UpstreamTooManyRequests) => FaultKind::Throttled,
                    Some(ImageFailureCode::UpstreamUnavailable) => FaultKind::Server,
                    _ => FaultKind::Permanent,
                };
                Fault::new(kind, code.map_or("Unknown", |c| c.as_str()), failure.failure_reason().unwrap_or_default())
            };
            let tag = id.and_then(|i| i.image_tag());
            let is_image = match image {
                Lookup::Digest(d) => id.and_then(|i| i.image_digest()) == Some(d.as_str()) && tag.is_none(),
                Lookup::Tag(t) => tag == Some(t.as_str()),
            };
            if is_image && archived {
                snapshot.archived = true;
            } else if is_image && !not_found && snapshot.image.is_none() {
                return Err(ReadError::Fault(fault()));
            }
            if let Some(t) = tag.and_then(|t| tags.iter().find(|w| w.as_str() == t)) {
                let state = match (not_found, archived) {
                    (true, _) => TagState::Absent,
                    (_, true) => TagState::Archived,
                    _ => TagState::Unreadable(fault()),
                };
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

    async fn put(&self, target: &Target<'_>, tag: &Tag, attempts: Attempts) -> Result<(), PutError> {
        let overrides = match attempts {
            Attempts::Retried => self.region_override(target.repository),
            Attempts::Once => Some(single_attempt(self.region_override(target.repository).unwrap_or_default())),
        };
        self.put_image(target, Some(tag), overrides).await
    }

    async fn tags_of(&self, repository: &Repository, digest: &Digest) -> Result<Vec<Tag>, ReadError> {
        // Tags this function could not have written (not valid references) are left out.
        Ok(self.describe_one(repository, digest).await?.map(|listed| listed.tags).unwrap_or_default())
    }

    async fn remove(&self, repository: &Repository, tag: &Tag) -> Result<(), RemoveError> {
        let request = self
            .client
            .batch_delete_image()
            .repository_name(repository.name.as_str())
            .set_registry_id(registry_id(repository))
            .image_ids(ImageIdentifier::builder().image_tag(tag.as_str()).build());
        let output = send!(self, repository, request).map_err(|e| match e.as_service_error() {
            Some(s) if s.is_repository_not_found_exception() => RemoveError::RepositoryNotFound,
            _ => RemoveError::Fault(fault(&e)),
        })?;
        // Per-image problems come back as failures, not as an error.
        match output.failures().first() {
            None => Ok(()),
            Some(f) if matches!(f.failure_code(), Some(ImageFailureCode::ImageNotFound)) => Err(RemoveError::NotFound),
            Some(f) => Err(RemoveError::Fault(Fault::new(
                FaultKind::Permanent,
                f.failure_code().map_or("Unknown", |c| c.as_str()),
                f.failure_reason().unwrap_or_default(),
            ))),
        }
    }

    async fn restore(&self, repository: &Repository, digest: &Digest) -> Result<(), ReadError> {
        let request = self
            .client
            .update_image_storage_class()
            .repository_name(repository.name.as_str())
            .set_registry_id(registry_id(repository))
            .image_id(ImageIdentifier::builder().image_digest(digest.as_str()).build())
            .target_storage_class(TargetStorageClass::Standard);
        send_read!(self, repository, request).map(|_| ())
    }

    async fn tag_mutability(&self, repository: &Repository) -> Result<TagMutability, ReadError> {
        let request = self.client.describe_repositories().set_registry_id(registry_id(repository)).repository_names(repository.name.as_str());
        let output = send_read!(self, repository, request)?;
        let found = output.repositories().first().ok_or(ReadError::RepositoryNotFound)?;
        Ok(TagMutability {
            mode: found.image_tag_mutability().and_then(|m| Mode::parse(m.as_str())).unwrap_or(Mode::Mutable),
            filters: found.image_tag_mutability_exclusion_filters().iter().filter_map(|f| Filter::parse(f.filter()).ok()).collect(),
        })
    }

    async fn repository_tags(&self, repository: &Repository) -> Result<BTreeMap<String, String>, ReadError> {
        let arn = match self.repository_arn(repository) {
            Some(arn) => arn,
            None => {
                let request = self
                    .client
                    .describe_repositories()
                    .repository_names(repository.name.as_str())
                    .set_registry_id(registry_id(repository));
                let output = send_read!(self, repository, request)?;
                output
                    .repositories()
                    .iter()
                    .find_map(|r| r.repository_arn())
                    .map(str::to_owned)
                    .ok_or(ReadError::RepositoryNotFound)?
            }
        };
        let request = self.client.list_tags_for_resource().resource_arn(arn);
        let output = send_read!(self, repository, request)?;
        Ok(output.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect())
    }

    async fn signatures(&self, repository: &Repository, digest: &Digest, kinds: Kinds) -> Result<Signatures, ReadError> {
        self.find_signatures(repository, digest, kinds).await
    }

    async fn describe(&self, repository: &Repository, digest: &Digest) -> Result<Option<Listed>, ReadError> {
        self.describe_one(repository, digest).await
    }
}

/// DescribeRepositories and DescribeImages answer at most 1,000 items a page.
const PAGE_SIZE: i32 = 1000;

impl Catalog for Ecr {
    async fn repositories(&self, registry_id: Option<&RegistryId>, page: Option<&str>) -> Result<Page<RepositoryName>, ReadError> {
        let output = self
            .client
            .describe_repositories()
            .set_registry_id(registry_id.map(ToString::to_string))
            .max_results(PAGE_SIZE)
            .set_next_token(page.map(str::to_owned))
            .send()
            .await
            .map_err(|e| ReadError::Fault(fault(&e)))?;
        Ok(Page {
            items: output.repositories().iter().filter_map(|r| RepositoryName::parse(r.repository_name()?).ok()).collect(),
            next: output.next_token().map(str::to_owned),
        })
    }

    async fn images(&self, repository: &Repository, page: Option<&str>) -> Result<Page<Listed>, ReadError> {
        let request = self
            .client
            .describe_images()
            .repository_name(repository.name.as_str())
            .set_registry_id(registry_id(repository))
            // Untagged images (multi-arch children, superseded pushes) derive nothing.
            // Archived images too (ECR lists ACTIVE ones by default): their tags are held, and the sweep counts them.
            .filter(DescribeImagesFilter::builder().tag_status(TagStatus::Tagged).image_status(ImageStatusFilter::Any).build())
            .max_results(PAGE_SIZE)
            .set_next_token(page.map(str::to_owned));
        let output = send_read!(self, repository, request)?;
        let items = output.image_details().iter().filter_map(images::listed).collect();
        Ok(Page { items, next: output.next_token().map(str::to_owned) })
    }
}

impl Ecr {
    /// The repository's ARN when the account is known (every EventBridge
    /// event names it); `None` for a direct request without `registry_id`.
    fn repository_arn(&self, repository: &Repository) -> Option<String> {
        let account = repository.registry_id.as_ref()?;
        let region = repository.region.as_deref().or_else(|| self.client.config().region().map(Region::as_ref))?;
        Some(format!("arn:{}:ecr:{region}:{account}:repository/{}", partition(region), repository.name))
    }
}

/// The SDK's configuration from the environment (credentials, region, `AWS_ENDPOINT_URL` for
/// local emulators), with ecr-retag's timeouts, retries and app name, loaded once per
/// execution environment for every client.
pub async fn sdk_config(overrides: Overrides) -> aws_config::SdkConfig {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    use aws_smithy_http_client::ConnectorBuilder;
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeout_config()).retry_config(retry_config());
    if let Some(region) = overrides.region {
        loader = loader.region(Region::new(region));
    }
    if let Some(profile) = overrides.profile {
        loader = loader.profile_name(profile);
    }
    // `app/ecr-retag` in the User-Agent: CloudTrail (and the test emulator) can tell its calls apart.
    if let Ok(name) = AppName::new(APP_NAME) {
        loader = loader.app_name(name);
    }
    warm_up();
    // The SDK's default HTTPS client (hyper 1, rustls with AWS-LC, the environment's proxy), built
    // once and given to every client made from this configuration: ECR's, and SQS's for fan-outs,
    // share one connection pool and one TLS configuration (its roots read once). Left unset, each
    // service client builds its own.
    let http = aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    loader.http_client(http).load().await
}

/// One-off work of the first TLS handshake, done during INIT, which Lambda runs on a full CPU:
/// AWS-LC seeds its random generator on first use. The build leaves out its CPU-jitter source
/// (`.cargo/config.toml`; it cost about 30 ms of CPU, some 300 ms of the first event at a 128 MB
/// function's CPU share), so the seeding is one getrandom call; it stays here, out of the first
/// event, all the same (docs/performance.md, "Start-up").
fn warm_up() {
    // Nothing depends on these bytes; a failure here would fail the first handshake just the same.
    let _ = aws_lc_rs::rand::fill(&mut [0u8; 16]);
}

/// The ARN partition of a region.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

fn registry_id(repository: &Repository) -> Option<String> {
    repository.registry_id.as_ref().map(ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_client_made_from_the_configuration_gets_its_one_http_client() {
        let sdk = sdk_config(Overrides { region: Some("eu-west-1".into()), ..Overrides::default() }).await;
        // Given to ECR's client and to SQS's alike; without it each would build its own.
        assert!(sdk.http_client().is_some());
    }
}
