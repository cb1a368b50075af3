//! Promotion records in the simulation: a deterministic signer (so that a seed replays exactly: a
//! record's bytes, and so the calls that carry them, are the same every run), the records found
//! in the model at the end, and the two invariants on them (docs/testing.md).

use std::collections::BTreeMap;

use ecr_retag::domain::names::{Digest, RepositoryName};
use ecr_retag::domain::record::{self, Envelope, Statement, ANNOTATION_EVENT, ANNOTATION_RULE, ANNOTATION_TAGS};
use ecr_retag::registry::memory::Memory;
use ecr_retag::registry::{Blobs, Lookup, Registry, Repository};
use ecr_retag::signer::{Signed, Signer, Signing};
use sha2::{Digest as _, Sha256};

use crate::check::Violation;

const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/simulation";

/// Signs with a keyed hash: what is signed, and by which key, is what the simulation judges; the
/// ECDSA itself is the unit and end-to-end tests' (with KMS, and a verifier outside the project).
pub struct SimKey;

fn mac(message: &[u8]) -> Vec<u8> {
    Sha256::new().chain_update(KEY.as_bytes()).chain_update(message).finalize().to_vec()
}

impl Signer for SimKey {
    fn sign<'a>(&'a self, message: &'a [u8]) -> Signing<'a> {
        Box::pin(async move { Ok(Signed { signature: mac(message), key_id: KEY.to_owned() }) })
    }
}

/// One record found attached to an image at the end of a run.
pub struct Seen {
    pub repository: String,
    pub subject: String,
    pub record: String,
    pub annotations: BTreeMap<String, String>,
    /// The statement, once its signature checked; else what is wrong with it.
    pub statement: Result<Statement, String>,
}

/// Every record attached to `digests` in `repositories`, read through a client of the model's.
pub async fn collect(memory: &Memory, repositories: &[&str], digests: &[String]) -> Vec<Seen> {
    let reader = memory.client(usize::MAX);
    let mut out = Vec::new();
    for repository in repositories {
        let Ok(name) = RepositoryName::parse(repository) else { continue };
        let repo = Repository::own(name);
        for subject in digests {
            let Ok(digest) = Digest::parse(subject) else { continue };
            let Ok(found) = reader.referrers_of_type(&repo, &digest, record::ARTIFACT_TYPE).await else { continue };
            for referrer in found {
                let statement = read(&reader, &repo, &referrer.digest).await;
                out.push(Seen {
                    repository: (*repository).to_owned(),
                    subject: subject.clone(),
                    record: referrer.digest.to_string(),
                    annotations: referrer.annotations,
                    statement,
                });
            }
        }
    }
    out
}

async fn read(reader: &Memory, repo: &Repository, digest: &Digest) -> Result<Statement, String> {
    let manifest = reader.read(repo, Lookup::Digest(digest), &[]).await.map_err(|e| e.to_string())?.image.ok_or("no manifest")?.manifest;
    let layer = Digest::parse(&record::envelope_of(&manifest).ok_or("no envelope")?).map_err(|e| e.to_string())?;
    let bytes = reader.blob_bytes(repo, &layer, 1 << 20).await.map_err(|e| e.to_string())?;
    let envelope = Envelope::parse(&bytes).map_err(|e| e.to_string())?;
    let signed = envelope.signed_bytes().map_err(|e| e.to_string())?;
    if !envelope.signature_bytes().contains(&mac(&signed)) || envelope.signatures.iter().any(|s| s.keyid != KEY) {
        return Err("its signature does not check".to_owned());
    }
    Statement::parse(&envelope.payload_bytes().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

/// Invariant 10: every record checks, is about the image it is attached to, and names the
/// repository it is in (or is a copy, which a promotion makes of the source's referrers, of a
/// record in the repository it names); its annotations say what its statement says.
pub fn well_formed(records: &[Seen]) -> Vec<Violation> {
    let mut out = Vec::new();
    for seen in records {
        let say = |detail: String| Violation { invariant: 10, detail: format!("record {} of {} in {}: {detail}", seen.record, seen.subject, seen.repository) };
        let statement = match &seen.statement {
            Ok(s) => s,
            Err(e) => {
                out.push(say(e.clone()));
                continue;
            }
        };
        if statement.digest().as_deref() != Some(seen.subject.as_str()) {
            out.push(say(format!("its statement is about {:?}", statement.digest())));
        }
        let p = &statement.predicate;
        let copied = records.iter().any(|o| o.repository == p.target_repository && o.record == seen.record);
        if p.target_repository != seen.repository && !copied {
            out.push(say(format!("it names {} and is no copy of a record there", p.target_repository)));
        }
        let mut tags: Vec<&str> = p.tags.iter().map(|w| w.tag.as_str()).collect();
        tags.sort_unstable();
        if seen.annotations.get(ANNOTATION_RULE) != Some(&p.rule)
            || seen.annotations.get(ANNOTATION_TAGS).map(String::as_str) != Some(tags.join(",").as_str())
            || !seen.annotations.contains_key(ANNOTATION_EVENT)
        {
            out.push(say(format!("its annotations {:?} are not its statement's (rule {}, tags {tags:?})", seen.annotations, p.rule)));
        }
    }
    out
}

/// A repository, and which of its tags a recorded rule writes.
pub type Recorded<'a> = (&'a str, fn(&str) -> bool);

/// Invariant 11: at the end (every event delivered once more after the sweep), every tag of a
/// recorded rule on an image has a record on that image, in that repository, naming it; except on
/// an image ever archived, which is retired (nothing more follows it: a record that failed after
/// its tags were written is attached by a later delivery, and none comes for a retired image).
pub fn complete(
    records: &[Seen],
    state: &BTreeMap<String, BTreeMap<String, String>>,
    recorded: &[Recorded<'_>],
    retired: impl Fn(&str) -> bool,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for (repository, is_recorded) in recorded {
        for (tag, digest) in state.get(*repository).into_iter().flatten().filter(|(t, d)| is_recorded(t) && !retired(d)) {
            let explained = records.iter().any(|s| {
                s.repository == *repository
                    && s.subject == *digest
                    && s.statement.as_ref().is_ok_and(|st| st.predicate.target_repository == *repository && st.predicate.tags.iter().any(|w| w.tag == *tag))
            });
            if !explained {
                out.push(Violation { invariant: 11, detail: format!("{repository}:{tag} is on {digest} with no record naming it there") });
            }
        }
    }
    out
}
