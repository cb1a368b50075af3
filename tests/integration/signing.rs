//! Promotion gated on signatures and enhanced scans, against the strict emulator:
//! its referrers, managed-signing status and scan summaries first, then the
//! function's decisions on the events that bring each condition in.

use ecr_retag::report::{Outcome, Report, Status};
use serde_json::json;
use crate::support::*;

const NOTATION: &str = "application/vnd.cncf.notary.signature";
const SIGSTORE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// `stable` once signed; `prod` once signed with Notation and scanned clean of HIGH; `v{major}` always.
const GATED: &str = r#"{"rules":[
    {"name":"signed","semver":true,"when":{"signed":true},"tags":["stable"]},
    {"name":"vetted","semver":true,"when":{"signed":["notation"],"scan":"MEDIUM"},"tags":["prod"]},
    {"name":"plain","semver":true,"tags":["v{major}"]}
]}"#;



fn outcomes(report: &Report) -> Vec<(&str, Outcome)> {
    report.tags.iter().map(|t| (t.tag.as_str(), t.outcome)).collect()
}

fn inspector_event(repo: &str, digest: &str, counts: serde_json::Value) -> serde_json::Value {
    json!({
        "version": "0", "id": "4f7a1c2e-9b3d-4e8f-a6c5-1d2e3f4a5b6c", "detail-type": "Inspector2 Scan",
        "source": "aws.inspector2", "account": ACCOUNT, "time": "2026-11-24T10:20:00Z", "region": REGION,
        "resources": [format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}/{digest}")],
        "detail": {
            "scan-status": "INITIAL_SCAN_COMPLETE",
            "repository-name": format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}"),
            "finding-severity-counts": counts, "image-digest": digest, "image-tags": ["v1.4.2"]
        }
    })
}

#[tokio::test]
async fn the_emulator_lists_referrers_signing_status_and_scans_as_ecr_does() {
    let Scenario { emulator, client, repo } = Scenario::new("referrers", false).await;
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let notation = push(&client, &repo, &manifest("notation-signature"), None).await;
    let sigstore = push(&client, &repo, &manifest("sigstore-bundle"), None).await;
    let subject = aws_sdk_ecr::types::SubjectIdentifier::builder().image_digest(&image).build().unwrap();
    let list = |types: Vec<&str>| {
        let filter = aws_sdk_ecr::types::ListImageReferrersFilter::builder()
            .set_artifact_types(Some(types.into_iter().map(str::to_owned).collect()))
            .build();
        client.list_image_referrers().repository_name(&repo).subject_id(subject.clone()).filter(filter).send()
    };
    let all = list(vec![NOTATION, SIGSTORE]).await.unwrap();
    let mut found: Vec<(&str, Option<&str>)> = all.referrers().iter().map(|r| (r.digest(), r.artifact_type())).collect();
    found.sort();
    let mut expected = vec![(notation.as_str(), Some(NOTATION)), (sigstore.as_str(), Some(SIGSTORE))];
    expected.sort();
    assert_eq!(found, expected);
    let only = list(vec![NOTATION]).await.unwrap();
    assert_eq!(only.referrers().len(), 1);
    assert!(only.referrers()[0].annotations().is_some_and(|a| a.contains_key("org.opencontainers.image.created")));
    assert!(list(vec!["a", "b", "c", "d", "e", "f"]).await.is_err(), "at most five artifact types");
    let none = client.list_image_referrers().repository_name(&repo)
        .subject_id(aws_sdk_ecr::types::SubjectIdentifier::builder().image_digest(&notation).build().unwrap()).send().await.unwrap();
    assert!(none.referrers().is_empty(), "a signature has no referrers of its own");

    let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&image).build();
    let status = || client.describe_image_signing_status().repository_name(&repo).image_id(id.clone()).send();
    assert!(status().await.unwrap().signing_statuses().is_empty(), "pushed without managed signing");
    emulator.managed_signing(&repo, &image, "COMPLETE");
    let statuses = status().await.unwrap();
    assert_eq!(statuses.signing_statuses()[0].status(), Some(&aws_sdk_ecr::types::SigningStatus::Complete));
    let unknown = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(format!("sha256:{}", "0".repeat(64))).build();
    let error = client.describe_image_signing_status().repository_name(&repo).image_id(unknown).send().await.unwrap_err();
    assert!(error.as_service_error().is_some_and(|e| e.is_image_not_found_exception()), "{error:?}");

    emulator.scan_result(&repo, &image, "ACTIVE", Some(json!({"HIGH": 1, "LOW": 3, "UNTRIAGED": 2})));
    let listed = client.describe_images().repository_name(&repo).image_ids(id).send().await.unwrap();
    let detail = &listed.image_details()[0];
    assert_eq!(detail.image_scan_status().and_then(|s| s.status()), Some(&aws_sdk_ecr::types::ScanStatus::Active));
    let counts = detail.image_scan_findings_summary().and_then(|s| s.finding_severity_counts()).unwrap();
    assert_eq!(counts.get(&aws_sdk_ecr::types::FindingSeverity::High), Some(&1));
    assert_eq!(counts.get(&aws_sdk_ecr::types::FindingSeverity::from("UNTRIAGED")), Some(&2));
}

