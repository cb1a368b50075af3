//! Rule authoring offline: the same binary, run from a shell with arguments.
//!
//! ```text
//! ecr-retag check-rules FILE
//! ecr-retag plan --rules FILE --repository NAME --tag TAG [--time RFC3339] [--digest sha256:…]
//!                [--repository-tag KEY=VALUE]… [--mutability MODE [--exclusion FILTER]…]
//! ecr-retag filters --rules FILE
//! ```
//!
//! [`online`]: `apply` and `sweep`, the same engine against a real registry.
//! Without arguments the binary is the Lambda function.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

pub mod doctor;
mod filters;
pub mod online;

use crate::domain::mutability::{Filter, Mode, TagMutability};
use crate::domain::names::{Digest, RepositoryName, Tag};
use crate::lint::PLACEHOLDER_DIGEST;
use crate::domain::plan::{plan, Phase, Verdict};
use crate::domain::rules::{RuleSet, RulesError, Subject};

pub const USAGE: &str = "usage:
  ecr-retag check-rules FILE
  ecr-retag plan --rules FILE --repository NAME --tag TAG [--time RFC3339] [--digest sha256:HEX]
                 [--repository-tag KEY=VALUE]... [--mutability MODE [--exclusion FILTER]...]
  ecr-retag filters --rules FILE
  ecr-retag apply --rules FILE --repository NAME --tag TAG [--digest sha256:HEX] [--registry-id ID]
                  [--region R] [--profile P] [--dry-run] [--json]
  ecr-retag sweep --rules FILE --repositories GLOB... [--max-writes N] [--writes-per-second N] [--continuation TOKEN]
                  [--registry-id ID] [--region R] [--profile P] [--dry-run] [--json]
  ecr-retag doctor --rules FILE [--repositories GLOB...] [--region R] [--profile P] [--json]
Without arguments, ecr-retag runs as the Lambda function.";

const OUTSIDE_LAMBDA: &str = "ecr-retag is the bootstrap of an AWS Lambda function (it needs the Lambda Runtime API, \
AWS_LAMBDA_RUNTIME_API, which is not set here), and a tool for rule files. To run the function \
locally: scripts/invoke events/push.json (see the README).";

/// What a command printed and how it ended: 0 success, 1 the rules or the
/// inputs have problems, 2 the command line itself is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub output: String,
}

/// Runs the command in `args` (without the program name), or `None` when there
/// are no arguments and the process runs inside Lambda (`in_lambda`: Lambda
/// gave it a Runtime API), i.e. the binary should run as the Lambda function.
pub fn run(args: &[String], now: DateTime<Utc>, in_lambda: bool) -> Option<Outcome> {
    let Some((command, rest)) = args.split_first() else {
        return (!in_lambda).then(|| usage(OUTSIDE_LAMBDA));
    };
    Some(match command.as_str() {
        "check-rules" => match rest {
            [file] => check_rules(file),
            _ => usage("check-rules takes exactly one FILE"),
        },
        "plan" => plan_command(rest, now),
        "filters" => match rest {
            [flag, file] if flag == "--rules" => match load(file) {
                Ok(rules) => filters::run(file, &rules),
                Err(outcome) => outcome,
            },
            _ => usage("filters takes --rules FILE"),
        },
        "help" | "--help" | "-h" => Outcome { code: 0, output: USAGE.to_owned() },
        other => usage(&format!("unknown command {other:?}")),
    })
}

fn usage(problem: &str) -> Outcome {
    Outcome { code: 2, output: format!("{problem}\n{USAGE}") }
}

fn load(file: &str) -> Result<RuleSet, Outcome> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Outcome { code: 1, output: format!("{file}: cannot read: {e}") })?;
    RuleSet::from_json(&text).map_err(|e| {
        let output = match e {
            RulesError::Invalid(problems) => {
                let mut out = format!("{file}: {} problem{}", problems.len(), if problems.len() == 1 { "" } else { "s" });
                for p in problems {
                    let _ = write!(out, "\n{file}: {p}");
                }
                out
            }
            json => format!("{file}: {json}"),
        };
        Outcome { code: 1, output }
    })
}

