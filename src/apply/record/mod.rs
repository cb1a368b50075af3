//! Promotion records (`"record": true`): once an event's tags are final (second look included),
//! or a sweep's, one signed record per rule that says so and repository where that rule's tags
//! were written, attached to the image as an OCI referrer ([`crate::domain::record`] builds it; a
//! [`Signer`] signs it). A record costs one ListImageReferrers (is it there already?), one KMS
//! Sign, one BatchCheckLayerAvailability, the layer upload calls for what is missing (the
//! envelope; the config blob once per repository) and one untagged PutImage. A sweep also reads
//! each image it records (the record's subject), and for gated rules the evidence as it stands.
//!
//! Idempotent: the record's manifest is annotated with the rule, the tags and the event, and a
//! redelivery that finds a record with the same annotations writes none. A rule whose tags the
//! event found all in place gets a record only when none of any event names those tags: the later
//! delivery of an event whose record could not be written after its tags were.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::apply::put::read_fault;
use crate::domain::assess::Scanned;
use crate::domain::names::{Digest, RepositoryName};
use crate::domain::record::{self, Descriptor, Envelope, Key, Promotion, Recorder, ScanEvidence, SignatureEvidence, Statement, Written};
use crate::domain::request::ReconcileRequest;
use crate::domain::rules::{Policy, RuleSet};
use crate::domain::signature::Kinds;
use crate::fault::Fault;
use crate::registry::{Blobs, Image, Lookup, PutError, ReadError, Repository};
use crate::report::{Outcome, RecordOutcome, RecordReport, Report, Status, SweepReport, TagReport};
use crate::signer::Signer;

/// What a record names beyond the event's report: who writes it, on which event, when.
pub struct Recording<'a> {
    pub signer: &'a dyn Signer,
    pub recorder: Recorder,
    pub event: record::Event,
    pub now: DateTime<Utc>,
}

/// Why a record could not be written, and whether a later delivery can.
#[derive(Debug, Clone, thiserror::Error)]
enum Failure {
    #[error("listing the image's records failed: {0}")]
    Listing(ReadError),
    #[error("reading the image for the record's subject failed: {0}")]
    Subject(ReadError),
    #[error("the image is gone: nothing to attach a record to")]
    Gone,
    #[error("reading the evidence of the rule's gate failed: {0}")]
    Evidence(ReadError),
    #[error("KMS Sign failed: {0}")]
    Sign(Fault),
    #[error("uploading the record's blobs failed: {0}")]
    Upload(Fault),
    #[error("the record's PutImage failed: {0}")]
    Put(PutError),
}

impl Failure {
    fn retryable(&self) -> bool {
        match self {
            Failure::Listing(ReadError::Fault(f))
            | Failure::Subject(ReadError::Fault(f))
            | Failure::Evidence(ReadError::Fault(f))
            | Failure::Sign(f) | Failure::Upload(f) | Failure::Put(PutError::Fault(f)) => f.retryable(),
            _ => false,
        }
    }
}

/// Attaches the records an event's writes call for (none in a dry run, or when no rule of a
/// written tag says `"record": true`), each reported in `report.records`.
pub async fn attach<R: Blobs>(registry: &R, rules: &RuleSet, pushed: &Repository, recording: &Recording<'_>, report: &mut Report) {
    if report.status != Status::Applied {
        return;
    }
    let (Some(digest), Some(subject)) = (report.digest.as_deref().and_then(|d| Digest::parse(d).ok()), report.subject.clone()) else { return };
    let evidence = Evidence {
        scan: report.scan.as_ref().map(|s| ScanEvidence { status: "COMPLETE".to_owned(), counts: s.findings.clone() }),
        signature: SignatureEvidence {
            kinds: report.signatures_found.iter().map(|k| k.as_str().to_owned()).collect(),
            digest: report.signature.as_ref().and_then(|s| s.digest.clone()),
        },
    };
    let mut image = Tagged { source: pushed, digest, subject: Some(*subject), tags: report.tags.iter().collect(), evidence: Some(evidence) };
    let records = for_image(registry, rules, recording, &mut image).await;
    report.records.extend(records);
}

