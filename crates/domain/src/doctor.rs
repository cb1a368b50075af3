//! What in a repository's settings would defeat the rules that cover it (`ecr-retag doctor`),
//! decided from what the registry says of it ([`Facts`]), one [`Finding`] per problem with
//! the change that would mend it.
//!
//! The rules are tried on their own example pushes ([`RuleSet::examples`]) in the real
//! repository, so every finding is about a tag the rules would really write there.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::lifecycle::{self, Action, Count, Fate};
use crate::mutability::{template_of, wildcard_match, Moving, TagMutability};
use crate::names::{Digest, RepositoryName, Tag, MAX_TAGS_PER_IMAGE};
use crate::rules::{Derived, RuleSet, Subject};

/// Images with this many tags are reported: few promotions are left before ECR's 1,000.
pub const CROWDED: usize = 900;

/// What to do about a setting that could not be read.
pub const UNCHECKED_FIX: &str = "grant the doctor's read permissions (examples/doctor-policy.json) and run it again";

/// How the registry scans a repository (BatchGetRepositoryScanningConfiguration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    ScanOnPush,
    Continuous,
    /// Only when somebody starts a scan (basic), or never (enhanced).
    Manual,
}

/// The registry's scan type (GetRegistryScanningConfiguration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanType {
    Basic,
    Enhanced,
}

/// What the registry says of one repository, each part `Err` with the reason it could not be read.
#[derive(Debug, Clone)]
pub struct Facts {
    pub repository: String,
    pub mutability: Result<TagMutability, String>,
    pub scanning: Result<(ScanType, Frequency), String>,
    pub resource_tags: Result<BTreeMap<String, String>, String>,
    /// `Ok(None)`: the repository has no lifecycle policy.
    pub lifecycle: Result<Option<String>, String>,
    /// The pull-through cache rule prefix the repository is under, if any.
    pub pull_through: Option<String>,
    /// Images holding [`CROWDED`] tags or more: digest and tag count.
    pub crowded: Result<Vec<(String, usize)>, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A rule will not work as written here: exit 1.
    Defeats,
    /// Doctor could not check something: it cannot vouch for the repository (exit 1 too).
    Unchecked,
    /// It works now and may not later.
    Warns,
    /// Worth knowing; nothing is defeated.
    Notes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub repository: String,
    pub level: Level,
    pub what: String,
    /// What to change.
    pub fix: String,
}

impl Finding {
    pub fn fails(&self) -> bool {
        matches!(self.level, Level::Defeats | Level::Unchecked)
    }
}

/// One example image the rules would tag here: the tag it was pushed with, and what they add.
struct Promoted {
    pushed: String,
    /// The pushed tag is in the repository examined (not so in a promotion's target).
    pushed_here: bool,
    derived: Vec<Promotion>,
}

struct Promotion {
    tag: String,
    /// The template's shape when the tag moves from image to image (`stable`, `v*.*`).
    moving: Option<Moving>,
}

/// Findings about one repository, as they are found.
struct Findings<'a> {
    repository: &'a str,
    found: Vec<Finding>,
}

impl Findings<'_> {
    fn add(&mut self, level: Level, what: String, fix: String) {
        self.found.push(Finding { repository: self.repository.to_owned(), level, what, fix });
    }

    fn unchecked(&mut self, what: &str, why: &str) {
        self.add(Level::Unchecked, format!("could not read its {what}: {why}"), UNCHECKED_FIX.to_owned());
    }
}

