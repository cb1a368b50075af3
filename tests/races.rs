//! Moving tags under concurrency: `"move": "if-newer"` tags end on the highest
//! version whatever the order, duplication and concurrency of the deliveries,
//! with throttling, late retries and writes that land after their caller gave up.
//!
//! The orders are random; each test prints its seed, and `ECR_RETAG_RACE_SEED=N`
//! replays one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test's panic is its failure

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ecr_retag::config::Config;
use ecr_retag::registry::ecr::Ecr;
use ecr_retag::lambda::{Answer as HandlerAnswer, Handler};
use ecr_retag::domain::rules::RuleSet;
use futures_util::future::join_all;
use serde_json::Value;
use support::runtime_api::Answer;
use support::*;

const CAREFUL: &str = r#"{"rules":[{"name":"release","semver":true,"move":"if-newer","tags":["stable","v{major}","v{major}.{minor}"]}]}"#;

/// xorshift64*: small, and replayable from its printed seed.
struct Rng(u64);

impl Rng {
    fn seeded(test: &str) -> Rng {
        let seed = std::env::var("ECR_RETAG_RACE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64) | 1
        });
        eprintln!("{test}: ECR_RETAG_RACE_SEED={seed}");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

fn handler() -> Handler<Ecr> {
    Handler::new(Ecr::new(Emulator::shared().client()), Config::with_rules(RuleSet::from_json(CAREFUL).unwrap()))
}

/// Pushes one image per version (its own manifest, tagged with the version, as
/// `docker push` does) and returns the digests in the same order.
async fn push_versions(repo: &str, versions: &[String], first: u32) -> Vec<String> {
    let client = Emulator::shared().client();
    let mut digests = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        digests.push(push(&client, repo, &numbered_manifest(first + i as u32), Some(v)).await);
    }
    digests
}

async fn batch(h: &Handler<Ecr>, events: &[Value]) -> Vec<String> {
    let ids: Vec<String> = (0..events.len()).map(|i| format!("m{i}")).collect();
    let messages: Vec<(&str, String)> = ids.iter().map(String::as_str).zip(events.iter().map(Value::to_string)).collect();
    match h.invoke(&sqs_batch(&messages), SystemTime::now() + Duration::from_secs(30)).await {
        Ok(HandlerAnswer::Batch(b)) => b.batch_item_failures.into_iter().map(|f| f.item_identifier).collect(),
        other => panic!("not a batch answer: {other:?}"),
    }
}

#[tokio::test]
async fn a_batch_of_one_repositorys_releases_in_any_order_ends_on_the_highest() {
    let mut rng = Rng::seeded("batch of ten");
    let versions: Vec<String> = (0..10).map(|i| format!("v2.{i}.0")).collect();
    let client = Emulator::shared().client();
    let mut runs = Vec::new();
    for run in 0..50u32 {
        let repo = repository(&client, "batch", false).await;
        let digests = push_versions(&repo, &versions, run * 10).await;
        let mut order: Vec<usize> = (0..10).collect();
        rng.shuffle(&mut order);
        runs.push((repo, digests, order));
    }
    let started = Instant::now();
    let (versions, client) = (&versions, &client);
    let outcomes = join_all(runs.iter().map(|(repo, digests, order)| async move {
        let events: Vec<Value> = order.iter().map(|&i| push_event(repo, &digests[i], &versions[i], None)).collect();
        let failed = batch(&handler(), &events).await;
        let (tags, _) = state(client, repo).await;
        (failed, tags)
    }))
    .await;
    eprintln!("50 batches of 10 in {:?}", started.elapsed());
    for ((repo, digests, order), (failed, tags)) in runs.iter().zip(outcomes) {
        assert!(failed.is_empty(), "{repo}: {failed:?}");
        let order: Vec<&str> = order.iter().map(|&i| versions[i].as_str()).collect();
        assert_eq!((tags["stable"].as_str(), tags["v2"].as_str()), (digests[9].as_str(), digests[9].as_str()), "{repo}, batch order {order:?}");
        for (i, d) in digests.iter().enumerate() {
            assert_eq!(&tags[&format!("v2.{i}")], d, "{repo}: each line keeps its own image");
        }
    }
}

