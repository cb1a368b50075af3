//! Checks beyond validity, for people writing rules (`ecr-retag check-rules`):
//! rules whose tags would loop. The function refuses such tags when they come
//! up (loop safety, in [`crate::domain::plan`]); here they are found before
//! deployment, by planning example pushes of each rule. A rule that can never
//! write also stops the function at start-up ([`crate::config`]), with the same words.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::names::Digest;
use crate::domain::plan::{plan, Phase, Verdict};
use crate::domain::rules::{Example, RuleSet, Subject};

/// A rule some or all of whose pushes derive only tags loop safety refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Looping {
    pub rule: String,
    /// Every example push the rule matches gets no tag of the rule written.
    pub always: bool,
    /// One such push, and the tags of the rule refused for it.
    pub example: String,
    pub refused: Vec<String>,
    /// How many example pushes were tried.
    pub tried: usize,
}

/// What `check-rules` and the function's start-up say: that the rule can never write (an error),
/// or that it loops for some pushes (a warning).
impl fmt::Display for Looping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let refused = self.refused.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
        if self.always {
            write!(
                f,
                "rule {:?} can never write a tag: in each of the {} example pushes it matches, every tag it derives would \
                 trigger the rules again (e.g. `{}` gets {refused}), and loop safety refuses it",
                self.rule, self.tried, self.example
            )
        } else {
            write!(
                f,
                "warning: rule {:?} loops for some pushes: `{}` would get {refused}, which loop safety refuses (see `plan`)",
                self.rule, self.example
            )
        }
    }
}

/// The first rule that can never write a tag, if any: the function refuses such a rule set at start-up.
pub fn never_writes(rules: &RuleSet) -> Option<Looping> {
    looping(rules).into_iter().find(|l| l.always)
}

/// A digest for planning offline, where none is given: templates with `{digest}` render it.
pub const PLACEHOLDER_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Rules that loop for the example pushes they match; rules with no example push are not judged.
pub fn looping(rules: &RuleSet) -> Vec<Looping> {
    let mut found = Vec::new();
    example_pushes(rules, |example, pushes| {
        let mut first_loop = None;
        let mut writing = 0;
        for subject in pushes {
            let tag = subject.tag;
            let planned = plan(rules, subject, Phase::PUSH);
            let ours: Vec<_> = planned.tags.iter().filter(|p| p.rules.iter().any(|r| r == example.rule)).collect();
            let refused: Vec<String> =
                ours.iter().filter(|p| matches!(p.verdict, Verdict::Loops(_))).map(|p| p.tag.clone()).collect();
            if ours.iter().any(|p| !matches!(p.verdict, Verdict::Invalid(_) | Verdict::Loops(_))) {
                writing += 1;
            }
            if first_loop.is_none() && !refused.is_empty() {
                first_loop = Some((tag.clone(), refused));
            }
        }
        if let Some((tag, refused)) = first_loop {
            found.push(Looping {
                rule: example.rule.to_owned(),
                always: writing == 0,
                example: tag.to_string(),
                refused,
                tried: example.tags.len(),
            });
        }
    });
    found
}

/// Each rule's example pushes, handed to `look` with the rule's example: at a fixed time and
/// with a placeholder digest, since nothing judged here depends on either (and the checks must
/// not depend on the day).
fn example_pushes(rules: &RuleSet, mut look: impl FnMut(&Example<'_>, &[Subject<'_>])) {
    let Ok(digest) = Digest::parse(PLACEHOLDER_DIGEST) else { return };
    let pushed_at: DateTime<Utc> = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
    for example in rules.examples() {
        let pushes: Vec<Subject<'_>> = example
            .tags
            .iter()
            .map(|tag| Subject {
                repository: &example.repository,
                tag,
                digest: &digest,
                pushed_at,
                repository_tags: Some(example.repository_tags),
                artifact: false,
            })
            .collect();
        look(&example, &pushes);
    }
}

/// A promotion target the rules write moving tags into (`stable`, `v1`) with no tag that stays on
/// one image beside them: a GitOps tool that tracks the moving tag there has nothing exact to pin
/// or roll back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpinned {
    /// The rules writing the moving tags.
    pub rules: Vec<String>,
    /// The target, as an example push renders it.
    pub target: String,
    pub moving: Vec<String>,
}

