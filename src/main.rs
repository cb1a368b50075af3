//! The Lambda bootstrap: reads the configuration, builds the ECR client once,
//! and serves invocations. With arguments, the offline rule tools instead
//! (`ecr-retag check-rules FILE`, `ecr-retag plan …`). All logic lives in the library.

use std::time::SystemTime;

use ecr_retag::{cli, config::Config, ecr::Ecr, handler::Handler};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(outcome) = cli::run(&args, SystemTime::now().into()) {
        println!("{}", outcome.output);
        std::process::exit(outcome.code);
    }
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env().unwrap_or_else(|e| {
        // Fail INIT with a message a person can act on; nothing is half-applied.
        tracing::error!(error = %e, "invalid configuration; the function will not start");
        std::process::exit(2)
    });
    let handler = Handler::new(Ecr::from_env().await, config);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        handler.invoke(event.payload.get(), event.context.deadline()).await
    }))
    .await
}
