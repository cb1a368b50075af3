//! Records on the in-memory registry, signed with a key in memory: what is attached, what it
//! says, that it verifies, and what a redelivery or a failed signature does.

use super::*;
use crate::apply::{begin_push, Settings};
use crate::domain::names::Tag;
use crate::domain::request::Push;
use crate::registry::memory::Memory;
use crate::registry::Registry as _;
use crate::signer::{Local, Signed, Signing};

const RULES: &str = r#"{"rules":[
    {"name":"release","semver":true,"tags":["stable","v{major}"],"record":true},
    {"name":"dated","semver":true,"tags":["{date:%Y%m%d}"]}
]}"#;
const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2},"layers":[]}"#;

fn app() -> (Memory, Digest) {
    let memory = Memory::with_repositories(&["app"]);
    let digest = Digest::parse(&record::sha256(MANIFEST.as_bytes())).unwrap();
    let image = Image { digest: digest.clone(), manifest: MANIFEST.into(), media_type: Some("application/vnd.oci.image.manifest.v1+json".into()) };
    memory.add_image("app", image, None);
    (memory, digest)
}

fn push(digest: &Digest) -> Push {
    Push {
        repository: Repository::own(RepositoryName::parse("app").unwrap()),
        tag: Tag::parse("v1.4.2").unwrap(),
        digest: Some(digest.clone()),
        pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(),
        media_type: None,
        artifact_media_type: None,
        dry_run: false,
    }
}

fn recording(signer: &dyn Signer) -> Recording<'_> {
    Recording {
        signer,
        recorder: Recorder { id: "arn:aws:lambda:eu-west-1:123456789012:function:ecr-retag".into(), version: "7".into() },
        event: record::Event { id: Some("ev-1".into()), kind: "push".into(), time: "2026-11-24T10:15:02.000Z".into() },
        now: "2026-11-24T10:15:03Z".parse().unwrap(),
    }
}

/// A sweep of `app`, and what its records name.
fn sweep_of_app() -> ReconcileRequest {
    let repositories = vec![crate::domain::rules::glob::Glob::parse("app").unwrap()];
    ReconcileRequest { repositories, max_writes: 100, resume_at: None, registry_id: None, dry_run: false, fan_out: false }
}

fn sweeping(signer: &dyn Signer) -> Recording<'_> {
    Recording { event: record::Event { id: None, kind: "sweep".into(), time: "2026-11-24T12:00:00.000Z".into() }, ..recording(signer) }
}

/// One delivery of the push: its writes, the second look, then its records.
async fn deliver(memory: &Memory, settings: &Settings, digest: &Digest, signer: &dyn Signer) -> Report {
    let mut handled = begin_push(memory, settings, &push(digest)).await.unwrap();
    handled.settle(memory, settings, None).await;
    let pushed = Repository::own(RepositoryName::parse("app").unwrap());
    attach(memory, &settings.rules, &pushed, &recording(signer), &mut handled.report).await;
    handled.report
}

/// The statement of each record attached to `digest` in `app`, verified with `key`.
async fn records(memory: &Memory, digest: &Digest, key: &crate::signer::PublicKey) -> Vec<Statement> {
    let app = Repository::own(RepositoryName::parse("app").unwrap());
    let mut out = Vec::new();
    for referrer in memory.referrers_of_type(&app, digest, record::ARTIFACT_TYPE).await.unwrap() {
        let image = memory.read(&app, crate::registry::Lookup::Digest(&referrer.digest), &[]).await.unwrap().image.unwrap();
        let layer = Digest::parse(&record::envelope_of(&image.manifest).unwrap()).unwrap();
        let envelope = Envelope::parse(&memory.blob_bytes(&app, &layer, 1 << 20).await.unwrap()).unwrap();
        let signed = envelope.signed_bytes().unwrap();
        assert!(envelope.signature_bytes().iter().any(|s| key.verifies(&signed, s)), "the record verifies with the key's public key");
        out.push(Statement::parse(&envelope.payload_bytes().unwrap()).unwrap());
    }
    out
}


