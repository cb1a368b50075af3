//! The strict local ECR emulator's own tests: it behaves as ECR does (the reference notes and
//! AWS's documentation) for every behaviour the function relies on, before the function is
//! tested against it.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn the_emulator_carries_out_a_late_call_after_its_caller_gave_up() {
    let Scenario { emulator, client, repo } = Scenario::new("late", false).await;
    let m = manifest("docker-v2");
    let digest = push(&client, &repo, &m, Some("v1.4.2")).await;
    emulator.late("PutImage", &repo, Some("stable"), 1.5, 1);
    // One attempt, given up after 0.5 s.
    let impatient = aws_sdk_ecr::Client::from_conf(
        client
            .config()
            .to_builder()
            .retry_config(aws_sdk_ecr::config::retry::RetryConfig::disabled())
            .timeout_config(aws_sdk_ecr::config::timeout::TimeoutConfig::builder().operation_attempt_timeout(std::time::Duration::from_millis(500)).build())
            .build(),
    );
    let put = impatient.put_image().repository_name(&repo).image_manifest(&m.body).image_manifest_media_type(m.media_type).image_tag("stable");
    let started = std::time::Instant::now();
    assert!(put.send().await.is_err(), "the caller gives up");
    assert!(!state(&client, &repo).await.0.contains_key("stable"), "not yet carried out");
    tokio::time::sleep(std::time::Duration::from_millis(1500).saturating_sub(started.elapsed()) + std::time::Duration::from_millis(300)).await;
    assert_eq!(state(&client, &repo).await.0.get("stable"), Some(&digest), "carried out after the caller left");
    assert_eq!(emulator.writes(&repo).get("stable"), Some(&1));
}

#[tokio::test]
async fn the_emulator_lists_a_referrers_subject_and_every_images_artifact_type_as_ecr_does() {
    let Scenario { client, repo, .. } = Scenario::new("listing", false).await;
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let signature = push(&client, &repo, &manifest("notation-signature"), Some("signed")).await;
    let listed = client.describe_images().repository_name(&repo).send().await.unwrap();
    let of = |digest: &str| listed.image_details().iter().find(|d| d.image_digest() == Some(digest)).unwrap().clone();
    assert_eq!(of(&signature).subject_manifest_digest(), Some(image.as_str()), "the referrer names its subject");
    assert_eq!(of(&signature).artifact_media_type(), Some("application/vnd.cncf.notary.signature"));
    assert_eq!(of(&image).subject_manifest_digest(), None);
    assert_eq!(of(&image).artifact_media_type(), Some("application/vnd.docker.container.image.v1+json"), "an image's config type");
}


#[tokio::test]
async fn the_emulator_archives_as_ecr_does_unreadable_unlisted_and_restored_by_a_push() {
    let Scenario { emulator, client, repo } = Scenario::new("archive", false).await;
    let m = manifest("docker-v2");
    let digest = push(&client, &repo, &m, Some("v1.4.2")).await;
    archive(&client, &repo, &digest).await;
    let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&digest).build();
    let got = client.batch_get_image().repository_name(&repo).image_ids(id).accepted_media_types(m.media_type).send().await.unwrap();
    assert!(got.images().is_empty());
    assert_eq!(got.failures()[0].failure_code().map(|c| c.as_str()), Some("ImageInaccessible"));
    let listed = client.describe_images().repository_name(&repo).send().await.unwrap();
    assert!(listed.image_details().is_empty(), "DescribeImages lists ACTIVE images by default");
    let any = aws_sdk_ecr::types::DescribeImagesFilter::builder().image_status(aws_sdk_ecr::types::ImageStatusFilter::Any).build();
    let listed = client.describe_images().repository_name(&repo).filter(any).send().await.unwrap();
    assert_eq!(listed.image_details()[0].image_status(), Some(&aws_sdk_ecr::types::ImageStatus::Archived));
    assert_eq!(emulator.restores(&repo), json!({}));
    push(&client, &repo, &m, Some("again")).await;
    assert_eq!(emulator.restores(&repo), json!({ digest.clone(): 1 }), "pushing it again restores it");
}

