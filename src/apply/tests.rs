//! The event path through its triggers, on the in-memory registry: a push's, a scan's and a
//! cosign signature's tags, the calls each costs, and what each tag's outcome says.

use crate::apply::{promote_scanned, retag, Settings};
use crate::domain::names::{Digest, Tag};
use crate::domain::request::{Push, ScanResult, Sources};
use crate::error::RetagError;
use crate::registry::{Image, Repository};
use crate::report::{Outcome, Report, Status};

use crate::error::{Fault, FaultKind};
use crate::registry::memory::{Call, Failure, Memory};
use crate::registry::PutError;
use crate::domain::rules::RuleSet;

const RELEASE: &str = r#"{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}","v{major}.{minor}","{date:%Y%m%d}"]}]}"#;
const MEDIA: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn digest(n: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

fn tag(t: &str) -> Tag {
    Tag::parse(t).unwrap()
}

/// Repository "app" holding image `d`.
fn app_with(d: &Digest, manifest: &str, media_type: Option<&str>) -> Memory {
    let memory = Memory::with_repositories(&["app"]);
    memory.add_image("app", Image { digest: d.clone(), manifest: manifest.into(), media_type: media_type.map(Into::into) }, None);
    memory
}

fn point(memory: &Memory, t: &str, d: &Digest) {
    memory.point("app", &tag(t), d);
}

fn tag_at(memory: &Memory, t: &str) -> Option<Digest> {
    memory.tag("app", &tag(t))
}

/// The calls in short: `read N`, `put TAG MEDIA-TYPE`, `tags_of HHHH`, `remove TAG`, `repository_tags`.
fn log(memory: &Memory) -> Vec<String> {
    memory
        .calls()
        .into_iter()
        .map(|c| match c {
            Call::Read { tags } => format!("read {tags}"),
            Call::Put { tag, media_type, .. } => format!("put {tag} {media_type}"),
            Call::TagsOf(d) => format!("tags_of {}", &d.hex()[..4]),
            Call::Remove(t) => format!("remove {t}"),
            other => other.kind().to_owned(),
        })
        .collect()
}

fn throttled(t: &str, message: &str) -> Failure {
    Failure::Put(Some(tag(t)), PutError::Fault(Fault::new(FaultKind::Throttled, "ThrottlingException", message)))
}

fn config(rules: &str) -> Settings {
    Settings::new(RuleSet::from_json(rules).unwrap())
}

fn push(t: &str, d: Option<&Digest>) -> Push {
    Push {
        repository: Repository::own(crate::domain::names::RepositoryName::parse("app").unwrap()),
        tag: tag(t),
        digest: d.cloned(),
        pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(),
        media_type: None,
        artifact_media_type: None,
        dry_run: false,
    }
}

fn outcomes(report: &Report) -> Vec<(&str, Outcome)> {
    report.tags.iter().map(|t| (t.tag.as_str(), t.outcome)).collect()
}

async fn run(fake: &Memory, rules: &str, p: &Push) -> Result<Report, RetagError> {
    retag(fake, &config(rules), p).await
}

#[tokio::test]
async fn given_a_release_push_then_each_derived_tag_is_created_with_one_read() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    point(&fake, "v1.4.2", &d);
    let report = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
    assert_eq!(report.status, Status::Applied);
    assert_eq!(
        outcomes(&report),
        [("20261124", Outcome::Created), ("stable", Outcome::Created), ("v1", Outcome::Created), ("v1.4", Outcome::Created)]
    );
    // One read of the four tags and of the pushed one (is the event still the tag's?).
    let mut calls = log(&fake);
    calls.sort();
    assert_eq!(
        calls,
        [
            format!("put 20261124 {MEDIA}"),
            format!("put stable {MEDIA}"),
            format!("put v1 {MEDIA}"),
            format!("put v1.4 {MEDIA}"),
            "read 5".to_string()
        ]
    );
    for t in ["stable", "v1", "v1.4", "20261124"] {
        assert_eq!(tag_at(&fake, t), Some(d.clone()));
    }
    assert_eq!(fake.max_in_flight(), 4, "independent writes run concurrently");
}

