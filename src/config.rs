//! Configuration: read from the environment once, at start-up, into typed values.
//!
//! | variable | meaning |
//! |---|---|
//! | `RETAG_RULES` | the rule set as JSON text |
//! | `RETAG_RULES_FILE` | path to a JSON file with the rule set (exactly one of the two); a relative path is in the deployment package (`LAMBDA_TASK_ROOT`) |
//! | `RETAG_DRY_RUN` | `true` plans and reports but never writes (default `false`) |
//! | `RETAG_WRITE_CONCURRENCY` | PutImage calls in flight per event, 1 to 64 (default 16) |
//! | `RETAG_BATCH_CONCURRENCY` | messages of one SQS batch handled at once, 1 to 100 (default 4) |
//! | `RETAG_METRICS` | `false` stops the per-event EMF metric line (default `true`) |
//! | `RETAG_METRICS_BY_REPOSITORY` | `true` adds the `Repository` metric dimension (default `false`) |
//! | `RETAG_REPOSITORY_TAGS_TTL` | seconds a repository's resource tags are kept per instance, 0 to 3600 (default 300) |
//! | `RETAG_SCAN_EVENTS` | set by the template: `false` when scan events are not routed here |
//! | `RETAG_REMOVE_SOURCE` | set by the template: `false` when the role may not call `ecr:BatchDeleteImage` |
//! | `RETAG_RESTORE_ARCHIVED` | set by the template: `false` when the role may not call `ecr:UpdateImageStorageClass` |
//! | `RETAG_SIGNATURE_EVENTS` | set by the template: `false` when untagged signature pushes are not routed here |
//! | `RETAG_SWEEP_WRITES_PER_SECOND` | sweeps' PutImage calls per second per instance, more than 0 and at most 1000 (unset or `0`: unpaced) |
//! | `RETAG_SWEEP_QUEUE_URL` | set by the template with `Delivery=queue`: the event queue's URL, where a fan-out (`"fan_out": true`) sends its sweeps |
//! | `RETAG_MANAGED_SIGNING` | set by the template: `false` when the role may not call `ecr:DescribeImageSigningStatus` |
//! | `RETAG_RECORD_KEY` | the KMS key (ARN, id or alias; ECC_NIST_P256) that signs promotion records; required when a rule has `"record": true` |
//! | `RETAG_PROMOTION` | set by the template: `false` when the role may not mount blobs or write promotion targets (`PromotionTargets` empty) |
//!
//! The wiring variables (`RETAG_SCAN_EVENTS`, `RETAG_REMOVE_SOURCE`, `RETAG_RESTORE_ARCHIVED`,
//! `RETAG_SIGNATURE_EVENTS`, `RETAG_MANAGED_SIGNING`, `RETAG_PROMOTION`; the list `WIRING` below) let a rule set that needs wiring the stack lacks fail at
//! start-up, with the parameter to change, instead of deferring or failing
//! tags silently. Unset (outside the template), nothing is checked.

use std::path::PathBuf;
use std::time::Duration;

use crate::apply::Settings;
use crate::domain::rules::{Policy, RuleSet, RulesError};
use crate::domain::signature::Kind;

