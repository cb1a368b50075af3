//! A push: its tag through the rules, as the event engine's job ([`crate::apply::engine`]).

use crate::apply::engine::{run, Handled, Job};
use crate::apply::Settings;
use crate::domain::artifact::Artifact;
use crate::domain::plan::Phase;
use crate::domain::request::{Push, Sources};
use crate::error::RetagError;
use crate::registry::Blobs;

/// A push's writes, up to the second look at its if-newer tags. (A cosign signature tag
/// is a signature's push: [`crate::apply::begin_push`] tells the two apart.)
pub async fn begin<R: Blobs>(registry: &R, settings: &Settings, push: &Push) -> Result<Handled, RetagError> {
    let job = Job {
        repository: push.repository.clone(),
        digest: push.digest.clone(),
        artifact: Artifact::of_tag(push.tag.as_str()).or_else(|| push.artifact_media_type.as_deref().and_then(Artifact::of_media_type)),
        sources: Sources::one(push.tag.clone()),
        at: push.pushed_at,
        media_type: push.media_type.as_deref(),
        dry_run: push.dry_run || settings.dry_run,
        phase: Phase::PUSH,
        image: Default::default(),
    };
    run(registry, settings, job).await
}
