//! `ecr-retag doctor`: reads what the registry says of each repository the rules cover
//! ([`Setup`], [`crate::registry::Catalog`]) and hands it to [`crate::domain::doctor`], which decides what
//! would defeat the rules; and checks each promotion's preconditions as the function would
//! ([`promote::compatible`], [`promote::mounting`]). Read-only: nothing is written.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::doctor::{examine, promotion_targets, scan_events, Facts, Finding, Level, CROWDED, REGISTRY, UNCHECKED_FIX};
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
    let mut promoting = false;
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
        promoting |= !targets.is_empty();
        checkup.findings.extend(promotion(registry, &repository, &targets, pull_through.as_deref()).await);
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
    if let (Ok(kind), false) = (scan_type, gated.is_empty()) {
        checkup.findings.push(scan_events(kind, &gated));
    }
    // The account's, so said once, and read only when a rule promotes.
    if let (true, Err(refusal)) = (promoting, promote::mounting(registry).await) {
        checkup.findings.push(refused(REGISTRY, "a rule promotes into another repository", &refusal));
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

/// What would stop each promotion out of `source`: a missing target, another encryption, a
/// source a pull-through cache fills (ECR mounts none of its blobs).
async fn promotion<R: Setup + Blobs>(
    registry: &R,
    source: &Repository,
    targets: &[(&str, RepositoryName)],
    pull_through: Option<&str>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (rule, name) in targets {
        let target = Repository { name: name.clone(), ..source.clone() };
        if let Some(prefix) = pull_through {
            out.push(Finding {
                repository: source.name.to_string(),
                level: Level::Defeats,
                what: format!("rule {rule:?} promotes into {name}, and ECR mounts no blob of an image a pull-through cache (prefix `{prefix}/`) created"),
                fix: "promote from a repository the images are pushed to".to_owned(),
            });
        }
        if let Err(refusal) = promote::compatible(registry, source, &target).await {
            out.push(refused(source.name.as_str(), &format!("rule {rule:?} promotes into {name}"), &refusal));
        }
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
