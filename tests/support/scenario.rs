//! One test's fresh repository on the shared emulator; a sweep sent as Lambda would.

use super::*;

/// One test's fresh repository on the shared emulator, and a client for it.
/// `let Scenario { emulator, client, repo } = Scenario::new("economy", false).await;`
pub struct Scenario {
    pub emulator: &'static Emulator,
    pub client: Client,
    pub repo: String,
}

impl Scenario {
    /// A fresh repository whose name starts with `prefix` (tag-immutable or not).
    pub async fn new(prefix: &str, immutable: bool) -> Scenario {
        let emulator = Emulator::shared();
        let client = emulator.client();
        let repo = repository(&client, prefix, immutable).await;
        Scenario { emulator, client, repo }
    }
}

/// Sends a reconcile request the way Lambda would (no deadline) and returns the sweep's answer.
pub async fn sweep<R: ecr_retag::registry::Catalog + ecr_retag::registry::Blobs>(h: &ecr_retag::lambda::Handler<R>, request: serde_json::Value) -> ecr_retag::report::SweepReport {
    match h.invoke(&serde_json::json!({ "reconcile": request }).to_string(), std::time::SystemTime::UNIX_EPOCH).await {
        Ok(ecr_retag::lambda::Answer::Reconcile(report)) => report,
        other => panic!("not a sweep's answer: {other:?}"),
    }
}

/// The function's handler with the real ECR adapter, against the shared emulator.
pub fn handler(rules: &str) -> ecr_retag::lambda::Handler<ecr_retag::registry::ecr::Ecr> {
    handler_in(rules, &Emulator::shared().endpoint)
}

/// The same against the ECR at `endpoint`.
pub fn handler_in(rules: &str, endpoint: &str) -> ecr_retag::lambda::Handler<ecr_retag::registry::ecr::Ecr> {
    let config = ecr_retag::config::Config::with_rules(ecr_retag::domain::rules::RuleSet::from_json(rules).unwrap());
    ecr_retag::lambda::Handler::new(ecr_retag::registry::ecr::Ecr::new(client_for(endpoint)), config)
}
