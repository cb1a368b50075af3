//! Writes: brings a push's planned tags in place, and says what happened to each.
//!
//! One read (BatchGetImage with the digest and every candidate tag) tells the
//! manifest and where each tag points now; then one PutImage per tag that does
//! not already point at the digest, concurrently within a bound. A push no
//! rule matches costs nothing.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use serde::Deserialize;

use crate::config::Config;
use crate::event::{EventError, Push};
use crate::names::{Digest, Tag};
use crate::plan::{self, Verdict};
use crate::registry::{Fault, Image, Lookup, PutError, ReadError, Registry, Repository, Snapshot, TagState};
use crate::report::{Outcome, Report, Status, TagReport};
use crate::rules::Subject;

/// Why an invocation failed. [`RetagError::retryable`] tells whether a later
/// delivery of the same event can succeed.
#[derive(Debug, thiserror::Error)]
pub enum RetagError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
    #[error("repository {repository:?} not found in registry {registry}")]
    RepositoryNotFound { repository: String, registry: String },
    #[error("image {reference} not found in repository {repository:?} (deleted after the push?)")]
    ImageNotFound { repository: String, reference: String },
    #[error("cannot tell the manifest media type of {digest}: neither ECR's answer, the event nor the manifest names one")]
    UnknownMediaType { digest: String },
    #[error("reading repository {repository:?} from ECR failed: {fault}")]
    Read { repository: String, fault: Fault },
    #[error("{}", not_applied(.report))]
    TagsNotApplied { report: Box<Report>, retryable: bool },
    #[error("stopped after {budget_ms} ms, before Lambda's timeout, with ECR calls still unanswered; a later delivery finishes the job")]
    DeadlineExceeded { budget_ms: u128 },
}

impl RetagError {
    pub fn retryable(&self) -> bool {
        match self {
            RetagError::Read { fault, .. } => fault.retryable,
            RetagError::TagsNotApplied { retryable, .. } => *retryable,
            RetagError::DeadlineExceeded { .. } => true,
            _ => false,
        }
    }

    /// `Retryable.<Kind>` or `Permanent.<Kind>`: the Lambda error type.
    pub fn error_type(&self) -> String {
        let kind = match self {
            RetagError::InvalidEvent(_) => "InvalidEvent",
            RetagError::RepositoryNotFound { .. } => "RepositoryNotFound",
            RetagError::ImageNotFound { .. } => "ImageNotFound",
            RetagError::UnknownMediaType { .. } => "UnknownMediaType",
            RetagError::Read { .. } => "ReadFailed",
            RetagError::TagsNotApplied { .. } => "TagsNotApplied",
            RetagError::DeadlineExceeded { .. } => "DeadlineExceeded",
        };
        format!("{}.{kind}", if self.retryable() { "Retryable" } else { "Permanent" })
    }

    /// The per-tag report, when the failure happened after planning.
    pub fn report(&self) -> Option<&Report> {
        match self {
            RetagError::TagsNotApplied { report, .. } => Some(report),
            _ => None,
        }
    }
}

/// The per-tag report of an invocation's result, when there is one.
pub fn report_of(result: &Result<Report, RetagError>) -> Option<&Report> {
    match result {
        Ok(report) => Some(report),
        Err(e) => e.report(),
    }
}

fn not_applied(report: &Report) -> String {
    let problems: Vec<String> = report
        .problems()
        .map(|t| match &t.detail {
            Some(d) => format!("`{}` {} ({d})", t.tag, t.outcome),
            None => format!("`{}` {}", t.tag, t.outcome),
        })
        .collect();
    format!(
        "{} of {} tags not in place for {}@{}: {}",
        problems.len(),
        report.tags.len(),
        report.repository.as_deref().unwrap_or("?"),
        report.digest.as_deref().unwrap_or("?"),
        problems.join("; ")
    )
}

