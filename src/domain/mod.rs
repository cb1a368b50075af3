//! The pure core: no I/O, no async, no payload JSON. Validated [`names`], what
//! an invocation asks for ([`request`]), the [`rules`] and what they derive, the
//! [`plan`] for one push (loop safety, gates on the [`scan`] and [`signature`]s), the sweep's
//! [`assess`]ment of a repository, the [`artifact`]s that are not images, what a [`manifest`]
//! references (for a promotion's copy), and
//! tag [`mutability`] with exclusion filters; what a registry's settings would do to the rules
//! ([`doctor`], with ECR [`lifecycle`] policies).

pub mod artifact;
pub mod assess;
pub mod doctor;
pub mod mutability;
pub mod lifecycle;
pub mod manifest;
pub mod names;
pub mod plan;
pub mod request;
pub mod rules;
pub mod scan;
pub mod signature;