#[derive(Debug, Clone)]
pub struct Config {
    /// The rules, dry run and write concurrency: what the use cases read.
    pub apply: Settings,
    /// SQS messages of one batch handled at once.
    pub batch_concurrency: usize,
    pub metrics: Metrics,
    /// How long a repository's resource tags are kept (`repository_tags` rules).
    pub repository_tags_ttl: Duration,
    /// The event queue a fan-out sends its sweeps to (`RETAG_SWEEP_QUEUE_URL`).
    pub sweep_queue_url: Option<String>,
    /// Sweeps' PutImage calls per second from one instance (`RETAG_SWEEP_WRITES_PER_SECOND`).
    pub sweep_writes_per_second: Option<f64>,
    /// The KMS key that signs promotion records (`RETAG_RECORD_KEY`): a key ARN, id or alias.
    pub record_key: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_VERSION`, which records name (`$LATEST` outside Lambda).
    pub function_version: String,
}

/// Where the per-event metric line goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub enabled: bool,
    pub by_repository: bool,
    /// The `FunctionName` dimension (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function_name: String,
}

/// The function version outside Lambda.
const LATEST: &str = "$LATEST";

/// The `FunctionName` dimension outside Lambda.
const DEFAULT_FUNCTION_NAME: &str = "ecr-retag";

impl Default for Metrics {
    fn default() -> Self {
        Self { enabled: false, by_repository: false, function_name: DEFAULT_FUNCTION_NAME.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no rules: set RETAG_RULES to the rule set's JSON, or RETAG_RULES_FILE to the path of a JSON file")]
    NoRules,
    #[error("both RETAG_RULES and RETAG_RULES_FILE are set; set exactly one")]
    BothRules,
    #[error("cannot read the rule file RETAG_RULES_FILE={path:?}: {source}")]
    RulesFile { path: PathBuf, source: std::io::Error },
    #[error("invalid rules in {origin}: {source}")]
    Rules { origin: String, source: RulesError },
    /// What `check-rules` fails: a rule every matching push of which loop safety refuses.
    #[error("invalid rules in {origin}: {looping} (`ecr-retag check-rules` says the same before deployment)")]
    NeverWrites { origin: String, looping: crate::lint::Looping },
    #[error("{var}={value:?} is not valid: expected {expected}")]
    Value { var: &'static str, value: String, expected: &'static str },
    #[error("a rule has \"record\": true, but RETAG_RECORD_KEY is not set: name the KMS key (ECC_NIST_P256, SIGN_VERIFY) that signs promotion records, with the template parameter RecordSigningKey or RETAG_RECORD_KEY=<key ARN or alias>")]
    NoRecordKey,
    #[error("{feature}, but {var}=false: {remedy}")]
    Wiring { feature: String, var: &'static str, remedy: &'static str },
}

impl Config {
    pub const DEFAULT_WRITE_CONCURRENCY: usize = Settings::DEFAULT_WRITE_CONCURRENCY;
    /// With 16 writes per event, 4 events at once already exceed PutImage's
    /// default 10 per second in a burst; more only adds throttling.
    pub const DEFAULT_BATCH_CONCURRENCY: usize = 4;
    pub const DEFAULT_REPOSITORY_TAGS_TTL: Duration = Duration::from_secs(300);

    /// These rules with every other setting at its default (metrics off).
    pub fn with_rules(rules: RuleSet) -> Self {
        Self {
            apply: Settings::new(rules),
            batch_concurrency: Self::DEFAULT_BATCH_CONCURRENCY,
            metrics: Metrics::default(),
            repository_tags_ttl: Self::DEFAULT_REPOSITORY_TAGS_TTL,
            sweep_queue_url: None,
            sweep_writes_per_second: None,
            record_key: None,
            function_version: LATEST.to_owned(),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let (origin, text) = match (set("RETAG_RULES"), set("RETAG_RULES_FILE")) {
            (None, None) => return Err(ConfigError::NoRules),
            (Some(_), Some(_)) => return Err(ConfigError::BothRules),
            (Some(text), None) => ("RETAG_RULES".to_owned(), text),
            (None, Some(path)) => {
                let resolved = rules_path(&path, lookup("LAMBDA_TASK_ROOT"));
                let text = std::fs::read_to_string(&resolved)
                    .map_err(|source| ConfigError::RulesFile { path: resolved.clone(), source })?;
                (format!("RETAG_RULES_FILE={path:?}"), text)
            }
        };
        let rules = RuleSet::from_json(&text).map_err(|source| ConfigError::Rules { origin: origin.clone(), source })?;
        // A rule that loops only for some pushes stays a warning of check-rules: its other pushes write.
        if let Some(looping) = crate::lint::never_writes(&rules) {
            return Err(ConfigError::NeverWrites { origin, looping });
        }

        let flag = |var: &'static str, default: bool| match set(var).as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("false") | Some("0") | Some("no") => Ok(false),
            Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(_) => Err(ConfigError::Value { var, value: lookup(var).unwrap_or_default(), expected: "true or false" }),
        };
        let dry_run = flag("RETAG_DRY_RUN", false)?;
        let metrics = Metrics {
            enabled: flag("RETAG_METRICS", true)?,
            by_repository: flag("RETAG_METRICS_BY_REPOSITORY", false)?,
            function_name: set("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| DEFAULT_FUNCTION_NAME.into()),
        };
        let count = |var: &'static str, default: usize, max: usize, expected: &'static str| match set(var) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ConfigError::Value { var, value: v, expected }),
            },
        };
        let write_concurrency =
            count("RETAG_WRITE_CONCURRENCY", Self::DEFAULT_WRITE_CONCURRENCY, 64, "a whole number from 1 to 64")?;
        let batch_concurrency =
            count("RETAG_BATCH_CONCURRENCY", Self::DEFAULT_BATCH_CONCURRENCY, 100, "a whole number from 1 to 100")?;
        let repository_tags_ttl = match set("RETAG_REPOSITORY_TAGS_TTL") {
            None => Self::DEFAULT_REPOSITORY_TAGS_TTL,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n @ 0..=3600) => Duration::from_secs(n),
                _ => {
                    return Err(ConfigError::Value {
                        var: "RETAG_REPOSITORY_TAGS_TTL",
                        value: v,
                        expected: "whole seconds from 0 to 3600",
                    })
                }
            },
        };
        let sweep_queue_url = match set("RETAG_SWEEP_QUEUE_URL") {
            Some(url) if !url.starts_with("https://") && !url.starts_with("http://") => {
                return Err(ConfigError::Value { var: "RETAG_SWEEP_QUEUE_URL", value: url, expected: "an SQS queue URL (https://sqs.…)" })
            }
            url => url,
        };
        let sweep_writes_per_second = match set("RETAG_SWEEP_WRITES_PER_SECOND") {
            None => None,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(0.0) => None,
                Ok(n) if n > 0.0 && n <= 1000.0 => Some(n),
                _ => {
                    return Err(ConfigError::Value {
                        var: "RETAG_SWEEP_WRITES_PER_SECOND",
                        value: v,
                        expected: "a number of writes per second above 0 and at most 1000, or 0 for unpaced",
                    })
                }
            },
        };
        let record_key = set("RETAG_RECORD_KEY").map(|k| k.trim().to_owned());
        if rules.uses(|p| p.record) && record_key.is_none() {
            return Err(ConfigError::NoRecordKey);
        }
        let function_version = set("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_else(|| LATEST.to_owned());
        for wiring in WIRING {
            if rules.uses(wiring.needed) && !flag(wiring.var, true)? {
                return Err(ConfigError::Wiring { feature: wiring.feature.into(), var: wiring.var, remedy: wiring.remedy });
            }
        }
        let apply = Settings { rules, dry_run, write_concurrency };
        Ok(Self { apply, batch_concurrency, metrics, repository_tags_ttl, sweep_queue_url, sweep_writes_per_second, record_key, function_version })
    }
}

/// Rule features that need wiring the template adds only when asked: each stops the
/// function at start-up when its variable says the stack lacks it.
struct Wiring {
    needed: fn(&Policy) -> bool,
    var: &'static str,
    feature: &'static str,
    remedy: &'static str,
}

const WIRING: [Wiring; 6] = [
    Wiring {
        needed: |p| p.scan_gate.is_some(),
        var: "RETAG_SCAN_EVENTS",
        feature: "a rule has a scan gate (\"when\": {\"scan\": …})",
        remedy: "its tags would wait forever for scan events that never arrive; deploy with ScanEvents=basic (scan on push) or ScanEvents=enhanced (Amazon Inspector), or both",
    },
    Wiring {
        needed: |p| p.remove_source,
        var: "RETAG_REMOVE_SOURCE",
        feature: "a rule has \"remove_source\": true",
        remedy: "the function's role may not call ecr:BatchDeleteImage; deploy with RemoveSourceTags=true",
    },
    Wiring {
        needed: |p| p.restore_archived,
        var: "RETAG_RESTORE_ARCHIVED",
        feature: "a rule has \"restore_archived\": true",
        remedy: "the function's role may not call ecr:UpdateImageStorageClass; deploy with RestoreArchivedImages=true",
    },
    Wiring {
        needed: |p| p.signed.is_some(),
        var: "RETAG_SIGNATURE_EVENTS",
        feature: "a rule has a signature gate (\"when\": {\"signed\": …})",
        remedy: "the untagged pushes of Notation and Sigstore signatures, which bring its tags, never reach the function; deploy with SignatureEvents=pushed (or managed)",
    },
    Wiring {
        needed: |p| p.signed.is_some_and(|kinds| kinds.contains(Kind::Managed)),
        var: "RETAG_MANAGED_SIGNING",
        feature: "a rule accepts ECR managed signing (\"signed\": [\"managed\", …])",
        remedy: "the function's role may not call ecr:DescribeImageSigningStatus; deploy with SignatureEvents=managed",
    },
    Wiring {
        needed: |p| p.promotes,
        var: "RETAG_PROMOTION",
        feature: "a rule promotes into another repository (\"to\": …)",
        remedy: "the function's role may not mount blobs or write the target repositories; deploy with PromotionTargets set to their names or patterns, for example PromotionTargets=prod/*",
    },
];

/// Where a rule file is: a relative path is taken in the deployment package
/// (Lambda's `LAMBDA_TASK_ROOT`, where `sam build` and `cargo lambda build
/// --include` put `rules.json`), else in the working directory.
fn rules_path(path: &str, task_root: Option<String>) -> PathBuf {
    let path = PathBuf::from(path);
    match task_root.filter(|r| !r.is_empty()) {
        Some(root) if path.is_relative() => PathBuf::from(root).join(path),
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const RULES: &str = r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: BTreeMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn rules_from_text_with_defaults() {
        let c = load(&[("RETAG_RULES", RULES)]).unwrap();
        assert_eq!(c.apply.rules.len(), 1);
        assert!(!c.apply.dry_run);
        assert_eq!((c.apply.write_concurrency, c.batch_concurrency), (16, 4));
        assert_eq!(c.metrics, Metrics { enabled: true, by_repository: false, function_name: "ecr-retag".into() });
    }

    #[test]
    fn metrics_settings() {
        let c = load(&[
            ("RETAG_RULES", RULES),
            ("RETAG_METRICS_BY_REPOSITORY", "true"),
            ("AWS_LAMBDA_FUNCTION_NAME", "stack-RetagFunction-x"),
        ])
        .unwrap();
        assert_eq!(c.metrics, Metrics { enabled: true, by_repository: true, function_name: "stack-RetagFunction-x".into() });
        assert!(!load(&[("RETAG_RULES", RULES), ("RETAG_METRICS", "false")]).unwrap().metrics.enabled);
        assert!(load(&[("RETAG_RULES", RULES), ("RETAG_METRICS", "on")]).is_err());
    }

    #[test]
    fn rules_from_a_file() {
        let path = std::env::temp_dir().join(format!("ecr-retag-config-{}.json", std::process::id()));
        std::fs::write(&path, RULES).unwrap();
        let c = load(&[("RETAG_RULES_FILE", path.to_str().unwrap()), ("RETAG_DRY_RUN", "TRUE")]).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(c.apply.rules.len(), 1);
        assert!(c.apply.dry_run);
    }

    #[test]
    fn a_relative_rule_file_is_read_from_the_deployment_package() {
        let root = std::env::temp_dir().join(format!("ecr-retag-task-root-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("rules.json"), RULES).unwrap();
        let c = load(&[("RETAG_RULES_FILE", "rules.json"), ("LAMBDA_TASK_ROOT", root.to_str().unwrap())]);
        std::fs::remove_dir_all(&root).ok();
        assert_eq!(c.unwrap().apply.rules.len(), 1);
        assert_eq!(rules_path("/etc/rules.json", Some("/var/task".into())), PathBuf::from("/etc/rules.json"));
        assert_eq!(rules_path("rules.json", None), PathBuf::from("rules.json"), "outside Lambda: the working directory");
        let err = load(&[("RETAG_RULES_FILE", "missing.json"), ("LAMBDA_TASK_ROOT", "/var/task")]).unwrap_err();
        assert!(err.to_string().contains("/var/task/missing.json"), "the path looked at: {err}");
    }

    #[test]
    fn exactly_one_rule_source() {
        assert!(matches!(load(&[]), Err(ConfigError::NoRules)));
        assert!(matches!(load(&[("RETAG_RULES", "  ")]), Err(ConfigError::NoRules)));
        assert!(matches!(load(&[("RETAG_RULES", RULES), ("RETAG_RULES_FILE", "x")]), Err(ConfigError::BothRules)));
        let err = load(&[("RETAG_RULES_FILE", "/nonexistent/rules.json")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/rules.json"), "{err}");
    }

    #[test]
    fn bad_values_fail_fast_with_the_variable_named() {
        let err = load(&[("RETAG_RULES", RULES), ("RETAG_DRY_RUN", "maybe")]).unwrap_err();
        assert_eq!(err.to_string(), "RETAG_DRY_RUN=\"maybe\" is not valid: expected true or false");
        let err = load(&[("RETAG_RULES", RULES), ("RETAG_WRITE_CONCURRENCY", "0")]).unwrap_err();
        assert!(err.to_string().starts_with("RETAG_WRITE_CONCURRENCY=\"0\""));
        let err = load(&[("RETAG_RULES", r#"{"rules":[{"name":"r","semver":true,"tags":["{x}"]}]}"#)]).unwrap_err();
        assert!(err.to_string().starts_with("invalid rules in RETAG_RULES: the rule set has 1 problem"), "{err}");
        let err = load(&[("RETAG_RULES", RULES), ("RETAG_REPOSITORY_TAGS_TTL", "1h")]).unwrap_err();
        assert!(err.to_string().starts_with("RETAG_REPOSITORY_TAGS_TTL=\"1h\""), "{err}");
    }

    #[test]
    fn a_rule_set_that_can_never_write_stops_start_up_as_check_rules_fails_it() {
        let never = r#"{"rules":[{"name":"grow","match":".*","tags":["{tag}-x"]}]}"#;
        let err = load(&[("RETAG_RULES", never)]).unwrap_err();
        assert!(matches!(&err, ConfigError::NeverWrites { looping, .. } if looping.rule == "grow"), "{err:?}");
        assert!(err.to_string().starts_with("invalid rules in RETAG_RULES: rule \"grow\" can never write a tag"), "{err}");
        let sometimes = r#"{"rules":[{"name":"r","match":"release|v[0-9]+(-latest)*","tags":["stable","{0}-latest"]}]}"#;
        assert!(load(&[("RETAG_RULES", sometimes)]).is_ok(), "a rule that loops for some pushes only is a warning");
    }

    #[test]
    fn the_repository_tags_ttl_defaults_to_five_minutes() {
        assert_eq!(load(&[("RETAG_RULES", RULES)]).unwrap().repository_tags_ttl, Duration::from_secs(300));
        let c = load(&[("RETAG_RULES", RULES), ("RETAG_REPOSITORY_TAGS_TTL", "0")]).unwrap();
        assert_eq!(c.repository_tags_ttl, Duration::ZERO);
    }

    #[test]
    fn rules_needing_wiring_the_stack_lacks_fail_at_start_up() {
        let gated = r#"{"rules":[{"name":"g","semver":true,"when":{"scan":"HIGH"},"tags":["stable"]}]}"#;
        let err = load(&[("RETAG_RULES", gated), ("RETAG_SCAN_EVENTS", "false")]).unwrap_err();
        assert!(err.to_string().contains("RETAG_SCAN_EVENTS=false") && err.to_string().contains("ScanEvents=basic"), "{err}");
        assert!(load(&[("RETAG_RULES", gated), ("RETAG_SCAN_EVENTS", "true")]).is_ok());
        assert!(load(&[("RETAG_RULES", gated)]).is_ok(), "unset: outside the template nothing is known");

        let removing = r#"{"rules":[{"name":"x","match":"latest","remove_source":true,"tags":["edge"]}]}"#;
        let err = load(&[("RETAG_RULES", removing), ("RETAG_REMOVE_SOURCE", "false")]).unwrap_err();
        assert!(err.to_string().contains("ecr:BatchDeleteImage") && err.to_string().contains("RemoveSourceTags=true"), "{err}");

        let promoting = r#"{"rules":[{"name":"x","semver":true,"to":"prod/{repository}","tags":["stable"]}]}"#;
        let err = load(&[("RETAG_RULES", promoting), ("RETAG_PROMOTION", "false")]).unwrap_err().to_string();
        assert!(err.contains("PromotionTargets=prod/*"), "{err}");
        assert!(load(&[("RETAG_RULES", promoting), ("RETAG_PROMOTION", "true")]).is_ok());
        let restoring = r#"{"rules":[{"name":"x","semver":true,"restore_archived":true,"tags":["stable"]}]}"#;
        let err = load(&[("RETAG_RULES", restoring), ("RETAG_RESTORE_ARCHIVED", "false")]).unwrap_err();
        assert!(err.to_string().contains("ecr:UpdateImageStorageClass") && err.to_string().contains("RestoreArchivedImages=true"), "{err}");
        assert!(load(&[("RETAG_RULES", restoring), ("RETAG_RESTORE_ARCHIVED", "true")]).is_ok());
        assert!(load(&[("RETAG_RULES", RULES), ("RETAG_REMOVE_SOURCE", "false"), ("RETAG_SCAN_EVENTS", "false")]).is_ok());

        let signed = r#"{"rules":[{"name":"s","semver":true,"when":{"signed":true},"tags":["stable"]}]}"#;
        let err = load(&[("RETAG_RULES", signed), ("RETAG_SIGNATURE_EVENTS", "false")]).unwrap_err();
        assert!(err.to_string().contains("SignatureEvents=pushed"), "{err}");
        let on = [("RETAG_SIGNATURE_EVENTS", "true"), ("RETAG_MANAGED_SIGNING", "false")];
        assert!(load(&[[("RETAG_RULES", signed)].as_slice(), &on].concat()).is_ok(), "managed signing not asked for");
        let managed = r#"{"rules":[{"name":"m","semver":true,"when":{"signed":["managed"]},"tags":["stable"]}]}"#;
        let err = load(&[[("RETAG_RULES", managed)].as_slice(), &on].concat()).unwrap_err();
        assert!(err.to_string().contains("ecr:DescribeImageSigningStatus") && err.to_string().contains("SignatureEvents=managed"), "{err}");
    }
}
