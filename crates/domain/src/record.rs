//! Promotion records (`"record": true`): the evidence an event leaves next to the image whose tags
//! it wrote, and what `ecr-retag why` reads back. Pure: the statement, its DSSE encoding, the
//! referrer manifest that carries it, the annotations that make a redelivery find the record
//! already there, and whether a record explains a tag. Signing and verifying are the engine's
//! (a KMS key; the public key), over the bytes [`pae`] gives them.
//!
//! A record is an in-toto Statement v1 whose subject is the image, with ecr-retag's own predicate
//! ([`PREDICATE_TYPE`]: which rule, event, tags and evidence), in a DSSE envelope, pushed as an
//! OCI 1.1 referrer of the image: artifact type [`ARTIFACT_TYPE`], one layer, the envelope.
//! docs/records.md says why these formats.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The statement's type (in-toto Attestation Framework v1).
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// ecr-retag's predicate: an identifier, not a document to fetch.
pub const PREDICATE_TYPE: &str = "https://ecr-retag.dev/promotion/v1";
/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The referrer's `artifactType` and its config's media type. Not a signature's type, so that
/// signature gates never count a record, and so that the record's own push event tells what it
/// is (its `artifact-media-type`) without a read.
pub const ARTIFACT_TYPE: &str = "application/vnd.in-toto+json";
/// The layer: the DSSE envelope.
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The config blob (OCI's empty JSON object), under [`ARTIFACT_TYPE`].
pub const CONFIG: &[u8] = b"{}";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The annotations a record's manifest carries, which ListImageReferrers returns: what a
/// redelivery compares before writing another record.
pub const ANNOTATION_RULE: &str = "dev.ecr-retag.record.rule";
pub const ANNOTATION_TAGS: &str = "dev.ecr-retag.record.tags";
pub const ANNOTATION_EVENT: &str = "dev.ecr-retag.record.event";
const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for b in hash {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The statement: what one event did to one image's tags in one repository, under one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Promotion,
}

/// An in-toto resource descriptor: the repository and the image's digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

/// ecr-retag's predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub rule: String,
    /// `sha256:<hex>` of the deployed rule file's text.
    #[serde(rename = "ruleSetDigest")]
    pub rule_set_digest: String,
    pub event: Event,
    /// Where the image was pushed.
    #[serde(rename = "sourceRepository")]
    pub source_repository: String,
    /// Where the tags were written: the source, or a promotion's target (`"to"`).
    #[serde(rename = "targetRepository")]
    pub target_repository: String,
    pub tags: Vec<Written>,
    /// For gated rules: what the decision saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureEvidence>,
    pub recorder: Recorder,
    #[serde(rename = "recordedAt")]
    pub recorded_at: String,
}

/// The event that wrote the tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The EventBridge event's id (none for a direct request or a sweep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `push`, `scan`, `signature`, `request` or `sweep`.
    pub kind: String,
    /// When the image was pushed, scanned or signed (a sweep: when it ran), RFC 3339.
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub tag: String,
    /// The report's outcome: `created`, `moved`, `repaired` (or `unchanged`, for a record written
    /// on a later delivery of an event whose first could not write it).
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanEvidence {
    /// `COMPLETE` for a basic scan, `ACTIVE` for an enhanced one, as ECR reported it.
    pub status: String,
    /// Findings per severity, as ECR named them.
    pub counts: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureEvidence {
    /// `notation`, `sigstore`, `cosign` or `managed`: the kinds found.
    pub kinds: Vec<String>,
    /// The signature manifest's digest, where the event named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The function that wrote the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorder {
    /// The function's ARN (or its name, outside Lambda).
    pub id: String,
    pub version: String,
}

impl Statement {
    /// The statement of `promotion` about the image `digest` in `promotion.target_repository`.
    pub fn new(digest: &str, promotion: Promotion) -> Statement {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        Statement {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject: vec![Subject {
                name: promotion.target_repository.clone(),
                digest: BTreeMap::from([("sha256".to_owned(), hex.to_owned())]),
            }],
            predicate_type: PREDICATE_TYPE.to_owned(),
            predicate: promotion,
        }
    }

    /// The payload's bytes, as signed.
    pub fn payload(&self) -> Vec<u8> {
        // A struct of strings, vectors and maps of strings: serialising it cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(payload: &[u8]) -> Result<Statement, Unreadable> {
        let statement: Statement = serde_json::from_slice(payload).map_err(|e| Unreadable::Statement(e.to_string()))?;
        if statement.statement_type != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
            return Err(Unreadable::OtherPredicate(statement.predicate_type));
        }
        Ok(statement)
    }

    /// The image the statement is about, `sha256:<hex>`.
    pub fn digest(&self) -> Option<String> {
        self.subject.first().and_then(|s| s.digest.get("sha256")).map(|hex| format!("sha256:{hex}"))
    }

    /// Whether this statement explains `tag` on `digest` in `repository`, or why not.
    pub fn explains(&self, repository: &str, digest: &str, tag: &str) -> Result<&Written, Unexplained> {
        let about = self.digest().unwrap_or_default();
        if about != digest {
            return Err(Unexplained::OtherDigest { about });
        }
        if self.predicate.target_repository != repository {
            return Err(Unexplained::OtherRepository { repository: self.predicate.target_repository.clone() });
        }
        self.predicate.tags.iter().find(|w| w.tag == tag).ok_or_else(|| Unexplained::OtherTags {
            tags: self.predicate.tags.iter().map(|w| w.tag.clone()).collect(),
        })
    }
}

