//! The handler with the real ECR adapter against the strict local ECR (the emulator's own tests:
//! `emulator.rs`).

use ecr_retag::config::Config;
use ecr_retag::registry::ecr::Ecr;
use ecr_retag::lambda::Handler;
use ecr_retag::report::{Outcome, Report, Status};
use ecr_retag::error::RetagError;
use ecr_retag::domain::rules::RuleSet;
use serde_json::json;
use crate::support::*;

const RELEASE: &str = r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}","v{major}.{minor}","{date:%Y%m%d}"]}]}"#;




fn outcomes(report: &Report) -> Vec<(String, Outcome)> {
    report.tags.iter().map(|t| (t.tag.clone(), t.outcome)).collect()
}

fn all(tags: &[&str], outcome: Outcome) -> Vec<(String, Outcome)> {
    tags.iter().map(|t| (t.to_string(), outcome)).collect()
}

const RELEASE_TAGS: [&str; 4] = ["20261124", "stable", "v1", "v1.4"];

#[tokio::test]
async fn every_manifest_kind_gets_its_tags_with_the_same_digest_and_bytes() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    for name in ALL_MANIFESTS {
        let m = manifest(name);
        let repo = repository(&client, "kinds", false).await;
        let digest = push(&client, &repo, &m, Some("v1.4.2")).await;
        assert_eq!(digest, m.digest(), "{name}: the emulator digests the bytes, as ECR does");

        // Older events carry no media type: the adapter must use ECR's answer.
        let report = handler(RELEASE).handle(&push_event(&repo, &digest, "v1.4.2", None), now()).await.unwrap();
        assert_eq!(report.status, Status::Applied, "{name}");
        assert_eq!(outcomes(&report), all(&RELEASE_TAGS, Outcome::Created), "{name}");

        let (tags, manifests) = state(&client, &repo).await;
        for t in RELEASE_TAGS.iter().chain(["v1.4.2"].iter()) {
            assert_eq!(tags.get(*t), Some(&digest), "{name}: {t} points at the pushed digest");
        }
        assert_eq!(manifests.len(), 1, "{name}: still one image");
        assert_eq!(manifests[&digest], m.body, "{name}: stored bytes unchanged");
    }
}

#[tokio::test]
async fn a_push_costs_one_read_and_one_write_per_tag_and_a_redelivery_one_read() {
    let Scenario { emulator, client, repo } = Scenario::new("economy", false).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let event = push_event(&repo, &digest, "v1.4.2", Some(manifest("docker-v2").media_type));

    handler(RELEASE).handle(&event, now()).await.unwrap();
    let calls = emulator.calls(&repo);
    assert_eq!(calls.get("BatchGetImage"), Some(&1));
    assert_eq!(calls.get("PutImage"), Some(&5), "the seeding push and one per derived tag");

    let again = handler(RELEASE).handle(&event, now()).await.unwrap();
    assert_eq!(outcomes(&again), all(&RELEASE_TAGS, Outcome::Unchanged));
    let calls = emulator.calls(&repo);
    assert_eq!(calls.get("BatchGetImage"), Some(&2));
    assert_eq!(calls.get("PutImage"), Some(&5), "a redelivery writes nothing");
}

#[tokio::test]
async fn a_tag_no_rule_matches_makes_no_call() {
    let Scenario { emulator, client, repo } = Scenario::new("nomatch", false).await;
    let digest = push(&client, &repo, &manifest("oci-manifest"), Some("latest")).await;
    let before = emulator.calls(&repo);
    let report = handler(RELEASE).handle(&push_event(&repo, &digest, "latest", None), now()).await.unwrap();
    assert_eq!(report.status, Status::Ignored);
    assert_eq!(emulator.calls(&repo), before);
}

#[tokio::test]
async fn a_newer_release_moves_the_moving_tags_and_leaves_the_old_image_its_own() {
    let Scenario { client, repo, .. } = Scenario::new("move", false).await;
    let old = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    handler(RELEASE).handle(&push_event(&repo, &old, "v1.4.2", None), now()).await.unwrap();
    let new = push(&client, &repo, &manifest("oci-manifest"), Some("v1.5.0")).await;
    let mut event = push_event(&repo, &new, "v1.5.0", None);
    event["time"] = json!("2026-11-25T08:00:00Z");

    let report = handler(RELEASE).handle(&event, now()).await.unwrap();
    let got: Vec<(String, Outcome, Option<String>)> =
        report.tags.iter().map(|t| (t.tag.clone(), t.outcome, t.detail.clone())).collect();
    let was = Some(format!("was {old}"));
    assert_eq!(
        got,
        vec![
            ("20261125".into(), Outcome::Created, None),
            ("stable".into(), Outcome::Moved, was.clone()),
            ("v1".into(), Outcome::Moved, was),
            ("v1.5".into(), Outcome::Created, None),
        ]
    );
    let (tags, manifests) = state(&client, &repo).await;
    assert_eq!(tags["stable"], new);
    assert_eq!(tags["v1.4"], old);
    assert_eq!(tags["20261124"], old);
    assert_eq!(manifests.len(), 2, "nothing is deleted");
}

#[tokio::test]
async fn in_an_immutable_repository_existing_tags_are_unchanged_or_a_named_conflict() {
    let Scenario { client, repo, .. } = Scenario::new("immutable", true).await;
    let first = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let event = push_event(&repo, &first, "v1.4.2", None);
    handler(RELEASE).handle(&event, now()).await.unwrap();
    let again = handler(RELEASE).handle(&event, now()).await.unwrap();
    assert_eq!(outcomes(&again), all(&RELEASE_TAGS, Outcome::Unchanged));

    let second = push(&client, &repo, &manifest("oci-manifest"), Some("v1.5.0")).await;
    let err = handler(RELEASE).handle(&push_event(&repo, &second, "v1.5.0", None), now()).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.TagsNotApplied");
    let report = err.report().unwrap();
    assert_eq!(
        outcomes(report),
        vec![
            ("20261124".into(), Outcome::Conflict),
            ("stable".into(), Outcome::Conflict),
            ("v1".into(), Outcome::Conflict),
            ("v1.5".into(), Outcome::Created),
        ]
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("`stable` conflict (the tag is immutable and points at {first}; the repository is IMMUTABLE; to let `stable` move: ")),
        "{message}"
    );
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["stable"], first, "an immutable tag is never moved");
    assert_eq!(tags["v1.5"], second);
}

#[tokio::test]
async fn the_same_event_delivered_ten_times_at_once_ends_in_the_same_tags_without_errors() {
    for immutable in [false, true] {
        let client = Emulator::shared().client();
        let repo = repository(&client, "storm", immutable).await;
        let digest = push(&client, &repo, &manifest("docker-manifest-list"), Some("v1.4.2")).await;
        let event = push_event(&repo, &digest, "v1.4.2", None);
        let h = handler(RELEASE);
        let results = futures_util::future::join_all((0..10).map(|_| h.handle(&event, now()))).await;
        for r in &results {
            assert!(r.is_ok(), "immutable={immutable}: {:?}", r.as_ref().err().map(ToString::to_string));
        }
        let created: usize = results
            .iter()
            .flat_map(|r| r.as_ref().unwrap().tags.iter())
            .filter(|t| t.outcome == Outcome::Created)
            .count();
        assert_eq!(created, 4, "immutable={immutable}: each tag is created by exactly one delivery");
        let (tags, _) = state(&client, &repo).await;
        for t in RELEASE_TAGS {
            assert_eq!(tags[t], digest);
        }
    }
}

