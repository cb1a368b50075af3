//! Test support: the strict local ECR (tests/emulator/strict_ecr.py), a client
//! for it, seeding helpers and the reference manifests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use aws_sdk_ecr::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecr::types::ImageTagMutability;
use aws_sdk_ecr::Client;

pub const REGION: &str = "eu-west-1";
pub const ACCOUNT: &str = "123456789012";

/// The ECR operations the function may call: those the template's policy grants
/// (BatchDeleteImage only with RemoveSourceTags=true, UpdateImageStorageClass only with
/// RestoreArchivedImages=true, DescribeImageSigningStatus only with SignatureEvents=managed;
/// ListImageReferrers is authorised by ecr:BatchGetImage).
pub const FUNCTION_OPERATIONS: [&str; 9] = [
    "BatchGetImage",
    "PutImage",
    "DescribeImages",
    "ListTagsForResource",
    "DescribeRepositories",
    "BatchDeleteImage",
    "UpdateImageStorageClass",
    "ListImageReferrers",
    "DescribeImageSigningStatus",
];

/// One reference manifest: the exact bytes and the media type ECR records for it.
pub struct Manifest {
    pub name: &'static str,
    pub body: String,
    pub media_type: &'static str,
    /// Whether the manifest names its own `mediaType` (OCI indexes and artifacts may not).
    pub declares_media_type: bool,
}

impl Manifest {
    pub fn digest(&self) -> String {
        sha256_digest(self.body.as_bytes())
    }
}

pub fn manifest(name: &'static str) -> Manifest {
    let (media_type, declares_media_type) = match name {
        "docker-v2" => ("application/vnd.docker.distribution.manifest.v2+json", true),
        "docker-manifest-list" => ("application/vnd.docker.distribution.manifest.list.v2+json", true),
        "oci-manifest" => ("application/vnd.oci.image.manifest.v1+json", true),
        "oci-index-no-mediatype" => ("application/vnd.oci.image.index.v1+json", false),
        "helm-chart-oci-artifact" => ("application/vnd.oci.image.manifest.v1+json", false),
        // Artifacts next to an image: a cosign signature (legacy tag scheme), a Notation
        // signature (a referrer of docker-v2, with `subject`), an SPDX SBOM (a non-image config).
        "cosign-signature" | "notation-signature" | "spdx-sbom" => ("application/vnd.oci.image.manifest.v1+json", true),
        // A cosign 3 signature: a Sigstore bundle referring to docker-v2.
        "sigstore-bundle" => ("application/vnd.oci.image.manifest.v1+json", true),
        other => panic!("no fixture {other}"),
    };
    let path = root().join("tests/fixtures/manifests").join(format!("{name}.json"));
    let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Manifest { name, body, media_type, declares_media_type }
}

pub const ALL_MANIFESTS: [&str; 5] =
    ["docker-v2", "docker-manifest-list", "oci-manifest", "oci-index-no-mediatype", "helm-chart-oci-artifact"];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `sha256:` and the hex digest of `bytes`: what ECR names a manifest by.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The strict local ECR, one per test binary, killed when the test binary exits.
pub struct Emulator {
    pub endpoint: String,
    port: u16,
    _child: Child,
    _stdin: ChildStdin,
}

static EMULATOR: OnceLock<Emulator> = OnceLock::new();

