//! Blobs between the repositories of one registry ([`Blobs`]): the account setting, the
//! repositories' encryption and which blobs a repository lacks through the ECR API, and the mount
//! itself through the registry API (`POST /v2/<target>/blobs/uploads/?mount=…&from=…`, HTTP Basic
//! with GetAuthorizationToken's token), which the ECR API has no call for.
//!
//! *Assumed, unverified* (see ecr-2026.md): the mount needs no IAM action beyond those of the
//! token (ecr:GetAuthorizationToken) and of reading the source (ecr:BatchGetImage,
//! ecr:GetDownloadUrlForLayer) and writing the target (the upload calls).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_sdk_ecr::types::{ArtifactStatusFilter, LayerAvailability, ListImageReferrersFilter};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use super::{fault, registry_id, Ecr};
use crate::domain::names::Digest;
use crate::fault::{Fault, FaultKind};
use crate::registry::{Annotated, Blobs, Image, Mount, PutError, ReadError, Repository, Target, OPERATION_TIMEOUT};

/// BatchCheckLayerAvailability takes at most this many digests a call.
const CHECK_BATCH: usize = 100;

/// ECR's smallest layer part (all but the last): a streamed copy sends parts of at least this.
const MIN_PART: usize = 5 * 1024 * 1024;

/// A token is renewed this long before ECR says it expires (it lasts 12 hours).
const TOKEN_MARGIN: Duration = Duration::from_secs(600);

/// HTTP/1.1 over rustls with the system's roots, as the SDK's own client.
type Http = HttpClient<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The registry API's client and the ECR token it sends.
#[derive(Debug)]
pub(super) struct RegistryApi {
    /// Where `/v2/…` is served: `None` for the registry's own address (the token's proxyEndpoint).
    endpoint: Option<String>,
    client: OnceLock<Result<Http, String>>,
    token: Mutex<Option<Token>>,
}

#[derive(Debug, Clone)]
struct Token {
    /// base64 of `AWS:<password>`, as GetAuthorizationToken gives it.
    basic: String,
    endpoint: String,
    renew_at: SystemTime,
}

impl RegistryApi {
    pub(super) fn at(endpoint: Option<String>) -> RegistryApi {
        RegistryApi { endpoint, client: OnceLock::new(), token: Mutex::new(None) }
    }

    fn client(&self) -> Result<&Http, Fault> {
        let built = self.client.get_or_init(|| {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
                .map_err(|e| format!("no TLS roots for the registry API: {e}"))?
                .https_or_http()
                .enable_http1()
                .build();
            Ok(HttpClient::builder(TokioExecutor::new()).build(connector))
        });
        built.as_ref().map_err(|e| Fault::new(FaultKind::Permanent, "TlsSetup", e.clone()))
    }
}

impl Ecr {
    /// The cached token, or a new one (GetAuthorizationToken) when it is near its end or `renew`.
    async fn token(&self, renew: bool) -> Result<Token, Fault> {
        let api = &self.registry_api;
        if let Ok(cached) = api.token.lock() {
            if let Some(token) = cached.as_ref().filter(|t| !renew && SystemTime::now() < t.renew_at) {
                return Ok(token.clone());
            }
        }
        let output = self.client.get_authorization_token().send().await.map_err(|e| fault(&e))?;
        let data = output
            .authorization_data()
            .first()
            .ok_or_else(|| Fault::new(FaultKind::Server, "NoAuthorizationData", "GetAuthorizationToken answered no token"))?;
        let basic = data.authorization_token().unwrap_or_default().to_owned();
        let endpoint = match (&api.endpoint, data.proxy_endpoint()) {
            (Some(local), _) => local.clone(),
            (None, Some(proxy)) => proxy.to_owned(),
            (None, None) => return Err(Fault::new(FaultKind::Server, "NoProxyEndpoint", "GetAuthorizationToken named no registry address")),
        };
        let expires = data.expires_at().and_then(|t| SystemTime::try_from(*t).ok()).unwrap_or_else(|| SystemTime::now() + Duration::from_secs(3600));
        let token = Token { basic, endpoint: endpoint.trim_end_matches('/').to_owned(), renew_at: expires.checked_sub(TOKEN_MARGIN).unwrap_or(expires) };
        if let Ok(mut cached) = api.token.lock() {
            *cached = Some(token.clone());
        }
        Ok(token)
    }

    /// The mount's status, and for a 202 the upload session it opened (its Location).
    async fn post_mount(&self, token: &Token, target: &Repository, source: &Repository, digest: &Digest) -> Result<(u16, Option<String>), Fault> {
        let uri = format!("{}/v2/{}/blobs/uploads/?mount={digest}&from={}", token.endpoint, target.name, source.name);
        let what = format!("the mount of {digest} into {}", target.name);
        let (status, headers) = self.registry_call(token, http::Method::POST, &uri, &what).await?;
        let location = headers.get(http::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_owned);
        Ok((status.as_u16(), location))
    }