/// The findings for one repository the rules cover.
pub fn examine(rules: &RuleSet, facts: &Facts, now: DateTime<Utc>) -> Vec<Finding> {
    let mut out = Findings { repository: &facts.repository, found: Vec::new() };
    let have = facts.resource_tags.as_ref().ok();
    let promoted = promoted(rules, &facts.repository, have, now, None);
    resource_tags(rules, facts, &mut out);
    if let Some(prefix) = &facts.pull_through {
        out.add(
            Level::Defeats,
            format!("it is a pull-through cache repository (prefix `{prefix}/`): the upstream sync overwrites its tags at least every 24 hours"),
            "leave it out of the rules' `repositories`, and promote the images in a repository of your own".to_owned(),
        );
    }
    mutability_of(&facts.mutability, &promoted, &mut out);
    scanning(rules, facts, &mut out);
    lifecycle_of(&facts.lifecycle, &promoted, &mut out);
    match &facts.crowded {
        Ok(crowded) => {
            for (digest, count) in crowded {
                let (level, what) = if *count >= MAX_TAGS_PER_IMAGE {
                    (Level::Defeats, format!("image {digest} holds {count} tags, ECR's maximum: no promoted tag can be added to it"))
                } else {
                    (Level::Warns, format!("image {digest} holds {count} of ECR's {MAX_TAGS_PER_IMAGE} tags per image"))
                };
                let fix = format!("remove tags it no longer needs: aws ecr batch-delete-image --repository-name {} --image-ids imageTag=…", facts.repository);
                out.add(level, what, fix);
            }
        }
        Err(why) => out.unchecked("images", why),
    }
    out.found
}

/// Rules that name the repository but whose resource tags it lacks.
fn resource_tags(rules: &RuleSet, facts: &Facts, out: &mut Findings<'_>) {
    let covering = rules.covering(&facts.repository);
    match &facts.resource_tags {
        Ok(have) => {
            for c in covering.iter().filter(|c| c.repository_tags.iter().any(|(k, v)| have.get(k) != Some(v))) {
                let wanted: Vec<String> = c.repository_tags.iter().map(|(k, v)| format!("Key={k},Value={v}")).collect();
                out.add(
                    Level::Notes,
                    format!("rule {:?} names it but does not apply: it lacks the resource tags {}", c.rule, wanted.join(" ")),
                    format!("if the rule should apply: aws ecr tag-resource --resource-arn <its ARN> --tags {}", wanted.join(" ")),
                );
            }
        }
        Err(why) if covering.iter().any(|c| !c.repository_tags.is_empty()) => out.unchecked("resource tags", why),
        Err(_) => {}
    }
}

/// The repository's tag mutability judged for the tags the rules write there, or why it could not be.
fn mutability_of(mutability: &Result<TagMutability, String>, promoted: &[Promoted], out: &mut Findings<'_>) {
    match mutability {
        Ok(mutability) => mutability_findings(mutability, promoted, out),
        Err(why) => out.unchecked("tag mutability", why),
    }
}

/// The repository's lifecycle policy judged for the images the rules tag there, or why it could not be.
fn lifecycle_of(lifecycle: &Result<Option<String>, String>, promoted: &[Promoted], out: &mut Findings<'_>) {
    match lifecycle {
        Ok(Some(text)) => match lifecycle::Policy::parse(text) {
            Ok(policy) => lifecycle_findings(&policy, promoted, out),
            Err(why) => out.add(Level::Unchecked, why, "check the policy with aws ecr get-lifecycle-policy".to_owned()),
        },
        Ok(None) => {}
        Err(why) => out.unchecked("lifecycle policy", why),
    }
}

/// Moving tags the repository keeps immutable, once per template.
fn mutability_findings(mutability: &TagMutability, promoted: &[Promoted], out: &mut Findings<'_>) {
    let mut seen: Vec<&Moving> = Vec::new();
    for (p, m) in promoted.iter().flat_map(|p| &p.derived).filter_map(|p| Some((p, p.moving.as_ref()?))) {
        if !mutability.is_immutable(&p.tag) || seen.contains(&m) {
            continue;
        }
        seen.push(m);
        let fix = mutability.moving_advice(out.repository, &p.tag, Some(m));
        out.add(
            Level::Defeats,
            format!("`{}` (rule {:?}, e.g. `{}`) moves from image to image, and the repository keeps it immutable: its second move conflicts", m.template, m.rule, p.tag),
            fix,
        );
    }
}

