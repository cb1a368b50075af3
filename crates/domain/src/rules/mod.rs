//! The rule set: which pushed tags derive which other tags.
//!
//! Parsed and validated once at start-up ([`RuleSet::from_json`]); every
//! problem is reported with the rule and field it concerns, and a rule set
//! with any problem is refused whole. Evaluation ([`RuleSet::derive`]) is pure.

mod examples;
pub mod glob;
mod parse;
mod template;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use regex::Regex;

use crate::names::{Digest, RepositoryName, Tag};
use crate::scan::Severity;
use crate::signature::Kinds;
pub use glob::Glob;
pub use parse::{RuleProblem, RulesError};
use template::{Matched, Template, Vars};

/// A validated, compiled rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// `sha256:<hex>` of the text the rules were read from: what a promotion record names.
    digest: String,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    repositories: Option<Vec<Glob>>,
    /// Resource tags the repository must carry (empty: no requirement).
    repository_tags: BTreeMap<String, String>,
    matcher: Matcher,
    tags: Vec<Template>,
    policy: Policy,
    /// `"to"`: the tags are written in this repository, on the same image, copied there.
    to: Option<Promotion>,
}

/// A rule's target repository (`"to": "prod/{repository}"`).
#[derive(Debug, Clone)]
struct Promotion {
    template: Template,
    /// Every repository the template can render (`prod/**`): where the rule never applies,
    /// so that a promotion's own push events in the target cannot promote again.
    shape: Glob,
}

/// What a rule asks beyond writing its tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// `"move": "if-newer"`: a tag held by another image moves only to a higher version.
    pub if_newer: bool,
    /// `"when": {"scan": S}`: written only after a scan with no finding above S.
    pub scan_gate: Option<Severity>,
    /// `"when": {"signed": …}`: written only once a signature of one of these kinds exists.
    pub signed: Option<Kinds>,
    /// `"remove_source": true`: the pushed tag is removed once every derived tag is in place.
    pub remove_source: bool,
    /// `"artifacts": true`: the rule applies to signatures, attestations and SBOMs too
    /// ([`crate::artifact`]); other rules never do.
    pub artifacts: bool,
    /// `"restore_archived": true`: a tag of the rule due on an archived image starts its
    /// restore (UpdateImageStorageClass) instead of waiting for a person to.
    pub restore_archived: bool,
    /// `"to"`: the tags are written in another repository, the image copied there.
    pub promotes: bool,
    /// `"copy_blobs": true`: a promotion streams the blobs the registry will not mount.
    pub copy_blobs: bool,
    /// `"record": true`: every event that writes the rule's tags attaches a signed promotion
    /// record to the image ([`crate::record`]).
    pub record: bool,
}

impl Policy {
    /// Written only once its conditions hold (`"when"`).
    pub fn gated(&self) -> bool {
        self.scan_gate.is_some() || self.signed.is_some()
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    /// Anchored at both ends.
    Regex(Regex),
    Semver { prerelease: bool },
}

/// The image a rule set is applied to.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub repository: &'a str,
    pub tag: &'a Tag,
    pub digest: &'a Digest,
    pub pushed_at: DateTime<Utc>,
    /// The repository's resource tags; `None` when not looked up, and then
    /// rules with `repository_tags` do not apply.
    pub repository_tags: Option<&'a BTreeMap<String, String>>,
    /// The pushed manifest is a signature, attestation or SBOM: only rules with `"artifacts": true` apply.
    pub artifact: bool,
}

/// Example pushes one rule matches ([`RuleSet::examples`]).
#[derive(Debug, Clone)]
pub struct Example<'r> {
    pub rule: &'r str,
    pub repository: String,
    pub repository_tags: &'r BTreeMap<String, String>,
    pub tags: Vec<Tag>,
}

/// A rule that names a repository ([`RuleSet::covering`]).
#[derive(Debug, Clone, Copy)]
pub struct Coverage<'r> {
    pub rule: &'r str,
    /// Resource tags the repository must also carry for the rule to apply.
    pub repository_tags: &'r BTreeMap<String, String>,
    pub policy: Policy,
}

/// One template of one matching rule, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived<'r> {
    pub rule: &'r str,
    pub policy: Policy,
    pub result: Result<Tag, Unrenderable>,
    /// The version a semver rule read from the pushed tag (what `"move": "if-newer"` compares).
    pub version: Option<semver::Version>,
    /// A later push may derive the same tag for another image (`Template::moves`).
    pub moves: bool,
    /// `"to"`: the repository the tag is written in, the image copied there; `None`: the pushed one.
    pub to: Option<RepositoryName>,
}

/// A rendering that is not a valid tag, even after sanitising.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrenderable {
    /// The rendered text, sanitised as far as possible.
    pub rendered: String,
    pub reason: String,
}

