//! The handler: event in, retag, result out; one log line and one metric line per event.
//!
//! Generic over the [`Registry`] so tests can run it against anything; the
//! binary wires it to [`crate::ecr::Ecr`] and the Lambda runtime.

use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use lambda_runtime::Diagnostic;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::event::{self, Request};
use crate::metrics::{self, EventMetrics};
use crate::registry::Registry;
use crate::report::Report;
use crate::repository_tags::CachedRepositoryTags;
use crate::retag::{promote_scanned, report_of, retag, RetagError};

/// Time kept back from Lambda's deadline to log, emit metrics and post the answer.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

pub struct Handler<R> {
    /// Repository resource tags are cached for the life of the instance.
    registry: CachedRepositoryTags<R>,
    config: Config,
}

impl<R: Registry> Handler<R> {
    pub fn new(registry: R, config: Config) -> Self {
        Self { registry: CachedRepositoryTags::new(registry, config.repository_tags_ttl), config }
    }

    pub fn registry(&self) -> &R {
        self.registry.inner()
    }

    /// One Lambda invocation: handles the raw payload, but gives up with a
    /// retryable error shortly before `deadline` (Lambda's), so the function
    /// always answers, even when ECR hangs. Every write is idempotent, so the
    /// next delivery finishes whatever was cut short.
    pub async fn invoke(&self, payload: &str, deadline: SystemTime) -> Result<Report, RetagError> {
        let now = SystemTime::now();
        // Boxed: the nested future types otherwise exceed the compiler's layout depth limit.
        let work = Box::pin(self.handle_json(payload, now.into()));
        let Some(budget) = budget(deadline, now) else { return work.await };
        match tokio::time::timeout(budget, work).await {
            Ok(result) => result,
            Err(_) => {
                let stopped = Err(RetagError::DeadlineExceeded { budget_ms: budget.as_millis() });
                self.finish(stopped, None, SystemTime::now().into())
            }
        }
    }

    /// Handles one raw invocation payload (JSON text); `now` is the push time of a direct request.
    pub async fn handle_json(&self, payload: &str, now: DateTime<Utc>) -> Result<Report, RetagError> {
        let started = Instant::now();
        let (result, pushed_at) = match event::parse_json(payload) {
            Ok(value) => self.process(&value, now).await,
            Err(e) => (Err(RetagError::from(e)), None),
        };
        self.finish(result, pushed_at, now + started.elapsed())
    }

    /// Handles one parsed invocation payload; `now` is the push time of a direct request.
    pub async fn handle(&self, payload: &Value, now: DateTime<Utc>) -> Result<Report, RetagError> {
        let started = Instant::now();
        let (result, pushed_at) = self.process(payload, now).await;
        self.finish(result, pushed_at, now + started.elapsed())
    }

    /// Event in, retag, result out; with the push time, for the latency metric.
    async fn process(&self, payload: &Value, now: DateTime<Utc>) -> (Result<Report, RetagError>, Option<DateTime<Utc>>) {
        match event::parse(payload, now) {
            Err(e) => (Err(RetagError::from(e)), None),
            Ok(Request::Ignore(ignored)) => (Ok(Report::ignored(ignored)), None),
            Ok(Request::Retag(push)) => (retag(&self.registry, &self.config, &push).await, Some(push.pushed_at)),
            Ok(Request::Scanned(scan)) => {
                (promote_scanned(&self.registry, &self.config, &scan).await, Some(scan.scanned_at))
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
