//! `ecr-retag doctor`: reads what the registry says of each repository the rules cover
//! ([`Setup`], [`crate::registry::Catalog`]) and hands it to [`crate::domain::doctor`], which decides what
//! would defeat the rules; and checks each promotion's preconditions as the function would
//! ([`promote::compatible`], [`promote::mounting`]). Read-only: nothing is written.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::doctor::{
    examine, examine_target, promotion_targets, rescan_window, scan_events, Facts, Finding, Level, ScanType, TargetFacts, CROWDED,
    REGISTRY, UNCHECKED_FIX,
};
use crate::domain::names::RepositoryName;
use crate::domain::rules::RuleSet;
use crate::apply::promote::{self, Refusal};
use crate::registry::{Blobs, ReadError, Repository, Setup};

/// Findings per repository, in name order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checkup {
    /// The repositories checked: those listed that a rule names.
    pub repositories: Vec<String>,
    pub findings: Vec<Finding>,
}

impl Checkup {
    /// Something would defeat a rule, or could not be checked.
    pub fn fails(&self) -> bool {
        self.findings.iter().any(Finding::fails)
    }
}

/// Checks each of `names` that a rule names. The registry-wide settings are read once.
pub async fn check<R: Setup + Blobs>(registry: &R, rules: &RuleSet, names: &[RepositoryName], now: DateTime<Utc>) -> Checkup {
    let covered: Vec<&RepositoryName> = names.iter().filter(|n| !rules.covering(n.as_str()).is_empty()).collect();
    let mut checkup = Checkup { repositories: covered.iter().map(|n| n.as_str().to_owned()).collect(), findings: Vec::new() };
    if covered.is_empty() {
        return checkup;
    }
    let scan_type = registry.scan_type().await.map_err(reason);
    let prefixes = registry.pull_through_prefixes().await.map_err(reason);
    // Promoting rules, and whether each says `"copy_blobs": true`.
    let mut promoting: BTreeMap<&str, bool> = BTreeMap::new();
    for name in covered {
        let repository = Repository::own(name.clone());
        // A name given that is no repository: said so, instead of every setting "unreadable".
        let mutability = registry.tag_mutability(&repository).await;
        if matches!(mutability, Err(ReadError::RepositoryNotFound)) {
            checkup.findings.push(not_found(name));
            continue;
        }
        let pull_through = match &prefixes {
            Ok(prefixes) => prefixes.iter().find(|p| name.as_str().starts_with(&format!("{p}/"))).cloned(),
            Err(_) => None,
        };
        let scanning = match (&scan_type, registry.scan_frequency(&repository).await) {
            (Ok(kind), Ok(frequency)) => Ok((*kind, frequency)),
            (Err(why), _) => Err(why.clone()),
            (_, Err(e)) => Err(reason(e)),
        };
        let resource_tags = resource_tags(registry, rules, &repository).await;
        let targets = promotion_targets(rules, name.as_str(), resource_tags.as_ref().ok(), now);
        for (rule, _) in &targets {
            promoting.insert(rule, rules.copies_blobs(&[(*rule).to_owned()]));
        }
        let source = Source { repository: &repository, pull_through: pull_through.as_deref(), rules, now };
        checkup.findings.extend(promotion(registry, &source, &targets).await);
        let facts = Facts {
            repository: name.as_str().to_owned(),
            mutability: mutability.map_err(reason),
            scanning,
            resource_tags,
            lifecycle: registry.lifecycle_policy(&repository).await.map_err(reason),
            pull_through,
            crowded: crowded(registry, &repository).await.map_err(reason),
        };
        checkup.findings.extend(examine(rules, &facts, now));
    }
    let mut gated: Vec<&str> = checkup
        .repositories
        .iter()
        .flat_map(|n| rules.covering(n))
        .filter(|c| c.policy.scan_gate.is_some())
        .map(|c| c.rule)
        .collect();
    gated.sort();
    gated.dedup();
    if let (Ok(kind), false) = (&scan_type, gated.is_empty()) {
        checkup.findings.push(scan_events(*kind, &gated));
    }
    if let (Ok(ScanType::Enhanced), false) = (&scan_type, gated.is_empty()) {
        // Inspector's, so said once: how long after a push a gate can still be decided.
        match registry.rescan_duration().await {
            Ok(duration) => checkup.findings.extend(duration.and_then(|d| rescan_window(&d, &gated))),
            Err(e) => checkup.findings.push(Finding {
                repository: REGISTRY.to_owned(),
                level: Level::Unchecked,
                what: format!("could not read Amazon Inspector's rescan window (inspector2:GetConfiguration): {e}"),
                fix: UNCHECKED_FIX.to_owned(),
            }),
        }
    }
    // The account's, so said once, and read only when a rule promotes.
    if promoting.is_empty() {
        return checkup;
    }
    if let Err(refusal) = promote::mounting(registry).await {
        let mounting: Vec<String> = promoting.iter().filter(|(_, copies)| !**copies).map(|(r, _)| format!("{r:?}")).collect();
        checkup.findings.push(if mounting.is_empty() {
            // Every promoting rule streams what is not mounted: slower, not defeated.
            let found = refused(REGISTRY, "every promoting rule says \"copy_blobs\": true", &refusal);
            let what = format!("{}: their blobs stream through the function (up to 512 MiB per image) instead of being mounted", found.what);
            Finding { level: Level::Notes, what, ..found }
        } else {
            refused(REGISTRY, &format!("rule {} promotes into another repository without \"copy_blobs\"", mounting.join(", ")), &refusal)
        });
    }
    if let Err(why) = &prefixes {
        // The registry's, so said once.
        checkup.findings.push(Finding {
            repository: REGISTRY.to_owned(),
            level: Level::Unchecked,
            what: format!("could not read the registry's pull-through cache rules: {why}"),
            fix: UNCHECKED_FIX.to_owned(),
        });
    }
    checkup
}