#[tokio::test]
async fn a_push_that_writes_a_recorded_rules_tags_attaches_one_signed_record_naming_them() {
    let (memory, digest) = app();
    let settings = Settings::new(RuleSet::from_json(RULES).unwrap());
    let key = Local::generate("test-key").unwrap();
    let report = deliver(&memory, &settings, &digest, &key).await;

    assert_eq!(report.records.len(), 1, "one record, for the one rule that asks: {:?}", report.records);
    let entry = &report.records[0];
    assert_eq!((entry.repository.as_str(), entry.rule.as_str(), entry.outcome), ("app", "release", RecordOutcome::Written));
    let statements = records(&memory, &digest, &key.public_key()).await;
    assert_eq!(statements.len(), 1);
    let promotion = &statements[0].predicate;
    let tags: Vec<(&str, &str)> = promotion.tags.iter().map(|w| (w.tag.as_str(), w.outcome.as_str())).collect();
    assert_eq!(tags, [("stable", "created"), ("v1", "created")], "the rule's tags, not the other rule's date tag");
    assert_eq!(promotion.rule_set_digest, record::sha256(RULES.as_bytes()));
    assert_eq!((promotion.event.id.as_deref(), promotion.event.kind.as_str()), (Some("ev-1"), "push"));
    assert_eq!((promotion.source_repository.as_str(), promotion.target_repository.as_str()), ("app", "app"));
    assert_eq!(promotion.recorder.version, "7");
    assert_eq!(promotion.scan, None, "no gate, no evidence");
    assert!(statements[0].explains("app", digest.as_str(), "stable").is_ok());
    assert_eq!(entry.digest.as_deref(), Some(memory.referrers_of_type(&push(&digest).repository, &digest, record::ARTIFACT_TYPE).await.unwrap()[0].digest.as_str()));
}

#[tokio::test]
async fn a_redelivery_adds_no_second_record_and_a_dry_run_none_at_all() {
    let (memory, digest) = app();
    let settings = Settings::new(RuleSet::from_json(RULES).unwrap());
    let key = Local::generate("test-key").unwrap();
    deliver(&memory, &settings, &digest, &key).await;
    memory.clear_calls();
    let again = deliver(&memory, &settings, &digest, &key).await;
    let calls = memory.kinds();
    assert_eq!(again.records[0].outcome, RecordOutcome::Exists);
    assert_eq!(records(&memory, &digest, &key.public_key()).await.len(), 1);
    assert_eq!(calls.iter().filter(|k| **k == "referrers_of_type").count(), 1, "one look: {calls:?}");
    assert!(!calls.contains(&"upload_blob") && !calls.contains(&"put_manifest"), "{calls:?}");

    let (memory, digest) = app();
    let dry = Settings { dry_run: true, ..Settings::new(RuleSet::from_json(RULES).unwrap()) };
    let report = deliver(&memory, &dry, &digest, &key).await;
    assert!(report.records.is_empty() && records(&memory, &digest, &key.public_key()).await.is_empty());
}

/// A signer whose first `failures` calls fail, as KMS throttling would.
struct Fails {
    inner: Local,
    failures: std::sync::atomic::AtomicUsize,
}

impl Signer for Fails {
    fn sign<'a>(&'a self, message: &'a [u8]) -> Signing<'a> {
        let left = self.failures.fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| n.checked_sub(1));
        if left.is_ok() {
            return Box::pin(async { Err(Fault::new(crate::fault::FaultKind::Throttled, "ThrottlingException", "Rate exceeded")) });
        }
        let signed: Signing<'a> = self.inner.sign(message);
        Box::pin(async move { signed.await.map(|s: Signed| s) })
    }
}