#[tokio::test]
async fn given_the_tags_are_in_place_when_the_event_comes_again_then_nothing_is_written() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
    fake.clear_calls();
    let report = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
    assert!(report.tags.iter().all(|t| t.outcome == Outcome::Unchanged), "{report:?}");
    assert_eq!(log(&fake), ["read 5"]);
}

#[tokio::test]
async fn given_no_rule_matches_then_no_call_is_made() {
    let fake = Memory::with_repositories(&["app"]);
    let report = run(&fake, RELEASE, &push("latest", Some(&digest(1)))).await.unwrap();
    assert_eq!(report.status, Status::Ignored);
    assert!(report.reason.unwrap().contains("no rule matches"));
    assert!(log(&fake).is_empty());
}

#[tokio::test]
async fn given_stable_on_another_image_then_it_moves_and_says_from_where() {
    let (old, new) = (digest(1), digest(2));
    let fake = app_with(&new, "{}", Some(MEDIA));
    point(&fake, "stable", &old);
    let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#, &push("v2.0.0", Some(&new)))
        .await
        .unwrap();
    assert_eq!(report.tags[0].outcome, Outcome::Moved);
    assert_eq!(report.tags[0].detail.as_deref(), Some(format!("was {old}").as_str()));
    assert_eq!(tag_at(&fake, "stable"), Some(new));
}

#[tokio::test]
async fn a_dry_run_reads_but_never_writes() {
    let (old, new) = (digest(1), digest(2));
    let fake = app_with(&new, "{}", Some(MEDIA));
    point(&fake, "stable", &old);
    let mut p = push("v2.0.0", Some(&new));
    p.dry_run = true;
    let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable","v{major}"]}]}"#, &p).await.unwrap();
    assert_eq!(report.status, Status::DryRun);
    assert_eq!(outcomes(&report), [("stable", Outcome::WouldMove), ("v2", Outcome::WouldCreate)]);
    assert_eq!(log(&fake), ["read 3"]);
    assert_eq!(tag_at(&fake, "stable"), Some(old));
}

#[tokio::test]
async fn an_immutable_tag_already_on_this_image_is_unchanged_and_elsewhere_a_conflict() {
    let (mine, other) = (digest(1), digest(2));
    let fake = app_with(&mine, "{}", Some(MEDIA));
    fake.set_immutable("app");
    point(&fake, "stable", &other);
    let err = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable","v{major}"]}]}"#, &push("v1.0.0", Some(&mine)))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Permanent.TagsNotApplied");
    let report = err.report().unwrap();
    assert_eq!(outcomes(report), [("stable", Outcome::Conflict), ("v1", Outcome::Created)]);
    assert!(err.to_string().contains("`stable` conflict (the tag is immutable and points at"), "{err}");
    assert_eq!(log(&fake).iter().filter(|c| c.starts_with("read")).count(), 2, "conflicts are re-read once");
}

#[tokio::test(start_paused = true)]
async fn a_second_look_revises_the_promoted_tag_it_concerns_not_the_home_tag_of_the_same_name() {
    let (mine, newer) = (digest(3), digest(4));
    let fake = app_with(&mine, "{}", Some(MEDIA));
    fake.add_repository("prod/app");
    fake.add_image("prod/app", Image { digest: newer.clone(), manifest: r#"{"n":4}"#.into(), media_type: Some(MEDIA.into()) }, None);
    fake.point("prod/app", &tag("v1.4.0"), &newer);
    // The last registered runs first: the home put sees nothing; right after the target's, a
    // newer version takes the target's `stable`.
    let moved = newer.clone();
    fake.after_put(move |tags| {
        tags.insert(tag("stable"), moved);
    });
    fake.after_put(|_| {});
    let rules = r#"{"rules":[
        {"name":"home","semver":true,"repositories":["app"],"move":"if-newer","tags":["stable"]},
        {"name":"promote","semver":true,"repositories":["app"],"to":"prod/{repository}","move":"if-newer","tags":["stable"]}]}"#;
    let report = run(&fake, rules, &push("v1.3.0", Some(&mine))).await.unwrap();
    let got: Vec<(Option<&str>, &str, Outcome)> = report.tags.iter().map(|t| (t.repository.as_deref(), t.tag.as_str(), t.outcome)).collect();
    assert_eq!(got, [(None, "stable", Outcome::Created), (Some("prod/app"), "stable", Outcome::Superseded)]);
    assert_eq!((tag_at(&fake, "stable"), fake.tag("prod/app", &tag("stable"))), (Some(mine), Some(newer)));
}

