//! The command line, the `ecr-retag` binary (the Lambda function is `bootstrap`). One parser
//! ([`flags`]), one usage text ([`COMMANDS`]), the same exit codes in every command:
//! 0 success, 1 findings (problems in the rules, tags not in place), 2 usage mistakes.
//! Results (plans, tables, JSON) go to stdout whatever the exit code, messages to stderr.
//!
//! Offline ([`offline`], [`filters`]): `check-rules`, `plan`, `filters`, for people writing
//! rules. Against a registry ([`online`], [`doctor`], [`why`]): `apply`, `sweep`, `doctor`, `why`.

use std::io::Write as _;

use chrono::{DateTime, Utc};

pub mod doctor;
mod filters;
mod flags;
mod offline;
pub mod online;
mod why;

use flags::Flags;

/// Each command and its usage: the one text `--help` and every usage mistake print from.
pub const COMMANDS: [(&str, &str, &str); 7] = [
    ("check-rules", "ecr-retag check-rules FILE", "every problem of a rule file, and rules whose tags would loop (exit 1 on problems)"),
    (
        "plan",
        "ecr-retag plan --rules FILE --repository NAME --tag TAG [--time RFC3339] [--digest sha256:HEX]\n                 [--repository-tag KEY=VALUE]... [--mutability MODE [--exclusion FILTER]...]",
        "the tags a push would get, each with its rules (exit 1 when one would not be written)",
    ),
    ("filters", "ecr-retag filters --rules FILE", "exclusion filters that let every moving tag move (exit 1 when some cannot)"),
    (
        "apply",
        "ecr-retag apply --rules FILE --repository NAME --tag TAG [--digest sha256:HEX] [--registry-id ID]\n                  [--key KMS_KEY] [--region R] [--profile P] [--dry-run] [--json]",
        "one tag's rules applied in a registry, as the function would (exit 1 when a tag is not in place)",
    ),
    (
        "sweep",
        "ecr-retag sweep --rules FILE --repositories GLOB... [--max-writes N] [--writes-per-second N] [--continuation TOKEN]\n                  [--registry-id ID] [--key KMS_KEY] [--region R] [--profile P] [--dry-run] [--json]",
        "the reconcile sweep of repositories (exit 1 when a tag is not in place or the sweep stopped)",
    ),
    (
        "doctor",
        "ecr-retag doctor --rules FILE [--repositories GLOB...] [--region R] [--profile P] [--json]",
        "registry settings that would defeat the rules (exit 1 when something would)",
    ),
    (
        "why",
        "ecr-retag why REPOSITORY:TAG [--key PEM_FILE|KMS_KEY] [--registry-id ID] [--region R] [--profile P] [--json]",
        "which rule, event and evidence put the tag there, from its verified promotion records (exit 1 when none explains it)",
    ),
];

/// Where an outcome's text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// A result: a plan, a table, JSON.
    Stdout,
    /// A message: a problem, a usage mistake.
    Stderr,
}

/// What a command printed and how it ended: 0 success, 1 findings, 2 a usage mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub output: String,
    pub stream: Stream,
}

impl Outcome {
    /// A result, on stdout whatever the exit code.
    pub fn result(code: i32, output: impl Into<String>) -> Outcome {
        Outcome { code, output: output.into(), stream: Stream::Stdout }
    }

    /// A message, on stderr.
    pub fn message(code: i32, output: impl Into<String>) -> Outcome {
        Outcome { code, output: output.into(), stream: Stream::Stderr }
    }

    /// Prints the outcome where it belongs and gives the exit code. A reader that closed the
    /// pipe early (`| head`) ends the process quietly, as a pipe's writer does: 141.
    pub fn print(&self) -> i32 {
        let written = match self.stream {
            Stream::Stdout => writeln!(std::io::stdout().lock(), "{}", self.output),
            Stream::Stderr => writeln!(std::io::stderr().lock(), "{}", self.output),
        };
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 141,
            _ => self.code,
        }
    }
}

/// The whole usage text.
pub fn usage_text() -> String {
    let mut out = String::from("usage:");
    for (_, line, what) in COMMANDS {
        out.push_str(&format!("\n  {line}\n      {what}"));
    }
    out.push_str("\n  ecr-retag COMMAND --help\nThe Lambda function is the other binary, bootstrap (docs/architecture.md).");
    out
}

