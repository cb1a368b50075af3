//! ECR lifecycle policies, read for what they would do to an image that holds promoted
//! tags (`ecr-retag doctor`).
//!
//! ECR's evaluation: rules are applied lowest `rulePriority` first, and the first rule whose
//! tag selection an image meets decides it; rules of lower priority never expire it. A
//! `tagged` selection is met when each of its patterns (or prefixes) matches one of the
//! image's tags. Adding a tag does not reset an image's age, so a promoted image still
//! expires by `sinceImagePushed` unless a rule of higher priority claims its tags first.

use serde::Deserialize;

use crate::mutability::wildcard_match;

/// A policy's rules, highest priority (lowest number) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub priority: u32,
    pub selection: Selection,
    /// Selects archived images (`"storageClass": "archive"`) rather than standard ones.
    pub archived_only: bool,
    pub count: Count,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Any,
    Untagged,
    /// `tagPatternList` (wildcards) or `tagPrefixList`: every entry must match one of the image's tags.
    Tagged(Vec<Pattern>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Wildcard(String),
    Prefix(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Keeps the newest N the rule selects.
    MoreThan(u32),
    SincePushed(u32),
    SincePulled(u32),
    SinceArchived(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Expire,
    Archive,
}

/// What the first rule that reaches an image would do to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// No rule selects it: it stays.
    Kept,
    /// A count rule claims it: it stays while it is among the newest N.
    KeptWhileNewest { priority: u32, count: u32, action: Action },
    /// An age rule claims it: it goes once old enough, whatever tags it holds.
    Aged { priority: u32, count: Count, action: Action },
}

impl Pattern {
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            Pattern::Wildcard(p) => wildcard_match(p.as_bytes(), tag.as_bytes()),
            Pattern::Prefix(p) => tag.starts_with(p.as_str()),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Wildcard(p) => write!(f, "`{p}`"),
            Pattern::Prefix(p) => write!(f, "`{p}…`"),
        }
    }
}

impl Rule {
    /// Whether the rule's tag selection reaches a standard image with these tags.
    fn selects(&self, tags: &[&str]) -> bool {
        if self.archived_only {
            return false;
        }
        match &self.selection {
            Selection::Any => true,
            Selection::Untagged => tags.is_empty(),
            Selection::Tagged(patterns) => patterns.iter().all(|p| tags.iter().any(|t| p.matches(t))),
        }
    }

    /// The rule in a sentence: `rule 2 (tagged `v*`, expire after 30 days since pushed)`.
    pub fn describe(&self) -> String {
        let selection = match &self.selection {
            Selection::Any => "any image".to_owned(),
            Selection::Untagged => "untagged images".to_owned(),
            Selection::Tagged(p) => format!("images tagged {}", p.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ")),
        };
        let action = match self.action {
            Action::Expire => "expires",
            Action::Archive => "archives",
        };
        let when = match self.count {
            Count::MoreThan(n) => format!("all but the newest {n}"),
            Count::SincePushed(d) => format!("those pushed more than {d} days ago"),
            Count::SincePulled(d) => format!("those not pulled for {d} days"),
            Count::SinceArchived(d) => format!("those archived more than {d} days ago"),
        };
        format!("lifecycle rule {} ({selection}) {action} {when}", self.priority)
    }
}

impl Policy {
    /// Parses `lifecyclePolicyText` as GetLifecyclePolicy returns it; an error names what it could not read.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let wire: WirePolicy = serde_json::from_str(text).map_err(|e| format!("the lifecycle policy is not readable JSON: {e}"))?;
        let mut rules = wire.rules.into_iter().map(Rule::try_from).collect::<Result<Vec<_>, _>>()?;
        rules.sort_by_key(|r| r.priority);
        Ok(Policy { rules })
    }

    /// The fate of a standard (not archived) image holding `tags`, and the rule deciding it.
    pub fn fate(&self, tags: &[&str]) -> (Fate, Option<&Rule>) {
        let Some(rule) = self.rules.iter().find(|r| r.selects(tags)) else { return (Fate::Kept, None) };
        let fate = match rule.count {
            Count::MoreThan(count) => Fate::KeptWhileNewest { priority: rule.priority, count, action: rule.action },
            count => Fate::Aged { priority: rule.priority, count, action: rule.action },
        };
        (fate, Some(rule))
    }
}

