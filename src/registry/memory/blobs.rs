//! The in-memory registry's blobs: mounts between repositories, copies, manifests put by digest and
//! referrers, for promotion into another repository.

use super::*;

impl Blobs for Memory {
    async fn mounting_enabled(&self) -> Result<bool, ReadError> {
        let state = self.enter(Call::MountingEnabled).await.map_err(ReadError::Fault)?;
        Ok(!state.mounting_disabled)
    }

    async fn encryption(&self, repository: &Repository) -> Result<(String, Option<String>), ReadError> {
        let state = self.enter(Call::Encryption(repository.name.clone())).await.map_err(ReadError::Fault)?;
        Ok(state.stored(repository)?.encryption.clone().unwrap_or_else(|| ("AES256".to_owned(), None)))
    }

    async fn missing(&self, repository: &Repository, digests: &[Digest]) -> Result<Vec<Digest>, ReadError> {
        let state = self.enter(Call::Missing(digests.len())).await.map_err(ReadError::Fault)?;
        let stored = state.stored(repository)?;
        Ok(digests.iter().filter(|d| !stored.holds_blob(d)).cloned().collect())
    }

    /// Mounted when the setting is on, the encryption is the same and the source holds the blob; as ECR.
    async fn mount(&self, target: &Repository, source: &Repository, digest: &Digest) -> Result<Mount, Fault> {
        let mut state = self.enter(Call::Mount(digest.clone())).await?;
        let (Some(from), Some(to)) = (state.repositories.get(&source.name), state.repositories.get(&target.name)) else {
            return Ok(Mount::NotMounted);
        };
        if state.mounting_disabled || from.encryption != to.encryption || !from.holds_blob(digest) {
            return Ok(Mount::NotMounted);
        }
        // A mounted blob is the same blob: its bytes, where the model keeps them, come along.
        let bytes = from.uploaded.get(digest).cloned();
        if let Some(to) = state.repositories.get_mut(&target.name) {
            to.blobs.insert(digest.clone());
            to.uploaded.extend(bytes.map(|b| (digest.clone(), b)));
        }
        Ok(Mount::Mounted)
    }

    /// Copied whenever the source holds the blob; "sent" is the size a stored manifest declares for it.
    async fn copy_blob(&self, target: &Repository, source: &Repository, digest: &Digest, _max_bytes: u64) -> Result<u64, Fault> {
        let mut state = self.enter(Call::CopyBlob(digest.clone())).await?;
        let held = state.repositories.get(&source.name).filter(|from| from.holds_blob(digest)).map(|from| {
            let size = from.images.values().find_map(|(image, _)| References::of(&image.digest, &image.manifest).ok()?.size_of(digest)).unwrap_or(0);
            (size, from.uploaded.get(digest).cloned())
        });
        match (state.repositories.get_mut(&target.name), held) {
            (Some(to), Some((size, bytes))) => {
                to.blobs.insert(digest.clone());
                to.uploaded.extend(bytes.map(|b| (digest.clone(), b)));
                Ok(size)
            }
            _ => Err(Fault::new(crate::fault::FaultKind::Permanent, "LayersNotFoundException", format!("no blob {digest} to copy"))),
        }
    }

    async fn put_manifest(&self, repository: &Repository, image: &Image, _media_type: &str) -> Result<(), PutError> {
        let mut state = self.enter(Call::PutManifest(image.digest.clone())).await.map_err(PutError::Fault)?;
        let stored = state.repositories.get_mut(&repository.name).ok_or(PutError::RepositoryNotFound)?;
        if stored.images.contains_key(&image.digest) {
            return Err(PutError::AlreadyExists);
        }
        if let Some(missing) = stored.absent_references(image) {
            return Err(PutError::Fault(missing));
        }
        stored.images.insert(image.digest.clone(), (image.clone(), None));
        Ok(())
    }

    async fn referrers(&self, repository: &Repository, digest: &Digest) -> Result<Vec<Digest>, ReadError> {
        let state = self.enter(Call::Referrers(digest.clone())).await.map_err(ReadError::Fault)?;
        let stored = state.stored(repository)?;
        let mut found: Vec<Digest> = stored
            .images
            .values()
            .filter(|(image, _)| References::of(&image.digest, &image.manifest).is_ok_and(|r| r.subject.as_ref() == Some(digest)))
            .map(|(image, _)| image.digest.clone())
            .collect();
        found.sort();
        Ok(found)
    }

    async fn referrers_of_type(&self, repository: &Repository, digest: &Digest, artifact_type: &str) -> Result<Vec<Annotated>, ReadError> {
        let state = self.enter(Call::ReferrersOfType(digest.clone())).await.map_err(ReadError::Fault)?;
        let stored = state.stored(repository)?;
        let mut found: Vec<Annotated> = stored
            .images
            .values()
            .filter(|(image, _)| !stored.archived.contains(&image.digest))
            .filter_map(|(image, _)| {
                let manifest: serde_json::Value = serde_json::from_str(&image.manifest).ok()?;
                let about = manifest.pointer("/subject/digest").and_then(|d| d.as_str()) == Some(digest.as_str());
                let typed = manifest.get("artifactType").and_then(|t| t.as_str()) == Some(artifact_type);
                let annotations = manifest.get("annotations").and_then(|a| a.as_object()).map(|a| {
                    a.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect()
                });
                (about && typed).then(|| Annotated { digest: image.digest.clone(), annotations: annotations.unwrap_or_default() })
            })
            .collect();
        found.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(found)
    }

    /// Refused, as ECR refuses it, when the bytes do not hash to `digest`.
    async fn upload_blob(&self, repository: &Repository, digest: &Digest, bytes: &[u8]) -> Result<(), Fault> {
        let mut state = self.enter(Call::UploadBlob(digest.clone())).await?;
        if crate::domain::record::sha256(bytes) != digest.as_str() {
            return Err(Fault::new(crate::fault::FaultKind::Permanent, "InvalidLayerException", format!("the bytes do not hash to {digest}")));
        }
        let stored = state
            .repositories
            .get_mut(&repository.name)
            .ok_or_else(|| Fault::new(crate::fault::FaultKind::Permanent, "RepositoryNotFoundException", repository.name.to_string()))?;
        stored.blobs.insert(digest.clone());
        stored.uploaded.insert(digest.clone(), bytes.to_vec());
        Ok(())
    }

    async fn blob_bytes(&self, repository: &Repository, digest: &Digest, max_bytes: u64) -> Result<Vec<u8>, Fault> {
        let state = self.enter(Call::BlobBytes(digest.clone())).await?;
        let bytes = state.repositories.get(&repository.name).and_then(|r| r.uploaded.get(digest));
        match bytes {
            Some(b) if b.len() as u64 <= max_bytes => Ok(b.clone()),
            Some(_) => Err(Fault::new(crate::fault::FaultKind::Permanent, "TooLarge", format!("blob {digest} is larger than {max_bytes} bytes"))),
            None => Err(Fault::new(crate::fault::FaultKind::Permanent, "LayerInaccessibleException", format!("no bytes of {digest}"))),
        }
    }
}


impl Stored {
    pub(super) fn holds_blob(&self, digest: &Digest) -> bool {
        self.blobs.contains(digest)
            || self.images.values().any(|(image, _)| References::of(&image.digest, &image.manifest).is_ok_and(|r| r.blobs.contains(digest)))
    }
}