#[tokio::test]
async fn an_immutable_tag_written_by_a_concurrent_delivery_is_unchanged() {
    // The read says absent, but by the time of PutImage another delivery wrote them all.
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    fake.set_immutable("app");
    let theirs = d.clone();
    fake.before_put(move |tags| {
        for t in ["20261124", "stable", "v1", "v1.4"] {
            tags.insert(tag(t), theirs.clone());
        }
    });
    let report = retag(&fake, &config(RELEASE), &push("v1.4.2", Some(&d))).await.unwrap();
    assert!(report.tags.iter().all(|t| t.outcome == Outcome::Unchanged), "{report:?}");
}

#[tokio::test]
async fn a_retryable_write_failure_fails_the_invocation_as_retryable_and_keeps_the_rest() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    fake.fail(throttled("v1", "Rate exceeded"), None);
    let err = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap_err();
    assert_eq!(err.error_type(), "Retryable.TagsNotApplied");
    let report = err.report().unwrap();
    assert_eq!(report.tags.iter().filter(|t| t.outcome == Outcome::Created).count(), 3);
    assert!(err.to_string().starts_with("1 of 4 tags not in place for app@sha256:0101"), "{err}");
    assert!(err.to_string().contains("`v1` failed (ThrottlingException: Rate exceeded)"), "{err}");
}

#[tokio::test]
async fn a_deleted_image_or_repository_is_a_permanent_error() {
    let fake = Memory::with_repositories(&["app"]);
    let err = run(&fake, RELEASE, &push("v1.4.2", Some(&digest(9)))).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.ImageNotFound");
    assert!(err.to_string().contains(&digest(9).to_string()));

    let fake = Memory::default();
    let err = run(&fake, RELEASE, &push("v1.4.2", Some(&digest(9)))).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.RepositoryNotFound");
    assert_eq!(log(&fake).len(), 1, "no retry storm: one read, then stop");
}

#[tokio::test]
async fn a_direct_request_without_digest_uses_the_tags_current_image() {
    let d = digest(3);
    let fake = app_with(&d, "{}", Some(MEDIA));
    point(&fake, "v1.4.2", &d);
    let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["sha-{digest:6}"]}]}"#, &push("v1.4.2", None))
        .await
        .unwrap();
    assert_eq!(report.digest.as_deref(), Some(d.as_str()));
    assert_eq!(outcomes(&report), [("sha-030303", Outcome::Created)]);
    assert_eq!(log(&fake)[0], "read 0", "first the tag is resolved");

    let err = run(&fake, RELEASE, &push("v9.9.9", None)).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.ImageNotFound");
}

