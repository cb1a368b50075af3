//! The handler: event in, retag, result out; one log line and one metric line per event.
//!
//! Generic over the [`Catalog`] (the registry port plus listings) so tests can run it against anything; the
//! binary wires it to [`crate::ecr::Ecr`] and the Lambda runtime.

use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use lambda_runtime::Diagnostic;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::deadline::Deadline;
use crate::event::{self, EventError, Request};
use crate::invocation::{self, Invocation, Message, ReconcileRequest};
use crate::reconcile::{self, SweepReport};
use crate::metrics::{self, EventMetrics};
use crate::registry::Catalog;
use crate::report::Report;
use crate::repository_tags::CachedRepositoryTags;
use crate::retag::{promote_scanned, report_of, retag, RetagError};

/// Time kept back from Lambda's deadline to log, emit metrics and post the answer.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// What an invocation answers: one event's report, a batch's failed messages, or a sweep's summary.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Answer {
    Event(Report),
    Batch(BatchResponse),
    Reconcile(SweepReport),
}

/// The answer to an SQS batch, as Lambda's ReportBatchItemFailures reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

pub struct Handler<R> {
    /// Repository resource tags are cached for the life of the instance.
    registry: CachedRepositoryTags<R>,
    config: Config,
}

impl<R: Catalog> Handler<R> {
    pub fn new(registry: R, config: Config) -> Self {
        Self { registry: CachedRepositoryTags::new(registry, config.repository_tags_ttl), config }
    }

    pub fn registry(&self) -> &R {
        self.registry.inner()
    }

    /// One Lambda invocation: a single event, an SQS batch of them, or a
    /// reconcile request. Gives up shortly before `deadline` (Lambda's), so the
    /// function always answers, even when ECR hangs. Every write is
    /// idempotent, so the next delivery finishes whatever was cut short.
    pub async fn invoke(&self, payload: &str, deadline: SystemTime) -> Result<Answer, RetagError> {
        let now = SystemTime::now();
        let budget = budget(deadline, now);
        let invocation = event::parse_json(payload).and_then(invocation::classify);
        match invocation {
            Err(e) => self.finish(Err(e.into()), None, now.into()).map(Answer::Event),
            Ok(Invocation::Event(value)) => {
                // Boxed: the nested future types otherwise exceed the compiler's layout depth limit.
                let work = Box::pin(self.handle_by(&value, now.into(), calls_end(budget)));
                self.within(budget, work).await.map(Answer::Event)
            }
            Ok(Invocation::Batch(messages)) => {
                let until = budget.map(|b| Instant::now() + b);
                Ok(Answer::Batch(self.batch(messages, until).await))
            }
            Ok(Invocation::Reconcile(request)) => {
                let stop_by = budget.map(|b| Instant::now() + sweep_window(b));
                let work = Box::pin(self.reconcile(&request, stop_by, calls_end(budget)));
                self.within(budget, work).await.map(Answer::Reconcile)
            }
        }
    }

    /// An SQS batch: its messages handled concurrently (up to
    /// `RETAG_BATCH_CONCURRENCY`), each with its own log and metric line, each
    /// stopped at `until`. The answer names the messages that failed, so only
    /// those come back (ReportBatchItemFailures); after the queue's
    /// maxReceiveCount they move to its dead-letter queue.
    pub async fn batch(&self, messages: Vec<Message>, until: Option<Instant>) -> BatchResponse {
        let failed: Vec<BatchItemFailure> = stream::iter(messages)
            .map(|message| async move {
                let now = SystemTime::now();
                let result = match event::parse_json(&message.body).and_then(invocation::classify) {
                    Ok(Invocation::Event(value)) => {
                        let budget = until.map(|t| t.saturating_duration_since(Instant::now()));
                        self.within(budget, Box::pin(self.handle_by(&value, now.into(), calls_end(budget)))).await
                    }
                    Ok(Invocation::Batch(_) | Invocation::Reconcile(_)) => {
                        let e = EventError::Field {
                            field: "body".into(),
                            problem: "a queued message holds one event or direct request; send reconcile requests to the function itself".into(),
                        };
                        self.finish(Err(e.into()), None, now.into())
                    }
                    Err(e) => self.finish(Err(e.into()), None, now.into()),
                };
                result.is_err().then_some(BatchItemFailure { item_identifier: message.id })
            })
            .buffered(self.config.batch_concurrency.max(1))
            .filter_map(|f| async move { f })
            .collect()
            .await;
        BatchResponse { batch_item_failures: failed }
    }