#[tokio::test]
async fn the_emulator_keeps_tags_immutable_except_those_its_exclusion_filters_match_as_ecr_does() {
    use aws_sdk_ecr::types::ImageTagMutability::{ImmutableWithExclusion, MutableWithExclusion};
    let client = Emulator::shared().client();
    let repo = repository_with(&client, "except", ImmutableWithExclusion, &["stable", "v*-latest"]).await.unwrap();
    let (a, b) = (manifest("docker-v2"), manifest("oci-manifest"));
    push(&client, &repo, &a, Some("v1.4.2")).await;
    push(&client, &repo, &a, Some("stable")).await;
    push(&client, &repo, &a, Some("v1-latest")).await;
    push(&client, &repo, &b, Some("v1.5.0")).await;
    let put = |tag: &'static str| {
        let (client, repo, body) = (client.clone(), repo.clone(), b.body.clone());
        async move { client.put_image().repository_name(repo).image_manifest(body).image_tag(tag).send().await }
    };
    assert!(put("stable").await.is_ok(), "a filter covers stable: it moves");
    assert!(put("v1-latest").await.is_ok());
    let refused = put("v1.4.2").await.unwrap_err();
    assert!(refused.as_service_error().is_some_and(|e| e.is_image_tag_already_exists_exception()), "{refused:?}");
    let found = client.describe_repositories().repository_names(&repo).send().await.unwrap();
    let filters: Vec<&str> = found.repositories()[0].image_tag_mutability_exclusion_filters().iter().map(|f| f.filter()).collect();
    assert_eq!((found.repositories()[0].image_tag_mutability(), filters), (Some(&ImmutableWithExclusion), vec!["stable", "v*-latest"]));

    // The other way round: mutable, except the version tags.
    let pinned = repository_with(&client, "pinned", MutableWithExclusion, &["v*.*.*"]).await.unwrap();
    push(&client, &pinned, &a, Some("v1.4.2")).await;
    push(&client, &pinned, &a, Some("stable")).await;
    let moved = client.put_image().repository_name(&pinned).image_manifest(&b.body).image_tag("stable").send().await;
    assert!(moved.is_ok());
    let kept = client.put_image().repository_name(&pinned).image_manifest(&b.body).image_tag("v1.4.2").send().await;
    assert!(kept.unwrap_err().as_service_error().is_some_and(|e| e.is_image_tag_already_exists_exception()));

    // ECR refuses what it refuses.
    let six = ["a", "b", "c", "d", "e", "f"];
    assert!(repository_with(&client, "six", ImmutableWithExclusion, &six).await.unwrap_err().contains("1 to 5 filters"));
    assert!(repository_with(&client, "space", ImmutableWithExclusion, &["a b"]).await.unwrap_err().contains("regular expression"));
    assert!(repository_with(&client, "none", ImmutableWithExclusion, &[]).await.is_err(), "an exclusion mode needs filters");
}

#[tokio::test]
async fn the_emulator_pages_describe_images_as_ecr_may_with_fewer_than_asked() {
    let Scenario { emulator, client, repo } = Scenario::new("pages", false).await;
    for n in 0..5 {
        push(&client, &repo, &numbered_manifest(200 + n), Some(&format!("v1.0.{n}"))).await;
    }
    let page = |size: i32, token: Option<String>| client.describe_images().repository_name(&repo).max_results(size).set_next_token(token).send();
    let first = page(3, None).await.unwrap();
    assert_eq!((first.image_details().len(), first.next_token().is_some()), (3, true));
    emulator.page_images(&repo, 2);
    let (mut seen, mut token) = (Vec::new(), None);
    loop {
        let answer = page(3, token).await.unwrap();
        assert!(answer.image_details().len() <= 2, "at most the repository's page size");
        seen.extend(answer.image_details().iter().map(|d| d.image_digest().unwrap().to_owned()));
        token = answer.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (5, 5), "every image once, over three pages");

    // Repositories too (the page size is the emulator's, for every test: restored at once).
    for _ in 0..2 {
        repository(&client, "pages", false).await;
    }
    emulator.page_repositories(2);
    let first = client.describe_repositories().max_results(10).send().await;
    emulator.page_repositories(1000);
    let first = first.unwrap();
    assert_eq!((first.repositories().len(), first.next_token().is_some()), (2, true), "{first:?}");
    let next = client.describe_repositories().max_results(10).set_next_token(first.next_token().map(str::to_owned)).send().await.unwrap();
    let names = |page: &aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput| {
        page.repositories().iter().filter_map(|r| r.repository_name().map(str::to_owned)).collect::<Vec<_>>()
    };
    let (a, b) = (names(&first), names(&next));
    assert!(a.iter().all(|n| b.iter().all(|m| n < m)), "pages in name order, none twice: {a:?} then {b:?}");
}