impl Emulator {
    pub fn shared() -> &'static Emulator {
        // The function may call these operations and nothing else, as its IAM policy says.
        EMULATOR.get_or_init(|| Emulator::start(&FUNCTION_OPERATIONS))
    }

    /// An emulator of its own that lets ecr-retag call `operations` and nothing else.
    pub fn start(operations: &[&str]) -> Emulator {
        let python = std::env::var_os("ECR_RETAG_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join(".venv/bin/python"));
        assert!(
            python.exists(),
            "{} not found: run ./scripts/test, which installs the local ECR emulator (moto) into .venv",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(root().join("tests/emulator/strict_ecr.py"))
            .args(["--port", "0", "--exit-on-stdin-eof", "--function-ops", &operations.join(",")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the ECR emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("emulator did not print its port: {line:?}"));
        let stdin = child.stdin.take().unwrap();
        Emulator { endpoint: format!("http://127.0.0.1:{port}"), port, _child: child, _stdin: stdin }
    }

    /// An SDK client for the emulator (used for seeding and checking, not by the code under test).
    pub fn client(&self) -> Client {
        client_for(&self.endpoint)
    }

    /// ECR calls received for `repository` so far, by operation name (faulted ones included).
    pub fn calls(&self, repository: &str) -> HashMap<String, u64> {
        let body: serde_json::Value = serde_json::from_str(&self.http("GET", &format!("/_strict/calls?repository={repository}"), "")).unwrap();
        body.as_object().unwrap().iter().filter_map(|(k, v)| Some((k.clone(), v.as_u64()?))).collect()
    }

    /// PutImage calls that moved or created `repository`'s tags, by tag.
    pub fn writes(&self, repository: &str) -> HashMap<String, u64> {
        let body: serde_json::Value = serde_json::from_str(&self.http("GET", &format!("/_strict/calls?repository={repository}"), "")).unwrap();
        serde_json::from_value(body["writes"].clone()).unwrap()
    }

    /// Archived images of `repository` that a PutImage restored, by digest.
    pub fn restores(&self, repository: &str) -> serde_json::Value {
        let body: serde_json::Value = serde_json::from_str(&self.http("GET", &format!("/_strict/calls?repository={repository}"), "")).unwrap();
        body["restores"].clone()
    }

    /// Tags of `repository` removed by BatchDeleteImage, by tag.
    pub fn deletes(&self, repository: &str) -> HashMap<String, u64> {
        let body: serde_json::Value = serde_json::from_str(&self.http("GET", &format!("/_strict/calls?repository={repository}"), "")).unwrap();
        serde_json::from_value(body["deletes"].clone()).unwrap()
    }

    /// Every call the function binary made on `repository` (recognised by its User-Agent), by operation.
    pub fn function_calls_on(&self, repository: &str) -> HashMap<String, u64> {
        serde_json::from_str(&self.http("GET", &format!("/_strict/function-calls?repository={repository}"), "")).unwrap()
    }

    /// Makes the next `times` calls of `operation` on `repository` (for PutImage: of `tag`,
    /// if given) fail: "throttle", "500", "503", "reset" or "hang".
    pub fn fault(&self, operation: &str, repository: &str, tag: Option<&str>, kind: &str, times: u32) {
        let mut fault = serde_json::json!({"operation": operation, "repository": repository, "kind": kind, "times": times});
        if let Some(tag) = tag {
            fault["tag"] = tag.into();
        }
        self.http("POST", "/_strict/faults", &fault.to_string());
    }

    /// Makes the next `times` calls of `operation` on `repository` (for PutImage: of `tag`,
    /// if given) take `seconds` before the emulator carries them out: past the caller's
    /// attempt timeout, the caller has given up (and retries) while the call still lands.
    pub fn late(&self, operation: &str, repository: &str, tag: Option<&str>, seconds: f64, times: u32) {
        let mut fault = serde_json::json!({"operation": operation, "repository": repository, "kind": "late", "seconds": seconds, "times": times});
        if let Some(tag) = tag {
            fault["tag"] = tag.into();
        }
        self.http("POST", "/_strict/faults", &fault.to_string());
    }

    /// Gives `operation` on every repository whose name starts with `prefix` a shared
    /// quota of `per_second` calls, as an account's; calls over it are throttled.
    pub fn quota(&self, operation: &str, prefix: &str, per_second: u32) {
        let quota = serde_json::json!({"operation": operation, "prefix": prefix, "per_second": per_second});
        self.http("POST", "/_strict/quota", &quota.to_string());
    }

    /// Calls of `repository`'s throttled by a quota, and PutImages of a tag already on the image, by tag.
    pub fn throttled_and_redundant(&self, repository: &str) -> (HashMap<String, u64>, HashMap<String, u64>) {
        let body: serde_json::Value = serde_json::from_str(&self.http("GET", &format!("/_strict/calls?repository={repository}"), "")).unwrap();
        (serde_json::from_value(body["throttled"].clone()).unwrap(), serde_json::from_value(body["redundant"].clone()).unwrap())
    }

    /// Lowers ECR's 1,000-tags-per-image limit for `repository`'s images to `tags_per_image`.
    pub fn limit_tags(&self, repository: &str, tags_per_image: u32) {
        let limits = serde_json::json!({"repository": repository, "tags_per_image": tags_per_image});
        self.http("POST", "/_strict/limits", &limits.to_string());
    }

    /// What DescribeImages says of the image's scan from now on: `status` ("ACTIVE" for an
    /// enhanced scan, "COMPLETE" for a basic one, "PENDING", ...) and, if given, its counts.
    pub fn scan_result(&self, repository: &str, digest: &str, status: &str, counts: Option<serde_json::Value>) {
        let mut scan = serde_json::json!({"repository": repository, "digest": digest, "status": status});
        if let Some(counts) = counts {
            scan["counts"] = counts;
        }
        self.http("POST", "/_strict/scan", &scan.to_string());
    }

    /// ECR managed signing's status of the image ("COMPLETE", "IN_PROGRESS", "FAILED").
    pub fn managed_signing(&self, repository: &str, digest: &str, status: &str) {
        let signing = serde_json::json!({"repository": repository, "digest": digest, "status": status});
        self.http("POST", "/_strict/signing", &signing.to_string());
    }

    /// Makes DescribeImages answer at most `size` of `repository`'s images a page.
    pub fn page_images(&self, repository: &str, size: u32) {
        self.http("POST", "/_strict/pages", &serde_json::json!({"repository": repository, "size": size}).to_string());
    }

    /// Makes DescribeRepositories answer at most `size` repositories a page.
    pub fn page_repositories(&self, size: u32) {
        self.http("POST", "/_strict/pages", &serde_json::json!({"size": size}).to_string());
    }

    /// The ECR calls on `repository` since `before` (an earlier [`Emulator::calls`]), by operation.
    pub fn calls_since(&self, repository: &str, before: &HashMap<String, u64>) -> Vec<(String, u64)> {
        let mut diff: Vec<(String, u64)> = self
            .calls(repository)
            .into_iter()
            .map(|(op, n)| (op.clone(), n - before.get(&op).copied().unwrap_or(0)))
            .filter(|(_, since)| *since > 0)
            .collect();
        diff.sort();
        diff
    }

    /// One call of the registry API (`/v2/…`), with `Authorization: Basic <token>` when given:
    /// the status and the response's header lines.
    pub fn registry(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let auth = token.map(|t| format!("Authorization: Basic {t}\r\n")).unwrap_or_default();
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{auth}Content-Length: {}\r\n\r\n", body.len()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let head = response.split_once("\r\n\r\n").map_or(response.as_str(), |(h, _)| h).to_owned();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, head)
    }

    /// GET of a URL on the emulator (a download URL it answered): the status and the body's bytes.
    pub fn fetch(&self, url: &str) -> (u16, Vec<u8>) {
        let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap_or_else(|| url.to_owned());
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |i| i + 4);
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, response[split..].to_vec())
    }

    fn http(&self, method: &str, path: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
    }
}