#[tokio::test]
async fn a_dry_run_reports_and_writes_nothing() {
    let Scenario { emulator, client, repo } = Scenario::new("dry", false).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let request = json!({"repository": repo, "tag": "v1.4.2", "digest": digest, "dry_run": true});
    let report = handler(RELEASE).handle(&request, now()).await.unwrap();
    assert_eq!(report.status, Status::DryRun);
    assert_eq!(outcomes(&report), all(&RELEASE_TAGS, Outcome::WouldCreate));
    assert_eq!(emulator.calls(&repo).get("PutImage"), Some(&1), "only the seeding push");
}

#[tokio::test]
async fn a_direct_request_without_digest_retags_the_tags_current_image() {
    let Scenario { client, repo, .. } = Scenario::new("direct", false).await;
    let digest = push(&client, &repo, &manifest("oci-index-no-mediatype"), Some("v1.4.2")).await;
    let report = handler(RELEASE)
        .handle(&json!({"repository": repo, "tag": "v1.4.2", "registry_id": ACCOUNT}), now())
        .await
        .unwrap();
    assert_eq!(report.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(outcomes(&report), all(&RELEASE_TAGS, Outcome::Created));
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["stable"], digest);
}

#[tokio::test]
async fn a_missing_repository_or_image_is_a_permanent_error() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    let gone = "never-created";
    let err = handler(RELEASE)
        .handle(&push_event(gone, &manifest("docker-v2").digest(), "v1.4.2", None), now())
        .await
        .unwrap_err();
    assert!(matches!(err, RetagError::RepositoryNotFound { .. }), "{err}");
    assert_eq!(err.error_type(), "Permanent.RepositoryNotFound");

    let repo = repository(&client, "noimage", false).await;
    let err = handler(RELEASE)
        .handle(&push_event(&repo, &manifest("docker-v2").digest(), "v1.4.2", None), now())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Permanent.ImageNotFound");
    assert_eq!(emulator.calls(&repo).get("BatchGetImage"), Some(&1), "one read, no retries");
}

#[tokio::test]
async fn an_event_from_another_region_is_served_in_that_region() {
    let Scenario { emulator, client, repo } = Scenario::new("region", false).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    // The function's own client is in us-east-1; the event says eu-west-1, where the image is.
    let config = Config::with_rules(RuleSet::from_json(RELEASE).unwrap());
    let h = Handler::new(Ecr::new(client_in(&emulator.endpoint, "us-east-1")), config);
    let report = h.handle(&push_event(&repo, &digest, "v1.4.2", None), now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&RELEASE_TAGS, Outcome::Created));
}

#[tokio::test]
async fn a_rule_set_that_would_trigger_itself_forever_writes_nothing() {
    let Scenario { emulator, client, repo } = Scenario::new("loop", false).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1")).await;
    let rules = r#"{"rules":[{"name":"grow","match":".*","tags":["{tag}-x","fixed"]}]}"#;
    let err = handler(rules).handle(&push_event(&repo, &digest, "v1", None), now()).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.TagsNotApplied");
    let report = err.report().unwrap();
    assert_eq!(outcomes(report), all(&["fixed", "v1-x"], Outcome::Invalid));
    assert!(report.tags[1].detail.as_deref().unwrap().contains("rule \"grow\" would derive `v1-x-x`"), "{report:?}");
    assert_eq!(emulator.calls(&repo).get("PutImage"), Some(&1), "only the seeding push");
    assert_eq!(emulator.calls(&repo).get("BatchGetImage"), None, "nothing to write, nothing to read");
}

const FAULTS: [&str; 4] = ["throttle", "500", "503", "reset"];

#[tokio::test]
async fn faults_the_sdk_retries_absorb_leave_every_tag_in_place() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    for kind in FAULTS {
        let repo = repository(&client, &format!("absorb{kind}"), false).await;
        let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
        emulator.fault("PutImage", &repo, Some("stable"), kind, 2);
        emulator.fault("BatchGetImage", &repo, None, kind, 2);
        let report = handler(RELEASE).handle(&push_event(&repo, &digest, "v1.4.2", None), now()).await;
        let report = report.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(outcomes(&report), all(&RELEASE_TAGS, Outcome::Created), "{kind}");
        let calls = emulator.calls(&repo);
        assert_eq!(calls["BatchGetImage"], 3, "{kind}: two faults, then the answer");
        assert_eq!(calls["PutImage"], 1 + 4 + 2, "{kind}: the seeding push, four tags, two faulted attempts");
        assert!(emulator.writes(&repo).values().all(|n| *n == 1), "{kind}: {:?}", emulator.writes(&repo));
    }
}

#[tokio::test]
async fn faults_that_outlast_the_retries_fail_those_tags_and_the_next_delivery_finishes_the_job() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    for kind in FAULTS {
        let repo = repository(&client, &format!("outlast{kind}"), false).await;
        let digest = push(&client, &repo, &manifest("oci-manifest"), Some("v1.4.2")).await;
        let event = push_event(&repo, &digest, "v1.4.2", None);
        emulator.fault("PutImage", &repo, Some("v1"), kind, 3);
        let err = handler(RELEASE).handle(&event, now()).await.unwrap_err();
        assert_eq!(err.error_type(), "Retryable.TagsNotApplied", "{kind}: {err}");
        assert!(err.to_string().starts_with(&format!("1 of 4 tags not in place for {repo}@{digest}: `v1` failed (")), "{kind}: {err}");
        let report = err.report().unwrap();
        assert_eq!(report.tags.iter().filter(|t| t.outcome == Outcome::Created).count(), 3, "{kind}");

        let report = handler(RELEASE).handle(&event, now()).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(
            outcomes(&report),
            vec![
                ("20261124".into(), Outcome::Unchanged),
                ("stable".into(), Outcome::Unchanged),
                ("v1".into(), Outcome::Created),
                ("v1.4".into(), Outcome::Unchanged),
            ],
            "{kind}"
        );
        let writes = emulator.writes(&repo);
        assert_eq!(writes.len(), 5, "{kind}: {writes:?}");
        assert!(writes.values().all(|n| *n == 1), "{kind}: no tag written twice: {writes:?}");
    }
}

#[tokio::test]
async fn a_read_that_keeps_failing_writes_nothing_and_the_next_delivery_finishes_the_job() {
    let Scenario { emulator, client, repo } = Scenario::new("readfail", false).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let event = push_event(&repo, &digest, "v1.4.2", None);
    emulator.fault("BatchGetImage", &repo, None, "503", 3);
    let err = handler(RELEASE).handle(&event, now()).await.unwrap_err();
    assert_eq!(err.error_type(), "Retryable.ReadFailed", "{err}");
    assert_eq!(emulator.writes(&repo).len(), 1, "only the seeding push");
    let report = handler(RELEASE).handle(&event, now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&RELEASE_TAGS, Outcome::Created));
}

