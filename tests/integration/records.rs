//! Promotion records end to end: the release bootstrap signs with the emulator's KMS (moto's,
//! strict where records need it) and attaches each record to the image in the strict ECR; an
//! outside verifier (securesystemslib) checks the envelope against the key's public key; the
//! command line's `why` explains the tag, and tells an altered record, another key's and another
//! image's apart.

use serde_json::Value;

use crate::support::runtime_api::Answer;
use crate::support::*;

const RULES: &str = r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}"],"record":true},
                                 {"name":"dated","semver":true,"tags":["{date:%Y%m%d}"]}]}"#;

fn response(answer: Answer) -> Value {
    match answer {
        Answer::Response(v) => v,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// The PEM of a DER public key.
fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

/// The records attached to `digest`: each one's manifest digest and its envelope's bytes.
async fn records(emulator: &Emulator, repo: &str, digest: &str) -> Vec<(String, Vec<u8>)> {
    let client = emulator.client();
    let filter = aws_sdk_ecr::types::ListImageReferrersFilter::builder().artifact_types("application/vnd.in-toto+json").build();
    let subject = aws_sdk_ecr::types::SubjectIdentifier::builder().image_digest(digest).build().unwrap();
    let listed = client.list_image_referrers().repository_name(repo).subject_id(subject).filter(filter).send().await.unwrap();
    let mut out = Vec::new();
    for referrer in listed.referrers() {
        let (_, manifests) = state(&client, repo).await;
        let manifest: Value = serde_json::from_str(&manifests[referrer.digest()]).unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let url = client.get_download_url_for_layer().repository_name(repo).layer_digest(layer).send().await.unwrap();
        let (status, bytes) = emulator.fetch(url.download_url().unwrap());
        assert_eq!(status, 200);
        out.push((referrer.digest().to_owned(), bytes));
    }
    out
}

/// securesystemslib's verdict on an envelope and a PEM public key: its exit code and output.
fn verify_outside(dir: &std::path::Path, envelope: &[u8], pem: &str) -> (Option<i32>, String) {
    let (envelope_path, pem_path) = (dir.join("envelope.json"), dir.join("key.pem"));
    std::fs::write(&envelope_path, envelope).unwrap();
    std::fs::write(&pem_path, pem).unwrap();
    let out = std::process::Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/records/verify.py"))
        .args([&envelope_path, &pem_path])
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// A repository, a pushed image and a function that records with a new key on an emulator that
/// lets it call what the template grants for records, and no more.
struct Recorded {
    emulator: Emulator,
    repo: String,
    digest: String,
    key: String,
    public: Vec<u8>,
    function: Function,
    dir: std::path::PathBuf,
}

async fn recorded(repo: &str) -> Recorded {
    // The command line's `why` reads the key's public key; it shares the function's User-Agent, so
    // the tests check the function's own KMS calls before it runs.
    let operations: Vec<&str> = FUNCTION_OPERATIONS.iter().chain(RECORD_OPERATIONS.iter()).chain(&["kms:GetPublicKey", "GetDownloadUrlForLayer"]).copied().collect();
    let emulator = Emulator::start(&operations);
    let client = emulator.client();
    client.create_repository().repository_name(repo).send().await.unwrap();
    let digest = push(&client, repo, &manifest("oci-manifest"), Some("v1.4.2")).await;
    let (key, public) = signing_key(&emulator.endpoint).await;
    let function = Function::start(&[
        ("RETAG_RULES", RULES),
        ("RETAG_RECORD_KEY", &key),
        ("AWS_ENDPOINT_URL", &emulator.endpoint),
        ("AWS_LAMBDA_FUNCTION_VERSION", "7"),
    ])
    .await;
    let dir = std::env::temp_dir().join(format!("ecr-retag-records-{}-{repo}", std::process::id()).replace('/', "-"));
    std::fs::create_dir_all(&dir).unwrap();
    Recorded { emulator, repo: repo.to_owned(), digest, key, public, function, dir }
}

#[tokio::test]
async fn a_recorded_push_attaches_one_signed_record_that_an_outside_verifier_and_why_accept() {
    let r = recorded("records/app").await;
    let event = push_event(&r.repo, &r.digest, "v1.4.2", None);
    let answer = response(r.function.api.invoke(&event).await);
    assert_eq!(answer["records"][0]["outcome"], "written", "{answer}");
    assert_eq!((answer["records"][0]["rule"].as_str(), answer["records"].as_array().unwrap().len()), (Some("release"), 1));
    let found = records(&r.emulator, &r.repo, &r.digest).await;
    assert_eq!(found.len(), 1);
    assert_eq!(answer["records"][0]["digest"], found[0].0);
    let calls = r.emulator.function_calls_on(&r.repo);
    assert_eq!(calls.get("InitiateLayerUpload"), Some(&2), "the config blob and the envelope: {calls:?}");
    assert_eq!(calls.get("PutImage"), Some(&4), "three tags and the record: {calls:?}");
    let kms = r.emulator.function_calls_on("(kms)");
    assert_eq!((kms.get("Sign"), kms.len()), (Some(&1), 1), "one Sign, and no other KMS call: {kms:?}");

    // securesystemslib, not ecr-retag, checks the envelope against the key's public key.
    let (code, said) = verify_outside(&r.dir, &found[0].1, &pem(&r.public));
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("application/vnd.in-toto+json https://ecr-retag.dev/promotion/v1 release"), "{said}");
    let (other_key, other_public) = signing_key(&r.emulator.endpoint).await;
    assert_eq!(verify_outside(&r.dir, &found[0].1, &pem(&other_public)).0, Some(1), "another key's public key does not verify it");

    // A redelivery writes no second record; the record's own push event costs no call.
    let before = r.emulator.function_calls_on(&r.repo);
    let again = response(r.function.api.invoke(&event).await);
    assert_eq!(again["records"][0]["outcome"], "exists", "{again}");
    assert_eq!(records(&r.emulator, &r.repo, &r.digest).await.len(), 1);
    let own = signature_event(&r.repo, &found[0].0, "application/vnd.in-toto+json");
    let ignored = response(r.function.api.invoke(&own).await);
    assert_eq!(ignored["status"], "ignored", "{ignored}");
    let after = r.emulator.function_calls_on(&r.repo);
    let mut spent: Vec<(String, u64)> = after.iter().map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0))).filter(|(_, n)| *n > 0).collect();
    spent.sort();
    assert_eq!(spent, [("BatchGetImage".to_owned(), 1), ("ListImageReferrers".to_owned(), 1)], "the redelivery's read and look; nothing for the record's push");

    // why, with the KMS key and with its PEM.
    let (code, out, err) = cli_on(&r.emulator, &r.dir, &["why", &format!("{}:stable", r.repo), "--key", &r.key]);
    assert_eq!(code, Some(0), "{out}{err}");
    for said in ["explained by record", "rule      release", "push event 3f0c2b1e-8d5a-4c47-9e61-2a7b9c1d0e55", "stable created", "version 7"] {
        assert!(out.contains(said), "{said:?} in {out}");
    }
    let pem_path = r.dir.join("public.pem");
    std::fs::write(&pem_path, pem(&r.public)).unwrap();
    let (code, out, _) = cli_on(&r.emulator, &r.dir, &["why", &format!("{}:v1", r.repo), "--key", pem_path.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["records"][0]["verdict"], "explains");
    assert_eq!(json["records"][0]["statement"]["predicate"]["event"]["kind"], "push");

    // The date tag's rule records nothing; another key explains nothing; and usage mistakes.
    let (code, out, _) = cli_on(&r.emulator, &r.dir, &["why", &format!("{}:v1.4.2", r.repo), "--key", &r.key]);
    assert_eq!(code, Some(1), "the pushed tag is no rule's: {out}");
    let (code, out, _) = cli_on(&r.emulator, &r.dir, &["why", &format!("{}:stable", r.repo), "--key", &other_key]);
    assert_eq!(code, Some(1));
    assert!(out.contains(&format!("signed by another key ({}), not {other_key}", r.key)), "{out}");
    assert_eq!(cli_on(&r.emulator, &r.dir, &["why", "--key", &r.key]).0, Some(2));
    assert_eq!(cli_on(&r.emulator, &r.dir, &["why", "no-tag", "--key", &r.key]).0, Some(2));
    assert_eq!(cli_on(&r.emulator, &r.dir, &["why", &format!("{}:stable", r.repo)]).0, Some(2), "no key");
}

