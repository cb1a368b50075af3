//! Result out: the JSON the function returns, one entry per derived tag.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::request::Ignored;
use crate::domain::names::Tag;
use crate::fault::Fault;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_tag: Option<String>,
    /// For a scan event: what was scanned and found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanReport>,
    /// For a signature's push: the signature, and the signed image's tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureReport>,
    pub tags: Vec<TagReport>,
    /// What each promotion into another repository copied (`"to"`); only when one did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub promotions: Vec<PromotionReport>,
    /// The promotion records this event attached (`"record": true`); only when it did or tried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordReport>,
    /// The signature kinds a signature gate's look found: a record's evidence.
    #[serde(skip)]
    pub signatures_found: crate::domain::signature::Kinds,
    /// The image's manifest as a descriptor, once read: what a record's `subject` names.
    #[serde(skip)]
    pub subject: Option<Box<crate::domain::record::Descriptor>>,
}

/// One promotion record: a rule's tags in one repository.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecordReport {
    pub repository: String,
    pub rule: String,
    pub outcome: RecordOutcome,
    /// The record's manifest digest (written, or found already there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For `failed`: whether a later delivery of the event can succeed.
    #[serde(skip)]
    pub retryable: bool,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    /// Signed and attached to the image.
    Written,
    /// A record of the same rule, tags and event (or, for tags this event found in place, of any
    /// event) is already attached: a redelivery's.
    Exists,
    Failed,
}

/// What copying the image (and its referrers) into one target took.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PromotionReport {
    pub to: String,
    pub blobs_mounted: usize,
    /// `"copy_blobs": true`: blobs streamed through the function, and their bytes.
    pub blobs_streamed: usize,
    pub bytes_streamed: u64,
    /// Manifests put besides the image's own: an index's children and referrers (by digest), cosign's sidecar tags.
    pub manifests: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SignatureReport {
    /// The signature manifest's digest, where the event named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `notation`, `sigstore` or `cosign`.
    pub kind: String,
    /// The signed image's tags, each treated as just pushed.
    pub image_tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ScanReport {
    /// The image's tags, each treated as just pushed.
    pub image_tags: Vec<String>,
    /// `finding-severity-counts`, as ECR reported them.
    pub findings: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Applied,
    DryRun,
    Ignored,
}

/// What became of one tag: in an event's answer (the image is the report's),
/// and in a sweep's `changes` (each names its image).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagReport {
    pub tag: String,
    /// The repository the tag is in, when not the report's own: a promotion's target (`"to"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The image the tag should point at; in sweeps only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub rules: Vec<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For `failed`: whether a later delivery of the event can succeed.
    #[serde(skip)]
    pub retryable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The tag did not exist and now points at the image.
    Created,
    /// The tag pointed at another digest and now points at the image.
    Moved,
    /// The tag already pointed at the image; nothing was written.
    Unchanged,
    WouldCreate,
    WouldMove,
    /// The tag is immutable and points at another digest.
    Conflict,
    /// No valid tag, or writing it could make the function trigger itself forever.
    Invalid,
    /// The write failed.
    Failed,
    /// ECR refused the tag: the image already holds its maximum of 1,000 tags.
    /// Permanent until tags are removed from the image.
    TagLimit,
    /// `"move": "if-newer"`: the tag stays on an image with an equal or higher version.
    SkippedNotNewer,
    /// `"move": "if-newer"`: written, and a lower version's late write took the
    /// tag afterwards; put back (see "Moving tags under concurrency" in the README).
    Repaired,
    /// `"move": "if-newer"`: written, and since moved on to a newer version, as it should.
    Superseded,
    /// Scan-gated: written when the image's scan completes and passes.
    Deferred,
    /// Scan-gated: the scan found more than the rule allows.
    Blocked,
    /// Not written: the image is archived, and putting it again would restore it.
    Archived,
    /// `"restore_archived": true`: the archived image's restore was started; the tag follows
    /// on a redelivery or the next sweep, once the image is active.
    Restoring,
    /// `remove_source`: the pushed tag was removed, its derived tags being in place.
    Removed,
    WouldRemove,
    /// `remove_source`: the pushed tag stays, for the reason in `detail`.
    Kept,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Applied => "applied",
            Status::DryRun => "dry_run",
            Status::Ignored => "ignored",
        })
    }
}

