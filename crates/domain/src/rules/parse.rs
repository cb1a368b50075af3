//! The configuration contract: a rule set's JSON, validated whole. Every
//! problem names its rule and field, with what would be accepted; a rule set
//! with any problem is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::glob::Glob;
use super::template::{Scope, Template};
use super::{Matcher, Policy, Promotion, Rule, RuleSet};
use crate::scan::Severity;
use crate::signature::{Kind, Kinds};

/// Why a rule set was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("the rule set is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON, but not `{"rules": [ … ]}`.
    #[error("{0}")]
    Shape(String),
    #[error("{}", Problems(.0))]
    Invalid(Vec<RuleProblem>),
}

/// One problem in one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// The rule's name, or its position when it has none.
    pub rule: String,
    pub field: String,
    pub problem: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, field `{}`: {}", self.rule, self.field, self.problem)
    }
}

struct Problems<'a>(&'a [RuleProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "the rule set has {n} problem{}:", if n == 1 { "" } else { "s" })?;
        for p in self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleSet {
    rules: Vec<Value>,
}

/// The fields a rule may have, as [`RawRule`] names them.
const RULE_FIELDS: [&str; 15] = [
    "name",
    "repositories",
    "match",
    "semver",
    "prerelease",
    "tags",
    "move",
    "when",
    "remove_source",
    "repository_tags",
    "artifacts",
    "restore_archived",
    "to",
    "copy_blobs",
    "record",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    repositories: Option<Vec<String>>,
    #[serde(rename = "match")]
    pattern: Option<String>,
    semver: Option<bool>,
    prerelease: Option<bool>,
    tags: Option<Vec<String>>,
    #[serde(rename = "move")]
    movement: Option<String>,
    when: Option<Value>,
    remove_source: Option<bool>,
    artifacts: Option<bool>,
    restore_archived: Option<bool>,
    repository_tags: Option<BTreeMap<String, String>>,
    to: Option<String>,
    copy_blobs: Option<bool>,
    record: Option<bool>,
}

impl RuleSet {
    /// Parses and validates a rule set; see docs/rules.md.
    pub fn from_json(text: &str) -> Result<Self, RulesError> {
        let raw: RawRuleSet = serde_json::from_str(text).map_err(|e| shape_error(text, e))?;
        let mut problems = Vec::new();
        if raw.rules.is_empty() {
            problems.push(RuleProblem {
                rule: "the rule set".into(),
                field: "rules".into(),
                problem: "is empty; at least one rule is needed".into(),
            });
        }
        let mut rules = Vec::with_capacity(raw.rules.len());
        let mut names = BTreeSet::new();
        for (index, value) in raw.rules.into_iter().enumerate() {
            let label = rule_label(index, &value);
            let mut problem = |field: &str, text: String| {
                problems.push(RuleProblem { rule: label.clone(), field: field.into(), problem: text });
            };
            let Some(fields) = value.as_object() else {
                problem("(rule)", format!("must be an object like {{\"name\": …, \"tags\": […]}}, got {}", kind(&value)));
                continue;
            };
            let unknown: Vec<String> = fields.keys().filter(|k| !RULE_FIELDS.contains(&k.as_str())).cloned().collect();
            for field in &unknown {
                let hint = closest(field, &RULE_FIELDS).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default();
                problem(field, format!("is not a rule field{hint} (the fields: {})", RULE_FIELDS.join(", ")));
            }
            if !unknown.is_empty() {
                continue;
            }
            let raw: RawRule = match serde_path_to_error::deserialize(value) {
                Ok(r) => r,
                Err(e) => {
                    problem(&e.path().to_string(), e.into_inner().to_string());
                    continue;
                }
            };
            if let Some(name) = &raw.name {
                if !names.insert(name.clone()) {
                    problem("name", "is used by an earlier rule; names must be unique".into());
                }
            }
            if let Some(rule) = compile(raw, &mut problem) {
                rules.push(rule);
            }
        }
        if problems.is_empty() {
            Ok(Self { rules, digest: crate::record::sha256(text.as_bytes()) })
        } else {
            Err(RulesError::Invalid(problems))
        }
    }
}

/// `"to": "prod/{repository}"`: a template over the tag templates' placeholders whose fixed text
/// can be part of a repository name, and whose shape (`prod/**`) is where the rule never applies.
fn promotion(source: &str, scope: &Scope<'_>) -> Result<Promotion, String> {
    let template = Template::parse(source, scope).map_err(|e| e.to_string())?;
    let shape = template.repository_glob().map_err(|e| e.to_string())?;
    if shape.source() == "**" {
        return Err("has no fixed text, so it could name any repository, this one too; write e.g. \"prod/{repository}\"".into());
    }
    Ok(Promotion { template, shape })
}