#[tokio::test]
async fn a_hung_write_is_cut_by_the_attempt_timeout_and_retried() {
    let Scenario { emulator, client, repo } = Scenario::new("hang", false).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    emulator.fault("PutImage", &repo, Some("v1.4"), "hang", 1);
    let started = std::time::Instant::now();
    let report = handler(RELEASE).handle(&push_event(&repo, &digest, "v1.4.2", None), now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&RELEASE_TAGS, Outcome::Created));
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "within one operation timeout: {:?}", started.elapsed());
}

#[tokio::test]
async fn the_same_event_ten_times_in_a_row_writes_once() {
    let Scenario { emulator, client, repo } = Scenario::new("row", false).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let event = push_event(&repo, &digest, "v1.4.2", None);
    for delivery in 0..10 {
        let report = handler(RELEASE).handle(&event, now()).await.unwrap();
        let expected = if delivery == 0 { Outcome::Created } else { Outcome::Unchanged };
        assert_eq!(outcomes(&report), all(&RELEASE_TAGS, expected), "delivery {delivery}");
    }
    assert_eq!(emulator.calls(&repo)["PutImage"], 1 + 4);
    assert_eq!(emulator.calls(&repo)["BatchGetImage"], 10);
}

#[tokio::test]
async fn two_images_racing_for_stable_end_with_one_of_them_and_both_say_what_they_did() {
    let client = Emulator::shared().client();
    for round in 0..5 {
        let repo = repository(&client, &format!("race{round}"), false).await;
        let a = push(&client, &repo, &manifest("docker-v2"), Some("v1.0.0")).await;
        let b = push(&client, &repo, &manifest("oci-manifest"), Some("v2.0.0")).await;
        let rules = r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#;
        let (ha, hb) = (handler(rules), handler(rules));
        let (ea, eb) = (push_event(&repo, &a, "v1.0.0", None), push_event(&repo, &b, "v2.0.0", None));
        let (ra, rb) = tokio::join!(ha.handle(&ea, now()), hb.handle(&eb, now()));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let (tags, _) = state(&client, &repo).await;
        let winner = &tags["stable"];
        assert!(winner == &a || winner == &b, "round {round}");
        // Each write succeeded, so each says created or moved; the last writer holds the tag.
        for r in [&ra, &rb] {
            assert!(matches!(r.tags[0].outcome, Outcome::Created | Outcome::Moved | Outcome::Unchanged), "round {round}: {r:?}");
        }
        let winner_report = if winner == &a { &ra } else { &rb };
        assert!(matches!(winner_report.tags[0].outcome, Outcome::Created | Outcome::Moved), "round {round}: {winner_report:?}");
        let loser_report = if winner == &a { &rb } else { &ra };
        if loser_report.tags[0].outcome == Outcome::Moved {
            let detail = loser_report.tags[0].detail.clone().unwrap();
            assert!(detail == format!("was {a}") || detail == format!("was {b}"), "round {round}: {detail}");
        }
    }
}

#[tokio::test]
async fn a_direct_request_finds_the_repository_arn_for_its_opt_in_tag_and_removes_only_the_source() {
    let Scenario { emulator, client, repo } = Scenario::new("optin", false).await;
    let arn = format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}");
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(aws_sdk_ecr::types::Tag::builder().key("retag").value("enabled").build().unwrap())
        .send()
        .await
        .unwrap();
    let m = manifest("oci-manifest");
    let digest = push(&client, &repo, &m, Some("latest")).await;
    let rules = r#"{"rules":[{"name":"retire","match":"latest","repository_tags":{"retag":"enabled"},"remove_source":true,"tags":["edge"]}]}"#;

    // No registry_id: the account is unknown, so the ARN comes from DescribeRepositories.
    let request = json!({"repository": repo, "tag": "latest"});
    let report = handler(rules).handle(&request, now()).await.unwrap();
    assert_eq!(outcomes(&report), [("edge".to_owned(), Outcome::Created), ("latest".to_owned(), Outcome::Removed)]);
    let calls = emulator.calls(&repo);
    assert_eq!((calls.get("DescribeRepositories"), calls.get("BatchDeleteImage")), (Some(&1), Some(&1)), "{calls:?}");
    let (tags, manifests) = state(&client, &repo).await;
    assert_eq!(tags, [("edge".to_owned(), digest.clone())].into(), "the image keeps its derived tag");
    assert_eq!(manifests[&digest], m.body);

    // A repository without the tag: nothing happens.
    let plain = repository(&client, "optin", false).await;
    push(&client, &plain, &m, Some("latest")).await;
    let report = handler(rules).handle(&json!({"repository": plain, "tag": "latest"}), now()).await.unwrap();
    assert_eq!(report.status, Status::Ignored);
    assert_eq!(state(&client, &plain).await.0.keys().collect::<Vec<_>>(), ["latest"]);
}

#[tokio::test]
async fn an_image_at_the_tag_limit_gets_a_permanent_outcome_naming_the_limit_without_retries() {
    let Scenario { emulator, client, repo } = Scenario::new("full", false).await;
    // Three tags per image here stand in for ECR's 1,000: the image has one, the rules derive four.
    emulator.limit_tags(&repo, 3);
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;

    let err = handler(RELEASE).handle(&push_event(&repo, &digest, "v1.4.2", None), now()).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.TagsNotApplied", "{err}");
    let report = err.report().unwrap();
    let count = |o: Outcome| report.tags.iter().filter(|t| t.outcome == o).count();
    assert_eq!((count(Outcome::Created), count(Outcome::TagLimit)), (2, 2), "{report:?}");
    let refused = report.tags.iter().find(|t| t.outcome == Outcome::TagLimit).unwrap();
    let detail = refused.detail.as_deref().unwrap();
    assert!(detail.contains("an image holds at most 1000 tags") && detail.contains("LimitExceededException"), "{detail}");
    assert!(!refused.retryable);
    // The SDK would retry LimitExceededException as throttling; here each refused tag costs one call.
    assert_eq!(emulator.calls(&repo)["PutImage"], 1 + 4, "the seeding push and one attempt per tag");
    assert_eq!(state(&client, &repo).await.0.len(), 3);
}

const IF_NEWER: &str = r#"{"rules":[{"name":"release","semver":true,"move":"if-newer","tags":["stable","v{major}","v{major}.{minor}"]}]}"#;