impl Outcome {
    /// Its name in answers, logs and the docs: the one place it is spelled.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Moved => "moved",
            Outcome::Unchanged => "unchanged",
            Outcome::WouldCreate => "would_create",
            Outcome::WouldMove => "would_move",
            Outcome::Conflict => "conflict",
            Outcome::Invalid => "invalid",
            Outcome::Failed => "failed",
            Outcome::TagLimit => "tag_limit",
            Outcome::SkippedNotNewer => "skipped_not_newer",
            Outcome::Repaired => "repaired",
            Outcome::Superseded => "superseded",
            Outcome::Deferred => "deferred",
            Outcome::Blocked => "blocked",
            Outcome::Archived => "archived",
            Outcome::Restoring => "restoring",
            Outcome::Removed => "removed",
            Outcome::WouldRemove => "would_remove",
            Outcome::Kept => "kept",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Outcome {
    /// Outcomes that make the invocation fail.
    pub fn is_problem(self) -> bool {
        matches!(self, Outcome::Conflict | Outcome::Invalid | Outcome::Failed | Outcome::TagLimit)
    }
}

impl TagReport {
    pub fn new(tag: impl Into<String>, rules: Vec<String>, outcome: Outcome) -> TagReport {
        TagReport { tag: tag.into(), repository: None, digest: None, rules, outcome, detail: None, retryable: false }
    }

    /// Records a final outcome.
    pub fn mark(&mut self, outcome: Outcome, detail: Option<String>) {
        self.outcome = outcome;
        self.detail = detail;
        self.retryable = false;
    }

    /// Records a failure that is no call's: what it was, and whether a later delivery can help.
    pub fn refuse(&mut self, detail: String, retryable: bool) {
        self.outcome = Outcome::Failed;
        self.detail = Some(detail);
        self.retryable = retryable;
    }

    /// Records a failed call: retryable when the fault is.
    pub fn fail(&mut self, fault: &Fault) {
        self.outcome = Outcome::Failed;
        self.detail = Some(fault.to_string());
        self.retryable = fault.retryable();
    }
}

/// The report entry of a planned tag (every written tag was planned; an entry is made if not).
pub fn entry<'a>(tags: &'a mut BTreeMap<String, TagReport>, tag: &Tag) -> &'a mut TagReport {
    tags.entry(tag.to_string()).or_insert_with(|| TagReport::new(tag.as_str(), Vec::new(), Outcome::Failed))
}

impl Report {
    pub fn ignored(ignored: Ignored) -> Self {
        Self {
            status: Status::Ignored,
            reason: Some(ignored.reason),
            repository: ignored.repository,
            registry_id: None,
            digest: ignored.digest,
            source_tag: ignored.tag,
            scan: None,
            signature: None,
            tags: Vec::new(),
            promotions: Vec::new(),
            records: Vec::new(),
            subject: None,
            signatures_found: crate::domain::signature::Kinds::NONE,
        }
    }

    /// A message of an SQS batch that repeats an earlier one: handled once, there.
    pub fn duplicate(first: &str) -> Self {
        Self {
            status: Status::Ignored,
            reason: Some(format!("a duplicate of message {first} in this batch, which is handled instead")),
            repository: None,
            registry_id: None,
            digest: None,
            source_tag: None,
            scan: None,
            signature: None,
            tags: Vec::new(),
            promotions: Vec::new(),
            records: Vec::new(),
            subject: None,
            signatures_found: crate::domain::signature::Kinds::NONE,
        }
    }

    /// The tags that did not end in place, as `tag: outcome (detail)`.
    pub fn problems(&self) -> impl Iterator<Item = &TagReport> {
        self.tags.iter().filter(|t| t.outcome.is_problem())
    }
}

