//! The command line: rule files checked and planned offline, the engine run against a registry
//! (`ecr-retag --help`). The Lambda function is the other binary, `bootstrap`. All logic lives
//! in the library's `cli`.

use std::time::SystemTime;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = ecr_retag::cli::run(&args, SystemTime::now().into()).await;
    std::process::exit(outcome.print());
}