/// Retags one push. `Ok` when every derived tag is in place (or would be, in a dry run).
pub async fn retag<R: Registry>(registry: &R, config: &Config, push: &Push) -> Result<Report, RetagError> {
    let repository = Repository {
        registry_id: push.registry_id.clone(),
        region: push.region.clone(),
        name: push.repository.clone(),
    };
    let dry_run = push.dry_run || config.dry_run;
    let mut report = Report {
        status: if dry_run { Status::DryRun } else { Status::Applied },
        reason: None,
        repository: Some(push.repository.to_string()),
        registry_id: push.registry_id.as_ref().map(ToString::to_string),
        digest: push.digest.as_ref().map(ToString::to_string),
        source_tag: Some(push.tag.to_string()),
        tags: Vec::new(),
    };
    if !config.rules.any_match(push.repository.as_str(), push.tag.as_str()) {
        report.status = Status::Ignored;
        report.reason = Some("no rule matches this repository and tag".to_owned());
        return Ok(report);
    }

    // A direct request without a digest: the tag's current digest (one extra read).
    let digest = match &push.digest {
        Some(d) => d.clone(),
        None => {
            let found = read(registry, &repository, Lookup::Tag(&push.tag), &[]).await?;
            let image = found.image.ok_or_else(|| RetagError::ImageNotFound {
                repository: push.repository.to_string(),
                reference: format!("tag {}", push.tag),
            })?;
            image.digest
        }
    };
    report.digest = Some(digest.to_string());

    let plan = plan::plan(
        &config.rules,
        &Subject { repository: push.repository.as_str(), tag: push.tag.as_str(), digest: &digest, pushed_at: push.pushed_at },
    );
    let mut tags: BTreeMap<String, TagReport> = BTreeMap::new();
    let mut candidates = Vec::new();
    for planned in plan.tags {
        let entry = TagReport { tag: planned.tag.clone(), rules: planned.rules, outcome: Outcome::Invalid, detail: None, retryable: false };
        match planned.verdict {
            Verdict::Write(tag) => candidates.push(tag),
            Verdict::Invalid(reason) => {
                tags.insert(planned.tag, TagReport { detail: Some(reason), ..entry });
                continue;
            }
        }
        tags.insert(planned.tag, entry);
    }

    if !candidates.is_empty() {
        let Snapshot { image, tags: current } = read(registry, &repository, Lookup::Digest(&digest), &candidates).await?;
        let image = image.ok_or_else(|| RetagError::ImageNotFound {
            repository: push.repository.to_string(),
            reference: digest.to_string(),
        })?;
        // Escaped (Debug) so a manifest's newlines stay inside one log line.
        tracing::debug!(digest = %image.digest, media_type = ?image.media_type, manifest = ?image.manifest, "manifest read");
        let mut to_write = Vec::new();
        for tag in candidates {
            let entry = entry(&mut tags, &tag);
            match current.get(&tag) {
                Some(TagState::At(d)) if *d == digest => settle(entry, Outcome::Unchanged, None),
                Some(TagState::At(other)) => to_write.push((tag, Some(other.clone()))),
                Some(TagState::Absent) | None => to_write.push((tag, None)),
                Some(TagState::Unreadable(fault)) => fail(entry, fault),
            }
        }
        if dry_run {
            for (tag, previous) in to_write {
                let entry = entry(&mut tags, &tag);
                match previous {
                    Some(p) => settle(entry, Outcome::WouldMove, Some(format!("was {p}"))),
                    None => settle(entry, Outcome::WouldCreate, None),
                }
            }
        } else if !to_write.is_empty() {
            let media_type = media_type(&image, push)?;
            write(registry, &repository, &image, &media_type, &digest, to_write, config.write_concurrency, &mut tags)
                .await?;
        }
    }

    report.tags = tags.into_values().collect();
    if report.problems().next().is_some() {
        let retryable = report.problems().any(|t| t.retryable);
        return Err(RetagError::TagsNotApplied { report: Box::new(report), retryable });
    }
    Ok(report)
}