#[tokio::test(start_paused = true)]
async fn a_record_is_tried_again_within_the_invocation_and_one_that_still_fails_is_written_by_the_redelivery() {
    let (memory, digest) = app();
    let settings = Settings::new(RuleSet::from_json(RULES).unwrap());
    // One throttled Sign: the second attempt, 200 ms later, writes it.
    let signer = Fails { inner: Local::generate("test-key").unwrap(), failures: 1.into() };
    let started = tokio::time::Instant::now();
    let report = deliver(&memory, &settings, &digest, &signer).await;
    assert_eq!(report.records[0].outcome, RecordOutcome::Written);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));

    // Throttled on every attempt of the invocation.
    let (memory, digest) = app();
    let signer = Fails { inner: Local::generate("test-key").unwrap(), failures: 3.into() };
    let mut handled = begin_push(&memory, &settings, &push(&digest)).await.unwrap();
    handled.settle(&memory, &settings, None).await;
    let pushed = push(&digest).repository;
    attach(&memory, &settings.rules, &pushed, &recording(&signer), &mut handled.report).await;
    assert_eq!(handled.report.records[0].outcome, RecordOutcome::Failed);
    let error = handled.conclude().unwrap_err();
    assert!(error.retryable(), "a throttled Sign is worth another delivery");
    assert!(error.to_string().contains("promotion record"), "{error}");

    // The tags are in place now; the redelivery finds them so, and writes the missing record.
    let report = deliver(&memory, &settings, &digest, &signer).await;
    assert_eq!(report.records[0].outcome, RecordOutcome::Written);
    let statements = records(&memory, &digest, &signer.inner.public_key()).await;
    let outcomes: Vec<&str> = statements[0].predicate.tags.iter().map(|w| w.outcome.as_str()).collect();
    assert_eq!(outcomes, ["unchanged", "unchanged"], "found in place by the event that put them there");
}

/// Attaches `envelope` to `digest` in `app` as a record would be, with the seeding hand of someone
/// who can push (the key is not theirs).
async fn attach_envelope(memory: &Memory, digest: &Digest, envelope: &Envelope, event: &str) {
    let app = Repository::own(RepositoryName::parse("app").unwrap());
    let bytes = envelope.to_bytes();
    let layer = Descriptor::of(record::ENVELOPE_MEDIA_TYPE, &bytes);
    let config = Descriptor::of(record::ARTIFACT_TYPE, record::CONFIG);
    for (d, b) in [(&config, record::CONFIG), (&layer, bytes.as_slice())] {
        memory.upload_blob(&app, &Digest::parse(&d.digest).unwrap(), b).await.unwrap();
    }
    let subject = Descriptor::of("application/vnd.oci.image.manifest.v1+json", MANIFEST.as_bytes());
    let subject = Descriptor { digest: digest.to_string(), ..subject };
    let key = Key::new("release", ["stable".to_owned()], event.to_owned());
    let manifest = record::manifest(&subject, &layer, &key, "2026-11-24T11:00:00Z");
    let image = Image { digest: Digest::parse(&record::sha256(manifest.as_bytes())).unwrap(), manifest, media_type: None };
    memory.put_manifest(&app, &image, record::manifest_media_type()).await.unwrap();
}

