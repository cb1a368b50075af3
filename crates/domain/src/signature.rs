//! Signatures as a gate (`"when": {"signed": …}`): which kinds a rule accepts,
//! and how each is recognised. Presence only: the function never verifies a
//! signature cryptographically; that is the deploying side's job (Notation,
//! cosign, Kyverno, an admission controller).

use std::fmt;

use crate::artifact::ManifestFields;
use crate::names::{Digest, Tag};

/// How an image can be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A Notation (AWS Signer) signature: a referrer of artifact type `application/vnd.cncf.notary.signature`.
    Notation,
    /// A Sigstore bundle (cosign 3's default): a referrer of artifact type `application/vnd.dev.sigstore.bundle.v0.3+json`.
    Sigstore,
    /// cosign's tag scheme: a tag `sha256-<hex of the digest>.sig` in the image's repository.
    Cosign,
    /// ECR managed signing: DescribeImageSigningStatus says `COMPLETE` for a signing profile.
    Managed,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Notation, Kind::Sigstore, Kind::Cosign, Kind::Managed];

    /// The rule file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Notation => "notation",
            Kind::Sigstore => "sigstore",
            Kind::Cosign => "cosign",
            Kind::Managed => "managed",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The referrer artifact type of this kind (`None`: not told by referrers).
    pub fn artifact_type(self) -> Option<&'static str> {
        match self {
            Kind::Notation => Some(NOTATION),
            Kind::Sigstore => Some(SIGSTORE_BUNDLE),
            Kind::Cosign | Kind::Managed => None,
        }
    }

    /// The kind of a referrer by its artifact type (parameters after `;` ignored).
    pub fn of_artifact_type(media_type: &str) -> Option<Kind> {
        let essence = media_type.split(';').next().unwrap_or_default().trim();
        [Kind::Notation, Kind::Sigstore].into_iter().find(|k| k.artifact_type() == Some(essence))
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Notation => "a Notation signature",
            Kind::Sigstore => "a Sigstore bundle",
            Kind::Cosign => "a cosign .sig tag",
            Kind::Managed => "a completed ECR managed signing",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const NOTATION: &str = "application/vnd.cncf.notary.signature";
const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The config media type of OCI 1.1 artifacts: an event that reports it as the
/// `artifact-media-type` may be a signature, told only by its manifest's `artifactType`.
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A set of kinds (a rule's accepted ones, or the ones found).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Kinds(u8);

impl Kinds {
    pub const NONE: Kinds = Kinds(0);
    /// `"signed": true`: any signature pushed to the repository. Managed signing only
    /// when asked: its status is one more call per image.
    pub const DEFAULT: Kinds = Kinds(0b0111);

    pub fn of(kinds: impl IntoIterator<Item = Kind>) -> Kinds {
        kinds.into_iter().fold(Kinds::NONE, |set, k| set.with(k))
    }

    pub fn with(self, kind: Kind) -> Kinds {
        Kinds(self.0 | 1 << kind as u8)
    }

    pub fn contains(self, kind: Kind) -> bool {
        self.0 & (1 << kind as u8) != 0
    }

    pub fn union(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    /// These kinds, less `other`'s.
    pub fn without(self, other: Kinds) -> Kinds {
        Kinds(self.0 & !other.0)
    }

    pub fn intersects(self, other: Kinds) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }

    /// The referrer artifact types among these kinds (for ListImageReferrers' filter).
    pub fn artifact_types(self) -> Vec<&'static str> {
        self.iter().filter_map(Kind::artifact_type).collect()
    }

    /// `a Notation signature or a cosign .sig tag`.
    pub fn describe(self) -> String {
        let names: Vec<&str> = self.iter().map(Kind::describe).collect();
        match names.split_last() {
            None => "no signature".to_owned(),
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }
}

impl fmt::Display for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Kind::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

/// What a look for an image's signatures saw: the kinds looked for, and those found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signatures {
    pub looked: Kinds,
    pub found: Kinds,
}

/// cosign's signature tag for an image: `sha256-<hex>.sig` (75 characters, always a valid tag).
pub fn cosign_tag(digest: &Digest) -> Option<Tag> {
    Tag::parse(&format!("sha256-{}.sig", digest.hex())).ok()
}

/// cosign's legacy sidecar tags for an image, in the image's own repository: its signatures
/// (`.sig`), attestations (`.att`) and SBOM (`.sbom`), each `sha256-<hex>.<kind>`.
pub fn cosign_sidecars(digest: &Digest) -> Vec<Tag> {
    ["sig", "att", "sbom"].iter().filter_map(|kind| Tag::parse(&format!("sha256-{}.{kind}", digest.hex())).ok()).collect()
}

/// The image a cosign signature tag signs (`sha256-<hex>.sig`), if `tag` is one.
pub fn cosign_subject(tag: &Tag) -> Option<Digest> {
    let hex = tag.as_str().strip_prefix("sha256-")?.strip_suffix(".sig")?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// What an untagged push's event tells about it, before any read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untagged {
    /// Its `artifact-media-type` is a signature's artifact type.
    Signature(Kind),
    /// An OCI 1.1 artifact (empty config): a signature only if its manifest says so.
    MaybeSignature,
    /// Anything else (the per-platform children of a multi-arch push): no read is spent.
    NotASignature,
}

impl Untagged {
    pub fn of_event(artifact_media_type: Option<&str>) -> Untagged {
        let Some(t) = artifact_media_type.map(|t| t.split(';').next().unwrap_or_default().trim()) else {
            return Untagged::NotASignature;
        };
        match Kind::of_artifact_type(t) {
            Some(kind) => Untagged::Signature(kind),
            None if t == OCI_EMPTY => Untagged::MaybeSignature,
            None => Untagged::NotASignature,
        }
    }
}

/// A signature manifest as read: what it signs and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub subject: Digest,
    pub kind: Kind,
}

