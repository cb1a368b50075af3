//! The fixture kit: the reference manifests byte for byte, digests, blobs, rule sets.

use super::*;

/// One reference manifest: the exact bytes and the media type ECR records for it.
pub struct Manifest {
    pub name: &'static str,
    pub body: String,
    pub media_type: &'static str,
    /// Whether the manifest names its own `mediaType` (OCI indexes and artifacts may not).
    pub declares_media_type: bool,
}

impl Manifest {
    pub fn digest(&self) -> String {
        sha256_digest(self.body.as_bytes())
    }
}

pub fn manifest(name: &'static str) -> Manifest {
    let (media_type, declares_media_type) = match name {
        "docker-v2" => ("application/vnd.docker.distribution.manifest.v2+json", true),
        "docker-manifest-list" => ("application/vnd.docker.distribution.manifest.list.v2+json", true),
        "oci-manifest" => ("application/vnd.oci.image.manifest.v1+json", true),
        "oci-index-no-mediatype" => ("application/vnd.oci.image.index.v1+json", false),
        "helm-chart-oci-artifact" => ("application/vnd.oci.image.manifest.v1+json", false),
        // Artifacts next to an image: a cosign signature (legacy tag scheme), a Notation
        // signature (a referrer of docker-v2, with `subject`), an SPDX SBOM (a non-image config).
        "cosign-signature" | "notation-signature" | "spdx-sbom" => ("application/vnd.oci.image.manifest.v1+json", true),
        // A cosign 3 signature: a Sigstore bundle referring to docker-v2.
        "sigstore-bundle" => ("application/vnd.oci.image.manifest.v1+json", true),
        other => panic!("no fixture {other}"),
    };
    let path = root().join("tests/fixtures/manifests").join(format!("{name}.json"));
    let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Manifest { name, body, media_type, declares_media_type }
}

pub const ALL_MANIFESTS: [&str; 5] =
    ["docker-v2", "docker-manifest-list", "oci-manifest", "oci-index-no-mediatype", "helm-chart-oci-artifact"];

/// `sha256:` and the hex digest of `bytes`: what ECR names a manifest by.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A manifest of its own for image number `n`: the docker-v2 fixture with another config digest.
pub fn numbered_manifest(n: u32) -> Manifest {
    let base = manifest("docker-v2");
    let config = "sha256:e67d23e7820c49a8051dac2831f38290f5e72f66c8db5079eeb60d82f14894c0";
    let numbered = format!("{}{n:08x}", &config[..config.len() - 8]);
    Manifest { body: base.body.replace(config, &numbered), ..base }
}

/// The config and layer digests a manifest names.
pub fn blobs_of(manifest: &str) -> Vec<String> {
    let parsed: serde_json::Value = serde_json::from_str(manifest).unwrap();
    std::iter::once(&parsed["config"]).chain(parsed["layers"].as_array().unwrap()).map(|d| d["digest"].as_str().unwrap().to_owned()).collect()
}

/// `len` bytes of a pattern of `seed`'s, so that different blobs differ.
pub fn blob_bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 31 + seed as u64 * 7 + (i >> 12) as u64) as u8).collect()
}

/// The time the tests' events and direct requests happen at, whatever today is.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    "2026-11-24T12:00:00Z".parse().unwrap()
}