/// The answer to a reconcile request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    /// `complete`: every matching repository was swept; `stopped`: resume with `continuation`.
    pub status: SweepStatus,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
    /// PutImage calls made (0 in a dry run).
    pub writes: usize,
    /// A dry run: the PutImage calls a real sweep would make (they count against `max_writes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_write: Option<usize>,
    pub repositories: Vec<RepositorySweep>,
    /// A fan-out: the sweep messages it sent to the event queue, instead of sweeping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enqueued: Option<Enqueued>,
}

/// What a fan-out sent: one sweep message per repository a rule names.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Enqueued {
    pub messages: usize,
    /// The first [`MAX_ENQUEUED_LISTED`] repositories of those messages.
    pub repositories: Vec<String>,
    /// Repositories the request covers that no rule names: no message.
    pub not_covered: usize,
}

/// At most this many repositories are named in a fan-out's answer (all are counted).
pub const MAX_ENQUEUED_LISTED: usize = 100;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SweepStatus {
    Complete,
    Stopped,
}

/// What a sweep found and did in one repository.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct RepositorySweep {
    pub repository: String,
    pub images_seen: usize,
    /// Created or moved (0 in a dry run).
    pub tags_written: usize,
    /// A dry run: tags a real sweep would create or move.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_write: Option<usize>,
    pub already_correct: usize,
    /// Immutable tags on another image.
    pub conflicts: usize,
    /// Failed writes, including full images (`tag_limit`).
    pub failed: usize,
    /// Derived but not to be written now: invalid, loop risk, or gated without a passing scan or a signature.
    pub held_back: usize,
    /// The first [`MAX_HELD_LISTED`] of those, each with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldReport>,
    /// Signatures, attestations and SBOMs listed: only rules with `"artifacts": true` apply to them.
    pub artifacts: usize,
    /// Archived images passed over: no tag is moved onto one (that would restore it).
    pub archived: usize,
    /// Why this repository could not be swept (then the counts are what was done before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every tag written or not written for a reason worth reading; a promotion's names its target.
    pub changes: Vec<TagReport>,
    /// What copying images into promotion targets took, one entry per image promoted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub promotions: Vec<PromotionReport>,
    /// The promotion records the sweep attached (`"record": true`), one per image, rule and repository.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordReport>,
    /// Tags of recorded rules found in place (`unchanged`, each naming its image): the sweep
    /// attaches a record to those no record names yet.
    #[serde(skip)]
    pub in_place: Vec<TagReport>,
}

/// How many held-back tags a repository's summary lists (all are counted).
pub const MAX_HELD_LISTED: usize = 50;

/// A derived tag a sweep held back from an image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HeldReport {
    /// A promotion's target, where the tag would be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub tag: String,
    pub digest: String,
    pub reason: String,
}

impl SweepReport {
    pub fn outcomes(&self) -> impl Iterator<Item = Outcome> + '_ {
        self.repositories.iter().flat_map(|r| r.changes.iter().map(|c| c.outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_documented() {
        let report = Report {
            status: Status::Applied,
            reason: None,
            repository: Some("app".into()),
            registry_id: Some("123456789012".into()),
            digest: Some("sha256:abc".into()),
            source_tag: Some("v1.4.2".into()),
            scan: None,
            signature: None,
            tags: vec![TagReport {
                tag: "stable".into(),
                repository: None,
                digest: None,
                rules: vec!["release".into()],
                outcome: Outcome::Moved,
                detail: Some("was sha256:def".into()),
                retryable: false,
            }],
            promotions: Vec::new(),
            records: Vec::new(),
            subject: None,
            signatures_found: crate::domain::signature::Kinds::NONE,
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"status":"applied","repository":"app","registry_id":"123456789012","digest":"sha256:abc","source_tag":"v1.4.2","tags":[{"tag":"stable","rules":["release"],"outcome":"moved","detail":"was sha256:def"}]}"#
        );
        assert_eq!(serde_json::to_string(&Outcome::WouldCreate).unwrap(), r#""would_create""#);
        assert_eq!(serde_json::to_string(&Status::DryRun).unwrap(), r#""dry_run""#);
        for o in [Outcome::Created, Outcome::WouldMove, Outcome::Conflict, Outcome::SkippedNotNewer, Outcome::Repaired, Outcome::Superseded, Outcome::WouldRemove] {
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""), "Display matches the JSON");
        }
    }
}