/// `"when": {"scan": "MEDIUM", "signed": true}`: the conditions, each optional, at least one.
fn conditions(when: &Value) -> Result<(Option<Severity>, Option<Kinds>), String> {
    let object = when
        .as_object()
        .ok_or_else(|| format!("must be an object like {{\"scan\": \"MEDIUM\"}} or {{\"signed\": true}}, got {when}"))?;
    if let Some(other) = object.keys().find(|k| *k != "scan" && *k != "signed") {
        return Err(format!("unknown condition {other:?}; the conditions are \"scan\" and \"signed\""));
    }
    if object.is_empty() {
        return Err("is empty; give {\"scan\": SEVERITY}, {\"signed\": true}, or both".into());
    }
    let scan = object.get("scan").map(scan_gate).transpose()?;
    let signed = object.get("signed").map(signed_gate).transpose()?;
    Ok((scan, signed))
}

/// `"scan": "MEDIUM"`: the highest severity still allowed.
fn scan_gate(value: &Value) -> Result<Severity, String> {
    let names = Severity::ALL.map(Severity::as_str).join(", ");
    match value {
        Value::String(s) => Severity::parse(s)
            .ok_or_else(|| format!("scan severity {s:?} is not one of {names} (the highest severity still allowed)")),
        other => Err(format!("scan must be one of {names}, got {other}")),
    }
}

/// `"signed": true` (any signature pushed with the image), or the kinds that count.
fn signed_gate(value: &Value) -> Result<Kinds, String> {
    let names = Kind::ALL.map(Kind::as_str).join(", ");
    let kinds = match value {
        Value::Bool(true) => return Ok(Kinds::DEFAULT),
        Value::Bool(false) => return Err("signed is false: leave the condition out instead".into()),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| {
                item.as_str()
                    .and_then(Kind::parse)
                    .ok_or_else(|| format!("signed lists {item}, which is not one of {names}"))
            })
            .collect::<Result<Vec<Kind>, String>>()?,
        other => return Err(format!("signed must be true or a non-empty list of {names}, got {other}")),
    };
    Ok(Kinds::of(kinds))
}

/// Why valid JSON is not a rule set, said the way a person fixes it; the JSON
/// error itself when the text is not JSON at all.
fn shape_error(text: &str, error: serde_json::Error) -> RulesError {
    let Ok(value) = serde_json::from_str::<Value>(text) else { return RulesError::Json(error) };
    const SHAPE: &str = "{\"rules\": [ … ]}";
    RulesError::Shape(match &value {
        Value::Object(fields) => match fields.keys().find(|k| *k != "rules") {
            Some(other) => {
                let hint = closest(other, &["rules"]).map(|c| format!(" (did you mean {c:?}?)")).unwrap_or_default();
                format!("the rule set has an unknown field {other:?}{hint}: it is {SHAPE}")
            }
            None => match fields.get("rules") {
                None => format!("the rule set has no \"rules\": it is {SHAPE}"),
                Some(rules) if !rules.is_array() => format!("\"rules\" must be a list of rules, got {}", kind(rules)),
                // Shaped right; what serde refused (a duplicate key, say) is the message.
                Some(_) => format!("the rule set is not {SHAPE}: {error}"),
            },
        },
        Value::Array(_) => format!("the rule set is {SHAPE}, not a list: put the list of rules under \"rules\""),
        other => format!("the rule set is {SHAPE}, got {}", kind(other)),
    })
}

/// A JSON value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The known name a typo most likely meant: within two edits, or one that starts with it.
fn closest<'k>(typo: &str, known: &[&'k str]) -> Option<&'k str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let here = row[j + 1];
                row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(here + 1);
                previous = here;
            }
        }
        row[b.len()]
    };
    let typo = typo.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (distance(&typo, k), *k))
        .filter(|(d, k)| *d <= 2 || (typo.len() >= 3 && k.starts_with(typo.as_str())))
        .min()
        .map(|(_, k)| k)
}

fn rule_label(index: usize, value: &Value) -> String {
    match value.get("name").and_then(Value::as_str) {
        Some(name) => format!("rule {name:?}"),
        None => format!("rule #{} (unnamed)", index + 1),
    }
}

