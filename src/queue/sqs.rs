//! [`Queue`] over aws-sdk-sqs: SendMessageBatch, ten messages a call.

use std::sync::OnceLock;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;

use crate::fault::{Fault, FaultKind};
use crate::queue::{Queue, Sending, BATCH};
use crate::registry::ecr::fault;

/// The client is built on the first send: only a fan-out sends, and every instance of a
/// queue-delivery stack would otherwise build it during INIT.
#[derive(Debug)]
pub struct Sqs {
    sdk: aws_config::SdkConfig,
    client: OnceLock<Client>,
    url: String,
}

impl Sqs {
    /// The queue at `url` (RETAG_SWEEP_QUEUE_URL), with the SDK configuration the ECR client has.
    pub fn new(sdk: &aws_config::SdkConfig, url: &str) -> Sqs {
        Sqs { sdk: sdk.clone(), client: OnceLock::new(), url: url.to_owned() }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| Client::new(&self.sdk))
    }

    async fn send_all(&self, bodies: &[String]) -> Result<(), Fault> {
        for chunk in bodies.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Fault::new(FaultKind::Permanent, "ConstructionFailure", e.to_string()))?;
            let output =
                self.client().send_message_batch().queue_url(&self.url).set_entries(Some(entries)).send().await.map_err(|e| fault(&e))?;
            if let Some(failed) = output.failed().first() {
                let kind = if failed.sender_fault() { FaultKind::Permanent } else { FaultKind::Server };
                let message = format!("{} of {} messages not sent: {}", output.failed().len(), chunk.len(), failed.message().unwrap_or_default());
                return Err(Fault::new(kind, failed.code(), message));
            }
        }
        Ok(())
    }
}

impl Queue for Sqs {
    fn send<'a>(&'a self, bodies: &'a [String]) -> Sending<'a> {
        Box::pin(self.send_all(bodies))
    }
}