    /// Closes the upload session a declined mount opened, so that none is left behind in the
    /// registry. Best effort: a registry expires abandoned sessions itself, so a failure is logged.
    async fn cancel_upload(&self, token: &Token, target: &Repository, location: &str) {
        // The Location may be absolute or relative to the registry.
        let uri = if location.starts_with('/') { format!("{}{location}", token.endpoint) } else { location.to_owned() };
        let what = format!("cancelling the upload session {location} in {}", target.name);
        match self.registry_call(token, http::Method::DELETE, &uri, &what).await {
            Ok((status, _)) if status.is_success() || status == http::StatusCode::NOT_FOUND => {}
            Ok((status, _)) => tracing::warn!(status = status.as_u16(), "{what}: not accepted"),
            Err(fault) => tracing::warn!(%fault, "{what}"),
        }
    }

    /// One registry API request with the ECR token and ecr-retag's User-Agent, within the operation timeout.
    /// The answer's status and headers (these calls' bodies say nothing more).
    async fn registry_call(&self, token: &Token, method: http::Method, uri: &str, what: &str) -> Result<(http::StatusCode, http::HeaderMap), Fault> {
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::AUTHORIZATION, format!("Basic {}", token.basic))
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(|e| Fault::new(FaultKind::Permanent, "BadRequest", e.to_string()))?;
        match tokio::time::timeout(OPERATION_TIMEOUT, self.registry_api.client()?.request(request)).await {
            Err(_) => Err(Fault::new(FaultKind::Timeout, "Timeout", format!("{what} was not answered"))),
            Ok(Err(e)) => Err(Fault::new(FaultKind::Transport, "RegistryApi", format!("{what}: {e}"))),
            Ok(Ok(response)) => Ok((response.status(), response.headers().clone())),
        }
    }
}

/// What registry API requests (mounts, downloads) say they are, as the SDK's requests carry `app/ecr-retag`.
const USER_AGENT: &str = concat!("ecr-retag/", env!("CARGO_PKG_VERSION"));

impl Ecr {
    /// The blob's bytes from a download URL (a presigned S3 URL: no credentials), as they arrive.
    async fn download(&self, url: &str, digest: &Digest) -> Result<BoxBody<Bytes, String>, Fault> {
        let request = http::Request::get(url)
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(|e| Fault::new(FaultKind::Permanent, "BadRequest", e.to_string()))?;
        let response = match tokio::time::timeout(OPERATION_TIMEOUT, self.registry_api.client()?.request(request)).await {
            Err(_) => return Err(Fault::new(FaultKind::Timeout, "Timeout", format!("the download of {digest} was not answered"))),
            Ok(Err(e)) => return Err(Fault::new(FaultKind::Transport, "Download", format!("the download of {digest}: {e}"))),
            Ok(Ok(response)) => response,
        };
        match response.status().as_u16() {
            200 => Ok(response.into_body().map_err(|e| e.to_string()).boxed()),
            s if s >= 500 => Err(Fault::new(FaultKind::Server, format!("HTTP {s}"), format!("the download of {digest}"))),
            // An expired URL (403) is fixed by asking for a new one: the next delivery does.
            s => Err(Fault::new(FaultKind::Transport, format!("HTTP {s}"), format!("the download of {digest} was refused"))),
        }
    }