#[tokio::test]
async fn a_release_and_its_hotfix_in_one_batch_end_right_in_both_orders() {
    let client = Emulator::shared().client();
    let mut runs = Vec::new();
    for run in 0..50u32 {
        let repo = repository(&client, "pair", false).await;
        // stable, v1 and v1.2 on v1.2.0; then v1.3.0 and its hotfix v1.2.9 are pushed together.
        let old = push_versions(&repo, &["v1.2.0".to_owned()], 1000 + run * 3).await.remove(0);
        for t in ["stable", "v1", "v1.2"] {
            push(&client, &repo, &numbered_manifest(1000 + run * 3), Some(t)).await;
        }
        let new = push_versions(&repo, &["v1.3.0".to_owned(), "v1.2.9".to_owned()], 1000 + run * 3 + 1).await;
        runs.push((repo, old, new[0].clone(), new[1].clone(), run % 2 == 0));
    }
    let client = &client;
    let outcomes = join_all(runs.iter().map(|(repo, _, release, hotfix, release_first)| async move {
        let (r, h) = (push_event(repo, release, "v1.3.0", None), push_event(repo, hotfix, "v1.2.9", None));
        let events = if *release_first { vec![r, h] } else { vec![h, r] };
        let failed = batch(&handler(), &events).await;
        (failed, state(client, repo).await.0)
    }))
    .await;
    for ((repo, old, release, hotfix, release_first), (failed, tags)) in runs.iter().zip(outcomes) {
        assert!(failed.is_empty(), "{repo}: {failed:?}");
        let ends: Vec<&str> = ["stable", "v1", "v1.3", "v1.2"].iter().map(|t| tags[*t].as_str()).collect();
        assert_eq!(ends, [release, release, release, hotfix], "{repo}, release first: {release_first} (v1.2.0 was {old})");
    }
}

#[tokio::test]
async fn a_batch_of_duplicates_writes_each_tag_once() {
    let Scenario { emulator, repo, .. } = Scenario::new("dups", false).await;
    let digest = push_versions(&repo, &["v1.4.2".to_owned()], 5000).await.remove(0);
    let event = push_event(&repo, &digest, "v1.4.2", None);
    let failed = batch(&handler(), &vec![event; 8]).await;
    assert!(failed.is_empty(), "{failed:?}");
    let writes = emulator.writes(&repo);
    assert_eq!(writes.len(), 4, "{writes:?}");
    assert!(["stable", "v1", "v1.4"].iter().all(|t| writes.get(*t) == Some(&1)), "each tag written once: {writes:?}");
    assert_eq!(emulator.calls(&repo).get("PutImage"), Some(&4), "the push, then one PutImage per tag");
}

/// One delivery: which round, which version, and the event.
struct Delivery {
    round: usize,
    version: usize,
    event: Value,
}

/// The highest version of each line (v1.0 … v1.3) and of all (stable, v1).
fn expected(digests: &[String]) -> HashMap<String, String> {
    let mut want = HashMap::new();
    for line in 0..4 {
        want.insert(format!("v1.{line}"), digests[line * 5 + 4].clone());
    }
    want.insert("stable".into(), digests[19].clone());
    want.insert("v1".into(), digests[19].clone());
    want
}