/// A usage mistake: what is wrong, then the usage (exit 2).
pub(crate) fn usage(problem: &str) -> Outcome {
    Outcome::message(2, format!("{problem}\n{}", usage_text()))
}

/// Runs the command in `args` (without the program name).
pub async fn run(args: &[String], now: DateTime<Utc>) -> Outcome {
    let Some((command, rest)) = args.split_first() else {
        return usage("a command is needed");
    };
    if matches!(command.as_str(), "help" | "--help" | "-h") {
        return Outcome::result(0, usage_text());
    }
    let Some((_, line, what)) = COMMANDS.iter().find(|(name, ..)| name == command) else {
        return usage(&format!("unknown command {command:?}"));
    };
    let help = || Outcome::result(0, format!("usage: {line}\n  {what}"));
    let flags = match Flags::parse(rest) {
        Ok(flags) if flags.help => return help(),
        Ok(flags) => flags,
        // Help even after a mistake elsewhere on the line.
        Err(_) if rest.iter().any(|a| a == "--help" || a == "-h") => return help(),
        Err(problem) => return usage(&format!("{command}: {problem}")),
    };
    match command.as_str() {
        "check-rules" => offline::check_rules(&flags),
        "plan" => offline::plan(&flags, now),
        "filters" => filters::run(&flags),
        "apply" => online::apply(flags).await,
        "sweep" => online::sweep(flags).await,
        "why" => why::run(flags).await,
        _ => doctor::run(flags).await,
    }
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
        run_now(&args)
    }

    /// The offline commands touch no network: a current-thread runtime is enough.
    fn run_now(args: &[String]) -> Outcome {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run(args, now()))
    }

    const RULES: &str = r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}","{date:%Y%m%d}"]}]}"#;

    #[test]
    fn no_arguments_is_a_usage_mistake() {
        let out = run_now(&[]);
        assert_eq!((out.code, out.stream), (2, Stream::Stderr));
        assert!(out.output.starts_with("a command is needed\nusage:"), "{}", out.output);
    }

    #[test]
    fn check_rules_says_valid_or_lists_every_problem() {
        let good = file("good", RULES);
        assert_eq!(run_args(&["check-rules", &good]), Outcome::result(0, format!("{good}: 1 rule, valid")));
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
            r#"{"rules":[{"name":"self","semver":true,"repositories":["prod/*","dev/*"],"to":"prod/{repository}","tags":["stable","{tag}"]},
                         {"name":"fine","semver":true,"repositories":["dev/**"],"to":"prod/{repository:1}","tags":["stable","{tag}"]}]}"#,
        );
        let out = run_args(&["check-rules", &rules]);
        assert_eq!(out.code, 0, "{}", out.output);
        let warnings: Vec<&str> = out.output.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "{}", out.output);
        assert!(warnings[0].contains("rule \"self\" names repositories inside its own \"to\" (prod/**), such as prod/x"), "{}", out.output);
    }

    #[test]
    fn check_rules_warns_of_a_target_with_moving_tags_and_nothing_to_pin_but_exits_0() {
        let rules = file("unpinned", r#"{"rules":[{"name":"prod","semver":true,"to":"prod/{repository}","tags":["stable","v{major}"]}]}"#);
        let out = run_args(&["check-rules", &rules]);
        assert_eq!(out.code, 0, "a warning: {}", out.output);
        let warnings: Vec<&str> = out.output.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "{}", out.output);
        assert!(warnings[0].contains("rule \"prod\" promotes moving tags (`stable`, `v1`) into prod/app"), "{}", out.output);
        assert!(warnings[0].ends_with("(docs/gitops.md)"), "{}", out.output);
    }

    #[test]
    fn plan_shows_loop_safety_refusals() {
        let rules = file("loop", r#"{"rules":[{"name":"grow","match":".*","tags":["{tag}-x"]}]}"#);
        let out = run_args(&["plan", "--rules", &rules, "--repository", "app", "--tag", "v1"]);
        assert_eq!(out.code, 1);
        assert!(out.output.contains("invalid  \"v1-x\"  (rules: grow): not written: its own push event"), "{}", out.output);
    }

    #[test]
    fn every_command_answers_help_on_stdout_with_exit_0() {
        for (name, line, _) in COMMANDS {
            for help in ["--help", "-h"] {
                let out = run_args(&[name, help]);
                assert_eq!((out.code, out.stream), (0, Stream::Stdout), "{name} {help}");
                assert!(out.output.starts_with(&format!("usage: {line}")), "{name}: {}", out.output);
            }
        }
        // check-rules --help is no file name, and help wins over a mistake elsewhere on the line.
        assert_eq!(run_args(&["plan", "--color", "x", "--help"]).code, 0);
        for help in [&["--help"][..], &["-h"], &["help"]] {
            let out = run_args(help);
            assert_eq!((out.code, out.stream), (0, Stream::Stdout));
            assert!(COMMANDS.iter().all(|(name, ..)| out.output.contains(&format!("ecr-retag {name}"))), "{}", out.output);
        }
    }

    #[test]
    fn a_plan_with_tags_that_would_not_be_written_is_a_result_on_stdout_with_exit_1() {
        let rules = file("plan-invalid", r#"{"rules":[{"name":"grow","match":"v.*","tags":["{tag}-x"]}]}"#);
        let out = run_args(&["plan", "--rules", &rules, "--repository", "app", "--tag", "v1"]);
        assert_eq!((out.code, out.stream), (1, Stream::Stdout), "{}", out.output);
        assert!(out.output.contains("invalid  \"v1-x\""), "{}", out.output);
    }

    #[test]
    fn usage_mistakes_exit_2_in_every_command() {
        let rules = file("usage", RULES);
        for args in [
            &["check-rules", "a.json", "b.json"][..],
            &["plan", "--rules", &rules, "--repository", "app", "--tag", "v1", "--json"],
            &["filters", "--rules", &rules, "--dry-run"],
            &["apply", "--rules", &rules, "--repository", "app", "--tag", "v1", "--max-writes", "3"],
            &["sweep", "--rules", &rules, "--repositories", "app", "--tag", "v1"],
            &["doctor", "--rules", &rules, "--dry-run"],
            &["sweep", "--rules", &rules],
            &["apply", "--rules", "/nonexistent.json", "--repository", "app", "--tag", "v1"],
        ] {
            let out = run_args(args);
            assert_eq!((out.code, out.stream), (2, Stream::Stderr), "{args:?}: {}", out.output);
            assert!(out.output.contains("usage:") || out.output.contains("/nonexistent.json: cannot read"), "{args:?}: {}", out.output);
        }
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
        assert_eq!((out.code, out.stream), (2, Stream::Stderr), "a value the command line got wrong is a usage mistake");
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
        // The date's shape, as `filters` and `doctor` advise: not today's date as a literal filter.
        assert!(marked[0].contains("fix: exclude its shape from immutability; `ecr-retag filters --rules RULES`"), "{}", marked[0]);
        assert!(marked[0].contains("a filter `*"), "{}", marked[0]);
        assert!(!marked[0].contains("filter=20261124"), "{}", marked[0]);
        // A literal moving tag gets the literal filter, as before.
        let literal = [args.as_slice(), &["--mutability", "IMMUTABLE_WITH_EXCLUSION", "--exclusion", "v*", "--exclusion", "2*"]].concat();
        let out = run_args(&literal);
        let marked: Vec<&str> = out.output.lines().filter(|l| l.contains("conflicts on its second move")).collect();
        assert_eq!(marked.len(), 1, "{}", out.output);
        assert!(marked[0].contains("filterType=WILDCARD,filter=stable"), "{}", marked[0]);
        assert_eq!(run_args(&args).code, 0, "without --mutability nothing is marked");
        let mutable = [args.as_slice(), &["--mutability", "MUTABLE"]].concat();
        assert_eq!(run_args(&mutable).code, 0);
        assert_eq!(run_args(&[args.as_slice(), &["--mutability", "FROZEN"]].concat()).code, 2);
        assert_eq!(run_args(&[args.as_slice(), &["--exclusion", "stable"]].concat()).code, 2, "an exclusion needs a mode");
    }

}