    /// Every page of ListImageReferrers: the image's active referrers (of one artifact type, or
    /// any), each with its annotations. An archived referrer cannot be read, so it is left out.
    async fn list_referrers(&self, repository: &Repository, digest: &Digest, artifact_type: Option<&str>) -> Result<Vec<Annotated>, ReadError> {
        let subject = super::images::subject(digest)?;
        let filter = ListImageReferrersFilter::builder().set_artifact_types(artifact_type.map(|t| vec![t.to_owned()])).artifact_status(ArtifactStatusFilter::Active).build();
        let mut found = Vec::new();
        let mut next = None;
        loop {
            let request = self
                .client
                .list_image_referrers()
                .repository_name(repository.name.as_str())
                .set_registry_id(registry_id(repository))
                .subject_id(subject.clone())
                .filter(filter.clone())
                .max_results(50)
                .set_next_token(next);
            let output = send_read!(self, repository, request)?;
            found.extend(output.referrers().iter().filter_map(|r| {
                let annotations = r.annotations().map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
                Some(Annotated { digest: Digest::parse(r.digest()).ok()?, annotations })
            }));
            next = output.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(found);
            }
        }
    }

    /// A blob's bytes as they arrive: GetDownloadUrlForLayer, then the URL it names.
    async fn open_blob(&self, source: &Repository, digest: &Digest) -> Result<BoxBody<Bytes, String>, Fault> {
        let request = self
            .client
            .get_download_url_for_layer()
            .repository_name(source.name.as_str())
            .set_registry_id(registry_id(source))
            .layer_digest(digest.as_str());
        let output = send!(self, source, request).map_err(|e| fault(&e))?;
        let url = output
            .download_url()
            .ok_or_else(|| Fault::new(FaultKind::Server, "NoDownloadUrl", format!("GetDownloadUrlForLayer named no URL for {digest}")))?;
        self.download(url, digest).await
    }

    /// InitiateLayerUpload: the upload's id and the part size to send.
    async fn start_upload(&self, target: &Repository) -> Result<(String, usize), Fault> {
        let request = self.client.initiate_layer_upload().repository_name(target.name.as_str()).set_registry_id(registry_id(target));
        let started = send!(self, target, request).map_err(|e| fault(&e))?;
        let upload = started
            .upload_id()
            .ok_or_else(|| Fault::new(FaultKind::Server, "NoUploadId", "InitiateLayerUpload named no upload"))?
            .to_owned();
        Ok((upload, started.part_size().and_then(|p| usize::try_from(p).ok()).unwrap_or(0).max(MIN_PART)))
    }

    /// CompleteLayerUpload of `digest`.
    async fn complete_upload(&self, target: &Repository, upload: &str, digest: &Digest) -> Result<(), Fault> {
        let request = self
            .client
            .complete_layer_upload()
            .repository_name(target.name.as_str())
            .set_registry_id(registry_id(target))
            .upload_id(upload)
            .layer_digests(digest.as_str());
        match send!(self, target, request) {
            Ok(_) => Ok(()),
            // Another copy or push of the same blob got there first.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_layer_already_exists_exception()) => Ok(()),
            Err(e) => Err(fault(&e)),
        }
    }

    /// UploadLayerPart of `bytes` from offset `sent`; the offset after it.
    async fn upload_part(&self, target: &Repository, upload: &str, sent: u64, bytes: Vec<u8>) -> Result<u64, Fault> {
        let length = bytes.len() as u64;
        let overflow = || Fault::new(FaultKind::Permanent, "TooLarge", "a blob past 2^63 bytes");
        let first = i64::try_from(sent).map_err(|_| overflow())?;
        let last = i64::try_from(sent + length - 1).map_err(|_| overflow())?;
        let request = self
            .client
            .upload_layer_part()
            .repository_name(target.name.as_str())
            .set_registry_id(registry_id(target))
            .upload_id(upload)
            .part_first_byte(first)
            .part_last_byte(last)
            .layer_part_blob(aws_sdk_ecr::primitives::Blob::new(bytes));
        send!(self, target, request).map_err(|e| fault(&e))?;
        Ok(sent + length)
    }
}

impl Blobs for Ecr {
    async fn mounting_enabled(&self) -> Result<bool, ReadError> {
        let output = self.client.get_account_setting().name("BLOB_MOUNTING").send().await.map_err(|e| ReadError::Fault(fault(&e)))?;
        Ok(output.value() == Some("ENABLED"))
    }

    async fn encryption(&self, repository: &Repository) -> Result<(String, Option<String>), ReadError> {
        let request = self.client.describe_repositories().set_registry_id(registry_id(repository)).repository_names(repository.name.as_str());
        let output = send_read!(self, repository, request)?;
        let found = output.repositories().first().ok_or(ReadError::RepositoryNotFound)?;
        let encryption = found.encryption_configuration();
        Ok((
            encryption.map_or_else(|| "AES256".to_owned(), |e| e.encryption_type().as_str().to_owned()),
            encryption.and_then(|e| e.kms_key()).map(str::to_owned),
        ))
    }

    async fn missing(&self, repository: &Repository, digests: &[Digest]) -> Result<Vec<Digest>, ReadError> {
        let mut missing = Vec::new();
        for chunk in digests.chunks(CHECK_BATCH) {
            let request = self
                .client
                .batch_check_layer_availability()
                .repository_name(repository.name.as_str())
                .set_registry_id(registry_id(repository))
                .set_layer_digests(Some(chunk.iter().map(ToString::to_string).collect()));
            let output = send_read!(self, repository, request)?;
            let available: Vec<&str> = output
                .layers()
                .iter()
                .filter(|l| l.layer_availability() == Some(&LayerAvailability::Available))
                .filter_map(|l| l.layer_digest())
                .collect();
            missing.extend(chunk.iter().filter(|d| !available.contains(&d.as_str())).cloned());
        }
        Ok(missing)
    }

