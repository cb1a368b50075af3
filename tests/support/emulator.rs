//! The strict local ECR as a process (tests/emulator/strict_ecr.py), and SDK clients for it.

use super::*;

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

/// The function's calls promotion records add, as the template grants them with `RecordSigningKey`
/// (in the repositories where records are written; KMS Sign on that key).
pub const RECORD_OPERATIONS: [&str; 5] = ["BatchCheckLayerAvailability", "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "kms:Sign"];

/// A KMS client for the emulator (moto's KMS, made strict where records need it).
pub fn kms_client(endpoint: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(REGION))
        .credentials_provider(aws_sdk_kms::config::Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// A new ECC_NIST_P256 signing key in the emulator's KMS: its ARN and its public key (DER).
pub async fn signing_key(endpoint: &str) -> (String, Vec<u8>) {
    let kms = kms_client(endpoint);
    let key = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap();
    let arn = key.key_metadata().unwrap().arn().unwrap().to_owned();
    let public = kms.get_public_key().key_id(&arn).send().await.unwrap().public_key().unwrap().as_ref().to_vec();
    (arn, public)
}

/// The function's calls a promotion adds, as the template grants them with `PromotionTargets`.
pub const PROMOTION_OPERATIONS: [&str; 7] = [
    "GetAuthorizationToken",
    "GetAccountSetting",
    "BatchCheckLayerAvailability",
    // `"copy_blobs": true`: the layer copy through the function.
    "GetDownloadUrlForLayer",
    "InitiateLayerUpload",
    "UploadLayerPart",
    "CompleteLayerUpload",
];

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
    /// Amazon Inspector's ECR rescan window, as its GetConfiguration answers (`DAYS_3` … `LIFETIME`).
    pub fn inspector_rescan(&self, duration: &str) {
        self.http("POST", "/_strict/inspector", &serde_json::json!({"rescanDuration": duration}).to_string());
    }

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

/// KMS encryption with ECR's default key: another encryption than a repository's default (AES256).
pub fn kms() -> aws_sdk_ecr::types::EncryptionConfiguration {
    aws_sdk_ecr::types::EncryptionConfiguration::builder().encryption_type(aws_sdk_ecr::types::EncryptionType::Kms).build().unwrap()
}
