//! What a manifest references, for copying it into another repository: the blobs it names
//! (config and layers) and, for an index, its child manifests. Pure; the bytes are only read.

use serde::Deserialize;

use crate::names::Digest;

/// The media type PutImage is given for a manifest: the registry's own answer first, then the
/// event's, then the manifest's `mediaType` (OCI indexes and artifacts may have none).
pub fn media_type(from_registry: Option<&str>, from_event: Option<&str>, manifest: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Declared {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    from_registry
        .or(from_event)
        .map(str::to_owned)
        .or_else(|| serde_json::from_str::<Declared>(manifest).ok().and_then(|d| d.media_type))
}

/// A manifest's references, each once, in the manifest's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Config and layers a registry stores: what must be in a repository before the manifest is.
    pub blobs: Vec<Digest>,
    /// An index's child manifests, which must be in the repository before the index is.
    pub children: Vec<Digest>,
    /// `subject`: the image this manifest refers to (a signature, SBOM or attestation).
    pub subject: Option<Digest>,
    /// The declared size of each of `blobs`, in the same order.
    sizes: Vec<u64>,
}

/// Layers that registries never store (Windows base layers and the like): pulled from their `urls`.
const FOREIGN: [&str; 3] = [
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
];

#[derive(Deserialize)]
struct Fields {
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    subject: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: Option<String>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    size: u64,
}

impl Descriptor {
    fn digest(&self) -> Option<Digest> {
        self.digest.as_deref().and_then(|d| Digest::parse(d).ok())
    }

    /// Stored by the registry: not a foreign layer pulled from elsewhere.
    fn stored(&self) -> bool {
        self.urls.is_empty() || !self.media_type.as_deref().is_some_and(|m| FOREIGN.contains(&m))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the manifest {digest} is not a JSON manifest: {reason}")]
pub struct Unreadable {
    pub digest: String,
    pub reason: String,
}

impl References {
    /// The references of the manifest `digest`, as stored.
    pub fn of(digest: &Digest, manifest: &str) -> Result<References, Unreadable> {
        let fields: Fields =
            serde_json::from_str(manifest).map_err(|e| Unreadable { digest: digest.to_string(), reason: e.to_string() })?;
        let mut blobs: Vec<Digest> = Vec::new();
        let mut sizes = Vec::new();
        for descriptor in fields.config.iter().chain(&fields.layers).filter(|d| d.stored()) {
            if let Some(d) = descriptor.digest().filter(|d| !blobs.contains(d)) {
                blobs.push(d);
                sizes.push(descriptor.size);
            }
        }
        let mut children: Vec<Digest> = Vec::new();
        for d in fields.manifests.iter().filter_map(Descriptor::digest) {
            if !children.contains(&d) {
                children.push(d);
            }
        }
        Ok(References { blobs, children, subject: fields.subject.as_ref().and_then(Descriptor::digest), sizes })
    }

    /// The size the manifest declares for `blob`.
    pub fn size_of(&self, blob: &Digest) -> Option<u64> {
        self.blobs.iter().position(|b| b == blob).and_then(|i| self.sizes.get(i).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn the_media_type_put_is_the_registrys_then_the_events_then_the_manifests_own() {
        let declared = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#;
        assert_eq!(media_type(Some("a/registry"), Some("a/event"), declared).as_deref(), Some("a/registry"));
        assert_eq!(media_type(None, Some("a/event"), declared).as_deref(), Some("a/event"));
        assert_eq!(media_type(None, None, declared).as_deref(), Some("application/vnd.oci.image.index.v1+json"));
        assert_eq!(media_type(None, None, r#"{"schemaVersion":2}"#), None, "none says");
    }

    #[test]
    fn a_layer_with_urls_is_stored_unless_its_type_is_a_foreign_one() {
        let manifest = |media_type: &str| {
            format!(
                r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":1}},"layers":[{{"mediaType":"{media_type}","digest":"{}","size":2,"urls":["https://example.com/l"]}}]}}"#,
                d(1),
                d(2)
            )
        };
        let stored = References::of(&digest(), &manifest("application/vnd.oci.image.layer.v1.tar+gzip")).unwrap();
        assert_eq!(stored.blobs.len(), 2, "a url alone does not make a layer foreign");
        let foreign = References::of(&digest(), &manifest("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")).unwrap();
        assert_eq!(foreign.blobs.len(), 1, "the config only");
    }

    fn digest() -> Digest {
        Digest::parse(&d(0xee)).unwrap()
    }

    #[test]
    fn an_image_names_its_config_and_layers_once_each_and_no_foreign_layer() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":7}},"layers":[{{"digest":"{}","size":9}},{{"digest":"{}"}},{{"digest":"{}","size":9}},
               {{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","urls":["https://mcr.microsoft.com/x"]}}]}}"#,
            d(1), d(2), d(3), d(2), d(4)
        );
        let refs = References::of(&digest(), &manifest).unwrap();
        let names: Vec<String> = refs.blobs.iter().map(ToString::to_string).collect();
        assert_eq!(names, [d(1), d(2), d(3)]);
        let size = |n| refs.size_of(&Digest::parse(&d(n)).unwrap());
        assert_eq!((size(1), size(2), size(3), size(4)), (Some(7), Some(9), Some(0), None), "declared sizes; none for a foreign layer");
        assert!(refs.children.is_empty() && refs.subject.is_none());
    }

    #[test]
    fn an_index_names_its_children_and_a_referrer_its_subject() {
        let index = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}"}},{{"digest":"{}"}}]}}"#, d(5), d(6));
        let refs = References::of(&digest(), &index).unwrap();
        assert_eq!(refs.children.iter().map(ToString::to_string).collect::<Vec<_>>(), [d(5), d(6)]);
        assert!(refs.blobs.is_empty());
        let signature = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{}"}},"layers":[],"subject":{{"digest":"{}"}}}}"#, d(7), d(8));
        assert_eq!(References::of(&digest(), &signature).unwrap().subject.map(|s| s.to_string()), Some(d(8)));
        assert!(References::of(&digest(), "not json").unwrap_err().to_string().contains(&d(0xee)));
    }
}
