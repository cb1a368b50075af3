//! The port that signs promotion records, and the check of a signature against a public key.
//! [`kms`] signs with an AWS KMS asymmetric key (`RETAG_RECORD_KEY`); [`Local`] with a key held in
//! memory, for tests. One key spec: ECC_NIST_P256 (ECDSA with SHA-256, signatures DER-encoded),
//! cosign's and Notation's default for KMS keys.

pub mod kms;

use std::future::Future;
use std::pin::Pin;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING};

use crate::fault::{Fault, FaultKind};

/// A signature and the key that made it, as the signer names it (KMS: the key's ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub signature: Vec<u8>,
    pub key_id: String,
}

/// A future a [`Signer`] returns (boxed: the handler holds the signer as a trait object).
pub type Signing<'a> = Pin<Box<dyn Future<Output = Result<Signed, Fault>> + Send + 'a>>;

pub trait Signer: Send + Sync {
    /// Signs `message` (ECDSA P-256 over its SHA-256).
    fn sign<'a>(&'a self, message: &'a [u8]) -> Signing<'a>;
}

/// A P-256 key in memory: what tests and the simulation sign with.
pub struct Local {
    pair: EcdsaKeyPair,
    id: String,
}

impl Local {
    /// A new random key, named `id`.
    pub fn generate(id: &str) -> Result<Local, Fault> {
        let bad = |e: &dyn std::fmt::Display| Fault::new(FaultKind::Permanent, "KeyGeneration", e.to_string());
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new()).map_err(|e| bad(&e))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).map_err(|e| bad(&e))?;
        Ok(Local { pair, id: id.to_owned() })
    }

    /// The public key, as KMS's GetPublicKey gives it (DER SubjectPublicKeyInfo).
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_point(self.pair.public_key().as_ref())
    }
}

impl Signer for Local {
    fn sign<'a>(&'a self, message: &'a [u8]) -> Signing<'a> {
        Box::pin(async move {
            let signature = self
                .pair
                .sign(&SystemRandom::new(), message)
                .map_err(|e| Fault::new(FaultKind::Permanent, "Sign", e.to_string()))?;
            Ok(Signed { signature: signature.as_ref().to_vec(), key_id: self.id.clone() })
        })
    }
}

/// A P-256 public key, DER SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(Vec<u8>);

/// The DER SubjectPublicKeyInfo of a P-256 key up to its point: id-ecPublicKey, prime256v1.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
    0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no PEM public key (-----BEGIN PUBLIC KEY-----) in it")]
    NotPem,
    #[error("its PEM body is not base64: {0}")]
    Base64(String),
    #[error("not an ECC_NIST_P256 public key (DER SubjectPublicKeyInfo of a P-256 point): the key spec records are signed with")]
    NotP256,
}

impl PublicKey {
    /// DER SubjectPublicKeyInfo, as GetPublicKey answers it.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let point = der.strip_prefix(&P256_SPKI_PREFIX[..]).ok_or(KeyError::NotP256)?;
        if point.len() != 65 || point[0] != 0x04 {
            return Err(KeyError::NotP256);
        }
        Ok(PublicKey(der.to_vec()))
    }

    /// A PEM `PUBLIC KEY` (what `aws kms get-public-key` gives once base64-wrapped, and
    /// `openssl ec -pubout` writes).
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        let body = text.split("-----BEGIN PUBLIC KEY-----").nth(1).and_then(|rest| rest.split("-----END PUBLIC KEY-----").next());
        let body: String = body.ok_or(KeyError::NotPem)?.split_whitespace().collect();
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| KeyError::Base64(e.to_string()))?;
        PublicKey::from_der(&der)
    }

    fn from_point(point: &[u8]) -> PublicKey {
        PublicKey([&P256_SPKI_PREFIX[..], point].concat())
    }

    pub fn der(&self) -> &[u8] {
        &self.0
    }

    /// Whether `signature` (DER ECDSA) signs `message` with this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let point = &self.0[P256_SPKI_PREFIX.len()..];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point).verify(message, signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_signature_verifies_with_its_public_key_and_not_another_or_on_other_bytes() {
        let key = Local::generate("k").unwrap();
        let signed = key.sign(b"DSSEv1 ...").await.unwrap();
        assert_eq!(signed.key_id, "k");
        let public = key.public_key();
        assert!(public.verifies(b"DSSEv1 ...", &signed.signature));
        assert!(!public.verifies(b"DSSEv1 ..!", &signed.signature), "other bytes");
        let other = Local::generate("other").unwrap().public_key();
        assert!(!other.verifies(b"DSSEv1 ...", &signed.signature), "another key");
        assert_eq!(PublicKey::from_der(public.der()).unwrap(), public);
    }

    #[test]
    fn a_pem_public_key_reads_and_what_is_not_one_says_why() {
        let public = Local::generate("k").unwrap().public_key();
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(public.der());
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n", &body[..64], &body[64..]);
        assert_eq!(PublicKey::from_pem(&pem).unwrap(), public);
        assert_eq!(PublicKey::from_pem("hello"), Err(KeyError::NotPem));
        assert!(matches!(PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----"), Err(KeyError::Base64(_))));
        assert_eq!(PublicKey::from_der(&public.der()[1..]), Err(KeyError::NotP256));
    }
}
