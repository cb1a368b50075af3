//! [`Signer`] over aws-sdk-kms: Sign with `MessageType` DIGEST (the SHA-256 of the message, so
//! a record of any size is one call) and ECDSA_SHA_256; and GetPublicKey, for `ecr-retag why`.

use std::sync::OnceLock;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;

use crate::fault::{Fault, FaultKind};
use crate::registry::ecr::fault;
use crate::signer::{PublicKey, Signed, Signer, Signing};

/// The client is built on the first signature: only an event that writes a recorded rule's
/// tags signs, and INIT stays as short as without records.
#[derive(Debug)]
pub struct Kms {
    sdk: aws_config::SdkConfig,
    client: OnceLock<Client>,
    /// The key's ARN, id, alias name or alias ARN (`RETAG_RECORD_KEY`).
    key: String,
}

impl Kms {
    pub fn new(sdk: &aws_config::SdkConfig, key: &str) -> Kms {
        Kms { sdk: sdk.clone(), client: OnceLock::new(), key: key.to_owned() }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| Client::new(&self.sdk))
    }

    async fn sign_digest(&self, message: &[u8]) -> Result<Signed, Fault> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        let output = self
            .client()
            .sign()
            .key_id(&self.key)
            .message(Blob::new(digest.as_ref()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| fault(&e))?;
        let signature = output
            .signature()
            .map(|s| s.as_ref().to_vec())
            .ok_or_else(|| Fault::new(FaultKind::Server, "NoSignature", format!("KMS Sign with {} answered no signature", self.key)))?;
        Ok(Signed { signature, key_id: output.key_id().unwrap_or(&self.key).to_owned() })
    }

    /// The key's public key and ARN (GetPublicKey), refused unless it is an ECC_NIST_P256 key.
    pub async fn public_key(&self) -> Result<(PublicKey, Option<String>), Fault> {
        let output = self.client().get_public_key().key_id(&self.key).send().await.map_err(|e| fault(&e))?;
        let der = output.public_key().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        let public = PublicKey::from_der(&der).map_err(|e| Fault::new(FaultKind::Permanent, "KeySpec", format!("KMS key {}: {e}", self.key)))?;
        Ok((public, output.key_id().map(str::to_owned)))
    }
}

impl Signer for Kms {
    fn sign<'a>(&'a self, message: &'a [u8]) -> Signing<'a> {
        Box::pin(self.sign_digest(message))
    }
}
