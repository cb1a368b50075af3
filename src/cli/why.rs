//! `ecr-retag why REPOSITORY:TAG [--key PEM_FILE|KMS_KEY]`: which rule, event and evidence put
//! the tag there, from the image's promotion records, each verified against the key. Exit 0 when
//! a verified record explains the tag, 1 when none does (or the registry could not be read),
//! 2 on usage errors.

use std::fmt::Write as _;

use crate::apply::why::{why, TrustedKey, Verdict, Why};
use crate::cli::flags::{named, Flags};
use crate::cli::{usage, Outcome};
use crate::domain::names::{Repository, RepositoryName, Tag};
use crate::registry::ecr::{sdk_config, Ecr, Overrides};
use crate::signer::kms::Kms;
use crate::signer::PublicKey;

pub(crate) async fn run(flags: Flags) -> Outcome {
    if let Err(outcome) = flags.only("why", &["--key", "--registry-id", "--region", "--profile", "--json"], true) {
        return outcome;
    }
    let [reference] = flags.files.as_slice() else {
        return usage("why needs one REPOSITORY:TAG, such as team/api:stable");
    };
    let Some((name, tag)) = reference.rsplit_once(':') else {
        return usage(&format!("why: {reference:?} is not REPOSITORY:TAG"));
    };
    let named = (named("why", name, RepositoryName::parse), named("why", tag, Tag::parse), flags.registry_id());
    let (name, tag, registry_id) = match named {
        (Ok(name), Ok(tag), Ok(id)) => (name, tag, id),
        (Err(outcome), ..) | (_, Err(outcome), _) | (.., Err(outcome)) => return outcome,
    };
    let Some(key) = flags.key.clone().or_else(|| std::env::var("RETAG_RECORD_KEY").ok().filter(|k| !k.is_empty())) else {
        return usage("why needs --key: the PEM file of the public key records are signed with, or the KMS key's ARN or alias (or set RETAG_RECORD_KEY)");
    };
    let sdk = sdk_config(Overrides { region: flags.region.clone(), profile: flags.profile.clone() }).await;
    let key = match public_key(&sdk, &key).await {
        Ok(k) => k,
        Err(outcome) => return outcome,
    };
    let repository = Repository { registry_id, region: None, name };
    match why(&Ecr::from_conf(&sdk), &repository, &tag, &key).await {
        Err(e) => Outcome::message(1, e.to_string()),
        Ok(found) => {
            let code = i32::from(found.explanation().is_none());
            let output = if flags.json { serde_json::to_string_pretty(&found).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")) } else { text(&found) };
            Outcome::result(code, output)
        }
    }
}

/// A file that exists is a PEM public key; anything else names a KMS key (GetPublicKey).
async fn public_key(sdk: &aws_config::SdkConfig, key: &str) -> Result<TrustedKey, Outcome> {
    if std::path::Path::new(key).is_file() {
        let text = std::fs::read_to_string(key).map_err(|e| usage(&format!("--key {key}: cannot read: {e}")))?;
        let public = PublicKey::from_pem(&text).map_err(|e| usage(&format!("--key {key}: {e}")))?;
        return Ok(TrustedKey { public, arn: None });
    }
    let (public, arn) = Kms::new(sdk, key).public_key().await.map_err(|e| Outcome::message(1, format!("--key {key}: GetPublicKey failed: {e}")))?;
    Ok(TrustedKey { public, arn })
}

/// The explanation first (or that there is none), then every other record and what is wrong with it.
fn text(found: &Why) -> String {
    let mut out = format!("{}:{} is {}\n", found.repository, found.tag, found.digest);
    match found.explanation().and_then(|c| Some((c, c.statement.as_ref()?))) {
        Some((checked, statement)) => {
            let p = &statement.predicate;
            let _ = writeln!(out, "explained by record {} (signature verified)", checked.record);
            let event = match &p.event.id {
                Some(id) => format!("{} event {id}", p.event.kind),
                None => p.event.kind.clone(),
            };
            let _ = writeln!(out, "  rule      {} (rule set {})", p.rule, p.rule_set_digest);
            let _ = writeln!(out, "  event     {event} at {}", p.event.time);
            let _ = writeln!(out, "  from      {} into {}", p.source_repository, p.target_repository);
            let tags: Vec<String> = p.tags.iter().map(|w| format!("{} {}", w.tag, w.outcome)).collect();
            let _ = writeln!(out, "  tags      {}", tags.join(", "));
            if let Some(scan) = &p.scan {
                let counts: Vec<String> = scan.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(out, "  scan      {} ({})", scan.status, if counts.is_empty() { "no findings".to_owned() } else { counts.join(", ") });
            }
            if let Some(signature) = &p.signature {
                let digest = signature.digest.as_deref().map(|d| format!(" {d}")).unwrap_or_default();
                let _ = writeln!(out, "  signature {}{digest}", signature.kinds.join(", "));
            }
            let _ = writeln!(out, "  by        {} version {}, at {}", p.recorder.id, p.recorder.version, p.recorded_at);
        }
        None => {
            let _ = writeln!(out, "no verified record explains it ({} record(s) attached)", found.records.len());
        }
    }
    for other in found.records.iter().filter(|c| c.verdict != Verdict::Explains) {
        let _ = writeln!(out, "record {}: {}", other.record, other.problem.as_deref().unwrap_or("explains nothing"));
    }
    out.trim_end().to_owned()
}
