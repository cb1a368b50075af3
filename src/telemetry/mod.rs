//! What the function tells operators, fed finished results: one log line per
//! event or sweep, and one CloudWatch Embedded Metric Format line ([`metrics`]).
//! A leaf: it knows reports and errors, not how they were made.

pub mod metrics;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::config::Metrics;
use crate::error::{report_of, RetagError};
use crate::report::{Report, SweepReport};
use metrics::EventMetrics;

/// An event's log line and metric line.
pub fn event(result: &Result<Report, RetagError>, settings: &Metrics, pushed_at: Option<DateTime<Utc>>, done: DateTime<Utc>) {
    log(result);
    if settings.enabled {
        let labels = metrics::Labels {
            function_name: &settings.function_name,
            repository: report_of(result).and_then(|r| r.repository.as_deref()),
            by_repository: settings.by_repository,
        };
        // On stdout, where Lambda hands it to CloudWatch Logs.
        println!("{}", metrics::emf_line(&EventMetrics::of(result), &labels, pushed_at, done));
    }
}

/// A sweep's log line (WARN when something was not put in place) and metric line.
pub fn sweep(report: &SweepReport, settings: &Metrics, now: DateTime<Utc>) {
    let problems: usize = report.repositories.iter().map(|r| r.conflicts + r.failed + usize::from(r.error.is_some())).sum();
    let summary: Vec<_> = report
        .repositories
        .iter()
        .map(|r| {
            serde_json::json!({"repository": r.repository, "images_seen": r.images_seen, "tags_written": r.tags_written, "would_write": r.would_write,
                "already_correct": r.already_correct, "conflicts": r.conflicts, "failed": r.failed, "artifacts": r.artifacts, "archived": r.archived, "error": r.error})
        })
        .collect();
    let status = serde_json::to_value(report.status).unwrap_or_default();
    macro_rules! swept {
        ($level:ident) => {
            $level!(
                status = %status.as_str().unwrap_or_default(),
                writes = report.writes,
                continuation = %report.continuation.clone().unwrap_or_default(),
                enqueued = report.enqueued.as_ref().map_or(0, |e| e.messages),
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
    if settings.enabled {
        let labels = metrics::Labels { function_name: &settings.function_name, repository: None, by_repository: false };
        println!("{}", metrics::emf_line(&EventMetrics::of_sweep(report), &labels, None, now));
    }
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
            // What a promotion copied (empty when none did).
            promotions = %if report.promotions.is_empty() { String::new() } else { json(&report.promotions) },
            // The promotion records attached (empty when none was).
            records = %if report.records.is_empty() { String::new() } else { json(&report.records) },
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