#[tokio::test]
async fn a_sweep_puts_missed_tags_on_the_highest_version_and_a_second_sweep_writes_nothing() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    // Given two pushes whose events were missed: v1.3.0, then the hotfix v1.2.9.
    let repo = repository(&client, "sweep", false).await;
    let release = push(&client, &repo, &numbered_manifest(1), Some("v1.3.0")).await;
    let hotfix = push(&client, &repo, &numbered_manifest(2), Some("v1.2.9")).await;
    let h = handler(IF_NEWER);

    // When a sweep runs
    let report = sweep(&h, json!({"repositories": [repo]})).await;
    assert_eq!(emulator.calls(&repo)["BatchGetImage"], 4, "per image that gets tags: one read, and the second look at its if-newer tags");

    // Then each tag is where the events would have put it: the highest version holds stable and v1.
    let (tags, _) = state(&client, &repo).await;
    let expect: std::collections::HashMap<String, String> = [
        ("v1.3.0", &release), ("v1.2.9", &hotfix), ("stable", &release), ("v1", &release), ("v1.3", &release), ("v1.2", &hotfix),
    ]
    .into_iter()
    .map(|(t, d)| (t.to_owned(), d.clone()))
    .collect();
    assert_eq!(tags, expect);
    assert_eq!(report.status, ecr_retag::report::SweepStatus::Complete);
    assert_eq!(report.writes, 4);
    let r = &report.repositories[0];
    assert_eq!((r.images_seen, r.tags_written, r.already_correct, r.conflicts, r.failed), (2, 4, 0, 0, 0), "{r:?}");
    assert!(r.changes.iter().all(|c| c.outcome == Outcome::Created), "{r:?}");

    // And a second sweep right after writes nothing
    let before = emulator.calls(&repo);
    let again = sweep(&h, json!({"repositories": [repo]})).await;
    assert_eq!((again.writes, again.repositories[0].already_correct, again.repositories[0].tags_written), (0, 4, 0));
    let after = emulator.calls(&repo);
    assert_eq!((after["PutImage"], after["BatchGetImage"]), (before["PutImage"], before["BatchGetImage"]), "nothing to write, nothing to read");
    assert_eq!(after["DescribeImages"] - before["DescribeImages"], 1, "one listing");

    // With "move": "always" the most recent push wins instead.
    let report = sweep(&handler(r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}"]}]}"#), json!({"repositories": [repo]})).await;
    let (tags, _) = state(&client, &repo).await;
    assert_eq!((tags["stable"].as_str(), tags["v1"].as_str()), (hotfix.as_str(), hotfix.as_str()));
    assert_eq!(report.repositories[0].changes.iter().map(|c| c.outcome).collect::<Vec<_>>(), [Outcome::Moved, Outcome::Moved]);
}

#[tokio::test]
async fn a_sweep_stops_at_its_write_budget_and_the_continuation_finishes_the_job() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    let prefix = format!("budget-{}", std::process::id());
    let first = repository(&client, "budget", false).await;
    let second = repository(&client, "budget", false).await;
    for repo in [&first, &second] {
        push(&client, repo, &manifest("oci-manifest"), Some("v1.4.2")).await;
    }
    let h = handler(RELEASE);
    let pattern = format!("{prefix}-*");

    // 2 repositories × 4 tags to write, 3 writes per request.
    let mut answers = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let mut request = json!({"repositories": [pattern], "max_writes": 3});
        if let Some(token) = &continuation {
            request["continuation"] = json!(token);
        }
        let report = sweep(&h, request).await;
        continuation = report.continuation.clone();
        answers.push(report);
        if continuation.is_none() || answers.len() > 5 {
            break;
        }
    }
    let writes: Vec<usize> = answers.iter().map(|a| a.writes).collect();
    assert_eq!(writes, [3, 3, 2], "3 per request until all 8 are written");
    assert_eq!(answers[0].continuation.as_deref(), Some(format!("resume-at:{first}").as_str()), "the first stopped inside {first}");
    assert_eq!(answers[1].continuation.as_deref(), Some(format!("resume-at:{second}").as_str()));
    assert!(answers[0].reason.as_deref().unwrap().starts_with("stopped at max_writes (3)"));
    assert_eq!(answers[2].status, ecr_retag::report::SweepStatus::Complete);
    for repo in [&first, &second] {
        assert_eq!(state(&client, repo).await.0.len(), 5, "{repo}: the pushed tag and four derived");
        assert!(emulator.writes(repo).values().all(|n| *n == 1), "no tag written twice: {:?}", emulator.writes(repo));
    }
    let again = sweep(&h, json!({"repositories": [pattern]})).await;
    assert_eq!((again.writes, again.repositories.len()), (0, 2));
}

#[tokio::test]
async fn a_dry_run_sweep_says_what_it_would_write_and_writes_nothing() {
    let Scenario { emulator, client, repo } = Scenario::new("drysweep", false).await;
    push(&client, &repo, &manifest("docker-v2"), Some("v2.0.0")).await;
    let report = sweep(&handler(IF_NEWER), json!({"repositories": [repo], "dry_run": true})).await;
    assert!(report.dry_run);
    assert_eq!((report.writes, report.would_write), (0, Some(3)), "nothing written; three would be");
    let r = &report.repositories[0];
    assert_eq!((r.tags_written, r.would_write), (0, Some(3)), "{r:?}");
    let outcomes: Vec<_> = report.repositories[0].changes.iter().map(|c| (c.tag.as_str(), c.outcome)).collect();
    assert_eq!(outcomes, [("stable", Outcome::WouldCreate), ("v2", Outcome::WouldCreate), ("v2.0", Outcome::WouldCreate)]);
    let calls = emulator.calls(&repo);
    assert_eq!((calls["PutImage"], calls.get("BatchGetImage")), (1, None), "only the seeding push; no manifest read");
}

/// An SQS event whose messages have these ids and bodies.
async fn batch_failures(h: &Handler<impl ecr_retag::registry::Catalog + ecr_retag::registry::Blobs>, payload: &str) -> Vec<String> {
    match h.invoke(payload, std::time::SystemTime::UNIX_EPOCH).await {
        Ok(ecr_retag::lambda::Answer::Batch(b)) => b.batch_item_failures.into_iter().map(|f| f.item_identifier).collect(),
        other => panic!("not a batch answer: {other:?}"),
    }
}