fn version(i: usize) -> String {
    format!("v1.{}.{}", i / 5, i % 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_over_many_instances_never_leave_a_moving_tag_on_a_lower_version() {
    const INSTANCES: usize = 40;
    const ROUNDS: usize = 50;
    const VERSIONS: usize = 20;
    const DUPLICATES: usize = 4;
    const DELIVERIES: usize = 3;
    let mut rng = Rng::seeded("instances");
    let emulator = Emulator::shared();
    let client = emulator.client();

    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let repo = repository(&client, "race", false).await;
        let versions: Vec<String> = (0..VERSIONS).map(version).collect();
        let digests = push_versions(&repo, &versions, 10_000 + (round * VERSIONS) as u32).await;
        rounds.push((repo, digests));
    }
    // Writes that go wrong the ways a real region's do: late (after the caller's 2-s attempt
    // timeout, within the 1-s slack the design allows), slow but in time, throttled by an
    // account-wide quota.
    for (repo, _) in &rounds {
        emulator.late("PutImage", repo, Some("stable"), 2.5, 1);
        emulator.late("PutImage", repo, Some("v1"), 0.4, 2);
        emulator.late("BatchGetImage", repo, None, 0.3, 1);
    }
    emulator.quota("PutImage", "race", 20);

    let mut deliveries = Vec::new();
    for (round, (repo, digests)) in rounds.iter().enumerate() {
        for version in (0..VERSIONS).chain((0..DUPLICATES).map(|_| rng.below(VERSIONS))) {
            deliveries.push(Delivery { round, version, event: push_event(repo, &digests[version], &self::version(version), None) });
        }
    }
    rng.shuffle(&mut deliveries);
    let delays: Vec<u64> = (0..deliveries.len() * DELIVERIES).map(|_| rng.below(3000) as u64).collect();

    let instances: Vec<Function> = join_all((0..INSTANCES).map(|_| Function::start(&[("RETAG_RULES", CAREFUL)]))).await;
    let (free, idle) = tokio::sync::mpsc::channel::<usize>(INSTANCES);
    for i in 0..INSTANCES {
        free.send(i).await.unwrap();
    }
    let idle = Arc::new(tokio::sync::Mutex::new(idle));
    let answers: Arc<Mutex<Vec<(usize, usize, Answer)>>> = Arc::default();
    let retries = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    join_all(deliveries.iter().enumerate().map(|(n, d)| {
        let (free, idle, answers, retries, instances, delays) = (free.clone(), idle.clone(), answers.clone(), retries.clone(), &instances, &delays);
        async move {
            for attempt in 0..DELIVERIES {
                let instance = idle.lock().await.recv().await.unwrap();
                let answer = instances[instance].api.invoke(&d.event).await;
                free.send(instance).await.unwrap();
                let failed = matches!(answer, Answer::Error { .. });
                if !failed || attempt + 1 == DELIVERIES {
                    answers.lock().unwrap().push((d.round, d.version, answer));
                    return;
                }
                // Lambda retries a failed asynchronous invocation later, on any instance.
                retries.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delays[n * DELIVERIES + attempt])).await;
            }
        }
    }))
    .await;
    let elapsed = started.elapsed();

    let answers = answers.lock().unwrap().clone();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (_, _, answer) in &answers {
        if let Answer::Response(r) = answer {
            for t in r["tags"].as_array().into_iter().flatten() {
                *counts.entry(t["outcome"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            }
        }
    }
    let errors: Vec<_> = answers.iter().filter(|(_, _, a)| matches!(a, Answer::Error { .. })).collect();
    let mut calls: HashMap<String, u64> = HashMap::new();
    let mut throttled = 0;
    for (repo, _) in &rounds {
        for (op, n) in emulator.function_calls_on(repo) {
            *calls.entry(op).or_default() += n;
        }
        throttled += emulator.throttled_and_redundant(repo).0.get("PutImage").copied().unwrap_or(0);
    }
    eprintln!(
        "{} deliveries ({} retried) over {INSTANCES} instances in {elapsed:?}; outcomes {counts:?}; calls {calls:?}; {throttled} PutImages throttled; {} still failing",
        answers.len(),
        retries.load(Ordering::SeqCst),
        errors.len()
    );

    let mut lower = Vec::new();
    for (round, (repo, digests)) in rounds.iter().enumerate() {
        let (tags, _) = state(&client, repo).await;
        let want = expected(digests);
        let wrong: Vec<String> = want
            .iter()
            .filter(|(t, d)| tags.get(*t) != Some(*d))
            .map(|(t, d)| {
                let at = tags.get(t).and_then(|h| digests.iter().position(|x| x == h)).map(version);
                format!("{t} on {at:?}, not {}", version(digests.iter().position(|x| x == d).unwrap_or(0)))
            })
            .collect();
        if !wrong.is_empty() {
            lower.push(format!("round {round} ({repo}): {}", wrong.join(", ")));
        }
    }
    assert!(lower.is_empty(), "{} of {ROUNDS} rounds end lower:\n{}", lower.len(), lower.join("\n"));
    assert!(errors.is_empty(), "every event succeeds within {DELIVERIES} deliveries: {errors:?}");

    // The highest version's own answer never says its moving tags lost.
    for (_, version, answer) in &answers {
        if *version != VERSIONS - 1 {
            continue;
        }
        let Answer::Response(r) = answer else { continue };
        for t in r["tags"].as_array().into_iter().flatten().filter(|t| t["tag"] == "stable" || t["tag"] == "v1") {
            assert!(["created", "moved", "unchanged", "repaired"].contains(&t["outcome"].as_str().unwrap_or_default()), "{r}");
        }
    }
}

/// Promotions into one target from concurrent, shuffled and duplicated deliveries on separate
/// instances: the target's if-newer tags end on the highest version, as in the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_promotions_of_a_release_its_hotfix_and_the_next_release_keep_if_newer_in_the_target() {
    const ROUNDS: usize = 12;
    const INSTANCES: usize = 6;
    const PROMOTE: &str = r#"{"rules":[{"name":"prod","semver":true,"move":"if-newer","to":"prod/{repository}","tags":["stable","v{major}","v{major}.{minor}"]}]}"#;
    let mut rng = Rng::seeded("promotions");
    // An emulator of its own: promotion's calls granted, BLOB_MOUNTING on (account-wide).
    let operations: Vec<&str> = FUNCTION_OPERATIONS.iter().chain(PROMOTION_OPERATIONS.iter()).copied().collect();
    let emulator = Emulator::start(&operations);
    let client = emulator.client();
    client.put_account_setting().name("BLOB_MOUNTING").value("ENABLED").send().await.unwrap();
    let versions = ["v1.4.2", "v1.4.3", "v1.5.0"].map(String::from);

    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let repo = repository(&client, "promo", false).await;
        client.create_repository().repository_name(format!("prod/{repo}")).send().await.unwrap();
        let mut digests = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            digests.push(push(&client, &repo, &numbered_manifest(70_000 + (round * 3 + i) as u32), Some(v)).await);
        }
        rounds.push((repo, digests));
    }
    // Every event once or twice, all rounds' deliveries shuffled together.
    let mut deliveries: Vec<Value> = Vec::new();
    for (repo, digests) in &rounds {
        for (i, v) in versions.iter().enumerate() {
            for _ in 0..1 + rng.below(2) {
                deliveries.push(push_event(repo, &digests[i], v, None));
            }
        }
    }
    rng.shuffle(&mut deliveries);
    let env = [("RETAG_RULES", PROMOTE), ("AWS_ENDPOINT_URL", emulator.endpoint.as_str())];
    let instances: Vec<Function> = join_all((0..INSTANCES).map(|_| Function::start(&env))).await;
    // Each delivery goes to an idle instance (one invocation at a time, as Lambda's); a failed
    // one is retried twice, later, on whichever instance is idle then.
    let (free, idle) = tokio::sync::mpsc::channel::<usize>(INSTANCES);
    for i in 0..INSTANCES {
        free.send(i).await.unwrap();
    }
    let idle = Arc::new(tokio::sync::Mutex::new(idle));
    let delays: Vec<u64> = (0..deliveries.len() * 2).map(|_| 500 + rng.below(2500) as u64).collect();
    let (instances, delays) = (&instances, &delays);
    let answers = join_all(deliveries.iter().enumerate().map(|(n, event)| {
        let (free, idle) = (free.clone(), idle.clone());
        async move {
            let mut answer = None;
            for attempt in 0..3 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(delays[n * 2 + attempt - 1])).await;
                }
                let instance = idle.lock().await.recv().await.unwrap();
                let got = instances[instance].api.invoke(event).await;
                free.send(instance).await.unwrap();
                let failed = matches!(got, Answer::Error { .. });
                answer = Some(got);
                if !failed {
                    break;
                }
            }
            answer.unwrap()
        }
    }))
    .await;

    let mut wrong = Vec::new();
    for (repo, digests) in &rounds {
        let (tags, _) = state(&client, &format!("prod/{repo}")).await;
        for (tag, want) in [("stable", 2), ("v1", 2), ("v1.5", 2), ("v1.4", 1)] {
            if tags.get(tag) != Some(&digests[want]) {
                let at = tags.get(tag).and_then(|d| digests.iter().position(|x| x == d)).map(|i| versions[i].as_str());
                wrong.push(format!("prod/{repo}: {tag} on {at:?}, not {}", versions[want]));
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {ROUNDS} targets end wrong:\n{}", wrong.len(), wrong.join("\n"));
    let failed: Vec<&Answer> = answers.iter().filter(|a| matches!(a, Answer::Error { .. })).collect();
    assert!(failed.is_empty(), "every delivery succeeds within Lambda's retries: {failed:?}");

    eprintln!("promotions: {} deliveries over {INSTANCES} instances, {ROUNDS} targets", deliveries.len());
}

/// An SQS client for the emulator (moto serves SQS beside ECR).
fn sqs_client() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new(REGION))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(&Emulator::shared().endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fanned_out_sweep_over_many_instances_with_duplicated_shuffled_and_late_deliveries_puts_each_tag_once() {
    const REPOSITORIES: usize = 12;
    const INSTANCES: usize = 4;
    let rng = Rng::seeded("fan-out");
    let emulator = Emulator::shared();
    let client = emulator.client();
    let sqs = sqs_client();
    let prefix = format!("fan{}", std::process::id());
    // Seven moving tags per repository and five writes per sweep message: every repository
    // takes a continuation through the queue.
    let versions: Vec<String> = ["1.0.0", "1.0.1", "1.1.0", "1.1.1", "2.0.0", "2.0.1", "2.1.0", "2.1.1"].iter().map(|v| format!("v{v}")).collect();
    let mut repos = Vec::new();
    for r in 0..REPOSITORIES {
        let repo = format!("{prefix}-{r:02}");
        client.create_repository().repository_name(&repo).send().await.unwrap();
        let digests = push_versions(&repo, &versions, 50_000 + (r * versions.len()) as u32).await;
        repos.push((repo, digests));
    }
    let url = sqs.create_queue().queue_name(&prefix).send().await.unwrap().queue_url.unwrap();
    let env = [("RETAG_RULES", CAREFUL), ("RETAG_SWEEP_QUEUE_URL", url.as_str())];
    let instances: Vec<Function> = join_all((0..INSTANCES).map(|_| Function::start(&env))).await;

    let request = serde_json::json!({"reconcile": {"repositories": [format!("{prefix}-*")], "max_writes": 5, "fan_out": true}});
    let Answer::Response(fanned) = instances[0].api.invoke(&request).await else { panic!("the fan-out failed") };
    assert_eq!(fanned["enqueued"]["messages"], REPOSITORIES, "{fanned}");
    assert_eq!(fanned["writes"], 0, "a fan-out writes nothing itself");

    // Lambda's event source mapping, played by the test: each instance takes up to ten
    // messages, gets them shuffled and some twice (SQS delivers at least once), and deletes
    // what its answer does not name as failed.
    let received = Arc::new(AtomicUsize::new(0));
    let delivered: Arc<Mutex<Vec<String>>> = Arc::default();
    let rng = Arc::new(Mutex::new(rng));
    let started = Instant::now();
    let mut idle_rounds = 0;
    while idle_rounds < 2 {
        let took = join_all(instances.iter().map(|instance| {
            let (sqs, url, received, delivered, rng) = (&sqs, &url, received.clone(), delivered.clone(), rng.clone());
            async move {
                let batch = sqs.receive_message().queue_url(url).max_number_of_messages(10).visibility_timeout(60).send().await.unwrap();
                let messages = batch.messages();
                let mut records: Vec<(String, String, String)> = messages
                    .iter()
                    .map(|m| (m.message_id().unwrap().to_owned(), m.body().unwrap().to_owned(), m.receipt_handle().unwrap().to_owned()))
                    .collect();
                {
                    let mut rng = rng.lock().unwrap();
                    let again: Vec<_> = records.iter().filter(|_| rng.below(4) == 0).cloned().collect();
                    records.extend(again);
                    rng.shuffle(&mut records);
                }
                if records.is_empty() {
                    return 0;
                }
                received.fetch_add(messages.len(), Ordering::SeqCst);
                let pairs: Vec<(&str, String)> = records.iter().map(|(id, body, _)| (id.as_str(), body.clone())).collect();
                let Answer::Response(answer) = instance.api.invoke_raw(&sqs_batch(&pairs), Duration::from_secs(30)).await else {
                    panic!("a batch answers with its failed messages")
                };
                let failed: Vec<&str> = answer["batchItemFailures"].as_array().unwrap().iter().map(|f| f["itemIdentifier"].as_str().unwrap()).collect();
                for m in messages {
                    if failed.contains(&m.message_id().unwrap()) {
                        sqs.change_message_visibility().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).visibility_timeout(0).send().await.unwrap();
                    } else {
                        sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
                        delivered.lock().unwrap().push(m.body().unwrap().to_owned());
                    }
                }
                messages.len()
            }
        }))
        .await;
        idle_rounds = if took.iter().sum::<usize>() == 0 { idle_rounds + 1 } else { 0 };
        assert!(started.elapsed() < Duration::from_secs(120), "the queue drains");
    }
    let received = received.load(Ordering::SeqCst);
    assert!(received > REPOSITORIES, "stopped sweeps came back as continuations: {received} messages for {REPOSITORIES} repositories");

    // A late redelivery of sweeps already done writes nothing.
    let before: Vec<HashMap<String, u64>> = repos.iter().map(|(repo, _)| emulator.writes(repo)).collect();
    let late: Vec<(String, String)> = delivered.lock().unwrap().iter().take(3).enumerate().map(|(i, b)| (format!("late{i}"), b.clone())).collect();
    let pairs: Vec<(&str, String)> = late.iter().map(|(id, b)| (id.as_str(), b.clone())).collect();
    let Answer::Response(answer) = instances[1].api.invoke_raw(&sqs_batch(&pairs), Duration::from_secs(30)).await else { panic!() };
    assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{answer}");

    let expected = [("stable", 7), ("v1", 3), ("v2", 7), ("v1.0", 1), ("v1.1", 3), ("v2.0", 5), ("v2.1", 7)];
    for ((repo, digests), before) in repos.iter().zip(before) {
        let (tags, _) = state(&client, repo).await;
        for (tag, version) in expected {
            assert_eq!(tags.get(tag), Some(&digests[version]), "{repo}: {tag} on {}", versions[version]);
        }
        let writes = emulator.writes(repo);
        let moved: Vec<(&str, u64)> = expected.iter().map(|(t, _)| (*t, writes.get(*t).copied().unwrap_or(0))).collect();
        assert!(moved.iter().all(|(_, n)| *n == 1), "{repo}: each tag written once, whatever the duplicates: {moved:?}");
        assert_eq!(emulator.writes(repo), before, "{repo}: the late deliveries wrote nothing");
    }
    // The final summary: a log line per repository with its sweep complete.
    let lines: Vec<String> = instances.iter().flat_map(|i| i.lines()).filter(|l| l.contains("reconcile sweep status=complete")).collect();
    for (repo, _) in &repos {
        assert!(lines.iter().any(|l| l.contains(&format!("\"repository\":\"{repo}\""))), "{repo} has a completed sweep's log line");
    }
    eprintln!("fan-out: {REPOSITORIES} repositories, {received} messages received over {INSTANCES} instances in {:?}", started.elapsed());
}
