//! The use cases over the registry port. An event is a trigger, turned into a job of the
//! event engine ([`engine`]): a push ([`push`]; [`begin_push`] tells a cosign signature's push
//! apart), a scan's result ([`scan`]), a signature's push ([`signed`]). The engine's steps: a
//! promotion's copy of the image into its target repository ([`promote`]), the PutImage step
//! ([`put`]), tags that move only to newer versions ([`if_newer`]), pushed tags retired
//! ([`removal`]), and the signed records of what was written ([`record`]). Beside it: the
//! reconcile sweep ([`sweep`]) or its fan-out to the event queue ([`fan_out`]), the read-only
//! check of a registry's settings against the rules ([`doctor`]), and why a tag is where it is,
//! from its records ([`why`]).

use crate::domain::request::{Push, ScanResult};
use crate::domain::rules::RuleSet;
use crate::error::RetagError;
use crate::registry::Blobs;
use crate::report::Report;

pub mod doctor;
pub mod engine;
pub mod fan_out;
pub mod if_newer;
pub mod promote;
pub mod push;
pub mod put;
pub mod record;
pub mod removal;
pub mod scan;
pub mod signed;
pub mod sweep;
pub mod why;

#[cfg(test)]
mod tests;

pub use engine::Handled;

/// A push's writes, up to the second look at its if-newer tags: a cosign signature tag where a
/// signature-gated rule accepts cosign is a signature's push ([`signed`]), any other a push ([`push`]).
pub async fn begin_push<R: Blobs>(registry: &R, settings: &Settings, pushed: &Push) -> Result<Handled, RetagError> {
    match pushed.as_cosign_signature(settings.rules.signed_kinds(pushed.repository.name.as_str())) {
        // Boxed: the signature's path is a deep future of its own.
        Some(signature) => Box::pin(signed::begin_signed(registry, settings, &signature)).await,
        None => push::begin(registry, settings, pushed).await,
    }
}

/// Retags one push, second look included. `Ok` when every derived tag is in place (or would be, in a dry run).
pub async fn retag<R: Blobs>(registry: &R, settings: &Settings, pushed: &Push) -> Result<Report, RetagError> {
    begin_push(registry, settings, pushed).await?.finish(registry, settings, None).await
}

/// Applies the scan-gated rules to a scanned image's tags, as if each had just been pushed; second look included.
pub async fn promote_scanned<R: Blobs>(registry: &R, settings: &Settings, scanned: &ScanResult) -> Result<Report, RetagError> {
    scan::begin_scanned(registry, settings, scanned).await?.finish(registry, settings, None).await
}

/// What the use cases need of the configuration, and no more.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rules: RuleSet,
    /// `RETAG_DRY_RUN`: nothing is written, whatever a request says.
    pub dry_run: bool,
    /// PutImage calls in flight at once for one event or sweep (`RETAG_WRITE_CONCURRENCY`).
    pub write_concurrency: usize,
}

impl Settings {
    pub const DEFAULT_WRITE_CONCURRENCY: usize = 16;

    /// These rules, writing, at the default concurrency.
    pub fn new(rules: RuleSet) -> Settings {
        Settings { rules, dry_run: false, write_concurrency: Self::DEFAULT_WRITE_CONCURRENCY }
    }
}
