//! Metrics without extra calls: one CloudWatch Embedded Metric Format (EMF)
//! line per event on stdout, which CloudWatch Logs turns into metrics.
//!
//! Namespace `ecr-retag`, dimension `FunctionName`; with
//! `RETAG_METRICS_BY_REPOSITORY=true` also `FunctionName, Repository` (turn it
//! on only when the set of repositories is bounded: every distinct value is a
//! billed custom metric). The repository is always a plain property of the
//! line, so Logs Insights can group by it at no metric cost.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::report::{Outcome, Report, Status, SweepReport};
use crate::error::{report_of, RetagError};

pub const NAMESPACE: &str = "ecr-retag";

/// The counters of a line, in the order it lists them: the tags by outcome (`counter_of`;
/// `TagsRepaired`: `if-newer` tags put back after a lower version's late write,
/// `TagsSuperseded`: taken by a newer version since, `SourceTagsRemoved`: `remove_source`),
/// events that needed no action, invocations that returned an error, and the sweep messages a
/// fan-out sent to the event queue.
pub const COUNTERS: [&str; 16] = [
    "TagsCreated", "TagsMoved", "TagsUnchanged", "TagConflicts", "TagsInvalid", "TagFailures", "TagsSkippedNotNewer",
    "TagsRepaired", "TagsSuperseded", "TagsDeferred", "TagsBlocked", "TagsOnArchivedImages", "SourceTagsRemoved",
    "EventsIgnored", "EventErrors", "SweepMessagesEnqueued",
];

/// The counter a tag's outcome adds to; dry runs and kept source tags count nowhere.
fn counter_of(outcome: Outcome) -> Option<&'static str> {
    Some(match outcome {
        Outcome::Created => "TagsCreated",
        Outcome::Moved => "TagsMoved",
        Outcome::Unchanged => "TagsUnchanged",
        Outcome::Conflict => "TagConflicts",
        Outcome::Invalid => "TagsInvalid",
        // A full image is a failure to alarm on, like any other tag not in place.
        Outcome::Failed | Outcome::TagLimit => "TagFailures",
        Outcome::SkippedNotNewer => "TagsSkippedNotNewer",
        Outcome::Repaired => "TagsRepaired",
        Outcome::Superseded => "TagsSuperseded",
        Outcome::Deferred => "TagsDeferred",
        Outcome::Blocked => "TagsBlocked",
        Outcome::Archived | Outcome::Restoring => "TagsOnArchivedImages",
        Outcome::Removed => "SourceTagsRemoved",
        Outcome::WouldCreate | Outcome::WouldMove | Outcome::WouldRemove | Outcome::Kept => return None,
    })
}

/// The counters of one event (or sweep), by name; absent is zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventMetrics(BTreeMap<&'static str, u64>);

impl EventMetrics {
    pub fn of(result: &Result<Report, RetagError>) -> Self {
        let mut m = EventMetrics::default();
        if result.is_err() {
            m.add("EventErrors");
        }
        if let Some(report) = report_of(result) {
            if report.status == Status::Ignored {
                m.add("EventsIgnored");
            }
            for tag in &report.tags {
                m.count(tag.outcome);
            }
        }
        m
    }

    /// A reconcile sweep's writes, counted like an event's (its changes never
    /// include tags already correct, so those are not counted).
    pub fn of_sweep(report: &SweepReport) -> Self {
        let mut m = EventMetrics::default();
        for outcome in report.outcomes() {
            m.count(outcome);
        }
        if let Some(enqueued) = &report.enqueued {
            m.0.insert("SweepMessagesEnqueued", enqueued.messages as u64);
        }
        m
    }

    /// A counter's value.
    pub fn get(&self, counter: &str) -> u64 {
        self.0.get(counter).copied().unwrap_or(0)
    }

    fn count(&mut self, outcome: Outcome) {
        if let Some(counter) = counter_of(outcome) {
            self.add(counter);
        }
    }

    fn add(&mut self, counter: &'static str) {
        *self.0.entry(counter).or_default() += 1;
    }
}

/// Where a line is about and how to dimension it.
pub struct Labels<'a> {
    pub function_name: &'a str,
    /// Always written as the `repository` property (searchable, free).
    pub repository: Option<&'a str>,
    /// Also a `Repository` dimension (a custom metric per repository).
    pub by_repository: bool,
}

