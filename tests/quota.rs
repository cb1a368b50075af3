//! Quota-aware writing, under sustained load: PutImage throttled by an
//! account-wide quota, events delivered through SQS batches with Lambda's
//! deadline, failed messages redelivered until none is left. A test binary of
//! its own, so its load does not slow the other tests' emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test's panic is its failure

mod support;

use std::time::{Duration, Instant, SystemTime};

use ecr_retag::config::Config;
use ecr_retag::registry::ecr::Ecr;
use ecr_retag::lambda::{Answer, Handler};
use ecr_retag::domain::rules::RuleSet;
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use support::*;

const EVENTS: usize = 500;
const REPOSITORIES: usize = 10;
/// Four tags per event, none shared with another event, so every write is accounted for.
const RULES: &str = r#"{"rules":[{"name":"fan","match":"build-[0-9]+","tags":["{tag}-a","{tag}-b","{tag}-c","{tag}-d"]}]}"#;
/// Far above ECR's default 10 per second, so the test takes seconds; what matters is that it bites.
const PUT_IMAGE_PER_SECOND: u32 = 100;
const BATCH: usize = 10;
/// Invocations at once, as an event source mapping's maximum concurrency.
const INVOCATIONS: usize = 5;
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_events_of_four_tags_under_a_put_image_quota_all_end_fully_tagged_without_duplicate_writes() {
    let emulator = Emulator::shared();
    let client = emulator.client();
    let mut repos = Vec::new();
    for _ in 0..REPOSITORIES {
        repos.push(repository(&client, "quota", false).await);
    }
    let mut events = Vec::new();
    for n in 0..EVENTS {
        let repo = &repos[n % REPOSITORIES];
        let tag = format!("build-{n}");
        let digest = push(&client, repo, &numbered_manifest(n as u32), Some(&tag)).await;
        events.push((format!("m{n}"), repo.clone(), tag, digest));
    }
    emulator.quota("PutImage", &format!("quota-{}-", std::process::id()), PUT_IMAGE_PER_SECOND);

    let h = Handler::new(Ecr::new(client_for(&emulator.endpoint)), Config::with_rules(RuleSet::from_json(RULES).unwrap()));
    let started = Instant::now();
    let mut pending: Vec<usize> = (0..EVENTS).collect();
    let mut rounds = Vec::new();
    let mut slowest = Duration::ZERO;
    while !pending.is_empty() && rounds.len() < 20 {
        let batches: Vec<String> = pending
            .chunks(BATCH)
            .map(|chunk| {
                let records: Vec<_> = chunk
                    .iter()
                    .map(|&n| {
                        let (id, repo, tag, digest) = &events[n];
                        json!({"messageId": id, "eventSource": "aws:sqs", "body": push_event(repo, digest, tag, None).to_string()})
                    })
                    .collect();
                json!({ "Records": records }).to_string()
            })
            .collect();
        let answers: Vec<(Vec<String>, Duration)> = stream::iter(batches)
            .map(|batch| {
                let h = &h;
                async move {
                    let invoked = Instant::now();
                    let answer = h.invoke(&batch, SystemTime::now() + FUNCTION_TIMEOUT).await;
                    let failed = match answer {
                        Ok(Answer::Batch(b)) => b.batch_item_failures.into_iter().map(|f| f.item_identifier).collect(),
                        other => panic!("not a batch answer: {other:?}"),
                    };
                    (failed, invoked.elapsed())
                }
            })
            .buffer_unordered(INVOCATIONS)
            .collect()
            .await;
        slowest = answers.iter().map(|(_, d)| *d).fold(slowest, Duration::max);
        let failed: Vec<&String> = answers.iter().flat_map(|(f, _)| f).collect();
        rounds.push(failed.len());
        pending = events.iter().enumerate().filter(|(_, e)| failed.contains(&&e.0)).map(|(n, _)| n).collect();
    }
    let elapsed = started.elapsed();

    let mut throttled = 0;
    for repo in &repos {
        let (tags, _) = state(&client, repo).await;
        for (_, r, tag, digest) in events.iter().filter(|e| &e.1 == repo) {
            for suffix in ["a", "b", "c", "d"] {
                assert_eq!(tags.get(&format!("{tag}-{suffix}")), Some(digest), "{r}: {tag}-{suffix}");
            }
        }
        let writes = emulator.writes(repo);
        assert_eq!(writes.len(), 5 * EVENTS / REPOSITORIES, "{repo}: each pushed tag and its four");
        assert!(writes.values().all(|n| *n == 1), "{repo}: a tag written twice: {writes:?}");
        let (throttled_here, redundant) = emulator.throttled_and_redundant(repo);
        assert!(redundant.is_empty(), "{repo}: PutImage of tags already in place: {redundant:?}");
        throttled += throttled_here.get("PutImage").copied().unwrap_or(0);
    }
    eprintln!(
        "{EVENTS} events x 4 tags at {PUT_IMAGE_PER_SECOND} PutImage/s: all tagged after {} deliveries in {elapsed:?}; \
         failed messages per delivery round {rounds:?}; {throttled} PutImage calls throttled; slowest invocation {slowest:?} of {FUNCTION_TIMEOUT:?}",
        rounds.len()
    );
    assert!(pending.is_empty(), "still failing after {} rounds: {rounds:?}", rounds.len());
    assert!(throttled > 0, "the quota never bit: the test proves nothing");
    assert!(slowest < FUNCTION_TIMEOUT, "an invocation took {slowest:?}, past its {FUNCTION_TIMEOUT:?} timeout");
}