#[tokio::test]
async fn an_invalid_rendering_fails_permanently_but_valid_tags_are_written() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
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
    let fake = app_with(&d, index, None);
    run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
    assert!(log(&fake).iter().any(|c| c == "put stable application/vnd.oci.image.index.v1+json"));

    let fake = app_with(&d, r#"{"schemaVersion":2,"manifests":[]}"#, None);
    let mut p = push("v1.4.2", Some(&d));
    p.media_type = Some("application/vnd.oci.image.index.v1+json".into());
    run(&fake, RELEASE, &p).await.unwrap();
    assert!(log(&fake).iter().any(|c| c == "put stable application/vnd.oci.image.index.v1+json"));

    let fake = app_with(&d, r#"{"schemaVersion":2,"manifests":[]}"#, None);
    let err = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.UnknownMediaType");
    assert!(log(&fake).iter().all(|c| c.starts_with("read")), "nothing is written without a media type");
}

const CAREFUL: &str = r#"{"rules":[{"name":"release","semver":true,"move":"if-newer","tags":["stable","v{major}","v{major}.{minor}"]}]}"#;

// Paused clock: the second look's wait passes at once.
#[tokio::test(start_paused = true)]
async fn given_v1_3_0_holds_the_line_when_v1_2_9_is_pushed_then_only_v1_2_moves() {
    let (old_line, new_line, hotfix) = (digest(1), digest(2), digest(3));
    let fake = app_with(&hotfix, "{}", Some(MEDIA));
    for t in ["v1.3.0", "v1.3", "v1", "stable"] {
        point(&fake, t, &new_line);
    }
    point(&fake, "v1.2", &old_line);
    point(&fake, "v1.2.8", &old_line);
    let report = run(&fake, CAREFUL, &push("v1.2.9", Some(&hotfix))).await.unwrap();
    assert_eq!(
        outcomes(&report),
        [("stable", Outcome::SkippedNotNewer), ("v1", Outcome::SkippedNotNewer), ("v1.2", Outcome::Moved)]
    );
    assert_eq!(
        report.tags[0].detail.as_deref(),
        Some(format!("held by {new_line} at version 1.3.0; 1.2.9 is not newer").as_str())
    );
    assert_eq!((tag_at(&fake, "stable"), tag_at(&fake, "v1.2")), (Some(new_line.clone()), Some(hotfix)));
    let mut calls = log(&fake);
    calls.sort();
    assert_eq!(
        calls,
        [format!("put v1.2 {MEDIA}"), "read 1".into(), "read 4".into(), "tags_of 0101".into(), "tags_of 0202".into()],
        "one look per holder, and a second look at the moved tag"
    );
}

// Paused clock: the second look's wait passes at once.
#[tokio::test(start_paused = true)]
async fn a_newer_version_moves_and_a_holder_without_version_counts_as_older() {
    let (held, pushed) = (digest(1), digest(2));
    let fake = app_with(&pushed, "{}", Some(MEDIA));
    point(&fake, "v1.3.0", &held);
    point(&fake, "stable", &held);
    let report = run(&fake, CAREFUL, &push("v1.10.0", Some(&pushed))).await.unwrap();
    assert_eq!(outcomes(&report), [("stable", Outcome::Moved), ("v1", Outcome::Created), ("v1.10", Outcome::Created)], "1.10 > 1.3 by precedence, not by text");

    let fake = app_with(&pushed, "{}", Some(MEDIA));
    point(&fake, "stable", &held);
    point(&fake, "latest", &held);
    let report = run(&fake, CAREFUL, &push("v0.1.0", Some(&pushed))).await.unwrap();
    assert_eq!(report.tags.iter().find(|t| t.tag == "stable").map(|t| t.outcome), Some(Outcome::Moved));
}

// Paused clock: the second look's wait passes at once.
#[tokio::test(start_paused = true)]
async fn if_newer_costs_no_extra_read_unless_a_tag_would_move() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    run(&fake, CAREFUL, &push("v1.4.2", Some(&d))).await.unwrap();
    assert!(log(&fake).iter().all(|c| !c.starts_with("tags_of")), "{:?}", log(&fake));
}

const GATED: &str = r#"{"rules":[
    {"name":"scanned","semver":true,"when":{"scan":"MEDIUM"},"tags":["stable"]},
    {"name":"plain","semver":true,"tags":["v{major}"]}
]}"#;

fn scan(d: &Digest, tags: &[&str], findings: &[(&str, u64)]) -> ScanResult {
    ScanResult {
        repository: Repository::own(crate::domain::names::RepositoryName::parse("app").unwrap()),
        digest: d.clone(),
        tags: Sources::new(tags.iter().map(|t| tag(t)).collect()).unwrap(),
        scanned_at: "2026-11-24T10:20:00Z".parse().unwrap(),
        findings: crate::domain::scan::Findings { unsplit: None, counts: findings.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect() },
    }
}