/// Runs the PutImage calls and records each tag's outcome.
#[allow(clippy::too_many_arguments)]
async fn write<R: Registry>(
    registry: &R,
    repository: &Repository,
    image: &Image,
    media_type: &str,
    digest: &Digest,
    to_write: Vec<(Tag, Option<Digest>)>,
    concurrency: usize,
    tags: &mut BTreeMap<String, TagReport>,
) -> Result<(), RetagError> {
    let results: Vec<_> = stream::iter(to_write)
        .map(|(tag, previous)| async move {
            let result = registry.put(repository, image, media_type, &tag).await;
            (tag, previous, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;

    let mut immutable = Vec::new();
    for (tag, previous, result) in results {
        let entry = entry(tags, &tag);
        match (result, previous) {
            (Ok(()), Some(p)) => settle(entry, Outcome::Moved, Some(format!("was {p}"))),
            (Ok(()), None) => settle(entry, Outcome::Created, None),
            // Someone (a concurrent delivery of this same event) put it there first.
            (Err(PutError::AlreadyExists), _) => settle(entry, Outcome::Unchanged, None),
            (Err(PutError::TagImmutable), _) => immutable.push(tag),
            (Err(PutError::RepositoryNotFound), _) => {
                return Err(RetagError::RepositoryNotFound {
                    repository: repository.name.to_string(),
                    registry: registry_label(repository),
                })
            }
            (Err(PutError::Fault(fault)), _) => fail(entry, &fault),
        }
    }

    // ECR answers ImageTagAlreadyExistsException for an immutable tag wherever it
    // points, so only a fresh look tells "already ours" from a real conflict.
    if !immutable.is_empty() {
        match registry.read(repository, Lookup::Digest(digest), &immutable).await {
            Ok(now) => {
                for tag in immutable {
                    let entry = entry(tags, &tag);
                    match now.tags.get(&tag) {
                        Some(TagState::At(d)) if d == digest => settle(entry, Outcome::Unchanged, None),
                        Some(TagState::At(other)) => settle(
                            entry,
                            Outcome::Conflict,
                            Some(format!("the tag is immutable and points at {other}")),
                        ),
                        Some(TagState::Unreadable(fault)) => fail(entry, fault),
                        Some(TagState::Absent) | None => fail(
                            entry,
                            &Fault {
                                code: "ImageTagAlreadyExistsException".into(),
                                message: "ECR refused the immutable tag, yet it points nowhere on a re-read".into(),
                                retryable: true,
                            },
                        ),
                    }
                }
            }
            Err(e) => {
                let fault = match e {
                    ReadError::Fault(f) => f,
                    ReadError::RepositoryNotFound => Fault {
                        code: "RepositoryNotFoundException".into(),
                        message: "the repository disappeared while tagging".into(),
                        retryable: false,
                    },
                };
                for tag in immutable {
                    fail(entry(tags, &tag), &fault);
                }
            }
        }
    }
    Ok(())
}

async fn read<R: Registry>(
    registry: &R,
    repository: &Repository,
    image: Lookup<'_>,
    tags: &[Tag],
) -> Result<Snapshot, RetagError> {
    registry.read(repository, image, tags).await.map_err(|e| match e {
        ReadError::RepositoryNotFound => RetagError::RepositoryNotFound {
            repository: repository.name.to_string(),
            registry: registry_label(repository),
        },
        ReadError::Fault(fault) => RetagError::Read { repository: repository.name.to_string(), fault },
    })
}

/// ECR's own answer first, then the event's, then the manifest's `mediaType`
/// (OCI indexes and artifacts may have none, and PutImage then needs one).
fn media_type(image: &Image, push: &Push) -> Result<String, RetagError> {
    #[derive(Deserialize)]
    struct Declared {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    image
        .media_type
        .clone()
        .or_else(|| push.media_type.clone())
        .or_else(|| serde_json::from_str::<Declared>(&image.manifest).ok().and_then(|d| d.media_type))
        .ok_or_else(|| RetagError::UnknownMediaType { digest: image.digest.to_string() })
}

fn registry_label(repository: &Repository) -> String {
    repository.registry_id.as_ref().map_or_else(|| "(the caller's own)".to_owned(), ToString::to_string)
}

/// The report entry of a planned tag (every written tag was planned; an entry is made if not).
fn entry<'a>(tags: &'a mut BTreeMap<String, TagReport>, tag: &Tag) -> &'a mut TagReport {
    tags.entry(tag.to_string()).or_insert_with(|| TagReport {
        tag: tag.to_string(),
        rules: Vec::new(),
        outcome: Outcome::Failed,
        detail: None,
        retryable: false,
    })
}

fn settle(entry: &mut TagReport, outcome: Outcome, detail: Option<String>) {
    entry.outcome = outcome;
    entry.detail = detail;
    entry.retryable = false;
}

fn fail(entry: &mut TagReport, fault: &Fault) {
    entry.outcome = Outcome::Failed;
    entry.detail = Some(fault.to_string());
    entry.retryable = fault.retryable;
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::rules::RuleSet;

    const RELEASE: &str = r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}","v{major}.{minor}","{date:%Y%m%d}"]}]}"#;
    const MEDIA: &str = "application/vnd.docker.distribution.manifest.v2+json";

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn tag(t: &str) -> Tag {
        Tag::parse(t).unwrap()
    }

    /// An in-memory registry that behaves like ECR for these two calls and records them.
    #[derive(Default)]
    struct Fake {
        images: HashMap<Digest, Image>,
        tags: Mutex<HashMap<Tag, Digest>>,
        immutable: bool,
        repository_missing: bool,
        put_faults: HashMap<Tag, Fault>,
        calls: Mutex<Vec<String>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    impl Fake {
        fn with_image(d: &Digest, manifest: &str, media_type: Option<&str>) -> Self {
            let mut fake = Fake::default();
            fake.add_image(d, manifest, media_type);
            fake
        }
        fn add_image(&mut self, d: &Digest, manifest: &str, media_type: Option<&str>) {
            let image = Image { digest: d.clone(), manifest: manifest.into(), media_type: media_type.map(Into::into) };
            self.images.insert(d.clone(), image);
        }
        fn point(&self, t: &str, d: &Digest) {
            self.tags.lock().unwrap().insert(tag(t), d.clone());
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        fn tag_at(&self, t: &str) -> Option<Digest> {
            self.tags.lock().unwrap().get(&tag(t)).cloned()
        }
    }

    impl Registry for Fake {
        async fn read(&self, _: &Repository, image: Lookup<'_>, tags: &[Tag]) -> Result<Snapshot, ReadError> {
            self.calls.lock().unwrap().push(format!("read {}", tags.len()));
            if self.repository_missing {
                return Err(ReadError::RepositoryNotFound);
            }
            let current = self.tags.lock().unwrap().clone();
            let wanted = match image {
                Lookup::Digest(d) => Some(d.clone()),
                Lookup::Tag(t) => current.get(t).cloned(),
            };
            Ok(Snapshot {
                image: wanted.and_then(|d| self.images.get(&d).cloned()),
                tags: tags
                    .iter()
                    .map(|t| (t.clone(), current.get(t).map_or(TagState::Absent, |d| TagState::At(d.clone()))))
                    .collect(),
            })
        }

        async fn put(&self, _: &Repository, image: &Image, media_type: &str, t: &Tag) -> Result<(), PutError> {
            self.calls.lock().unwrap().push(format!("put {t} {media_type}"));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.repository_missing {
                return Err(PutError::RepositoryNotFound);
            }
            if let Some(f) = self.put_faults.get(t) {
                return Err(PutError::Fault(f.clone()));
            }
            let mut tags = self.tags.lock().unwrap();
            match tags.get(t) {
                Some(_) if self.immutable => Err(PutError::TagImmutable),
                Some(d) if *d == image.digest => Err(PutError::AlreadyExists),
                _ => {
                    tags.insert(t.clone(), image.digest.clone());
                    Ok(())
                }
            }
        }
    }

    fn config(rules: &str) -> Config {
        Config::with_rules(RuleSet::from_json(rules).unwrap())
    }

    fn push(t: &str, d: Option<&Digest>) -> Push {
        Push {
            registry_id: None,
            region: None,
            repository: crate::names::RepositoryName::parse("app").unwrap(),
            tag: tag(t),
            digest: d.cloned(),
            pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(),
            media_type: None,
            dry_run: false,
        }
    }

    fn outcomes(report: &Report) -> Vec<(&str, Outcome)> {
        report.tags.iter().map(|t| (t.tag.as_str(), t.outcome)).collect()
    }

    async fn run(fake: &Fake, rules: &str, p: &Push) -> Result<Report, RetagError> {
        retag(fake, &config(rules), p).await
    }

    #[tokio::test]
    async fn given_a_release_push_then_each_derived_tag_is_created_with_one_read() {
        let d = digest(1);
        let fake = Fake::with_image(&d, "{}", Some(MEDIA));
        fake.point("v1.4.2", &d);
        let report = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
        assert_eq!(report.status, Status::Applied);
        assert_eq!(
            outcomes(&report),
            [("20261124", Outcome::Created), ("stable", Outcome::Created), ("v1", Outcome::Created), ("v1.4", Outcome::Created)]
        );
        let mut calls = fake.calls();
        calls.sort();
        assert_eq!(
            calls,
            [
                format!("put 20261124 {MEDIA}"),
                format!("put stable {MEDIA}"),
                format!("put v1 {MEDIA}"),
                format!("put v1.4 {MEDIA}"),
                "read 4".to_string()
            ]
        );
        for t in ["stable", "v1", "v1.4", "20261124"] {
            assert_eq!(fake.tag_at(t), Some(d.clone()));
        }
        assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 4, "independent writes run concurrently");
    }

    #[tokio::test]
    async fn given_the_tags_are_in_place_when_the_event_comes_again_then_nothing_is_written() {
        let d = digest(1);
        let fake = Fake::with_image(&d, "{}", Some(MEDIA));
        run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
        fake.calls.lock().unwrap().clear();
        let report = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
        assert!(report.tags.iter().all(|t| t.outcome == Outcome::Unchanged), "{report:?}");
        assert_eq!(fake.calls(), ["read 4"]);
    }

    #[tokio::test]
    async fn given_no_rule_matches_then_no_call_is_made() {
        let fake = Fake::default();
        let report = run(&fake, RELEASE, &push("latest", Some(&digest(1)))).await.unwrap();
        assert_eq!(report.status, Status::Ignored);
        assert!(report.reason.unwrap().contains("no rule matches"));
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn given_stable_on_another_image_then_it_moves_and_says_from_where() {
        let (old, new) = (digest(1), digest(2));
        let fake = Fake::with_image(&new, "{}", Some(MEDIA));
        fake.point("stable", &old);
        let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#, &push("v2.0.0", Some(&new)))
            .await
            .unwrap();
        assert_eq!(report.tags[0].outcome, Outcome::Moved);
        assert_eq!(report.tags[0].detail.as_deref(), Some(format!("was {old}").as_str()));
        assert_eq!(fake.tag_at("stable"), Some(new));
    }

    #[tokio::test]
    async fn a_dry_run_reads_but_never_writes() {
        let (old, new) = (digest(1), digest(2));
        let fake = Fake::with_image(&new, "{}", Some(MEDIA));
        fake.point("stable", &old);
        let mut p = push("v2.0.0", Some(&new));
        p.dry_run = true;
        let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable","v{major}"]}]}"#, &p).await.unwrap();
        assert_eq!(report.status, Status::DryRun);
        assert_eq!(outcomes(&report), [("stable", Outcome::WouldMove), ("v2", Outcome::WouldCreate)]);
        assert_eq!(fake.calls(), ["read 2"]);
        assert_eq!(fake.tag_at("stable"), Some(old));
    }

    #[tokio::test]
    async fn an_immutable_tag_already_on_this_image_is_unchanged_and_elsewhere_a_conflict() {
        let (mine, other) = (digest(1), digest(2));
        let mut fake = Fake::with_image(&mine, "{}", Some(MEDIA));
        fake.immutable = true;
        fake.point("stable", &other);
        let err = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable","v{major}"]}]}"#, &push("v1.0.0", Some(&mine)))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Permanent.TagsNotApplied");
        let report = err.report().unwrap();
        assert_eq!(outcomes(report), [("stable", Outcome::Conflict), ("v1", Outcome::Created)]);
        assert!(err.to_string().contains("`stable` conflict (the tag is immutable and points at"), "{err}");
        assert_eq!(fake.calls().iter().filter(|c| c.starts_with("read")).count(), 2, "conflicts are re-read once");
    }

    #[tokio::test]
    async fn an_immutable_tag_written_by_a_concurrent_delivery_is_unchanged() {
        // The read says absent, but by the time of PutImage another delivery wrote it.
        struct Racing(Fake);
        impl Registry for Racing {
            async fn read(&self, r: &Repository, i: Lookup<'_>, t: &[Tag]) -> Result<Snapshot, ReadError> {
                self.0.read(r, i, t).await
            }
            async fn put(&self, r: &Repository, image: &Image, m: &str, t: &Tag) -> Result<(), PutError> {
                self.0.point(t.as_str(), &image.digest);
                self.0.put(r, image, m, t).await
            }
        }
        let d = digest(1);
        let mut fake = Fake::with_image(&d, "{}", Some(MEDIA));
        fake.immutable = true;
        let racing = Racing(fake);
        let report = retag(&racing, &config(RELEASE), &push("v1.4.2", Some(&d))).await.unwrap();
        assert!(report.tags.iter().all(|t| t.outcome == Outcome::Unchanged), "{report:?}");
    }

    #[tokio::test]
    async fn a_retryable_write_failure_fails_the_invocation_as_retryable_and_keeps_the_rest() {
        let d = digest(1);
        let mut fake = Fake::with_image(&d, "{}", Some(MEDIA));
        fake.put_faults.insert(
            tag("v1"),
            Fault { code: "ThrottlingException".into(), message: "Rate exceeded".into(), retryable: true },
        );
        let err = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap_err();
        assert_eq!(err.error_type(), "Retryable.TagsNotApplied");
        let report = err.report().unwrap();
        assert_eq!(report.tags.iter().filter(|t| t.outcome == Outcome::Created).count(), 3);
        assert!(err.to_string().starts_with("1 of 4 tags not in place for app@sha256:0101"), "{err}");
        assert!(err.to_string().contains("`v1` failed (ThrottlingException: Rate exceeded)"), "{err}");
    }

    #[tokio::test]
    async fn a_deleted_image_or_repository_is_a_permanent_error() {
        let fake = Fake::default();
        let err = run(&fake, RELEASE, &push("v1.4.2", Some(&digest(9)))).await.unwrap_err();
        assert_eq!(err.error_type(), "Permanent.ImageNotFound");
        assert!(err.to_string().contains(&digest(9).to_string()));

        let fake = Fake { repository_missing: true, ..Fake::default() };
        let err = run(&fake, RELEASE, &push("v1.4.2", Some(&digest(9)))).await.unwrap_err();
        assert_eq!(err.error_type(), "Permanent.RepositoryNotFound");
        assert_eq!(fake.calls().len(), 1, "no retry storm: one read, then stop");
    }

    #[tokio::test]
    async fn a_direct_request_without_digest_uses_the_tags_current_image() {
        let d = digest(3);
        let fake = Fake::with_image(&d, "{}", Some(MEDIA));
        fake.point("v1.4.2", &d);
        let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["sha-{digest:6}"]}]}"#, &push("v1.4.2", None))
            .await
            .unwrap();
        assert_eq!(report.digest.as_deref(), Some(d.as_str()));
        assert_eq!(outcomes(&report), [("sha-030303", Outcome::Created)]);
        assert_eq!(fake.calls()[0], "read 0", "first the tag is resolved");

        let err = run(&fake, RELEASE, &push("v9.9.9", None)).await.unwrap_err();
        assert_eq!(err.error_type(), "Permanent.ImageNotFound");
    }

    #[tokio::test]
    async fn an_invalid_rendering_fails_permanently_but_valid_tags_are_written() {
        let d = digest(1);
        let fake = Fake::with_image(&d, "{}", Some(MEDIA));
        let err = run(&fake, r#"{"rules":[{"name":"r","match":"x(.*)","tags":["{1}","ok"]}]}"#, &push("x", Some(&d)))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Permanent.TagsNotApplied");
        assert_eq!(outcomes(err.report().unwrap()), [("", Outcome::Invalid), ("ok", Outcome::Created)]);
    }

    #[tokio::test]
    async fn the_media_type_falls_back_to_the_event_then_the_manifest() {
        let d = digest(1);
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let fake = Fake::with_image(&d, index, None);
        run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
        assert!(fake.calls().iter().any(|c| c == "put stable application/vnd.oci.image.index.v1+json"));

        let fake = Fake::with_image(&d, r#"{"schemaVersion":2,"manifests":[]}"#, None);
        let mut p = push("v1.4.2", Some(&d));
        p.media_type = Some("application/vnd.oci.image.index.v1+json".into());
        run(&fake, RELEASE, &p).await.unwrap();
        assert!(fake.calls().iter().any(|c| c == "put stable application/vnd.oci.image.index.v1+json"));

        let fake = Fake::with_image(&d, r#"{"schemaVersion":2,"manifests":[]}"#, None);
        let err = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap_err();
        assert_eq!(err.error_type(), "Permanent.UnknownMediaType");
        assert!(fake.calls().iter().all(|c| c.starts_with("read")), "nothing is written without a media type");
    }

    #[tokio::test]
    async fn writes_stay_within_the_concurrency_bound() {
        let d = digest(1);
        let fake = Fake::with_image(&d, "{}", Some(MEDIA));
        let mut c = config(r#"{"rules":[{"name":"r","semver":true,"tags":["a","b","c","d","e"]}]}"#);
        c.write_concurrency = 2;
        retag(&fake, &c, &push("v1.0.0", Some(&d))).await.unwrap();
        assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 2);
        assert_eq!(fake.calls().len(), 6);
    }
}
