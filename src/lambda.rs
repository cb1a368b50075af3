//! The handler: event in, retag, result out; one log line and one metric line per event.
//!
//! Generic over the [`Catalog`] (the registry port plus listings) so tests can run it against anything; the
//! binary wires it to [`crate::registry::ecr::Ecr`] and the Lambda runtime.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use tokio::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use lambda_runtime::Diagnostic;

use crate::budget::Budget;
use crate::config::Config;
use crate::registry::deadline::{Deadline, Pace};
use crate::domain::names::Repository;
use crate::domain::request::{ReconcileRequest, Request};
use crate::input::{self, Event, Invocation, Message, Queued, Work};
use crate::apply::{fan_out, signed, sweep};
use crate::queue::Queue;
use crate::report::SweepStatus;
use crate::registry::{Blobs, Catalog};
use crate::report::{Report, SweepReport};
use crate::registry::cache::Cached;
use crate::error::RetagError;
use crate::telemetry;
use crate::apply::record::{self, Recording};
use crate::apply::{self, scan, Handled};
use crate::domain::record::Recorder;
use crate::signer::Signer;

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
    registry: Cached<R>,
    config: Config,
    /// The event queue, where a fan-out sends its sweeps (`RETAG_SWEEP_QUEUE_URL`).
    queue: Option<Arc<dyn Queue>>,
    /// Sweeps' PutImage pace, shared by every sweep this instance runs at once.
    pace: Option<Pace>,
    /// What signs promotion records (`RETAG_RECORD_KEY`).
    signer: Option<Arc<dyn Signer>>,
    /// The function's ARN as Lambda invoked it (set from the first invocation's context), which
    /// records name.
    function_arn: OnceLock<String>,
}

impl<R: Catalog + Blobs> Handler<R> {
    pub fn new(registry: R, config: Config) -> Self {
        let pace = config.sweep_writes_per_second.map(Pace::per_second);
        Self { registry: Cached::new(registry, config.repository_tags_ttl), config, queue: None, pace, signer: None, function_arn: OnceLock::new() }
    }

    /// The same, signing promotion records (`"record": true`) with `signer`.
    pub fn with_signer(self, signer: Arc<dyn Signer>) -> Self {
        Self { signer: Some(signer), ..self }
    }

    /// The function's ARN, from an invocation's context: the first one given is kept.
    pub fn invoked_as(&self, arn: &str) {
        if !arn.is_empty() {
            let _ = self.function_arn.set(arn.to_owned());
        }
    }

    /// The same, sending fanned-out sweeps (and their continuations) to `queue`.
    pub fn with_queue(self, queue: Arc<dyn Queue>) -> Self {
        Self { queue: Some(queue), ..self }
    }

    pub fn registry(&self) -> &R {
        self.registry.inner()
    }

    /// One Lambda invocation: a single event, an SQS batch of them, or a
    /// reconcile request. Gives up shortly before `deadline` (Lambda's), so the
    /// function always answers, even when ECR hangs. Every write is
    /// idempotent, so the next delivery finishes whatever was cut short.
    pub async fn invoke(&self, payload: &str, deadline: SystemTime) -> Result<Answer, RetagError> {
        self.invoke_at(payload, deadline, SystemTime::now()).await
    }

    /// The same at `now`: the push time of a direct request (tests pass the clock).
    pub async fn invoke_at(&self, payload: &str, deadline: SystemTime, now: SystemTime) -> Result<Answer, RetagError> {
        match input::parse(payload, now.into()) {
            Err(e) => self.finish(Err(e.into()), None, now.into()).map(Answer::Event),
            Ok(invocation) => self.run(invocation, deadline, now).await,
        }
    }

