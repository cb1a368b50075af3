//! Promotion into another repository (`"to"`), against the strict emulator: the image copied
//! byte for byte by mounting its blobs, an index's children and the image's referrers put by
//! digest, the tags written in the target, and every refusal explained.

use std::collections::HashMap;
use std::sync::OnceLock;

use ecr_retag::config::Config;
use ecr_retag::domain::rules::RuleSet;
use ecr_retag::lambda::Handler;
use ecr_retag::registry::ecr::Ecr;
use ecr_retag::report::{Outcome, Report, Status};
use futures_util::future::join_all;
use crate::support::*;

/// `{tag}` and `stable` in `prod/<repository>`; `edge` at home.
const PROMOTE: &str = r#"{"rules":[
    {"name":"promote","semver":true,"repositories":["dev-*"],"to":"prod/{repository}","tags":["{tag}","stable"]},
    {"name":"edge","semver":true,"repositories":["dev-*"],"tags":["edge"]}
]}"#;

/// The same promotion, `stable` moving only to a newer version (in the target).
const PROMOTE_IF_NEWER: &str = r#"{"rules":[
    {"name":"promote","semver":true,"repositories":["dev-*"],"to":"prod/{repository}","move":"if-newer","tags":["{tag}","stable"]}
]}"#;

/// An emulator of this file's, where BLOB_MOUNTING is on (an account setting: the test that
/// turns it off has an emulator of its own), and a client for seeding it.
async fn emulator() -> (&'static Emulator, aws_sdk_ecr::Client) {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    let emulator = EMULATOR.get_or_init(|| Emulator::start(&granted()));
    let client = emulator.client();
    mounting(&client, true).await;
    (emulator, client)
}

async fn mounting(client: &aws_sdk_ecr::Client, enabled: bool) {
    let value = if enabled { "ENABLED" } else { "DISABLED" };
    client.put_account_setting().name("BLOB_MOUNTING").value(value).send().await.unwrap();
}

fn granted() -> Vec<&'static str> {
    FUNCTION_OPERATIONS.iter().chain(PROMOTION_OPERATIONS.iter()).copied().collect()
}

/// A handler as one Lambda instance has it: its own client and caches.
fn handler(emulator: &Emulator, rules: &str) -> Handler<Ecr> {
    let config = Config::with_rules(RuleSet::from_json(rules).unwrap());
    Handler::new(Ecr::new(function_client(&emulator.endpoint)).with_registry_endpoint(&emulator.endpoint), config)
}


/// `(repository, tag, outcome)` of each tag of the answer; `None`: the pushed repository.
fn outcomes(report: &Report) -> Vec<(Option<&str>, &str, Outcome)> {
    report.tags.iter().map(|t| (t.repository.as_deref(), t.tag.as_str(), t.outcome)).collect()
}

/// A source repository `dev-…` and its target `prod/dev-…`, created alike.
async fn pair(client: &aws_sdk_ecr::Client, prefix: &str) -> (String, String) {
    let source = repository(client, &format!("dev-{prefix}"), false).await;
    let target = format!("prod/{source}");
    client.create_repository().repository_name(&target).send().await.unwrap();
    (source, target)
}

/// Pushes an OCI index of two numbered images (each pushed untagged first, as docker buildx
/// does) under `tag`: the index's digest and its children's.
async fn push_index(client: &aws_sdk_ecr::Client, repo: &str, n: u32, tag: &str) -> (String, Vec<String>) {
    let mut children = Vec::new();
    let mut entries = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let child = numbered_manifest(n + i as u32);
        let digest = push(client, repo, &child, None).await;
        entries.push(format!(
            r#"{{"mediaType":"{}","digest":"{digest}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
            child.media_type,
            child.body.len()
        ));
        children.push(digest);
    }
    let body = format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#, entries.join(","));
    let index = Manifest { name: "index", body, media_type: "application/vnd.oci.image.index.v1+json", declares_media_type: true };
    (push(client, repo, &index, Some(tag)).await, children)
}

