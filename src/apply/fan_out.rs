//! A sweep fanned out: instead of walking a registry larger than one invocation can, the
//! scheduled sweep lists the repositories and sends one sweep message per repository a
//! rule names to the event queue; the queue-driven function sweeps each within its own
//! deadline, as many at once as the queue's maximum concurrency lets it.

use tokio::time::Instant;

use crate::apply::sweep::repositories;
use crate::domain::names::RepositoryName;
use crate::domain::request::{continuation_token, ReconcileRequest};
use crate::domain::rules::RuleSet;
use crate::error::RetagError;
use crate::queue::{Queue, BATCH};
use crate::registry::Catalog;
use crate::report::{Enqueued, SweepReport, SweepStatus, MAX_ENQUEUED_LISTED};

/// Lists, then sends a message per covered repository, ten at a time, until done or `stop_by`.
/// `message` writes a repository's sweep as a message body.
pub async fn fan_out<R: Catalog>(
    registry: &R,
    rules: &RuleSet,
    request: &ReconcileRequest,
    queue: &dyn Queue,
    message: impl Fn(&ReconcileRequest) -> String,
    stop_by: Option<Instant>,
) -> Result<SweepReport, RetagError> {
    let names = repositories(registry, request).await?;
    let (covered, not_covered): (Vec<RepositoryName>, Vec<RepositoryName>) =
        names.into_iter().partition(|n| !rules.covering(n.as_str()).is_empty());
    let mut report = SweepReport {
        status: SweepStatus::Complete,
        dry_run: request.dry_run,
        reason: None,
        continuation: None,
        writes: 0,
        would_write: None,
        repositories: Vec::new(),
        enqueued: Some(Enqueued { not_covered: not_covered.len(), ..Enqueued::default() }),
    };
    let mut sent = 0;
    for chunk in covered.chunks(BATCH) {
        if stop_by.is_some_and(|t| Instant::now() >= t) {
            report.status = SweepStatus::Stopped;
            report.reason = Some("stopped before the function's deadline; resume with `continuation`".to_owned());
            report.continuation = Some(continuation_token(&chunk[0]));
            break;
        }
        let bodies: Vec<String> = chunk.iter().map(|name| message(&request.of_one(name))).collect();
        queue.send(&bodies).await.map_err(|fault| RetagError::Enqueue { sent, fault })?;
        sent += chunk.len();
        if let Some(enqueued) = &mut report.enqueued {
            enqueued.messages = sent;
            let room = MAX_ENQUEUED_LISTED.saturating_sub(enqueued.repositories.len());
            enqueued.repositories.extend(chunk.iter().take(room).map(|n| n.as_str().to_owned()));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rules::glob::Glob;
    use crate::queue::Memory;
    use crate::registry::memory::Memory as MemoryRegistry;

    #[tokio::test]
    async fn one_message_per_repository_a_rule_names_ten_a_call() {
        let registry = MemoryRegistry::with_repositories(&["other/tool"]);
        for n in 0..23 {
            registry.add_repository(&format!("team/app{n:02}"));
        }
        let rules = RuleSet::from_json(r#"{"rules":[{"name":"r","repositories":["team/*"],"semver":true,"tags":["stable"]}]}"#).unwrap();
        let request = ReconcileRequest {
            repositories: vec![Glob::parse("**").unwrap()],
            max_writes: 50,
            resume_at: None,
            registry_id: None,
            dry_run: false,
            fan_out: true,
        };
        let queue = Memory::default();
        let report = fan_out(&registry, &rules, &request, &queue, |r| r.repositories[0].source().to_owned(), None).await.unwrap();
        let sent = queue.take();
        assert_eq!(sent.len(), 23);
        assert_eq!((sent[0].as_str(), sent[22].as_str()), ("team/app00", "team/app22"));
        let enqueued = report.enqueued.unwrap();
        assert_eq!((enqueued.messages, enqueued.not_covered, enqueued.repositories.len()), (23, 1, 23));
        assert_eq!(report.status, SweepStatus::Complete);

        // Out of time before the first call: nothing sent, and where to resume.
        let report = fan_out(&registry, &rules, &request, &queue, |r| r.repositories[0].source().to_owned(), Some(Instant::now())).await.unwrap();
        assert!(queue.take().is_empty());
        assert_eq!((report.status, report.continuation.as_deref()), (SweepStatus::Stopped, Some("resume-at:team/app00")));
    }
}
