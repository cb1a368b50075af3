//! `ecr-retag doctor --rules FILE [--repositories GLOB...]`: what in the registry's settings
//! would defeat the rules, one line per finding with what to change. Exit 0 when nothing
//! would, 1 when something would (or could not be checked), 2 on usage errors.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::apply::doctor::{check, Checkup};
use crate::apply::sweep::repositories;
use crate::cli::flags::Flags;
use crate::cli::Outcome;
use crate::domain::doctor::Level;

pub(crate) async fn run(mut flags: Flags) -> Outcome {
    if let Err(outcome) = flags.only("doctor", &["--rules", "--repositories", "--region", "--profile", "--json"], false) {
        return outcome;
    }
    if flags.repositories.is_empty() {
        // Every repository a rule names.
        flags.repositories.push("**".to_owned());
    }
    let now = SystemTime::now();
    let request = match flags.reconcile_request(now) {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let (rules, ecr) = match flags.rules_and_client().await {
        Ok(both) => both,
        Err(outcome) => return outcome,
    };
    let names = match repositories(&ecr, &request).await {
        Ok(names) => names,
        Err(e) => return Outcome::message(1, e.to_string()),
    };
    let checkup = check(&ecr, &rules, &names, now.into()).await;
    let output = if flags.json {
        serde_json::to_string_pretty(&checkup).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    } else {
        table(&checkup)
    };
    Outcome::result(i32::from(checkup.fails()), output)
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Defeats => "DEFEATS",
        Level::Unchecked => "UNCHECKED",
        Level::Warns => "warns",
        Level::Notes => "note",
    }
}

/// `team/api: DEFEATS: … ; fix: …`, most serious first within each repository, then a count.
fn table(checkup: &Checkup) -> String {
    let mut out = String::new();
    let mut findings: Vec<_> = checkup.findings.iter().collect();
    findings.sort_by(|a, b| (&a.repository, a.level).cmp(&(&b.repository, b.level)));
    for f in &findings {
        let _ = writeln!(out, "{}: {}: {}; fix: {}", f.repository, level_name(f.level), f.what, f.fix);
    }
    let count = |level| checkup.findings.iter().filter(|f| f.level == level).count();
    let _ = write!(
        out,
        "{} repositories checked: {} would defeat a rule, {} unchecked, {} warnings, {} notes",
        checkup.repositories.len(),
        count(Level::Defeats),
        count(Level::Unchecked),
        count(Level::Warns),
        count(Level::Notes)
    );
    out
}