/// Puts `envelope` on `digest` as a record's referrer, with the hand of someone who may push.
async fn attach(emulator: &Emulator, repo: &str, digest: &str, envelope: &[u8]) {
    let client = emulator.client();
    let (_, manifests) = state(&client, repo).await;
    let subject = &manifests[digest];
    let config = b"{}";
    for blob in [&config[..], envelope] {
        let upload = client.initiate_layer_upload().repository_name(repo).send().await.unwrap();
        let id = upload.upload_id().unwrap();
        let part = aws_sdk_ecr::primitives::Blob::new(blob);
        client.upload_layer_part().repository_name(repo).upload_id(id).part_first_byte(0).part_last_byte(blob.len() as i64 - 1).layer_part_blob(part).send().await.unwrap();
        let _ = client.complete_layer_upload().repository_name(repo).upload_id(id).layer_digests(sha256_digest(blob)).send().await;
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": "application/vnd.in-toto+json",
        "config": {"mediaType": "application/vnd.in-toto+json", "digest": sha256_digest(config), "size": 2},
        "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": sha256_digest(envelope), "size": envelope.len()}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": subject.len()},
    })
    .to_string();
    client.put_image().repository_name(repo).image_manifest(manifest).image_manifest_media_type("application/vnd.oci.image.manifest.v1+json").send().await.unwrap();
}

