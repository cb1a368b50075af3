//! Signatures, attestations and SBOMs stored next to images, told apart from
//! the images they describe so that no rule promotes one by accident (a
//! catch-all rule once moved `latest` onto a cosign signature).
//!
//! Recognised from what costs least first: the pushed tag's shape and the
//! event's media types (no call), then the manifest the function reads anyway,
//! and in a sweep the listing's `subjectManifestDigest` and `artifactMediaType`.
//! Standalone artifacts without a `subject` and of no type below, such as Helm
//! charts, are not told apart: they are promoted like images.

use serde::Deserialize;

/// A manifest that is not an image to promote, and how it was recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    /// A tag of cosign's scheme, `sha256-<64 hex>.sig`, `.att` or `.sbom`.
    CosignTag { tag: String, kind: &'static str },
    /// Notation's referrers fallback tag, `sha256-<64 hex>`.
    FallbackTag { tag: String },
    /// A manifest with a `subject`: a referrer of that image.
    Referrer { subject: String },
    /// An artifact, config or layer media type of a known signature, attestation or SBOM format.
    KnownType { media_type: String, kind: &'static str },
}

/// The media types of signatures, attestations and SBOMs, by the part before any `;` parameters.
/// One list: the event, the manifest and the listing are all checked against it.
const KNOWN_TYPES: [(&str, &str); 13] = [
    ("application/vnd.dev.cosign.simplesigning.v1+json", "a cosign signature"),
    ("application/vnd.dev.cosign.artifact.sig.v1+json", "a cosign signature"),
    ("application/vnd.dev.cosign.artifact.sbom.v1+json", "a cosign SBOM"),
    ("application/vnd.dsse.envelope.v1+json", "an in-toto attestation (DSSE)"),
    ("application/vnd.in-toto+json", "an in-toto attestation"),
    ("application/vnd.dev.sigstore.bundle.v0.3+json", "a Sigstore bundle"),
    ("application/vnd.dev.sigstore.bundle+json", "a Sigstore bundle"),
    ("application/vnd.cncf.notary.signature", "a Notary signature"),
    ("application/spdx+json", "an SPDX SBOM"),
    ("text/spdx", "an SPDX SBOM"),
    ("application/vnd.cyclonedx+json", "a CycloneDX SBOM"),
    ("application/vnd.cyclonedx+xml", "a CycloneDX SBOM"),
    ("application/vnd.cyclonedx", "a CycloneDX SBOM"),
];

impl Artifact {
    /// For an `ignored` reason: what it is and how that was told.
    pub fn describe(&self) -> String {
        match self {
            Artifact::CosignTag { tag, kind } => format!("a cosign {kind} (its tag `{tag}` has cosign's shape)"),
            Artifact::FallbackTag { tag } => format!("a signature or other referrer (`{tag}` is Notation's referrers fallback tag)"),
            Artifact::Referrer { subject } => format!("a referrer of {subject} (its manifest has a `subject`)"),
            Artifact::KnownType { media_type, kind } => format!("{kind} (media type {media_type})"),
        }
    }

    /// From a tag's shape alone.
    pub fn of_tag(tag: &str) -> Option<Artifact> {
        let hex = tag.strip_prefix("sha256-")?;
        let (digits, suffix) = hex.split_at(hex.len().min(64));
        if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let kind = match suffix {
            "" => return Some(Artifact::FallbackTag { tag: tag.to_owned() }),
            ".sig" => "signature",
            ".att" => "attestation",
            ".sbom" => "SBOM",
            _ => return None,
        };
        Some(Artifact::CosignTag { tag: tag.to_owned(), kind })
    }

    /// From one media type (an event's `artifact-media-type`, a manifest's `artifactType`, ...).
    pub fn of_media_type(media_type: &str) -> Option<Artifact> {
        let bare = media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        KNOWN_TYPES
            .iter()
            .find(|(known, _)| *known == bare)
            .map(|(_, kind)| Artifact::KnownType { media_type: media_type.to_owned(), kind })
    }

    /// From the manifest's bytes: a `subject`, or a known artifact, config or layer type.
    /// Anything that does not parse as a manifest is no artifact here.
    pub fn of_manifest(manifest: &str) -> Option<Artifact> {
        let parsed = ManifestFields::parse(manifest)?;
        if let Some(subject) = parsed.subject {
            return Some(Artifact::Referrer { subject: subject.digest.unwrap_or_else(|| "another image".to_owned()) });
        }
        let types = parsed.artifact_type.into_iter().chain(parsed.config.and_then(|c| c.media_type));
        types.chain(parsed.layers.into_iter().filter_map(|l| l.media_type)).find_map(|t| Artifact::of_media_type(&t))
    }

    /// From a listing (DescribeImages): a tag's shape, the subject, the artifact media type.
    pub fn of_listing<'t>(tags: impl IntoIterator<Item = &'t str>, subject: Option<&str>, media_type: Option<&str>) -> Option<Artifact> {
        subject
            .map(|s| Artifact::Referrer { subject: s.to_owned() })
            .or_else(|| media_type.and_then(Artifact::of_media_type))
            .or_else(|| tags.into_iter().find_map(Artifact::of_tag))
    }
}