#[tokio::test]
async fn an_sqs_batch_reports_only_its_failed_messages_and_their_redelivery_finishes_the_job() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    let (a, b, flaky) = (repository(&client, "sqs", false).await, repository(&client, "sqs", false).await, repository(&client, "sqs", false).await);
    let mut digests = Vec::new();
    for repo in [&a, &b, &flaky] {
        digests.push(push(&client, repo, &manifest("docker-v2"), Some("v1.4.2")).await);
    }
    // `v1` on the flaky repository fails past the SDK's retries, once.
    emulator.fault("PutImage", &flaky, Some("v1"), "503", 3);
    let event = |repo: &str, digest: &str| push_event(repo, digest, "v1.4.2", None).to_string();
    let batch = sqs_batch(&[
        ("m-a", event(&a, &digests[0])),
        ("m-flaky", event(&flaky, &digests[2])),
        ("m-garbled", "{\"detail-type\":".to_owned()),
        ("m-b", event(&b, &digests[1])),
        // A fanned-out sweep of one repository is work for the batch too; a fan-out is not.
        ("m-sweep", json!({"reconcile": {"repositories": [repository(&client, "sqs", false).await]}}).to_string()),
        ("m-fan-out", json!({"reconcile": {"repositories": [a], "fan_out": true}}).to_string()),
    ]);
    let h = handler(RELEASE);

    assert_eq!(batch_failures(&h, &batch).await, ["m-flaky", "m-garbled", "m-fan-out"], "in message order");
    for repo in [&a, &b] {
        assert_eq!(state(&client, repo).await.0.len(), 5, "{repo}: the pushed tag and four derived");
    }
    assert_eq!(state(&client, &flaky).await.0.len(), 4, "all but v1");

    // SQS redelivers only the failed messages: the flaky one now succeeds (the other two never can).
    let redelivery = sqs_batch(&[("m-flaky", event(&flaky, &digests[2]))]);
    assert_eq!(batch_failures(&h, &redelivery).await, Vec::<String>::new());
    assert_eq!(state(&client, &flaky).await.0.len(), 5);
    assert!(emulator.writes(&flaky).values().all(|n| *n == 1), "no tag written twice: {:?}", emulator.writes(&flaky));
}

/// Counts the reads in flight, each held a little so that overlaps show.
struct InFlight<R> {
    inner: R,
    now: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
}

impl<R: ecr_retag::registry::Registry> ecr_retag::registry::Registry for InFlight<R> {
    async fn read(&self, repository: &ecr_retag::registry::Repository, image: ecr_retag::registry::Lookup<'_>, tags: &[ecr_retag::domain::names::Tag]) -> Result<ecr_retag::registry::Snapshot, ecr_retag::registry::ReadError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let result = self.inner.read(repository, image, tags).await;
        self.now.fetch_sub(1, SeqCst);
        result
    }
    async fn put(&self, target: &ecr_retag::registry::Target<'_>, tag: &ecr_retag::domain::names::Tag, attempts: ecr_retag::registry::Attempts) -> Result<(), ecr_retag::registry::PutError> {
        self.inner.put(target, tag, attempts).await
    }
    async fn tags_of(&self, repository: &ecr_retag::registry::Repository, digest: &ecr_retag::domain::names::Digest) -> Result<Vec<ecr_retag::domain::names::Tag>, ecr_retag::registry::ReadError> {
        self.inner.tags_of(repository, digest).await
    }
    async fn remove(&self, repository: &ecr_retag::registry::Repository, tag: &ecr_retag::domain::names::Tag) -> Result<(), ecr_retag::registry::RemoveError> {
        self.inner.remove(repository, tag).await
    }
    async fn repository_tags(&self, repository: &ecr_retag::registry::Repository) -> Result<std::collections::BTreeMap<String, String>, ecr_retag::registry::ReadError> {
        self.inner.repository_tags(repository).await
    }
    async fn tag_mutability(&self, repository: &ecr_retag::registry::Repository) -> Result<ecr_retag::domain::mutability::TagMutability, ecr_retag::registry::ReadError> {
        self.inner.tag_mutability(repository).await
    }
    async fn restore(&self, repository: &ecr_retag::registry::Repository, digest: &ecr_retag::domain::names::Digest) -> Result<(), ecr_retag::registry::ReadError> {
        self.inner.restore(repository, digest).await
    }
    async fn signatures(&self, repository: &ecr_retag::registry::Repository, digest: &ecr_retag::domain::names::Digest, kinds: ecr_retag::domain::signature::Kinds) -> Result<ecr_retag::domain::signature::Signatures, ecr_retag::registry::ReadError> {
        self.inner.signatures(repository, digest, kinds).await
    }
    async fn describe(&self, repository: &ecr_retag::registry::Repository, digest: &ecr_retag::domain::names::Digest) -> Result<Option<ecr_retag::registry::Listed>, ecr_retag::registry::ReadError> {
        self.inner.describe(repository, digest).await
    }
}

impl<R: ecr_retag::registry::Blobs> ecr_retag::registry::Blobs for InFlight<R> {
    async fn mounting_enabled(&self) -> Result<bool, ecr_retag::registry::ReadError> {
        self.inner.mounting_enabled().await
    }
    async fn encryption(&self, repository: &ecr_retag::registry::Repository) -> Result<(String, Option<String>), ecr_retag::registry::ReadError> {
        self.inner.encryption(repository).await
    }
    async fn missing(&self, repository: &ecr_retag::registry::Repository, digests: &[ecr_retag::domain::names::Digest]) -> Result<Vec<ecr_retag::domain::names::Digest>, ecr_retag::registry::ReadError> {
        self.inner.missing(repository, digests).await
    }
    async fn mount(&self, target: &ecr_retag::registry::Repository, source: &ecr_retag::registry::Repository, digest: &ecr_retag::domain::names::Digest) -> Result<ecr_retag::registry::Mount, ecr_retag::error::Fault> {
        self.inner.mount(target, source, digest).await
    }
    async fn copy_blob(&self, target: &ecr_retag::registry::Repository, source: &ecr_retag::registry::Repository, digest: &ecr_retag::domain::names::Digest, max_bytes: u64) -> Result<u64, ecr_retag::error::Fault> {
        self.inner.copy_blob(target, source, digest, max_bytes).await
    }
    async fn put_manifest(&self, repository: &ecr_retag::registry::Repository, image: &ecr_retag::registry::Image, media_type: &str) -> Result<(), ecr_retag::registry::PutError> {
        self.inner.put_manifest(repository, image, media_type).await
    }
    async fn referrers(&self, repository: &ecr_retag::registry::Repository, digest: &ecr_retag::domain::names::Digest) -> Result<Vec<ecr_retag::domain::names::Digest>, ecr_retag::registry::ReadError> {
        self.inner.referrers(repository, digest).await
    }
    async fn referrers_of_type(&self, repository: &ecr_retag::registry::Repository, digest: &ecr_retag::domain::names::Digest, artifact_type: &str) -> Result<Vec<ecr_retag::registry::Annotated>, ecr_retag::registry::ReadError> {
        self.inner.referrers_of_type(repository, digest, artifact_type).await
    }
    async fn upload_blob(&self, repository: &ecr_retag::registry::Repository, digest: &ecr_retag::domain::names::Digest, bytes: &[u8]) -> Result<(), ecr_retag::error::Fault> {
        self.inner.upload_blob(repository, digest, bytes).await
    }
    async fn blob_bytes(&self, repository: &ecr_retag::registry::Repository, digest: &ecr_retag::domain::names::Digest, max_bytes: u64) -> Result<Vec<u8>, ecr_retag::error::Fault> {
        self.inner.blob_bytes(repository, digest, max_bytes).await
    }
}

