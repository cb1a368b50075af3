//! `ecr-retag filters --rules FILE`: exclusion filters (at most 5) that let every
//! moving tag of the rule set move in an `IMMUTABLE_WITH_EXCLUSION` repository,
//! while the version tags pushes carry stay immutable; or why wildcards cannot.

use std::fmt::Write as _;

use crate::cli::flags::Flags;
use crate::cli::Outcome;
use crate::domain::mutability::{propose, MAX_FILTERS};

/// Exit 0 when the printed filters cover every moving tag, 1 otherwise.
pub(crate) fn run(flags: &Flags) -> Outcome {
    if let Err(outcome) = flags.only("filters", &["--rules"], false) {
        return outcome;
    }
    let (file, rules) = match flags.rule_set() {
        Ok(both) => both,
        Err(outcome) => return outcome,
    };
    let (file, rules) = (file.as_str(), &rules);
    let moving = rules.moving_tags();
    let mut out = String::new();
    if moving.is_empty() {
        let _ = write!(out, "{file}: no rule derives a moving tag: every tag it writes names its push, so plain IMMUTABLE fits");
        return Outcome::result(0, out);
    }
    // The tags pushes carry, which must stay immutable: each rule's example pushes.
    let mut protected: Vec<String> = rules.examples().iter().flat_map(|e| e.tags.iter().map(ToString::to_string)).collect();
    protected.sort();
    protected.dedup();
    let proposal = propose(&moving, &protected);
    let _ = writeln!(out, "{file}: {} moving tag{} (at most {MAX_FILTERS} filters)", moving.len(), if moving.len() == 1 { "" } else { "s" });
    for (filter, covered) in &proposal.filters {
        let what: Vec<String> = covered.iter().map(|m| format!("`{}` (rule {:?})", m.template, m.rule)).collect();
        let _ = writeln!(out, "  filter {filter}  covers {}", what.join(", "));
    }
    for problem in &proposal.problems {
        let _ = writeln!(out, "  cannot: {problem}");
    }
    if !proposal.filters.is_empty() {
        let list: Vec<String> = proposal.filters.iter().map(|(f, _)| format!("filterType=WILDCARD,filter={f}")).collect();
        let _ = writeln!(
            out,
            "aws ecr put-image-tag-mutability --repository-name REPO --image-tag-mutability IMMUTABLE_WITH_EXCLUSION \
             --image-tag-mutability-exclusion-filters {}",
            list.join(" ")
        );
    }
    let verdict = if proposal.covers_all() { "these filters cover every moving tag" } else { "not every moving tag can be covered" };
    let _ = write!(out, "{file}: {verdict}");
    Outcome::result(if proposal.covers_all() { 0 } else { 1 }, out)
}