/// Attaches the records a sweep calls for, each in its repository's `records`: for the recorded
/// rules' tags it wrote, and for those it found in place with no record naming them (one
/// ListImageReferrers per image holding such tags). Writing one costs, besides, a read of the image
/// (the record's subject) and, for gated rules, the evidence as it stands (DescribeImages for the
/// scan, the signature look for signatures).
pub async fn attach_sweep<R: Blobs>(registry: &R, rules: &RuleSet, request: &ReconcileRequest, recording: &Recording<'_>, report: &mut SweepReport) {
    if report.dry_run {
        return;
    }
    for summary in &mut report.repositories {
        let Ok(name) = RepositoryName::parse(&summary.repository) else { continue };
        let source = request.repository(name);
        let mut images: BTreeMap<String, Vec<&TagReport>> = BTreeMap::new();
        let recorded = |t: &&TagReport| t.rules.iter().any(|r| rules.records(r));
        for tag in summary.changes.iter().filter(|c| wrote(c.outcome)).chain(&summary.in_place).filter(recorded) {
            if let Some(digest) = &tag.digest {
                images.entry(digest.clone()).or_default().push(tag);
            }
        }
        let mut records = Vec::new();
        for (digest, tags) in images {
            let Ok(digest) = Digest::parse(&digest) else { continue };
            let mut image = Tagged { source: &source, digest, subject: None, tags, evidence: None };
            records.extend(for_image(registry, rules, recording, &mut image).await);
        }
        summary.records = records;
    }
}

/// One image whose tags were written (or found in place), where it was pushed, and what the
/// decision saw: known to an event, read only when a record is written for a sweep.
struct Tagged<'a> {
    source: &'a Repository,
    digest: Digest,
    subject: Option<Descriptor>,
    /// Its tags' outcomes: in the source, or (with `repository`) in a promotion's target.
    tags: Vec<&'a TagReport>,
    evidence: Option<Evidence>,
}

/// The evidence a gated rule's record carries (each used only for rules with that gate).
#[derive(Clone)]
struct Evidence {
    scan: Option<ScanEvidence>,
    signature: SignatureEvidence,
}

impl Tagged<'_> {
    /// The image's manifest as the record's subject (one read, the first time).
    async fn subject<R: Blobs>(&mut self, registry: &R) -> Result<Descriptor, Failure> {
        if let Some(known) = &self.subject {
            return Ok(known.clone());
        }
        let found = registry.read(self.source, Lookup::Digest(&self.digest), &[]).await.map_err(Failure::Subject)?;
        let image = found.image.ok_or(Failure::Gone)?;
        let subject = Descriptor::of(&image.media_type_or(None).unwrap_or_default(), image.manifest.as_bytes());
        self.subject = Some(subject.clone());
        Ok(subject)
    }

    /// What the gates of the recorded rules see (read the first time, for a sweep). A gated
    /// rule's record is not written without its evidence.
    async fn evidence<R: Blobs>(&mut self, registry: &R, rules: &RuleSet) -> Result<Evidence, Failure> {
        if let Some(known) = &self.evidence {
            return Ok(known.clone());
        }
        let evidence = evidence_now(registry, rules, self.source, &self.digest, &self.tags).await.map_err(Failure::Evidence)?;
        self.evidence = Some(evidence.clone());
        Ok(evidence)
    }
}