#[tokio::test]
async fn a_push_defers_signed_tags_and_the_signatures_own_push_brings_them_once() {
    let Scenario { emulator, client, repo } = Scenario::new("signed", false).await;
    let h = handler(GATED);
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let before = emulator.calls(&repo);
    let report = h.handle(&push_event(&repo, &image, "v1.4.2", None), now()).await.unwrap();
    assert_eq!(outcomes(&report), [("prod", Outcome::Deferred), ("stable", Outcome::Deferred), ("v1", Outcome::Created)]);
    let looked = emulator.calls_since(&repo, &before);
    assert_eq!(looked, [("BatchGetImage".into(), 2), ("ListImageReferrers".into(), 1), ("PutImage".into(), 1)],
               "one look at the referrers and one at cosign's tag, then the usual read and write");

    // A multi-arch child's untagged push still costs nothing.
    let before = emulator.calls(&repo);
    let child = signature_event(&repo, &image, "application/vnd.oci.image.config.v1+json");
    assert_eq!(h.handle(&child, now()).await.unwrap().status, Status::Ignored);
    assert_eq!(emulator.calls_since(&repo, &before), []);

    let signature = push(&client, &repo, &manifest("notation-signature"), None).await;
    let event = signature_event(&repo, &signature, NOTATION);
    let before = emulator.calls(&repo);
    let report = h.handle(&event, now()).await.unwrap();
    assert_eq!(outcomes(&report), [("prod", Outcome::Deferred), ("stable", Outcome::Created)], "prod still waits for its scan");
    assert_eq!(report.digest.as_deref(), Some(image.as_str()), "the answer is about the signed image");
    assert_eq!(report.signature.as_ref().map(|s| s.kind.as_str()), Some("notation"));
    assert_eq!(emulator.calls_since(&repo, &before),
               [("BatchGetImage".into(), 2), ("DescribeImages".into(), 1), ("PutImage".into(), 1)],
               "the signature's manifest, the image's tags and scan, then the usual read and write");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!((tags["stable"].as_str(), tags["v1"].as_str()), (image.as_str(), image.as_str()));
    assert!(!tags.values().any(|d| *d == signature), "the signature itself is never tagged");

    for _ in 0..3 {
        let again = h.handle(&event, now()).await.unwrap();
        assert_eq!(outcomes(&again), [("prod", Outcome::Deferred), ("stable", Outcome::Unchanged)]);
    }
    assert_eq!(emulator.writes(&repo).get("stable"), Some(&1), "redeliveries write nothing more");
}

#[tokio::test]
async fn a_cosign_signature_tag_brings_the_tags_of_the_image_it_names() {
    let Scenario { emulator, client, repo } = Scenario::new("cosign", false).await;
    let h = handler(GATED);
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    h.handle(&push_event(&repo, &image, "v1.4.2", None), now()).await.unwrap();
    let tag = format!("sha256-{}.sig", image.trim_start_matches("sha256:"));
    let signature = push(&client, &repo, &manifest("cosign-signature"), Some(&tag)).await;
    let before = emulator.calls(&repo);
    let report = h.handle(&push_event(&repo, &signature, &tag, None), now()).await.unwrap();
    assert_eq!(outcomes(&report), [("prod", Outcome::Deferred), ("stable", Outcome::Created)], "prod accepts Notation only");
    assert_eq!(emulator.calls_since(&repo, &before), [("BatchGetImage".into(), 1), ("DescribeImages".into(), 1), ("PutImage".into(), 1)],
               "the tag names the image: its manifest is not read");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["stable"], image);
    let again = h.handle(&push_event(&repo, &signature, &tag, None), now()).await.unwrap();
    assert_eq!(outcomes(&again), [("prod", Outcome::Deferred), ("stable", Outcome::Unchanged)]);
    assert_eq!(emulator.writes(&repo).get("stable"), Some(&1), "a redelivery writes nothing more");
    // A push of the image under another tag finds the signature with one look.
    push(&client, &repo, &manifest("docker-v2"), Some("v1.4.3")).await;
    let report = h.handle(&push_event(&repo, &image, "v1.4.3", None), now()).await.unwrap();
    assert!(outcomes(&report).contains(&("stable", Outcome::Unchanged)), "{report:?}");
}

