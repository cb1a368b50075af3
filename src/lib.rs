//! ecr-retag: an AWS Lambda function that adds rule-derived tags to an Amazon
//! ECR image when it is pushed, re-putting the manifest byte for byte so the
//! digest never changes.
//!
//! The crate reads in the order an event flows through it:
//!
//! - [`input`]: the only code that knows payload JSON. The payload's text
//!   becomes an [`input::Invocation`]: one event (an EventBridge ECR event or
//!   a direct request) as a [`domain::request::Request`], an SQS batch of
//!   them, or a sweep's [`domain::request::ReconcileRequest`]; or an error
//!   naming the field.
//! - [`domain`]: the pure core, a crate of its own (`crates/domain`, `ecr-retag-domain`,
//!   re-exported here) so that the compiler keeps it free of I/O; its map opens its `lib.rs`.
//!   The rules are parsed and validated once at start-up, then evaluated purely against a
//!   pushed tag; the plan says which tags a push should get, gated or not; the sweep's
//!   assessment chooses one image per derived tag.
//! - [`apply`]: the use cases over the registry port, given only the
//!   [`apply::Settings`] they need (rules, dry run, write concurrency).
//!   [`apply::engine`]: an event's writes, whatever triggered it (a push,
//!   [`apply::push`]; a scan's result, [`apply::scan`]; a signature's push,
//!   [`apply::signed`]; [`apply::begin_push`] tells a cosign signature's push
//!   apart). One BatchGetImage, then one PutImage per tag not yet in place,
//!   concurrently ([`apply::put`]); pushed tags retired where a rule says so
//!   ([`apply::removal`]). Each tag gets an outcome.
//!   [`apply::if_newer`]: tags that move only to newer versions, whatever the
//!   concurrency: decided from fresh reads, written in single attempts, and
//!   looked at again once every earlier decision has landed (repaired if a
//!   lower version took them).
//!   [`apply::signed`]: a signature's push, which brings the signed image's
//!   signature-gated tags. [`apply::promote`]: a rule's `"to"`, the image copied
//!   into another repository by digest (blobs mounted, an index's children and
//!   the referrers and cosign's sidecar tags put after it, [`domain::manifest`]
//!   telling what a manifest references) before its tags are written there by
//!   the same path. [`apply::sweep`]: the reconcile sweep for missed events:
//!   every tagged image's tags through the rules at its push time, one image per
//!   derived tag ([`domain::assess`], pure), then the same writes, promotions
//!   into their targets included, within a write budget and the deadline; or, fanned out ([`apply::fan_out`]), one sweep message per
//!   repository to the event queue ([`queue`], the port; [`queue::sqs`], SQS).
//! - [`registry`]: the narrow ports those writes and listings go through, and
//!   [`registry::ecr`], their implementation, the only code that talks to
//!   Amazon ECR; [`registry::cache`] caches the one lookup that can be cached,
//!   and [`registry::deadline`] cuts any call still unanswered at the
//!   invocation's deadline. [`registry::memory`]: a registry in memory, for tests.
//! - [`report`]: the result out, the JSON the function returns.
//! - [`lambda`]: the edge. `Handler::invoke` takes the payload's text and
//!   Lambda's deadline and wires input, retag and report (or a batch's failed
//!   messages, or a sweep's summary); errors become Lambda diagnostics.
//! - [`telemetry`]: one log line and one [`telemetry::metrics`] line
//!   (CloudWatch Embedded Metric Format) per event or sweep, fed the results.
//! - [`error`]: the invocation's error, with whether a retry can help, built on
//!   [`fault`]'s failed calls typed by kind (a leaf the ports and the report use); [`budget`]: the
//!   invocation's time, from Lambda's deadline, asked by everything that waits.
//! - [`config`]: the environment, read and validated once at start-up;
//!   [`logging`]: the log subscriber (Lambda's format and level, one line per event).
//!
//! - [`cli`]: the same rules offline, for people writing them
//!   (`ecr-retag check-rules FILE`, `ecr-retag plan …`), with [`lint`]'s
//!   check for rules whose tags would loop; and [`cli::online`], the same
//!   engine against a registry from a shell (`ecr-retag apply …`, `ecr-retag sweep …`,
//!   and `ecr-retag doctor`, [`apply::doctor`] over [`registry::Setup`], judged by
//!   [`domain::doctor`] with [`domain::lifecycle`]).
//!
//! Two binaries only wire: `bootstrap` (`src/bin/bootstrap.rs`), the Lambda function, builds
//! the configuration, the ECR client and the handler and hands the handler to the Lambda
//! runtime; `ecr-retag` (`src/bin/ecr-retag.rs`), the command line, runs [`cli`]. The function
//! links none of the command line.

pub mod apply;
pub mod budget;
pub mod cli;
pub mod config;
pub use ecr_retag_domain as domain;
pub mod error;
pub mod fault;
pub mod input;
pub mod lambda;
pub mod lint;
pub mod logging;
pub mod queue;
pub mod registry;
pub mod report;
pub mod signer;
pub mod telemetry;
