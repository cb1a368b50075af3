//! ecr-retag: an AWS Lambda function that adds rule-derived tags to an Amazon
//! ECR image when it is pushed, re-putting the manifest byte for byte so the
//! digest never changes.
//!
//! The crate reads in the order an event flows through it:
//!
//! - [`event`]: event in. The invocation payload (an EventBridge ECR event or a
//!   direct request) becomes a [`event::Request`], or a clear error.
//! - [`rules`]: the configuration contract, parsed and validated once at
//!   start-up, then evaluated purely against a pushed tag.
//! - [`plan`]: which tags the push should get, with invalid renderings and
//!   tags that would re-trigger the function ruled out. Pure.
//! - [`names`]: validated digests, tags, repository names and registry ids.

pub mod event;
pub mod names;
pub mod plan;
pub mod rules;