/// A registry scanning rule of this frequency for these wildcard filters.
fn scanning_rule(frequency: aws_sdk_ecr::types::ScanFrequency, filters: &[&str]) -> aws_sdk_ecr::types::RegistryScanningRule {
    use aws_sdk_ecr::types::{RegistryScanningRule, ScanningRepositoryFilter, ScanningRepositoryFilterType};
    let filters = filters
        .iter()
        .map(|f| ScanningRepositoryFilter::builder().filter(*f).filter_type(ScanningRepositoryFilterType::Wildcard).build().unwrap())
        .collect();
    RegistryScanningRule::builder().scan_frequency(frequency).set_repository_filters(Some(filters)).build().unwrap()
}

#[tokio::test]
async fn the_emulator_answers_the_registry_settings_doctor_reads_as_ecr_does() {
    use aws_sdk_ecr::types::{ScanFrequency, ScanType};
    // A registry of its own: the registry-wide settings it changes would reach other tests.
    let emulator = Emulator::start(&FUNCTION_OPERATIONS);
    let client = emulator.client();
    let id = std::process::id();

    // Pull-through cache rules: one per prefix, a duplicate refused, unknown prefixes an error, pages.
    let (a, b) = (format!("ptc{id}-a"), format!("ptc{id}-b"));
    for prefix in [&a, &b] {
        client.create_pull_through_cache_rule().ecr_repository_prefix(prefix).upstream_registry_url("public.ecr.aws").send().await.unwrap();
    }
    let again = client.create_pull_through_cache_rule().ecr_repository_prefix(&a).upstream_registry_url("public.ecr.aws").send().await;
    assert!(again.unwrap_err().into_service_error().is_pull_through_cache_rule_already_exists_exception());
    let bad = client.create_pull_through_cache_rule().ecr_repository_prefix("Not/Valid").upstream_registry_url("x").send().await;
    assert!(bad.unwrap_err().into_service_error().is_invalid_parameter_exception());
    let missing = client.describe_pull_through_cache_rules().ecr_repository_prefixes("nowhere").send().await;
    assert!(missing.unwrap_err().into_service_error().is_pull_through_cache_rule_not_found_exception());
    let first = client.describe_pull_through_cache_rules().max_results(1).send().await.unwrap();
    assert_eq!((first.pull_through_cache_rules().len(), first.next_token().is_some()), (1, true));
    let named = client.describe_pull_through_cache_rules().ecr_repository_prefixes(&b).send().await.unwrap();
    assert_eq!(named.pull_through_cache_rules()[0].ecr_repository_prefix(), Some(b.as_str()));

    // Scanning as ECR applies it: whole-name wildcards (moto matched substrings), continuous over
    // scan on push, the repository's own setting only under basic scanning with no rule matching.
    let matched = format!("scan{id}-app");
    let unmatched = format!("x-scan{id}-app");
    let own = format!("own{id}");
    for name in [&matched, &unmatched] {
        client.create_repository().repository_name(name).send().await.unwrap();
    }
    let on_push = aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(true).build();
    client.create_repository().repository_name(&own).image_scanning_configuration(on_push).send().await.unwrap();
    let frequencies = || async {
        let answer = client
            .batch_get_repository_scanning_configuration()
            .repository_names(&matched)
            .repository_names(&unmatched)
            .repository_names(&own)
            .repository_names("nowhere")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.failures()[0].repository_name(), Some("nowhere"));
        answer.scanning_configurations().iter().map(|c| c.scan_frequency().unwrap().as_str().to_owned()).collect::<Vec<_>>()
    };
    client
        .put_registry_scanning_configuration()
        .scan_type(ScanType::Basic)
        .rules(scanning_rule(ScanFrequency::ScanOnPush, &[&format!("scan{id}-*")]))
        .send()
        .await
        .unwrap();
    assert_eq!(frequencies().await, ["SCAN_ON_PUSH", "MANUAL", "SCAN_ON_PUSH"]);
    client
        .put_registry_scanning_configuration()
        .scan_type(ScanType::Enhanced)
        .rules(scanning_rule(ScanFrequency::ScanOnPush, &["*"]))
        .rules(scanning_rule(ScanFrequency::ContinuousScan, &[&format!("scan{id}-*")]))
        .send()
        .await
        .unwrap();
    assert_eq!(frequencies().await, ["CONTINUOUS_SCAN", "SCAN_ON_PUSH", "SCAN_ON_PUSH"]);
    client.put_registry_scanning_configuration().scan_type(ScanType::Enhanced).send().await.unwrap();
    assert_eq!(frequencies().await, ["MANUAL", "MANUAL", "MANUAL"], "enhanced scanning scans only what its rules name");
    client.put_registry_scanning_configuration().scan_type(ScanType::Basic).send().await.unwrap();

    // Lifecycle policies in today's schema (archive storage class, pull times); none is an error.
    let policy = r#"{"rules": [
        {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["v*"], "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90},
         "action": {"type": "transition", "targetStorageClass": "archive"}},
        {"rulePriority": 2, "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 365},
         "action": {"type": "expire"}}]}"#;
    let none = client.get_lifecycle_policy().repository_name(&own).send().await;
    assert!(none.unwrap_err().into_service_error().is_lifecycle_policy_not_found_exception());
    client.put_lifecycle_policy().repository_name(&own).lifecycle_policy_text(policy).send().await.unwrap();
    let got = client.get_lifecycle_policy().repository_name(&own).send().await.unwrap();
    assert_eq!(got.lifecycle_policy_text(), Some(policy));

    // Amazon Inspector's ECR rescan window (its GetConfiguration, which moto lacks): LIFETIME
    // until an organisation shortens it, to as little as DAYS_3 since July 2026.
    let inspector = aws_sdk_inspector2::Client::from_conf(
        aws_sdk_inspector2::Config::builder()
            .behavior_version(aws_sdk_inspector2::config::BehaviorVersion::latest())
            .region(aws_sdk_inspector2::config::Region::new(REGION))
            .credentials_provider(aws_sdk_inspector2::config::Credentials::new("test", "test", None, None, "tests"))
            .endpoint_url(&emulator.endpoint)
            .build(),
    );
    let window = || async {
        let answer = inspector.get_configuration().send().await.unwrap();
        let state = answer.ecr_configuration().and_then(|c| c.rescan_duration_state()).cloned().unwrap();
        (state.rescan_duration().map(|d| d.as_str().to_owned()), state.status().map(|s| s.as_str().to_owned()))
    };
    assert_eq!(window().await, (Some("LIFETIME".to_owned()), Some("SUCCESS".to_owned())));
    emulator.inspector_rescan("DAYS_3");
    assert_eq!(window().await.0.as_deref(), Some("DAYS_3"));
}

