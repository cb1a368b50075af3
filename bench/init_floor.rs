//! The INIT floor `bench/init` compares ecr-retag against: the smallest lambda_runtime function,
//! an echo handler, built with the same release profile. Not part of the product.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<Value, Error>(event.payload) })).await
}