fn check_rules(file: &str) -> Outcome {
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
    if never > 0 {
        return Outcome { code: 1, output: format!("{out}{file}: {never} rule{} can never write a tag", if never == 1 { "" } else { "s" }) };
    }
    let _ = write!(out, "{file}: {} rule{}, valid", rules.len(), if rules.len() == 1 { "" } else { "s" });
    Outcome { code: 0, output: out }
}

fn plan_command(args: &[String], now: DateTime<Utc>) -> Outcome {
    let mut rules = None;
    let mut repository = None;
    let mut tag = None;
    let mut time = None;
    let mut digest = None;
    let mut repository_tags = BTreeMap::new();
    let mut mutability = None;
    let mut exclusions = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--exclusion" {
            match it.next().map(|v| Filter::parse(v)) {
                Some(Ok(filter)) => exclusions.push(filter),
                Some(Err(e)) => return usage(&format!("plan: --exclusion: {e}")),
                None => return usage("plan: --exclusion needs a FILTER"),
            }
            continue;
        }
        if flag == "--repository-tag" {
            match it.next().and_then(|v| v.split_once('=')) {
                Some((k, v)) => repository_tags.insert(k.to_owned(), v.to_owned()),
                None => return usage("plan: --repository-tag needs KEY=VALUE"),
            };
            continue;
        }
        let slot = match flag.as_str() {
            "--rules" => &mut rules,
            "--repository" => &mut repository,
            "--tag" => &mut tag,
            "--time" => &mut time,
            "--digest" => &mut digest,
            "--mutability" => &mut mutability,
            other => return usage(&format!("plan: unknown option {other:?}")),
        };
        match it.next() {
            Some(value) => *slot = Some(value.clone()),
            None => return usage(&format!("plan: {flag} needs a value")),
        }
    }
    let (Some(file), Some(repository), Some(tag)) = (rules, repository, tag) else {
        return usage("plan needs --rules, --repository and --tag");
    };
    let names = Mode::ALL.map(Mode::as_str).join(", ");
    let mutability = match mutability.as_deref().map(|m| Mode::parse(m).ok_or(m)) {
        None if exclusions.is_empty() => None,
        None => return usage("plan: --exclusion needs --mutability IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION"),
        Some(Err(other)) => return usage(&format!("plan: --mutability {other:?}: expected one of {names}")),
        Some(Ok(mode)) => Some(TagMutability { mode, filters: exclusions }),
    };
    let rules = match load(&file) {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let bad = |what: &str, e: &dyn std::fmt::Display| Outcome { code: 1, output: format!("{what}: {e}") };
    let repository = match RepositoryName::parse(&repository) {
        Ok(r) => r,
        Err(e) => return bad("--repository", &e),
    };
    let tag = match Tag::parse(&tag) {
        Ok(t) => t,
        Err(e) => return bad("--tag", &e),
    };
    let pushed_at = match time.as_deref().map(DateTime::parse_from_rfc3339) {
        None => now,
        Some(Ok(t)) => t.with_timezone(&Utc),
        Some(Err(e)) => return bad("--time", &format!("expected RFC 3339 such as 2026-11-24T10:00:00Z: {e}")),
    };
    let digest = match Digest::parse(digest.as_deref().unwrap_or(PLACEHOLDER_DIGEST)) {
        Ok(d) => d,
        Err(e) => return bad("--digest", &e),
    };
    let subject = Subject {
        repository: repository.as_str(),
        tag: &tag,
        digest: &digest,
        pushed_at,
        repository_tags: Some(&repository_tags),
        // A tag of a signature's shape plans as the function would: nothing, unless a rule opts in.
        artifact: crate::domain::artifact::Artifact::of_tag(tag.as_str()).is_some(),
    };
    let planned = plan(&rules, &subject, Phase::PUSH);
    let mut out = format!("{repository}:{tag} pushed at {}", pushed_at.to_rfc3339());
    let unmet = rules.unmet_repository_tags(repository.as_str(), tag.as_str(), &repository_tags);
    for note in &unmet {
        let _ = write!(out, "\n  (skipped: {note}; give --repository-tag KEY=VALUE)");
    }
    if planned.tags.is_empty() {
        out.push_str("\nno rule matches: nothing to write");
        return Outcome { code: 0, output: out };
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
                    let _ = write!(out, "\n           conflicts on its second move: it moves, and {}", m.advice(repository.as_str(), t.as_str()));
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
    Outcome { code: if invalid > 0 { 1 } else { 0 }, output: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-24T10:00:00Z".parse().unwrap()
    }

    fn file(name: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!("ecr-retag-cli-{}-{name}.json", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn run_args(args: &[&str]) -> Outcome {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        run(&args, now(), false).expect("a command")
    }

    const RULES: &str = r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}","{date:%Y%m%d}"]}]}"#;

    #[test]
    fn no_arguments_means_the_lambda_function_inside_lambda_and_usage_outside() {
        assert_eq!(run(&[], now(), true), None);
        let out = run(&[], now(), false).unwrap();
        assert_eq!(out.code, 2);
        assert!(out.output.contains("AWS_LAMBDA_RUNTIME_API") && out.output.contains("usage:"), "{}", out.output);
    }

    #[test]
    fn check_rules_says_valid_or_lists_every_problem() {
        let good = file("good", RULES);
        assert_eq!(run_args(&["check-rules", &good]), Outcome { code: 0, output: format!("{good}: 1 rule, valid") });
        let bad = file("bad", r#"{"rules":[{"name":"r","semver":true,"tags":["v{majr}"]},{"name":"r","tags":["x"]}]}"#);
        let out = run_args(&["check-rules", &bad]);
        assert_eq!(out.code, 1);
        assert!(out.output.starts_with(&format!("{bad}: 3 problems")), "{}", out.output);
        assert!(out.output.contains("rule \"r\", field `tags[0]`: \"v{majr}\" has an unknown placeholder"), "{}", out.output);
        assert!(out.output.contains("field `match`"), "{}", out.output);
        assert_eq!(run_args(&["check-rules", "/nonexistent.json"]).code, 1);
    }

    #[test]
    fn plan_prints_the_tags_each_rule_would_derive() {
        let rules = file("plan", RULES);
        let out = run_args(&["plan", "--rules", &rules, "--repository", "app", "--tag", "v1.4.2", "--time", "2026-11-24T10:00:00Z"]);
        assert_eq!(out.code, 0, "{}", out.output);
        assert_eq!(
            out.output,
            "app:v1.4.2 pushed at 2026-11-24T10:00:00+00:00\n  write    20261124  (rules: release)\n  write    stable  (rules: release)\n  write    v1  (rules: release)"
        );
        let out = run_args(&["plan", "--rules", &rules, "--repository", "app", "--tag", "latest"]);
        assert!(out.output.ends_with("no rule matches: nothing to write"), "{}", out.output);
    }

    #[test]
    fn plan_shows_gates_moves_removals_and_repository_tag_requirements() {
        let rules = file(
            "policies",
            r#"{"rules":[
                {"name":"scanned","semver":true,"move":"if-newer","when":{"scan":"MEDIUM"},"tags":["stable"]},
                {"name":"retire","match":"latest","remove_source":true,"tags":["edge"]},
                {"name":"opt-in","match":"latest","repository_tags":{"retag":"enabled"},"tags":["opted"]}
            ]}"#,
        );
        let out = run_args(&["plan", "--rules", &rules, "--repository", "app", "--tag", "v1.4.2"]);
        assert!(
            out.output.contains("  defer    stable  (rules: scanned; moves only to a newer version): waits for the image scan: written then if no finding is above MEDIUM"),
            "{}",
            out.output
        );
        let out = run_args(&["plan", "--rules", &rules, "--repository", "app", "--tag", "latest"]);
        assert!(out.output.contains("  write    edge  (rules: retire)\n  remove   latest  (rule: retire) once its tags are in place"), "{}", out.output);
        assert!(out.output.contains("(skipped: rule \"opt-in\" needs repository tag retag=enabled; give --repository-tag KEY=VALUE)"), "{}", out.output);
        assert!(!out.output.contains("opted"), "{}", out.output);
        let out = run_args(&["plan", "--rules", &rules, "--repository", "app", "--tag", "latest", "--repository-tag", "retag=enabled"]);
        assert!(out.output.contains("  write    opted  (rules: opt-in)"), "{}", out.output);
        assert!(!out.output.contains("skipped"), "{}", out.output);
    }

    #[test]
    fn check_rules_fails_a_rule_that_can_never_write_and_warns_of_one_that_sometimes_loops() {
        let never = file("never", r#"{"rules":[{"name":"grow","match":".*","tags":["{tag}-x"]}]}"#);
        let out = run_args(&["check-rules", &never]);
        assert_eq!(out.code, 1, "{}", out.output);
        assert!(out.output.contains("rule \"grow\" can never write a tag") && out.output.contains("`a` gets `a-x`"), "{}", out.output);
        let sometimes = file("sometimes", r#"{"rules":[{"name":"r","match":"release|v[0-9]+(-latest)*","tags":["stable","{0}-latest"]}]}"#);
        let out = run_args(&["check-rules", &sometimes]);
        assert_eq!(out.code, 0, "{}", out.output);
        assert!(out.output.contains("warning: rule \"r\" loops for some pushes") && out.output.ends_with("1 rule, valid"), "{}", out.output);
    }

    #[test]
    fn plan_shows_where_a_promotion_writes_each_tag() {
        let rules = file(
            "promote",
            r#"{"rules":[{"name":"promote","semver":true,"to":"prod/{repository}","move":"if-newer","when":{"scan":"HIGH"},"tags":["{tag}","stable"]},
                         {"name":"edge","semver":true,"repositories":["app"],"tags":["edge"]}]}"#,
        );
        let out = run_args(&["plan", "--rules", &rules, "--repository", "app", "--tag", "v1.4.2", "--time", "2026-11-24T10:00:00Z"]);
        assert_eq!(out.code, 0, "{}", out.output);
        let lines: Vec<&str> = out.output.lines().skip(1).map(|l| l.split(": waits").next().unwrap_or(l)).collect();
        assert_eq!(
            lines,
            [
                "  write    edge  (rules: edge)",
                "  defer    prod/app:stable  (rules: promote; moves only to a newer version)",
                "  defer    prod/app:v1.4.2  (rules: promote; moves only to a newer version)",
            ]
        );
        let out = run_args(&["plan", "--rules", &rules, "--repository", "prod/app", "--tag", "v1.4.2"]);
        assert!(!out.output.contains("prod/prod"), "the target's own pushes promote nothing: {}", out.output);
    }

    #[test]
    fn check_rules_warns_of_a_promoting_rule_that_names_its_own_targets() {
        let rules = file(
            "self-target",
            r#"{"rules":[{"name":"self","semver":true,"repositories":["prod/*","dev/*"],"to":"prod/{repository}","tags":["stable"]},
                         {"name":"fine","semver":true,"repositories":["dev/**"],"to":"prod/{repository:1}","tags":["stable"]}]}"#,
        );
        let out = run_args(&["check-rules", &rules]);
        assert_eq!(out.code, 0, "{}", out.output);
        let warnings: Vec<&str> = out.output.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "{}", out.output);
        assert!(warnings[0].contains("rule \"self\" names repositories inside its own \"to\" (prod/**), such as prod/x"), "{}", out.output);
    }

    #[test]
    fn plan_shows_loop_safety_refusals() {
        let rules = file("loop", r#"{"rules":[{"name":"grow","match":".*","tags":["{tag}-x"]}]}"#);
        let out = run_args(&["plan", "--rules", &rules, "--repository", "app", "--tag", "v1"]);
        assert_eq!(out.code, 1);
        assert!(out.output.contains("invalid  \"v1-x\"  (rules: grow): not written: its own push event"), "{}", out.output);
    }

    #[test]
    fn bad_command_lines_exit_2_with_usage() {
        for args in [&["frobnicate"][..], &["check-rules"], &["plan", "--rules"], &["plan", "--tag", "v1"], &["plan", "--color", "x"]] {
            let out = run_args(args);
            assert_eq!(out.code, 2, "{args:?}");
            assert!(out.output.contains("usage:"), "{args:?}");
        }
        let rules = file("args", RULES);
        let out = run_args(&["plan", "--rules", &rules, "--repository", "App", "--tag", "v1"]);
        assert_eq!(out.code, 1);
        assert!(out.output.starts_with("--repository: expected an ECR repository name"), "{}", out.output);
    }

    #[test]
    fn filters_proposes_exclusions_for_the_moving_tags_or_says_why_it_cannot() {
        let bad = file("filters-bad", RULES);
        let out = run_args(&["filters", "--rules", &bad]);
        assert_eq!(out.code, 1);
        assert_eq!(
            out.output,
            format!(
                "{bad}: 3 moving tags (at most 5 filters)
  filter stable  covers `stable` (rule \"release\")
  cannot: rule \"release\", `v{{major}}`: the filter `v*` would also match `v1.2.3`, which must stay immutable; name it e.g. `v{{major}}-latest` (filter `v*-latest`)
  cannot: rule \"release\", `{{date:%Y%m%d}}`: the filter `*` would also match `1.2.3`, which must stay immutable; name it e.g. `{{date:%Y%m%d}}-latest` (filter `*-latest`)
aws ecr put-image-tag-mutability --repository-name REPO --image-tag-mutability IMMUTABLE_WITH_EXCLUSION --image-tag-mutability-exclusion-filters filterType=WILDCARD,filter=stable
{bad}: not every moving tag can be covered"
            )
        );
        let good = file("filters-good", r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}.{minor}-latest","v{major}-latest","{version}"]}]}"#);
        let out = run_args(&["filters", "--rules", &good]);
        assert_eq!(out.code, 0, "{}", out.output);
        assert_eq!(
            out.output,
            format!(
                "{good}: 3 moving tags (at most 5 filters)
  filter stable  covers `stable` (rule \"release\")
  filter v*-latest  covers `v{{major}}.{{minor}}-latest` (rule \"release\"), `v{{major}}-latest` (rule \"release\")
aws ecr put-image-tag-mutability --repository-name REPO --image-tag-mutability IMMUTABLE_WITH_EXCLUSION --image-tag-mutability-exclusion-filters filterType=WILDCARD,filter=stable filterType=WILDCARD,filter=v*-latest
{good}: these filters cover every moving tag"
            )
        );
        let fixed = file("filters-none", r#"{"rules":[{"name":"r","semver":true,"tags":["{version}","sha-{digest:12}"]}]}"#);
        assert_eq!(run_args(&["filters", "--rules", &fixed]).code, 0);
        assert_eq!(run_args(&["filters", &fixed]).code, 2, "usage");
    }

    #[test]
    fn plan_marks_moving_tags_an_immutable_repository_would_refuse_to_move() {
        let rules = file("plan-mutability", RULES);
        let args = ["plan", "--rules", &rules, "--repository", "app", "--tag", "v1.4.2", "--time", "2026-11-24T10:00:00Z"];
        let mut with = args.to_vec();
        with.extend(["--mutability", "IMMUTABLE_WITH_EXCLUSION", "--exclusion", "stable", "--exclusion", "v*"]);
        let out = run_args(&with);
        assert_eq!(out.code, 1);
        let marked: Vec<&str> = out.output.lines().filter(|l| l.contains("conflicts on its second move")).collect();
        assert_eq!(marked.len(), 1, "only the date stamp: stable and v1 are excluded\n{}", out.output);
        assert!(marked[0].contains("none covering `20261124`; to let it move: aws ecr put-image-tag-mutability --repository-name app"), "{}", marked[0]);
        assert_eq!(run_args(&args).code, 0, "without --mutability nothing is marked");
        let mutable = [args.as_slice(), &["--mutability", "MUTABLE"]].concat();
        assert_eq!(run_args(&mutable).code, 0);
        assert_eq!(run_args(&[args.as_slice(), &["--mutability", "FROZEN"]].concat()).code, 2);
        assert_eq!(run_args(&[args.as_slice(), &["--exclusion", "stable"]].concat()).code, 2, "an exclusion needs a mode");
    }

}