#[tokio::test]
async fn why_names_the_verified_record_of_a_tag_and_says_what_is_wrong_with_the_others() {
    use crate::apply::why::{why, TrustedKey as Trusted, Verdict};
    let (memory, digest) = app();
    let settings = Settings::new(RuleSet::from_json(RULES).unwrap());
    let key = Local::generate("arn:aws:kms:eu-west-1:123456789012:key/one").unwrap();
    deliver(&memory, &settings, &digest, &key).await;
    let app_repo = Repository::own(RepositoryName::parse("app").unwrap());
    let stable = Tag::parse("stable").unwrap();
    let trusted = Trusted { public: key.public_key(), arn: Some("arn:aws:kms:eu-west-1:123456789012:key/one".into()) };

    let found = why(&memory, &app_repo, &stable, &trusted).await.unwrap();
    assert_eq!(found.digest, digest.to_string());
    let explained = found.explanation().expect("the function's record explains stable");
    assert_eq!(explained.statement.as_ref().unwrap().predicate.rule, "release");
    // The date tag's rule does not record: nothing explains it.
    let dated = Tag::parse("20261124").unwrap();
    assert!(why(&memory, &app_repo, &dated, &trusted).await.unwrap().explanation().is_none());

    // Another key: told apart by the key the record names.
    let other = Local::generate("arn:aws:kms:eu-west-1:123456789012:key/two").unwrap();
    let wrong = Trusted { public: other.public_key(), arn: Some("arn:aws:kms:eu-west-1:123456789012:key/two".into()) };
    let found = why(&memory, &app_repo, &stable, &wrong).await.unwrap();
    assert!(found.explanation().is_none());
    assert_eq!(found.records[0].verdict, Verdict::Unverified);
    assert!(found.records[0].problem.as_deref().unwrap().contains("signed by another key (arn:aws:kms:eu-west-1:123456789012:key/one)"));

    // A tampered payload under the genuine signature, on a second image, is altered.
    let (tampered_memory, _) = app();
    let second = Digest::parse(&record::sha256(b"second")).unwrap();
    let genuine = records_envelopes(&memory, &digest).await.remove(0);
    let mut statement = Statement::parse(&genuine.payload_bytes().unwrap()).unwrap();
    statement.predicate.tags.push(Written { tag: "prod".into(), outcome: "created".into() });
    let forged = Envelope { payload: Envelope::new(&statement.payload(), "", b"").payload, ..genuine.clone() };
    let (memory2, digest2) = (tampered_memory, digest.clone());
    attach_envelope(&memory2, &digest2, &forged, "forged").await;
    memory2.point("app", &stable, &digest2);
    let found = why(&memory2, &app_repo, &stable, &trusted).await.unwrap();
    assert!(found.explanation().is_none());
    assert!(found.records[0].problem.as_deref().unwrap().contains("altered"), "{:?}", found.records[0].problem);

    // The genuine record of the first image, copied onto another image, is about another image.
    let (memory3, _) = app();
    let image = Image { digest: second.clone(), manifest: "second".into(), media_type: None };
    memory3.add_image("app", image, None);
    memory3.point("app", &stable, &second);
    attach_envelope(&memory3, &second, &genuine, "copied").await;
    let found = why(&memory3, &app_repo, &stable, &trusted).await.unwrap();
    assert_eq!(found.records[0].verdict, Verdict::Unexplained);
    assert!(found.records[0].problem.as_deref().unwrap().contains("about another image"), "{:?}", found.records[0].problem);
}

/// The envelopes of the records attached to `digest` in `app`.
async fn records_envelopes(memory: &Memory, digest: &Digest) -> Vec<Envelope> {
    let app = Repository::own(RepositoryName::parse("app").unwrap());
    let mut out = Vec::new();
    for referrer in memory.referrers_of_type(&app, digest, record::ARTIFACT_TYPE).await.unwrap() {
        let image = memory.read(&app, crate::registry::Lookup::Digest(&referrer.digest), &[]).await.unwrap().image.unwrap();
        let layer = Digest::parse(&record::envelope_of(&image.manifest).unwrap()).unwrap();
        out.push(Envelope::parse(&memory.blob_bytes(&app, &layer, 1 << 20).await.unwrap()).unwrap());
    }
    out
}

