//! Why a tag is where it is (`ecr-retag why`): the image the tag points at, its promotion
//! records (ListImageReferrers, then each record's manifest and envelope), each signature checked
//! against the public key, and whether a verified record names the tag. Read-only.

use serde::Serialize;

use crate::domain::names::{Digest, Tag};
use crate::domain::record::{self, Envelope, Statement, Unexplained, Unreadable};
use crate::fault::Fault;
use crate::registry::{Blobs, Lookup, ReadError, Repository};
use crate::signer::PublicKey;

/// A record's envelope is a few kilobytes; anything far larger is no record of ours.
const MAX_ENVELOPE_BYTES: u64 = 1 << 20;

/// The key records are checked against: its public key, and its ARN when KMS named it (then a
/// record signed by another key is told from an altered one).
pub struct TrustedKey {
    pub public: PublicKey,
    pub arn: Option<String>,
}

/// What `why` found.
#[derive(Debug, Clone, Serialize)]
pub struct Why {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    /// Each record attached to the image, newest first, with what checking it found.
    pub records: Vec<Checked>,
}

impl Why {
    /// The newest verified record that names the tag.
    pub fn explanation(&self) -> Option<&Checked> {
        self.records.iter().find(|c| c.verdict == Verdict::Explains)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The record's manifest digest.
    pub record: String,
    pub verdict: Verdict,
    /// Why it explains nothing (none when it does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The statement, when its signature verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Verified, about this image and repository, and it names the tag.
    Explains,
    /// Verified, but about another image, repository or tags.
    Unexplained,
    /// Its signature does not verify with the key.
    Unverified,
    /// Not a readable record.
    Unreadable,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WhyError {
    #[error("{repository}:{tag} does not exist")]
    NoSuchTag { repository: String, tag: String },
    #[error("reading {repository} failed: {error}")]
    Read { repository: String, error: ReadError },
}

/// What the records attached to the image `repository:tag` points at say of the tag.
pub async fn why<R: Blobs>(registry: &R, repository: &Repository, tag: &Tag, key: &TrustedKey) -> Result<Why, WhyError> {
    let failed = |error| WhyError::Read { repository: repository.name.to_string(), error };
    let found = registry.read(repository, Lookup::Tag(tag), &[]).await.map_err(failed)?;
    let Some(image) = found.image else {
        return Err(WhyError::NoSuchTag { repository: repository.name.to_string(), tag: tag.to_string() });
    };
    let listed = registry.referrers_of_type(repository, &image.digest, record::ARTIFACT_TYPE).await.map_err(failed)?;
    let mut records = Vec::with_capacity(listed.len());
    for referrer in listed {
        records.push(check(registry, repository, &image.digest, tag, &referrer.digest, key).await);
    }
    let recorded_at = |c: &Checked| c.statement.as_ref().map(|s| s.predicate.recorded_at.clone()).unwrap_or_default();
    records.sort_by_key(|c| std::cmp::Reverse(recorded_at(c)));
    Ok(Why { repository: repository.name.to_string(), tag: tag.to_string(), digest: image.digest.to_string(), records })
}

async fn check<R: Blobs>(registry: &R, repository: &Repository, image: &Digest, tag: &Tag, digest: &Digest, key: &TrustedKey) -> Checked {
    let checked = |verdict, problem: String, statement| Checked { record: digest.to_string(), verdict, problem: Some(problem), statement };
    let envelope = match envelope(registry, repository, digest).await {
        Ok(e) => e,
        Err(problem) => return checked(Verdict::Unreadable, problem, None),
    };
    let signed = match envelope.signed_bytes() {
        Ok(bytes) => bytes,
        Err(e) => return checked(Verdict::Unreadable, e.to_string(), None),
    };
    if !envelope.signature_bytes().iter().any(|s| key.public.verifies(&signed, s)) {
        let signer = envelope.signatures.first().map(|s| s.keyid.clone()).unwrap_or_default();
        let problem = match &key.arn {
            Some(arn) if !signer.is_empty() && &signer != arn => format!("signed by another key ({signer}), not {arn}"),
            Some(_) => "its signature does not verify with the key that signed it: the record was altered after signing".to_owned(),
            None => format!("its signature does not verify with the given public key: the record was altered, or signed by another key (it names {signer:?})"),
        };
        return checked(Verdict::Unverified, problem, None);
    }
    let statement = match envelope.payload_bytes().and_then(|p| Statement::parse(&p)) {
        Ok(s) => s,
        Err(e) => return checked(Verdict::Unreadable, e.to_string(), None),
    };
    match statement.explains(repository.name.as_str(), image.as_str(), tag.as_str()) {
        Ok(_) => Checked { record: digest.to_string(), verdict: Verdict::Explains, problem: None, statement: Some(statement) },
        Err(e @ Unexplained::OtherDigest { .. }) => checked(Verdict::Unexplained, format!("{e}: it was attached to {image}, but signed for another"), Some(statement)),
        Err(e) => checked(Verdict::Unexplained, e.to_string(), Some(statement)),
    }
}

/// A record's envelope: its manifest, then the layer the manifest names.
async fn envelope<R: Blobs>(registry: &R, repository: &Repository, digest: &Digest) -> Result<Envelope, String> {
    let read = registry.read(repository, Lookup::Digest(digest), &[]).await.map_err(|e| format!("its manifest could not be read: {e}"))?;
    let manifest = read.image.ok_or("its manifest is gone")?.manifest;
    let layer = record::envelope_of(&manifest).ok_or("its manifest names no DSSE envelope")?;
    let layer = Digest::parse(&layer).map_err(|e| format!("its envelope's digest: {e}"))?;
    let bytes = registry.blob_bytes(repository, &layer, MAX_ENVELOPE_BYTES).await.map_err(|e: Fault| format!("its envelope could not be read: {e}"))?;
    if record::sha256(&bytes) != layer.as_str() {
        return Err(format!("its envelope's bytes do not hash to {layer}"));
    }
    Envelope::parse(&bytes).map_err(|e: Unreadable| e.to_string())
}