/// A client that the emulator takes for ecr-retag's own (its User-Agent names it), so that its
/// calls get the checks ECR makes of them rather than a seeding push's leniency.
pub fn function_client(endpoint: &str) -> Client {
    let config = client_for(endpoint).config().to_builder().app_name(aws_sdk_ecr::config::AppName::new("ecr-retag").unwrap()).build();
    Client::from_conf(config)
}

/// A client with the function's own retry and timeout settings.
pub fn client_for(endpoint: &str) -> Client {
    client_in(endpoint, REGION)
}

/// The same in another region.
pub fn client_in(endpoint: &str, region: &str) -> Client {
    let config = aws_sdk_ecr::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .retry_config(ecr_retag::registry::ecr::retry_config())
        .timeout_config(ecr_retag::registry::ecr::timeout_config())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// A repository with a unique name, so tests sharing the emulator never meet.
pub async fn repository(client: &Client, prefix: &str, immutable: bool) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    client
        .create_repository()
        .repository_name(&name)
        .image_tag_mutability(if immutable { ImageTagMutability::Immutable } else { ImageTagMutability::Mutable })
        .send()
        .await
        .unwrap();
    name
}

/// A fresh repository with this tag mutability and these exclusion filters (`*_WITH_EXCLUSION`).
pub async fn repository_with(client: &Client, prefix: &str, mode: ImageTagMutability, filters: &[&str]) -> Result<String, String> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("{prefix}-x{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let filters: Vec<_> = filters
        .iter()
        .map(|f| {
            aws_sdk_ecr::types::ImageTagMutabilityExclusionFilter::builder()
                .filter_type(aws_sdk_ecr::types::ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter(*f)
                .build()
                .unwrap()
        })
        .collect();
    let request = client.create_repository().repository_name(&name).image_tag_mutability(mode);
    let request = if filters.is_empty() { request } else { request.set_image_tag_mutability_exclusion_filters(Some(filters)) };
    request.send().await.map(|_| name).map_err(|e| aws_sdk_ecr::error::DisplayErrorContext(e).to_string())
}

/// Pushes a manifest under a tag (as `docker push` would, via PutImage) and returns its digest.
pub async fn push(client: &Client, repository: &str, manifest: &Manifest, tag: Option<&str>) -> String {
    let out = client
        .put_image()
        .repository_name(repository)
        .image_manifest(&manifest.body)
        .image_manifest_media_type(manifest.media_type)
        .set_image_tag(tag.map(str::to_owned))
        .send()
        .await
        .unwrap();
    out.image().and_then(|i| i.image_id()).and_then(|i| i.image_digest()).unwrap().to_owned()
}

/// Where every tag of `repository` points now, and the stored manifest bytes by digest.
pub async fn state(client: &Client, repository: &str) -> (HashMap<String, String>, HashMap<String, String>) {
    let mut tags = HashMap::new();
    let mut digests = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let described = client.describe_images().repository_name(repository).set_next_token(page).send().await.unwrap();
        for image in described.image_details() {
            let digest = image.image_digest().unwrap().to_owned();
            for tag in image.image_tags() {
                tags.insert(tag.clone(), digest.clone());
            }
            digests.push(digest);
        }
        page = described.next_token().map(str::to_owned);
        if page.is_none() {
            break;
        }
    }
    let mut manifests = HashMap::new();
    for digest in digests {
        let got = client
            .batch_get_image()
            .repository_name(repository)
            .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&digest).build())
            .set_accepted_media_types(Some(
                ecr_retag::registry::MANIFEST_MEDIA_TYPES.iter().map(|s| s.to_string()).collect(),
            ))
            .send()
            .await
            .unwrap();
        let body = got.images()[0].image_manifest().unwrap().to_owned();
        manifests.insert(digest, body);
    }
    (tags, manifests)
}