/// The digests of the image's referrers in `repo`, sorted.
async fn referrers(client: &aws_sdk_ecr::Client, repo: &str, digest: &str) -> Vec<String> {
    let subject = aws_sdk_ecr::types::SubjectIdentifier::builder().image_digest(digest).build().unwrap();
    let listed = client.list_image_referrers().repository_name(repo).subject_id(subject).send().await.unwrap();
    let mut found: Vec<String> = listed.referrers().iter().map(|r| r.digest().to_owned()).collect();
    found.sort();
    found
}

fn count(calls: &HashMap<String, u64>, operation: &str) -> u64 {
    calls.get(operation).copied().unwrap_or(0)
}

#[tokio::test]
async fn a_pushed_image_is_promoted_byte_for_byte_by_mounting_its_blobs_and_a_redelivery_writes_nothing() {
    let (emulator, client) = emulator().await;
    let (src, dst) = pair(&client, "single").await;
    let image = manifest("docker-v2");
    let digest = push(&client, &src, &image, Some("v1.4.2")).await;
    let h = handler(emulator, PROMOTE);

    let report = h.handle(&push_event(&src, &digest, "v1.4.2", None), now()).await.unwrap();
    assert_eq!(
        outcomes(&report),
        [(None, "edge", Outcome::Created), (Some(dst.as_str()), "stable", Outcome::Created), (Some(dst.as_str()), "v1.4.2", Outcome::Created)]
    );
    let (tags, manifests) = state(&client, &dst).await;
    assert_eq!((tags["stable"].as_str(), tags["v1.4.2"].as_str()), (digest.as_str(), digest.as_str()));
    assert_eq!(manifests[&digest], image.body, "the same bytes, so the same digest");
    assert_eq!(state(&client, &src).await.0["edge"], digest);
    let copied = serde_json::to_value(&report.promotions).unwrap();
    assert_eq!(copied, serde_json::json!([{"to": dst, "blobs_mounted": 3, "blobs_streamed": 0, "bytes_streamed": 0, "manifests": 0}]));
    let target_calls = emulator.calls(&dst);
    assert_eq!(count(&target_calls, "RegistryBlobMount"), 3, "the config and two layers, each mounted once: {target_calls:?}");
    assert_eq!(count(&target_calls, "BatchCheckLayerAvailability"), 1);
    assert_eq!(count(&target_calls, "PutImage"), 2, "the manifest lands with its first tag: no untagged put");
    let source_calls = emulator.function_calls_on(&src);
    assert_eq!(count(&source_calls, "BatchGetImage"), 2, "one read of the pushed image serves edge and the copy, one looks for cosign's sidecar tags: {source_calls:?}");

    // Redelivered, and delivered to another instance: reads only.
    for h in [&h, &handler(emulator, PROMOTE)] {
        let (before_src, before_dst) = (emulator.calls(&src), emulator.calls(&dst));
        let again = h.handle(&push_event(&src, &digest, "v1.4.2", None), now()).await.unwrap();
        assert!(again.tags.iter().all(|t| t.outcome == Outcome::Unchanged) && again.promotions.is_empty(), "{again:?}");
        let since = [emulator.calls_since(&src, &before_src), emulator.calls_since(&dst, &before_dst)];
        assert!(since.iter().flatten().all(|(op, _)| ["BatchGetImage", "ListImageReferrers"].contains(&op.as_str())), "{since:?}");
    }
    assert!(emulator.writes(&dst).values().all(|n| *n == 1), "{:?}", emulator.writes(&dst));

    // The target's own push events (the promotion's PutImage calls) promote nothing and cost
    // nothing, even for a rule that names no repositories: it never applies inside its `to`.
    let anywhere = handler(emulator, r#"{"rules":[{"name":"promote","semver":true,"to":"prod/{repository}","tags":["{tag}","stable"]}]}"#);
    let before = emulator.function_calls_on(&dst);
    for tag in ["stable", "v1.4.2"] {
        let echo = anywhere.handle(&push_event(&dst, &digest, tag, None), now()).await.unwrap();
        assert_eq!((echo.status, echo.reason.as_deref()), (Status::Ignored, Some("no rule matches this repository and tag")), "{echo:?}");
    }
    assert_eq!(emulator.function_calls_on(&dst), before);
}

#[tokio::test]
async fn a_sweep_promotes_what_missed_events_left_out_as_the_events_would_have() {
    let (emulator, client) = emulator().await;
    let (src, dst) = pair(&client, "healed").await;
    // Three releases, the hotfix last, and a signature of the newest; no event reached the function.
    let mut digests = HashMap::new();
    for (i, version) in ["v1.4.2", "v1.5.0", "v1.4.3"].into_iter().enumerate() {
        digests.insert(version, push(&client, &src, &numbered_manifest(95_000 + i as u32), Some(version)).await);
    }
    let notation = manifest("notation-signature");
    let signed = digests["v1.5.0"].as_str();
    let signature = Manifest { body: notation.body.replace(&manifest("docker-v2").digest(), signed), ..notation };
    let signature = push(&client, &src, &signature, None).await;
    let h = handler(emulator, PROMOTE_IF_NEWER);
    let request = serde_json::json!({ "repositories": [src] });

    let dry = sweep(&h, serde_json::json!({ "repositories": [src], "dry_run": true })).await;
    assert_eq!((dry.writes, dry.would_write), (0, Some(4)), "{dry:?}");
    assert!(state(&client, &dst).await.0.is_empty(), "a dry run writes nothing");

    let report = sweep(&h, request.clone()).await;
    let (tags, manifests) = state(&client, &dst).await;
    assert_eq!(tags["stable"], digests["v1.5.0"], "the highest version, not the last push: {report:?}");
    for version in ["v1.4.2", "v1.5.0", "v1.4.3"] {
        assert_eq!(tags[version], digests[version]);
    }
    assert_eq!(manifests[&digests["v1.5.0"]], numbered_manifest(95_001).body, "byte for byte");
    assert_eq!(referrers(&client, &dst, &digests["v1.5.0"]).await, [signature], "the signature came along");
    let swept = &report.repositories[0];
    assert_eq!(swept.tags_written, 4);
    assert!(swept.changes.iter().all(|c| c.repository.as_deref() == Some(dst.as_str())), "{:?}", swept.changes);
    assert_eq!(count(&emulator.calls(&dst), "RegistryBlobMount"), 7, "each image's config, the two layers they share once, the signature's two blobs");

    let before = emulator.writes(&dst);
    let again = sweep(&h, request).await;
    assert_eq!((again.writes, again.repositories[0].already_correct), (0, 4), "{again:?}");
    assert_eq!(emulator.writes(&dst), before, "a second sweep writes nothing");
}

#[tokio::test]
async fn an_index_is_promoted_with_its_children_first_each_by_digest() {
    let (emulator, client) = emulator().await;
    let (src, dst) = pair(&client, "index").await;
    let (index, children) = push_index(&client, &src, 90_000, "v2.0.0").await;
    let h = handler(emulator, PROMOTE);
    let report = h.handle(&push_event(&src, &index, "v2.0.0", Some("application/vnd.oci.image.index.v1+json")), now()).await.unwrap();
    assert!(report.tags.iter().all(|t| matches!(t.outcome, Outcome::Created)), "{report:?}");

    let (tags, manifests) = state(&client, &dst).await;
    assert_eq!((tags["stable"].as_str(), tags["v2.0.0"].as_str()), (index.as_str(), index.as_str()));
    let (_, source_manifests) = state(&client, &src).await;
    for digest in children.iter().chain([&index]) {
        assert_eq!(manifests.get(digest), source_manifests.get(digest), "{digest} byte for byte");
    }
    assert_eq!(manifests.len(), 3, "the index and its two children, nothing else");
    assert!(!tags.values().any(|d| children.contains(d)), "the children stay untagged");
    let calls = emulator.function_calls_on(&dst);
    assert_eq!(count(&calls, "PutImage"), 4, "two children by digest, then the index with each of its two tags: {calls:?}");
    // Each child has a config and two layers; the layers are the same fixture's, so mounted once.
    assert_eq!(count(&emulator.calls(&dst), "RegistryBlobMount"), 4);
}

#[tokio::test]
async fn signatures_and_sboms_follow_the_image_so_that_verification_in_the_target_finds_them() {
    let (emulator, client) = emulator().await;
    let (src, dst) = pair(&client, "signed").await;
    let digest = push(&client, &src, &manifest("docker-v2"), Some("v3.1.0")).await;
    let notation = push(&client, &src, &manifest("notation-signature"), None).await;
    let sbom = manifest("spdx-sbom");
    let subject = format!(r#","subject":{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{digest}","size":735}}}}"#);
    let sbom = Manifest { body: format!("{}{subject}", sbom.body.trim_end().trim_end_matches('}')), ..sbom };
    let sbom = push(&client, &src, &sbom, None).await;
    let source_referrers = referrers(&client, &src, &digest).await;
    assert_eq!(source_referrers.len(), 2);

    let h = handler(emulator, PROMOTE);
    let report = h.handle(&push_event(&src, &digest, "v3.1.0", None), now()).await.unwrap();
    assert!(report.tags.iter().all(|t| t.outcome == Outcome::Created), "{report:?}");
    assert_eq!(report.promotions[0].manifests, 2, "the two referrers: {:?}", report.promotions);
    assert_eq!(referrers(&client, &dst, &digest).await, source_referrers);
    let (_, target) = state(&client, &dst).await;
    let (_, source) = state(&client, &src).await;
    for d in [&notation, &sbom] {
        assert_eq!(target.get(d), source.get(d), "referrer {d} byte for byte");
    }

    // Another signature pushed later comes along on the next promotion of the image, and only it.
    let sigstore = push(&client, &src, &manifest("sigstore-bundle"), None).await;
    let before = emulator.function_calls_on(&dst);
    let again = h.handle(&push_event(&src, &digest, "v3.1.0", None), now()).await.unwrap();
    assert!(again.tags.iter().all(|t| t.outcome == Outcome::Unchanged), "{again:?}");
    assert!(referrers(&client, &dst, &digest).await.contains(&sigstore));
    let put = count(&emulator.function_calls_on(&dst), "PutImage") - count(&before, "PutImage");
    assert_eq!(put, 1, "the new referrer alone");
}

#[tokio::test]
async fn cosigns_sidecar_tags_follow_the_image_under_the_same_tag_and_digest() {
    let (emulator, client) = emulator().await;
    let (src, dst) = pair(&client, "cosigned").await;
    let digest = push(&client, &src, &numbered_manifest(96_001), Some("v3.2.0")).await;
    let hex = digest.trim_start_matches("sha256:");
    let (sig, sbom) = (format!("sha256-{hex}.sig"), format!("sha256-{hex}.sbom"));
    let signature = push(&client, &src, &manifest("cosign-signature"), Some(&sig)).await;
    let h = handler(emulator, PROMOTE);

    let report = h.handle(&push_event(&src, &digest, "v3.2.0", None), now()).await.unwrap();
    assert!(report.tags.iter().all(|t| t.outcome == Outcome::Created), "{report:?}");
    assert_eq!(report.promotions[0].manifests, 1, "the .sig: {:?}", report.promotions);
    let (tags, manifests) = state(&client, &dst).await;
    assert_eq!(tags[&sig], signature, "the same tag, the same digest");
    assert_eq!(manifests[&signature], manifest("cosign-signature").body, "byte for byte");

    // cosign adds a signature (a new .sig) and an SBOM; the next promotion brings both, and only them.
    let resigned = Manifest { body: manifest("cosign-signature").body.replace("MEUCIQ", "MEYCIQ"), ..manifest("cosign-signature") };
    let resigned = push(&client, &src, &resigned, Some(&sig)).await;
    let spdx = push(&client, &src, &manifest("spdx-sbom"), Some(&sbom)).await;
    let before = emulator.function_calls_on(&dst);
    let again = h.handle(&push_event(&src, &digest, "v3.2.0", None), now()).await.unwrap();
    assert!(again.tags.iter().all(|t| t.outcome == Outcome::Unchanged), "{again:?}");
    let tags = state(&client, &dst).await.0;
    assert_eq!((tags[&sig].as_str(), tags[&sbom].as_str()), (resigned.as_str(), spdx.as_str()));
    let put = count(&emulator.function_calls_on(&dst), "PutImage") - count(&before, "PutImage");
    assert_eq!(put, 2, "the new .sig and the .sbom");
}

#[tokio::test]
async fn a_promotion_that_cannot_mount_says_why_and_leaves_the_pushed_repositorys_tags_in_place() {
    let (emulator, client) = emulator().await;
    let h = handler(emulator, PROMOTE);

    // No target repository: permanent, and it says what to create.
    let src = repository(&client, "dev-missing", false).await;
    let digest = push(&client, &src, &numbered_manifest(91_001), Some("v1.0.0")).await;
    let err = h.handle(&push_event(&src, &digest, "v1.0.0", None), now()).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.TagsNotApplied", "{err}");
    let report = err.report().unwrap();
    assert_eq!(report.tags[0].outcome, Outcome::Created, "edge, at home: {report:?}");
    let failed = &report.tags[1];
    assert_eq!((failed.repository.as_deref(), failed.outcome), (Some(format!("prod/{src}").as_str()), Outcome::Failed));
    assert!(failed.detail.as_deref().unwrap().contains(&format!("the target repository prod/{src} does not exist")), "{failed:?}");

    // Another encryption: permanent; ECR mounts only between repositories encrypted alike.
    let src = repository(&client, "dev-sealed", false).await;
    let kms = kms();
    client.create_repository().repository_name(format!("prod/{src}")).encryption_configuration(kms).send().await.unwrap();
    let digest = push(&client, &src, &numbered_manifest(91_002), Some("v1.0.0")).await;
    let err = h.handle(&push_event(&src, &digest, "v1.0.0", None), now()).await.unwrap_err();
    assert!(!err.retryable(), "{err}");
    let detail = err.report().unwrap().tags[1].detail.clone().unwrap();
    assert!(detail.contains("the source has AES256 while the target has KMS"), "{detail}");
    assert_eq!(count(&emulator.calls(&format!("prod/{src}")), "RegistryBlobMount"), 0, "explained, not discovered");

    // A mount answered 202: retryable, naming the blob; the next delivery finishes it.
    let (src, dst) = pair(&client, "declined").await;
    let image = numbered_manifest(91_003);
    let digest = push(&client, &src, &image, Some("v1.0.0")).await;
    emulator.fault("RegistryBlobMount", &dst, None, "decline", 1);
    let err = h.handle(&push_event(&src, &digest, "v1.0.0", None), now()).await.unwrap_err();
    assert!(err.retryable(), "{err}");
    let detail = err.report().unwrap().tags[1].detail.clone().unwrap();
    let config = serde_json::from_str::<serde_json::Value>(&image.body).unwrap()["config"]["digest"].as_str().unwrap().to_owned();
    assert!(detail.contains(&format!("did not mount blob {config} from {src}")), "{detail}");
    assert!(state(&client, &dst).await.0.is_empty(), "nothing tagged in the target");
    let calls = emulator.calls(&dst);
    assert_eq!((count(&calls, "RegistryBlobUploadCancel"), count(&calls, "uploads_open")), (1, 0), "the session the 202 opened is closed: {calls:?}");
    let ours = emulator.function_calls_on(&dst);
    assert_eq!(count(&ours, "RegistryBlobMount"), 3, "the registry API's requests name ecr-retag in their User-Agent: {ours:?}");
    let report = h.handle(&push_event(&src, &digest, "v1.0.0", None), now()).await.unwrap();
    assert_eq!(outcomes(&report)[1..], [(Some(dst.as_str()), "stable", Outcome::Created), (Some(dst.as_str()), "v1.0.0", Outcome::Created)]);
}

#[tokio::test]
async fn with_blob_mounting_off_a_promotion_says_how_to_turn_it_on_and_makes_no_mount() {
    let emulator = Emulator::start(&granted());
    let client = emulator.client();
    let (src, dst) = pair(&client, "off").await;
    let digest = push(&client, &src, &numbered_manifest(92_001), Some("v1.0.0")).await;
    let h = handler(&emulator, PROMOTE);
    for _ in 0..2 {
        let err = h.handle(&push_event(&src, &digest, "v1.0.0", None), now()).await.unwrap_err();
        assert!(!err.retryable(), "a person has to turn it on: {err}");
        let detail = err.report().unwrap().tags[1].detail.clone().unwrap();
        assert!(detail.contains("aws ecr put-account-setting --name BLOB_MOUNTING --value ENABLED"), "{detail}");
    }
    assert_eq!(count(&emulator.function_calls_on(""), "GetAccountSetting"), 2, "DISABLED is not kept: turning it on takes effect at once");
    assert_eq!(count(&emulator.calls(&dst), "RegistryBlobMount"), 0);

    mounting(&client, true).await;
    for _ in 0..3 {
        h.handle(&push_event(&src, &digest, "v1.0.0", None), now()).await.unwrap();
    }
    assert_eq!(count(&emulator.function_calls_on(""), "GetAccountSetting"), 3, "ENABLED is read once per instance");
    assert_eq!(state(&client, &dst).await.0["stable"], digest);
}

#[tokio::test]
async fn concurrent_shuffled_and_duplicated_promotions_leave_stable_on_the_highest_version_in_the_target() {
    let (emulator, client) = emulator().await;
    let (src, dst) = pair(&client, "race").await;
    let versions = ["v1.4.2", "v1.5.0", "v1.4.3", "v1.10.0", "v1.9.9"];
    let mut events = Vec::new();
    let mut digests = HashMap::new();
    for (i, version) in versions.iter().enumerate() {
        let digest = push(&client, &src, &numbered_manifest(93_000 + i as u32), Some(version)).await;
        digests.insert(*version, digest.clone());
        events.push(push_event(&src, &digest, version, None));
    }
    // Every event twice, over four instances, in an order of the seed's.
    let mut deliveries: Vec<&serde_json::Value> = events.iter().chain(events.iter()).collect();
    let mut seed = 0x5eed_u64;
    for i in (1..deliveries.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        deliveries.swap(i, (seed >> 33) as usize % (i + 1));
    }
    let instances: Vec<Handler<Ecr>> = (0..4).map(|_| handler(emulator, PROMOTE_IF_NEWER)).collect();
    let answers = join_all(deliveries.iter().enumerate().map(|(n, event)| instances[n % 4].handle(event, now()))).await;
    for answer in &answers {
        // A delivery that lost a race is retried by Lambda; none may fail for good.
        if let Err(e) = answer {
            assert!(e.retryable(), "{e}");
        }
    }
    // Late retries of every event, as Lambda's would come, at once.
    for answer in join_all(events.iter().enumerate().map(|(n, event)| instances[n % 4].handle(event, now()))).await {
        answer.unwrap();
    }
    let (tags, _) = state(&client, &dst).await;
    assert_eq!(tags["stable"], digests["v1.10.0"], "{tags:?}");
    for version in versions {
        assert_eq!(tags[version], digests[version], "each version promoted under its own tag");
    }
    let late = instances[1].handle(&events[0], now()).await.unwrap();
    let stable = late.tags.iter().find(|t| t.tag == "stable").unwrap();
    assert_eq!(stable.outcome, Outcome::SkippedNotNewer, "{stable:?}");
    assert_eq!(state(&client, &dst).await.0["stable"], digests["v1.10.0"]);
}

#[tokio::test]
async fn copy_blobs_streams_what_the_registry_will_not_mount_a_part_at_a_time_within_its_limit() {
    let (emulator, client) = emulator().await;
    // A target encrypted otherwise: ECR mounts nothing into it.
    let src = repository(&client, "dev-stream", false).await;
    let dst = format!("prod/{src}");
    let kms = kms();
    client.create_repository().repository_name(&dst).encryption_configuration(kms).send().await.unwrap();
    // An image whose blobs have bytes: a small config and a 12 MiB layer (two of moto's 10 MiB parts).
    let config = blob_bytes(1, 1500);
    let layer = blob_bytes(2, 12 * 1024 * 1024 + 5);
    let (config_digest, layer_digest) = (upload_blob(&client, &src, &config).await, upload_blob(&client, &src, &layer).await);
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let image = Manifest { name: "streamed", body, media_type: "application/vnd.oci.image.manifest.v1+json", declares_media_type: true };
    let digest = push(&client, &src, &image, Some("v4.0.0")).await;
    let streaming = r#"{"rules":[{"name":"promote","semver":true,"repositories":["dev-*"],"to":"prod/{repository}","copy_blobs":true,"tags":["{tag}"]}]}"#;

    let report = handler(emulator, streaming).handle(&push_event(&src, &digest, "v4.0.0", None), now()).await.unwrap();
    assert_eq!(outcomes(&report), [(Some(dst.as_str()), "v4.0.0", Outcome::Created)]);
    let streamed = &report.promotions[0];
    assert_eq!((streamed.blobs_mounted, streamed.blobs_streamed, streamed.bytes_streamed), (0, 2, (config.len() + layer.len()) as u64));
    let (tags, manifests) = state(&client, &dst).await;
    assert_eq!((tags["v4.0.0"].as_str(), manifests[&digest].as_str()), (digest.as_str(), image.body.as_str()));
    for (blob, bytes) in [(&config_digest, &config), (&layer_digest, &layer)] {
        let url = client.get_download_url_for_layer().repository_name(&dst).layer_digest(blob).send().await.unwrap();
        assert_eq!(emulator.fetch(url.download_url().unwrap()).1, *bytes, "{blob} arrived byte for byte");
    }
    let calls = emulator.function_calls_on(&dst);
    assert_eq!((count(&calls, "InitiateLayerUpload"), count(&calls, "UploadLayerPart"), count(&calls, "CompleteLayerUpload")), (2, 3, 2),
               "the config in one part, the layer in ECR's part size and the rest: {calls:?}");
    assert_eq!(count(&emulator.calls(&dst), "RegistryBlobMount"), 0, "no mount tried where none can work");
    assert_eq!(count(&emulator.function_calls_on(&src), "GetDownloadUrlForLayer"), 2);
}

/// An image manifest of a small uploaded config and one layer declared `mib` MiB (never uploaded).
async fn declared(client: &aws_sdk_ecr::Client, repo: &str, n: u8, mib: u64) -> Manifest {
    let small = blob_bytes(n, 100);
    let small_digest = upload_blob(client, repo, &small).await;
    let big = format!("sha256:{}", format!("{n:x}").repeat(64));
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{small_digest}","size":100}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{big}","size":{}}}]}}"#,
        mib * 1024 * 1024
    );
    Manifest { name: "declared", body, media_type: "application/vnd.oci.image.manifest.v1+json", declares_media_type: true }
}

