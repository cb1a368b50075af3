//! End to end: the bootstrap binary, driven through the Lambda Runtime API,
//! against the strict local ECR, with the sample events of `events/`.

use serde_json::{json, Value};
use crate::support::runtime_api::Answer;
use crate::support::*;

fn rules() -> String {
    std::fs::read_to_string(root().join("rules.json")).unwrap()
}

fn response(answer: Answer) -> Value {
    match answer {
        Answer::Response(v) => v,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn outcomes(response: &Value) -> Vec<(String, String)> {
    response["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tag"].as_str().unwrap().to_owned(), t["outcome"].as_str().unwrap().to_owned()))
        .collect()
}

/// The one date-stamp tag (eight digits) of an answer, which must be one of `days`
/// (the invocation may straddle midnight).
fn date_stamp(response: &Value, days: &[&str]) -> String {
    let stamps: Vec<String> =
        outcomes(response).into_iter().map(|(t, _)| t).filter(|t| t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit())).collect();
    assert_eq!(stamps.len(), 1, "{response}");
    assert!(days.contains(&stamps[0].as_str()), "{} is not the invocation's day {days:?}", stamps[0]);
    stamps[0].clone()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// The only test that uses `team/api`, the repository the sample events name.
#[tokio::test]
async fn the_sample_events_do_what_their_names_say() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    client.create_repository().repository_name("team/api").send().await.unwrap();
    let single = manifest("docker-v2");
    let index = manifest("oci-index-no-mediatype");
    assert_eq!(push(&client, "team/api", &single, Some("v1.4.2")).await, sample_event("push.json")["detail"]["image-digest"]);
    let index_digest = push(&client, "team/api", &index, Some("v2.0.0")).await;
    assert_eq!(index_digest, sample_event("push-multi-arch-index.json")["detail"]["image-digest"]);

    let rules = rules();
    let function = Function::start(&[("RETAG_RULES", &rules), ("AWS_LAMBDA_LOG_FORMAT", "JSON")]).await;

    let r = response(function.api.invoke(&sample_event("push.json")).await);
    assert_eq!(r["status"], "applied");
    assert_eq!(r["digest"], single.digest());
    assert_eq!(r["registry_id"], "123456789012");
    assert_eq!(outcomes(&r), pairs(&[("20261124", "created"), ("stable", "created"), ("v1", "created"), ("v1.4", "created")]));
    assert_eq!(r["tags"][1]["rules"], json!(["release"]));

    // A second delivery of the same event writes nothing.
    let before = emulator.calls("team/api");
    let r = response(function.api.invoke(&sample_event("push.json")).await);
    assert!(outcomes(&r).iter().all(|(_, o)| o == "unchanged"), "{r}");
    let after = emulator.calls("team/api");
    assert_eq!(after["PutImage"], before["PutImage"]);
    assert_eq!(after["BatchGetImage"], before["BatchGetImage"] + 1);

    // The multi-arch index (an OCI index without mediaType) takes over the moving tags.
    let r = response(function.api.invoke(&sample_event("push-multi-arch-index.json")).await);
    assert_eq!(
        outcomes(&r),
        pairs(&[("20261124", "moved"), ("stable", "moved"), ("v2", "created"), ("v2.0", "created")])
    );
    assert_eq!(r["tags"][1]["detail"], format!("was {}", single.digest()));

    for (event, reason) in [
        ("push-untagged-child.json", "untagged push"),
        ("push-failure.json", "not SUCCESS"),
        ("delete.json", "not a push"),
        ("scan-complete.json", "no scan-gated rule matches"),
        ("inspector-scan.json", "no scan-gated rule matches"),
        ("push-signature.json", "no signature-gated rule covers this repository"),
    ] {
        let r = response(function.api.invoke(&sample_event(event)).await);
        assert_eq!(r["status"], "ignored", "{event}");
        assert!(r["reason"].as_str().unwrap().contains(reason), "{event}: {r}");
    }

    // A direct request is pushed "now": its date stamp is the invocation's day, whatever day the test runs.
    let day = || chrono::Utc::now().format("%Y%m%d").to_string();
    let before = day();
    let r = response(function.api.invoke(&sample_event("direct-request-dry-run.json")).await);
    let today = date_stamp(&r, &[&before, &day()]);
    assert_eq!(r["status"], "dry_run");
    let expected_stamp = if today == "20261124" { "unchanged" } else { "would_create" };
    for (tag, outcome) in outcomes(&r) {
        assert_eq!(outcome, if tag == today { expected_stamp } else { "unchanged" }, "{tag}: {r}");
    }
    let before = day();
    let r = response(function.api.invoke(&sample_event("direct-request.json")).await);
    date_stamp(&r, &[&before, &day()]);
    assert_eq!(r["status"], "applied");
    assert_eq!(r["digest"], single.digest(), "without a digest, the tag's current one");
    // Re-applying the rules to v1.4.2 moves `stable` back: the rules say so ("always" moves).
    assert!(outcomes(&r).contains(&("stable".to_owned(), "moved".to_owned())), "{r}");

    let (tags, manifests) = state(&client, "team/api").await;
    assert_eq!(tags["stable"], single.digest());
    assert_eq!(tags["v2.0"], index.digest());
    assert_eq!(tags["v1.4"], single.digest());
    assert_eq!(manifests[&single.digest()], single.body, "bytes unchanged");
    assert_eq!(manifests[&index.digest()], index.body, "bytes unchanged");

    // One structured JSON log line per event.
    let lines = function.lines_when(11, |l| l.contains("event handled")).await;
    let handled: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "event handled")
        .collect();
    assert_eq!(handled.len(), 11, "{lines:#?}");
    assert_eq!(handled[0]["fields"]["repository"], "team/api");
    assert_eq!(handled[0]["level"], "INFO");
    assert!(lines.iter().all(|l| !l.contains("schemaVersion")), "no manifest at INFO");

    // One CloudWatch EMF line per event, counting the outcomes.
    let lines = function.lines_when(11, |l| l.contains("\"_aws\"")).await;
    let emf: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 11, "{lines:#?}");
    assert_eq!(emf[0]["TagsCreated"], 4);
    assert_eq!(emf[0]["FunctionName"], "ecr-retag");
    assert!(emf[0]["EventToDoneLatency"].is_number(), "{:?}", emf[0]);
    assert_eq!(emf[1]["TagsUnchanged"], 4);
    assert_eq!(emf[2]["TagsMoved"], 2);
    assert_eq!(emf[3]["EventsIgnored"], 1);

    // The function called BatchGetImage and PutImage, and nothing else (the emulator
    // would also have refused anything else, as the IAM policy would).
    let calls = emulator.function_calls_on("team/api");
    assert!(calls.get("BatchGetImage").is_some_and(|n| *n > 0) && calls.get("PutImage").is_some_and(|n| *n > 0), "{calls:?}");
    assert!(calls.keys().all(|op| op == "BatchGetImage" || op == "PutImage"), "{calls:?}");
}

