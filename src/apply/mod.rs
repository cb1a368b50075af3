//! The use cases over the registry port: an event's writes ([`retag`]), a promotion's copy of
//! the image into its target repository ([`promote`]), the
//! PutImage step they all share ([`put`]), tags that move only to newer
//! versions ([`if_newer`]), pushed tags retired ([`removal`]), a signature's
//! push bringing the tags it gates ([`signed`]), the reconcile sweep ([`sweep`]) or its
//! fan-out to the event queue ([`fan_out`]), and the
//! read-only check of a registry's settings against the rules ([`doctor`]).

use crate::domain::rules::RuleSet;

pub mod doctor;
pub mod fan_out;
pub mod if_newer;
pub mod promote;
pub mod put;
pub mod removal;
pub mod retag;
pub mod signed;
pub mod sweep;

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