/// Inspector's rescan window (`EcrRescanDuration`: `DAYS_3`, `DAYS_7`, … `DAYS_180`, `LIFETIME`),
/// judged for the scan-gated rules: at a week or less, a gate decided later than that (a late
/// signature, the sweep healing a missed event) finds `SCAN_ELIGIBILITY_EXPIRED` and fails closed.
pub fn rescan_window(duration: &str, gated: &[&str]) -> Option<Finding> {
    let days: u32 = duration.strip_prefix("DAYS_")?.parse().ok()?;
    if days > 7 || gated.is_empty() {
        return None;
    }
    let rules = gated.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ");
    Some(Finding {
        repository: REGISTRY.to_owned(),
        level: Level::Warns,
        what: format!(
            "Amazon Inspector stops rescanning images {days} days after their push (rescanDuration {duration}): a tag of rule {rules} \
             decided later than that (a signature pushed later, the sweep healing a missed event) finds the scan status \
             SCAN_ELIGIBILITY_EXPIRED and is not written (fail closed)"
        ),
        fix: format!(
            "run the sweep more often than every {days} days (SweepSchedule), or lengthen the window: \
             aws inspector2 update-configuration --ecr-configuration rescanDuration=DAYS_30"
        ),
    })
}

/// Scan-gated rules in a repository where no scan starts on push.
fn scanning(rules: &RuleSet, facts: &Facts, out: &mut Findings<'_>) {
    let covering = rules.covering(&facts.repository);
    let gated: Vec<&str> = covering.iter().filter(|c| c.policy.scan_gate.is_some()).map(|c| c.rule).collect();
    if gated.is_empty() {
        return;
    }
    let names = gated.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ");
    match &facts.scanning {
        Ok((kind, Frequency::Manual)) => {
            let (frequency, kind_name) = match kind {
                ScanType::Basic => ("SCAN_ON_PUSH", "BASIC"),
                ScanType::Enhanced => ("CONTINUOUS_SCAN", "ENHANCED"),
            };
            out.add(
                Level::Defeats,
                format!("rule {names} waits for a scan, and no scan starts on push here ({kind_name} scanning, frequency MANUAL): its tags wait for ever"),
                format!(
                    "add a rule {{\"scanFrequency\": \"{frequency}\", \"repositoryFilters\": [{{\"filter\": \"{}\", \"filterType\": \"WILDCARD\"}}]}} \
                     with aws ecr put-registry-scanning-configuration --scan-type {kind_name} (it replaces the registry's rules: keep the others)",
                    facts.repository
                ),
            );
        }
        Ok(_) => {}
        Err(why) => out.unchecked("scanning configuration", why),
    }
}

/// Which scan events scan-gated rules wait for, given the registry's scan type: said once.
pub fn scan_events(kind: ScanType, gated: &[&str]) -> Finding {
    let (events, source) = match kind {
        ScanType::Basic => ("basic", "ECR's \"ECR Image Scan\" events"),
        ScanType::Enhanced => ("enhanced", "Amazon Inspector's \"Inspector2 Scan\" events (enhanced scanning)"),
    };
    let names = gated.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ");
    Finding {
        repository: REGISTRY.to_owned(),
        level: Level::Notes,
        what: format!("rule {names} waits for {source}"),
        fix: format!("deploy with ScanEvents={events} (or both)"),
    }
}

/// The name findings about the whole registry go under.
pub const REGISTRY: &str = "(registry)";

/// Each rule's example pushes in this repository (each tag once), with what the rules derive for them.
fn example_pushes<'r>(rules: &'r RuleSet, repo: &str, have: Option<&BTreeMap<String, String>>, now: DateTime<Utc>) -> Vec<(Tag, Vec<Derived<'r>>)> {
    let Ok(digest) = Digest::parse(&format!("sha256:{}", "0".repeat(64))) else { return Vec::new() };
    let mut out: Vec<(Tag, Vec<Derived<'r>>)> = Vec::new();
    for example in rules.examples() {
        for tag in example.tags {
            if out.iter().any(|(pushed, _)| *pushed == tag) {
                continue;
            }
            let subject = Subject { repository: repo, tag: &tag, digest: &digest, pushed_at: now, repository_tags: have, artifact: false };
            let derived = rules.derive(&subject);
            out.push((tag, derived));
        }
    }
    out
}

/// The repositories the rules promote into from `repo`, by rule, as its example pushes render them.
pub fn promotion_targets<'r>(
    rules: &'r RuleSet,
    repo: &str,
    have: Option<&BTreeMap<String, String>>,
    now: DateTime<Utc>,
) -> Vec<(&'r str, RepositoryName)> {
    let mut out: Vec<(&str, RepositoryName)> = Vec::new();
    for derived in example_pushes(rules, repo, have, now).into_iter().flat_map(|(_, derived)| derived) {
        if let Some(to) = derived.to {
            if !out.iter().any(|(r, t)| *r == derived.rule && *t == to) {
                out.push((derived.rule, to));
            }
        }
    }
    out
}

