//! ecr-retag's pure core: no I/O, no async, no runtime. A crate of its own so that the compiler,
//! not convention, keeps it that way: it depends on parsing and matching crates only. The engine
//! (`ecr_retag`, the root package) re-exports it as `ecr_retag::domain`.
//!
//! - [`names`]: validated digests, tags, repository names and registry ids.
//! - [`request`]: what an invocation asks for (a push, a scan's result, a signature's push, a sweep).
//! - [`rules`]: the configuration contract, parsed and validated once at start-up, then evaluated
//!   against a pushed tag (globs, templates, example pushes for the loop check).
//! - [`plan`]: which tags one push should get: invalid renderings and tags that would re-trigger
//!   the function ruled out, gated tags deferred, passed or blocked by what is known of the
//!   [`scan`] and the [`signature`]s.
//! - [`assess`]: the sweep's choice of one image per derived tag.
//! - [`artifact`]: signatures, attestations and SBOMs, told apart from images; [`manifest`]: what
//!   a manifest references (blobs, an index's children, a subject), for a promotion's copy.
//! - [`mutability`]: tag mutability with exclusion filters, and the filters a rule set needs.
//! - [`doctor`]: what a registry's settings would do to the rules, with ECR [`lifecycle`] policies.
//! - [`record`]: promotion records (`"record": true`), the signed evidence an event attaches to
//!   the image it tagged, and whether one explains a tag (`ecr-retag why`).

pub mod artifact;
pub mod assess;
pub mod doctor;
pub mod mutability;
pub mod lifecycle;
pub mod manifest;
pub mod names;
pub mod plan;
pub mod record;
pub mod request;
pub mod rules;
pub mod scan;
pub mod signature;
