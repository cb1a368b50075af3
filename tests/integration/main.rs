//! The integration tests, one binary (each test binary links the SDK: one link instead of
//! six). The races and the PutImage quota stay binaries of their own (tests/races.rs,
//! tests/quota.rs): they measure time and start many processes.
//!
//! - [`emulator`]: the strict local ECR's own tests, before the function is tested against it;
//! - [`ecr`]: the handler with the real ECR adapter against that emulator;
//! - [`ecr_sdk_faults`]: what the emulator cannot produce, through the SDK's mock client;
//! - [`lambda_e2e`]: the release bootstrap run as Lambda runs it, and the command line;
//! - [`promotion`] and [`signing`]: promotion into another repository, the signature gates;
//! - [`records`]: promotion records, signed with the emulator's KMS, verified outside, and `why`;
//! - [`bad_input`]: every malformed payload, answered without an ECR call.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test's panic is its failure

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod ecr;
mod ecr_sdk_faults;
mod emulator;
mod lambda_e2e;
mod promotion;
mod records;
mod signing;
