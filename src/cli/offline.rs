//! The rules offline, for people writing them: `check-rules FILE` (every problem, and rules that
//! loop) and `plan` (what a push would get).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::cli::flags::{load, Flags};
use crate::cli::{usage, Outcome};
use crate::domain::mutability::{template_of, Mode, TagMutability};
use crate::domain::names::{Digest, RepositoryName, Tag};
use crate::domain::plan::{plan as plan_push, Phase, Verdict};
use crate::domain::rules::Subject;
use crate::lint::PLACEHOLDER_DIGEST;

pub(crate) fn check_rules(flags: &Flags) -> Outcome {
    if let Err(outcome) = flags.only("check-rules", &[], true) {
        return outcome;
    }
    let [file] = flags.files.as_slice() else {
        return usage("check-rules takes exactly one FILE");
    };
    let rules = match load(file) {
        Ok(rules) => rules,
        Err(outcome) => return outcome,
    };
    let mut out = String::new();
    let mut never = 0;
    for l in crate::lint::looping(&rules) {
        never += usize::from(l.always);
        let _ = writeln!(out, "{file}: {l}");
    }
    for (rule, repository, shape) in rules.inside_own_target() {
        let _ = writeln!(
            out,
            "{file}: warning: rule {rule:?} names repositories inside its own \"to\" ({shape}), such as {repository}, \
             where it never applies (so that a promotion's own pushes do not promote again)"
        );
    }
    for u in crate::lint::unpinned(&rules) {
        let _ = writeln!(out, "{file}: {u}");
    }
    if never > 0 {
        return Outcome::message(1, format!("{out}{file}: {never} rule{} can never write a tag", if never == 1 { "" } else { "s" }));
    }
    let _ = write!(out, "{file}: {} rule{}, valid", rules.len(), if rules.len() == 1 { "" } else { "s" });
    Outcome::result(0, out)
}

pub(crate) fn plan(flags: &Flags, now: DateTime<Utc>) -> Outcome {
    const TAKES: [&str; 8] = ["--rules", "--repository", "--tag", "--time", "--digest", "--repository-tag", "--mutability", "--exclusion"];
    if let Err(outcome) = flags.only("plan", &TAKES, false) {
        return outcome;
    }
    let (Some(_), Some(repository), Some(tag)) = (&flags.rules, &flags.repository, &flags.tag) else {
        return usage("plan needs --rules, --repository and --tag");
    };
    let (mutability, exclusions, repository_tags) = (&flags.mutability, flags.exclusions.clone(), &flags.repository_tags);
    let names = Mode::ALL.map(Mode::as_str).join(", ");
    let mutability = match mutability.as_deref().map(|m| Mode::parse(m).ok_or(m)) {
        None if exclusions.is_empty() => None,
        None => return usage("plan: --exclusion needs --mutability IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION"),
        Some(Err(other)) => return usage(&format!("plan: --mutability {other:?}: expected one of {names}")),
        Some(Ok(mode)) => Some(TagMutability { mode, filters: exclusions }),
    };
    let rules = match flags.rule_set() {
        Ok((_, rules)) => rules,
        Err(outcome) => return outcome,
    };
    // A value the command line got wrong is a usage mistake, as everywhere (exit 2).
    let bad = |what: &str, e: &dyn std::fmt::Display| usage(&format!("{what}: {e}"));
    let repository = match RepositoryName::parse(repository) {
        Ok(r) => r,
        Err(e) => return bad("--repository", &e),
    };
    let tag = match Tag::parse(tag) {
        Ok(t) => t,
        Err(e) => return bad("--tag", &e),
    };
    let pushed_at = match flags.time.as_deref().map(DateTime::parse_from_rfc3339) {
        None => now,
        Some(Ok(t)) => t.with_timezone(&Utc),
        Some(Err(e)) => return bad("--time", &format!("expected RFC 3339 such as 2026-11-24T10:00:00Z: {e}")),
    };
    let digest = match Digest::parse(flags.digest.as_deref().unwrap_or(PLACEHOLDER_DIGEST)) {
        Ok(d) => d,
        Err(e) => return bad("--digest", &e),
    };
    let subject = Subject {
        repository: repository.as_str(),
        tag: &tag,
        digest: &digest,
        pushed_at,
        repository_tags: Some(repository_tags),
        // A tag of a signature's shape plans as the function would: nothing, unless a rule opts in.
        artifact: crate::domain::artifact::Artifact::of_tag(tag.as_str()).is_some(),
    };
    let planned = plan_push(&rules, &subject, Phase::PUSH);
    let moving = rules.moving_tags();
    let mut out = format!("{repository}:{tag} pushed at {}", pushed_at.to_rfc3339());
    let unmet = rules.unmet_repository_tags(repository.as_str(), tag.as_str(), repository_tags);
    for note in &unmet {
        let _ = write!(out, "\n  (skipped: {note}; give --repository-tag KEY=VALUE)");
    }
    if planned.tags.is_empty() {
        out.push_str("\nno rule matches: nothing to write");
        return Outcome::result(0, out);
    }
    let mut invalid = 0;
    for p in &planned.tags {
        let rules = p.rules.join(", ");
        let newer = if p.if_newer.is_some() { "; moves only to a newer version" } else { "" };
        // A promotion's tag is shown where it lands: `prod/app:stable`.
        let place = p.to.as_ref().map(|to| format!("{to}:")).unwrap_or_default();
        match &p.verdict {
            Verdict::Write(t) => {
                let _ = write!(out, "\n  write    {place}{t}  (rules: {rules}{newer})");
                // --mutability describes the pushed repository, not a promotion's target.
                if let Some(m) = mutability.as_ref().filter(|m| p.to.is_none() && p.moves && m.is_immutable(t.as_str())) {
                    invalid += 1;
                    let template = template_of(&moving, &p.rules, t.as_str());
                    let advice = m.moving_advice(repository.as_str(), t.as_str(), template);
                    let _ = write!(out, "\n           conflicts on its second move: it moves and the repository keeps it immutable; fix: {advice}");
                }
            }
            Verdict::Deferred(why) => {
                let _ = write!(out, "\n  defer    {place}{}  (rules: {rules}{newer}): {why}", p.tag);
            }
            Verdict::Invalid(reason) | Verdict::Loops(reason) | Verdict::Blocked(reason) => {
                invalid += 1;
                let _ = write!(out, "\n  invalid  {place}{:?}  (rules: {rules}): {reason}", p.tag);
            }
        }
    }
    for r in &planned.removals {
        let _ = write!(out, "\n  remove   {}  (rule: {}) once its tags are in place", r.source, r.rule);
    }
    // The plan is the result, on stdout whatever the exit code; 1 when a tag would not be written.
    Outcome::result(if invalid > 0 { 1 } else { 0 }, out)
}
