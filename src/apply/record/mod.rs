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
            Failure::Listing(ReadError::Fault(f)) | Failure::Sign(f) | Failure::Upload(f) | Failure::Put(PutError::Fault(f)) => f.retryable(),
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
    let (Some(digest), Some(subject)) = (report.digest.clone(), report.subject.clone()) else { return };
    let evidence = Evidence {
        scan: report.scan.as_ref().map(|s| ScanEvidence { status: "COMPLETE".to_owned(), counts: s.findings.clone() }),
        signature: SignatureEvidence {
            kinds: report.signatures_found.iter().map(|k| k.as_str().to_owned()).collect(),
            digest: report.signature.as_ref().and_then(|s| s.digest.clone()),
        },
    };
    let image = Tagged { source: pushed, digest: &digest, subject: &subject, tags: report.tags.iter().collect(), evidence };
    let records = for_image(registry, rules, recording, &image).await;
    report.records.extend(records);
}

/// Attaches the records a sweep's writes call for, each in its repository's `records`: per image,
/// one read of its manifest (the record's subject), and for gated rules the evidence as it stands
/// (DescribeImages for the scan, the signature look for signatures).
pub async fn attach_sweep<R: Blobs>(registry: &R, rules: &RuleSet, request: &ReconcileRequest, recording: &Recording<'_>, report: &mut SweepReport) {
    if report.dry_run {
        return;
    }
    for summary in &mut report.repositories {
        let Ok(name) = RepositoryName::parse(&summary.repository) else { continue };
        let source = request.repository(name);
        let mut images: BTreeMap<String, Vec<&TagReport>> = BTreeMap::new();
        for change in summary.changes.iter().filter(|c| wrote(c.outcome) && c.rules.iter().any(|r| rules.records(r))) {
            if let Some(digest) = &change.digest {
                images.entry(digest.clone()).or_default().push(change);
            }
        }
        let mut records = Vec::new();
        for (digest, tags) in images {
            let Ok(parsed) = Digest::parse(&digest) else { continue };
            let subject = match registry.read(&source, Lookup::Digest(&parsed), &[]).await {
                Ok(found) => found.image.map(|i| Descriptor::of(&i.media_type_or(None).unwrap_or_default(), i.manifest.as_bytes())),
                Err(_) => None,
            };
            let Some(subject) = subject else {
                records.extend(failed_all(rules, &source, &tags, "its manifest could not be read for the record's subject"));
                continue;
            };
            let evidence = evidence_now(registry, rules, &source, &parsed, &tags).await;
            let image = Tagged { source: &source, digest: &digest, subject: &subject, tags, evidence };
            records.extend(for_image(registry, rules, recording, &image).await);
        }
        summary.records = records;
    }
}

/// One image whose tags were written, where it was pushed, and what the decision saw.
struct Tagged<'a> {
    source: &'a Repository,
    digest: &'a str,
    subject: &'a Descriptor,
    /// Its tags' outcomes: in the source, or (with `repository`) in a promotion's target.
    tags: Vec<&'a TagReport>,
    evidence: Evidence,
}

/// The evidence a gated rule's record carries (each used only for rules with that gate).
struct Evidence {
    scan: Option<ScanEvidence>,
    signature: SignatureEvidence,
}