#[tokio::test]
async fn a_scan_gated_tag_is_deferred_on_push_and_written_when_the_scan_passes() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    point(&fake, "v1.4.2", &d);
    let report = run(&fake, GATED, &push("v1.4.2", Some(&d))).await.unwrap();
    assert_eq!(outcomes(&report), [("stable", Outcome::Deferred), ("v1", Outcome::Created)]);
    assert_eq!(tag_at(&fake, "stable"), None);

    let report = promote_scanned(&fake, &config(GATED), &scan(&d, &["v1.4.2", "v1"], &[("MEDIUM", 4), ("LOW", 7)])).await.unwrap();
    assert_eq!(outcomes(&report), [("stable", Outcome::Created)], "the ungated v1 is not touched again");
    assert_eq!(tag_at(&fake, "stable"), Some(d));
    let scanned = report.scan.unwrap();
    assert_eq!((scanned.image_tags.len(), scanned.findings.get("MEDIUM")), (2, Some(&4)));
}

#[tokio::test]
async fn a_scan_with_findings_above_the_gate_blocks_without_writing() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    let report = promote_scanned(&fake, &config(GATED), &scan(&d, &["v1.4.2"], &[("HIGH", 1), ("MEDIUM", 4)])).await.unwrap();
    assert_eq!(report.status, Status::Applied, "a policy decision, not an error to retry");
    assert_eq!(outcomes(&report), [("stable", Outcome::Blocked)]);
    assert_eq!(report.tags[0].detail.as_deref(), Some("the scan found HIGH 1, MEDIUM 4; the rule allows findings up to MEDIUM"));
    assert!(log(&fake).is_empty(), "nothing to write, nothing read");

    let all_deferred = r#"{"rules":[{"name":"g","semver":true,"when":{"scan":"LOW"},"tags":["stable"]}]}"#;
    run(&fake, all_deferred, &push("v1.4.2", Some(&d))).await.unwrap();
    assert!(log(&fake).is_empty(), "a push whose tags all wait costs no call");
    let ungated = promote_scanned(&fake, &config(RELEASE), &scan(&d, &["v1.4.2"], &[])).await.unwrap();
    assert_eq!(ungated.status, Status::Ignored);
}

const RETIRE: &str = r#"{"rules":[{"name":"retire","match":"latest","remove_source":true,"tags":["edge","main"]}]}"#;

#[tokio::test]
async fn the_source_tag_is_removed_once_every_derived_tag_is_in_place() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    point(&fake, "latest", &d);
    let report = run(&fake, RETIRE, &push("latest", Some(&d))).await.unwrap();
    assert_eq!(outcomes(&report), [("edge", Outcome::Created), ("latest", Outcome::Removed), ("main", Outcome::Created)]);
    assert_eq!((tag_at(&fake, "latest"), tag_at(&fake, "edge")), (None, Some(d.clone())));
    assert_eq!(log(&fake).last().map(String::as_str), Some("remove latest"));
    assert_eq!(log(&fake).iter().filter(|c| c.starts_with("read")).count(), 2, "a re-read right before removing");

    // The event comes again: nothing left to do.
    let report = run(&fake, RETIRE, &push("latest", Some(&d))).await.unwrap();
    assert_eq!(report.tags.iter().find(|t| t.tag == "latest").and_then(|t| t.detail.as_deref()), Some("already gone"));
}