/// One EMF line. `pushed_at` is when the image was pushed (the event's time),
/// for the event-to-done latency.
pub fn emf_line(metrics: &EventMetrics, labels: &Labels<'_>, pushed_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let mut definitions: Vec<Value> = COUNTERS.iter().map(|name| json!({"Name": name, "Unit": "Count"})).collect();
    let mut line = Map::new();
    for name in COUNTERS {
        line.insert(name.to_owned(), metrics.get(name).into());
    }
    if let Some(pushed_at) = pushed_at {
        // Clock skew can make it slightly negative; a latency is never below zero.
        let latency = (now - pushed_at).num_milliseconds().max(0);
        definitions.push(json!({"Name": "EventToDoneLatency", "Unit": "Milliseconds"}));
        line.insert("EventToDoneLatency".to_owned(), latency.into());
    }
    let mut dimensions = vec![json!(["FunctionName"])];
    line.insert("FunctionName".to_owned(), labels.function_name.into());
    if let Some(repository) = labels.repository {
        line.insert("repository".to_owned(), repository.into());
        if labels.by_repository {
            dimensions.push(json!(["FunctionName", "Repository"]));
            line.insert("Repository".to_owned(), repository.into());
        }
    }
    line.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": now.timestamp_millis(),
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": dimensions, "Metrics": definitions}],
        }),
    );
    Value::Object(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TagReport;

    /// The counters that are not zero, in the line's order.
    fn nonzero(m: &EventMetrics) -> Vec<(&'static str, u64)> {
        COUNTERS.iter().map(|c| (*c, m.get(c))).filter(|(_, n)| *n > 0).collect()
    }

    fn tag(outcome: Outcome) -> TagReport {
        TagReport::new("t", vec![], outcome)
    }

    fn report(status: Status, outcomes: &[Outcome]) -> Report {
        Report {
            status,
            reason: None,
            repository: Some("app".into()),
            registry_id: None,
            digest: None,
            source_tag: None,
            scan: None,
            signature: None,
            tags: outcomes.iter().map(|o| tag(*o)).collect(),
            promotions: Vec::new(),
            records: Vec::new(),
            subject: None,
            signatures_found: crate::domain::signature::Kinds::NONE,
        }
    }

    #[test]
    fn counts_each_outcome_once() {
        let r = report(Status::Applied, &[Outcome::Created, Outcome::Created, Outcome::Moved, Outcome::Unchanged]);
        let m = EventMetrics::of(&Ok(r));
        assert_eq!(nonzero(&m), [("TagsCreated", 2), ("TagsMoved", 1), ("TagsUnchanged", 1)]);
        let m = EventMetrics::of(&Ok(report(Status::Ignored, &[])));
        assert_eq!(nonzero(&m), [("EventsIgnored", 1)]);
    }

    #[test]
    fn a_failed_event_counts_its_problem_tags_and_one_error() {
        let r = report(Status::Applied, &[Outcome::Conflict, Outcome::Failed, Outcome::Invalid, Outcome::Created]);
        let m = EventMetrics::of(&Err(RetagError::TagsNotApplied { report: Box::new(r), retryable: true }));
        assert_eq!(nonzero(&m), [("TagsCreated", 1), ("TagConflicts", 1), ("TagsInvalid", 1), ("TagFailures", 1), ("EventErrors", 1)]);
    }

    #[test]
    fn the_line_follows_the_emf_specification() {
        let mut m = EventMetrics::default();
        for _ in 0..3 {
            m.add("TagsCreated");
        }
        let now: DateTime<Utc> = "2026-11-24T10:15:03.250Z".parse().unwrap();
        let pushed: DateTime<Utc> = "2026-11-24T10:15:02Z".parse().unwrap();
        let labels = Labels { function_name: "fn", repository: Some("team/api"), by_repository: true };
        let line: Value = serde_json::from_str(&emf_line(&m, &labels, Some(pushed), now)).unwrap();
        assert_eq!(line["TagsCreated"], 3);
        assert_eq!(line["EventToDoneLatency"], 1250);
        assert_eq!(line["Repository"], "team/api");
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], now.timestamp_millis());
        assert_eq!(directive["Namespace"], "ecr-retag");
        assert_eq!(directive["Dimensions"], json!([["FunctionName"], ["FunctionName", "Repository"]]));
        // Every declared metric has a value at the top level, and every dimension too.
        for def in directive["Metrics"].as_array().unwrap() {
            assert!(line[def["Name"].as_str().unwrap()].is_number(), "{def}");
        }
        assert_eq!(directive["Metrics"].as_array().unwrap().len(), 17, "the counters and the latency");

        let labels = Labels { function_name: "fn", repository: Some("team/api"), by_repository: false };
        let line: Value = serde_json::from_str(&emf_line(&m, &labels, None, now)).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["FunctionName"]]));
        assert!(line.get("EventToDoneLatency").is_none());
        assert!(line.get("Repository").is_none(), "no dimension unless asked for");
        assert_eq!(line["repository"], "team/api", "but always a property, for Logs Insights");
    }
}