    /// An invocation already read (the command line builds its requests as typed values):
    /// the one path every entry takes.
    pub async fn run(&self, invocation: Invocation, deadline: SystemTime, now: SystemTime) -> Result<Answer, RetagError> {
        let budget = Budget::from_deadline(deadline, now, Instant::now());
        match invocation {
            Invocation::Event(event) => {
                // Boxed: the nested future types otherwise exceed the compiler's layout depth limit.
                let work = Box::pin(self.event(&event, now.into(), budget.calls_end()));
                self.within(budget, work).await.map(Answer::Event)
            }
            Invocation::Batch(messages) => Ok(Answer::Batch(self.batch(messages, budget, now).await)),
            Invocation::Reconcile(request) if request.fan_out => {
                let work = Box::pin(self.fan_out(&request, budget.sweep_stop(), budget.calls_end()));
                self.within(budget, work).await.map(Answer::Reconcile)
            }
            Invocation::Reconcile(request) => {
                let work = Box::pin(self.reconcile(&request, budget.sweep_stop(), budget.calls_end(), now.into()));
                self.within(budget, work).await.map(Answer::Reconcile)
            }
        }
    }

    /// An SQS batch. Duplicate messages are answered once. One repository's
    /// messages are handled one after another, in the batch's order, so each
    /// sees what the one before wrote (an if-newer tag is never decided by two
    /// at once); repositories concurrently (up to `RETAG_BATCH_CONCURRENCY`).
    /// Then one second look at every if-newer tag the batch wrote
    /// ([`crate::apply::if_newer::settle`]), and a log and metric line per message.
    /// Everything stops within `budget`. The answer names the messages that failed,
    /// so only those come back (ReportBatchItemFailures); after the queue's
    /// maxReceiveCount they move to its dead-letter queue.
    pub async fn batch(&self, messages: Vec<Message>, budget: Budget, now: SystemTime) -> BatchResponse {
        let started = Instant::now();
        let calls_end = budget.calls_end();
        let registry = Deadline::new(&self.registry, calls_end);
        let (sorted, groups) = sort_batch(&messages, now.into());

        // One repository's messages in order, repositories concurrently.
        let (sorted_ref, registry_ref) = (&sorted, &registry);
        let mut begun: BTreeMap<usize, Result<Handled, RetagError>> = stream::iter(groups)
            .map(|members| async move {
                let mut out = Vec::with_capacity(members.len());
                for index in members {
                    let Sorted::Request(event) = &sorted_ref[index] else { continue };
                    let result = budget.run(Box::pin(self.begin(registry_ref, &event.request))).await;
                    out.push((index, result.unwrap_or_else(|| Err(out_of_time()))));
                }
                out
            })
            .buffer_unordered(self.config.batch_concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect();

        // One second look for the whole batch.
        let mut handled: Vec<&mut Handled> = begun.values_mut().filter_map(|r| r.as_mut().ok()).collect();
        let looked = budget.run(Box::pin(Handled::settle_all(&registry, &self.config.apply, &mut handled, calls_end))).await.ok_or_else(out_of_time);
        // The records of what the batch wrote, once every tag is final.
        if looked.is_ok() && self.signer.is_some() {
            let done_at = DateTime::<Utc>::from(now) + started.elapsed();
            for (index, handled) in begun.iter_mut() {
                if let (Sorted::Request(event), Ok(handled)) = (&sorted[*index], handled) {
                    budget.run(Box::pin(self.record(&registry, event, &mut handled.report, done_at))).await;
                }
            }
        }

        // Queued sweeps, each within what is left of the budget. The stream's items are indices, not
        // references: several invocations at once (run_concurrent) need this future to be `Send`,
        // which the compiler cannot prove through a closure over borrowed items.
        let sweeps: Vec<usize> = sorted.iter().enumerate().filter_map(|(i, s)| matches!(s, Sorted::Sweep(_)).then_some(i)).collect();
        let sorted_ref = &sorted;
        let mut swept: BTreeMap<usize, Result<(), RetagError>> = stream::iter(sweeps)
            .map(|index| async move {
                let Sorted::Sweep(request) = &sorted_ref[index] else { return (index, Ok(())) };
                let result = budget.run(Box::pin(self.queued_sweep(request, budget, now.into()))).await;
                (index, result.unwrap_or_else(|| Err(out_of_time())))
            })
            .buffer_unordered(self.config.batch_concurrency.max(1))
            .collect()
            .await;

        let done_at = DateTime::<Utc>::from(now) + started.elapsed();
        let mut failed = Vec::new();
        for (index, entry) in sorted.into_iter().enumerate() {
            let (result, pushed_at) = match entry {
                Sorted::Request(event) => {
                    let request = event.request;
                    let result = match (begun.remove(&index), &looked) {
                        (Some(Ok(handled)), Ok(())) => handled.conclude(),
                        (Some(Ok(_)), Err(e)) => Err(e.clone()),
                        (Some(Err(e)), _) => Err(e),
                        (None, _) => Err(RetagError::DeadlineExceeded { waiting_for: "its turn in the batch".into() }),
                    };
                    (result, request.time())
                }
                Sorted::Sweep(_) => {
                    // The sweep logged its own line; a message SQS must deliver again gets an error line too.
                    let result = swept.remove(&index).unwrap_or_else(|| Err(out_of_time()));
                    if let Err(e) = result {
                        let _ = self.finish(Err(e), None, done_at);
                        failed.push(BatchItemFailure { item_identifier: messages[index].id.clone() });
                    }
                    continue;
                }
                Sorted::Done(result) => (result, None),
                Sorted::Duplicate(first) => (Ok(Report::duplicate(&messages[first].id)), None),
            };
            if self.finish(result, pushed_at, done_at).is_err() {
                failed.push(BatchItemFailure { item_identifier: messages[index].id.clone() });
            }
        }
        BatchResponse { batch_item_failures: failed }
    }

    /// Runs `work`, or stops it when the budget is spent and says so.
    async fn within<T>(
        &self,
        budget: Budget,
        work: impl std::future::Future<Output = Result<T, RetagError>>,
    ) -> Result<T, RetagError> {
        match budget.run(work).await {
            Some(result) => result,
            None => {
                let stopped = out_of_time();
                let _ = self.finish(Err(stopped.clone()), None, SystemTime::now().into());
                Err(stopped)
            }
        }
    }

    /// A reconcile sweep, with its log line and metric line: no new ECR work
    /// after `stop_by`, no ECR call past `calls_end`, PutImage paced when configured.
    pub async fn reconcile(
        &self,
        request: &ReconcileRequest,
        stop_by: Option<Instant>,
        calls_end: Option<Instant>,
        now: DateTime<Utc>,
    ) -> Result<SweepReport, RetagError> {
        let registry = Deadline::new(&self.registry, calls_end).paced(self.pace.as_ref());
        let started = Instant::now();
        let mut result = sweep::reconcile(&registry, &self.config.apply, request, stop_by, calls_end).await;
        if let (Ok(report), Some(signer)) = (&mut result, &self.signer) {
            let time = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let event = crate::domain::record::Event { id: None, kind: "sweep".to_owned(), time };
            let recording = Recording { signer: signer.as_ref(), recorder: self.recorder(), event, now: now + started.elapsed() };
            record::attach_sweep(&registry, &self.config.apply.rules, request, &recording, report).await;
        }
        self.swept(result)
    }

    /// A fan-out: a sweep message per repository to the event queue, and its log and metric line.
    pub async fn fan_out(
        &self,
        request: &ReconcileRequest,
        stop_by: Option<Instant>,
        calls_end: Option<Instant>,
    ) -> Result<SweepReport, RetagError> {
        let result = match &self.queue {
            None => Err(RetagError::NoQueue),
            Some(queue) => {
                let registry = Deadline::new(&self.registry, calls_end);
                let message = |one: &ReconcileRequest| input::sweep::message(one, None);
                fan_out::fan_out(&registry, &self.config.apply.rules, request, queue.as_ref(), message, stop_by).await
            }
        };
        self.swept(result)
    }

    /// A sweep's (or fan-out's) log line and metric line, or its error line.
    fn swept(&self, result: Result<SweepReport, RetagError>) -> Result<SweepReport, RetagError> {
        match &result {
            Ok(report) => telemetry::sweep(report, &self.config.metrics, Utc::now()),
            Err(e) => {
                let _ = self.finish(Err(e.clone()), None, Utc::now());
            }
        }
        result
    }

    /// A sweep from the queue. One that stopped early sends its continuation back to the queue,
    /// if it got anywhere; one that got nowhere, or left tags failed (throttled past its retries,
    /// say), fails its message, so that SQS delivers it again and, after maxReceiveCount, moves
    /// it to the failure queue rather than circling for ever.
    async fn queued_sweep(&self, request: &ReconcileRequest, budget: Budget, now: DateTime<Utc>) -> Result<(), RetagError> {
        let report = self.reconcile(request, budget.sweep_stop(), budget.calls_end(), now).await?;
        let resume_at = report.continuation.as_deref().and_then(crate::domain::request::resume_point);
        let progressed = report.writes + report.would_write.unwrap_or(0) > 0;
        match resume_at {
            Some(resume_at) if report.status == SweepStatus::Stopped && progressed => {
                let queue = self.queue.as_ref().ok_or(RetagError::NoQueue)?;
                let next = [input::sweep::message(request, Some(&resume_at))];
                return queue.send(&next).await.map_err(|fault| RetagError::Enqueue { sent: 0, fault });
            }
            Some(resume_at) => {
                return Err(RetagError::DeadlineExceeded { waiting_for: format!("the sweep of {resume_at}, which wrote nothing") })
            }
            None => {}
        }
        match report.repositories.iter().find(|r| r.failed > 0 || r.error.is_some()) {
            Some(r) => Err(RetagError::SweepIncomplete { repository: r.repository.clone(), failed: r.failed }),
            None => Ok(()),
        }
    }

    /// One event: its writes and the second look at its if-newer tags, every
    /// ECR call cut at `calls_end` (a tag not written by then ends `failed`,
    /// retryable); then its log and metric line. `now`: when it began.
    pub async fn event(&self, event: &Event, now: DateTime<Utc>, calls_end: Option<Instant>) -> Result<Report, RetagError> {
        let started = Instant::now();
        let registry = Deadline::new(&self.registry, calls_end);
        let result = match self.begin(&registry, &event.request).await {
            Ok(mut handled) => {
                handled.settle(&registry, &self.config.apply, calls_end).await;
                self.record(&registry, event, &mut handled.report, now + started.elapsed()).await;
                handled.conclude()
            }
            Err(e) => Err(e),
        };
        self.finish(result, event.request.time(), now + started.elapsed())
    }

    /// The promotion records of what an event wrote (`"record": true`), when a signer is configured.
    async fn record<B: Blobs>(&self, registry: &B, event: &Event, report: &mut Report, now: DateTime<Utc>) {
        let (Some(signer), Some(pushed)) = (&self.signer, event.request.repository()) else { return };
        let recording = Recording { signer: signer.as_ref(), recorder: self.recorder(), event: event.recorded(), now };
        record::attach(registry, &self.config.apply.rules, pushed, &recording, report).await;
    }

    /// Who writes records: the function's ARN as invoked (its name outside Lambda), and its version.
    fn recorder(&self) -> Recorder {
        Recorder {
            id: self.function_arn.get().cloned().unwrap_or_else(|| self.config.metrics.function_name.clone()),
            version: self.config.function_version.clone(),
        }
    }

    /// One request's writes, up to the second look.
    async fn begin(&self, registry: &Deadline<'_, Cached<R>>, request: &Request) -> Result<Handled, RetagError> {
        match request {
            Request::Ignore(ignored) => Ok(Handled { report: Report::ignored(ignored.clone()), claims: Vec::new() }),
            Request::Retag(push) => apply::begin_push(registry, &self.config.apply, push).await,
            Request::Scanned(scanned) => scan::begin_scanned(registry, &self.config.apply, scanned).await,
            Request::Signed(signature) => signed::begin_signed(registry, &self.config.apply, signature).await,
        }
    }

    /// One log line and one metric line per event.
    fn finish(
        &self,
        result: Result<Report, RetagError>,
        pushed_at: Option<DateTime<Utc>>,
        done: DateTime<Utc>,
    ) -> Result<Report, RetagError> {
        telemetry::event(&result, &self.config.metrics, pushed_at, done);
        result
    }
}

/// A batch message, sorted: a request to handle, a sweep, an answer already, or a repeat.
enum Sorted {
    Request(Event),
    Sweep(ReconcileRequest),
    /// Answered without ECR work: unreadable, or nothing to do.
    Done(Result<Report, RetagError>),
    /// The same event as the message at this index.
    Duplicate(usize),
}

/// Each message's request (or why it has none), duplicates pointing at their
/// first copy, and the messages grouped by repository in the batch's order.
fn sort_batch(messages: &[Message], now: DateTime<Utc>) -> (Vec<Sorted>, Vec<Vec<usize>>) {
    let mut sorted = Vec::with_capacity(messages.len());
    let mut first_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut groups: Vec<(Option<Repository>, Vec<usize>)> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let Queued { key, work } = match message.event(now) {
            Ok(queued) => queued,
            Err(e) => {
                sorted.push(Sorted::Done(Err(e.into())));
                continue;
            }
        };
        if let Some(&first) = first_of.get(&key) {
            sorted.push(Sorted::Duplicate(first));
            continue;
        }
        first_of.insert(key, index);
        let event = match work {
            Work::Sweep(sweep) => {
                sorted.push(Sorted::Sweep(sweep));
                continue;
            }
            Work::Event(event) => event,
        };
        match event.request {
            Request::Ignore(ignored) => sorted.push(Sorted::Done(Ok(Report::ignored(ignored)))),
            _ => {
                let repository = event.request.repository().cloned();
                match groups.iter_mut().find(|(r, _)| *r == repository) {
                    Some((_, members)) => members.push(index),
                    None => groups.push((repository, vec![index])),
                }
                sorted.push(Sorted::Request(event));
            }
        }
    }
    (sorted, groups.into_iter().map(|(_, members)| members).collect())
}