/// An EventBridge "ECR Image Action" PUSH event, as ECR sends it.
pub fn push_event(repository: &str, digest: &str, tag: &str, media_type: Option<&str>) -> serde_json::Value {
    let mut detail = serde_json::json!({
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "action-type": "PUSH",
        "image-tag": tag,
    });
    if let Some(m) = media_type {
        detail["manifest-media-type"] = m.into();
    }
    serde_json::json!({
        "version": "0",
        "id": "3f0c2b1e-8d5a-4c47-9e61-2a7b9c1d0e55",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": "2026-11-24T10:15:02Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    })
}

/// The untagged push of a signature manifest, as ECR sends it (no `image-tag`).
pub fn signature_event(repo: &str, digest: &str, artifact_type: &str) -> serde_json::Value {
    let mut event = push_event(repo, digest, "unused", Some("application/vnd.oci.image.manifest.v1+json"));
    let detail = event["detail"].as_object_mut().unwrap();
    detail.remove("image-tag");
    detail.insert("artifact-media-type".into(), artifact_type.into());
    event
}

/// KMS encryption with ECR's default key: another encryption than a repository's default (AES256).
pub fn kms() -> aws_sdk_ecr::types::EncryptionConfiguration {
    aws_sdk_ecr::types::EncryptionConfiguration::builder().encryption_type(aws_sdk_ecr::types::EncryptionType::Kms).build().unwrap()
}

