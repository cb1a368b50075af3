//! Plan: which tags a push should get, before anything is read or written.
//!
//! Pure: the union of every matching rule's tags, minus the pushed tag, with
//! renderings that are no valid tag and tags that would make the function
//! trigger itself again marked invalid; gated tags (`"when"`) written, deferred
//! or blocked by what the event knows of the image's scan and signatures, and
//! where only a signature is missing, the kinds one look would settle.

use std::collections::{BTreeMap, BTreeSet};

use crate::names::{RepositoryName, Tag};
use crate::rules::{Policy, RuleSet, Subject};
use crate::scan::Findings;
use crate::signature::{Kind, Kinds, Signatures};

/// What the planning knows: what triggered it, and what is known of the
/// image's scan and signatures. Gated tags are written once every condition of
/// one of their rules holds, on whichever event completes the last one.
#[derive(Debug, Clone, Copy)]
pub struct Phase<'a> {
    pub trigger: Trigger,
    pub scan: Scan<'a>,
    pub signatures: Signatures,
}

/// The event being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A push (or a direct request): every tag is planned.
    Push,
    /// A completed scan: only tags of rules with a scan gate (and only gates) are planned.
    Scan,
    /// A signature's push: only tags of rules with a signature gate (and only gates).
    Signature,
}

/// The image's scan, as far as known.
#[derive(Debug, Clone, Copy)]
pub enum Scan<'a> {
    /// No completed scan known; ECR's scan status where a listing told it.
    NotYet(Option<&'a str>),
    Done(&'a Findings),
}

impl Phase<'_> {
    /// A push: no scan yet, no signature looked for.
    pub const PUSH: Phase<'static> = Phase { trigger: Trigger::Push, scan: Scan::NotYet(None), signatures: Signatures { looked: Kinds::NONE, found: Kinds::NONE } };
}

impl<'a> Phase<'a> {
    /// A completed scan's event.
    pub fn scan(findings: &'a Findings) -> Phase<'a> {
        Phase { trigger: Trigger::Scan, scan: Scan::Done(findings), ..Phase::PUSH }
    }

    /// The same event, once more signatures were looked for.
    pub fn with_signatures(self, seen: Signatures) -> Phase<'a> {
        let signatures = Signatures { looked: self.signatures.looked.union(seen.looked), found: self.signatures.found.union(seen.found) };
        Phase { signatures, ..self }
    }
}

/// The tags to bring in place, sorted by tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub tags: Vec<PlannedTag>,
    /// Pushed tags to remove once their rule's tags are in place (`remove_source`).
    pub removals: Vec<Removal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTag {
    /// The tag, or for an invalid rendering the sanitised text.
    pub tag: String,
    /// The rules that derived it, in rule-set order.
    pub rules: Vec<String>,
    pub verdict: Verdict,
    /// `Some`: every rule deriving it says `"move": "if-newer"`; the version
    /// they read from the pushed tag (the highest, across merged pushes).
    pub if_newer: Option<semver::Version>,
    /// A template that derives it moves from image to image (`stable`, `v{major}`, a date
    /// stamp): in an immutable repository its second move conflicts unless a filter excludes it.
    pub moves: bool,
    /// Deferred, and a look for a signature of one of these kinds would decide it
    /// ([`Plan::signatures_to_look_for`]).
    pub look_for: Option<Kinds>,
    /// `"to"`: the repository it is written in, the image copied there; `None`: the pushed one.
    pub to: Option<RepositoryName>,
}

impl PlannedTag {
    /// Where it is written and what: a promotion's `stable` is another tag than the pushed repository's.
    fn key(&self) -> (Option<RepositoryName>, String) {
        (self.to.clone(), self.tag.clone())
    }
}

/// A planned tag's place: its target repository (`None`: the pushed one) and its text.
type Key = (Option<RepositoryName>, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Write(Tag),
    /// Not a valid tag: the rendering failed or sanitising could not save it.
    Invalid(String),
    /// A valid tag loop safety refuses: its own push event would derive more tags.
    Loops(String),
    /// Gated, and a condition is not met yet: waits for the scan's or the signature's event.
    Deferred(String),
    /// Scan-gated, and the scan found more than the rule allows.
    Blocked(String),
}

/// The pushed tag a `remove_source` rule retires once all of `tags` landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub source: Tag,
    pub rule: String,
    /// The keys of the tags the rule derived (invalid renderings included: they never land).
    pub tags: Vec<String>,
}