#[tokio::test]
async fn the_source_tag_stays_when_a_derived_tag_did_not_land_or_it_moved_on() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    point(&fake, "latest", &d);
    fake.fail(throttled("main", "slow"), None);
    let err = run(&fake, RETIRE, &push("latest", Some(&d))).await.unwrap_err();
    let latest = err.report().unwrap().tags.iter().find(|t| t.tag == "latest").unwrap().clone();
    assert_eq!(latest.outcome, Outcome::Kept);
    assert_eq!(latest.detail.as_deref(), Some("kept: not every derived tag is in place (`main` failed)"));
    assert!(log(&fake).iter().all(|c| !c.starts_with("remove")));
    assert_eq!(tag_at(&fake, "latest"), Some(d.clone()));

    // The pipeline pushed `latest` again (another image) before this event was handled: the
    // event is stale, so nothing moves to the older image and nothing is removed.
    let fake = app_with(&d, "{}", Some(MEDIA));
    point(&fake, "latest", &digest(2));
    let report = run(&fake, RETIRE, &push("latest", Some(&d))).await.unwrap();
    assert_eq!(outcomes(&report), [("edge", Outcome::Superseded), ("latest", Outcome::Kept), ("main", Outcome::Superseded)]);
    let edge = report.tags.iter().find(|t| t.tag == "edge").unwrap();
    assert!(edge.detail.as_deref().unwrap().contains("latest was pushed onto sha256:0202"), "{edge:?}");
    assert!(log(&fake).iter().all(|c| !c.starts_with("put") && !c.starts_with("remove")), "{:?}", log(&fake));
    assert_eq!(tag_at(&fake, "latest"), Some(digest(2)));

    // A rule deriving nothing but the source itself never removes it.
    let fake = app_with(&d, "{}", Some(MEDIA));
    point(&fake, "latest", &d);
    let own = r#"{"rules":[{"name":"self","match":"latest","remove_source":true,"tags":["{tag}"]}]}"#;
    let report = run(&fake, own, &push("latest", Some(&d))).await.unwrap();
    assert_eq!(outcomes(&report), [("latest", Outcome::Kept)]);
    assert_eq!(tag_at(&fake, "latest"), Some(d));
}

#[tokio::test]
async fn rules_with_repository_tags_apply_only_to_repositories_that_carry_them() {
    let opt_in = r#"{"rules":[{"name":"opt-in","semver":true,"repository_tags":{"retag":"enabled"},"tags":["stable"]}]}"#;
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    let report = run(&fake, opt_in, &push("v1.0.0", Some(&d))).await.unwrap();
    assert_eq!(report.status, Status::Ignored);
    assert_eq!(report.reason.as_deref(), Some("no rule applies: rule \"opt-in\" needs repository tag retag=enabled"));
    assert_eq!(log(&fake), ["repository_tags"]);

    let fake = app_with(&d, "{}", Some(MEDIA));
    fake.set_resource_tags("app", &[("retag", "enabled")]);
    let report = run(&fake, opt_in, &push("v1.0.0", Some(&d))).await.unwrap();
    assert_eq!(outcomes(&report), [("stable", Outcome::Created)]);
    assert!(run(&fake, RELEASE, &push("v1.0.0", Some(&d))).await.is_ok());
    assert_eq!(log(&fake).iter().filter(|c| *c == "repository_tags").count(), 1, "rules without the field never look");
}

#[tokio::test]
async fn writes_stay_within_the_concurrency_bound() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    let mut c = config(r#"{"rules":[{"name":"r","semver":true,"tags":["a","b","c","d","e"]}]}"#);
    c.write_concurrency = 2;
    retag(&fake, &c, &push("v1.0.0", Some(&d))).await.unwrap();
    assert_eq!(fake.max_in_flight(), 2);
    assert_eq!(log(&fake).len(), 6);
}

const CATCH_ALL: &str = r#"{"rules":[{"name":"all","match":".*","tags":["latest"]}]}"#;

#[tokio::test]
async fn a_signature_tag_is_ignored_as_an_artifact_without_a_call() {
    let d = digest(2);
    let fake = app_with(&d, "{}", Some(MEDIA));
    for tag in [format!("sha256-{}.sig", digest(1).hex()), format!("sha256-{}", digest(1).hex())] {
        let report = run(&fake, CATCH_ALL, &push(&tag, Some(&d))).await.unwrap();
        assert_eq!(report.status, Status::Ignored, "{tag}");
        let reason = report.reason.unwrap();
        assert!(reason.contains("an artifact, not an image") && reason.contains(&tag), "{reason}");
    }
    assert!(log(&fake).is_empty(), "told by the tag: no call");
    assert_eq!(tag_at(&fake, "latest"), None);
}