/// The records of one image's tags: one per recorded rule and repository.
async fn for_image<R: Blobs>(registry: &R, rules: &RuleSet, recording: &Recording<'_>, image: &mut Tagged<'_>) -> Vec<RecordReport> {
    let home = image.source.name.to_string();
    // Each recorded rule's tags, per repository they are in.
    let mut groups: BTreeMap<(String, String), Vec<(String, Outcome)>> = BTreeMap::new();
    for t in &image.tags {
        for rule in t.rules.iter().filter(|r| rules.records(r)) {
            let repository = t.repository.clone().unwrap_or_else(|| home.clone());
            groups.entry((repository, rule.clone())).or_default().push((t.tag.clone(), t.outcome));
        }
    }
    let mut out = Vec::new();
    for ((repository, rule), tags) in groups {
        let written: Vec<&(String, Outcome)> = tags.iter().filter(|(_, o)| wrote(*o)).collect();
        let (listed, any_event) = if !written.is_empty() {
            (written, false)
        } else if tags.iter().all(|(_, o)| *o == Outcome::Unchanged) {
            (tags.iter().collect(), true)
        } else {
            continue;
        };
        let Ok(name) = RepositoryName::parse(&repository) else { continue };
        let target = Repository { name, ..image.source.clone() };
        let key = Key::new(&rule, listed.iter().map(|(t, _)| t.clone()), event_key(&recording.event));
        let tags = listed.iter().map(|(tag, outcome)| Written { tag: tag.clone(), outcome: outcome.to_string() }).collect();
        let one = Record { target: &target, rule: &rule, key: &key, tags, any_event };
        out.push(match attempts(registry, rules, recording, image, one).await {
            Ok((outcome, written)) => RecordReport { repository, rule, outcome, digest: Some(written.to_string()), detail: None, retryable: false },
            Err(failure) => RecordReport {
                repository,
                rule,
                outcome: RecordOutcome::Failed,
                digest: None,
                retryable: failure.retryable(),
                detail: Some(failure.to_string()),
            },
        });
    }
    out
}

/// One record to attach: where, of which rule, under which key, naming which tags.
#[derive(Clone)]
struct Record<'a> {
    target: &'a Repository,
    rule: &'a str,
    key: &'a Key,
    tags: Vec<Written>,
    /// A record of the same rule and tags on any event will do (tags found in place).
    any_event: bool,
}

/// How often a record is tried within one invocation, and the pause before each retry: the tags
/// are in place by now, and a later delivery may not come (or may find a world that no longer
/// says what this one saw, a rescan that failed since), so a transient fault is tried again here.
const RETRIES: [std::time::Duration; 2] = [std::time::Duration::from_millis(200), std::time::Duration::from_millis(800)];

/// [`write`], tried again after a fault a retry can help with.
async fn attempts<R: Blobs>(registry: &R, rules: &RuleSet, recording: &Recording<'_>, image: &mut Tagged<'_>, one: Record<'_>) -> Result<(RecordOutcome, Digest), Failure> {
    let mut pauses = RETRIES.iter();
    loop {
        match write(registry, rules, recording, image, one.clone()).await {
            Err(failure) if failure.retryable() => match pauses.next() {
                Some(pause) => tokio::time::sleep(*pause).await,
                None => return Err(failure),
            },
            done => return done,
        }
    }
}

