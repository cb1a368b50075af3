//! `ecr-retag doctor --rules FILE [--repositories GLOB...]`: what in the registry's settings
//! would defeat the rules, one line per finding with what to change. Exit 0 when nothing
//! would, 1 when something would (or could not be checked), 2 on usage errors.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::apply::doctor::{check, Checkup};
use crate::apply::sweep::repositories;
use crate::cli::flags::Flags;
use crate::cli::Outcome;
use crate::domain::doctor::{Level, REGISTRY};

pub(crate) async fn run(mut flags: Flags) -> Outcome {
    if let Err(outcome) = flags.only("doctor", &["--rules", "--repositories", "--region", "--profile", "--json"], false) {
        return outcome;
    }
    if flags.repositories.is_empty() {
        // Every repository a rule names.
        flags.repositories.push("**".to_owned());
    }
    let now = SystemTime::now();
    let request = match flags.reconcile_request() {
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

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `team/api: DEFEATS: … ; fix: …`, most serious first within each repository, then a count.
fn table(checkup: &Checkup) -> String {
    let mut out = String::new();
    let mut findings: Vec<_> = checkup.findings.iter().collect();
    findings.sort_by(|a, b| (&a.repository, a.level).cmp(&(&b.repository, b.level)));
    for f in &findings {
        let _ = writeln!(out, "{}: {}: {}; fix: {}", f.repository, level_name(f.level), f.what, f.fix);
    }
    // Counted as the lines above name them: DEFEATS lines, and the places they are about.
    let count = |level| checkup.findings.iter().filter(|f| f.level == level).count();
    let mut defeated: Vec<&str> = checkup.findings.iter().filter(|f| f.level == Level::Defeats).map(|f| f.repository.as_str()).collect();
    defeated.sort_unstable();
    defeated.dedup();
    let registry = defeated.contains(&REGISTRY);
    let repositories = defeated.len() - usize::from(registry);
    let places = match (repositories, registry) {
        (0, false) => "none".to_owned(),
        (0, true) => "the registry".to_owned(),
        (n, false) => plural(n, "repository", "repositories"),
        (n, true) => format!("{} and the registry", plural(n, "repository", "repositories")),
    };
    let _ = write!(
        out,
        "{} checked; something would defeat a rule in {places}; lines: {} DEFEATS, {} UNCHECKED, {} warns, {} note",
        plural(checkup.repositories.len(), "repository", "repositories"),
        count(Level::Defeats),
        count(Level::Unchecked),
        count(Level::Warns),
        count(Level::Notes)
    );
    out
}