#[tokio::test]
async fn a_sweep_records_what_it_wrote_with_the_scan_its_gate_saw() {
    use crate::domain::assess::Scanned;
    use crate::domain::scan::Findings;
    let rules = r#"{"rules":[{"name":"scanned","semver":true,"when":{"scan":"HIGH"},"tags":["stable"],"record":true}]}"#;
    let (memory, digest) = app();
    memory.point("app", &Tag::parse("v1.4.2").unwrap(), &digest);
    let findings = Findings { counts: std::collections::BTreeMap::from([("MEDIUM".to_owned(), 2)]), unsplit: None };
    memory.set_scan("app", &digest, Scanned::Done(findings));
    let settings = Settings::new(RuleSet::from_json(rules).unwrap());
    let request = sweep_of_app();
    let mut report = crate::apply::sweep::reconcile(&memory, &settings, &request, None, None).await.unwrap();
    let key = Local::generate("test-key").unwrap();
    let sweep = sweeping(&key);
    attach_sweep(&memory, &settings.rules, &request, &sweep, &mut report).await;

    let records_of_app = &report.repositories[0].records;
    assert_eq!(records_of_app.len(), 1, "{report:?}");
    assert_eq!(records_of_app[0].outcome, RecordOutcome::Written);
    let statement = records(&memory, &digest, &key.public_key()).await.remove(0);
    assert_eq!(statement.predicate.event.kind, "sweep");
    assert_eq!(statement.predicate.tags, [Written { tag: "stable".into(), outcome: "created".into() }]);
    let scan = statement.predicate.scan.expect("a scan-gated rule's record carries the scan");
    assert_eq!((scan.status.as_str(), scan.counts.get("MEDIUM")), ("COMPLETE", Some(&2)));
    assert_eq!(statement.predicate.signature, None, "no signature gate");

    // The next sweep finds the tag in place, and its record: one look, nothing written.
    memory.clear_calls();
    let mut again = crate::apply::sweep::reconcile(&memory, &settings, &request, None, None).await.unwrap();
    attach_sweep(&memory, &settings.rules, &request, &sweep, &mut again).await;
    assert_eq!(again.repositories[0].records[0].outcome, RecordOutcome::Exists);
    let calls = memory.kinds();
    assert_eq!(calls.iter().filter(|k| **k == "referrers_of_type").count(), 1, "{calls:?}");
    assert!(!calls.contains(&"put_manifest") && !calls.contains(&"describe"), "{calls:?}");
}

#[tokio::test]
async fn a_sweep_attaches_the_record_a_tag_in_place_lacks() {
    let (memory, digest) = app();
    // stable is in place, put there before the rule recorded (or by an event whose record failed).
    memory.point("app", &Tag::parse("v1.4.2").unwrap(), &digest);
    memory.point("app", &Tag::parse("stable").unwrap(), &digest);
    memory.point("app", &Tag::parse("v1").unwrap(), &digest);
    let settings = Settings::new(RuleSet::from_json(RULES).unwrap());
    let request = sweep_of_app();
    let mut report = crate::apply::sweep::reconcile(&memory, &settings, &request, None, None).await.unwrap();
    let key = Local::generate("test-key").unwrap();
    let sweep = sweeping(&key);
    attach_sweep(&memory, &settings.rules, &request, &sweep, &mut report).await;
    assert_eq!(report.repositories[0].records.len(), 1, "{report:?}");
    let statement = records(&memory, &digest, &key.public_key()).await.remove(0);
    let outcomes: Vec<(&str, &str)> = statement.predicate.tags.iter().map(|w| (w.tag.as_str(), w.outcome.as_str())).collect();
    assert_eq!(outcomes, [("stable", "unchanged"), ("v1", "unchanged")], "found in place by the sweep");
}

#[tokio::test(start_paused = true)]
async fn a_gated_rules_record_is_not_written_without_its_evidence() {
    use crate::registry::memory::Failure as Injected;
    use crate::registry::ReadError;
    let rules = r#"{"rules":[{"name":"trusted","semver":true,"when":{"signed":true},"tags":["trusted"],"record":true}]}"#;
    let (memory, digest) = app();
    memory.point("app", &Tag::parse("v1.4.2").unwrap(), &digest);
    memory.point("app", &Tag::parse("trusted").unwrap(), &digest);
    let settings = Settings::new(RuleSet::from_json(rules).unwrap());
    let request = sweep_of_app();
    let mut report = crate::apply::sweep::reconcile(&memory, &settings, &request, None, None).await.unwrap();
    // The signature look that would be the record's evidence fails on every attempt.
    let throttled = Fault::new(crate::fault::FaultKind::Throttled, "ThrottlingException", "Rate exceeded");
    memory.fail(Injected::Signatures(ReadError::Fault(throttled)), None);
    let key = Local::generate("test-key").unwrap();
    let sweep = sweeping(&key);
    attach_sweep(&memory, &settings.rules, &request, &sweep, &mut report).await;
    let entry = &report.repositories[0].records[0];
    assert_eq!((entry.outcome, entry.retryable), (RecordOutcome::Failed, true), "{entry:?}");
    assert!(entry.detail.as_deref().unwrap().contains("evidence"), "{entry:?}");
    assert!(records(&memory, &digest, &key.public_key()).await.is_empty(), "no record without its evidence");
}