/// One record, unless one with the same key is there: its outcome and its manifest's digest.
async fn write<R: Blobs>(registry: &R, rules: &RuleSet, recording: &Recording<'_>, image: &mut Tagged<'_>, one: Record<'_>) -> Result<(RecordOutcome, Digest), Failure> {
    let listed = registry.referrers_of_type(one.target, &image.digest, record::ARTIFACT_TYPE).await.map_err(Failure::Listing)?;
    if let Some(found) = listed.into_iter().find(|r| one.key.found_in(&r.annotations, one.any_event)) {
        return Ok((RecordOutcome::Exists, found.digest));
    }
    let subject = image.subject(registry).await?;
    let evidence = image.evidence(registry, rules).await?;
    let policy = rules.policy(one.rule).unwrap_or_default();
    let promotion = Promotion {
        rule: one.rule.to_owned(),
        rule_set_digest: rules.digest().to_owned(),
        event: recording.event.clone(),
        source_repository: image.source.name.to_string(),
        target_repository: one.target.name.to_string(),
        tags: one.tags,
        scan: policy.scan_gate.and(evidence.scan),
        signature: policy.signed.map(|_| evidence.signature),
        recorder: recording.recorder.clone(),
        recorded_at: recording.now.to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    let statement = Statement::new(image.digest.as_str(), promotion);
    let payload = statement.payload();
    let signed = recording.signer.sign(&record::pae(record::PAYLOAD_TYPE, &payload)).await.map_err(Failure::Sign)?;
    let envelope = Envelope::new(&payload, &signed.key_id, &signed.signature).to_bytes();
    let layer = Descriptor::of(record::ENVELOPE_MEDIA_TYPE, &envelope);
    let config = Descriptor::of(record::ARTIFACT_TYPE, record::CONFIG);
    let blobs = [(&config, record::CONFIG), (&layer, envelope.as_slice())];
    let digests: Vec<Digest> = blobs.iter().filter_map(|(d, _)| Digest::parse(&d.digest).ok()).collect();
    let missing = registry.missing(one.target, &digests).await.map_err(|e| Failure::Upload(read_fault(e)))?;
    for (descriptor, bytes) in blobs {
        if let Some(digest) = missing.iter().find(|d| d.as_str() == descriptor.digest) {
            registry.upload_blob(one.target, digest, bytes).await.map_err(Failure::Upload)?;
        }
    }
    let manifest = record::manifest(&subject, &layer, one.key, &statement.predicate.recorded_at);
    let digest = Digest::parse(&record::sha256(manifest.as_bytes())).map_err(|e| Failure::Upload(invalid(e)))?;
    let media_type = record::manifest_media_type();
    let written = Image { digest: digest.clone(), manifest, media_type: Some(media_type.to_owned()) };
    match registry.put_manifest(one.target, &written, media_type).await {
        Ok(()) | Err(PutError::AlreadyExists) => Ok((RecordOutcome::Written, digest)),
        Err(e) => Err(Failure::Put(e)),
    }
}

/// The outcomes of a tag this event wrote.
fn wrote(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Created | Outcome::Moved | Outcome::Repaired)
}

/// What tells one event's record from another's: its id, else its kind and time.
fn event_key(event: &record::Event) -> String {
    event.id.clone().unwrap_or_else(|| format!("{}@{}", event.kind, event.time))
}

/// What the gates of an image's recorded rules see now (a sweep's evidence): the scan
/// (DescribeImages; none when the image was not scanned), the signature kinds found.
async fn evidence_now<R: Blobs>(registry: &R, rules: &RuleSet, source: &Repository, digest: &Digest, tags: &[&TagReport]) -> Result<Evidence, ReadError> {
    let policies: Vec<Policy> = tags.iter().flat_map(|t| &t.rules).filter(|r| rules.records(r)).filter_map(|r| rules.policy(r)).collect();
    let mut evidence = Evidence { scan: None, signature: SignatureEvidence { kinds: Vec::new(), digest: None } };
    if policies.iter().any(|p| p.scan_gate.is_some()) {
        if let Some(Scanned::Done(findings)) = registry.describe(source, digest).await?.map(|listed| listed.scan) {
            let status = if findings.unsplit.is_some() { "ACTIVE" } else { "COMPLETE" };
            evidence.scan = Some(ScanEvidence { status: status.to_owned(), counts: findings.counts });
        }
    }
    let kinds = policies.iter().filter_map(|p| p.signed).fold(Kinds::NONE, Kinds::union);
    if !kinds.is_empty() {
        let seen = registry.signatures(source, digest, kinds).await?;
        evidence.signature.kinds = seen.found.iter().map(|k| k.as_str().to_owned()).collect();
    }
    Ok(evidence)
}

fn invalid(e: impl std::fmt::Display) -> Fault {
    Fault::new(crate::fault::FaultKind::Permanent, "InvalidDigest", e.to_string())
}

#[cfg(test)]
mod tests;