pub mod runtime_api;

/// The bootstrap binary, run the way Lambda runs it, against a Runtime API stand-in.
pub struct Function {
    pub api: runtime_api::RuntimeApi,
    child: tokio::process::Child,
    /// Everything the function printed (its log lines), as it prints it.
    pub output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Function {
    /// The release build when `ECR_RETAG_BOOTSTRAP` names it (./scripts/test does), else the test build.
    pub fn binary() -> PathBuf {
        std::env::var_os("ECR_RETAG_BOOTSTRAP").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_bootstrap").into())
    }

    /// The command line: the release build when `ECR_RETAG_CLI` names it, else the test build.
    pub fn cli() -> PathBuf {
        std::env::var_os("ECR_RETAG_CLI").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_ecr-retag").into())
    }

    pub async fn start(env: &[(&str, &str)]) -> Function {
        let api = runtime_api::RuntimeApi::start().await;
        let mut command = tokio::process::Command::new(Self::binary());
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(clock_env())
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "ecr-retag")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_ENDPOINT_URL", &Emulator::shared().endpoint)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start the bootstrap");
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            readers.push(tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    output.lock().unwrap().push(line);
                }
            }));
        }
        Function { api, child, output, readers }
    }

    /// Waits for the process to exit (as it does when INIT fails) and for all
    /// it printed to be read, and returns its exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(std::time::Duration::from_secs(30), self.child.wait()).await.ok()?.ok()?;
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        status.code()
    }

    /// The process's peak resident set size so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// The printed lines once at least `count` of them satisfy `wanted` (output is read
    /// concurrently, so it may trail the answer a little), or after 10 s.
    pub async fn lines_when(&self, count: usize, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines = self.lines();
            if lines.iter().filter(|l| wanted(l)).count() >= count || tokio::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The variables that shift a process's clock (libfaketime's), so that a child
/// started with a cleared environment reads the same clock as the test: CI runs
/// the tests with the clock moved ahead, and the deadline a test sends must mean
/// the same to the bootstrap.
pub fn clock_env() -> Vec<(String, std::ffi::OsString)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .filter(|(k, _)| k == "LD_PRELOAD" || k.starts_with("FAKETIME"))
        .collect()
}

/// The config and layer digests a manifest names.
pub fn blobs_of(manifest: &str) -> Vec<String> {
    let parsed: serde_json::Value = serde_json::from_str(manifest).unwrap();
    std::iter::once(&parsed["config"]).chain(parsed["layers"].as_array().unwrap()).map(|d| d["digest"].as_str().unwrap().to_owned()).collect()
}