impl fmt::Display for Unpinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = self.rules.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ");
        let moving = self.moving.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
        write!(
            f,
            "warning: rule {rules} promotes moving tags ({moving}) into {} and no tag that stays on one image: a GitOps tool \
             (Flux, Argo CD Image Updater) should track an immutable, sortable tag, not a moving one; add `{{tag}}` or \
             `{{version}}` to the rule's tags (docs/gitops.md)",
            self.target
        )
    }
}

/// Promotion targets that would hold moving tags but no tag naming one image, per example push.
/// The pushed repository always has one: the pushed tag.
pub fn unpinned(rules: &RuleSet) -> Vec<Unpinned> {
    let mut found: Vec<Unpinned> = Vec::new();
    example_pushes(rules, |_, pushes| {
        for subject in pushes {
            let derived = rules.derive(subject);
            let mut targets: Vec<&crate::domain::names::RepositoryName> = derived.iter().filter_map(|d| d.to.as_ref()).collect();
            targets.dedup();
            for target in targets {
                let here = || derived.iter().filter(|d| d.to.as_ref() == Some(target) && d.result.is_ok());
                if here().any(|d| !d.moves) || found.iter().any(|u| u.target == target.as_str()) {
                    continue;
                }
                let mut rules: Vec<String> = here().map(|d| d.rule.to_owned()).collect();
                rules.dedup();
                let moving = here().filter_map(|d| d.result.as_ref().ok()).map(ToString::to_string).collect();
                found.push(Unpinned { rules, target: target.to_string(), moving });
            }
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Vec<Looping> {
        looping(&RuleSet::from_json(json).unwrap())
    }

    #[test]
    fn a_rule_that_can_never_write_is_found() {
        let found = check(r#"{"rules":[{"name":"grow","match":".*","tags":["{tag}-x"]}]}"#);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].always, "{found:?}");
        assert_eq!((found[0].example.as_str(), found[0].refused.as_slice()), ("a", &["a-x".to_owned()][..]));
        let never = never_writes(&RuleSet::from_json(r#"{"rules":[{"name":"grow","match":".*","tags":["{tag}-x"]}]}"#).unwrap());
        assert_eq!(never.as_ref(), found.first());
        assert!(found[0].to_string().starts_with("rule \"grow\" can never write a tag"), "{}", found[0]);
    }

    #[test]
    fn a_rule_that_loops_only_for_some_pushes_is_told_apart() {
        // `v1` derives `v1-latest`, which matches again; `release` derives only `stable`.
        let found = check(r#"{"rules":[{"name":"r","match":"release|v[0-9]+(-latest)*","tags":["stable","{0}-latest"]}]}"#);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(!found[0].always, "{found:?}");
        assert_eq!(never_writes(&RuleSet::from_json(r#"{"rules":[{"name":"r","match":"release|v[0-9]+(-latest)*","tags":["stable","{0}-latest"]}]}"#).unwrap()), None);
        assert!(found[0].to_string().starts_with("warning: rule \"r\" loops for some pushes"), "{}", found[0]);
    }

    #[test]
    fn a_target_with_only_moving_tags_is_warned_of_and_one_with_the_version_beside_them_is_not() {
        let moving = RuleSet::from_json(r#"{"rules":[{"name":"prod","semver":true,"to":"prod/{repository}","tags":["stable","v{major}"]}]}"#).unwrap();
        let found = unpinned(&moving);
        assert_eq!(found, [Unpinned { rules: vec!["prod".into()], target: "prod/app".into(), moving: vec!["stable".into(), "v1".into()] }]);
        assert!(found[0].to_string().contains("Flux, Argo CD Image Updater"), "{}", found[0]);
        let pinned = RuleSet::from_json(r#"{"rules":[{"name":"prod","semver":true,"to":"prod/{repository}","tags":["stable","{tag}"]}]}"#).unwrap();
        assert_eq!(unpinned(&pinned), []);
        // The pushed repository holds the pushed tag: moving tags there are fine.
        assert_eq!(unpinned(&RuleSet::from_json(r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#).unwrap()), []);
    }

    #[test]
    fn the_shipped_rules_do_not_loop() {
        for file in ["rules.json", "examples/promotion-rules.json"] {
            let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
            assert_eq!(looping(&RuleSet::from_json(&text).unwrap()), [], "{file}");
        }
    }
}
