//! The engine against a real registry, from a shell or a pipeline:
//!
//! ```text
//! ecr-retag apply --rules FILE --repository NAME --tag TAG [--digest D] [--registry-id ID]
//!                 [--region R] [--profile P] [--dry-run] [--json]
//! ecr-retag sweep --rules FILE --repositories GLOB... [--max-writes N] [--writes-per-second N] [--continuation TOKEN]
//!                 [--registry-id ID] [--region R] [--profile P] [--dry-run] [--json]
//! ecr-retag doctor --rules FILE [--repositories GLOB...] [--region R] [--profile P] [--json]
//! ```
//!
//! Both go through the function's own handler: `apply` sends it the direct request,
//! `sweep` the reconcile request of one repository at a time (so it can say how far it
//! got), with no deadline. Credentials and region come from the SDK's standard chain
//! (environment, shared config and `--profile`, web identity, container and instance
//! roles; `AWS_ENDPOINT_URL` for a local emulator). `doctor` ([`crate::cli::doctor`]) reads
//! the registry's settings and says what would defeat the rules.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant, SystemTime};

use crate::apply::sweep::repositories;
use crate::cli::flags::Flags;
use crate::cli::{usage, Outcome};
use crate::domain::names::RepositoryName;
use crate::domain::request::{continuation_token, ReconcileRequest, MAX_WRITES_LIMIT};
use crate::input::Invocation;
use crate::lambda::Answer;
use crate::report::{Report, SweepReport, SweepStatus};