/// A repository whose rules promote, as the doctor checks its promotions.
struct Source<'a> {
    repository: &'a Repository,
    /// The pull-through cache rule prefix it is under, if any.
    pull_through: Option<&'a str>,
    rules: &'a RuleSet,
    now: DateTime<Utc>,
}

/// What would stop each promotion out of `source`: a missing target, another encryption (unless
/// the rule streams blobs), a source a pull-through cache fills (ECR mounts none of its blobs);
/// and in each target, settings that would defeat the promoted tags ([`examine_target`]).
async fn promotion<R: Setup + Blobs>(registry: &R, source: &Source<'_>, targets: &[(&str, RepositoryName)]) -> Vec<Finding> {
    let (rules, pull_through) = (source.rules, source.pull_through);
    let source_name = source.repository.name.as_str();
    let mut out = Vec::new();
    let mut examined: Vec<&RepositoryName> = Vec::new();
    for (rule, name) in targets {
        let target = Repository { name: name.clone(), ..source.repository.clone() };
        if let Some(prefix) = pull_through {
            out.push(Finding {
                repository: source_name.to_owned(),
                level: Level::Defeats,
                what: format!("rule {rule:?} promotes into {name}, and ECR mounts no blob of an image a pull-through cache (prefix `{prefix}/`) created"),
                fix: "promote from a repository the images are pushed to".to_owned(),
            });
        }
        let what = format!("rule {rule:?} promotes into {name}");
        match promote::compatible(registry, source.repository, &target).await {
            Err(Refusal::TargetMissing(_)) => {
                out.push(refused(source_name, &what, &Refusal::TargetMissing(name.clone())));
                continue;
            }
            // `"copy_blobs": true` streams what cannot be mounted.
            Err(refusal @ Refusal::EncryptionDiffers { .. }) if rules.copies_blobs(&[(*rule).to_owned()]) => out.push(Finding {
                level: Level::Notes,
                what: format!("{what}: {}; its blobs stream through the function instead (up to 512 MiB per image)", refusal.what()),
                fix: refusal.fix(),
                repository: source_name.to_owned(),
            }),
            Err(refusal) => out.push(refused(source_name, &what, &refusal)),
            Ok(()) => {}
        }
        if examined.contains(&name) {
            continue;
        }
        examined.push(name);
        let facts = TargetFacts {
            target: name.clone(),
            mutability: registry.tag_mutability(&target).await.map_err(reason),
            lifecycle: registry.lifecycle_policy(&target).await.map_err(reason),
        };
        out.extend(examine_target(rules, source_name, &facts, source.now));
    }
    out
}

/// A repository a rule names and the command line gave, which the registry does not have.
fn not_found(name: &RepositoryName) -> Finding {
    Finding {
        repository: name.to_string(),
        level: Level::Defeats,
        what: "repository not found in this registry: no rule can apply there".to_owned(),
        fix: "check the name (--repositories, or the rule's repositories), the region and the account, or create the repository".to_owned(),
    }
}

/// A promotion's precondition that fails, as a finding: DEFEATS, or UNCHECKED when it could not be read.
fn refused(repository: &str, what: &str, refusal: &Refusal) -> Finding {
    let level = match refusal {
        Refusal::Read { .. } | Refusal::Setting(_) => Level::Unchecked,
        _ => Level::Defeats,
    };
    let fix = if level == Level::Unchecked { UNCHECKED_FIX.to_owned() } else { refusal.fix() };
    Finding { repository: repository.to_owned(), level, what: format!("{what}: {}", refusal.what()), fix }
}

/// The repository's resource tags, read only when a rule naming it requires some: nothing
/// else depends on them (two calls saved per repository: its ARN, then its tags).
async fn resource_tags<R: Setup>(registry: &R, rules: &RuleSet, repository: &Repository) -> Result<BTreeMap<String, String>, String> {
    if rules.covering(repository.name.as_str()).iter().all(|c| c.repository_tags.is_empty()) {
        return Ok(BTreeMap::new());
    }
    registry.repository_tags(repository).await.map_err(reason)
}

/// The repository's images holding [`CROWDED`] tags or more, every page followed.
async fn crowded<R: Setup>(registry: &R, repository: &Repository) -> Result<Vec<(String, usize)>, ReadError> {
    let mut out = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let listed = registry.images(repository, page.as_deref()).await?;
        out.extend(listed.items.iter().filter(|i| i.tags.len() >= CROWDED).map(|i| (i.digest.to_string(), i.tags.len())));
        match listed.next {
            Some(next) => page = Some(next),
            None => return Ok(out),
        }
    }
}

fn reason(e: ReadError) -> String {
    e.to_string()
}
