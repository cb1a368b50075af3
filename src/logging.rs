//! The log subscriber: Lambda's log format (`AWS_LAMBDA_LOG_FORMAT`) and level
//! (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO), as lambda_runtime's
//! default subscriber has them, with one line per event.

use lambda_runtime::tracing::subscriber::{
    filter::{EnvFilter, FilterFn, LevelFilter},
    fmt,
    prelude::*,
    Layer,
};
use tracing::Metadata;

/// Installs the subscriber; call once, before the runtime starts.
pub fn init() {
    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG"));
    let level = level.as_deref().unwrap_or("INFO").parse::<LevelFilter>().unwrap_or(LevelFilter::INFO);
    let levels = EnvFilter::builder().with_default_directive(level.into()).from_env_lossy();
    let lines = fmt::layer().with_target(false).without_time();
    let lines = if format.eq_ignore_ascii_case("json") { lines.json().boxed() } else { lines.boxed() };
    lambda_runtime::tracing::subscriber::registry()
        .with(lines.with_filter(levels).with_filter(FilterFn::new(not_an_echo)))
        .init();
}

/// lambda_runtime logs every error a handler returns once more, at ERROR, as a
/// debug dump (`error!("{error:?}")` in its panic layer, a message and no
/// other field), after the handler has logged it as `event failed` at the
/// level its retryability deserves. That echo is dropped; the same layer's
/// reports of a panic (which carry an `error` field) are kept.
fn not_an_echo(metadata: &Metadata<'_>) -> bool {
    let echo = metadata.target().starts_with("lambda_runtime::layers::panic") && metadata.fields().field("error").is_none();
    !echo
}