#[tokio::test]
async fn why_fails_an_altered_record_and_another_images_naming_which() {
    let r = recorded("records/forged").await;
    response(r.function.api.invoke(&push_event(&r.repo, &r.digest, "v1.4.2", None)).await);
    let genuine = records(&r.emulator, &r.repo, &r.digest).await.remove(0).1;
    let client = r.emulator.client();

    // The genuine record's statement, edited to claim one more tag, under the genuine signature.
    let mut envelope: Value = serde_json::from_slice(&genuine).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut statement: Value = serde_json::from_slice(&b64.decode(envelope["payload"].as_str().unwrap()).unwrap()).unwrap();
    statement["predicate"]["tags"].as_array_mut().unwrap().push(serde_json::json!({"tag": "prod", "outcome": "created"}));
    envelope["payload"] = b64.encode(statement.to_string()).into();
    let altered = push(&client, &r.repo, &numbered_manifest(1), Some("altered")).await;
    attach(&r.emulator, &r.repo, &altered, envelope.to_string().as_bytes()).await;
    let (code, out, err) = cli_on(&r.emulator, &r.dir, &["why", &format!("{}:altered", r.repo), "--key", &r.key]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("no verified record explains it") && out.contains("the record was altered after signing"), "{out}{err}");
    assert_eq!(verify_outside(&r.dir, envelope.to_string().as_bytes(), &pem(&r.public)).0, Some(1), "securesystemslib agrees");

    // The genuine record, copied onto another image: verified, but about the first image.
    let copied = push(&client, &r.repo, &numbered_manifest(2), Some("copied")).await;
    attach(&r.emulator, &r.repo, &copied, &genuine).await;
    let (code, out, _) = cli_on(&r.emulator, &r.dir, &["why", &format!("{}:copied", r.repo), "--key", &r.key]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("the record is about another image, {}", r.digest)), "{out}");
}

#[tokio::test]
async fn the_command_lines_apply_signs_records_with_its_key_and_refuses_to_write_without_one() {
    let r = recorded("records/cli").await;
    let rules = r.dir.join("rules.json");
    std::fs::write(&rules, RULES).unwrap();
    let apply = ["apply", "--rules", rules.to_str().unwrap(), "--repository", &r.repo, "--tag", "v1.4.2", "--json"];
    let (code, _, err) = cli_on(&r.emulator, &r.dir, &apply);
    assert_eq!(code, Some(2), "records without a key are a usage mistake: {err}");
    assert!(err.contains("--key"), "{err}");
    assert!(records(&r.emulator, &r.repo, &r.digest).await.is_empty(), "nothing written");
    let (code, out, err) = cli_on(&r.emulator, &r.dir, &[&apply[..], &["--key", &r.key]].concat());
    assert_eq!(code, Some(0), "{out}{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["records"][0]["outcome"], "written", "{answer}");
    let (code, out, _) = cli_on(&r.emulator, &r.dir, &["why", &format!("{}:stable", r.repo), "--key", &r.key]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("  event     request at "), "a direct request has no event id: {out}");
}