    async fn mount(&self, target: &Repository, source: &Repository, digest: &Digest) -> Result<Mount, Fault> {
        let mut token = self.token(false).await?;
        let (mut status, mut location) = self.post_mount(&token, target, source, digest).await?;
        if status == 401 {
            // A token ECR no longer takes: one more try with a new one.
            token = self.token(true).await?;
            (status, location) = self.post_mount(&token, target, source, digest).await?;
        }
        match status {
            201 => Ok(Mount::Mounted),
            202 => {
                // Not mounted: the registry opened an upload session instead, which nothing here uses.
                if let Some(location) = location {
                    self.cancel_upload(&token, target, &location).await;
                }
                Ok(Mount::NotMounted)
            }
            404 => Err(Fault::new(FaultKind::Permanent, "NAME_UNKNOWN", format!("no repository {} to mount {digest} into", target.name))),
            429 => Err(Fault::new(FaultKind::Throttled, "HTTP 429", format!("the mount of {digest} into {}", target.name))),
            s if s >= 500 => Err(Fault::new(FaultKind::Server, format!("HTTP {s}"), format!("the mount of {digest} into {}", target.name))),
            s => Err(Fault::new(FaultKind::Permanent, format!("HTTP {s}"), format!("the registry API refused the mount of {digest} into {}", target.name))),
        }
    }

    async fn copy_blob(&self, target: &Repository, source: &Repository, digest: &Digest, max_bytes: u64) -> Result<u64, Fault> {
        let mut body = self.open_blob(source, digest).await?;
        let (upload, part) = self.start_upload(target).await?;
        // One part in memory at a time, whatever the blob's size.
        let mut buffer: Vec<u8> = Vec::with_capacity(part);
        let mut sent = 0u64;
        loop {
            let frame = match tokio::time::timeout(OPERATION_TIMEOUT, body.frame()).await {
                Err(_) => return Err(Fault::new(FaultKind::Timeout, "Timeout", format!("the download of {digest} stalled"))),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(Fault::new(FaultKind::Transport, "Download", format!("the download of {digest}: {e}"))),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Some(data) = frame.data_ref() {
                buffer.extend_from_slice(data);
            }
            if sent + buffer.len() as u64 > max_bytes {
                return Err(Fault::new(FaultKind::Permanent, "TooLarge", format!("blob {digest} is larger than the {max_bytes} bytes a copy may stream")));
            }
            while buffer.len() >= part {
                let rest = buffer.split_off(part);
                sent = self.upload_part(target, &upload, sent, std::mem::replace(&mut buffer, rest)).await?;
            }
        }
        if !buffer.is_empty() {
            sent = self.upload_part(target, &upload, sent, buffer).await?;
        }
        self.complete_upload(target, &upload, digest).await?;
        Ok(sent)
    }

    async fn upload_blob(&self, repository: &Repository, digest: &Digest, bytes: &[u8]) -> Result<(), Fault> {
        let (upload, _) = self.start_upload(repository).await?;
        // One part, which is also the last: no minimum size applies to it.
        self.upload_part(repository, &upload, 0, bytes.to_vec()).await?;
        self.complete_upload(repository, &upload, digest).await
    }

    async fn blob_bytes(&self, repository: &Repository, digest: &Digest, max_bytes: u64) -> Result<Vec<u8>, Fault> {
        let body = self.open_blob(repository, digest).await?;
        let limited = http_body_util::Limited::new(body, usize::try_from(max_bytes).unwrap_or(usize::MAX));
        match tokio::time::timeout(OPERATION_TIMEOUT, limited.collect()).await {
            Err(_) => Err(Fault::new(FaultKind::Timeout, "Timeout", format!("the download of {digest} stalled"))),
            Ok(Err(e)) => Err(Fault::new(FaultKind::Permanent, "Download", format!("the download of {digest}: {e} (at most {max_bytes} bytes)"))),
            Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        }
    }

    async fn put_manifest(&self, repository: &Repository, image: &Image, media_type: &str) -> Result<(), PutError> {
        self.put_image(&Target { repository, image, media_type }, None, self.region_override(repository)).await
    }

    async fn referrers(&self, repository: &Repository, digest: &Digest) -> Result<Vec<Digest>, ReadError> {
        Ok(self.list_referrers(repository, digest, None).await?.into_iter().map(|r| r.digest).collect())
    }

    async fn referrers_of_type(&self, repository: &Repository, digest: &Digest, artifact_type: &str) -> Result<Vec<Annotated>, ReadError> {
        self.list_referrers(repository, digest, Some(artifact_type)).await
    }
}