#[tokio::test]
async fn the_emulator_mounts_blobs_between_repositories_and_checks_a_pushs_blobs_as_ecr_does() {
    // A registry of its own: BLOB_MOUNTING is account-wide, and other tests' promotions read it.
    let emulator = &Emulator::start(&FUNCTION_OPERATIONS);
    let client = emulator.client();
    let ours = function_client(&emulator.endpoint);
    let m = numbered_manifest(80_001);
    let (src, dst) = (repository(&client, "mount-src", false).await, repository(&client, "mount-dst", false).await);
    let digest = push(&client, &src, &m, Some("v1.0.0")).await;
    let blobs = blobs_of(&m.body);
    let put = |repo: &str| ours.put_image().repository_name(repo).image_manifest(&m.body).image_manifest_media_type(m.media_type).image_tag("v1.0.0").send();

    // ecr-retag's PutImage into a repository without the blobs: LayersNotFoundException.
    let refused = put(&dst).await.unwrap_err().into_service_error();
    assert!(refused.is_layers_not_found_exception(), "{refused:?}");

    // The registry API wants the ECR token (HTTP Basic AWS:<password>).
    let token = client.get_authorization_token().send().await.unwrap().authorization_data()[0].authorization_token().unwrap().to_owned();
    assert_eq!(emulator.registry("HEAD", &format!("/v2/{src}/blobs/{}", blobs[0]), None, b"").0, 401);
    assert_eq!(emulator.registry("HEAD", &format!("/v2/{src}/blobs/{}", blobs[0]), Some(&token), b"").0, 200);
    assert_eq!(emulator.registry("HEAD", &format!("/v2/{dst}/blobs/{}", blobs[0]), Some(&token), b"").0, 404);
    let mount = |blob: &str, from: &str, into: &str| emulator.registry("POST", &format!("/v2/{into}/blobs/uploads/?mount={blob}&from={from}"), Some(&token), b"");

    // BLOB_MOUNTING off (the default): 202, an upload session instead of a mount.
    let setting = client.get_account_setting().name("BLOB_MOUNTING").send().await.unwrap();
    assert_eq!(setting.value(), Some("DISABLED"));
    let (status, head) = mount(&blobs[0], &src, &dst);
    assert_eq!(status, 202, "{head}");
    assert!(head.contains(&format!("Location: /v2/{dst}/blobs/uploads/")), "{head}");
    // That session stays open until it is used or cancelled (DELETE on its Location: 204, then 404).
    let open = || emulator.calls(&dst).get("uploads_open").copied();
    assert_eq!(open(), Some(1));
    let session = head.lines().find_map(|l| l.strip_prefix("Location: ")).unwrap().to_owned();
    assert_eq!(emulator.registry("DELETE", &session, Some(&token), b"").0, 204);
    assert_eq!(emulator.registry("DELETE", &session, Some(&token), b"").0, 404);
    assert_eq!(open(), Some(0));
    client.put_account_setting().name("BLOB_MOUNTING").value("ENABLED").send().await.unwrap();

    // Another encryption than the source's: 202; a blob no committed manifest of the source names: 202.
    let kms = kms();
    let sealed = format!("mount-kms-{}", std::process::id());
    client.create_repository().repository_name(&sealed).encryption_configuration(kms).send().await.unwrap();
    assert_eq!(mount(&blobs[0], &src, &sealed).0, 202);
    assert_eq!(mount(&format!("sha256:{}", "e".repeat(64)), &src, &dst).0, 202);
    assert_eq!(mount(&blobs[0], &src, "mount-nowhere").0, 404);
    // A test may have ECR decline a mount it would otherwise make (the open questions' answer going the other way).
    emulator.fault("RegistryBlobMount", &dst, None, "decline", 1);
    assert_eq!(mount(&blobs[0], &src, &dst).0, 202);

    // Mounted: 201, the blob is there, and once every blob is, the same bytes put there get the same digest.
    for blob in &blobs {
        let (status, head) = mount(blob, &src, &dst);
        assert_eq!(status, 201, "{head}");
        assert!(head.contains(&format!("Docker-Content-Digest: {blob}")), "{head}");
    }
    assert_eq!(emulator.registry("HEAD", &format!("/v2/{dst}/blobs/{}", blobs[1]), Some(&token), b"").0, 200);
    let available = client.batch_check_layer_availability().repository_name(&dst).set_layer_digests(Some(blobs.clone())).send().await.unwrap();
    assert_eq!(available.layers().len(), blobs.len(), "{available:?}");
    put(&dst).await.unwrap();
    assert_eq!(state(&client, &dst).await.0["v1.0.0"], digest);
    assert_eq!(emulator.calls(&dst).get("RegistryBlobMount"), Some(&(blobs.len() as u64 + 3)), "counted per target repository");

    // An index whose children are not in the repository: ReferencedImagesNotFoundException.
    let index = manifest("docker-manifest-list");
    let refused = ours.put_image().repository_name(&dst).image_manifest(&index.body).image_manifest_media_type(index.media_type).image_tag("multi").send().await;
    assert!(refused.unwrap_err().into_service_error().is_referenced_images_not_found_exception());

    // A blob uploaded whole: 201 when the bytes hash to the digest named, 400 otherwise.
    let (status, head) = emulator.registry("POST", &format!("/v2/{sealed}/blobs/uploads/"), Some(&token), b"");
    assert_eq!(status, 202, "{head}");
    let location = head.lines().find_map(|l| l.strip_prefix("Location: ")).unwrap().to_owned();
    let bytes = b"a layer";
    let wrong = format!("{location}?digest=sha256:{}", "0".repeat(64));
    assert_eq!(emulator.registry("PUT", &wrong, Some(&token), bytes).0, 400);
    let right = format!("{location}?digest={}", sha256_digest(bytes));
    assert_eq!(emulator.registry("PUT", &right, Some(&token), bytes).0, 201);
    assert_eq!(emulator.registry("HEAD", &format!("/v2/{sealed}/blobs/{}", sha256_digest(bytes)), Some(&token), b"").0, 200);
    client.put_account_setting().name("BLOB_MOUNTING").value("DISABLED").send().await.unwrap();
}