/// What the registry says of a promotion's target, each part `Err` with the reason it could not be read.
#[derive(Debug, Clone)]
pub struct TargetFacts {
    pub target: RepositoryName,
    pub mutability: Result<TagMutability, String>,
    /// `Ok(None)`: the target has no lifecycle policy.
    pub lifecycle: Result<Option<String>, String>,
}

/// The findings for a promotion's target, about the tags the rules promote into it from
/// `source`: a mutability that refuses a moving tag's second promotion, a lifecycle policy that
/// expires promoted images (its `sinceImagePushed` counts from the promotion, the image's push there).
pub fn examine_target(rules: &RuleSet, source: &str, facts: &TargetFacts, now: DateTime<Utc>) -> Vec<Finding> {
    let mut out = Findings { repository: facts.target.as_str(), found: Vec::new() };
    let promoted = promoted(rules, source, None, now, Some(&facts.target));
    mutability_of(&facts.mutability, &promoted, &mut out);
    lifecycle_of(&facts.lifecycle, &promoted, &mut out);
    out.found
}

/// Each rule's example pushes in `repo`, with the tags the rules derive for them there
/// (`into`: `None`), or in that promotion target.
fn promoted(
    rules: &RuleSet,
    repo: &str,
    have: Option<&BTreeMap<String, String>>,
    now: DateTime<Utc>,
    into: Option<&RepositoryName>,
) -> Vec<Promoted> {
    let moving = rules.moving_tags();
    // The template a moving tag came from: its rule's most specific shape that matches it.
    let template_of = |rule: &str, tag: &str| template_of(&moving, &[rule.to_owned()], tag).cloned();
    let mut out: Vec<Promoted> = Vec::new();
    for (tag, derived) in example_pushes(rules, repo, have, now) {
        let derived: Vec<Promotion> = derived
            .into_iter()
            // Each repository's settings judge the tags written there.
            .filter(|d| d.to.as_ref() == into)
            .filter_map(|d| {
                let t: Tag = d.result.ok()?;
                let moving = if d.moves { template_of(d.rule, t.as_str()) } else { None };
                Some(Promotion { tag: t.as_str().to_owned(), moving })
            })
            .filter(|p| into.is_some() || p.tag != tag.as_str())
            .collect();
        if !derived.is_empty() {
            out.push(Promoted { pushed: tag.as_str().to_owned(), pushed_here: into.is_none(), derived });
        }
    }
    out
}

