//! The Lambda bootstrap: reads the configuration, builds the ECR client once,
//! and serves invocations. With arguments (or outside Lambda), the command line
//! instead: the offline rule tools (`ecr-retag check-rules FILE`, `ecr-retag plan …`)
//! and the engine against a registry (`ecr-retag apply …`, `ecr-retag sweep …`).
//! All logic lives in the library.

use std::time::SystemTime;
use std::sync::Arc;

use ecr_retag::queue::sqs::Sqs;
use ecr_retag::registry::ecr::{sdk_config, Ecr, Overrides};
use ecr_retag::{cli, config::Config, lambda::Handler, logging};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    if let Some(outcome) = cli::run(&args, SystemTime::now().into(), in_lambda).await {
        std::process::exit(outcome.print());
    }
    logging::init();
    let config = Config::from_env().unwrap_or_else(|e| {
        // Fail INIT with a message a person can act on; nothing is half-applied.
        tracing::error!(error = %e, "invalid configuration; the function will not start");
        std::process::exit(2)
    });
    let sdk = sdk_config(Overrides::default()).await;
    let queue = config.sweep_queue_url.as_deref().map(|url| Sqs::new(&sdk, url));
    let handler = Handler::new(Ecr::from_conf(&sdk), config);
    let handler = match queue {
        Some(queue) => handler.with_queue(Arc::new(queue)),
        None => handler,
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        handler.invoke(event.payload.get(), event.context.deadline()).await
    }))
    .await
}