impl<R: ecr_retag::registry::Catalog> ecr_retag::registry::Catalog for InFlight<R> {
    async fn repositories(&self, registry_id: Option<&ecr_retag::domain::names::RegistryId>, page: Option<&str>) -> Result<ecr_retag::registry::Page<ecr_retag::domain::names::RepositoryName>, ecr_retag::registry::ReadError> {
        self.inner.repositories(registry_id, page).await
    }
    async fn images(&self, repository: &ecr_retag::registry::Repository, page: Option<&str>) -> Result<ecr_retag::registry::Page<ecr_retag::registry::Listed>, ecr_retag::registry::ReadError> {
        self.inner.images(repository, page).await
    }
}

#[tokio::test]
async fn the_messages_of_a_batch_are_handled_concurrently_within_the_bound() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    let mut messages = Vec::new();
    for n in 0..9 {
        let repo = repository(&client, "bound", false).await;
        let digest = push(&client, &repo, &manifest("oci-manifest"), Some("v1.4.2")).await;
        messages.push((format!("m{n}"), push_event(&repo, &digest, "v1.4.2", None).to_string()));
    }
    let mut config = Config::with_rules(RuleSet::from_json(RELEASE).unwrap());
    config.batch_concurrency = 3;
    let registry = InFlight { inner: Ecr::new(client_for(&emulator.endpoint)), now: 0.into(), max: 0.into() };
    let h = Handler::new(registry, config);
    let batch = sqs_batch(&messages.iter().map(|(id, body)| (id.as_str(), body.clone())).collect::<Vec<_>>());
    assert_eq!(batch_failures(&h, &batch).await, Vec::<String>::new());
    assert_eq!(h.registry().max.load(std::sync::atomic::Ordering::SeqCst), 3, "three messages at a time, never more");
}

#[tokio::test]
async fn a_write_still_unanswered_at_the_deadline_is_cut_and_only_its_tag_fails_retryably() {
    let Scenario { emulator, client, repo } = Scenario::new("cut", false).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    // The PutImage of `v1` hangs past the per-attempt timeout, and is retried: longer than the invocation has.
    emulator.fault("PutImage", &repo, Some("v1"), "hang", 3);
    let timeout = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    let event = push_event(&repo, &digest, "v1.4.2", None).to_string();
    let answer = handler(RELEASE).invoke(&event, std::time::SystemTime::now() + timeout).await;
    let elapsed = started.elapsed();
    let err = match answer {
        Err(e) => e,
        other => panic!("expected the cut tag to fail the invocation, got {other:?}"),
    };
    assert_eq!(err.error_type(), "Retryable.TagsNotApplied", "{err}");
    let report = err.report().unwrap();
    let v1 = report.tags.iter().find(|t| t.tag == "v1").unwrap();
    assert_eq!(v1.outcome, Outcome::Failed);
    assert!(v1.detail.as_deref().unwrap().starts_with("DeadlineReached: PutImage was not answered"), "{v1:?}");
    assert_eq!(report.tags.iter().filter(|t| t.outcome == Outcome::Created).count(), 3, "the other tags landed: {report:?}");
    assert!(elapsed < timeout - std::time::Duration::from_millis(400), "answered after {elapsed:?}, within the margin");
}

#[tokio::test]
async fn a_sweep_out_of_time_stops_before_its_next_repository_and_says_where_to_resume() {
    let Scenario { emulator, client, repo } = Scenario::new("late", false).await;
    push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let Ok(ecr_retag::input::Invocation::Reconcile(request)) =
        ecr_retag::input::parse(&json!({"reconcile": {"repositories": [repo]}}).to_string(), now())
    else {
        panic!("a reconcile request")
    };
    // The time for new work is already up.
    let report = handler(RELEASE).reconcile(&request, Some(tokio::time::Instant::now()), None, chrono::Utc::now()).await.unwrap();
    assert_eq!(report.status, ecr_retag::report::SweepStatus::Stopped);
    assert_eq!(report.continuation, Some(format!("resume-at:{repo}")));
    assert!(report.reason.as_deref().unwrap().starts_with("stopped before the function's deadline"));
    assert_eq!((report.writes, emulator.calls(&repo).get("DescribeImages")), (0, None), "no ECR call started");
}

/// The calls made on `repo` since `before` (the test's own seeding aside).

#[tokio::test]
async fn signatures_attestations_and_sboms_are_never_promoted_by_a_catch_all_rule() {
    let Scenario { emulator, client, repo } = Scenario::new("artifacts", false).await;
    let catch_all = r#"{"rules":[{"name":"all","match":".*","tags":["latest"]}]}"#;
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let hex = image.trim_start_matches("sha256:");
    let (cosign, fallback) = (format!("sha256-{hex}.sig"), format!("sha256-{hex}"));
    // (manifest, tag, the event's artifact-media-type, the ECR calls handling it may cost)
    let cases = [
        ("cosign-signature", cosign.as_str(), Some("application/vnd.oci.image.config.v1+json"), vec![]),
        ("notation-signature", fallback.as_str(), None, vec![]),
        ("notation-signature", "signed-v1.4.2", None, vec![("BatchGetImage".to_owned(), 1)]),
        ("spdx-sbom", "sbom-v1.4.2", Some("application/spdx+json"), vec![]),
        ("spdx-sbom", "sbom-latest", None, vec![("BatchGetImage".to_owned(), 1)]),
    ];
    for (name, tag, artifact_type, costs) in cases {
        let digest = push(&client, &repo, &manifest(name), Some(tag)).await;
        let mut event = push_event(&repo, &digest, tag, Some(manifest(name).media_type));
        if let Some(t) = artifact_type {
            event["detail"]["artifact-media-type"] = json!(t);
        }
        let before = emulator.calls(&repo);
        let report = handler(catch_all).handle(&event, now()).await.unwrap();
        assert_eq!(report.status, Status::Ignored, "{name} {tag}");
        assert!(report.reason.as_deref().unwrap().contains("an artifact, not an image"), "{name} {tag}: {report:?}");
        assert_eq!(emulator.calls_since(&repo, &before), costs, "{name} {tag}: told by the event, or by the one read");
    }
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags.get("latest"), None, "nothing was promoted");

    // The image itself is: and a sweep skips the artifacts too.
    let report = sweep(&handler(catch_all), json!({"repositories": [repo]})).await;
    let r = &report.repositories[0];
    assert_eq!((r.images_seen, r.artifacts, r.tags_written), (4, 3, 1), "{r:?}");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["latest"], image, "latest is on the image, not on an artifact");
}

#[tokio::test]
async fn a_rule_that_opts_in_to_artifacts_tags_the_signature() {
    let Scenario { client, repo, .. } = Scenario::new("optsig", false).await;
    let rules = r#"{"rules":[{"name":"signatures","match":"sha256-.*","artifacts":true,"tags":["signature"]}]}"#;
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let tag = format!("sha256-{}.sig", image.trim_start_matches("sha256:"));
    let signature = push(&client, &repo, &manifest("cosign-signature"), Some(&tag)).await;
    let report = handler(rules).handle(&push_event(&repo, &signature, &tag, None), now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&["signature"], Outcome::Created));
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["signature"], signature);
}