/// What a manifest says about what it is (the rest of it is left unread): its artifact
/// type, config and layer media types, and the image it refers to.
#[derive(Deserialize)]
pub(crate) struct ManifestFields {
    #[serde(rename = "artifactType")]
    pub(crate) artifact_type: Option<String>,
    pub(crate) config: Option<Descriptor>,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
    pub(crate) subject: Option<Descriptor>,
}

#[derive(Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType")]
    pub(crate) media_type: Option<String>,
    pub(crate) digest: Option<String>,
}

impl ManifestFields {
    /// `None` for text that is no JSON object of that shape.
    pub(crate) fn parse(manifest: &str) -> Option<ManifestFields> {
        serde_json::from_str(manifest).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c1c735361890448e6985e2338a833ffda0c768242425d348604a4430517a3445";

    #[test]
    fn a_tag_of_64_characters_that_are_not_hex_is_no_artifact_and_each_kind_says_how_it_was_told() {
        assert_eq!(Artifact::of_tag(&format!("sha256-{}.sig", "z".repeat(64))), None);
        assert_eq!(Artifact::of_tag(&format!("sha256-{}.sig", &HEX[..63])), None, "63 digits");
        let cosign = Artifact::of_tag(&format!("sha256-{HEX}.att")).unwrap().describe();
        assert!(cosign.starts_with("a cosign attestation") && cosign.contains(HEX), "{cosign}");
        let fallback = Artifact::of_tag(&format!("sha256-{HEX}")).unwrap().describe();
        assert!(fallback.contains("Notation's referrers fallback tag"), "{fallback}");
        let typed = Artifact::of_media_type("application/spdx+json").unwrap().describe();
        assert!(typed.contains("application/spdx+json"), "{typed}");
    }

    #[test]
    fn cosign_and_notation_tags_are_told_by_their_shape() {
        for (suffix, kind) in [(".sig", "signature"), (".att", "attestation"), (".sbom", "SBOM")] {
            let tag = format!("sha256-{HEX}{suffix}");
            assert_eq!(Artifact::of_tag(&tag), Some(Artifact::CosignTag { tag: tag.clone(), kind }));
        }
        assert!(matches!(Artifact::of_tag(&format!("sha256-{HEX}")), Some(Artifact::FallbackTag { .. })));
        for image in ["v1.4.2", "latest", "sha256-abc.sig", &format!("sha256-{HEX}.tar"), &format!("sha-{HEX}"), &HEX[..12]] {
            assert_eq!(Artifact::of_tag(image), None, "{image}");
        }
    }

    #[test]
    fn known_media_types_are_artifacts_whatever_their_parameters_and_image_types_are_not() {
        let bundle = "application/vnd.dev.sigstore.bundle+json;version=0.3";
        assert!(matches!(Artifact::of_media_type(bundle), Some(Artifact::KnownType { kind: "a Sigstore bundle", .. })));
        assert!(Artifact::of_media_type("application/vnd.cncf.notary.signature").is_some());
        for image in [
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.cncf.helm.config.v1+json",
            "application/vnd.oci.empty.v1+json",
        ] {
            assert_eq!(Artifact::of_media_type(image), None, "{image}");
        }
    }

    #[test]
    fn a_manifest_is_an_artifact_by_its_subject_or_its_types() {
        let referrer = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/example",
            "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},
            "layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{HEX}","size":1}}}}"#
        );
        assert_eq!(Artifact::of_manifest(&referrer), Some(Artifact::Referrer { subject: format!("sha256:{HEX}") }));
        let legacy_signature = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},
            "layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"sha256:00"}]}"#;
        assert!(matches!(Artifact::of_manifest(legacy_signature), Some(Artifact::KnownType { kind: "a cosign signature", .. })));
        let sbom = r#"{"schemaVersion":2,"config":{"mediaType":"application/spdx+json"},"layers":[]}"#;
        assert!(matches!(Artifact::of_manifest(sbom), Some(Artifact::KnownType { kind: "an SPDX SBOM", .. })));
        let helm = include_str!("../../../tests/fixtures/manifests/helm-chart-oci-artifact.json");
        assert_eq!(Artifact::of_manifest(helm), None, "a standalone artifact such as a Helm chart is promoted as before");
        let index = include_str!("../../../tests/fixtures/manifests/docker-manifest-list.json");
        assert_eq!(Artifact::of_manifest(index), None);
        assert_eq!(Artifact::of_manifest("not json"), None);
    }

    #[test]
    fn a_listing_tells_by_subject_type_or_tag() {
        assert!(matches!(Artifact::of_listing(["v1"], Some("sha256:x"), None), Some(Artifact::Referrer { .. })));
        assert!(Artifact::of_listing(["v1"], None, Some("application/vnd.cyclonedx+json")).is_some());
        let sig = format!("sha256-{HEX}.sig");
        assert!(Artifact::of_listing(["x", sig.as_str()], None, Some("application/vnd.oci.image.config.v1+json")).is_some());
        assert_eq!(Artifact::of_listing(["v1"], None, Some("application/vnd.oci.image.config.v1+json")), None);
    }
}