fn lifecycle_findings(policy: &lifecycle::Policy, promoted: &[Promoted], out: &mut Findings<'_>) {
    // Per lifecycle rule: what it does, its fate, the moving templates it reaches, an example push.
    let mut reached: Vec<(&lifecycle::Rule, Fate, Vec<&Moving>, &str)> = Vec::new();
    for p in promoted {
        let mut tags: Vec<&str> = p.derived.iter().map(|d| d.tag.as_str()).collect();
        if p.pushed_here {
            tags.push(&p.pushed);
        }
        let (fate, Some(rule)) = policy.fate(&tags) else { continue };
        // A count rule chosen for one of the image's moving tags keeps the image while it holds
        // that tag; one that reached it by its other tags counts it among them.
        let claims_a_moving_tag = matches!(&rule.selection, lifecycle::Selection::Tagged(ps)
            if ps.iter().any(|x| p.derived.iter().any(|d| d.moving.is_some() && x.matches(&d.tag))));
        for m in p.derived.iter().filter_map(|d| d.moving.as_ref()) {
            let matters = match fate {
                Fate::Aged { .. } => true,
                Fate::KeptWhileNewest { .. } => !claims_a_moving_tag,
                Fate::Kept => false,
            };
            if !matters {
                continue;
            }
            match reached.iter_mut().find(|r| r.0.priority == rule.priority) {
                Some(r) if !r.2.contains(&m) => r.2.push(m),
                Some(_) => {}
                None => reached.push((rule, fate, vec![m], &p.pushed)),
            }
        }
    }
    let used: Vec<u32> = policy.rules.iter().map(|r| r.priority).collect();
    for (rule, fate, templates, pushed) in reached {
        let list = templates.iter().map(|m| format!("`{}`", m.template)).collect::<Vec<_>>().join(", ");
        let fix = keep_rules(rule.priority, &used, &templates, pushed);
        let described = rule.describe();
        match fate {
            Fate::Aged { count, action, .. } => {
                let verb = if action == Action::Archive { "archived (pulls of it fail)" } else { "expired, and the tag with it" };
                let pulled = if matches!(count, Count::SincePulled(_)) {
                    "; ECR counts ecr-retag's own manifest reads as pulls, so the images it reads look recently pulled \
                     (aws ecr register-pull-time-update-exclusion --principal-arn <its role> exempts it)"
                } else {
                    ""
                };
                out.add(
                    Level::Defeats,
                    format!("{described}, and reaches images holding {list} (e.g. one pushed as `{pushed}`): they will be {verb}{pulled}"),
                    fix,
                );
            }
            _ => out.add(
                Level::Warns,
                format!("{described}, and counts images holding {list} (e.g. one pushed as `{pushed}`) among them: they go once that many newer ones are pushed"),
                fix,
            ),
        }
    }
}

