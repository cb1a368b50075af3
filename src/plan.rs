//! Plan: which tags a push should get, before anything is read or written.
//!
//! Pure: the union of every matching rule's tags, minus the pushed tag, with
//! renderings that are no valid tag and tags that would make the function
//! trigger itself again marked invalid.

use std::collections::{BTreeMap, BTreeSet};

use crate::names::Tag;
use crate::rules::{RuleSet, Subject};

/// The tags to bring in place, sorted by tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub tags: Vec<PlannedTag>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTag {
    /// The tag, or for an invalid rendering the sanitised text.
    pub tag: String,
    /// The rules that derived it, in rule-set order.
    pub rules: Vec<String>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Write(Tag),
    Invalid(String),
}

impl Plan {
    /// The tags that should be written.
    pub fn writable(&self) -> impl Iterator<Item = &Tag> {
        self.tags.iter().filter_map(|t| match &t.verdict {
            Verdict::Write(tag) => Some(tag),
            Verdict::Invalid(_) => None,
        })
    }
}

/// Plans the tags for one push.
///
/// Loop safety: each PutImage this function makes emits a new PUSH event that
/// comes back to it. So every tag about to be written is fed through the rules
/// as if it had been pushed (same digest, same time); if that would derive any
/// tag outside the pushed tag and the set being written, the tag is not
/// written. Removing a tag can make another one unsafe, so this repeats until
/// nothing changes.
pub fn plan(rules: &RuleSet, subject: &Subject<'_>) -> Plan {
    let mut planned: BTreeMap<String, PlannedTag> = BTreeMap::new();
    for derived in rules.derive(subject) {
        let (key, verdict) = match derived.result {
            Ok(tag) => (tag.as_str().to_owned(), Verdict::Write(tag)),
            Err(u) => (u.rendered, Verdict::Invalid(u.reason)),
        };
        if key == subject.tag {
            continue;
        }
        let entry = planned.entry(key.clone()).or_insert_with(|| PlannedTag { tag: key, rules: Vec::new(), verdict });
        if !entry.rules.iter().any(|r| r == derived.rule) {
            entry.rules.push(derived.rule.to_owned());
        }
    }

    loop {
        let allowed: BTreeSet<&str> = std::iter::once(subject.tag)
            .chain(planned.values().filter(|p| matches!(p.verdict, Verdict::Write(_))).map(|p| p.tag.as_str()))
            .collect();
        let mut offenders = Vec::new();
        for p in planned.values() {
            if !matches!(p.verdict, Verdict::Write(_)) {
                continue;
            }
            let echo = Subject { tag: &p.tag, ..*subject };
            let escapes: Vec<_> = rules
                .derive(&echo)
                .into_iter()
                .filter_map(|d| {
                    let name = match &d.result {
                        Ok(t) => t.as_str().to_owned(),
                        Err(u) => u.rendered.clone(),
                    };
                    (!allowed.contains(name.as_str())).then(|| format!("rule {:?} would derive `{name}`", d.rule))
                })
                .collect();
            if !escapes.is_empty() {
                let reason = format!(
                    "not written: its own push event would trigger the rules again ({}), which could loop",
                    escapes.join(", ")
                );
                offenders.push((p.tag.clone(), reason));
            }
        }
        if offenders.is_empty() {
            break;
        }
        for (tag, reason) in offenders {
            if let Some(p) = planned.get_mut(&tag) {
                p.verdict = Verdict::Invalid(reason);
            }
        }
    }
    Plan { tags: planned.into_values().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Digest;

    fn digest() -> Digest {
        Digest::parse("sha256:16eb06ced985216bb14744c43dad833c58f56296d152e580542d0e8630f63316").unwrap()
    }

    fn plan_for(rules_json: &str, repository: &str, tag: &str) -> Plan {
        let rules = RuleSet::from_json(rules_json).unwrap();
        let d = digest();
        plan(&rules, &Subject { repository, tag, digest: &d, pushed_at: "2026-11-24T10:15:02Z".parse().unwrap() })
    }

    fn summary(plan: &Plan) -> Vec<(String, Vec<String>, bool)> {
        plan.tags
            .iter()
            .map(|p| (p.tag.clone(), p.rules.clone(), matches!(p.verdict, Verdict::Write(_))))
            .collect()
    }

    #[test]
    fn given_the_release_rule_when_v1_4_2_is_pushed_then_four_tags_are_planned() {
        let plan = plan_for(
            r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}","v{major}.{minor}","{date:%Y%m%d}"]}]}"#,
            "app",
            "v1.4.2",
        );
        let tags: Vec<&str> = plan.writable().map(Tag::as_str).collect();
        assert_eq!(tags, ["20261124", "stable", "v1", "v1.4"]);
    }

    #[test]
    fn tags_from_several_rules_are_written_once_with_every_rule_named() {
        let plan = plan_for(
            r#"{"rules":[
                {"name":"a","semver":true,"tags":["stable","v{major}"]},
                {"name":"b","match":"v.*","tags":["stable","{tag}"]}
            ]}"#,
            "app",
            "v1.4.2",
        );
        assert_eq!(
            summary(&plan),
            vec![("stable".into(), vec!["a".into(), "b".into()], true), ("v1".into(), vec!["a".into()], true)],
            "{{tag}} renders the pushed tag itself, which is dropped"
        );
    }

    #[test]
    fn an_invalid_rendering_is_planned_as_invalid() {
        let plan = plan_for(r#"{"rules":[{"name":"r","match":"x(.*)","tags":["{1}","ok"]}]}"#, "app", "x");
        assert_eq!(plan.tags.len(), 2);
        assert_eq!(plan.tags[0].tag, "");
        assert!(matches!(&plan.tags[0].verdict, Verdict::Invalid(r) if r.contains("rendered \"\"")));
        assert_eq!(plan.writable().map(Tag::as_str).collect::<Vec<_>>(), ["ok"]);
    }

    #[test]
    fn a_rule_that_would_retrigger_itself_forever_writes_nothing() {
        let plan = plan_for(r#"{"rules":[{"name":"grow","match":".*","tags":["{tag}-x"]}]}"#, "app", "v1");
        assert_eq!(plan.writable().count(), 0);
        let Verdict::Invalid(reason) = &plan.tags[0].verdict else { panic!() };
        assert!(reason.contains("rule \"grow\" would derive `v1-x-x`"), "{reason}");
    }

    #[test]
    fn a_stable_fixpoint_is_allowed() {
        // latest -> stable -> stable: writing `stable` re-derives only itself.
        let plan = plan_for(r#"{"rules":[{"name":"s","match":"latest|stable","tags":["stable"]}]}"#, "app", "latest");
        assert_eq!(plan.writable().map(Tag::as_str).collect::<Vec<_>>(), ["stable"]);
    }

    #[test]
    fn removing_an_unsafe_tag_cascades_to_tags_that_lead_to_it() {
        // a -> {b, c}; b -> {c}; c -> {d}: c would derive d, so c goes; then b derives c, no longer written, so b goes.
        let plan = plan_for(
            r#"{"rules":[
                {"name":"ra","match":"a","tags":["b","c"]},
                {"name":"rb","match":"b","tags":["c"]},
                {"name":"rc","match":"c","tags":["d"]}
            ]}"#,
            "app",
            "a",
        );
        assert_eq!(summary(&plan), vec![("b".into(), vec!["ra".into()], false), ("c".into(), vec!["ra".into()], false)]);
    }

    #[test]
    fn a_tag_no_rule_matches_plans_nothing() {
        let plan = plan_for(r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#, "app", "latest");
        assert!(plan.tags.is_empty());
    }
}