impl Plan {
    /// The plans of several pushed tags of one image (a scan event lists them
    /// all) as one: tags derived from several are planned once.
    pub fn merge(plans: impl IntoIterator<Item = Plan>) -> Plan {
        let mut tags: BTreeMap<Key, PlannedTag> = BTreeMap::new();
        let mut removals = Vec::new();
        for plan in plans {
            for planned in plan.tags {
                match tags.get_mut(&planned.key()) {
                    None => {
                        tags.insert(planned.key(), planned);
                    }
                    Some(existing) => {
                        existing.moves |= planned.moves;
                        existing.look_for = match (existing.look_for, planned.look_for) {
                            (Some(a), Some(b)) => Some(a.union(b)),
                            (a, b) => a.or(b),
                        };
                        if let (Some(have), Some(new)) = (&existing.if_newer, planned.if_newer) {
                            if new.cmp_precedence(have).is_gt() {
                                existing.if_newer = Some(new);
                            }
                        }
                        for rule in planned.rules {
                            if !existing.rules.contains(&rule) {
                                existing.rules.push(rule);
                            }
                        }
                    }
                }
            }
            removals.extend(plan.removals);
        }
        Plan { tags: tags.into_values().collect(), removals }
    }

    /// The signature kinds whose presence would let a deferred tag through: one look
    /// (before any write) decides them, and the plan is made again with what it found.
    pub fn signatures_to_look_for(&self) -> Kinds {
        self.tags.iter().filter_map(|t| t.look_for).fold(Kinds::NONE, Kinds::union)
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
///
/// A tag is held back (deferred until a scan, or moved only to a newer
/// version) only when every rule deriving it says so: a rule without the
/// condition wants it in place regardless.
pub fn plan(rules: &RuleSet, subject: &Subject<'_>, phase: Phase<'_>) -> Plan {
    let mut planned: BTreeMap<Key, PlannedTag> = BTreeMap::new();
    let mut policies: BTreeMap<Key, Vec<Policy>> = BTreeMap::new();
    let mut versions: BTreeMap<Key, semver::Version> = BTreeMap::new();
    let mut removing: Vec<(String, Policy)> = Vec::new();
    for derived in rules.derive(subject) {
        if derived.policy.remove_source && !removing.iter().any(|(r, _)| r == derived.rule) {
            removing.push((derived.rule.to_owned(), derived.policy));
        }
        let (key, verdict) = match derived.result {
            Ok(tag) => (tag.as_str().to_owned(), Verdict::Write(tag)),
            Err(u) => (u.rendered, Verdict::Invalid(u.reason)),
        };
        if key == subject.tag.as_str() && derived.to.is_none() {
            continue;
        }
        let tag = key;
        let key = (derived.to.clone(), tag.clone());
        let entry = planned.entry(key.clone()).or_insert_with(|| PlannedTag {
            tag,
            rules: Vec::new(),
            verdict,
            if_newer: None,
            moves: false,
            look_for: None,
            to: derived.to.clone(),
        });
        entry.moves |= derived.moves;
        if !entry.rules.iter().any(|r| r == derived.rule) {
            entry.rules.push(derived.rule.to_owned());
        }
        if let Some(v) = derived.version {
            let highest = versions.entry(key.clone()).or_insert_with(|| v.clone());
            if v.cmp_precedence(highest).is_gt() {
                *highest = v;
            }
        }
        policies.entry(key).or_default().push(derived.policy);
    }

    // Where each tag lands, by repository name: a promotion's echo is a push in its target.
    let pushed = subject.repository;
    loop {
        let allowed: BTreeSet<(&str, &str)> = std::iter::once((pushed, subject.tag.as_str()))
            .chain(
                planned
                    .values()
                    .filter(|p| matches!(p.verdict, Verdict::Write(_)))
                    .map(|p| (p.to.as_ref().map_or(pushed, RepositoryName::as_str), p.tag.as_str())),
            )
            .collect();
        let mut offenders = Vec::new();
        for p in planned.values() {
            let Verdict::Write(tag) = &p.verdict else { continue };
            let repository = p.to.as_ref().map_or(pushed, RepositoryName::as_str);
            // In a target, its resource tags are not known: rules that require some are not tried there.
            let echo = Subject { tag, repository, repository_tags: if p.to.is_some() { None } else { subject.repository_tags }, ..*subject };
            let escapes: Vec<_> = rules
                .derive(&echo)
                .into_iter()
                .filter_map(|d| {
                    let name = match &d.result {
                        Ok(t) => t.as_str().to_owned(),
                        Err(u) => u.rendered.clone(),
                    };
                    let lands = d.to.as_ref().map_or(repository, RepositoryName::as_str);
                    (!allowed.contains(&(lands, name.as_str()))).then(|| match &d.to {
                        Some(to) => format!("rule {:?} would derive `{name}` in {to}", d.rule),
                        None if p.to.is_some() => format!("rule {:?} would derive `{name}` in {repository}", d.rule),
                        None => format!("rule {:?} would derive `{name}`", d.rule),
                    })
                })
                .collect();
            if !escapes.is_empty() {
                let reason = format!(
                    "not written: its own push event would trigger the rules again ({}), which could loop",
                    escapes.join(", ")
                );
                offenders.push((p.key(), reason));
            }
        }
        if offenders.is_empty() {
            break;
        }
        for (key, reason) in offenders {
            if let Some(p) = planned.get_mut(&key) {
                p.verdict = Verdict::Loops(reason);
            }
        }
    }

    let mut tags = Vec::with_capacity(planned.len());
    for (key, mut p) in planned {
        let policies = policies.get(&key).map(Vec::as_slice).unwrap_or_default();
        let if_newer = !policies.is_empty() && policies.iter().all(|x| x.if_newer);
        p.if_newer = if if_newer { versions.remove(&key) } else { None };
        let gated = !policies.is_empty() && policies.iter().all(Policy::gated);
        let concerned = match phase.trigger {
            Trigger::Push => true,
            // Ungated tags were written on the push; this event has nothing to add.
            Trigger::Scan => gated && policies.iter().any(|x| x.scan_gate.is_some()),
            Trigger::Signature => gated && policies.iter().any(|x| x.signed.is_some()),
        };
        if !concerned {
            continue;
        }
        if gated && matches!(p.verdict, Verdict::Write(_)) {
            match policies.iter().map(|x| condition(x, &phase)).reduce(Condition::best).unwrap_or(Condition::Holds) {
                Condition::Holds => {}
                Condition::Unchecked(kinds) => {
                    p.verdict = Verdict::Deferred(waiting_for_signature(kinds));
                    p.look_for = Some(kinds);
                }
                Condition::Waits(why) => p.verdict = Verdict::Deferred(why),
                Condition::Fails(why) => p.verdict = Verdict::Blocked(why),
            }
        }
        tags.push(p);
    }
    let removals = removing
        .into_iter()
        // A gated rule's removal is decided on the event of its gate, an ungated one's on the push.
        .filter(|(_, policy)| match phase.trigger {
            Trigger::Push => true,
            Trigger::Scan => policy.scan_gate.is_some(),
            Trigger::Signature => policy.signed.is_some(),
        })
        .map(|(rule, _)| Removal {
            source: subject.tag.clone(),
            tags: tags.iter().filter(|t| t.rules.contains(&rule)).map(|t| t.tag.clone()).collect(),
            rule,
        })
        .collect();
    Plan { tags, removals }
}

/// Where one rule's conditions stand, best first: a tag is decided by the best of its
/// rules (one rule whose conditions all hold writes it), a rule by its worst condition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Condition {
    Holds,
    /// Only a signature is missing, and these kinds were not looked for yet.
    Unchecked(Kinds),
    Waits(String),
    Fails(String),
}

impl Condition {
    /// The better of two rules' standings; two unchecked ones look for either's kinds.
    fn best(self, other: Condition) -> Condition {
        match (self, other) {
            (Condition::Unchecked(a), Condition::Unchecked(b)) => Condition::Unchecked(a.union(b)),
            (a, b) => a.min(b),
        }
    }
}

/// ECR's scan status for an image Inspector stopped rescanning (its rescan window passed).
pub const EXPIRED: &str = "SCAN_ELIGIBILITY_EXPIRED";

fn condition(policy: &Policy, phase: &Phase<'_>) -> Condition {
    let scan = match (policy.scan_gate, phase.scan) {
        (None, _) => Condition::Holds,
        // Inspector stopped rescanning it (its rescan window, as short as 3 days since July 2026):
        // no result will come, so waiting is for nothing.
        (Some(_), Scan::NotYet(Some(EXPIRED))) => Condition::Fails(format!(
            "Amazon Inspector no longer scans this image (ECR's scan status: {EXPIRED}: pushed longer ago than the \
             organisation's rescan window, EcrRescanDuration), so its gate cannot be decided and the tag is not written \
             (fail closed); push the image again to have it scanned, or lengthen the window \
             (aws inspector2 update-configuration --ecr-configuration rescanDuration=DAYS_30)"
        )),
        (Some(allowed), Scan::NotYet(status)) => Condition::Waits(format!(
            "waits for the image scan: written then if no finding is above {allowed}{}",
            status.map(|s| format!(" (ECR's scan status: {s})")).unwrap_or_default()
        )),
        (Some(allowed), Scan::Done(findings)) if findings.undecided(allowed) => Condition::Fails(format!(
            "the scan found {}: neither Amazon Inspector's event (CRITICAL, HIGH and MEDIUM only) nor ECR's findings \
             summary splits those by severity, so a gate at {allowed} cannot be decided, and the tag is not written (fail closed)",
            findings.summary()
        )),
        (Some(allowed), Scan::Done(findings)) if !findings.passes(allowed) => {
            Condition::Fails(format!("the scan found {}; the rule allows findings up to {allowed}", findings.summary()))
        }
        (Some(_), Scan::Done(_)) => Condition::Holds,
    };
    let signed = match policy.signed {
        None => Condition::Holds,
        Some(kinds) if phase.signatures.found.intersects(kinds) => Condition::Holds,
        Some(kinds) if kinds.without(phase.signatures.looked).is_empty() => Condition::Waits(waiting_for_signature(kinds)),
        // Only the kinds not looked for yet.
        Some(kinds) => Condition::Unchecked(kinds.without(phase.signatures.looked)),
    };
    scan.max(signed)
}

fn waiting_for_signature(kinds: Kinds) -> String {
    let managed = if kinds.contains(Kind::Managed) { "; a completed managed signing sends no event: the next sweep writes it" } else { "" };
    format!("waits for a signature ({}): written when one is pushed{managed}", kinds.describe())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Digest;
    use crate::signature::{Kind, Kinds, Signatures};

    fn digest() -> Digest {
        Digest::parse("sha256:16eb06ced985216bb14744c43dad833c58f56296d152e580542d0e8630f63316").unwrap()
    }

    /// The tags the plan writes.
    fn writable(plan: &Plan) -> impl Iterator<Item = &Tag> {
        plan.tags.iter().filter_map(|t| match &t.verdict {
            Verdict::Write(tag) => Some(tag),
            _ => None,
        })
    }

    fn plan_for(rules_json: &str, repository: &str, tag: &str) -> Plan {
        let rules = RuleSet::from_json(rules_json).unwrap();
        let d = digest();
        let tag = &Tag::parse(tag).unwrap();
        let subject = Subject { repository, tag, digest: &d, pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(), repository_tags: None, artifact: false };
        plan(&rules, &subject, Phase::PUSH)
    }

    fn summary(plan: &Plan) -> Vec<(String, Vec<String>, bool)> {
        plan.tags
            .iter()
            .map(|p| (p.tag.clone(), p.rules.clone(), matches!(p.verdict, Verdict::Write(_))))
            .collect()
    }

    /// The plan of one pushed tag, at a fixed time, for a phase.
    fn plan_in(rules: &RuleSet, tag: &str, phase: Phase<'_>) -> Plan {
        let d = digest();
        let tag = &Tag::parse(tag).unwrap();
        let subject = Subject { repository: "app", tag, digest: &d, pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(), repository_tags: None, artifact: false };
        plan(rules, &subject, phase)
    }

    #[test]
    fn an_image_carrying_two_tags_gets_one_entry_per_derived_tag_with_every_rule_its_highest_version_and_whether_it_moves() {
        // As on a scan event or in a sweep: the image's tags planned one by one, then merged.
        let rules = RuleSet::from_json(
            r#"{"rules":[{"name":"lines","semver":true,"move":"if-newer","tags":["stable"]},
                         {"name":"pinned","match":"^release$","tags":["stable"]}]}"#,
        )
        .unwrap();
        let merged = Plan::merge([plan_in(&rules, "v1.4.2", Phase::PUSH), plan_in(&rules, "release", Phase::PUSH), plan_in(&rules, "v1.5.0", Phase::PUSH)]);
        let stable: Vec<&PlannedTag> = merged.tags.iter().filter(|t| t.tag == "stable").collect();
        assert_eq!(stable.len(), 1, "{merged:?}");
        assert_eq!(stable[0].rules, ["lines", "pinned"], "the second plan's rule is named too, once");
        assert!(stable[0].moves, "a moving tag in either plan moves");
        let versions = Plan::merge([plan_in(&rules, "v1.5.0", Phase::PUSH), plan_in(&rules, "v1.4.2", Phase::PUSH)]);
        assert_eq!(versions.tags[0].if_newer, Some(semver::Version::new(1, 5, 0)), "the highest version, whatever the order");
    }

    #[test]
    fn a_signature_leaves_tags_gated_only_on_a_scan_alone_and_a_scan_those_gated_only_on_a_signature() {
        let rules = RuleSet::from_json(
            r#"{"rules":[{"name":"scanned","semver":true,"when":{"scan":"HIGH"},"tags":["safe"]},
                         {"name":"signed","semver":true,"when":{"signed":true},"tags":["trusted"]}]}"#,
        )
        .unwrap();
        let signed = Signatures { looked: Kinds::of([Kind::Notation]), found: Kinds::of([Kind::Notation]) };
        let signature = Phase { trigger: Trigger::Signature, ..Phase::PUSH }.with_signatures(signed);
        let on_signature: Vec<String> = plan_in(&rules, "v1.0.0", signature).tags.into_iter().map(|t| t.tag).collect();
        assert_eq!(on_signature, ["trusted"], "the scan-gated tag is the scan event's to decide");
        let clean = crate::scan::Findings { unsplit: None, counts: BTreeMap::new() };
        let on_scan: Vec<String> = plan_in(&rules, "v1.0.0", Phase::scan(&clean)).tags.into_iter().map(|t| t.tag).collect();
        assert_eq!(on_scan, ["safe"]);
    }

    #[test]
    fn merging_a_fixed_tag_with_the_same_tag_from_a_moving_template_makes_it_move() {
        let rules = RuleSet::from_json(
            r#"{"rules":[{"name":"final","match":"^rc$","tags":["{tag}-final"]},{"name":"alias","match":"^v.*","tags":["rc-final"]}]}"#,
        )
        .unwrap();
        let merged = Plan::merge([plan_in(&rules, "rc", Phase::PUSH), plan_in(&rules, "v1", Phase::PUSH)]);
        let tag = merged.tags.iter().find(|t| t.tag == "rc-final").unwrap();
        assert_eq!(tag.rules, ["final", "alias"]);
        assert!(tag.moves, "`rc-final` moves: the alias rule puts it on each v* push");
    }

    #[test]
    fn loop_safety_tries_rules_that_need_resource_tags_at_home_and_not_in_a_target_whose_tags_are_unknown() {
        let d = digest();
        let tag = &Tag::parse("v1.0.0").unwrap();
        let have = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
        let subject = Subject { repository: "app", tag, digest: &d, pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(), repository_tags: Some(&have), artifact: false };
        let home = RuleSet::from_json(
            r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]},{"name":"echo","repository_tags":{"team":"a"},"match":"^stable$","tags":["stable-x"]}]}"#,
        )
        .unwrap();
        let stable = plan(&home, &subject, Phase::PUSH).tags.into_iter().find(|t| t.tag == "stable").unwrap();
        match &stable.verdict {
            // At home the repository goes without saying; in a target it is named.
            Verdict::Loops(why) => assert!(why.contains("rule \"echo\" would derive `stable-x`") && !why.contains(" in app"), "{why}"),
            other => panic!("at home the repository's tags are known: {other:?}"),
        }
        let target = RuleSet::from_json(
            r#"{"rules":[{"name":"p","semver":true,"to":"prod/{repository}","tags":["stable"]},
                         {"name":"echo","repositories":["prod/**"],"repository_tags":{"team":"a"},"match":"^stable$","tags":["stable-x"]}]}"#,
        )
        .unwrap();
        let promoted = plan(&target, &subject, Phase::PUSH).tags.into_iter().find(|t| t.tag == "stable").unwrap();
        assert!(matches!(promoted.verdict, Verdict::Write(_)), "the target's resource tags are not the pushed one's: {promoted:?}");
    }

    #[test]
    fn a_gate_at_low_fails_closed_when_the_event_does_not_split_findings_below_medium() {
        let rules = RuleSet::from_json(r#"{"rules":[{"name":"strict","semver":true,"when":{"scan":"LOW"},"tags":["safe"]}]}"#).unwrap();
        let unsplit = crate::scan::Findings { unsplit: Some(2), counts: BTreeMap::new() };
        let planned = plan_in(&rules, "v1.0.0", Phase::scan(&unsplit));
        match &planned.tags[0].verdict {
            Verdict::Blocked(why) => assert!(why.contains("cannot be decided") && why.contains("fail closed"), "{why}"),
            other => panic!("{other:?}"),
        }
        let split = crate::scan::Findings { unsplit: Some(0), counts: BTreeMap::new() };
        assert!(matches!(plan_in(&rules, "v1.0.0", Phase::scan(&split)).tags[0].verdict, Verdict::Write(_)));
    }

    #[test]
    fn a_gated_tag_that_would_loop_says_so_rather_than_what_its_gate_waits_for() {
        let rules = RuleSet::from_json(r#"{"rules":[{"name":"grow","match":".*","when":{"scan":"HIGH"},"tags":["{tag}-x"]}]}"#).unwrap();
        let planned = plan_in(&rules, "a", Phase::PUSH);
        assert!(matches!(&planned.tags[0].verdict, Verdict::Loops(_)), "{planned:?}");
    }

    #[test]
    fn given_the_release_rule_when_v1_4_2_is_pushed_then_four_tags_are_planned() {
        let plan = plan_for(
            r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}","v{major}.{minor}","{date:%Y%m%d}"]}]}"#,
            "app",
            "v1.4.2",
        );
        let tags: Vec<&str> = writable(&plan).map(Tag::as_str).collect();
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
        assert_eq!(writable(&plan).map(Tag::as_str).collect::<Vec<_>>(), ["ok"]);
    }

    #[test]
    fn a_rule_that_would_retrigger_itself_forever_writes_nothing() {
        let plan = plan_for(r#"{"rules":[{"name":"grow","match":".*","tags":["{tag}-x"]}]}"#, "app", "v1");
        assert_eq!(writable(&plan).count(), 0);
        let Verdict::Loops(reason) = &plan.tags[0].verdict else { panic!() };
        assert!(reason.contains("rule \"grow\" would derive `v1-x-x`"), "{reason}");
    }

    #[test]
    fn a_stable_fixpoint_is_allowed() {
        // latest -> stable -> stable: writing `stable` re-derives only itself.
        let plan = plan_for(r#"{"rules":[{"name":"s","match":"latest|stable","tags":["stable"]}]}"#, "app", "latest");
        assert_eq!(writable(&plan).map(Tag::as_str).collect::<Vec<_>>(), ["stable"]);
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

    fn phased(rules_json: &str, tag: &str, phase: Phase<'_>) -> Plan {
        let rules = RuleSet::from_json(rules_json).unwrap();
        let d = digest();
        let tag = &Tag::parse(tag).unwrap();
        let subject = Subject { repository: "app", tag, digest: &d, pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(), repository_tags: None, artifact: false };
        plan(&rules, &subject, phase)
    }

    fn verdicts(plan: &Plan) -> Vec<(&str, &'static str)> {
        plan.tags
            .iter()
            .map(|p| {
                let v = match p.verdict {
                    Verdict::Write(_) => "write",
                    Verdict::Invalid(_) | Verdict::Loops(_) => "invalid",
                    Verdict::Deferred(_) => "deferred",
                    Verdict::Blocked(_) => "blocked",
                };
                (p.tag.as_str(), v)
            })
            .collect()
    }

    const GATED: &str = r#"{"rules":[
        {"name":"scanned","semver":true,"when":{"scan":"MEDIUM"},"tags":["stable"]},
        {"name":"lenient","semver":true,"when":{"scan":"HIGH"},"tags":["v{major}"]},
        {"name":"plain","semver":true,"tags":["v{major}.{minor}","v{major}"]}
    ]}"#;

    const SIGNED: &str = r#"{"rules":[
        {"name":"signed","semver":true,"when":{"signed":true},"tags":["stable"]},
        {"name":"both","semver":true,"when":{"signed":["notation"],"scan":"MEDIUM"},"tags":["prod"]},
        {"name":"plain","semver":true,"tags":["v{major}"]}
    ]}"#;

    fn seen(looked: &[Kind], found: &[Kind]) -> Signatures {
        Signatures { looked: Kinds::of(looked.iter().copied()), found: Kinds::of(found.iter().copied()) }
    }

    #[test]
    fn on_a_push_a_signed_tag_asks_for_one_look_and_a_scan_gated_one_waits_for_the_scan_first() {
        let plan = phased(SIGNED, "v1.4.2", Phase::PUSH);
        assert_eq!(verdicts(&plan), [("prod", "deferred"), ("stable", "deferred"), ("v1", "write")]);
        assert_eq!(plan.signatures_to_look_for(), Kinds::DEFAULT, "prod waits for its scan: no look for it");
        let none = Phase::PUSH.with_signatures(seen(&Kind::ALL, &[]));
        let plan = phased(SIGNED, "v1.4.2", none);
        assert_eq!(verdicts(&plan), [("prod", "deferred"), ("stable", "deferred"), ("v1", "write")]);
        assert!(plan.signatures_to_look_for().is_empty(), "looked: nothing more to look for");
        assert!(matches!(&plan.tags[1].verdict, Verdict::Deferred(why) if why.starts_with("waits for a signature (a Notation")));
        let cosign = Phase::PUSH.with_signatures(seen(&[Kind::Cosign], &[Kind::Cosign]));
        assert_eq!(verdicts(&phased(SIGNED, "v1.4.2", cosign)), [("prod", "deferred"), ("stable", "write"), ("v1", "write")]);
    }

    #[test]
    fn a_signature_or_a_scan_completes_the_other_condition_and_only_gated_tags_are_planned() {
        let clean = Findings::default();
        let high = Findings { unsplit: None, counts: [("HIGH".to_owned(), 1)].into() };
        let notation = seen(&[Kind::Notation], &[Kind::Notation]);
        let signature = |scan| Phase { trigger: Trigger::Signature, scan, ..Phase::PUSH }.with_signatures(notation);
        assert_eq!(verdicts(&phased(SIGNED, "v1.4.2", signature(Scan::NotYet(Some("PENDING"))))), [("prod", "deferred"), ("stable", "write")]);
        assert_eq!(verdicts(&phased(SIGNED, "v1.4.2", signature(Scan::Done(&clean)))), [("prod", "write"), ("stable", "write")]);
        assert_eq!(verdicts(&phased(SIGNED, "v1.4.2", signature(Scan::Done(&high)))), [("prod", "blocked"), ("stable", "write")]);
        // The scan's event: only `prod` has a scan gate; its signature is looked for once.
        let plan = phased(SIGNED, "v1.4.2", Phase::scan(&clean));
        assert_eq!((verdicts(&plan), plan.signatures_to_look_for()), (vec![("prod", "deferred")], Kinds::of([Kind::Notation])));
        let looked = Phase::scan(&clean).with_signatures(notation);
        assert_eq!(verdicts(&phased(SIGNED, "v1.4.2", looked)), [("prod", "write")]);
        let cosign_only = Phase::scan(&clean).with_signatures(seen(&[Kind::Notation, Kind::Cosign], &[Kind::Cosign]));
        assert_eq!(verdicts(&phased(SIGNED, "v1.4.2", cosign_only)), [("prod", "deferred")], "prod accepts Notation only");
    }

    #[test]
    fn a_tag_is_written_when_any_one_of_its_rules_holds() {
        let either = r#"{"rules":[
            {"name":"signed","semver":true,"when":{"signed":["cosign"]},"tags":["stable"]},
            {"name":"scanned","semver":true,"when":{"scan":"HIGH"},"tags":["stable"]}
        ]}"#;
        let clean = Findings::default();
        let plan = phased(either, "v1.4.2", Phase::scan(&clean));
        assert_eq!(verdicts(&plan), [("stable", "write")], "the scanned rule holds; no look needed");
        assert!(plan.signatures_to_look_for().is_empty());
        let signature = Phase { trigger: Trigger::Signature, ..Phase::PUSH }.with_signatures(seen(&[Kind::Cosign], &[Kind::Cosign]));
        assert_eq!(verdicts(&phased(either, "v1.4.2", signature)), [("stable", "write")], "the signed rule holds before any scan");
    }

    #[test]
    fn on_a_push_gated_tags_wait_and_the_rest_are_written() {
        let plan = phased(GATED, "v1.4.2", Phase::PUSH);
        assert_eq!(verdicts(&plan), [("stable", "deferred"), ("v1", "write"), ("v1.4", "write")], "v1 has an ungated rule too");
        let Verdict::Deferred(why) = &plan.tags[0].verdict else { panic!() };
        assert!(why.contains("no finding is above MEDIUM"), "{why}");
    }

    #[test]
    fn on_a_scan_only_gated_tags_are_planned_and_the_findings_decide() {
        let high = Findings { unsplit: None, counts: [("HIGH".to_owned(), 1), ("LOW".to_owned(), 7)].into() };
        let plan = phased(GATED, "v1.4.2", Phase::scan(&high));
        assert_eq!(verdicts(&plan), [("stable", "blocked")]);
        let Verdict::Blocked(why) = &plan.tags[0].verdict else { panic!() };
        assert_eq!(why, "the scan found HIGH 1, LOW 7; the rule allows findings up to MEDIUM");

        let medium = Findings { unsplit: None, counts: [("MEDIUM".to_owned(), 4)].into() };
        assert_eq!(verdicts(&phased(GATED, "v1.4.2", Phase::scan(&medium))), [("stable", "write")]);

        // Two gated rules derive `next`: the more lenient gate lets it through.
        let both = r#"{"rules":[
            {"name":"a","semver":true,"when":{"scan":"LOW"},"tags":["next"]},
            {"name":"b","semver":true,"when":{"scan":"HIGH"},"tags":["next"]}
        ]}"#;
        assert_eq!(verdicts(&phased(both, "v1.4.2", Phase::scan(&high))), [("next", "write")]);
    }

    #[test]
    fn if_newer_holds_only_when_every_deriving_rule_says_so() {
        let rules = r#"{"rules":[
            {"name":"careful","semver":true,"move":"if-newer","tags":["stable","v{major}"]},
            {"name":"eager","semver":true,"tags":["v{major}"]}
        ]}"#;
        let plan = phased(rules, "v1.2.9", Phase::PUSH);
        let newer: Vec<(&str, Option<String>)> =
            plan.tags.iter().map(|p| (p.tag.as_str(), p.if_newer.as_ref().map(ToString::to_string))).collect();
        assert_eq!(newer, [("stable", Some("1.2.9".to_owned())), ("v1", None)], "the version read from the pushed tag");
    }

    #[test]
    fn removals_list_the_tags_that_must_land_first() {
        let rules = r#"{"rules":[
            {"name":"retire","match":"latest","remove_source":true,"tags":["edge","{date:%Y%m%d}"]},
            {"name":"other","match":"latest","tags":["also"]}
        ]}"#;
        let plan = phased(rules, "latest", Phase::PUSH);
        assert_eq!(
            plan.removals,
            [Removal { source: Tag::parse("latest").unwrap(), rule: "retire".into(), tags: vec!["20261124".into(), "edge".into()] }]
        );
        let gated = r#"{"rules":[{"name":"g","match":"latest","remove_source":true,"when":{"scan":"HIGH"},"tags":["edge"]}]}"#;
        assert_eq!(phased(gated, "latest", Phase::PUSH).removals.len(), 1, "decided on the push: kept, waiting");
        let clean = Findings::default();
        assert_eq!(phased(gated, "latest", Phase::scan(&clean)).removals.len(), 1);
        assert!(phased(rules, "latest", Phase::scan(&clean)).removals.is_empty(), "an ungated removal is the push's business");
    }

    #[test]
    fn a_promotion_plans_its_tags_in_the_target_apart_from_the_pushed_repositorys() {
        let rules = r#"{"rules":[
            {"name":"dev","semver":true,"tags":["stable"]},
            {"name":"promote","semver":true,"repositories":["api"],"to":"prod/{repository}","tags":["{tag}","stable"]}]}"#;
        let plan = plan_for(rules, "api", "v1.2.3");
        let got: Vec<(Option<&str>, &str, bool)> =
            plan.tags.iter().map(|t| (t.to.as_ref().map(RepositoryName::as_str), t.tag.as_str(), matches!(t.verdict, Verdict::Write(_)))).collect();
        assert_eq!(got, [(None, "stable", true), (Some("prod/api"), "stable", true), (Some("prod/api"), "v1.2.3", true)]);
    }

    #[test]
    fn a_promoted_tag_whose_push_in_the_target_would_derive_more_is_not_written() {
        let rules = r#"{"rules":[
            {"name":"promote","semver":true,"repositories":["api"],"to":"prod/{repository}","tags":["{tag}"]},
            {"name":"prod","semver":true,"repositories":["prod/*"],"tags":["live"]}]}"#;
        let plan = plan_for(rules, "api", "v1.2.3");
        assert_eq!(plan.tags.len(), 1);
        match &plan.tags[0].verdict {
            Verdict::Loops(reason) => assert!(reason.contains("rule \"prod\" would derive `live` in prod/api"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // A rule in the target that derives only what the promotion writes too is a fixpoint.
        let rules = r#"{"rules":[
            {"name":"promote","semver":true,"repositories":["api"],"to":"prod/{repository}","tags":["{tag}","live"]},
            {"name":"prod","semver":true,"repositories":["prod/*"],"tags":["live"]}]}"#;
        assert_eq!(writable(&plan_for(rules, "api", "v1.2.3")).count(), 2);
    }

    #[test]
    fn a_chain_of_promotions_is_refused_at_its_first_hop() {
        let rules = r#"{"rules":[
            {"name":"to-staging","semver":true,"repositories":["dev/*"],"to":"staging/{repository:1}","tags":["{tag}"]},
            {"name":"to-prod","semver":true,"repositories":["staging/*"],"to":"prod/{repository:1}","tags":["{tag}"]}]}"#;
        let plan = plan_for(rules, "dev/api", "v1.2.3");
        let staged = &plan.tags[0];
        assert_eq!(staged.to.as_ref().map(RepositoryName::as_str), Some("staging/api"));
        match &staged.verdict {
            Verdict::Loops(reason) => assert!(reason.contains("rule \"to-prod\" would derive `v1.2.3` in prod/api"), "{reason}"),
            other => panic!("a promotion must not promote again: {other:?}"),
        }
        // Promoted from the source to each stage instead, both are written.
        let rules = r#"{"rules":[
            {"name":"to-staging","semver":true,"repositories":["dev/*"],"to":"staging/{repository:1}","tags":["{tag}"]},
            {"name":"to-prod","semver":true,"repositories":["dev/*"],"to":"prod/{repository:1}","tags":["{tag}"]}]}"#;
        assert_eq!(writable(&plan_for(rules, "dev/api", "v1.2.3")).count(), 2);
    }

    #[test]
    fn a_tag_no_rule_matches_plans_nothing() {
        let plan = plan_for(r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#, "app", "latest");
        assert!(plan.tags.is_empty());
    }
}