#[tokio::test]
async fn no_tag_is_moved_onto_an_archived_image_by_an_event_or_a_sweep() {
    let Scenario { emulator, client, repo } = Scenario::new("archived", false).await;
    let careful = r#"{"rules":[{"name":"release","semver":true,"move":"if-newer","tags":["stable"]}]}"#;
    let older = push(&client, &repo, &manifest("docker-v2"), Some("v1.3.0")).await;
    let newest = push(&client, &repo, &manifest("oci-manifest"), Some("v1.4.0")).await;
    archive(&client, &repo, &newest).await;

    // A late event (or a person) asks to promote the archived image: nothing is written.
    let writes = emulator.writes(&repo).len();
    let report = handler(careful).handle(&push_event(&repo, &newest, "v1.4.0", None), now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&["stable"], Outcome::Archived));
    assert_eq!(emulator.writes(&repo).len(), writes, "no PutImage");

    // A sweep passes over it: if-newer tags go to the highest ACTIVE version.
    let report = sweep(&handler(careful), json!({"repositories": [repo]})).await;
    let r = &report.repositories[0];
    assert_eq!((r.images_seen, r.archived, r.tags_written), (2, 1, 1), "{r:?}");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["stable"], older);
    assert_eq!(emulator.restores(&repo), json!({}), "nothing was restored");
}

#[tokio::test]
async fn in_a_repository_immutable_but_for_some_tags_those_move_and_the_others_conflict_saying_what_would_help() {
    use aws_sdk_ecr::types::ImageTagMutability::ImmutableWithExclusion;
    let emulator = Emulator::shared();
    let client = emulator.client();
    let repo = repository_with(&client, "lines", ImmutableWithExclusion, &["stable"]).await.unwrap();
    let rules = r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}"]}]}"#;
    let h = handler(rules);
    let old = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    h.handle(&push_event(&repo, &old, "v1.4.2", None), now()).await.unwrap();
    let new = push(&client, &repo, &manifest("oci-manifest"), Some("v1.5.0")).await;
    let before = emulator.calls(&repo).get("DescribeRepositories").copied().unwrap_or(0);
    let err = h.handle(&push_event(&repo, &new, "v1.5.0", None), now()).await.unwrap_err();
    let report = err.report().unwrap();
    assert_eq!(outcomes(report), vec![("stable".into(), Outcome::Moved), ("v1".into(), Outcome::Conflict)]);
    let detail = report.tags[1].detail.as_deref().unwrap();
    assert!(
        detail.starts_with(&format!(
            "the tag is immutable and points at {old}; the repository is IMMUTABLE_WITH_EXCLUSION with exclusion filters `stable`, none covering `v1`; \
             to let it move: aws ecr put-image-tag-mutability --repository-name {repo} --image-tag-mutability IMMUTABLE_WITH_EXCLUSION"
        )),
        "{detail}"
    );
    assert!(detail.ends_with("filterType=WILDCARD,filter=stable filterType=WILDCARD,filter=v1"), "{detail}");
    let looked = emulator.calls(&repo).get("DescribeRepositories").copied().unwrap_or(0) - before;
    assert_eq!(looked, 1, "one DescribeRepositories, for the conflict");
    // A redelivery conflicts again and asks no more: the answer is kept per instance.
    h.handle(&push_event(&repo, &new, "v1.5.0", None), now()).await.unwrap_err();
    assert_eq!(emulator.calls(&repo).get("DescribeRepositories").copied().unwrap_or(0) - before, 1);
    let (tags, _) = state(&client, &repo).await;
    assert_eq!((tags["stable"].as_str(), tags["v1"].as_str()), (new.as_str(), old.as_str()));
}

#[tokio::test]
async fn a_rule_that_says_restore_archived_starts_the_restore_and_writes_once_the_image_is_active() {
    let Scenario { emulator, client, repo } = Scenario::new("restore", false).await;
    let rules = r#"{"rules":[{"name":"release","semver":true,"restore_archived":true,"tags":["stable"]}]}"#;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    archive(&client, &repo, &digest).await;
    let event = push_event(&repo, &digest, "v1.4.2", None);
    let writes = emulator.writes(&repo).len();
    let report = handler(rules).handle(&event, now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&["stable"], Outcome::Restoring));
    assert_eq!(emulator.calls(&repo).get("UpdateImageStorageClass"), Some(&2), "the test's archive, and one restore");
    assert_eq!(emulator.writes(&repo).len(), writes, "no PutImage onto the archived image");
    let any = aws_sdk_ecr::types::DescribeImagesFilter::builder().image_status(aws_sdk_ecr::types::ImageStatusFilter::Any).build();
    let listed = client.describe_images().repository_name(&repo).filter(any).send().await.unwrap();
    assert_eq!(listed.image_details()[0].image_status(), Some(&aws_sdk_ecr::types::ImageStatus::Activating));
    assert_eq!(emulator.restores(&repo), json!({}), "restored by the storage-class call, not by a push");
}

/// Amazon Inspector's first result for an image (enhanced scanning), as EventBridge delivers it.
fn inspector_scan(repo: &str, digest: &str, tags: &[&str], counts: serde_json::Value) -> serde_json::Value {
    json!({
        "version": "0", "id": "9a2c1f3e-5b7d-4e8f-a0b1-c2d3e4f5a6b7",
        "detail-type": "Inspector2 Scan", "source": "aws.inspector2",
        "account": ACCOUNT, "time": "2026-11-24T10:17:40Z", "region": REGION,
        "resources": [format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}")],
        "detail": {
            "scan-status": "INITIAL_SCAN_COMPLETE",
            "repository-name": format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}"),
            "finding-severity-counts": counts, "image-digest": digest, "image-tags": tags
        }
    })
}