impl Referrer {
    /// From the manifest's `subject` and `artifactType` (or, for artifacts that put the type
    /// in the config, the config's media type). `None`: not a signature of a known kind.
    pub fn of_manifest(manifest: &str) -> Option<Referrer> {
        let m = ManifestFields::parse(manifest)?;
        let subject = Digest::parse(m.subject?.digest.as_deref()?).ok()?;
        let kind = m.artifact_type.as_deref().and_then(Kind::of_artifact_type).or_else(|| {
            m.config.and_then(|c| c.media_type).as_deref().and_then(Kind::of_artifact_type)
        })?;
        Some(Referrer { subject, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosigns_sidecar_tags_are_the_signature_attestation_and_sbom_of_the_digest() {
        let d = digest();
        let hex = d.hex();
        let tags: Vec<String> = cosign_sidecars(&d).iter().map(ToString::to_string).collect();
        assert_eq!(tags, [format!("sha256-{hex}.sig"), format!("sha256-{hex}.att"), format!("sha256-{hex}.sbom")]);
        assert_eq!(cosign_subject(&cosign_sidecars(&d)[0]), Some(d));
    }

    #[test]
    fn a_kind_reads_as_its_name() {
        for kind in [Kind::Notation, Kind::Sigstore, Kind::Cosign, Kind::Managed] {
            assert_eq!(kind.to_string(), kind.as_str());
        }
    }

    #[test]
    fn a_kind_added_twice_is_still_there_and_the_others_are_not() {
        let twice = Kinds::NONE.with(Kind::Cosign).with(Kind::Cosign);
        assert!(twice.contains(Kind::Cosign), "adding is idempotent");
        assert_eq!(twice, Kinds::of([Kind::Cosign]));
        assert!(!twice.contains(Kind::Notation));
    }

    fn digest() -> Digest {
        Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap()
    }

    #[test]
    fn kinds_parse_as_rules_spell_them_and_the_default_leaves_out_managed_signing() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("Notation"), None);
        assert_eq!(Kinds::DEFAULT, Kinds::of([Kind::Notation, Kind::Sigstore, Kind::Cosign]));
        assert!(!Kinds::DEFAULT.contains(Kind::Managed));
        assert_eq!(Kinds::DEFAULT.artifact_types(), [NOTATION, SIGSTORE_BUNDLE]);
        assert_eq!(Kinds::of([Kind::Cosign]).artifact_types(), Vec::<&str>::new());
        assert_eq!(Kinds::DEFAULT.describe(), "a Notation signature, a Sigstore bundle or a cosign .sig tag");
        assert_eq!(Kinds::of([Kind::Managed]).to_string(), "managed");
    }

    #[test]
    fn a_cosign_tag_names_the_digest_it_signs_and_nothing_else_does() {
        let tag = cosign_tag(&digest()).unwrap();
        assert_eq!(tag.as_str(), format!("sha256-{}.sig", "ab".repeat(32)));
        assert_eq!(cosign_subject(&tag), Some(digest()));
        for other in [format!("sha256-{}.att", "ab".repeat(32)), format!("sha256-{}", "ab".repeat(32)), "v1.sig".into(), "sha256-abc.sig".into()] {
            assert_eq!(cosign_subject(&Tag::parse(&other).unwrap()), None, "{other}");
        }
    }

    #[test]
    fn an_untagged_push_is_read_only_when_its_event_says_it_can_be_a_signature() {
        assert_eq!(Untagged::of_event(Some(NOTATION)), Untagged::Signature(Kind::Notation));
        assert_eq!(Untagged::of_event(Some(SIGSTORE_BUNDLE)), Untagged::Signature(Kind::Sigstore));
        assert_eq!(Untagged::of_event(Some(OCI_EMPTY)), Untagged::MaybeSignature);
        for child in [Some("application/vnd.oci.image.config.v1+json"), Some("application/vnd.docker.container.image.v1+json"), None] {
            assert_eq!(Untagged::of_event(child), Untagged::NotASignature, "{child:?}");
        }
    }

    #[test]
    fn a_signature_manifest_tells_its_subject_and_kind() {
        let d = digest();
        let notation = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"{NOTATION}","config":{{"mediaType":"{OCI_EMPTY}","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":1}}}}"#
        );
        assert_eq!(Referrer::of_manifest(&notation), Some(Referrer { subject: d.clone(), kind: Kind::Notation }));
        let in_config = format!(r#"{{"config":{{"mediaType":"{SIGSTORE_BUNDLE}"}},"subject":{{"digest":"{d}"}}}}"#);
        assert_eq!(Referrer::of_manifest(&in_config).map(|r| r.kind), Some(Kind::Sigstore));
        let sbom = format!(r#"{{"artifactType":"application/spdx+json","subject":{{"digest":"{d}"}}}}"#);
        assert_eq!(Referrer::of_manifest(&sbom), None, "an SBOM is no signature");
        assert_eq!(Referrer::of_manifest(&format!(r#"{{"artifactType":"{NOTATION}"}}"#)), None, "no subject");
        assert_eq!(Referrer::of_manifest("not json"), None);
    }
}
