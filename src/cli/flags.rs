//! The command line's one parser: every command's flags read the same way, then each command
//! checks that it was given only the flags it takes ([`Flags::only`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::cli::{usage, Outcome};
use crate::config::Config;
use crate::domain::mutability::Filter;
use crate::domain::names::{Digest, RegistryId, Repository, RepositoryName, Tag};
use crate::domain::request::{BadContinuation, Push, ReconcileRequest, Request, MAX_WRITES_LIMIT};
use crate::domain::rules::glob::Glob;
use crate::domain::rules::{RuleSet, RulesError};
use crate::lambda::Handler;
use crate::registry::ecr::{sdk_config, Ecr, Overrides};
use crate::signer::kms::Kms;

/// The command line, flag by flag.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    /// The flags given, as spelt, for [`Flags::only`].
    given: Vec<String>,
    /// Arguments that are no flag (`check-rules FILE`).
    pub(crate) files: Vec<String>,
    /// `--help` or `-h`: the command's usage, whatever else is given.
    pub(crate) help: bool,
    pub(crate) rules: Option<String>,
    pub(crate) repository: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) digest: Option<String>,
    pub(crate) registry_id: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) profile: Option<String>,
    pub(crate) repositories: Vec<String>,
    pub(crate) max_writes: Option<usize>,
    pub(crate) writes_per_second: Option<f64>,
    pub(crate) continuation: Option<String>,
    pub(crate) dry_run: bool,
    pub(crate) json: bool,
    pub(crate) time: Option<String>,
    pub(crate) repository_tags: BTreeMap<String, String>,
    pub(crate) mutability: Option<String>,
    pub(crate) exclusions: Vec<Filter>,
    /// `why --key`: a PEM public key file, or a KMS key's ARN, id or alias; `apply`/`sweep --key`:
    /// the KMS key that signs records.
    pub(crate) key: Option<String>,
}