/// Why a verified statement does not explain the tag asked about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unexplained {
    #[error("the record is about another image, {about}")]
    OtherDigest { about: String },
    #[error("the record is about the tags of {repository}")]
    OtherRepository { repository: String },
    #[error("the record names other tags: {}", tags.join(", "))]
    OtherTags { tags: Vec<String> },
}

/// Why a referrer's bytes are no readable record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("not a DSSE envelope: {0}")]
    Envelope(String),
    #[error("the envelope's payload type is {0:?}, not an in-toto statement")]
    PayloadType(String),
    #[error("the envelope carries no signature")]
    Unsigned,
    #[error("not an in-toto statement: {0}")]
    Statement(String),
    #[error("a statement of another predicate ({0})")]
    OtherPredicate(String),
}

/// DSSE's pre-authentication encoding: what is signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope (one signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the statement's bytes.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The KMS key's ARN, as KMS named it when signing.
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the signature (DER ECDSA).
    pub sig: String,
}

impl Envelope {
    /// The envelope of `statement`, signed `signature` by `keyid`.
    pub fn new(statement: &[u8], keyid: &str, signature: &[u8]) -> Envelope {
        Envelope {
            payload_type: PAYLOAD_TYPE.to_owned(),
            payload: STANDARD.encode(statement),
            signatures: vec![Signature { keyid: keyid.to_owned(), sig: STANDARD.encode(signature) }],
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> Result<Envelope, Unreadable> {
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| Unreadable::Envelope(e.to_string()))?;
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(Unreadable::PayloadType(envelope.payload_type));
        }
        if envelope.signatures.is_empty() {
            return Err(Unreadable::Unsigned);
        }
        Ok(envelope)
    }

    /// The payload's bytes (what the signatures cover, through [`pae`]).
    pub fn payload_bytes(&self) -> Result<Vec<u8>, Unreadable> {
        STANDARD.decode(&self.payload).map_err(|e| Unreadable::Envelope(format!("payload: {e}")))
    }

    /// What was signed.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, Unreadable> {
        Ok(pae(&self.payload_type, &self.payload_bytes()?))
    }

    /// Each signature's bytes (an undecodable one is skipped: it verifies nothing).
    pub fn signature_bytes(&self) -> Vec<Vec<u8>> {
        self.signatures.iter().filter_map(|s| STANDARD.decode(&s.sig).ok()).collect()
    }
}

/// What makes two records the same: the rule, the tags it wrote (sorted) and the event. Carried
/// as annotations on the record's manifest, which ListImageReferrers returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub rule: String,
    pub tags: Vec<String>,
    pub event: String,
}

impl Key {
    pub fn new(rule: &str, tags: impl IntoIterator<Item = String>, event: String) -> Key {
        let mut tags: Vec<String> = tags.into_iter().collect();
        tags.sort();
        tags.dedup();
        Key { rule: rule.to_owned(), tags, event }
    }

    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ANNOTATION_RULE.to_owned(), self.rule.clone()),
            (ANNOTATION_TAGS.to_owned(), self.tags.join(",")),
            (ANNOTATION_EVENT.to_owned(), self.event.clone()),
        ])
    }

    /// Whether a referrer with these annotations records this rule's tags: on this event (`any_event`
    /// false), or on any.
    pub fn found_in(&self, annotations: &BTreeMap<String, String>, any_event: bool) -> bool {
        annotations.get(ANNOTATION_RULE) == Some(&self.rule)
            && annotations.get(ANNOTATION_TAGS).map(String::as_str) == Some(self.tags.join(",").as_str())
            && (any_event || annotations.get(ANNOTATION_EVENT) == Some(&self.event))
    }
}