/// No deadline from a shell: long enough for any sweep, short enough to stay a `SystemTime`.
const NO_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) async fn apply(flags: Flags) -> Outcome {
    const TAKES: [&str; 10] = ["--rules", "--repository", "--tag", "--digest", "--registry-id", "--region", "--profile", "--dry-run", "--json", "--key"];
    if let Err(outcome) = flags.only("apply", &TAKES, false) {
        return outcome;
    }
    let now = SystemTime::now();
    let request = match flags.push(now.into()) {
        Ok(request) => request,
        Err(outcome) => return outcome,
    };
    let handler = match flags.handler().await {
        Ok(h) => h,
        Err(outcome) => return outcome,
    };
    // The function's own path for one event, with no deadline from a shell.
    let (code, report) = match Box::pin(handler.run(Invocation::Event(crate::input::Event::direct(request)), now + NO_DEADLINE, now)).await {
        Ok(Answer::Event(report)) => (0, report),
        Ok(_) => return Outcome::message(1, "unexpected answer to a direct request"),
        Err(e) => match e.report() {
            Some(report) => (1, report.clone()),
            // Nothing to show per tag: the request itself failed (a missing repository, say).
            None => return Outcome::message(1, e.to_string()),
        },
    };
    let output = if flags.json { to_json(&report) } else { apply_table(&report) };
    Outcome::result(code, output)
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// `team/api@sha256:… (v1.4.2): applied`, then one line per tag.
fn apply_table(report: &Report) -> String {
    let mut out = format!(
        "{}@{} ({}): {}",
        report.repository.as_deref().unwrap_or("?"),
        report.digest.as_deref().unwrap_or("?"),
        report.source_tag.as_deref().unwrap_or("?"),
        wire_name(&report.status)
    );
    if let Some(reason) = &report.reason {
        let _ = write!(out, ": {reason}");
    }
    let width = report.tags.iter().map(|t| t.tag.len()).max().unwrap_or(0);
    for t in &report.tags {
        let _ = write!(out, "\n  {:<18} {:<width$}  ({})", outcome_name(t.outcome), t.tag, t.rules.join(", "));
        if let Some(detail) = &t.detail {
            let _ = write!(out, ": {detail}");
        }
    }
    out
}

/// An enum's name as the answer's JSON spells it (`would_create`).
fn wire_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn outcome_name(outcome: crate::report::Outcome) -> String {
    wire_name(&outcome)
}

pub(crate) async fn sweep(flags: Flags) -> Outcome {
    const TAKES: [&str; 11] = ["--rules", "--repositories", "--max-writes", "--writes-per-second", "--continuation", "--registry-id",
                               "--region", "--profile", "--dry-run", "--json", "--key"];
    if let Err(outcome) = flags.only("sweep", &TAKES, false) {
        return outcome;
    }
    if flags.repositories.is_empty() {
        return usage("sweep needs --repositories GLOB...");
    }
    let request = match flags.reconcile_request() {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let handler = match flags.handler().await {
        Ok(h) => h,
        Err(outcome) => return outcome,
    };
    let names = match repositories(handler.registry(), &request).await {
        Ok(names) => names,
        Err(e) => return Outcome::message(1, e.to_string()),
    };
    let progress = Progress::new(names.len());
    let mut total = SweepReport {
        status: SweepStatus::Complete,
        dry_run: flags.dry_run,
        reason: None,
        continuation: None,
        writes: 0,
        would_write: flags.dry_run.then_some(0),
        repositories: Vec::new(),
        enqueued: None,
    };
    let mut budget = flags.max_writes;
    for (done, name) in names.iter().enumerate() {
        // One repository at a time, until it is complete or the budget is spent.
        loop {
            let max_writes = budget.unwrap_or(MAX_WRITES_LIMIT).min(MAX_WRITES_LIMIT);
            if max_writes == 0 {
                total.status = SweepStatus::Stopped;
                total.continuation = Some(format!("resume-at:{name}"));
                total.reason = Some("--max-writes reached".into());
                break;
            }
            let one = ReconcileRequest { max_writes, ..request.of_one(name) };
            let now = SystemTime::now();
            let report = match Box::pin(handler.run(Invocation::Reconcile(one), now + NO_DEADLINE, now)).await {
                Ok(Answer::Reconcile(report)) => report,
                Ok(_) => return Outcome::message(1, "unexpected answer to a sweep"),
                Err(e) => return Outcome::message(1, e.to_string()),
            };
            let spent = report.writes + report.would_write.unwrap_or(0);
            budget = budget.map(|b| b.saturating_sub(spent));
            total.writes += report.writes;
            if let (Some(w), Some(more)) = (&mut total.would_write, report.would_write) {
                *w += more;
            }
            let stopped = report.status == SweepStatus::Stopped;
            total.repositories.extend(report.repositories);
            if !stopped || spent == 0 {
                break;
            }
        }
        if total.status == SweepStatus::Stopped {
            break;
        }
        progress.show(done + 1, name.as_str(), names.get(done + 1), &total);
    }
    progress.finish();
    let not_in_place =
        total.status == SweepStatus::Stopped || total.repositories.iter().any(|r| r.failed > 0 || r.conflicts > 0 || r.error.is_some());
    let output = if flags.json { to_json(&total) } else { sweep_table(&total) };
    Outcome::result(i32::from(not_in_place), output)
}

/// Progress on stderr: one line rewritten in place on a terminal, a line per repository otherwise.
struct Progress {
    total: usize,
    started: Instant,
    terminal: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress { total, started: Instant::now(), terminal: std::io::stderr().is_terminal() }
    }

    /// After `repository`, the `done`th; `next`: where a sweep stopped now (Ctrl-C) would resume.
    fn show(&self, done: usize, repository: &str, next: Option<&RepositoryName>, so_far: &SweepReport) {
        let images: usize = so_far.repositories.iter().map(|r| r.images_seen).sum();
        let writes = so_far.writes + so_far.would_write.unwrap_or(0);
        let elapsed = self.started.elapsed();
        let eta = elapsed.mul_f64((self.total - done) as f64 / done.max(1) as f64);
        let mut line = format!(
            "[{done}/{}] {repository}: {images} images, {writes} writes so far, ETA {}s",
            self.total,
            eta.as_secs()
        );
        if let Some(next) = next {
            let _ = write!(line, " (to resume from here: --continuation {})", continuation_token(next));
        }
        let mut err = std::io::stderr();
        let _ = if self.terminal { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
    }

    fn finish(&self) {
        if self.terminal {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// One line per repository, then the total and, if it stopped, how to resume.
fn sweep_table(report: &SweepReport) -> String {
    let mut out = String::new();
    let width = report.repositories.iter().map(|r| r.repository.len()).max().unwrap_or(10).max(10);
    let _ = writeln!(out, "{:<width$}  images  written  correct  held  conflicts  failed", "repository");
    for r in &report.repositories {
        let written = r.would_write.map_or(r.tags_written.to_string(), |w| format!("({w})"));
        let _ = writeln!(
            out,
            "{:<width$}  {:>6}  {:>7}  {:>7}  {:>4}  {:>9}  {:>6}{}",
            r.repository,
            r.images_seen,
            written,
            r.already_correct,
            r.held_back,
            r.conflicts,
            r.failed,
            r.error.as_ref().map(|e| format!("  error: {e}")).unwrap_or_default()
        );
        for change in r.changes.iter().filter(|c| c.detail.is_some() && !matches!(c.outcome, crate::report::Outcome::Created)) {
            let _ = writeln!(out, "    {} {}: {}", change.tag, outcome_name(change.outcome), change.detail.as_deref().unwrap_or(""));
        }
    }
    let written = if report.dry_run { format!("{} would be written", report.would_write.unwrap_or(0)) } else { format!("{} written", report.writes) };
    let _ = write!(out, "{} repositories, {written}", report.repositories.len());
    if let Some(token) = &report.continuation {
        let _ = write!(out, "; stopped ({}): resume with --continuation {token}", report.reason.as_deref().unwrap_or("budget"));
    }
    out
}