    /// Runs `work`, or stops it when the budget is spent and says so.
    async fn within<T>(
        &self,
        budget: Option<Duration>,
        work: impl std::future::Future<Output = Result<T, RetagError>>,
    ) -> Result<T, RetagError> {
        let Some(budget) = budget else { return work.await };
        match tokio::time::timeout(budget, work).await {
            Ok(result) => result,
            Err(_) => {
                let stopped = RetagError::DeadlineExceeded { waiting_for: "ECR calls".into() };
                let _ = self.finish(Err(stopped.clone()), None, SystemTime::now().into());
                Err(stopped)
            }
        }
    }

    /// A reconcile sweep, with its log line and metric line: no new ECR work
    /// after `stop_by`, no ECR call past `calls_end`.
    pub async fn reconcile(
        &self,
        request: &ReconcileRequest,
        stop_by: Option<Instant>,
        calls_end: Option<Instant>,
    ) -> Result<SweepReport, RetagError> {
        let registry = Deadline::new(&self.registry, calls_end);
        let result = reconcile::reconcile(&registry, &self.config, request, stop_by).await;
        match &result {
            Ok(report) => {
                let problems: usize = report.repositories.iter().map(|r| r.conflicts + r.failed + usize::from(r.error.is_some())).sum();
                let summary: Vec<_> = report
                    .repositories
                    .iter()
                    .map(|r| {
                        serde_json::json!({"repository": r.repository, "images_seen": r.images_seen, "tags_written": r.tags_written, "would_write": r.would_write,
                            "already_correct": r.already_correct, "conflicts": r.conflicts, "failed": r.failed, "error": r.error})
                    })
                    .collect();
                let status = serde_json::to_value(report.status).unwrap_or_default();
                macro_rules! swept {
                    ($level:ident) => {
                        $level!(
                            status = %status.as_str().unwrap_or_default(),
                            writes = report.writes,
                            continuation = %report.continuation.clone().unwrap_or_default(),
                            repositories = %json(&summary),
                            "reconcile sweep"
                        )
                    };
                }
                if problems > 0 {
                    swept!(warn);
                } else {
                    swept!(info);
                }
                if self.config.metrics.enabled {
                    let labels = metrics::Labels { function_name: &self.config.metrics.function_name, repository: None, by_repository: false };
                    println!("{}", metrics::emf_line(&EventMetrics::of_sweep(report), &labels, None, Utc::now()));
                }
            }
            Err(e) => {
                let _ = self.finish(Err(e.clone()), None, Utc::now());
            }
        }
        result
    }

    /// Handles one raw invocation payload (JSON text); `now` is the push time of a direct request.
    pub async fn handle_json(&self, payload: &str, now: DateTime<Utc>) -> Result<Report, RetagError> {
        let started = Instant::now();
        let (result, pushed_at) = match event::parse_json(payload) {
            Ok(value) => self.process(&value, now, None).await,
            Err(e) => (Err(RetagError::from(e)), None),
        };
        self.finish(result, pushed_at, now + started.elapsed())
    }

    /// Handles one parsed invocation payload; `now` is the push time of a direct request.
    pub async fn handle(&self, payload: &Value, now: DateTime<Utc>) -> Result<Report, RetagError> {
        self.handle_by(payload, now, None).await
    }

    /// The same, with every ECR call cut at `calls_end` (a tag not written by then ends `failed`, retryable).
    pub async fn handle_by(&self, payload: &Value, now: DateTime<Utc>, calls_end: Option<Instant>) -> Result<Report, RetagError> {
        let started = Instant::now();
        let (result, pushed_at) = self.process(payload, now, calls_end).await;
        self.finish(result, pushed_at, now + started.elapsed())
    }

    /// Event in, retag, result out; with the push time, for the latency metric.
    async fn process(
        &self,
        payload: &Value,
        now: DateTime<Utc>,
        calls_end: Option<Instant>,
    ) -> (Result<Report, RetagError>, Option<DateTime<Utc>>) {
        let registry = Deadline::new(&self.registry, calls_end);
        match event::parse(payload, now) {
            Err(e) => (Err(RetagError::from(e)), None),
            Ok(Request::Ignore(ignored)) => (Ok(Report::ignored(ignored)), None),
            Ok(Request::Retag(push)) => (retag(&registry, &self.config, &push).await, Some(push.pushed_at)),
            Ok(Request::Scanned(scan)) => {
                (promote_scanned(&registry, &self.config, &scan).await, Some(scan.scanned_at))
            }
        }
    }