/// A manifest's descriptor: what the record's manifest names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor { media_type: media_type.to_owned(), digest: sha256(bytes), size: bytes.len() as u64 }
    }
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    #[serde(rename = "artifactType")]
    artifact_type: &'static str,
    config: Descriptor,
    layers: [&'a Descriptor; 1],
    subject: &'a Descriptor,
    annotations: BTreeMap<String, String>,
}

/// The record's manifest: a referrer of `subject` whose one layer is `envelope`.
pub fn manifest(subject: &Descriptor, envelope: &Descriptor, key: &Key, created: &str) -> String {
    let mut annotations = key.annotations();
    annotations.insert(ANNOTATION_CREATED.to_owned(), created.to_owned());
    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        artifact_type: ARTIFACT_TYPE,
        config: Descriptor::of(ARTIFACT_TYPE, CONFIG),
        layers: [envelope],
        subject,
        annotations,
    };
    serde_json::to_string(&manifest).unwrap_or_default()
}

/// The manifest's media type, for the PutImage of a record.
pub const fn manifest_media_type() -> &'static str {
    MANIFEST_MEDIA_TYPE
}

/// The envelope layer's digest in a record's manifest, if the manifest is one.
pub fn envelope_of(manifest: &str) -> Option<String> {
    let fields = crate::artifact::ManifestFields::parse(manifest)?;
    if fields.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return None;
    }
    fields.layers.into_iter().find(|l| l.media_type.as_deref() == Some(ENVELOPE_MEDIA_TYPE)).and_then(|l| l.digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = "sha256:c1c735361890448e6985e2338a833ffda0c768242425d348604a4430517a3445";

    fn promotion(tags: &[&str]) -> Promotion {
        Promotion {
            rule: "stable".into(),
            rule_set_digest: sha256(b"{}"),
            event: Event { id: Some("e-1".into()), kind: "push".into(), time: "2026-12-06T10:00:00Z".into() },
            source_repository: "dev/app".into(),
            target_repository: "prod/app".into(),
            tags: tags.iter().map(|t| Written { tag: (*t).into(), outcome: "created".into() }).collect(),
            scan: Some(ScanEvidence { status: "COMPLETE".into(), counts: BTreeMap::from([("HIGH".into(), 0)]) }),
            signature: None,
            recorder: Recorder { id: "arn:aws:lambda:eu-west-1:123456789012:function:ecr-retag".into(), version: "$LATEST".into() },
            recorded_at: "2026-12-06T10:00:01Z".into(),
        }
    }

    #[test]
    fn pae_is_dsse_v1s_encoding() {
        // The DSSE specification's worked example.
        assert_eq!(pae("http://example.com/HelloWorld", b"hello world"), b"DSSEv1 29 http://example.com/HelloWorld 11 hello world");
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn a_statement_is_in_toto_v1_about_the_image_and_reads_back_as_written() {
        let statement = Statement::new(IMAGE, promotion(&["stable", "v1"]));
        let json: serde_json::Value = serde_json::from_slice(&statement.payload()).unwrap();
        assert_eq!(json["_type"], STATEMENT_TYPE);
        assert_eq!(json["subject"][0]["digest"]["sha256"], IMAGE.trim_start_matches("sha256:"));
        assert_eq!(json["subject"][0]["name"], "prod/app");
        assert_eq!(json["predicateType"], PREDICATE_TYPE);
        assert_eq!(json["predicate"]["tags"][1]["tag"], "v1");
        assert_eq!(json["predicate"]["scan"]["counts"]["HIGH"], 0);
        assert!(json["predicate"].get("signature").is_none(), "no evidence not looked for");
        assert_eq!(Statement::parse(&statement.payload()).unwrap(), statement);
    }

    #[test]
    fn a_statement_explains_only_its_own_image_repository_and_tags() {
        let statement = Statement::new(IMAGE, promotion(&["stable"]));
        assert_eq!(statement.explains("prod/app", IMAGE, "stable").unwrap().outcome, "created");
        let other = IMAGE.replace("c1c7", "0000");
        assert_eq!(statement.explains("prod/app", &other, "stable"), Err(Unexplained::OtherDigest { about: IMAGE.into() }));
        assert_eq!(statement.explains("dev/app", IMAGE, "stable"), Err(Unexplained::OtherRepository { repository: "prod/app".into() }));
        assert_eq!(statement.explains("prod/app", IMAGE, "v1"), Err(Unexplained::OtherTags { tags: vec!["stable".into()] }));
    }

    #[test]
    fn an_envelope_round_trips_and_signs_the_pae_of_its_payload() {
        let statement = Statement::new(IMAGE, promotion(&["stable"]));
        let envelope = Envelope::new(&statement.payload(), "key-1", b"\x30\x01sig");
        let read = Envelope::parse(&envelope.to_bytes()).unwrap();
        assert_eq!(read, envelope);
        assert_eq!(read.signed_bytes().unwrap(), pae(PAYLOAD_TYPE, &statement.payload()));
        assert_eq!(read.signature_bytes(), [b"\x30\x01sig".to_vec()]);
        assert_eq!(Statement::parse(&read.payload_bytes().unwrap()).unwrap(), statement);
    }

    #[test]
    fn what_is_not_a_record_says_why() {
        assert!(matches!(Envelope::parse(b"[]"), Err(Unreadable::Envelope(_))));
        let other = br#"{"payloadType":"text/plain","payload":"","signatures":[{"sig":""}]}"#;
        assert_eq!(Envelope::parse(other), Err(Unreadable::PayloadType("text/plain".into())));
        let unsigned = br#"{"payloadType":"application/vnd.in-toto+json","payload":"","signatures":[]}"#;
        assert_eq!(Envelope::parse(unsigned), Err(Unreadable::Unsigned));
        let mut slsa = Statement::new(IMAGE, promotion(&["stable"]));
        slsa.predicate_type = "https://slsa.dev/provenance/v1".into();
        assert_eq!(Statement::parse(&slsa.payload()), Err(Unreadable::OtherPredicate("https://slsa.dev/provenance/v1".into())));
    }

    #[test]
    fn the_key_is_the_rule_the_sorted_tags_and_the_event() {
        let key = Key::new("stable", ["v1".to_owned(), "stable".to_owned(), "v1".to_owned()], "e-1".into());
        let found = key.annotations();
        assert_eq!(found[ANNOTATION_TAGS], "stable,v1");
        assert!(key.found_in(&found, false));
        let later = Key::new("stable", ["stable".to_owned(), "v1".to_owned()], "e-2".into());
        assert!(!later.found_in(&found, false), "another event's record");
        assert!(later.found_in(&found, true), "a record of the same tags, on any event");
        assert!(!Key::new("stable", ["stable".to_owned()], "e-1".into()).found_in(&found, true), "other tags");
        assert!(!Key::new("other", ["stable".to_owned(), "v1".to_owned()], "e-1".into()).found_in(&found, true), "another rule");
    }

    #[test]
    fn the_manifest_is_an_oci_referrer_of_the_image_with_the_envelope_as_its_layer() {
        let subject = Descriptor::of("application/vnd.oci.image.manifest.v1+json", b"image");
        let envelope = Descriptor::of(ENVELOPE_MEDIA_TYPE, b"envelope");
        let key = Key::new("stable", ["stable".to_owned()], "e-1".into());
        let text = manifest(&subject, &envelope, &key, "2026-12-06T10:00:01Z");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["subject"]["digest"], sha256(b"image"));
        assert_eq!(json["artifactType"], ARTIFACT_TYPE);
        assert_eq!(json["config"]["digest"], "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert_eq!(json["config"]["size"], 2);
        assert_eq!(json["layers"][0]["size"], 8);
        assert_eq!(json["annotations"][ANNOTATION_RULE], "stable");
        assert_eq!(envelope_of(&text), Some(sha256(b"envelope")));
        assert_eq!(envelope_of(r#"{"artifactType":"application/vnd.cncf.notary.signature","layers":[]}"#), None);
        // Not a signature of any kind a gate counts, and the push event says so without a read.
        assert_eq!(crate::signature::Referrer::of_manifest(&text), None);
        assert_eq!(crate::signature::Untagged::of_event(Some(ARTIFACT_TYPE)), crate::signature::Untagged::NotASignature);
    }
}