/// Rules ahead of `priority` that claim the images holding each moving tag, so that no later
/// rule expires them; or why a shape cannot be claimed without keeping every release too.
fn keep_rules(priority: u32, used: &[u32], templates: &[&Moving], pushed: &str) -> String {
    let (clashing, claimable): (Vec<&Moving>, Vec<&Moving>) =
        templates.iter().partition(|m| wildcard_match(m.shape.as_bytes(), pushed.as_bytes()));
    let mut parts = Vec::new();
    if !claimable.is_empty() {
        let free: Vec<u32> = (1..priority).rev().filter(|p| !used.contains(p)).take(claimable.len()).collect();
        if free.len() == claimable.len() {
            let rules: Vec<String> = claimable
                .iter()
                .zip(free.iter().rev())
                .map(|(m, p)| {
                    // One image holds `stable`; a shape such as `v*-latest` has one per series.
                    let count = if m.shape.contains('*') { 9999 } else { 1 };
                    format!(
                        "{{\"rulePriority\": {p}, \"selection\": {{\"tagStatus\": \"tagged\", \"tagPatternList\": [\"{}\"], \
                         \"countType\": \"imageCountMoreThan\", \"countNumber\": {count}}}, \"action\": {{\"type\": \"expire\"}}}}",
                        m.shape
                    )
                })
                .collect();
            parts.push(format!("add ahead of it a rule per moving tag that claims its images: {}", rules.join(", ")));
        } else {
            let list = claimable.iter().map(|m| format!("`{}`", m.shape)).collect::<Vec<_>>().join(", ");
            parts.push(format!("renumber the policy so that a rule per shape ({list}) comes before rule {priority} and claims its images"));
        }
    }
    for m in clashing {
        parts.push(format!(
            "`{}`'s shape `{}` also matches pushed tags such as `{pushed}`, so no lifecycle rule can claim it alone: \
             give it a shape of its own (e.g. `{}-latest`)",
            m.template, m.shape, m.template
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutability::{Filter, Mode};

    const RULES: &str = r#"{"rules": [
        {"name": "release", "semver": true, "tags": ["stable", "v{major}.{minor}"], "when": {"scan": "HIGH"}},
        {"name": "platform", "repositories": ["team/*"], "repository_tags": {"team": "platform"}, "match": "^main-[0-9]+$", "tags": ["edge"]}
    ]}"#;

    fn rules() -> RuleSet {
        RuleSet::from_json(RULES).unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    fn healthy(repository: &str) -> Facts {
        Facts {
            repository: repository.to_owned(),
            mutability: Ok(TagMutability { mode: Mode::Mutable, filters: Vec::new() }),
            scanning: Ok((ScanType::Basic, Frequency::ScanOnPush)),
            resource_tags: Ok(BTreeMap::from([("team".to_owned(), "platform".to_owned())])),
            lifecycle: Ok(None),
            pull_through: None,
            crowded: Ok(Vec::new()),
        }
    }

    #[test]
    fn unreadable_resource_tags_leave_a_repository_unchecked_only_where_a_rule_needs_them() {
        let unreadable = |repository: &str| Facts { resource_tags: Err("AccessDenied".to_owned()), ..healthy(repository) };
        let team = examine(&rules(), &unreadable("team/api"), now());
        let unchecked: Vec<&Finding> = team.iter().filter(|f| f.level == Level::Unchecked).collect();
        assert_eq!(unchecked.len(), 1, "{team:?}");
        assert!(unchecked[0].what.contains("resource tags") && unchecked[0].fails(), "{unchecked:?}");
        // `app` has no rule that asks for resource tags: not reading them checks nothing less.
        let app = examine(&rules(), &unreadable("app"), now());
        assert!(app.iter().all(|f| f.level != Level::Unchecked), "{app:?}");
        let note = Finding { repository: "app".into(), level: Level::Notes, what: String::new(), fix: String::new() };
        let warns = Finding { level: Level::Warns, ..note.clone() };
        let defeats = Finding { level: Level::Defeats, ..note.clone() };
        assert_eq!((note.fails(), warns.fails(), defeats.fails()), (false, false, true));
    }

    #[test]
    fn promotion_targets_are_each_rules_rendered_targets_once() {
        let rules = RuleSet::from_json(
            r#"{"rules":[
              {"name":"prod","semver":true,"to":"prod/{repository}","tags":["{tag}","stable"]},
              {"name":"mirror","semver":true,"to":"mirror/{repository}","tags":["v{major}"]},
              {"name":"prod-lines","semver":true,"to":"prod/{repository}","tags":["v{major}"]},
              {"name":"edge","semver":true,"tags":["edge"]}
            ]}"#,
        )
        .unwrap();
        let targets: Vec<(String, String)> = promotion_targets(&rules, "team/api", None, now()).into_iter().map(|(r, t)| (r.to_owned(), t.to_string())).collect();
        let pair = |r: &str, t: &str| (r.to_owned(), t.to_owned());
        assert_eq!(targets, [pair("prod", "prod/team/api"), pair("mirror", "mirror/team/api"), pair("prod-lines", "prod/team/api")], "each rule once, a shared target per rule");
        assert!(promotion_targets(&RuleSet::from_json(RULES).unwrap(), "team/api", None, now()).is_empty(), "no rule promotes");
    }

    #[test]
    fn a_target_that_keeps_promoted_moving_tags_immutable_or_expires_promoted_images_defeats_the_promotion() {
        let rules = RuleSet::from_json(
            r#"{"rules":[{"name":"prod","semver":true,"to":"prod/{repository}","tags":["{tag}","stable"]},{"name":"edge","semver":true,"tags":["edge"]}]}"#,
        )
        .unwrap();
        let target = RepositoryName::parse("prod/api").unwrap();
        let healthy = TargetFacts { target: target.clone(), mutability: Ok(TagMutability { mode: Mode::Mutable, filters: Vec::new() }), lifecycle: Ok(None) };
        assert_eq!(examine_target(&rules, "api", &healthy, now()), []);

        let immutable = TargetFacts { mutability: Ok(TagMutability { mode: Mode::Immutable, filters: Vec::new() }), ..healthy.clone() };
        let found = examine_target(&rules, "api", &immutable, now());
        assert_eq!(found.len(), 1, "`stable` only: the pushed tag is written once, and `edge` is not the target's: {found:?}");
        assert_eq!((found[0].repository.as_str(), found[0].level), ("prod/api", Level::Defeats));
        assert!(found[0].what.starts_with("`stable` (rule \"prod\""), "{}", found[0].what);

        let aged = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}"#;
        let expiring = TargetFacts { lifecycle: Ok(Some(aged.to_owned())), ..healthy };
        let found = examine_target(&rules, "api", &expiring, now());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].what.contains("reaches images holding `stable`") && found[0].what.contains("expired"), "{}", found[0].what);
    }

    #[test]
    fn a_rescan_window_of_a_week_or_less_warns_the_scan_gated_rules() {
        let short = rescan_window("DAYS_3", &["release"]).unwrap();
        assert_eq!((short.repository.as_str(), short.level), (REGISTRY, Level::Warns));
        assert!(short.what.contains("3 days after their push") && short.what.contains("rule \"release\""), "{}", short.what);
        assert!(rescan_window("DAYS_7", &["release"]).is_some());
        assert_eq!(rescan_window("DAYS_14", &["release"]), None);
        assert_eq!(rescan_window("LIFETIME", &["release"]), None);
        assert_eq!(rescan_window("DAYS_3", &[]), None, "no gate, nothing to wait for");
    }

    #[test]
    fn a_repository_set_up_for_the_rules_has_no_finding() {
        assert_eq!(examine(&rules(), &healthy("team/api"), now()), []);
        let note = scan_events(ScanType::Enhanced, &["release"]);
        assert_eq!(note.what, "rule \"release\" waits for Amazon Inspector's \"Inspector2 Scan\" events (enhanced scanning)");
        assert_eq!((note.level, note.fix.as_str()), (Level::Notes, "deploy with ScanEvents=enhanced (or both)"));
    }

    #[test]
    fn an_immutable_repository_defeats_each_moving_tag_that_no_filter_excludes() {
        let mut facts = healthy("team/api");
        facts.mutability = Ok(TagMutability { mode: Mode::ImmutableWithExclusion, filters: vec![Filter::parse("stable").unwrap()] });
        let found = examine(&rules(), &facts, now());
        let defeats: Vec<&Finding> = found.iter().filter(|f| f.level == Level::Defeats).collect();
        let templates: Vec<&str> = defeats.iter().map(|f| f.what.split('`').nth(1).unwrap()).collect();
        assert_eq!(templates, ["v{major}.{minor}", "edge"], "once per template; the filter excludes `stable`");
        assert!(defeats[0].fix.starts_with("exclude its shape from immutability; `ecr-retag filters --rules RULES`"));
        assert!(defeats[1].fix.ends_with("filterType=WILDCARD,filter=stable filterType=WILDCARD,filter=edge"), "{}", defeats[1].fix);
    }

    #[test]
    fn a_scan_gate_where_nothing_scans_on_push_defeats_the_rule() {
        let mut facts = healthy("team/api");
        facts.scanning = Ok((ScanType::Basic, Frequency::Manual));
        let found = examine(&rules(), &facts, now());
        assert_eq!(found[0].level, Level::Defeats);
        assert!(found[0].what.starts_with("rule \"release\" waits for a scan, and no scan starts on push here (BASIC scanning"));
        assert!(found[0].fix.contains("\"filter\": \"team/api\"") && found[0].fix.contains("--scan-type BASIC"));
        facts.scanning = Ok((ScanType::Enhanced, Frequency::Continuous));
        assert_eq!(examine(&rules(), &facts, now()), []);
    }

    #[test]
    fn missing_resource_tags_are_a_note_and_the_rule_they_gate_is_left_out() {
        let mut facts = healthy("team/api");
        facts.resource_tags = Ok(BTreeMap::new());
        facts.mutability = Ok(TagMutability { mode: Mode::Immutable, filters: Vec::new() });
        let found = examine(&rules(), &facts, now());
        assert_eq!(found[0].level, Level::Notes);
        assert_eq!(found[0].what, "rule \"platform\" names it but does not apply: it lacks the resource tags Key=team,Value=platform");
        assert!(!found.iter().any(|f| f.what.contains("`edge`")), "a rule that does not apply writes nothing to defeat");
    }

    #[test]
    fn an_age_rule_that_reaches_promoted_images_defeats_them_unless_a_rule_ahead_claims_them() {
        let mut facts = healthy("team/api");
        let expire = r#"{"rulePriority": 10, "selection": {"tagStatus": "tagged", "tagPatternList": ["v*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}"#;
        facts.lifecycle = Ok(Some(format!(r#"{{"rules": [{expire}]}}"#)));
        let found: Vec<Finding> = examine(&rules(), &facts, now()).into_iter().filter(|f| f.level == Level::Defeats).collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].what,
            "lifecycle rule 10 (images tagged `v*`) expires those pushed more than 30 days ago, and reaches images holding \
             `stable`, `v{major}.{minor}` (e.g. one pushed as `v1.2.3`): they will be expired, and the tag with it"
        );
        assert!(found[0].fix.starts_with(r#"add ahead of it a rule per moving tag that claims its images: {"rulePriority": 9, "selection": {"tagStatus": "tagged", "tagPatternList": ["stable"], "countType": "imageCountMoreThan", "countNumber": 1}"#), "{}", found[0].fix);
        assert!(found[0].fix.ends_with("`v{major}.{minor}`'s shape `v*.*` also matches pushed tags such as `v1.2.3`, so no lifecycle rule can claim it alone: give it a shape of its own (e.g. `v{major}.{minor}-latest`)"));

        // The fix, applied with the renamed tag, mends it.
        let renamed = RuleSet::from_json(&RULES.replace("v{major}.{minor}", "v{major}.{minor}-latest")).unwrap();
        let found: Vec<Finding> = examine(&renamed, &facts, now()).into_iter().filter(|f| f.what.starts_with("lifecycle")).collect();
        let fix = &found[0].fix;
        let keep = fix.split_once(": ").unwrap().1;
        assert!(keep.contains(r#"["v*.*-latest"], "countType": "imageCountMoreThan", "countNumber": 9999"#), "{keep}");
        facts.lifecycle = Ok(Some(format!(r#"{{"rules": [{keep}, {expire}]}}"#)));
        let after = examine(&renamed, &facts, now());
        assert!(!after.iter().any(|f| f.what.starts_with("lifecycle")), "{after:?}");
    }

    #[test]
    fn a_count_rule_that_reaches_a_promoted_image_by_its_other_tags_warns() {
        let mut facts = healthy("team/api");
        facts.lifecycle = Ok(Some(r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 20}, "action": {"type": "expire"}}]}"#.to_owned()));
        let found = examine(&rules(), &facts, now());
        let lifecycle: Vec<&Finding> = found.iter().filter(|f| f.what.starts_with("lifecycle")).collect();
        assert_eq!(lifecycle.len(), 1);
        assert_eq!(lifecycle[0].level, Level::Warns);
        assert!(lifecycle[0].fix.starts_with("renumber the policy"), "priority 1 leaves no room ahead of it");
    }

    #[test]
    fn pull_through_repositories_crowded_images_and_unreadable_settings_fail_the_check() {
        let mut facts = healthy("docker-hub/library/nginx");
        facts.pull_through = Some("docker-hub".to_owned());
        facts.crowded = Ok(vec![("sha256:aa".to_owned(), 1000), ("sha256:bb".to_owned(), 950)]);
        facts.scanning = Err("AccessDeniedException".to_owned());
        let found = examine(&rules(), &facts, now());
        let got: Vec<Level> = found.iter().map(|f| f.level).collect();
        assert_eq!(got, [Level::Defeats, Level::Unchecked, Level::Defeats, Level::Warns], "{found:?}");
        assert!(found[0].what.contains("pull-through cache repository (prefix `docker-hub/`)"));
        assert_eq!(found[1].what, "could not read its scanning configuration: AccessDeniedException");
        assert!(found[2].what.contains("holds 1000 tags, ECR's maximum") && found[3].what.contains("holds 950 of ECR's 1000"));
    }
}