    /// One log line and one metric line per event.
    fn finish(
        &self,
        result: Result<Report, RetagError>,
        pushed_at: Option<DateTime<Utc>>,
        done: DateTime<Utc>,
    ) -> Result<Report, RetagError> {
        log(&result);
        self.emit_metrics(&result, pushed_at, done);
        result
    }

    /// One EMF line on stdout, where Lambda hands it to CloudWatch Logs.
    fn emit_metrics(&self, result: &Result<Report, RetagError>, pushed_at: Option<DateTime<Utc>>, done: DateTime<Utc>) {
        let settings = &self.config.metrics;
        if !settings.enabled {
            return;
        }
        let labels = metrics::Labels {
            function_name: &settings.function_name,
            repository: report_of(result).and_then(|r| r.repository.as_deref()),
            by_repository: settings.by_repository,
        };
        let line = metrics::emf_line(&EventMetrics::of(result), &labels, pushed_at, done);
        println!("{line}");
    }
}

/// The time an invocation may take: up to the margin before Lambda's deadline.
/// A deadline that has already passed when the invocation starts is no real
/// one (Lambda would have stopped the function): local runners such as
/// `cargo lambda watch` send one; then only the SDK's own timeouts apply.
fn budget(deadline: SystemTime, now: SystemTime) -> Option<Duration> {
    let left = deadline.duration_since(now).ok().filter(|left| !left.is_zero())?;
    Some(left.saturating_sub(DEADLINE_MARGIN))
}

/// Time kept back from an invocation's budget between cutting the ECR calls
/// and the hard stop, to build the report that says which tags were cut.
const CALLS_MARGIN: Duration = Duration::from_millis(250);

/// When ECR calls are cut: shortly before the budget ends.
fn calls_end(budget: Option<Duration>) -> Option<Instant> {
    budget.map(|b| Instant::now() + b.saturating_sub(CALLS_MARGIN))
}

/// How long a sweep may start new ECR work: all but one ECR operation's
/// timeout of the budget, so the calls under way still end in time (at least half of it).
fn sweep_window(budget: Duration) -> Duration {
    budget.saturating_sub(crate::ecr::OPERATION_TIMEOUT).max(budget / 2)
}

/// One structured line per event. Names in the report are validated (their
/// character sets cannot forge log structure), reasons quote event text
/// escaped, and the per-tag outcomes are one JSON-encoded field.
fn log(result: &Result<Report, RetagError>) {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    match result {
        Ok(report) => info!(
            status = %report.status,
            repository = %text(&report.repository),
            digest = %text(&report.digest),
            source_tag = %text(&report.source_tag),
            reason = %text(&report.reason),
            tags = %json(&report.tags),
            "event handled"
        ),
        Err(e) => {
            let (repository, digest, source_tag, tags) = e
                .report()
                .map(|r| (text(&r.repository), text(&r.digest), text(&r.source_tag), json(&r.tags)))
                .unwrap_or_default();
            let error_type = e.error_type();
            macro_rules! failed {
                ($level:ident) => {
                    $level!(
                        error_type = %error_type,
                        error = %e,
                        repository = %repository,
                        digest = %digest,
                        source_tag = %source_tag,
                        tags = %tags,
                        "event failed"
                    )
                };
            }
            if e.retryable() {
                failed!(warn);
            } else {
                failed!(error);
            }
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl From<RetagError> for Diagnostic {
    fn from(e: RetagError) -> Self {
        Diagnostic { error_type: e.error_type(), error_message: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_a_margin_before_the_deadline() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(budget(now + Duration::from_secs(30), now), Some(Duration::from_millis(29_500)));
        assert_eq!(budget(now + Duration::from_millis(300), now), Some(Duration::ZERO), "nearly out of time: stop now");
    }

    #[test]
    fn a_deadline_already_past_is_no_deadline() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(budget(now, now), None);
        assert_eq!(budget(now - Duration::from_secs(5), now), None);
        assert_eq!(budget(SystemTime::UNIX_EPOCH, now), None, "no deadline header at all");
    }
}