impl RuleSet {
    /// Whether any rule may apply to this repository and tag (resource tag
    /// requirements not yet checked). Needs no digest, so an event nobody
    /// cares about costs no AWS call.
    pub fn any_match(&self, repository: &str, tag: &str) -> bool {
        self.candidates(repository, tag).next().is_some()
    }

    /// Whether a rule with a scan gate may apply: what a scan event can promote.
    pub fn any_scan_gated_match(&self, repository: &str, tag: &str) -> bool {
        self.candidates(repository, tag).any(|r| r.policy.scan_gate.is_some())
    }

    /// The lowest scan gate of the rules that may apply (a gate below MEDIUM needs the
    /// findings below MEDIUM split by severity, which Inspector's event does not give).
    pub fn lowest_scan_gate(&self, repository: &str, tag: &str) -> Option<Severity> {
        self.candidates(repository, tag).filter_map(|r| r.policy.scan_gate).min()
    }

    /// Whether a signature-gated rule may apply: what a signature's push can promote.
    pub fn any_signed_gated_match(&self, repository: &str, tag: &str) -> bool {
        self.candidates(repository, tag).any(|r| r.policy.signed.is_some())
    }

    /// The signature kinds the signature-gated rules of this repository accept (tags not
    /// yet known): a signature's push of another kind, or in a repository no such rule
    /// covers, costs no call.
    pub fn signed_kinds(&self, repository: &str) -> Kinds {
        self.rules
            .iter()
            .filter(|r| r.applies_to(repository))
            .filter_map(|r| r.policy.signed)
            .fold(Kinds::NONE, Kinds::union)
    }

    /// Whether a rule that opts in to artifacts (`"artifacts": true`) may apply.
    pub fn any_artifact_match(&self, repository: &str, tag: &str) -> bool {
        self.candidates(repository, tag).any(|r| r.policy.artifacts)
    }

    /// Whether any of the named rules says `"restore_archived": true`.
    pub fn restores_archived(&self, rules: &[String]) -> bool {
        self.rules.iter().any(|r| r.policy.restore_archived && rules.contains(&r.name))
    }

    /// Whether any of the named rules says `"copy_blobs": true`.
    pub fn copies_blobs(&self, rules: &[String]) -> bool {
        self.rules.iter().any(|r| r.policy.copy_blobs && rules.contains(&r.name))
    }

    /// `sha256:<hex>` of the rule set's text, as deployed.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// A rule's policy, by name.
    pub fn policy(&self, rule: &str) -> Option<Policy> {
        self.rules.iter().find(|r| r.name == rule).map(|r| r.policy)
    }

    /// Whether the rule of this name says `"record": true`.
    pub fn records(&self, rule: &str) -> bool {
        self.policy(rule).is_some_and(|p| p.record)
    }

    /// Whether deciding needs the repository's resource tags (one lookup).
    pub fn needs_repository_tags(&self, repository: &str, tag: &str) -> bool {
        self.candidates(repository, tag).any(|r| !r.repository_tags.is_empty())
    }

    /// Whether any rule has this policy feature: the function needs the
    /// matching permission and event wiring only then.
    pub fn uses(&self, feature: impl Fn(&Policy) -> bool) -> bool {
        self.rules.iter().any(|r| feature(&r.policy))
    }

    /// The names of the rules that require resource tags this repository lacks.
    pub fn unmet_repository_tags(&self, repository: &str, tag: &str, have: &BTreeMap<String, String>) -> Vec<String> {
        self.candidates(repository, tag)
            .filter(|r| !r.repository_tags_met(Some(have)))
            .map(|r| {
                let wanted: Vec<String> = r.repository_tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("rule {:?} needs repository tag {}", r.name, wanted.join(", "))
            })
            .collect()
    }