fn out_of_time() -> RetagError {
    RetagError::DeadlineExceeded { waiting_for: "ECR calls".into() }
}

impl From<RetagError> for Diagnostic {
    fn from(e: RetagError) -> Self {
        Diagnostic { error_type: e.error_type(), error_message: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    //! How a batch is sorted before any ECR call: duplicates, sweeps, unreadable and ignored
    //! messages apart, the rest grouped per repository in the batch's order.
    use super::*;

    fn push(id: &str, repository: &str, tag: &str, action: &str) -> String {
        format!(
            r#"{{"version":"0","id":"{id}","detail-type":"ECR Image Action","source":"aws.ecr","account":"123456789012","time":"2026-11-24T10:15:02Z","region":"eu-west-1","resources":[],"detail":{{"result":"SUCCESS","repository-name":"{repository}","image-digest":"sha256:{}","action-type":"{action}","image-tag":"{tag}"}}}}"#,
            "c1".repeat(32)
        )
    }

    fn message(body: String) -> Message {
        Message { id: format!("m{}", body.len()), body }
    }

    fn kind(sorted: &Sorted) -> String {
        match sorted {
            Sorted::Request(e) => format!("request {}", e.request.repository().map(|r| r.name.as_str()).unwrap_or("-")),
            Sorted::Sweep(_) => "sweep".to_owned(),
            Sorted::Done(Ok(report)) => format!("done {:?}", report.status),
            Sorted::Done(Err(_)) => "unreadable".to_owned(),
            Sorted::Duplicate(first) => format!("duplicate of {first}"),
        }
    }

    #[test]
    fn a_batch_is_sorted_into_groups_per_repository_with_duplicates_sweeps_and_answers_apart() {
        let messages: Vec<Message> = [
            push("1", "team/web", "v1.4.2", "PUSH"),
            push("2", "team/api", "v2.0.0", "PUSH"),
            push("1", "team/web", "v1.4.2", "PUSH"), // the same event again
            r#"{"reconcile": {"repositories": ["team/*"], "max_writes": 10}}"#.to_owned(),
            "not json".to_owned(),
            push("3", "team/web", "v1.4.2", "DELETE"),
            push("4", "team/web", "v1.5.0", "PUSH"),
        ]
        .into_iter()
        .map(message)
        .collect();
        let (sorted, groups) = sort_batch(&messages, "2026-11-24T12:00:00Z".parse().unwrap());
        let kinds: Vec<String> = sorted.iter().map(kind).collect();
        assert_eq!(
            kinds,
            ["request team/web", "request team/api", "duplicate of 0", "sweep", "unreadable", "done Ignored", "request team/web"]
        );
        // One repository's messages one after another, in the batch's order; repositories apart.
        assert_eq!(groups, vec![vec![0, 6], vec![1]]);
    }
}