/// Checks one rule, reporting every problem found; `None` if there was any.
fn compile(raw: RawRule, problem: &mut impl FnMut(&str, String)) -> Option<Rule> {
    let mut ok = true;
    let mut fail = |field: &str, text: String| {
        ok = false;
        problem(field, text);
    };
    let name = match raw.name {
        Some(n) if !n.trim().is_empty() => n,
        Some(_) => {
            fail("name", "is empty".into());
            String::new()
        }
        None => {
            fail("name", "is required".into());
            String::new()
        }
    };
    let repositories = raw.repositories.map(|globs| {
        if globs.is_empty() {
            fail("repositories", "is an empty list, so the rule could never apply; omit it to mean every repository".into());
        }
        globs
            .iter()
            .enumerate()
            .filter_map(|(i, g)| Glob::parse(g).map_err(|e| fail(&format!("repositories[{i}]"), format!("{g:?} {e}"))).ok())
            .collect::<Vec<_>>()
    });
    if raw.prerelease.is_some() && raw.semver != Some(true) {
        fail("prerelease", "applies only to rules with \"semver\": true".into());
    }
    let matcher = match (raw.pattern, raw.semver.unwrap_or(false)) {
        (Some(_), true) => {
            fail("match", "and \"semver\": true are exclusive; use one of them".into());
            None
        }
        (None, false) => {
            fail("match", "is required unless the rule has \"semver\": true".into());
            None
        }
        (None, true) => Some(Matcher::Semver { prerelease: raw.prerelease.unwrap_or(false) }),
        // The user's own pattern first, so that an error shows what they wrote, not the anchoring.
        (Some(p), false) => match Regex::new(&p).and_then(|_| Regex::new(&format!("^(?:{p})$"))) {
            Ok(re) => Some(Matcher::Regex(re)),
            Err(e) => {
                fail("match", format!("is not a valid regex: {e}"));
                None
            }
        },
    };
    let scope = matcher.as_ref().map(|m| match m {
        Matcher::Regex(re) => Scope::Regex(re),
        Matcher::Semver { .. } => Scope::Semver,
    });
    let tags = match raw.tags {
        None => {
            fail("tags", "is required: the list of tag templates to write".into());
            Vec::new()
        }
        Some(t) if t.is_empty() => {
            fail("tags", "is empty; list at least one tag template".into());
            Vec::new()
        }
        Some(sources) => match &scope {
            // Without a valid matcher the placeholders cannot be checked.
            None => Vec::new(),
            Some(scope) => {
                sources
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        Template::parse(s, scope).map_err(|e| fail(&format!("tags[{i}]"), format!("{s:?} {e}"))).ok()
                    })
                    .collect()
            }
        },
    };
    let is_semver = matches!(matcher, Some(Matcher::Semver { .. }));
    let if_newer = match raw.movement.as_deref() {
        None | Some("always") => false,
        Some("if-newer") if is_semver || matcher.is_none() => true,
        Some("if-newer") => {
            fail("move", "\"if-newer\" needs \"semver\": true: versions are compared by SemVer precedence".into());
            false
        }
        Some(other) => {
            fail("move", format!("{other:?} is not a choice; use \"always\" (the default) or \"if-newer\""));
            false
        }
    };
    let (scan_gate, signed) = raw.when.and_then(|when| conditions(&when).map_err(|e| fail("when", e)).ok()).unwrap_or_default();
    let repository_tags = raw.repository_tags.unwrap_or_default();
    if let Some((key, _)) = repository_tags.iter().find(|(k, _)| k.is_empty() || k.chars().count() > 128) {
        fail("repository_tags", format!("key {key:?} is not a resource tag key (1 to 128 characters)"));
    }
    let to = match (raw.to.as_deref(), &scope) {
        (Some(source), Some(scope)) => promotion(source, scope).map_err(|e| fail("to", format!("{source:?} {e}"))).ok(),
        _ => None,
    };
    if raw.copy_blobs.is_some() && raw.to.is_none() {
        fail("copy_blobs", "applies only to rules with \"to\": it says how a promotion copies what it cannot mount".into());
    }
    if to.is_some() && raw.remove_source == Some(true) {
        fail("remove_source", "cannot be combined with \"to\" yet: the pushed tag stays in its repository; remove it with a rule of its own or a lifecycle policy".into());
    }
    let policy = Policy {
        if_newer,
        scan_gate,
        signed,
        remove_source: raw.remove_source.unwrap_or(false),
        artifacts: raw.artifacts.unwrap_or(false),
        restore_archived: raw.restore_archived.unwrap_or(false),
        promotes: to.is_some(),
        copy_blobs: raw.copy_blobs.unwrap_or(false),
        record: raw.record.unwrap_or(false),
    };
    match (ok, matcher) {
        (true, Some(matcher)) => Some(Rule { name, repositories, repository_tags, matcher, tags, policy, to }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::RuleSet;

    #[test]
    fn a_misspelt_field_is_named_with_the_closest_one_and_a_far_one_with_none() {
        let error = |field: &str| {
            let json = format!(r#"{{"rules":[{{"name":"r","semver":true,"tags":["t"],"{field}":true}}]}}"#);
            RuleSet::from_json(&json).map(|_| ()).unwrap_err().to_string()
        };
        assert!(error("tgas").contains("did you mean `tags`?"), "{}", error("tgas"));
        assert!(error("repo").contains("did you mean `repositories`?"), "a prefix of three or more: {}", error("repo"));
        assert!(!error("xyzw").contains("did you mean"), "{}", error("xyzw"));
        assert!(!error("re").contains("did you mean `repositories`"), "a prefix of two is too short: {}", error("re"));
    }

    #[test]
    fn a_resource_tag_key_may_have_128_characters_and_not_129() {
        let rules = |key: &str| {
            RuleSet::from_json(&format!(r#"{{"rules":[{{"name":"r","semver":true,"tags":["t"],"repository_tags":{{"{key}":"v"}}}}]}}"#))
        };
        assert!(rules(&"k".repeat(128)).is_ok());
        assert!(rules(&"k".repeat(129)).is_err());
        assert!(rules("").is_err());
    }
}