#[derive(Deserialize)]
struct WirePolicy {
    #[serde(default)]
    rules: Vec<WireRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRule {
    rule_priority: u32,
    selection: WireSelection,
    action: WireAction,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSelection {
    tag_status: String,
    #[serde(default)]
    tag_pattern_list: Vec<String>,
    #[serde(default)]
    tag_prefix_list: Vec<String>,
    #[serde(default)]
    storage_class: Option<String>,
    count_type: String,
    count_number: u32,
}

#[derive(Deserialize)]
struct WireAction {
    #[serde(rename = "type")]
    kind: String,
}

impl TryFrom<WireRule> for Rule {
    type Error = String;

    fn try_from(w: WireRule) -> Result<Rule, String> {
        let s = w.selection;
        let selection = match s.tag_status.as_str() {
            "any" => Selection::Any,
            "untagged" => Selection::Untagged,
            "tagged" => Selection::Tagged(
                s.tag_pattern_list.into_iter().map(Pattern::Wildcard).chain(s.tag_prefix_list.into_iter().map(Pattern::Prefix)).collect(),
            ),
            other => return Err(format!("lifecycle rule {}: unknown tagStatus {other:?}", w.rule_priority)),
        };
        let n = s.count_number;
        let count = match s.count_type.as_str() {
            "imageCountMoreThan" => Count::MoreThan(n),
            "sinceImagePushed" => Count::SincePushed(n),
            "sinceImagePulled" => Count::SincePulled(n),
            "sinceImageTransitioned" => Count::SinceArchived(n),
            other => return Err(format!("lifecycle rule {}: unknown countType {other:?}", w.rule_priority)),
        };
        let action = match w.action.kind.as_str() {
            "expire" => Action::Expire,
            "transition" => Action::Archive,
            other => return Err(format!("lifecycle rule {}: unknown action {other:?}", w.rule_priority)),
        };
        let archived_only = s.storage_class.is_some_and(|c| c.eq_ignore_ascii_case("archive"));
        Ok(Rule { priority: w.rule_priority, selection, archived_only, count, action })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &str) -> Policy {
        Policy::parse(&format!(r#"{{"rules": [{rules}]}}"#)).unwrap()
    }

    const OLD_RELEASES: &str = r#"{"rulePriority": 5, "selection": {"tagStatus": "tagged", "tagPatternList": ["v*"],
        "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}"#;

    #[test]
    fn the_first_rule_whose_tags_an_image_meets_decides_it() {
        let p = policy(OLD_RELEASES);
        // The image holding `stable` also holds the version it was pushed as: `v*` reaches it.
        let (fate, rule) = p.fate(&["v1.4.2", "stable"]);
        assert_eq!(fate, Fate::Aged { priority: 5, count: Count::SincePushed(30), action: Action::Expire });
        assert_eq!(rule.unwrap().describe(), "lifecycle rule 5 (images tagged `v*`) expires those pushed more than 30 days ago");
        assert_eq!(p.fate(&["nightly-3"]).0, Fate::Kept, "no pattern matches");
        assert_eq!(p.fate(&[]).0, Fate::Kept, "a tagged selection never reaches an untagged image");

        // A rule of higher priority that claims `stable` keeps it from the age rule.
        let keep = r#"{"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["stable"],
            "countType": "imageCountMoreThan", "countNumber": 9999}, "action": {"type": "expire"}}"#;
        let p = policy(&format!("{OLD_RELEASES}, {keep}"));
        assert_eq!(p.fate(&["v1.4.2", "stable"]).0, Fate::KeptWhileNewest { priority: 1, count: 9999, action: Action::Expire });
        assert_eq!(p.fate(&["v1.4.1"]).0, Fate::Aged { priority: 5, count: Count::SincePushed(30), action: Action::Expire });
    }

    #[test]
    fn every_pattern_of_a_rule_must_match_one_of_the_tags() {
        let p = policy(
            r#"{"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["v", "release-"],
            "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90}, "action": {"type": "transition", "targetStorageClass": "archive"}}"#,
        );
        assert_eq!(p.fate(&["v1.4.2"]).0, Fate::Kept);
        assert_eq!(p.fate(&["v1.4.2", "release-7"]).0, Fate::Aged { priority: 1, count: Count::SincePulled(90), action: Action::Archive });
    }

    #[test]
    fn rules_for_archived_images_and_untagged_ones_leave_a_tagged_standard_image_alone() {
        let p = policy(
            r#"{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}},
               {"rulePriority": 2, "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 180}, "action": {"type": "expire"}}"#,
        );
        assert_eq!(p.fate(&["stable"]).0, Fate::Kept);
        assert!(matches!(p.fate(&[]).0, Fate::Aged { priority: 1, .. }));
    }

    #[test]
    fn a_policy_that_cannot_be_read_says_what_it_could_not_read() {
        assert!(Policy::parse("{").unwrap_err().starts_with("the lifecycle policy is not readable JSON"));
        let odd = r#"{"rules": [{"rulePriority": 3, "selection": {"tagStatus": "tagged", "countType": "sinceForever", "countNumber": 1}, "action": {"type": "expire"}}]}"#;
        assert_eq!(Policy::parse(odd).unwrap_err(), "lifecycle rule 3: unknown countType \"sinceForever\"");
    }
}
