//! Seeding and reading the emulator: repositories, pushes, blobs, archived images, state.

use super::*;

/// A repository with a unique name, so tests sharing the emulator never meet.
pub async fn repository(client: &Client, prefix: &str, immutable: bool) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    client
        .create_repository()
        .repository_name(&name)
        .image_tag_mutability(if immutable { ImageTagMutability::Immutable } else { ImageTagMutability::Mutable })
        .send()
        .await
        .unwrap();
    name
}

/// A fresh repository with this tag mutability and these exclusion filters (`*_WITH_EXCLUSION`).
pub async fn repository_with(client: &Client, prefix: &str, mode: ImageTagMutability, filters: &[&str]) -> Result<String, String> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("{prefix}-x{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let filters: Vec<_> = filters
        .iter()
        .map(|f| {
            aws_sdk_ecr::types::ImageTagMutabilityExclusionFilter::builder()
                .filter_type(aws_sdk_ecr::types::ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter(*f)
                .build()
                .unwrap()
        })
        .collect();
    let request = client.create_repository().repository_name(&name).image_tag_mutability(mode);
    let request = if filters.is_empty() { request } else { request.set_image_tag_mutability_exclusion_filters(Some(filters)) };
    request.send().await.map(|_| name).map_err(|e| aws_sdk_ecr::error::DisplayErrorContext(e).to_string())
}

/// Pushes a manifest under a tag (as `docker push` would, via PutImage) and returns its digest.
pub async fn push(client: &Client, repository: &str, manifest: &Manifest, tag: Option<&str>) -> String {
    let out = client
        .put_image()
        .repository_name(repository)
        .image_manifest(&manifest.body)
        .image_manifest_media_type(manifest.media_type)
        .set_image_tag(tag.map(str::to_owned))
        .send()
        .await
        .unwrap();
    out.image().and_then(|i| i.image_id()).and_then(|i| i.image_digest()).unwrap().to_owned()
}

/// Where every tag of `repository` points now, and the stored manifest bytes by digest.
pub async fn state(client: &Client, repository: &str) -> (HashMap<String, String>, HashMap<String, String>) {
    let mut tags = HashMap::new();
    let mut digests = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let described = client.describe_images().repository_name(repository).set_next_token(page).send().await.unwrap();
        for image in described.image_details() {
            let digest = image.image_digest().unwrap().to_owned();
            for tag in image.image_tags() {
                tags.insert(tag.clone(), digest.clone());
            }
            digests.push(digest);
        }
        page = described.next_token().map(str::to_owned);
        if page.is_none() {
            break;
        }
    }
    let mut manifests = HashMap::new();
    for digest in digests {
        let got = client
            .batch_get_image()
            .repository_name(repository)
            .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&digest).build())
            .set_accepted_media_types(Some(
                ecr_retag::registry::MANIFEST_MEDIA_TYPES.iter().map(|s| s.to_string()).collect(),
            ))
            .send()
            .await
            .unwrap();
        let body = got.images()[0].image_manifest().unwrap().to_owned();
        manifests.insert(digest, body);
    }
    (tags, manifests)
}

/// Uploads `bytes` into `repository` as a blob with the layer calls (one part): its digest.
pub async fn upload_blob(client: &Client, repository: &str, bytes: &[u8]) -> String {
    let upload = client.initiate_layer_upload().repository_name(repository).send().await.unwrap();
    let id = upload.upload_id().unwrap();
    client
        .upload_layer_part()
        .repository_name(repository)
        .upload_id(id)
        .part_first_byte(0)
        .part_last_byte(bytes.len() as i64 - 1)
        .layer_part_blob(aws_sdk_ecr::primitives::Blob::new(bytes.to_vec()))
        .send()
        .await
        .unwrap();
    let digest = sha256_digest(bytes);
    client.complete_layer_upload().repository_name(repository).upload_id(id).layer_digests(&digest).send().await.unwrap();
    digest
}

/// Moves image `digest` of `repo` to the archive storage class.
pub async fn archive(client: &aws_sdk_ecr::Client, repo: &str, digest: &str) {
    let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest).build();
    client
        .update_image_storage_class()
        .repository_name(repo)
        .image_id(id)
        .target_storage_class(aws_sdk_ecr::types::TargetStorageClass::Archive)
        .send()
        .await
        .unwrap();
}