#[tokio::test]
async fn an_event_naming_an_sbom_type_costs_no_call() {
    let d = digest(2);
    let fake = app_with(&d, "{}", Some(MEDIA));
    let mut p = push("v1.4.2", Some(&d));
    p.artifact_media_type = Some("application/spdx+json".into());
    let report = run(&fake, CATCH_ALL, &p).await.unwrap();
    assert_eq!(report.reason.as_deref().map(|r| r.starts_with("an SPDX SBOM (media type application/spdx+json)")), Some(true));
    assert!(log(&fake).is_empty());
}

#[tokio::test]
async fn a_referrer_told_only_by_its_manifest_is_read_once_and_never_written() {
    let d = digest(2);
    let referrer = format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.empty.v1+json"}},"layers":[],"subject":{{"digest":"{}"}}}}"#, digest(1));
    let fake = app_with(&d, &referrer, Some(MEDIA));
    let report = run(&fake, CATCH_ALL, &push("signed", Some(&d))).await.unwrap();
    assert_eq!(report.status, Status::Ignored);
    assert!(report.reason.unwrap().starts_with(&format!("a referrer of {}", digest(1))));
    assert_eq!(log(&fake), ["read 2"], "the read that shows the manifest, and no write");
}

#[tokio::test]
async fn only_a_rule_that_opts_in_tags_an_artifact() {
    let rules = r#"{"rules":[
        {"name":"all","match":".*","tags":["latest"]},
        {"name":"signatures","match":"sha256-.*","artifacts":true,"tags":["signature"]}
    ]}"#;
    let d = digest(2);
    let fake = app_with(&d, "{}", Some(MEDIA));
    let report = run(&fake, rules, &push(&format!("sha256-{}.sig", digest(1).hex()), Some(&d))).await.unwrap();
    assert_eq!(outcomes(&report), [("signature", Outcome::Created)], "not latest: that rule does not opt in");
    assert_eq!(tag_at(&fake, "latest"), None);
}


#[tokio::test]
async fn an_archived_image_gets_no_tag_and_says_why_without_failing() {
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    fake.archive("app", &d);
    let report = run(&fake, RELEASE, &push("v1.4.2", Some(&d))).await.unwrap();
    assert!(report.tags.iter().all(|t| t.outcome == Outcome::Archived), "{report:?}");
    assert!(report.tags[0].detail.as_deref().unwrap().starts_with("the image is archived: putting it again would restore it"));
    assert_eq!(log(&fake), ["read 5"], "one read, no write");
}

#[tokio::test]
async fn a_tag_held_by_an_archived_image_moves_off_it() {
    let (old, new) = (digest(1), digest(2));
    let fake = app_with(&new, "{}", Some(MEDIA));
    point(&fake, "stable", &old);
    fake.archive("app", &old);
    let report = run(&fake, r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#, &push("v2.0.0", Some(&new))).await.unwrap();
    assert_eq!(outcomes(&report), [("stable", Outcome::Moved)]);
    assert_eq!(report.tags[0].detail.as_deref(), Some("was on an archived image"));
    assert_eq!(tag_at(&fake, "stable"), Some(new));
}


#[tokio::test]
async fn a_rule_that_says_restore_archived_starts_the_restore_once_and_writes_nothing_yet() {
    let rules = r#"{"rules":[{"name":"r","semver":true,"restore_archived":true,"tags":["stable","v{major}"]}]}"#;
    let d = digest(1);
    let fake = app_with(&d, "{}", Some(MEDIA));
    fake.archive("app", &d);
    let report = run(&fake, rules, &push("v1.4.2", Some(&d))).await.unwrap();
    assert_eq!(outcomes(&report), [("stable", Outcome::Restoring), ("v1", Outcome::Restoring)]);
    assert!(report.tags[0].detail.as_deref().unwrap().starts_with("the image was archived: its restore has started"));
    assert_eq!(log(&fake), ["read 3", "restore"], "one restore for the image, no write");

    let mut p = push("v1.4.2", Some(&d));
    p.dry_run = true;
    fake.clear_calls();
    let report = run(&fake, rules, &p).await.unwrap();
    assert!(report.tags.iter().all(|t| t.outcome == Outcome::Archived && t.detail.as_deref().unwrap().starts_with("would start its restore")));
    assert_eq!(log(&fake), ["read 3"], "a dry run starts nothing");
}