#[tokio::test]
async fn bad_payloads_get_a_clear_permanent_error_and_make_no_call() {
    let Scenario { emulator, repo, .. } = Scenario::new("bad", false).await;
    let function = Function::start(&[("RETAG_RULES", &rules())]).await;
    let cases = [
        (json!([1, 2]), "expected a JSON object"),
        (json!({"hello": "world"}), "unrecognised event"),
        (json!({"repository": repo, "tag": "v1.4.2", "digest": "sha256:nothex"}), "field `digest`"),
        (json!({"repository": repo, "tag": "v1.4.2", "dryrun": true}), "field `dryrun`: unknown field"),
        (push_event(&repo, "sha256:0", "v1.4.2", None), "field `detail.image-digest`"),
    ];
    for (payload, expected) in cases {
        match function.api.invoke(&payload).await {
            Answer::Error { error_type, error_message } => {
                assert_eq!(error_type, "Permanent.InvalidEvent", "{payload}");
                assert!(error_message.contains(expected), "{payload}: {error_message}");
            }
            other => panic!("{payload}: expected an error, got {other:?}"),
        }
    }
    assert_eq!(emulator.calls(&repo).get("BatchGetImage"), None);
    assert_eq!(emulator.calls(&repo).get("PutImage"), None);
}

#[tokio::test]
async fn a_signature_pushed_next_to_an_image_is_left_alone_by_a_catch_all_rule() {
    let Scenario { emulator, client, repo } = Scenario::new("signed", false).await;
    let function = Function::start(&[("RETAG_RULES", r#"{"rules":[{"name":"all","match":".*","tags":["latest"]}]}"#)]).await;
    let image = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let tag = format!("sha256-{}.sig", image.trim_start_matches("sha256:"));
    let signature = push(&client, &repo, &manifest("cosign-signature"), Some(&tag)).await;
    let answer = response(function.api.invoke(&push_event(&repo, &signature, &tag, None)).await);
    assert_eq!(answer["status"], "ignored", "{answer}");
    assert!(answer["reason"].as_str().unwrap().starts_with(&format!("a cosign signature (its tag `{tag}`")), "{answer}");
    assert_eq!(emulator.function_calls_on(&repo), std::collections::HashMap::new(), "told by the tag: no call");
    let answer = response(function.api.invoke(&push_event(&repo, &image, "v1.4.2", None)).await);
    assert_eq!(outcomes(&answer), pairs(&[("latest", "created")]), "the image itself is promoted");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["latest"], image);
}

#[tokio::test]
async fn an_archived_image_is_left_archived_and_an_exclusion_filtered_repository_says_what_would_let_a_tag_move() {
    let Scenario { emulator, client, repo } = Scenario::new("archived-e2e", false).await;
    let function = Function::start(&[("RETAG_RULES", r#"{"rules":[{"name":"r","semver":true,"tags":["stable","v{major}"]}]}"#)]).await;
    let archived = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&archived).build();
    let to_archive = aws_sdk_ecr::types::TargetStorageClass::Archive;
    client.update_image_storage_class().repository_name(&repo).image_id(id).target_storage_class(to_archive).send().await.unwrap();
    let answer = response(function.api.invoke(&push_event(&repo, &archived, "v1.4.2", None)).await);
    assert_eq!(outcomes(&answer), pairs(&[("stable", "archived"), ("v1", "archived")]), "{answer}");
    assert_eq!(emulator.function_calls_on(&repo).get("PutImage"), None, "nothing put on the archived image");

    let lines = repository_with(&client, "lines-e2e", aws_sdk_ecr::types::ImageTagMutability::ImmutableWithExclusion, &["stable"]).await.unwrap();
    let old = push(&client, &lines, &manifest("docker-v2"), Some("v1.4.2")).await;
    response(function.api.invoke(&push_event(&lines, &old, "v1.4.2", None)).await);
    let new = push(&client, &lines, &manifest("oci-manifest"), Some("v1.5.0")).await;
    match function.api.invoke(&push_event(&lines, &new, "v1.5.0", None)).await {
        Answer::Error { error_type, error_message } => {
            assert_eq!(error_type, "Permanent.TagsNotApplied");
            assert!(error_message.contains("`v1` conflict (the tag is immutable and points at"), "{error_message}");
            assert!(error_message.contains("IMMUTABLE_WITH_EXCLUSION with exclusion filters `stable`, none covering `v1`"), "{error_message}");
        }
        other => panic!("expected the conflict, got {other:?}"),
    }
    let (tags, _) = state(&client, &lines).await;
    assert_eq!(tags["stable"], new, "the excluded tag moved");
}

#[tokio::test]
async fn an_inspector_scan_promotes_what_the_push_deferred() {
    let Scenario { client, repo, .. } = Scenario::new("enhanced-e2e", false).await;
    let function = Function::start(&[("RETAG_RULES", r#"{"rules":[{"name":"g","semver":true,"when":{"scan":"HIGH"},"tags":["stable"]}]}"#)]).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let r = response(function.api.invoke(&push_event(&repo, &digest, "v1.4.2", None)).await);
    assert_eq!(outcomes(&r), pairs(&[("stable", "deferred")]));
    let mut scan = sample_event("inspector-scan.json");
    scan["detail"]["repository-name"] = json!(format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}"));
    scan["detail"]["image-digest"] = json!(digest);
    let r = response(function.api.invoke(&scan).await);
    assert_eq!(outcomes(&r), pairs(&[("stable", "created")]), "HIGH 1 is within a HIGH gate: {r}");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["stable"], digest);
}

#[tokio::test]
async fn a_conflict_is_an_invocation_error_that_names_the_tag() {
    let Scenario { client, repo, .. } = Scenario::new("conflict", true).await;
    let old = push(&client, &repo, &manifest("docker-v2"), Some("stable")).await;
    let new = push(&client, &repo, &manifest("oci-manifest"), Some("v3.0.0")).await;
    let function = Function::start(&[("RETAG_RULES", r#"{"rules":[{"name":"r","semver":true,"tags":["stable","v{major}"]}]}"#)]).await;
    match function.api.invoke(&push_event(&repo, &new, "v3.0.0", None)).await {
        Answer::Error { error_type, error_message } => {
            assert_eq!(error_type, "Permanent.TagsNotApplied");
            assert!(
                error_message.contains(&format!(
                    "`stable` conflict (the tag is immutable and points at {old}; the repository is IMMUTABLE; to let `stable` move: \
                     aws ecr put-image-tag-mutability --repository-name {repo} --image-tag-mutability IMMUTABLE_WITH_EXCLUSION"
                )),
                "{error_message}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    // One line for the failed event, not a second from the runtime with a debug dump.
    let lines = function.lines_when(1, |l| l.contains("event failed")).await;
    let errors: Vec<_> = lines.iter().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    assert!(errors[0].contains("event failed") && !lines.iter().any(|l| l.contains("TagsNotApplied {")), "{lines:#?}");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["v3"], new, "the other tags still land");
    assert_eq!(tags["stable"], old);
}

#[tokio::test]
async fn an_invalid_rule_set_stops_the_function_at_init_with_a_message_naming_the_rule() {
    let rules = r#"{"rules":[{"name":"release","semver":true,"tags":["v{majr}"]}]}"#;
    let mut function = Function::start(&[("RETAG_RULES", rules)]).await;
    assert_eq!(function.exit_code().await, Some(2));
    let output = function.lines().join("\n");
    assert!(output.contains(r#"rule \"release\", field `tags[0]`"#) || output.contains(r#"rule "release", field `tags[0]`"#), "{output}");
    assert!(output.contains("unknown placeholder `{majr}`"), "{output}");

    let mut function = Function::start(&[]).await;
    assert_eq!(function.exit_code().await, Some(2));
    assert!(function.lines().join("\n").contains("set RETAG_RULES"), "{:?}", function.lines());

    // What check-rules fails, INIT refuses with the same words, instead of failing every push.
    let never = r#"{"rules":[{"name":"grow","match":".*","tags":["{tag}-x"]}]}"#;
    let mut function = Function::start(&[("RETAG_RULES", never)]).await;
    assert_eq!(function.exit_code().await, Some(2));
    let output = function.lines().join("\n");
    assert!(output.contains("can never write a tag") && output.contains("grow"), "{output}");
}

/// A registry that accepts connections and never answers.
async fn hanging_endpoint() -> String {
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", blackhole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = blackhole.accept().await {
            held.push(socket);
        }
    });
    endpoint
}

#[tokio::test]
async fn a_hanging_ecr_still_gets_an_answer_well_within_the_function_timeout() {
    let endpoint = hanging_endpoint().await;
    let function = Function::start(&[("RETAG_RULES", &rules()), ("AWS_ENDPOINT_URL", &endpoint)]).await;
    let started = std::time::Instant::now();
    let answer = function.api.invoke(&sample_event("push.json")).await;
    let elapsed = started.elapsed();
    eprintln!("answer after {elapsed:?} against a hanging ECR");
    match answer {
        Answer::Error { error_type, error_message } => {
            assert_eq!(error_type, "Retryable.ReadFailed", "{error_message}");
            assert!(error_message.contains("Timeout"), "{error_message}");
        }
        other => panic!("expected a retryable error, got {other:?}"),
    }
    // template.yaml gives the function 30 s; the read gives up after its 8 s operation timeout.
    assert!(elapsed < std::time::Duration::from_secs(20), "{elapsed:?}");
}

#[tokio::test]
async fn with_a_short_function_timeout_the_answer_still_comes_before_the_deadline() {
    let endpoint = hanging_endpoint().await;
    let function = Function::start(&[("RETAG_RULES", &rules()), ("AWS_ENDPOINT_URL", &endpoint)]).await;
    let timeout = std::time::Duration::from_secs(3);
    let started = std::time::Instant::now();
    let answer = function.api.invoke_raw(&sample_event("push.json").to_string(), timeout).await;
    let elapsed = started.elapsed();
    eprintln!("answer after {elapsed:?} with a {timeout:?} function timeout");
    match answer {
        Answer::Error { error_type, error_message } => {
            assert_eq!(error_type, "Retryable.DeadlineExceeded", "{error_message}");
            assert!(error_message.contains("before Lambda's timeout"), "{error_message}");
        }
        other => panic!("expected a retryable error, got {other:?}"),
    }
    assert!(elapsed < timeout, "answered after {elapsed:?}, past the {timeout:?} deadline");
}

#[tokio::test]
async fn a_storm_of_two_hundred_pushes_is_answered_event_by_event_in_bounded_memory() {
    let Scenario { emulator, client, repo } = Scenario::new("storm", false).await;
    let mut digests = Vec::new();
    for n in 0..200 {
        digests.push(push(&client, &repo, &numbered_manifest(n), Some(&format!("v1.0.{n}"))).await);
    }
    let rules = r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}","v{major}.{minor}"]}]}"#;
    let function = Function::start(&[("RETAG_RULES", rules), ("RETAG_METRICS", "false")]).await;
    let started = std::time::Instant::now();
    for (n, digest) in digests.iter().enumerate() {
        let r = response(function.api.invoke(&push_event(&repo, digest, &format!("v1.0.{n}"), None)).await);
        let expected = if n == 0 { "created" } else { "moved" };
        assert_eq!(r["status"], "applied", "push {n}: {r}");
        assert!(outcomes(&r).iter().any(|(t, o)| t == "stable" && o == expected), "push {n}: {r}");
    }
    let elapsed = started.elapsed();
    let peak = function.peak_rss_kib().expect("/proc is readable");
    eprintln!("200 pushes answered in {elapsed:?}; bootstrap peak RSS {peak} KiB");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["stable"], digests[199], "the last push holds the moving tags");
    assert_eq!(tags["v1.0"], digests[199]);
    let writes = emulator.writes(&repo);
    assert_eq!(writes["stable"], 200, "one write per push, no more");
}

#[tokio::test]
async fn nothing_from_an_event_can_forge_a_log_line() {
    let function = Function::start(&[("RETAG_RULES", &rules()), ("RETAG_METRICS", "false")]).await;
    let forged = "x\nINJECTED level=ERROR fake\u{1b}[31m";
    let mut payloads = vec![
        json!({"repository": forged, "tag": "v1.4.2"}),
        json!({"repository": "app", "tag": forged}),
        json!({"repository": "app", "tag": "v1", forged: true}),
        push_event(forged, "sha256:0", forged, None),
        push_event("team/api", forged, "v1.4.2", None),
    ];
    let mut kind = sample_event("push.json");
    kind["detail-type"] = json!(forged);
    payloads.push(kind);
    let mut action = sample_event("push.json");
    action["detail"]["action-type"] = json!(forged);
    payloads.push(action);
    for payload in &payloads {
        function.api.invoke(payload).await;
    }
    let lines = function.lines_when(payloads.len(), |l| l.contains("event failed") || l.contains("event handled")).await;
    assert_eq!(lines.iter().filter(|l| l.contains("event failed") || l.contains("event handled")).count(), payloads.len(), "{lines:#?}");
    for line in &lines {
        assert!(!line.trim_start().starts_with("INJECTED"), "forged line: {line:?}");
        assert!(!line.contains('\u{1b}'), "raw escape sequence: {line:?}");
    }
}

#[tokio::test]
async fn credentials_never_reach_the_log_and_manifests_only_at_debug() {
    let Scenario { client, repo, .. } = Scenario::new("secrets", false).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    let rules = r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#;
    for (level, manifest_expected) in [("INFO", false), ("DEBUG", true), ("TRACE", true)] {
        let function = Function::start(&[
            ("RETAG_RULES", rules),
            ("AWS_LAMBDA_LOG_LEVEL", level),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_SESSION_TOKEN", secret),
        ])
        .await;
        function.api.invoke(&push_event(&repo, &digest, "v1.4.2", None)).await;
        let lines = function.lines_when(1, |l| l.contains("event handled")).await;
        let all = lines.join("\n");
        assert!(!all.contains(secret), "{level}: the secret key was logged");
        assert_eq!(all.contains("manifest read"), manifest_expected, "{level}");
    }
}

#[tokio::test]
async fn a_runner_that_sends_a_deadline_already_past_still_gets_the_work_done() {
    // `cargo lambda watch` does: the deadline is then no reason to stop at once.
    let Scenario { client, repo, .. } = Scenario::new("pastdeadline", false).await;
    let digest = push(&client, &repo, &manifest("docker-v2"), Some("v1.4.2")).await;
    let function = Function::start(&[("RETAG_RULES", r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#)]).await;
    let event = push_event(&repo, &digest, "v1.4.2", None).to_string();
    let r = response(function.api.invoke_raw(&event, std::time::Duration::ZERO).await);
    assert_eq!(outcomes(&r), pairs(&[("stable", "created")]));
}

#[tokio::test]
async fn the_command_line_checks_and_plans_rules_offline() {
    let binary = Function::cli();
    let run = |args: &[&str]| std::process::Command::new(&binary).args(args).env_clear().envs(clock_env()).output().unwrap();
    let rules = root().join("rules.json");
    let out = run(&["check-rules", rules.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("rules.json: 2 rules, valid\n"));

    let out = run(&["plan", "--rules", rules.to_str().unwrap(), "--repository", "team/api", "--tag", "v1.4.2", "--time", "2026-11-24T10:15:02Z"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for tag in ["stable", "v1", "v1.4", "20261124"] {
        assert!(text.contains(&format!("write    {tag}  (rules: release)")), "{text}");
    }
    let out = run(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("usage:"), "errors go to stderr");

    // A reader that has closed the pipe (`true` exits at once; the write comes later) ends it
    // quietly: no panic, exit 0 or 141.
    let piped = std::process::Command::new("bash")
        .args(["-c", &format!("{{ sleep 0.3; {:?} check-rules {:?}; echo \"status=$?\" >&2; }} | true", binary, rules)])
        .env_clear()
        .envs(clock_env())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(stderr.contains("status=141") || stderr.contains("status=0"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Without a command: the usage, exit 2.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));

    // The function, started by hand outside Lambda, says what it is instead of panicking.
    let out = std::process::Command::new(Function::binary()).env_clear().envs(clock_env()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("AWS_LAMBDA_RUNTIME_API") && text.contains("scripts/invoke") && !text.contains("panicked"), "{text}");
    assert!(text.contains("ecr-retag --help"), "it points to the command line: {text}");
}

/// The promotion features together, through the bootstrap, with the `platform-*`
/// samples of `events/` and `examples/promotion-rules.json`; the only test that
/// uses `platform/web` and `platform/other`.
#[tokio::test]
async fn promotion_rules_hold_moving_tags_gate_on_scans_and_signatures_retire_latest_and_need_the_opt_in_tag() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    for (name, opted_in) in [("platform/web", true), ("platform/other", false)] {
        let mut create = client.create_repository().repository_name(name);
        if opted_in {
            create = create.tags(aws_sdk_ecr::types::Tag::builder().key("retag").value("enabled").build().unwrap());
        }
        create.send().await.unwrap();
    }
    let (release, hotfix, nightly) = (manifest("docker-v2"), manifest("docker-manifest-list"), manifest("oci-manifest"));
    push(&client, "platform/web", &release, Some("v1.3.0")).await;
    push(&client, "platform/web", &hotfix, Some("v1.2.9")).await;
    push(&client, "platform/web", &nightly, Some("latest")).await;
    push(&client, "platform/other", &release, Some("v1.3.0")).await;
    // v1.3.0's Notation signature (the fixture's subject is docker-v2), pushed by digest.
    let signature = manifest("notation-signature");
    push(&client, "platform/web", &signature, None).await;

    let rules = std::fs::read_to_string(root().join("examples/promotion-rules.json")).unwrap();
    let wiring = [("RETAG_SCAN_EVENTS", "true"), ("RETAG_REMOVE_SOURCE", "true"), ("RETAG_SIGNATURE_EVENTS", "true")];
    let function = Function::start(&[[("RETAG_RULES", rules.as_str())].as_slice(), &wiring].concat()).await;
    let invoke = |name: &'static str| {
        let api = &function.api;
        async move { response(api.invoke(&sample_event(name)).await) }
    };

    // v1.3.0: its lines now, `stable` once both signed and scanned.
    let r = invoke("platform-push-v1.3.0.json").await;
    assert_eq!(outcomes(&r), pairs(&[("stable", "deferred"), ("v1", "created"), ("v1.3", "created")]));
    let r = invoke("platform-signature-v1.3.0.json").await;
    assert_eq!(outcomes(&r), pairs(&[("stable", "deferred")]), "signed, not yet scanned");
    assert_eq!(r["digest"], release.digest(), "the answer is about the signed image");
    assert_eq!(r["signature"], json!({"digest": signature.digest(), "kind": "notation", "image_tags": ["v1", "v1.3", "v1.3.0"]}));
    let r = invoke("platform-scan-passed.json").await;
    assert_eq!(outcomes(&r), pairs(&[("stable", "created")]), "scanned, and the signature found with one look");
    assert_eq!(r["scan"]["findings"], json!({"MEDIUM": 2, "LOW": 5}));

    // The hotfix v1.2.9 gets its own line, but neither `v1` nor (after its failed scan) `stable`.
    let r = invoke("platform-push-hotfix-v1.2.9.json").await;
    assert_eq!(outcomes(&r), pairs(&[("stable", "deferred"), ("v1", "skipped_not_newer"), ("v1.2", "created")]));
    assert_eq!(r["tags"][1]["detail"], format!("held by {} at version 1.3.0; 1.2.9 is not newer", release.digest()));
    let r = invoke("platform-scan-blocked.json").await;
    assert_eq!(outcomes(&r), pairs(&[("stable", "blocked")]));
    assert_eq!(r["tags"][0]["detail"], "the scan found HIGH 1, MEDIUM 4; the rule allows findings up to MEDIUM");

    // `latest` is retired once `edge` and `edge-20261124` are in place.
    let r = invoke("platform-push-latest.json").await;
    assert_eq!(outcomes(&r), pairs(&[("edge", "created"), ("edge-20261124", "created"), ("latest", "removed")]));

    let (tags, _) = state(&client, "platform/web").await;
    assert_eq!(tags["v1"], release.digest());
    assert_eq!(tags["stable"], release.digest());
    assert_eq!(tags["v1.2"], hotfix.digest());
    assert_eq!(tags["edge"], nightly.digest());
    assert!(!tags.contains_key("latest"), "{tags:?}");
    assert_eq!(emulator.deletes("platform/web"), [("latest".to_owned(), 1)].into());

    // The same push into a repository without the opt-in tag: nothing.
    let mut other = sample_event("platform-push-v1.3.0.json");
    other["detail"]["repository-name"] = json!("platform/other");
    let r = response(function.api.invoke(&other).await);
    assert_eq!(r["status"], "ignored");
    assert!(r["reason"].as_str().unwrap().contains("needs repository tag retag=enabled"), "{r}");
    let (tags, _) = state(&client, "platform/other").await;
    assert_eq!(tags.keys().collect::<Vec<_>>(), ["v1.3.0"]);

    // Seven events, two repositories: one resource-tag lookup each (cached); three
    // DescribeImages: the signed image's tags, the one tag that would have moved backwards, and
    // the findings and tags now of the scan that passed (its event may be stale); one look for a
    // signature, on that scan.
    let (web, other) = (emulator.function_calls_on("platform/web"), emulator.function_calls_on("platform/other"));
    assert_eq!((web.get("ListTagsForResource"), other.get("ListTagsForResource")), (Some(&1), Some(&1)), "{web:?} {other:?}");
    assert_eq!(web.get("DescribeRepositories"), None, "events name the account: the ARN is built");
    assert_eq!(web.get("DescribeImages"), Some(&3), "{web:?}");
    assert_eq!(web.get("ListImageReferrers"), Some(&1), "{web:?}");
    assert_eq!(web.get("BatchDeleteImage"), Some(&1), "{web:?}");
    assert_eq!(other.keys().collect::<Vec<_>>(), ["ListTagsForResource"], "{other:?}");
}

/// The only test that uses `team/web` and `team/gone`, the repositories `events/sqs-batch.json` names.
#[tokio::test]
async fn an_sqs_batch_answers_with_its_failed_messages_and_a_sweep_with_its_summary() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    client.create_repository().repository_name("team/web").send().await.unwrap();
    let single = manifest("docker-v2");
    push(&client, "team/web", &single, Some("v1.4.2")).await;
    let function = Function::start(&[("RETAG_RULES", &rules()), ("AWS_LAMBDA_LOG_FORMAT", "JSON")]).await;

    // A push (tagged), a delete (ignored) and a push to a repository that does not exist (fails).
    let r = response(function.api.invoke(&sample_event("sqs-batch.json")).await);
    assert_eq!(r, json!({"batchItemFailures": [{"itemIdentifier": "4f1b2c3d-0003-4e5f-8a9b-0c1d2e3f4a5b"}]}));
    let (tags, _) = state(&client, "team/web").await;
    assert_eq!(tags.len(), 5, "{tags:?}");
    assert_eq!(tags["stable"], single.digest());
    let lines = function.lines_when(3, |l| l.contains("event handled") || l.contains("event failed")).await;
    assert!(lines.iter().any(|l| l.contains("Permanent.RepositoryNotFound") && l.contains("team/gone")), "{lines:#?}");

    // Two pushes whose events were missed; a sweep through the same bootstrap puts their tags in place.
    let repo = repository(&client, "team/sweep", false).await;
    push(&client, &repo, &numbered_manifest(1), Some("v1.3.0")).await;
    let hotfix = push(&client, &repo, &numbered_manifest(2), Some("v1.2.9")).await;
    let request = json!({"reconcile": {"repositories": [repo], "max_writes": 200}});
    let r = response(function.api.invoke(&request).await);
    // stable, v1, v1.2, v1.3, and a date stamp per day the two were pushed on (imagePushedAt).
    let days = pushed_days(&client, &repo).await;
    assert_eq!((r["status"].as_str(), r["writes"].as_u64()), (Some("complete"), Some(4 + days)), "{r}");
    assert_eq!(r["repositories"][0]["images_seen"], 2);
    let (tags, _) = state(&client, &repo).await;
    assert_eq!(tags["stable"], hotfix, "\"move\": \"always\": the latest push wins");
    let r = response(function.api.invoke(&request).await);
    assert_eq!((r["writes"].as_u64(), r["repositories"][0]["already_correct"].as_u64()), (Some(0), Some(4 + days)), "{r}");
}

/// The distinct UTC days `repository`'s images were pushed on.
async fn pushed_days(client: &aws_sdk_ecr::Client, repository: &str) -> u64 {
    let described = client.describe_images().repository_name(repository).send().await.unwrap();
    let days: std::collections::BTreeSet<i64> =
        described.image_details().iter().filter_map(|i| i.image_pushed_at()).map(|t| t.secs().div_euclid(86_400)).collect();
    days.len() as u64
}

/// `ecr-retag apply` and `ecr-retag sweep`: the same engine from a shell, against the
/// strict emulator, with the exit codes a pipeline reads.
/// The binary as a shell runs it against the emulator, with `dir` as HOME: exit code, stdout, stderr.
fn cli(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    cli_on(Emulator::shared(), dir, args)
}


#[tokio::test]
async fn the_cli_applies_and_sweeps_against_a_registry_with_exit_codes_a_pipeline_can_read() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    let dir = std::env::temp_dir().join(format!("ecr-retag-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.json");
    std::fs::write(&rules, r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}"]}]}"#).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"rules":[{"name":"release","semver":true,"tags":["v{majr}"]}]}"#).unwrap();
    let run = |args: &[&str]| cli(&dir, args);
    let rules = rules.to_str().unwrap();

    // Without credentials: one line saying where they come from, exit 1 (the instance role's
    // metadata service is switched off: nothing is asked of it).
    let bare = std::process::Command::new(Function::cli())
        .args(["apply", "--rules", rules, "--repository", "team/api", "--tag", "v1.4.2"])
        .env_clear()
        .envs(clock_env())
        .envs([("AWS_REGION", "eu-west-1"), ("AWS_EC2_METADATA_DISABLED", "true"), ("HOME", dir.to_str().unwrap())])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&bare.stderr);
    assert_eq!(bare.status.code(), Some(1), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(said.contains("NoCredentials") && said.contains("--profile") && said.contains("AWS_ENDPOINT_URL"), "{said}");

    // apply: the direct request, byte-exact; a table, or the function's answer with --json.
    let repo = repository(&client, "cliapply", false).await;
    let image = push(&client, &repo, &numbered_manifest(1), Some("v1.4.2")).await;
    let (code, out, err) = run(&["apply", "--rules", rules, "--repository", &repo, "--tag", "v1.4.2", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("would_create") && out.contains("stable"), "{out}");
    assert!(!state(&client, &repo).await.0.contains_key("stable"), "a dry run writes nothing");
    let (code, out, err) = run(&["apply", "--rules", rules, "--repository", &repo, "--tag", "v1.4.2", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["status"], "applied");
    assert_eq!(outcomes(&answer), pairs(&[("stable", "created"), ("v1", "created")]));
    let (tags, manifests) = state(&client, &repo).await;
    assert_eq!(tags["stable"], image);
    assert_eq!(manifests[&image], numbered_manifest(1).body, "bytes unchanged");
    let (code, out, _) = run(&["apply", "--rules", rules, "--repository", &repo, "--tag", "v1.4.2"]);
    assert_eq!((code, out.lines().filter(|l| l.contains("unchanged")).count()), (Some(0), 2), "{out}");

    // Exit 1: tags not put in place (an immutable tag elsewhere) or a missing repository.
    let locked = repository(&client, "cliapply", true).await;
    let old = push(&client, &locked, &numbered_manifest(2), Some("stable")).await;
    push(&client, &locked, &numbered_manifest(3), Some("v2.0.0")).await;
    let (code, out, err) = run(&["apply", "--rules", rules, "--repository", &locked, "--tag", "v2.0.0"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("conflict") && out.contains("stable"), "{out}");
    assert_eq!(state(&client, &locked).await.0["stable"], old);
    let (code, _, err) = run(&["apply", "--rules", rules, "--repository", "cliapply-missing", "--tag", "v1.0.0"]);
    assert_eq!(code, Some(1), "{err}");
    // Exit 2: usage errors and invalid rule files.
    let (code, _, err) = run(&["apply", "--rules", bad.to_str().unwrap(), "--repository", &repo, "--tag", "v1.4.2"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown placeholder `{majr}`"), "{err}");
    assert_eq!(run(&["apply", "--rules", rules, "--repository", &repo]).0, Some(2), "no --tag");
    assert_eq!(run(&["apply", "--rules", rules, "--repository", &repo, "--tag", "v1", "--colour"]).0, Some(2));
    assert_eq!(run(&["sweep", "--rules", rules]).0, Some(2), "no --repositories");

    // sweep: every repository a glob covers, over every page of repositories and images, with progress on stderr.
    let prefix = format!("clisweep{}", std::process::id());
    let mut repos = Vec::new();
    for r in 0..3 {
        let repo = repository(&client, &prefix, false).await;
        emulator.page_images(&repo, 2);
        for n in 0..5 {
            push(&client, &repo, &numbered_manifest(100 + r * 10 + n), Some(&format!("v{}.0.{n}", r + 1))).await;
        }
        repos.push(repo);
    }
    let glob = format!("{prefix}-*");
    // Repositories two a page too, for this one listing (the setting is the emulator's, shared).
    emulator.page_repositories(2);
    let (code, out, err) = run(&["sweep", "--rules", rules, "--repositories", &glob, "--max-writes", "3", "--json"]);
    emulator.page_repositories(1000);
    assert_eq!(code, Some(1), "stopped at the budget: not every tag is in place\n{out}{err}");
    let stopped: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((stopped["status"].as_str(), stopped["writes"].as_u64()), (Some("stopped"), Some(3)), "{stopped}");
    let token = stopped["continuation"].as_str().unwrap().to_owned();
    assert_eq!(run(&["sweep", "--rules", rules, "--repositories", &glob, "--writes-per-second", "0"]).0, Some(2));
    let (code, out, err) = run(&["sweep", "--rules", rules, "--repositories", &glob, "--continuation", &token, "--writes-per-second", "50"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(err.lines().any(|l| l.starts_with("[1/") && l.contains("images")), "plain progress lines off a terminal: {err}");
    // Each line but the last names the continuation that resumes at the next repository (for Ctrl-C).
    let first = err.lines().find(|l| l.starts_with("[1/")).unwrap();
    let next = first.rsplit_once("(to resume from here: --continuation resume-at:").map(|(_, n)| n.trim_end_matches(')')).unwrap();
    assert!(err.lines().any(|l| l.starts_with("[2/") && l.contains(&format!("] {next}: "))), "{err}");
    for (r, repo) in repos.iter().enumerate() {
        let (tags, _) = state(&client, repo).await;
        let newest = tags[&format!("v{}.0.4", r + 1)].clone();
        assert_eq!((&tags["stable"], &tags[&format!("v{}", r + 1)]), (&newest, &newest), "{repo}: {tags:?}");
        assert!(emulator.calls(repo)["DescribeImages"] >= 3, "five images, two a page: every page followed");
    }
    let (code, out, _) = run(&["sweep", "--rules", rules, "--repositories", &glob, "--json"]);
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, again["writes"].as_u64(), again["repositories"].as_array().map(Vec::len)), (Some(0), Some(0), Some(3)), "{again}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A registry of its own, letting ecr-retag make the ECR calls the doctor's policy grants and no others.
fn doctor_emulator() -> Emulator {
    let policy: Value = serde_json::from_str(&std::fs::read_to_string(root().join("examples/doctor-policy.json")).unwrap()).unwrap();
    let granted: Vec<&str> = policy["Statement"][0]["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().trim_start_matches("ecr:")).collect();
    Emulator::start(&granted)
}

#[tokio::test]
async fn doctor_warns_when_inspectors_rescan_window_is_shorter_than_a_gated_tag_may_wait() {
    use aws_sdk_ecr::types::{RegistryScanningRule, ScanFrequency, ScanType, ScanningRepositoryFilter, ScanningRepositoryFilterType};
    let emulator = doctor_emulator();
    let client = emulator.client();
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("ecr-retag-rescan-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let repo = format!("rescan{id}");
    client.create_repository().repository_name(&repo).send().await.unwrap();
    let filter = ScanningRepositoryFilter::builder().filter("*").filter_type(ScanningRepositoryFilterType::Wildcard).build().unwrap();
    let rule = RegistryScanningRule::builder().scan_frequency(ScanFrequency::ContinuousScan).repository_filters(filter).build().unwrap();
    client.put_registry_scanning_configuration().scan_type(ScanType::Enhanced).rules(rule).send().await.unwrap();
    let rules = dir.join("rules.json");
    let gated = json!({"rules": [{"name": "vetted", "repositories": [repo], "semver": true, "when": {"scan": "HIGH"}, "tags": ["stable", "{tag}-ok"]}]});
    std::fs::write(&rules, gated.to_string()).unwrap();
    let doctor = || cli_on(&emulator, &dir, &["doctor", "--rules", rules.to_str().unwrap()]);

    let (code, out, err) = doctor();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("rescanning"), "LIFETIME: nothing to say: {out}");
    emulator.inspector_rescan("DAYS_3");
    let (code, out, err) = doctor();
    assert_eq!(code, Some(0), "a warning, not a failure: {out}{err}");
    let warned: Vec<&str> = out.lines().filter(|l| l.starts_with("(registry): warns: Amazon Inspector stops rescanning images 3 days")).collect();
    assert_eq!(warned.len(), 1, "{out}");
    assert!(warned[0].contains("rule \"vetted\"") && warned[0].contains("rescanDuration=DAYS_30"), "{out}");
    assert_eq!(emulator.calls("(inspector)").get("GetConfiguration"), Some(&2), "read once per run");
}

#[tokio::test]
async fn doctor_finds_each_setting_that_would_defeat_the_rules_and_fails_only_then() {
    use aws_sdk_ecr::types::{ImageScanningConfiguration, RegistryScanningRule, ScanFrequency, ScanType, ScanningRepositoryFilter};
    use aws_sdk_ecr::types::{ScanningRepositoryFilterType, Tag as ResourceTag};
    let emulator = doctor_emulator();
    let client = emulator.client();
    let id = std::process::id();
    let cli = |dir: &std::path::Path, args: &[&str]| cli_on(&emulator, dir, args);
    let dir = std::env::temp_dir().join(format!("ecr-retag-doctor-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let p = format!("doc{id}");
    let rules = dir.join("rules.json");
    let text = json!({"rules": [
        {"name": "release", "repositories": [format!("{p}-*"), format!("{p}-cache/**")], "semver": true,
         "tags": ["stable", "v{major}-latest"], "when": {"scan": "HIGH"}},
        {"name": "platform", "repositories": [format!("{p}-*")], "repository_tags": {"team": "platform"}, "match": "^main-[0-9]+$", "tags": ["edge"]},
        {"name": "promote", "repositories": [format!("{p}-promo*")], "semver": true, "to": "prod/{repository}", "tags": ["{tag}", "stable"]}
    ]});
    std::fs::write(&rules, text.to_string()).unwrap();
    let rules = rules.to_str().unwrap();

    // A registry with one of each: a healthy repository, then one problem per repository.
    let names = ["ok", "immutable", "noscan", "lifecycle", "crowded", "promo-missing", "promo-kms", "promo-strict"].map(|n| format!("{p}-{n}"));
    let [ok, immutable, noscan, lifecycle, crowded, missing, kms, strict] = &names;
    let cached = format!("{p}-cache/library/nginx");
    for name in names.iter().chain([&cached]) {
        let on_push = ImageScanningConfiguration::builder().scan_on_push(name != noscan).build();
        let mut request = client.create_repository().repository_name(name).image_scanning_configuration(on_push);
        if name == immutable {
            request = request
                .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::ImmutableWithExclusion)
                .image_tag_mutability_exclusion_filters(
                    aws_sdk_ecr::types::ImageTagMutabilityExclusionFilter::builder()
                        .filter_type(aws_sdk_ecr::types::ImageTagMutabilityExclusionFilterType::Wildcard)
                        .filter("stable")
                        .build()
                        .unwrap(),
                );
        }
        if name == ok {
            request = request.tags(ResourceTag::builder().key("team").value("platform").build().unwrap());
        }
        request.send().await.unwrap();
    }
    // Promotions: into a target that does not exist, and into one encrypted otherwise (BLOB_MOUNTING is off here).
    let sealed = crate::support::kms();
    client.create_repository().repository_name(format!("prod/{kms}")).encryption_configuration(sealed).send().await.unwrap();
    // And into one that keeps tags immutable and expires what was pushed (promoted) a month ago.
    let strict_target = format!("prod/{strict}");
    client.create_repository().repository_name(&strict_target).image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable).send().await.unwrap();
    let aged = r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}]}"#;
    client.put_lifecycle_policy().repository_name(&strict_target).lifecycle_policy_text(aged).send().await.unwrap();
    client.create_pull_through_cache_rule().ecr_repository_prefix(format!("{p}-cache")).upstream_registry_url("public.ecr.aws").send().await.unwrap();
    let expire = r#"{"rules": [{"rulePriority": 10, "selection": {"tagStatus": "tagged", "tagPatternList": ["v*"],
        "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}]}"#;
    client.put_lifecycle_policy().repository_name(lifecycle).lifecycle_policy_text(expire).send().await.unwrap();
    let image = push(&client, crowded, &numbered_manifest(900), Some("v1.0.0")).await;
    let m = numbered_manifest(900);
    use futures_util::StreamExt;
    let puts = futures_util::stream::iter(1..900).map(|n| {
        client.put_image().repository_name(crowded).image_manifest(&m.body).image_manifest_media_type(m.media_type).image_tag(format!("build-{n}")).send()
    });
    for put in puts.buffer_unordered(16).collect::<Vec<_>>().await {
        put.unwrap();
    }
    // Basic scanning on push by a registry rule for the cache; the others by their own setting.
    let filter = ScanningRepositoryFilter::builder().filter(format!("{p}-cache/*")).filter_type(ScanningRepositoryFilterType::Wildcard).build().unwrap();
    let rule = RegistryScanningRule::builder().scan_frequency(ScanFrequency::ScanOnPush).repository_filters(filter).build().unwrap();
    client.put_registry_scanning_configuration().scan_type(ScanType::Basic).rules(rule).send().await.unwrap();

    let (code, out, err) = cli(&dir, &["doctor", "--rules", rules]);
    assert_eq!(code, Some(1), "something would defeat the rules\n{out}{err}");
    let lines = |repo: &str, level: &str| out.lines().filter(|l| l.starts_with(&format!("{repo}: {level}: "))).map(str::to_owned).collect::<Vec<_>>();
    assert!(!out.contains(&format!("{ok}:")), "nothing to say of the healthy one: {out}");
    assert_eq!(lines("(registry)", "note").len(), 1, "the scan events, said once: {out}");
    assert!(lines("(registry)", "note")[0].contains("ScanEvents=basic"), "{out}");
    let defeats = lines(immutable, "DEFEATS");
    assert_eq!(defeats.len(), 1, "`stable` is excluded, `v{{major}}-latest` is not: {out}");
    assert!(defeats[0].contains("`v{major}-latest`") && defeats[0].contains("ecr-retag filters"), "{out}");
    assert!(lines(immutable, "note").iter().any(|l| l.contains("rule \"platform\" names it but does not apply")), "{out}");
    assert!(lines(noscan, "DEFEATS")[0].contains("waits for a scan, and no scan starts on push here"), "{out}");
    assert!(lines(lifecycle, "DEFEATS")[0].contains("lifecycle rule 10 (images tagged `v*`) expires those pushed more than 30 days ago"), "{out}");
    assert!(lines(&cached, "DEFEATS")[0].contains(&format!("pull-through cache repository (prefix `{p}-cache/`)")), "{out}");
    assert!(lines(crowded, "warns")[0].contains(&format!("image {image} holds 900 of ECR's 1000 tags")), "{out}");
    assert_eq!(lines(crowded, "DEFEATS").len(), 0, "{out}");
    assert!(lines(missing, "DEFEATS")[0].contains(&format!("rule \"promote\" promotes into prod/{missing}: the target repository prod/{missing} does not exist")), "{out}");
    // A repository named on the command line that the registry does not have: said so, once.
    let ghost = format!("{p}-ghost");
    let (code, ghostly, err) = cli(&dir, &["doctor", "--rules", rules, "--repositories", &ghost]);
    assert_eq!(code, Some(1), "{ghostly}{err}");
    let said: Vec<&str> = ghostly.lines().filter(|l| l.starts_with(&format!("{ghost}: DEFEATS: "))).collect();
    assert_eq!(said.len(), 1, "{ghostly}");
    assert!(said[0].contains("repository not found in this registry") && !ghostly.contains("grant the doctor"), "{ghostly}");
    let sealed = &lines(kms, "DEFEATS")[0];
    assert!(sealed.contains("the source has AES256 while the target has KMS with key arn:aws:kms:") && sealed.ends_with("fix: create the target with the source's encryption"), "{out}");
    let mounting = lines("(registry)", "DEFEATS");
    assert_eq!(mounting.len(), 1, "said once: {out}");
    assert!(mounting[0].contains("rule \"promote\" promotes into another repository without \"copy_blobs\": blob mounting is off"), "{out}");
    assert!(mounting[0].contains("put-account-setting --name BLOB_MOUNTING --value ENABLED"), "{out}");
    // The target's own settings, judged for the tags promoted into it.
    let target = lines(&strict_target, "DEFEATS");
    assert_eq!(target.len(), 2, "{out}");
    assert!(target[0].contains("`stable` (rule \"promote\"") && target[0].contains("keeps it immutable"), "{out}");
    assert!(target[1].contains("expires those pushed more than 30 days ago") && target[1].contains("`stable`"), "{out}");
    // The summary counts what the lines above name: DEFEATS lines, and the places they are about.
    let defeats = out.lines().filter(|l| l.contains(": DEFEATS: ")).count();
    let places: std::collections::BTreeSet<&str> = out.lines().filter(|l| l.contains(": DEFEATS: ")).filter_map(|l| l.split(": ").next()).collect();
    let notes = out.lines().filter(|l| l.contains(": note: ")).count();
    assert_eq!((defeats, places.len(), notes), (9, 8, 8), "{out}");
    assert_eq!(
        out.lines().last().unwrap(),
        "9 repositories checked; something would defeat a rule in 7 repositories and the registry; lines: 9 DEFEATS, 0 UNCHECKED, 1 warns, 8 note",
        "{out}"
    );

    // Narrowed to the healthy one: exit 0; --json for a pipeline.
    let (code, out, err) = cli(&dir, &["doctor", "--rules", rules, "--repositories", ok, "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["repositories"], json!([ok]));
    assert_eq!(answer["findings"].as_array().map(|f| f.iter().map(|f| f["level"].as_str()).collect::<Vec<_>>()), Some(vec![Some("notes")]), "{answer}");
    // Usage errors: 2.
    assert_eq!(cli(&dir, &["doctor", "--rules", rules, "--dry-run"]).0, Some(2));
    assert_eq!(cli(&dir, &["doctor"]).0, Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

/// Lambda Managed Instances: with `AWS_LAMBDA_MAX_CONCURRENCY` one bootstrap process serves several
/// invocations at once, sharing one handler (its caches); without it, one at a time. Either way
/// four releases pushed at once end with each if-newer tag on its highest version.
#[tokio::test]
async fn with_max_concurrency_one_process_serves_invocations_at_once_and_the_tags_end_right() {
    const CAREFUL: &str = r#"{"rules":[{"name":"release","semver":true,"move":"if-newer","tags":["stable","v{major}","v{major}.{minor}"]}]}"#;
    let client = Emulator::shared().client();
    for (max, at_once) in [("4", true), ("1", false)] {
        let repo = repository(&client, "managed", false).await;
        let versions = ["1.0.0", "1.1.0", "1.1.1", "1.2.0"];
        let mut digests = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            digests.push(push(&client, &repo, &numbered_manifest(900 + i as u32), Some(v)).await);
        }
        let function = Function::start(&[("RETAG_RULES", CAREFUL), ("AWS_LAMBDA_MAX_CONCURRENCY", max)]).await;
        let events: Vec<Value> = versions.iter().zip(&digests).map(|(v, d)| push_event(&repo, d, v, None)).collect();
        let answers = futures_util::future::join_all(events.iter().map(|e| function.api.invoke(e))).await;
        for answer in answers {
            assert_eq!(response(answer)["status"], "applied");
        }
        let (tags, _) = state(&client, &repo).await;
        for (tag, want) in [("stable", 3), ("v1", 3), ("v1.0", 0), ("v1.1", 2), ("v1.2", 3)] {
            assert_eq!(tags.get(tag), Some(&digests[want]), "{tag} with AWS_LAMBDA_MAX_CONCURRENCY={max}");
        }
        // Each if-newer write waits 3.5 s for its second look: invocations queued together overlap
        // only when the process takes several at once.
        assert_eq!(function.api.most_at_once() > 1, at_once, "AWS_LAMBDA_MAX_CONCURRENCY={max}: {}", function.api.most_at_once());
    }
}