#[tokio::test]
async fn scan_and_signature_in_either_order_write_the_tag_on_the_last_one_and_block_on_findings() {
    // Signature first: the scan is pending, so prod waits; Inspector's event then finds the signature.
    let Scenario { emulator, client, repo } = Scenario::new("order", false).await;
    let h = handler(GATED);
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    emulator.scan_result(&repo, &image, "PENDING", None);
    let signature = push(&client, &repo, &manifest("notation-signature"), None).await;
    let report = h.handle(&signature_event(&repo, &signature, NOTATION), now()).await.unwrap();
    assert_eq!(outcomes(&report), [("prod", Outcome::Deferred), ("stable", Outcome::Created)]);
    assert!(report.tags[0].detail.as_deref().unwrap().contains("ECR's scan status: PENDING"), "{:?}", report.tags[0]);
    let report = h.handle(&inspector_event(&repo, &image, json!({"CRITICAL": 0, "HIGH": 0, "MEDIUM": 1, "TOTAL": 4})), now()).await.unwrap();
    assert_eq!(outcomes(&report), [("prod", Outcome::Created)]);

    // Scan first: no signature yet, so prod waits; the signature's push then reads the scan.
    let Scenario { emulator, client, repo } = Scenario::new("order", false).await;
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let scan = inspector_event(&repo, &image, json!({"CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "TOTAL": 0}));
    let report = h.handle(&scan, now()).await.unwrap();
    assert_eq!(outcomes(&report), [("prod", Outcome::Deferred)]);
    assert!(report.tags[0].detail.as_deref().unwrap().starts_with("waits for a signature (a Notation signature)"), "{:?}", report.tags);
    emulator.scan_result(&repo, &image, "ACTIVE", Some(json!({})));
    let signature = push(&client, &repo, &manifest("notation-signature"), None).await;
    let report = h.handle(&signature_event(&repo, &signature, NOTATION), now()).await.unwrap();
    assert_eq!(outcomes(&report), [("prod", Outcome::Created), ("stable", Outcome::Created)]);
    assert_eq!(h.handle(&scan, now()).await.unwrap().tags[0].outcome, Outcome::Unchanged, "a late scan event writes nothing more");

    // Signed, but the scan found a HIGH: blocked, with the counts.
    let Scenario { emulator, client, repo } = Scenario::new("order", false).await;
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    emulator.scan_result(&repo, &image, "ACTIVE", Some(json!({"HIGH": 1, "LOW": 2})));
    let signature = push(&client, &repo, &manifest("notation-signature"), None).await;
    let report = h.handle(&signature_event(&repo, &signature, NOTATION), now()).await.unwrap();
    assert_eq!(outcomes(&report), [("prod", Outcome::Blocked), ("stable", Outcome::Created)]);
    assert!(report.tags[0].detail.as_deref().unwrap().contains("HIGH 1, LOW 2"));
}

#[tokio::test]
async fn managed_signing_sends_no_event_so_the_sweep_brings_its_tags_in() {
    let Scenario { emulator, client, repo } = Scenario::new("managed", false).await;
    let rules = r#"{"rules":[{"name":"ecr-signed","semver":true,"when":{"signed":["managed"]},"tags":["stable"]}]}"#;
    let h = handler(rules);
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    emulator.managed_signing(&repo, &image, "IN_PROGRESS");
    let report = h.handle(&push_event(&repo, &image, "v1.4.2", None), now()).await.unwrap();
    assert_eq!(outcomes(&report), [("stable", Outcome::Deferred)]);
    assert!(report.tags[0].detail.as_deref().unwrap().contains("the next sweep writes it"), "{:?}", report.tags);

    emulator.managed_signing(&repo, &image, "COMPLETE");
    let swept = sweep(&h, json!({"repositories": [repo]})).await;
    let r = &swept.repositories[0];
    assert_eq!((r.tags_written, r.held_back), (1, 0), "{r:?}");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["stable"], image);
    let before = emulator.calls(&repo);
    let again = sweep(&h, json!({"repositories": [repo]})).await;
    assert_eq!(again.repositories[0].already_correct, 1);
    assert_eq!(emulator.calls_since(&repo, &before), [("DescribeImages".into(), 1)], "in place: no look for a signature");
}

#[tokio::test]
async fn the_sweep_reads_enhanced_scans_and_says_why_it_holds_a_tag_back() {
    let Scenario { emulator, client, repo } = Scenario::new("enhanced", false).await;
    let rules = r#"{"rules":[{"name":"safe","semver":true,"when":{"scan":"MEDIUM"},"tags":["stable"]}]}"#;
    let h = handler(rules);
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    emulator.scan_result(&repo, &image, "PENDING", None);
    let r = sweep(&h, json!({"repositories": [repo]})).await.repositories.remove(0);
    assert_eq!((r.tags_written, r.held_back), (0, 1));
    assert_eq!(r.held[0].reason, "waits for the image scan: written then if no finding is above MEDIUM (ECR's scan status: PENDING)");

    emulator.scan_result(&repo, &image, "ACTIVE", Some(json!({"HIGH": 1})));
    let r = sweep(&h, json!({"repositories": [repo]})).await.repositories.remove(0);
    assert_eq!((r.tags_written, r.held[0].reason.as_str()), (0, "the scan found HIGH 1; the rule allows findings up to MEDIUM"));

    emulator.scan_result(&repo, &image, "ACTIVE", Some(json!({"MEDIUM": 2, "UNTRIAGED": 1})));
    let r = sweep(&h, json!({"repositories": [repo]})).await.repositories.remove(0);
    assert_eq!(r.tags_written, 1, "{r:?}");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["stable"], image);
}