    /// The highest version that any of the named rules reads from `tags`.
    /// For `"move": "if-newer"`: the version of the image holding a tag now.
    pub fn version_of<'t>(&self, rules: &[String], tags: impl IntoIterator<Item = &'t str>) -> Option<semver::Version> {
        let matchers: Vec<&Matcher> =
            self.rules.iter().filter(|r| rules.contains(&r.name)).map(|r| &r.matcher).collect();
        tags.into_iter()
            .flat_map(|t| matchers.iter().filter_map(move |m| match m.matches(t) {
                Some(Matched::Semver(v)) => Some(v),
                _ => None,
            }))
            .max_by(|a, b| a.cmp_precedence(b))
    }

    fn candidates<'s>(&'s self, repository: &'s str, tag: &'s str) -> impl Iterator<Item = &'s Rule> + 's {
        self.rules.iter().filter(move |r| r.applies_to(repository) && r.matcher.matches(tag).is_some())
    }

    /// Every template of every rule matching the subject, rendered and sanitised.
    pub fn derive(&self, subject: &Subject<'_>) -> Vec<Derived<'_>> {
        let mut out = Vec::new();
        for rule in &self.rules {
            if !rule.applies_to(subject.repository)
                || !rule.repository_tags_met(subject.repository_tags)
                || (subject.artifact && !rule.policy.artifacts)
            {
                continue;
            }
            let Some(matched) = rule.matcher.matches(subject.tag.as_str()) else { continue };
            let vars = Vars {
                tag: subject.tag.as_str(),
                repository: subject.repository,
                digest_hex: subject.digest.hex(),
                pushed_at: subject.pushed_at,
                matched: &matched,
            };
            let version = match &matched {
                Matched::Semver(v) => Some(v.clone()),
                Matched::Regex(_) => None,
            };
            let to = rule.to.as_ref().map(|to| match to.template.render(&vars) {
                Ok(rendered) => RepositoryName::parse(&rendered)
                    .map_err(|e| format!("repository template `{}` rendered {rendered:?}: {e}", to.template.source())),
                Err(_) => Err(format!("repository template `{}` could not be formatted for this push time", to.template.source())),
            });
            for template in &rule.tags {
                let result = match template.render(&vars) {
                    Ok(rendered) => Tag::sanitize(&rendered).map_err(|e| Unrenderable {
                        reason: format!("template `{}` rendered {rendered:?}: {e}", template.source()),
                        rendered: e.value,
                    }),
                    Err(_) => Err(Unrenderable {
                        rendered: template.source().to_owned(),
                        reason: format!("template `{}` could not be formatted for this push time", template.source()),
                    }),
                };
                let (result, to) = match (result, &to) {
                    (result, None) => (result, None),
                    (Ok(tag), Some(Ok(to))) => (Ok(tag), Some(to.clone())),
                    (Err(u), Some(Ok(to))) => (Err(u), Some(to.clone())),
                    (result, Some(Err(reason))) => {
                        let rendered = result.map_or_else(|u| u.rendered, |t| t.to_string());
                        (Err(Unrenderable { rendered, reason: reason.clone() }), None)
                    }
                };
                out.push(Derived { rule: &rule.name, policy: rule.policy, result, version: version.clone(), moves: template.moves(), to });
            }
        }
        out
    }

    /// For each rule: example pushes it matches (repository, its resource tags, tags), for
    /// checking rule sets offline. Tags that are no valid tag or that the rule does not match
    /// are left out.
    pub fn examples(&self) -> Vec<Example<'_>> {
        self.rules
            .iter()
            .map(|rule| {
                let repository = rule.repositories.as_ref().and_then(|g| g.first()).map_or("app".to_owned(), |g| examples::repository(g.source()));
                let candidates = match &rule.matcher {
                    // The anchors are look-arounds, which add nothing to an example.
                    Matcher::Regex(re) => examples::from_pattern(re.as_str()),
                    Matcher::Semver { prerelease } => examples::semver(*prerelease),
                };
                let tags = candidates.iter().filter_map(|t| Tag::parse(t).ok()).filter(|t| rule.matcher.matches(t.as_str()).is_some()).collect();
                Example { rule: &rule.name, repository, repository_tags: &rule.repository_tags, tags }
            })
            .collect()
    }

    /// `(rule, repository, shape)` for each of a promoting rule's `repositories` globs whose example
    /// repository lies inside the rule's own `to` shape, where the rule never applies: a rule set
    /// that says `"repositories": ["prod/*"], "to": "prod/{repository}"` promotes nothing.
    pub fn inside_own_target(&self) -> Vec<(&str, String, &str)> {
        self.rules
            .iter()
            .filter_map(|r| Some((r, r.to.as_ref()?, r.repositories.as_ref()?)))
            .flat_map(|(r, to, globs)| {
                globs
                    .iter()
                    .map(|g| examples::repository(g.source()))
                    .filter(|repository| to.shape.matches(repository))
                    .map(move |repository| (r.name.as_str(), repository, to.shape.source()))
            })
            .collect()
    }

    /// The rules whose `repositories` name this repository, whatever its resource tags.
    pub fn covering(&self, repository: &str) -> Vec<Coverage<'_>> {
        self.rules
            .iter()
            .filter(|r| r.applies_to(repository))
            .map(|r| Coverage { rule: &r.name, repository_tags: &r.repository_tags, policy: r.policy })
            .collect()
    }

    /// Every template whose tag moves from image to image (`Template::moves`), with its rule.
    pub fn moving_tags(&self) -> Vec<crate::mutability::Moving> {
        self.rules
            .iter()
            .flat_map(|r| r.tags.iter().filter(|t| t.moves()).map(move |t| (r, t)))
            .map(|(r, t)| crate::mutability::Moving { rule: r.name.clone(), template: t.source().to_owned(), shape: t.wildcard() })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl Rule {
    /// Named by `repositories`, and not a repository the rule promotes into (its `"to"` shape).
    fn applies_to(&self, repository: &str) -> bool {
        self.repositories.as_ref().is_none_or(|globs| globs.iter().any(|g| g.matches(repository)))
            && !self.to.as_ref().is_some_and(|to| to.shape.matches(repository))
    }

    fn repository_tags_met(&self, have: Option<&BTreeMap<String, String>>) -> bool {
        self.repository_tags.is_empty()
            || have.is_some_and(|have| self.repository_tags.iter().all(|(k, v)| have.get(k) == Some(v)))
    }
}

impl Matcher {
    fn matches<'t>(&self, tag: &'t str) -> Option<Matched<'t>> {
        match self {
            Matcher::Regex(re) => re.captures(tag).map(Matched::Regex),
            Matcher::Semver { prerelease } => {
                let version = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()?;
                (*prerelease || version.pre.is_empty()).then_some(Matched::Semver(version))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Kind;

    const EXAMPLE: &str = r#"{
      "rules": [
        {"name": "release", "repositories": ["app", "team/*"], "semver": true,
         "tags": ["stable", "v{major}", "v{major}.{minor}", "{date:%Y%m%d}"]},
        {"name": "main-builds", "match": "main-(?<sha>[0-9a-f]{7,40})",
         "tags": ["edge", "main-{date:%Y%m%d-%H%M%S}"]}
      ]
    }"#;

    fn digest() -> Digest {
        Digest::parse("sha256:16eb06ced985216bb14744c43dad833c58f56296d152e580542d0e8630f63316").unwrap()
    }

    /// What the engine asks of a rule set before reading anything: which gates, opt-ins and copy
    /// modes may apply to a push, so that an event no such rule covers costs no call.
    #[test]
    fn the_questions_the_engine_asks_before_any_call_are_answered_per_repository_and_tag() {
        let rules = RuleSet::from_json(
            r#"{"rules":[
            {"name":"vetted","repositories":["app"],"semver":true,"when":{"scan":"LOW"},"tags":["stable"]},
            {"name":"vetted-high","repositories":["app", "web"],"semver":true,"when":{"scan":"HIGH"},"tags":["ok"]},
            {"name":"signed","repositories":["web"],"semver":true,"when":{"signed":true},"tags":["trusted"]},
            {"name":"sboms","repositories":["app"],"match":"sbom-.*","artifacts":true,"tags":["sbom-latest"]},
            {"name":"thaw","repositories":["app"],"match":"old-.*","restore_archived":true,"tags":["kept"]},
            {"name":"ship","repositories":["dev/*"],"semver":true,"to":"prod/{repository}","copy_blobs":true,"tags":["v{major}"]},
            {"name":"inside","repositories":["prod/*"],"semver":true,"to":"prod/{repository:1}","tags":["p{major}"]},
            {"name":"opted","repositories":["lab"],"repository_tags":{"retag":"on"},"semver":true,"tags":["x"]}
        ]}"#,
        )
        .unwrap();
        assert_eq!((rules.len(), rules.is_empty()), (8, false));
        // An empty rule set is refused, so `is_empty` is never true of one (docs/testing.md: equivalent).
        assert!(RuleSet::from_json(r#"{"rules":[]}"#).is_err());

        assert!(rules.any_scan_gated_match("app", "1.2.3") && rules.any_scan_gated_match("web", "1.2.3"));
        assert!(!rules.any_scan_gated_match("lab", "1.2.3") && !rules.any_scan_gated_match("app", "sbom-1"));
        assert_eq!(rules.lowest_scan_gate("app", "1.2.3"), Some(Severity::Low), "the lowest of LOW and HIGH");
        assert_eq!(rules.lowest_scan_gate("web", "1.2.3"), Some(Severity::High));
        assert_eq!(rules.lowest_scan_gate("lab", "1.2.3"), None);

        assert!(rules.any_signed_gated_match("web", "1.2.3") && !rules.any_signed_gated_match("app", "1.2.3"));
        assert!(rules.any_artifact_match("app", "sbom-1") && !rules.any_artifact_match("app", "1.2.3") && !rules.any_artifact_match("web", "sbom-1"));
        assert!(rules.needs_repository_tags("lab", "1.2.3") && !rules.needs_repository_tags("app", "1.2.3"));

        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(rules.restores_archived(&names(&["vetted", "thaw"])) && !rules.restores_archived(&names(&["vetted", "ship"])));
        assert!(!rules.restores_archived(&names(&["unknown"])));
        assert!(rules.copies_blobs(&names(&["ship"])) && !rules.copies_blobs(&names(&["thaw", "vetted"])));

        // `prod/*` promoting into `prod/{repository:1}`: its example repository is inside its own target.
        let inside = rules.inside_own_target();
        assert_eq!(inside.len(), 1, "{inside:?}");
        assert_eq!((inside[0].0, inside[0].2), ("inside", "prod/**"), "the target shape");
        assert!(inside[0].1.starts_with("prod/"), "{inside:?}");
    }

    fn derive(rules: &RuleSet, repository: &str, tag: &str) -> Vec<(String, String)> {
        let d = digest();
        let tag = &Tag::parse(tag).unwrap();
        let subject = Subject { repository, tag, digest: &d, pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(), repository_tags: None, artifact: false };
        rules
            .derive(&subject)
            .into_iter()
            .map(|x| (x.rule.to_owned(), x.result.map(|t| t.to_string()).unwrap_or_else(|u| format!("!{}", u.rendered))))
            .collect()
    }

    fn problems(json: &str) -> Vec<RuleProblem> {
        match RuleSet::from_json(json) {
            Err(RulesError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    fn one_rule_problem(rule: &str) -> RuleProblem {
        let mut p = problems(&format!(r#"{{"rules": [{rule}]}}"#));
        assert_eq!(p.len(), 1, "{p:?}");
        p.remove(0)
    }

    #[test]
    fn the_readme_example_derives_the_promised_tags() {
        let rules = RuleSet::from_json(EXAMPLE).unwrap();
        let r = |t: &str| ("release".to_owned(), t.to_owned());
        assert_eq!(derive(&rules, "app", "v1.4.2"), vec![r("stable"), r("v1"), r("v1.4"), r("20261124")]);
        assert_eq!(derive(&rules, "team/api", "1.4.2").len(), 4, "the leading v is optional");
        let m = |t: &str| ("main-builds".to_owned(), t.to_owned());
        assert_eq!(derive(&rules, "other", "main-abc1234"), vec![m("edge"), m("main-20261124-101502")]);
    }

    #[test]
    fn repository_globs_and_anchoring_limit_what_matches() {
        let rules = RuleSet::from_json(EXAMPLE).unwrap();
        assert!(derive(&rules, "team/api/worker", "v1.4.2").is_empty(), "* stays within a segment");
        assert!(derive(&rules, "other", "v1.4.2").is_empty());
        assert!(derive(&rules, "app", "xmain-abc1234").is_empty(), "match is anchored at the start");
        assert!(derive(&rules, "app", "main-abc1234x").is_empty(), "match is anchored at the end");
        assert!(!rules.any_match("app", "latest"));
        assert!(rules.any_match("app", "v1.4.2"));
    }

    #[test]
    fn prereleases_match_only_when_asked() {
        let rules = RuleSet::from_json(EXAMPLE).unwrap();
        assert!(derive(&rules, "app", "v2.0.0-rc.1").is_empty());
        let pre = RuleSet::from_json(
            r#"{"rules":[{"name":"pre","semver":true,"prerelease":true,"tags":["next","{version}"]}]}"#,
        )
        .unwrap();
        // A pushed tag cannot carry SemVer build metadata: `+` is no tag character.
        let got = derive(&pre, "app", "v2.0.0-rc.1");
        assert_eq!(got[1].1, "2.0.0-rc.1");
        assert!(derive(&pre, "app", "v01.2.3").is_empty(), "leading zeros are not SemVer");
        assert!(derive(&pre, "app", "v1.2").is_empty());
    }

    #[test]
    fn a_rendering_that_is_no_tag_is_reported_not_dropped() {
        let rules =
            RuleSet::from_json(r#"{"rules":[{"name":"r","match":"(?<x>.*)-(.*)","tags":["{2}", "{2}{x}"]}]}"#).unwrap();
        let got = derive(&rules, "app", "v1-");
        assert_eq!(got, vec![("r".into(), "!".into()), ("r".into(), "v1".into())]);
    }

    #[test]
    fn every_problem_names_its_rule_and_field() {
        let p = problems(
            r#"{"rules": [
                {"name": "a", "semver": true, "tags": ["v{majr}", "{date:%Q}"]},
                {"semver": true, "tags": ["x"]},
                {"name": "a", "match": "(", "tags": []},
                {"name": "c", "match": "x", "semver": true, "tags": ["y"], "tag": "z"}
            ]}"#,
        );
        let got: Vec<(String, String)> = p.iter().map(|p| (p.rule.clone(), p.field.clone())).collect();
        assert_eq!(
            got,
            vec![
                ("rule \"a\"".into(), "tags[0]".into()),
                ("rule \"a\"".into(), "tags[1]".into()),
                ("rule #2 (unnamed)".into(), "name".into()),
                ("rule \"a\"".into(), "name".into()),
                ("rule \"a\"".into(), "match".into()),
                ("rule \"a\"".into(), "tags".into()),
                ("rule \"c\"".into(), "tag".into()),
            ]
        );
        assert!(p[6].problem.contains("did you mean `tags`?"), "{}", p[6].problem);
    }

    #[test]
    fn each_kind_of_bad_rule_is_refused() {
        let cases = [
            (r#"{"name":"r","tags":["x"]}"#, "match", "required unless"),
            (r#"{"name":"r","match":"x","semver":true,"tags":["x"]}"#, "match", "exclusive"),
            (r#"{"name":"r","match":"x","prerelease":true,"tags":["x"]}"#, "prerelease", "semver"),
            (r#"{"name":"r","match":"x"}"#, "tags", "required"),
            (r#"{"name":"","match":"x","tags":["x"]}"#, "name", "empty"),
            (r#"{"name":"r","match":"x","tags":["{major}"]}"#, "tags[0]", "semver"),
            (r#"{"name":"r","semver":true,"tags":["{1}"]}"#, "tags[0]", "unknown placeholder"),
            (r#"{"name":"r","semver":true,"tags":[".x"]}"#, "tags[0]", "never render"),
            (r#"{"name":"r","semver":true,"repositories":[],"tags":["x"]}"#, "repositories", "empty"),
            (r#"{"name":"r","semver":true,"repositories":["Team/*"],"tags":["x"]}"#, "repositories[0]", "'T'"),
            (r#"{"name":"r","semver":"yes","tags":["x"]}"#, "semver", "invalid type"),
        ];
        for (rule, field, text) in cases {
            let p = one_rule_problem(rule);
            assert_eq!(p.field, field, "{rule}: {p}");
            assert!(p.problem.contains(text), "{rule}: {p}");
        }
    }

    #[test]
    fn the_promotion_fields_are_checked_too() {
        let cases = [
            (r#"{"name":"r","match":"v.*","move":"if-newer","tags":["x"]}"#, "move", "needs \"semver\": true"),
            (r#"{"name":"r","semver":true,"move":"sometimes","tags":["x"]}"#, "move", "\"if-newer\""),
            (r#"{"name":"r","semver":true,"when":{"scan":"medium"},"tags":["x"]}"#, "when", "CRITICAL, HIGH, MEDIUM"),
            (r#"{"name":"r","semver":true,"when":{"scan":3},"tags":["x"]}"#, "when", "scan must be one of"),
            (r#"{"name":"r","semver":true,"when":{"signed":false},"tags":["x"]}"#, "when", "leave the condition out"),
            (r#"{"name":"r","semver":true,"when":{"signed":[]},"tags":["x"]}"#, "when", "non-empty list of notation"),
            (r#"{"name":"r","semver":true,"when":{"signed":["gpg"]},"tags":["x"]}"#, "when", "\"gpg\", which is not one of"),
            (r#"{"name":"r","semver":true,"when":{"signed":"yes"},"tags":["x"]}"#, "when", "signed must be true"),
            (r#"{"name":"r","semver":true,"when":{"verified":true},"tags":["x"]}"#, "when", "unknown condition \"verified\""),
            (r#"{"name":"r","semver":true,"when":{},"tags":["x"]}"#, "when", "is empty"),
            (r#"{"name":"r","semver":true,"when":"scan","tags":["x"]}"#, "when", "must be an object"),
            (r#"{"name":"r","semver":true,"remove_source":"yes","tags":["x"]}"#, "remove_source", "invalid type"),
            (r#"{"name":"r","semver":true,"repository_tags":{"":"x"},"tags":["x"]}"#, "repository_tags", "1 to 128"),
            (r#"{"name":"r","semver":true,"repository_tags":{"retag":true},"tags":["x"]}"#, "repository_tags.retag", "invalid type"),
        ];
        for (rule, field, text) in cases {
            let p = one_rule_problem(rule);
            assert_eq!(p.field, field, "{rule}: {p}");
            assert!(p.problem.contains(text), "{rule}: {p}");
        }
        let rules = RuleSet::from_json(
            r#"{"rules":[{"name":"r","semver":true,"move":"if-newer","when":{"scan":"HIGH"},"remove_source":true,"tags":["x"]}]}"#,
        )
        .unwrap();
        assert!(rules.uses(|p| p.if_newer) && rules.uses(|p| p.remove_source));
        assert!(rules.uses(|p| p.scan_gate == Some(Severity::High)));
        let signed = RuleSet::from_json(
            r#"{"rules":[{"name":"a","semver":true,"repositories":["prod/*"],"when":{"signed":["notation","managed"],"scan":"HIGH"},"tags":["x"]},
                         {"name":"b","semver":true,"when":{"signed":true},"tags":["y"]}]}"#,
        )
        .unwrap();
        assert!(signed.uses(|p| p.signed == Some(Kinds::of([Kind::Notation, Kind::Managed])) && p.scan_gate == Some(Severity::High)));
        assert_eq!(signed.signed_kinds("prod/api"), Kinds::DEFAULT.with(Kind::Managed));
        assert_eq!(signed.signed_kinds("dev/api"), Kinds::DEFAULT, "rule a covers prod/* only");
        assert!(!RuleSet::from_json(EXAMPLE).unwrap().uses(|p| p.if_newer || p.remove_source || p.scan_gate.is_some()));
    }

    #[test]
    fn repository_tags_select_the_repositories_a_rule_applies_to() {
        let rules = RuleSet::from_json(
            r#"{"rules":[{"name":"opt-in","semver":true,"repository_tags":{"retag":"enabled","team":"core"},"tags":["stable"]}]}"#,
        )
        .unwrap();
        let d = digest();
        let derive_with = |tags: Option<&BTreeMap<String, String>>| {
            let subject = Subject { repository: "app", tag: &Tag::parse("v1.0.0").unwrap(), digest: &d, pushed_at: DateTime::<Utc>::UNIX_EPOCH, repository_tags: tags, artifact: false };
            rules.derive(&subject).len()
        };
        let both: BTreeMap<String, String> = [("retag".into(), "enabled".into()), ("team".into(), "core".into()), ("x".into(), "y".into())].into();
        let one: BTreeMap<String, String> = [("retag".into(), "enabled".into())].into();
        let wrong: BTreeMap<String, String> = [("retag".into(), "Enabled".into()), ("team".into(), "core".into())].into();
        assert_eq!(derive_with(Some(&both)), 1, "every required tag present, extra tags ignored");
        assert_eq!(derive_with(Some(&one)), 0);
        assert_eq!(derive_with(Some(&wrong)), 0, "values compare exactly");
        assert_eq!(derive_with(None), 0, "unknown tags: the rule does not apply");
        assert!(rules.any_match("app", "v1.0.0") && rules.needs_repository_tags("app", "v1.0.0"));
        assert_eq!(rules.unmet_repository_tags("app", "v1.0.0", &one), ["rule \"opt-in\" needs repository tag retag=enabled, team=core"]);
    }

    #[test]
    fn version_of_takes_the_highest_version_the_named_rules_read() {
        let rules = RuleSet::from_json(
            r#"{"rules":[{"name":"rel","semver":true,"tags":["stable"]},{"name":"pre","semver":true,"prerelease":true,"tags":["next"]}]}"#,
        )
        .unwrap();
        let rel = ["rel".to_owned()];
        let v = |names: &[String], tags: &[&str]| rules.version_of(names, tags.iter().copied()).map(|v| v.to_string());
        assert_eq!(v(&rel, &["stable", "v1", "v1.3.0", "1.2.9", "v2.0.0-rc.1"]), Some("1.3.0".into()), "prereleases only where the rule reads them");
        assert_eq!(v(&["pre".to_owned()], &["v1.3.0", "v2.0.0-rc.1"]), Some("2.0.0-rc.1".into()));
        assert_eq!(v(&rel, &["stable", "latest"]), None);
    }

    #[test]
    fn the_rule_set_itself_must_be_well_formed() {
        assert!(matches!(RuleSet::from_json("{"), Err(RulesError::Json(_))));
        let shape = |text: &str| match RuleSet::from_json(text) {
            Err(RulesError::Shape(message)) => message,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(shape(r#"{"rule": []}"#), r#"the rule set has an unknown field "rule" (did you mean "rules"?): it is {"rules": [ … ]}"#);
        assert_eq!(shape("{}"), r#"the rule set has no "rules": it is {"rules": [ … ]}"#);
        assert_eq!(shape("[]"), r#"the rule set is {"rules": [ … ]}, not a list: put the list of rules under "rules""#);
        assert_eq!(shape(r#"{"rules": {"name": "r"}}"#), r#""rules" must be a list of rules, got an object"#);
        assert_eq!(shape("7"), r#"the rule set is {"rules": [ … ]}, got a number"#);
        assert!(shape(r#"{"rules": [], "rules": []}"#).contains("duplicate field `rules`"));
        assert_eq!(problems(r#"{"rules": []}"#)[0].field, "rules");
        let msg = RuleSet::from_json(r#"{"rules":[{"name":"r","semver":true,"tags":["{x}"]}]}"#).unwrap_err().to_string();
        assert!(msg.starts_with("the rule set has 1 problem:\n  - rule \"r\", field `tags[0]`:"), "{msg}");
    }

    #[test]
    fn a_misnamed_field_is_reported_under_its_own_name_with_the_likely_one() {
        let p = one_rule_problem(r#"{"name": "r", "semver": true, "tag": ["x"]}"#);
        assert_eq!((p.field.as_str(), p.problem.split(" (the fields").next()), ("tag", Some("is not a rule field; did you mean `tags`?")));
        let p = problems(r#"{"rules": [{"name": "r", "semver": true, "prerelase": true, "tags": ["x"]}]}"#);
        assert!(p.iter().any(|p| p.field == "prerelase" && p.problem.contains("did you mean `prerelease`?")), "{p:?}");
        let p = one_rule_problem(r#"{"name": "r", "semver": true, "colour": "red", "tags": ["x"]}"#);
        assert!(!p.problem.contains("did you mean"), "no likely one: {p:?}");
        let p = one_rule_problem(r#"{"name": "r", "semver": "yes", "tags": ["x"]}"#);
        assert_eq!((p.field.as_str(), p.problem.starts_with("invalid type: string \"yes\", expected a boolean")), ("semver", true), "{p:?}");
        let p = one_rule_problem(r#"{"name": "r", "semver": true, "tags": ["x", 2]}"#);
        assert_eq!(p.field, "tags[1]", "{p:?}");
        let p = one_rule_problem(r#""just a string""#);
        assert_eq!((p.field.as_str(), p.problem.ends_with("got a string")), ("(rule)", true), "{p:?}");
    }

    #[test]
    fn a_promoting_rule_names_its_target_and_never_applies_inside_its_shape() {
        let rules = RuleSet::from_json(
            r#"{"rules":[{"name":"promote","semver":true,"to":"prod/{repository}","tags":["{tag}","stable"]}]}"#,
        )
        .unwrap();
        let d = digest();
        let to = |repository: &str, tag: &str| {
            let tag = Tag::parse(tag).unwrap();
            let subject = Subject { repository, tag: &tag, digest: &d, pushed_at: DateTime::<Utc>::UNIX_EPOCH, repository_tags: None, artifact: false };
            rules.derive(&subject).into_iter().map(|x| (x.result.map(|t| t.to_string()).unwrap_or_default(), x.to.map(|r| r.to_string()))).collect::<Vec<_>>()
        };
        let prod = Some("prod/team/api".to_owned());
        assert_eq!(to("team/api", "v1.2.3"), [("v1.2.3".to_owned(), prod.clone()), ("stable".to_owned(), prod)]);
        assert!(to("prod/team/api", "v1.2.3").is_empty(), "the target's own push events promote nothing");
        assert!(to("prod/api", "v1.2.3").is_empty());
        assert_eq!(to("production/api", "v1.2.3").len(), 2, "the shape is prod/**, not a prefix of the name");

        let swapped = RuleSet::from_json(r#"{"rules":[{"name":"p","semver":true,"repositories":["dev/**"],"to":"prod/{repository:1}","tags":["{tag}"]}]}"#).unwrap();
        let tag = Tag::parse("v1.0.0").unwrap();
        let to = |repository: &str| {
            let subject = Subject { repository, tag: &tag, digest: &d, pushed_at: DateTime::<Utc>::UNIX_EPOCH, repository_tags: None, artifact: false };
            swapped.derive(&subject).into_iter().map(|x| x.to.map(|r| r.to_string()).ok_or_else(|| x.result.unwrap_err().reason)).collect::<Vec<_>>()
        };
        assert_eq!(to("dev/team/api"), [Ok("prod/team/api".to_owned())], "dev/… becomes prod/…");
        assert!(to("dev").is_empty(), "dev/** needs a segment after dev");

        let uppercase = RuleSet::from_json(r#"{"rules":[{"name":"p","match":"(?<env>[A-Z]+)-.*","to":"{env}-app","tags":["x"]}]}"#).unwrap();
        let tag = Tag::parse("QA-1").unwrap();
        let subject = Subject { repository: "app", tag: &tag, digest: &d, pushed_at: DateTime::<Utc>::UNIX_EPOCH, repository_tags: None, artifact: false };
        let derived = uppercase.derive(&subject);
        let reason = &derived[0].result.as_ref().unwrap_err().reason;
        assert!(reason.starts_with("repository template `{env}-app` rendered \"QA-app\""), "{reason}");
        assert_eq!(derived[0].to, None);
    }

    #[test]
    fn a_target_template_that_could_never_name_another_repository_is_refused() {
        let cases = [
            (r#"{"name":"r","semver":true,"to":"Prod/{repository}","tags":["x"]}"#, "to", "'P'"),
            (r#"{"name":"r","semver":true,"to":"{repository}","tags":["x"]}"#, "to", "no fixed text"),
            (r#"{"name":"r","semver":true,"to":"prod/*","tags":["x"]}"#, "to", "'*'"),
            (r#"{"name":"r","semver":true,"to":"prod/{sha}","tags":["x"]}"#, "to", "unknown placeholder"),
            (r#"{"name":"r","semver":true,"to":"prod/{repository}","remove_source":true,"tags":["x"]}"#, "remove_source", "\"to\""),
            (r#"{"name":"r","semver":true,"copy_blobs":true,"tags":["x"]}"#, "copy_blobs", "only to rules with \"to\""),
        ];
        for (rule, field, text) in cases {
            let p = one_rule_problem(rule);
            assert_eq!(p.field, field, "{rule}: {p}");
            assert!(p.problem.contains(text), "{rule}: {p}");
        }
    }

    #[test]
    fn a_regex_error_shows_the_pattern_as_written() {
        let p = one_rule_problem(r#"{"name": "r", "match": "v(1", "tags": ["x"]}"#);
        assert_eq!(p.field, "match");
        assert!(p.problem.contains("v(1") && !p.problem.contains("^(?:"), "{p:?}");
    }
}