impl Flags {
    pub(crate) fn parse(args: &[String]) -> Result<Flags, String> {
        let mut flags = Flags::default();
        let mut args = args.iter().peekable();
        while let Some(flag) = args.next() {
            if !flag.starts_with('-') {
                flags.files.push(flag.clone());
                continue;
            }
            flags.given.push(flag.clone());
            let mut value = || args.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "-h" | "--help" => flags.help = true,
                "--rules" => flags.rules = Some(value()?),
                "--repository" => flags.repository = Some(value()?),
                "--tag" => flags.tag = Some(value()?),
                "--digest" => flags.digest = Some(value()?),
                "--registry-id" => flags.registry_id = Some(value()?),
                "--region" => flags.region = Some(value()?),
                "--profile" => flags.profile = Some(value()?),
                "--continuation" => flags.continuation = Some(value()?),
                "--time" => flags.time = Some(value()?),
                "--mutability" => flags.mutability = Some(value()?),
                "--key" => flags.key = Some(value()?),
                "--max-writes" => {
                    let text = value()?;
                    let n = text.parse().map_err(|_| format!("--max-writes takes a number, got {text:?}"))?;
                    flags.max_writes = Some(n);
                }
                "--writes-per-second" => {
                    let text = value()?;
                    let n = text.parse().ok().filter(|n: &f64| *n > 0.0 && *n <= 1000.0);
                    flags.writes_per_second = Some(n.ok_or_else(|| format!("--writes-per-second takes a number above 0 and at most 1000, got {text:?}"))?);
                }
                "--repository-tag" => {
                    let text = value()?;
                    let (k, v) = text.split_once('=').ok_or_else(|| format!("--repository-tag takes KEY=VALUE, got {text:?}"))?;
                    flags.repository_tags.insert(k.to_owned(), v.to_owned());
                }
                "--exclusion" => {
                    let text = value()?;
                    flags.exclusions.push(Filter::parse(&text).map_err(|e| format!("--exclusion: {e}"))?);
                }
                "--repositories" => {
                    while let Some(glob) = args.next_if(|a| !a.starts_with('-')) {
                        flags.repositories.push(glob.clone());
                    }
                    if flags.repositories.is_empty() {
                        return Err("--repositories needs at least one name or glob".into());
                    }
                }
                "--dry-run" => flags.dry_run = true,
                "--json" => flags.json = true,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(flags)
    }

    /// `Ok` when every flag given is one `command` takes (and no FILE, unless it takes one).
    pub(crate) fn only(&self, command: &str, takes: &[&str], files: bool) -> Result<(), Outcome> {
        if let Some(other) = self.given.iter().find(|f| !takes.contains(&f.as_str()) && !matches!(f.as_str(), "-h" | "--help")) {
            let takes = if takes.is_empty() { "no option".to_owned() } else { takes.join(", ") };
            return Err(usage(&format!("{command} takes {takes}; not {other}")));
        }
        if !files && !self.files.is_empty() {
            return Err(usage(&format!("{command} takes no argument {:?}", self.files[0])));
        }
        Ok(())
    }

    /// The rule file `--rules` names, loaded: an unreadable or invalid one is a usage mistake
    /// here (exit 2), found before any AWS configuration is read.
    pub(crate) fn rule_set(&self) -> Result<(String, RuleSet), Outcome> {
        let file = self.rules.as_deref().ok_or_else(|| usage("--rules FILE is required"))?;
        load(file).map(|rules| (file.to_owned(), rules)).map_err(|o| Outcome { code: 2, ..o })
    }

    /// The rule file, then the client (credentials and region from the SDK's standard chain).
    pub(crate) async fn rules_and_client(&self) -> Result<(RuleSet, Ecr), Outcome> {
        let (_, rules) = self.rule_set()?;
        let ecr = Ecr::from_env_with(Overrides { region: self.region.clone(), profile: self.profile.clone() }).await;
        Ok((rules, ecr))
    }

    /// The function's own handler over that client, paced as `--writes-per-second` says, signing
    /// promotion records with the KMS key `--key` names. Rules that record need it unless
    /// `--dry-run` (which writes nothing), as the function needs its key.
    pub(crate) async fn handler(&self) -> Result<Handler<Ecr>, Outcome> {
        let (_, rules) = self.rule_set()?;
        if rules.uses(|p| p.record) && self.key.is_none() && !self.dry_run {
            return Err(usage("a rule has \"record\": true: give --key with the KMS key (ARN or alias) that signs its records, or --dry-run"));
        }
        let sdk = sdk_config(Overrides { region: self.region.clone(), profile: self.profile.clone() }).await;
        let config = Config { sweep_writes_per_second: self.writes_per_second, ..Config::with_rules(rules) };
        let handler = Handler::new(Ecr::from_conf(&sdk), config);
        Ok(match &self.key {
            Some(key) => handler.with_signer(std::sync::Arc::new(Kms::new(&sdk, key))),
            None => handler,
        })
    }

    /// A sweep request's JSON for these repositories.
    /// The direct request `apply` sends, as a typed value: names checked as the function checks
    /// them, a bad one a usage mistake.
    pub(crate) fn push(&self, now: DateTime<Utc>) -> Result<Request, Outcome> {
        let (Some(repository), Some(tag)) = (&self.repository, &self.tag) else {
            return Err(usage("apply needs --repository NAME and --tag TAG"));
        };
        let name = named("--repository", repository, RepositoryName::parse)?;
        let tag = named("--tag", tag, Tag::parse)?;
        let digest = self.digest.as_deref().map(|d| named("--digest", d, Digest::parse)).transpose()?;
        let registry_id = self.registry_id()?;
        Ok(Request::Retag(Push::direct(Repository { registry_id, region: None, name }, tag, digest, now, self.dry_run)))
    }

    /// The sweep the command line asks for, as a typed value (`max_writes`: per request; the
    /// command line counts its own budget across them).
    pub(crate) fn reconcile_request(&self) -> Result<ReconcileRequest, Outcome> {
        let repositories =
            self.repositories.iter().map(|g| Glob::parse(g).map_err(|e| usage(&format!("--repositories: the glob {e}")))).collect::<Result<Vec<_>, _>>()?;
        let mut request = ReconcileRequest {
            repositories,
            max_writes: MAX_WRITES_LIMIT,
            resume_at: None,
            registry_id: self.registry_id()?,
            dry_run: self.dry_run,
            fan_out: false,
        };
        if let Some(token) = &self.continuation {
            request.resume_from(token).map_err(|why| match why {
                BadContinuation::NotAToken => usage(&format!("--continuation {token:?}: {why}; pass the one the sweep printed")),
                BadContinuation::OtherRepositories => usage(&format!("--continuation {token:?}: {why}")),
            })?;
        }
        Ok(request)
    }

    pub(crate) fn registry_id(&self) -> Result<Option<RegistryId>, Outcome> {
        self.registry_id.as_deref().map(|id| named("--registry-id", id, RegistryId::parse)).transpose()
    }
}

/// A flag's value as a validated name, or the usage mistake that names the flag.
pub(crate) fn named<T, E: std::fmt::Display>(flag: &str, value: &str, parse: impl Fn(&str) -> Result<T, E>) -> Result<T, Outcome> {
    parse(value).map_err(|e| usage(&format!("{flag}: {e}")))
}

/// A rule file, read and validated; its problems (exit 1) name the file, the rule and the field.
pub(crate) fn load(file: &str) -> Result<RuleSet, Outcome> {
    let text = std::fs::read_to_string(file).map_err(|e| Outcome::message(1, format!("{file}: cannot read: {e}")))?;
    RuleSet::from_json(&text).map_err(|e| {
        let output = match e {
            RulesError::Invalid(problems) => {
                let mut out = format!("{file}: {} problem{}", problems.len(), if problems.len() == 1 { "" } else { "s" });
                for p in problems {
                    out.push_str(&format!("\n{file}: {p}"));
                }
                out
            }
            json => format!("{file}: {json}"),
        };
        Outcome::message(1, output)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, String> {
        Flags::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn one_parser_reads_every_commands_flags_and_each_command_takes_its_own() {
        let flags = parse(&["--rules", "r.json", "--repositories", "a", "team/**", "--json", "--repository-tag", "k=v"]).unwrap();
        assert_eq!((flags.rules.as_deref(), flags.repositories.as_slice(), flags.json), (Some("r.json"), &["a".to_owned(), "team/**".to_owned()][..], true));
        assert_eq!(flags.repository_tags.get("k").map(String::as_str), Some("v"));
        assert!(flags.only("sweep", &["--rules", "--repositories", "--json", "--repository-tag"], false).is_ok());
        let refused = flags.only("doctor", &["--rules", "--repositories", "--json"], false).unwrap_err();
        assert_eq!(refused.code, 2);
        assert!(refused.output.starts_with("doctor takes --rules, --repositories, --json; not --repository-tag"), "{}", refused.output);
        assert!(parse(&["--help", "anything"]).unwrap().help);
        assert_eq!(parse(&["--color", "x"]).unwrap_err(), "unknown option \"--color\"");
        assert_eq!(parse(&["--rules"]).unwrap_err(), "--rules needs a value");
        assert!(parse(&["--exclusion", ""]).unwrap_err().starts_with("--exclusion: "));
    }
}