#[tokio::test]
async fn an_enhanced_scan_from_inspector_passes_or_blocks_the_gate_and_fails_closed_where_it_cannot_tell() {
    let Scenario { emulator, client, repo } = Scenario::new("inspector", false).await;
    let gated = |at: &str| format!(r#"{{"rules":[{{"name":"g","semver":true,"when":{{"scan":"{at}"}},"tags":["stable"]}}]}}"#);
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let report = handler(&gated("MEDIUM")).handle(&push_event(&repo, &digest, "v1.4.2", None), now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&["stable"], Outcome::Deferred));

    let high = inspector_scan(&repo, &digest, &["v1.4.2"], json!({"CRITICAL": 0, "HIGH": 1, "MEDIUM": 0, "TOTAL": 4}));
    let report = handler(&gated("MEDIUM")).handle(&high, now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&["stable"], Outcome::Blocked));
    assert!(report.tags[0].detail.as_deref().unwrap().starts_with("the scan found HIGH 1, 3 below MEDIUM"), "{report:?}");

    // Nothing at MEDIUM or above, but LOW-or-below findings the event does not split.
    let some_low = inspector_scan(&repo, &digest, &["v1.4.2"], json!({"CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "TOTAL": 3}));
    let report = handler(&gated("LOW")).handle(&some_low, now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&["stable"], Outcome::Blocked));
    assert!(report.tags[0].detail.as_deref().unwrap().contains("a gate at LOW cannot be decided"), "{report:?}");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags.get("stable"), None);
    // ECR's findings summary splits them: one DescribeImages decides the LOW gate.
    emulator.scan_result(&repo, &digest, "ACTIVE", Some(json!({"LOW": 3, "UNTRIAGED": 1})));
    let report = handler(&gated("LOW")).handle(&some_low, now()).await.unwrap();
    assert!(report.tags[0].detail.as_deref().unwrap().contains("a gate at LOW cannot be decided"), "UNTRIAGED stays unsplit");
    emulator.scan_result(&repo, &digest, "ACTIVE", Some(json!({"LOW": 2, "INFORMATIONAL": 1})));
    let report = handler(&gated("INFORMATIONAL")).handle(&some_low, now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&["stable"], Outcome::Blocked));
    assert_eq!(report.tags[0].detail.as_deref(), Some("the scan found LOW 2, INFORMATIONAL 1; the rule allows findings up to INFORMATIONAL"));
    let before = emulator.calls(&repo);
    let report = handler(&gated("LOW")).handle(&some_low, now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&["stable"], Outcome::Created), "LOW 2 and INFORMATIONAL 1 are within a LOW gate");
    assert_eq!(emulator.calls_since(&repo, &before), [("BatchGetImage".into(), 1), ("DescribeImages".into(), 1), ("PutImage".into(), 1)]);
    client.batch_delete_image().repository_name(&repo)
        .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag("stable").build()).send().await.unwrap();

    let report = handler(&gated("MEDIUM")).handle(&some_low, now()).await.unwrap();
    assert_eq!(outcomes(&report), all(&["stable"], Outcome::Created), "a MEDIUM gate is decided by the named counts");
    let again = handler(&gated("MEDIUM")).handle(&some_low, now()).await.unwrap();
    assert_eq!(outcomes(&again), all(&["stable"], Outcome::Unchanged), "a redelivery writes nothing more");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["stable"], digest);
}

#[tokio::test]
async fn a_queued_sweep_sends_its_continuation_back_or_fails_its_message_until_every_tag_is_in_place() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    let repo = repository(&client, "qsweep", false).await;
    push(&client, &repo, &numbered_manifest(70_001), Some("v1.4.2")).await;
    let queue = std::sync::Arc::new(ecr_retag::queue::Memory::default());
    let h = handler(RELEASE).with_queue(queue.clone());
    let sweep = |max: u32| json!({"reconcile": {"repositories": [repo], "max_writes": max}}).to_string();

    // Stopped at its budget having written: done with this message, the rest sent back.
    assert_eq!(batch_failures(&h, &sqs_batch(&[("s1", sweep(2))])).await, Vec::<String>::new());
    let sent = queue.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let next: serde_json::Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(next["reconcile"]["continuation"], format!("resume-at:{repo}"));
    assert_eq!(state(&client, &repo).await.0.len(), 3, "two of four written");

    // `v1` throttled past the SDK's retries: the message fails, and SQS's redelivery finishes.
    emulator.fault("PutImage", &repo, Some("v1"), "throttle", 3);
    assert_eq!(batch_failures(&h, &sqs_batch(&[("s2", sent[0].clone())])).await, ["s2"]);
    assert!(queue.take().is_empty(), "not stopped: nothing sent back");
    assert_eq!(batch_failures(&h, &sqs_batch(&[("s2", sent[0].clone())])).await, Vec::<String>::new());
    let (tags, _) = state(&client, &repo).await;
    // The pushed tag, stable, v1, v1.4 and the push's date stamp (whatever today is).
    assert!(tags.len() == 5 && ["stable", "v1", "v1.4"].iter().all(|t| tags.contains_key(*t)), "{tags:?}");
    assert!(emulator.writes(&repo).values().all(|n| *n == 1), "{:?}", emulator.writes(&repo));
}

#[tokio::test]
async fn the_ecr_adapter_mounts_an_images_blobs_into_another_repository_or_says_it_could_not() {
    use ecr_retag::domain::names::{Digest, RepositoryName, Tag};
    use ecr_retag::registry::{Attempts, Blobs, Lookup, Mount, Registry, Repository, Target};
    // A registry of its own: its BLOB_MOUNTING setting is the account's, and the function's calls
    // are limited to those a promotion's policy would grant.
    let mut granted = FUNCTION_OPERATIONS.to_vec();
    granted.extend(["GetAuthorizationToken", "GetAccountSetting", "BatchCheckLayerAvailability"]);
    let emulator = Emulator::start(&granted);
    let client = emulator.client();
    let ecr = Ecr::new(function_client(&emulator.endpoint)).with_registry_endpoint(&emulator.endpoint);
    let m = numbered_manifest(81_001);
    let (src, dst) = (repository(&client, "adapter-src", false).await, repository(&client, "adapter-dst", false).await);
    let digest = push(&client, &src, &m, Some("v1.0.0")).await;
    let repo = |name: &str| Repository::own(RepositoryName::parse(name).unwrap());
    let (source, target) = (repo(&src), repo(&dst));
    let blobs: Vec<Digest> = blobs_of(&m.body).iter().map(|d| Digest::parse(d).unwrap()).collect();

    assert_eq!(ecr.missing(&target, &blobs).await.unwrap(), blobs, "none there yet");
    assert_eq!(ecr.missing(&source, &blobs).await.unwrap(), Vec::<Digest>::new());
    assert!(!ecr.mounting_enabled().await.unwrap());
    assert_eq!(ecr.mount(&target, &source, &blobs[0]).await.unwrap(), Mount::NotMounted, "202 while BLOB_MOUNTING is off");
    client.put_account_setting().name("BLOB_MOUNTING").value("ENABLED").send().await.unwrap();
    assert!(ecr.mounting_enabled().await.unwrap());
    for blob in &blobs {
        assert_eq!(ecr.mount(&target, &source, blob).await.unwrap(), Mount::Mounted);
    }
    assert_eq!(ecr.missing(&target, &blobs).await.unwrap(), Vec::<Digest>::new());
    let err = ecr.mount(&repo("adapter-nowhere"), &source, &blobs[0]).await.unwrap_err();
    assert!(!err.retryable(), "{err:?}");
    assert_eq!(ecr.encryption(&target).await.unwrap(), ("AES256".to_owned(), None));

    // With the blobs there, the same bytes put into the target: the same digest, byte for byte.
    let image = ecr.read(&source, Lookup::Digest(&Digest::parse(&digest).unwrap()), &[]).await.unwrap().image.unwrap();
    let media_type = image.media_type.clone().unwrap();
    ecr.put(&Target { repository: &target, image: &image, media_type: &media_type }, &Tag::parse("stable").unwrap(), Attempts::Retried).await.unwrap();
    let (tags, manifests) = state(&client, &dst).await;
    assert_eq!(tags["stable"], digest);
    assert_eq!(manifests[&digest], m.body);
    // One token for every mount (the emulator's function-calls without a repository: all of them).
    let calls = emulator.function_calls_on("");
    assert_eq!(calls.get("GetAuthorizationToken"), Some(&1), "{calls:?}");
}