#[tokio::test]
async fn the_emulator_keeps_uploaded_blobs_bytes_and_serves_them_through_download_urls_as_ecr_does() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    let repo = repository(&client, "layers", false).await;
    let bytes = blob_bytes(3, 6 * 1024 * 1024 + 17);
    let part = |id: &str, first: usize, last: usize| {
        client
            .upload_layer_part()
            .repository_name(&repo)
            .upload_id(id)
            .part_first_byte(first as i64)
            .part_last_byte(last as i64)
            .layer_part_blob(aws_sdk_ecr::primitives::Blob::new(bytes[first..=last].to_vec()))
            .send()
    };
    let complete = |id: &str, digest: &str| client.complete_layer_upload().repository_name(&repo).upload_id(id).layer_digests(digest).send();
    let digest = sha256_digest(&bytes);

    // Parts but the last under 5 MiB: refused at completion.
    let small = client.initiate_layer_upload().repository_name(&repo).send().await.unwrap();
    let small = small.upload_id().unwrap().to_owned();
    part(&small, 0, 1024 * 1024 - 1).await.unwrap();
    part(&small, 1024 * 1024, bytes.len() - 1).await.unwrap();
    assert!(complete(&small, &digest).await.unwrap_err().into_service_error().is_layer_part_too_small_exception());
    // Bytes that do not hash to the digest named: InvalidLayerException.
    let wrong = client.initiate_layer_upload().repository_name(&repo).send().await.unwrap().upload_id().unwrap().to_owned();
    part(&wrong, 0, bytes.len() - 1).await.unwrap();
    assert!(complete(&wrong, &format!("sha256:{}", "1".repeat(64))).await.unwrap_err().into_service_error().is_invalid_layer_exception());
    // 5 MiB, then the rest: accepted, and the layer is there.
    let good = client.initiate_layer_upload().repository_name(&repo).send().await.unwrap().upload_id().unwrap().to_owned();
    part(&good, 0, 5 * 1024 * 1024 - 1).await.unwrap();
    part(&good, 5 * 1024 * 1024, bytes.len() - 1).await.unwrap();
    assert_eq!(complete(&good, &digest).await.unwrap().layer_digest(), Some(digest.as_str()));
    let again = upload_blob_result(&client, &repo, &bytes).await;
    assert!(again.is_err_and(|e| e.is_layer_already_exists_exception()), "the same layer twice");

    // A download URL serves the bytes without credentials, as ECR's presigned S3 URLs do.
    let url = client.get_download_url_for_layer().repository_name(&repo).layer_digest(&digest).send().await.unwrap();
    let (status, served) = emulator.fetch(url.download_url().unwrap());
    assert_eq!((status, served.len()), (200, bytes.len()));
    assert_eq!(sha256_digest(&served), digest);
    // A blob a docker push stand-in only named has no bytes here; one nowhere is not found.
    let pushed = numbered_manifest(82_001);
    push(&client, &repo, &pushed, Some("v1")).await;
    let named = blobs_of(&pushed.body)[0].clone();
    let inaccessible = client.get_download_url_for_layer().repository_name(&repo).layer_digest(&named).send().await;
    assert!(inaccessible.unwrap_err().into_service_error().is_layer_inaccessible_exception());
    let nowhere = client.get_download_url_for_layer().repository_name(&repo).layer_digest(format!("sha256:{}", "2".repeat(64))).send().await;
    assert!(nowhere.unwrap_err().into_service_error().is_layers_not_found_exception());
}