#[tokio::test]
async fn copy_blobs_refuses_an_image_declared_past_its_limit_before_any_layer_call_children_counted_together() {
    let (emulator, client) = emulator().await;
    let streaming = r#"{"rules":[{"name":"promote","semver":true,"repositories":["dev-*"],"to":"prod/{repository}","copy_blobs":true,"tags":["{tag}"]}]}"#;
    let h = handler(emulator, streaming);
    let layer_calls = ["GetDownloadUrlForLayer", "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "RegistryBlobMount"];
    for (name, index) in [("dev-huge", false), ("dev-huge-index", true)] {
        let src = repository(&client, name, false).await;
        let dst = format!("prod/{src}");
        // Another encryption: nothing can be mounted, everything would stream.
        client.create_repository().repository_name(&dst).encryption_configuration(kms()).send().await.unwrap();
        let digest = if index {
            // Two children of 300 MiB each: each within the limit, together over it.
            let mut entries = Vec::new();
            for (n, arch) in [(5u8, "amd64"), (6, "arm64")] {
                let child = declared(&client, &src, n, 300).await;
                let d = push(&client, &src, &child, None).await;
                entries.push(format!(r#"{{"mediaType":"{}","digest":"{d}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#, child.media_type, child.body.len()));
            }
            let body = format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#, entries.join(","));
            let index = Manifest { name: "index", body, media_type: "application/vnd.oci.image.index.v1+json", declares_media_type: true };
            push(&client, &src, &index, Some("v5.0.0")).await
        } else {
            let huge = declared(&client, &src, 3, 600).await;
            push(&client, &src, &huge, Some("v5.0.0")).await
        };
        let err = h.handle(&push_event(&src, &digest, "v5.0.0", None), now()).await.unwrap_err();
        assert!(!err.retryable(), "{err}");
        let detail = err.report().unwrap().tags[0].detail.clone().unwrap();
        assert!(detail.contains("over the 536870912 bytes a promotion streams"), "{detail}");
        let (theirs, ours) = (emulator.calls(&dst), emulator.function_calls_on(&src));
        for call in layer_calls {
            assert_eq!(count(&theirs, call) + count(&ours, call), 0, "{name}: no {call} before the refusal: {theirs:?} {ours:?}");
        }
        assert!(state(&client, &dst).await.1.is_empty(), "{name}: nothing put in the target");
    }
}

#[tokio::test]
async fn a_promotion_gated_on_the_signature_happens_on_its_push_and_takes_the_signature_along() {
    let (emulator, client) = emulator().await;
    let (src, dst) = pair(&client, "sign-then-promote").await;
    let signed = r#"{"rules":[{"name":"promote","semver":true,"repositories":["dev-*"],"to":"prod/{repository}","when":{"signed":true},"tags":["{tag}","stable"]}]}"#;
    let h = handler(emulator, signed);
    // CI pushes the image, then signs it: the image's push promotes nothing yet.
    let digest = push(&client, &src, &manifest("docker-v2"), Some("v6.0.0")).await;
    let report = h.handle(&push_event(&src, &digest, "v6.0.0", None), now()).await.unwrap();
    assert!(report.tags.iter().all(|t| t.outcome == Outcome::Deferred), "{report:?}");
    assert!(state(&client, &dst).await.1.is_empty(), "nothing in the target yet");

    // The signature's own push (untagged, with its artifact type) promotes the image, and the signature with it.
    let signature = push(&client, &src, &manifest("notation-signature"), None).await;
    let report = h.handle(&signature_event(&src, &signature, "application/vnd.cncf.notary.signature"), now()).await.unwrap();
    assert_eq!(
        outcomes(&report),
        [(Some(dst.as_str()), "stable", Outcome::Created), (Some(dst.as_str()), "v6.0.0", Outcome::Created)],
        "{report:?}"
    );
    assert_eq!(state(&client, &dst).await.0["stable"], digest);
    assert_eq!(referrers(&client, &dst, &digest).await, [signature], "verification in the target finds the signature");
}
