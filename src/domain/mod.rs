//! The pure core: no I/O, no async, no payload JSON. Validated [`names`], the
//! [`rules`] and what they derive, the [`plan`] for one push (loop safety, scan
//! gates via [`scan`]), and the sweep's [`assess`]ment of a repository.

pub mod artifact;
pub mod assess;
pub mod names;
pub mod plan;
pub mod request;
pub mod rules;
pub mod scan;