/// One upload of `bytes` into `repo`, its completion's error kept.
async fn upload_blob_result(
    client: &aws_sdk_ecr::Client,
    repo: &str,
    bytes: &[u8],
) -> Result<(), aws_sdk_ecr::operation::complete_layer_upload::CompleteLayerUploadError> {
    let id = client.initiate_layer_upload().repository_name(repo).send().await.unwrap().upload_id().unwrap().to_owned();
    let blob = aws_sdk_ecr::primitives::Blob::new(bytes.to_vec());
    client.upload_layer_part().repository_name(repo).upload_id(&id).part_first_byte(0).part_last_byte(bytes.len() as i64 - 1).layer_part_blob(blob).send().await.unwrap();
    let done = client.complete_layer_upload().repository_name(repo).upload_id(&id).layer_digests(sha256_digest(bytes)).send().await;
    done.map(|_| ()).map_err(|e| e.into_service_error())
}

#[tokio::test]
async fn the_emulators_kms_signs_a_sha256_digest_as_kms_does_and_refuses_what_kms_refuses() {
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
    use aws_sdk_kms::primitives::Blob;
    use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
    let emulator = Emulator::shared();
    let (arn, public) = signing_key(&emulator.endpoint).await;
    let kms = kms_client(&emulator.endpoint);
    // DER SubjectPublicKeyInfo of a P-256 key: 26 bytes of algorithm, then the 65-byte point.
    assert_eq!(public.len(), 91);
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public[26..]);
    let message = b"DSSEv1 28 application/vnd.in-toto+json 2 {}";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
    let sign = |bytes: &[u8], kind: MessageType| {
        kms.sign().key_id(&arn).message(Blob::new(bytes)).message_type(kind).signing_algorithm(SigningAlgorithmSpec::EcdsaSha256).send()
    };
    let signed = sign(digest.as_ref(), MessageType::Digest).await.unwrap();
    assert_eq!(signed.key_id(), Some(arn.as_str()), "Sign names the key by its ARN");
    let id = arn.rsplit('/').next().unwrap();
    assert_eq!(kms.get_public_key().key_id(id).send().await.unwrap().key_id(), Some(arn.as_str()), "and GetPublicKey too");
    assert!(key.verify(message, signed.signature().unwrap().as_ref()).is_ok(), "a DIGEST is the SHA-256 of the message, signed as it is");
    let raw = sign(message, MessageType::Raw).await.unwrap();
    assert!(key.verify(message, raw.signature().unwrap().as_ref()).is_ok(), "a RAW message is hashed by KMS");
    for (bytes, kind, says) in [(vec![b'x'; 4097], MessageType::Raw, "too long"), (vec![b'x'; 31], MessageType::Digest, "invalid length")] {
        let refused = sign(&bytes, kind).await.unwrap_err();
        let service = aws_sdk_kms::error::DisplayErrorContext(&refused).to_string();
        assert!(service.contains(says), "{service}");
    }
}