/// The records of one image's written tags: one per recorded rule and repository.
async fn for_image<R: Blobs>(registry: &R, rules: &RuleSet, recording: &Recording<'_>, image: &Tagged<'_>) -> Vec<RecordReport> {
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
        let policy = rules.policy(&rule).unwrap_or_default();
        let promotion = Promotion {
            rule: rule.clone(),
            rule_set_digest: rules.digest().to_owned(),
            event: recording.event.clone(),
            source_repository: home.clone(),
            target_repository: repository.clone(),
            tags: listed.iter().map(|(tag, outcome)| Written { tag: tag.clone(), outcome: outcome.to_string() }).collect(),
            scan: policy.scan_gate.and(image.evidence.scan.clone()),
            signature: policy.signed.map(|_| image.evidence.signature.clone()),
            recorder: recording.recorder.clone(),
            recorded_at: recording.now.to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        let statement = Statement::new(image.digest, promotion);
        out.push(match write(registry, recording, &target, image.subject, &statement, &key, any_event).await {
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

/// What the gates of an image's recorded rules see now (a sweep's evidence).
async fn evidence_now<R: Blobs>(registry: &R, rules: &RuleSet, source: &Repository, digest: &Digest, tags: &[&TagReport]) -> Evidence {
    let policies: Vec<Policy> = tags.iter().flat_map(|t| &t.rules).filter(|r| rules.records(r)).filter_map(|r| rules.policy(r)).collect();
    let mut evidence = Evidence { scan: None, signature: SignatureEvidence { kinds: Vec::new(), digest: None } };
    if policies.iter().any(|p| p.scan_gate.is_some()) {
        if let Ok(Some(listed)) = registry.describe(source, digest).await {
            if let Scanned::Done(findings) = listed.scan {
                let status = if findings.unsplit.is_some() { "ACTIVE" } else { "COMPLETE" };
                evidence.scan = Some(ScanEvidence { status: status.to_owned(), counts: findings.counts });
            }
        }
    }
    let kinds = policies.iter().filter_map(|p| p.signed).fold(Kinds::NONE, Kinds::union);
    if !kinds.is_empty() {
        if let Ok(seen) = registry.signatures(source, digest, kinds).await {
            evidence.signature.kinds = seen.found.iter().map(|k| k.as_str().to_owned()).collect();
        }
    }
    evidence
}

/// A failed record for each recorded rule of these tags.
fn failed_all(rules: &RuleSet, source: &Repository, tags: &[&TagReport], why: &str) -> Vec<RecordReport> {
    let mut seen = std::collections::BTreeSet::new();
    for t in tags {
        for rule in t.rules.iter().filter(|r| rules.records(r)) {
            seen.insert((t.repository.clone().unwrap_or_else(|| source.name.to_string()), rule.clone()));
        }
    }
    seen.into_iter()
        .map(|(repository, rule)| RecordReport { repository, rule, outcome: RecordOutcome::Failed, digest: None, detail: Some(why.to_owned()), retryable: true })
        .collect()
}

/// The outcomes of a tag this event wrote.
fn wrote(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Created | Outcome::Moved | Outcome::Repaired)
}

/// What tells one event's record from another's: its id, else its kind and time.
fn event_key(event: &record::Event) -> String {
    event.id.clone().unwrap_or_else(|| format!("{}@{}", event.kind, event.time))
}

/// One record, unless one with the same key is there: its outcome and its manifest's digest.
async fn write<R: Blobs>(
    registry: &R,
    recording: &Recording<'_>,
    target: &Repository,
    subject: &Descriptor,
    statement: &Statement,
    key: &Key,
    any_event: bool,
) -> Result<(RecordOutcome, Digest), Failure> {
    let image = Digest::parse(&subject.digest).map_err(|e| Failure::Listing(ReadError::Fault(invalid(e))))?;
    let listed = registry.referrers_of_type(target, &image, record::ARTIFACT_TYPE).await.map_err(Failure::Listing)?;
    if let Some(found) = listed.into_iter().find(|r| key.found_in(&r.annotations, any_event)) {
        return Ok((RecordOutcome::Exists, found.digest));
    }
    let payload = statement.payload();
    let signed = recording.signer.sign(&record::pae(record::PAYLOAD_TYPE, &payload)).await.map_err(Failure::Sign)?;
    let envelope = Envelope::new(&payload, &signed.key_id, &signed.signature).to_bytes();
    let layer = Descriptor::of(record::ENVELOPE_MEDIA_TYPE, &envelope);
    let config = Descriptor::of(record::ARTIFACT_TYPE, record::CONFIG);
    let blobs = [(&config, record::CONFIG), (&layer, envelope.as_slice())];
    let digests: Vec<Digest> = blobs.iter().filter_map(|(d, _)| Digest::parse(&d.digest).ok()).collect();
    let missing = registry.missing(target, &digests).await.map_err(|e| Failure::Upload(fault_of(e)))?;
    for (descriptor, bytes) in blobs {
        if let Some(digest) = missing.iter().find(|d| d.as_str() == descriptor.digest) {
            registry.upload_blob(target, digest, bytes).await.map_err(Failure::Upload)?;
        }
    }
    let manifest = record::manifest(subject, &layer, key, &statement.predicate.recorded_at);
    let digest = Digest::parse(&record::sha256(manifest.as_bytes())).map_err(|e| Failure::Upload(invalid(e)))?;
    let media_type = record::manifest_media_type();
    let image = Image { digest: digest.clone(), manifest, media_type: Some(media_type.to_owned()) };
    match registry.put_manifest(target, &image, media_type).await {
        Ok(()) | Err(PutError::AlreadyExists) => Ok((RecordOutcome::Written, digest)),
        Err(e) => Err(Failure::Put(e)),
    }
}

fn fault_of(error: ReadError) -> Fault {
    match error {
        ReadError::Fault(f) => f,
        ReadError::RepositoryNotFound => Fault::new(crate::fault::FaultKind::Permanent, "RepositoryNotFoundException", "the repository is gone"),
    }
}

fn invalid(e: impl std::fmt::Display) -> Fault {
    Fault::new(crate::fault::FaultKind::Permanent, "InvalidDigest", e.to_string())
}

#[cfg(test)]
mod tests;