/// Uploads `bytes` into `repository` as a blob with the layer calls (one part): its digest.
pub async fn upload_blob(client: &Client, repository: &str, bytes: &[u8]) -> String {
    let upload = client.initiate_layer_upload().repository_name(repository).send().await.unwrap();
    let id = upload.upload_id().unwrap();
    client
        .upload_layer_part()
        .repository_name(repository)
        .upload_id(id)
        .part_first_byte(0)
        .part_last_byte(bytes.len() as i64 - 1)
        .layer_part_blob(aws_sdk_ecr::primitives::Blob::new(bytes.to_vec()))
        .send()
        .await
        .unwrap();
    let digest = sha256_digest(bytes);
    client.complete_layer_upload().repository_name(repository).upload_id(id).layer_digests(&digest).send().await.unwrap();
    digest
}

/// `len` bytes of a pattern of `seed`'s, so that different blobs differ.
pub fn blob_bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 31 + seed as u64 * 7 + (i >> 12) as u64) as u8).collect()
}

/// A manifest of its own for image number `n`: the docker-v2 fixture with another config digest.
pub fn numbered_manifest(n: u32) -> Manifest {
    let base = manifest("docker-v2");
    let config = "sha256:e67d23e7820c49a8051dac2831f38290f5e72f66c8db5079eeb60d82f14894c0";
    let numbered = format!("{}{n:08x}", &config[..config.len() - 8]);
    Manifest { body: base.body.replace(config, &numbered), ..base }
}

/// An SQS event as Lambda delivers a batch: `(message id, body)` each.
pub fn sqs_batch(messages: &[(&str, String)]) -> String {
    let records: Vec<_> = messages
        .iter()
        .map(|(id, body)| serde_json::json!({"messageId": id, "receiptHandle": "r", "body": body, "eventSource": "aws:sqs", "awsRegion": REGION}))
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

/// The sample event file `events/NAME`.
pub fn sample_event(name: &str) -> serde_json::Value {
    let path = root().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Tests hand one event to the handler the way Lambda does: as payload text,
/// through `Handler::invoke_at` (the entry point `invoke` wraps), with a
/// deadline far enough away not to matter.
pub trait Invoke {
    /// One event's answer; `now` is the push time of a direct request.
    async fn handle(&self, payload: &serde_json::Value, now: chrono::DateTime<chrono::Utc>) -> Result<ecr_retag::report::Report, ecr_retag::error::RetagError>;
}

impl<R: ecr_retag::registry::Catalog + ecr_retag::registry::Blobs> Invoke for ecr_retag::lambda::Handler<R> {
    async fn handle(&self, payload: &serde_json::Value, now: chrono::DateTime<chrono::Utc>) -> Result<ecr_retag::report::Report, ecr_retag::error::RetagError> {
        let now = std::time::SystemTime::from(now);
        match self.invoke_at(&payload.to_string(), now + std::time::Duration::from_secs(600), now).await? {
            ecr_retag::lambda::Answer::Event(report) => Ok(report),
            other => panic!("expected one event's answer, got {other:?}"),
        }
    }
}

/// One test's fresh repository on the shared emulator, and a client for it.
/// `let Scenario { emulator, client, repo } = Scenario::new("economy", false).await;`
pub struct Scenario {
    pub emulator: &'static Emulator,
    pub client: Client,
    pub repo: String,
}

impl Scenario {
    /// A fresh repository whose name starts with `prefix` (tag-immutable or not).
    pub async fn new(prefix: &str, immutable: bool) -> Scenario {
        let emulator = Emulator::shared();
        let client = emulator.client();
        let repo = repository(&client, prefix, immutable).await;
        Scenario { emulator, client, repo }
    }
}

/// Sends a reconcile request the way Lambda would (no deadline) and returns the sweep's answer.
pub async fn sweep<R: ecr_retag::registry::Catalog + ecr_retag::registry::Blobs>(h: &ecr_retag::lambda::Handler<R>, request: serde_json::Value) -> ecr_retag::report::SweepReport {
    match h.invoke(&serde_json::json!({ "reconcile": request }).to_string(), std::time::SystemTime::UNIX_EPOCH).await {
        Ok(ecr_retag::lambda::Answer::Reconcile(report)) => report,
        other => panic!("not a sweep's answer: {other:?}"),
    }
}
