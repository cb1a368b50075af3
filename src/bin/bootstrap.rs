//! The Lambda function: reads the configuration, builds the ECR client once, and serves
//! invocations through the Lambda Runtime API. The command line is the other binary,
//! `ecr-retag`; none of it is linked here. All logic lives in the library.

use std::sync::Arc;

use ecr_retag::queue::sqs::Sqs;
use ecr_retag::registry::ecr::{sdk_config, Ecr, Overrides};
use ecr_retag::signer::kms::Kms;
use ecr_retag::{config::Config, lambda::Handler, logging};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

const ABOUT: &str = "bootstrap is ecr-retag's AWS Lambda function: Lambda starts it with the Runtime API \
(AWS_LAMBDA_RUNTIME_API), which is not set here. To run it locally: scripts/invoke events/push.json \
(docs/local.md). For rule files and registries from a shell: ecr-retag --help (docs/cli.md).";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let asked_help = std::env::args().skip(1).any(|a| a == "--help" || a == "-h");
    if asked_help || std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        eprintln!("{ABOUT}");
        std::process::exit(if asked_help { 0 } else { 2 });
    }
    logging::init();
    let config = Config::from_env().unwrap_or_else(|e| {
        // Fail INIT with a message a person can act on; nothing is half-applied.
        tracing::error!(error = %e, "invalid configuration; the function will not start");
        std::process::exit(2)
    });
    let sdk = sdk_config(Overrides::default()).await;
    let queue = config.sweep_queue_url.as_deref().map(|url| Sqs::new(&sdk, url));
    let config_key = config.record_key.clone();
    let handler = Handler::new(Ecr::from_conf(&sdk), config);
    let handler = match queue {
        Some(queue) => handler.with_queue(Arc::new(queue)),
        None => handler,
    };
    let handler = match config_key {
        Some(key) => handler.with_signer(Arc::new(Kms::new(&sdk, &key))),
        None => handler,
    };
    // One handler (its caches, its sweeps' pace) for every invocation this process serves: one at a
    // time on classic Lambda, up to AWS_LAMBDA_MAX_CONCURRENCY at once on Lambda Managed Instances.
    let handler = Arc::new(handler);
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let handler = Arc::clone(&handler);
        async move {
            handler.invoked_as(&event.context.invoked_function_arn);
            handler.invoke(event.payload.get(), event.context.deadline()).await
        }
    }))
    .await
}
