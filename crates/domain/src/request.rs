//! What an invocation asks for, once `ecr_retag::input` has read it: a push to
//! retag, a scan result to promote, an event to ignore, or a sweep.

use chrono::{DateTime, Utc};

use crate::names::{Digest, RegistryId, Repository, RepositoryName, Tag};
use crate::rules::glob::Glob;
use crate::scan::Findings;
use crate::signature::{cosign_subject, Kind, Kinds};

/// What one event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A tagged image was pushed (or a person asks to treat it as pushed).
    Retag(Push),
    /// A basic scan of a tagged image completed: scan-gated rules may promote it.
    Scanned(ScanResult),
    /// A signature may have been pushed: signature-gated rules may promote the image it signs.
    Signed(SignaturePush),
    /// A well-formed event that this function has nothing to do for.
    Ignore(Ignored),
}

impl Request {
    /// When the image was pushed or scanned (for the event-to-done latency).
    pub fn time(&self) -> Option<DateTime<Utc>> {
        match self {
            Request::Retag(push) => Some(push.pushed_at),
            Request::Scanned(scan) => Some(scan.scanned_at),
            Request::Signed(signature) => Some(signature.pushed_at),
            Request::Ignore(_) => None,
        }
    }

    /// The repository the request writes to (a batch handles one repository's requests in order).
    pub fn repository(&self) -> Option<&Repository> {
        match self {
            Request::Retag(push) => Some(&push.repository),
            Request::Scanned(scan) => Some(&scan.repository),
            Request::Signed(signature) => Some(&signature.repository),
            Request::Ignore(_) => None,
        }
    }
}

/// A pushed image to derive tags for.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub repository: Repository,
    pub tag: Tag,
    /// `None` only for a direct request without a digest: the tag's current digest is used.
    pub digest: Option<Digest>,
    pub pushed_at: DateTime<Utc>,
    /// `manifest-media-type` from the event, used if ECR's answer lacks one.
    pub media_type: Option<String>,
    /// `artifact-media-type` from the event (the config's or artifact's type), where it says.
    pub artifact_media_type: Option<String>,
    pub dry_run: bool,
}

impl Push {
    /// A push asked for by hand (a direct request, the command line's `apply`): no event, so no
    /// media types from one, and `now` as its push time. Without a digest, the tag's current one.
    pub fn direct(repository: Repository, tag: Tag, digest: Option<Digest>, now: DateTime<Utc>, dry_run: bool) -> Push {
        Push { repository, tag, digest, pushed_at: now, media_type: None, artifact_media_type: None, dry_run }
    }

    /// A cosign signature tag (`sha256-<hex>.sig`) pushed where a signature-gated rule accepts
    /// cosign (`accepted`) is a signature's push, which brings the signed image's tags; any other
    /// push, this one included elsewhere, is a push like any other.
    pub fn as_cosign_signature(&self, accepted: Kinds) -> Option<SignaturePush> {
        let subject = cosign_subject(&self.tag)?;
        accepted.contains(Kind::Cosign).then(|| SignaturePush {
            repository: self.repository.clone(),
            digest: self.digest.clone(),
            subject: Some(subject),
            kind: Some(Kind::Cosign),
            pushed_at: self.pushed_at,
            dry_run: self.dry_run,
        })
    }
}

/// A completed basic scan (`"detail-type": "ECR Image Scan"`) of a tagged image.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanResult {
    pub repository: Repository,
    pub digest: Digest,
    /// The image's tags when it was scanned; each is treated as just pushed.
    pub tags: Sources,
    pub scanned_at: DateTime<Utc>,
    pub findings: Findings,
}

/// The push of what may be a signature: an untagged manifest whose event names a
/// signature's artifact type (Notation, a Sigstore bundle) or an OCI artifact's empty
/// config, or cosign's `sha256-<hex>.sig` tag.
#[derive(Debug, Clone, PartialEq)]
pub struct SignaturePush {
    pub repository: Repository,
    /// The pushed manifest's digest (`None`: a direct request for a cosign tag without one).
    pub digest: Option<Digest>,
    /// The signed image, when known without a read (cosign's tag names it).
    pub subject: Option<Digest>,
    /// The kind, when the event tells it.
    pub kind: Option<Kind>,
    pub pushed_at: DateTime<Utc>,
    pub dry_run: bool,
}

/// The tags rules are applied to: at least one, by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(Vec<Tag>);

impl Sources {
    /// `None` for no tag: a scan of an untagged image has nothing to apply rules to.
    pub fn new(tags: Vec<Tag>) -> Option<Sources> {
        (!tags.is_empty()).then_some(Sources(tags))
    }

    pub fn one(tag: Tag) -> Sources {
        Sources(vec![tag])
    }

    pub fn first(&self) -> &Tag {
        &self.0[0]
    }

    pub fn as_slice(&self) -> &[Tag] {
        &self.0
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Tag> {
        self.0.iter()
    }
}

/// Why an event needs no action, with what it was about where known.
#[derive(Debug, Clone, PartialEq)]
pub struct Ignored {
    pub reason: String,
    pub repository: Option<String>,
    pub digest: Option<String>,
    pub tag: Option<String>,
}

/// The writes a sweep makes when the request does not say.
pub const DEFAULT_MAX_WRITES: usize = 200;
/// Above this, one invocation would spend minutes of PutImage quota (10 per second by default).
pub const MAX_WRITES_LIMIT: usize = 10_000;
const TOKEN_PREFIX: &str = "resume-at:";

/// A sweep: `{"reconcile": {"repositories": ["app", "team/*"], "max_writes": 200}}`.
#[derive(Debug, Clone)]
pub struct ReconcileRequest {
    pub repositories: Vec<Glob>,
    pub max_writes: usize,
    /// From a previous answer's `continuation`: the repository to resume at.
    pub resume_at: Option<RepositoryName>,
    pub registry_id: Option<RegistryId>,
    pub dry_run: bool,
    /// `"fan_out": true`: instead of sweeping, send one sweep message per repository to the
    /// event queue, for the queue-driven function to sweep each within its own deadline.
    pub fan_out: bool,
}

impl ReconcileRequest {
    /// Whether every pattern names one repository (no listing needed).
    pub fn literal_names(&self) -> Option<Vec<RepositoryName>> {
        self.repositories.iter().map(|g| RepositoryName::parse(g.source()).ok()).collect()
    }

    pub fn covers(&self, repository: &str) -> bool {
        self.repositories.iter().any(|g| g.matches(repository))
    }

    /// The sweep of one of this sweep's repositories, as a fanned-out message asks for it.
    pub fn of_one(&self, name: &RepositoryName) -> ReconcileRequest {
        ReconcileRequest {
            repositories: Glob::parse(name.as_str()).map(|g| vec![g]).unwrap_or_else(|_| self.repositories.clone()),
            resume_at: None,
            fan_out: false,
            ..self.clone()
        }
    }

    /// Resumes this sweep where a previous answer's `continuation` says: a repository it covers.
    pub fn resume_from(&mut self, token: &str) -> Result<(), BadContinuation> {
        let name = resume_point(token).ok_or(BadContinuation::NotAToken)?;
        if !self.covers(name.as_str()) {
            return Err(BadContinuation::OtherRepositories);
        }
        self.resume_at = Some(name);
        Ok(())
    }

    /// The repository in the registry the sweep walks.
    pub fn repository(&self, name: RepositoryName) -> Repository {
        Repository { registry_id: self.registry_id.clone(), region: None, name }
    }
}

/// Why a `continuation` cannot resume a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadContinuation {
    #[error("not a continuation token")]
    NotAToken,
    #[error("the token belongs to a sweep of other repositories")]
    OtherRepositories,
}

/// The token an answer carries when a sweep stopped before `repository`'s end.
pub fn continuation_token(repository: &RepositoryName) -> String {
    format!("{TOKEN_PREFIX}{repository}")
}

/// The repository a [`continuation_token`] resumes at; `None` if `token` is none.
pub fn resume_point(token: &str) -> Option<RepositoryName> {
    token.strip_prefix(TOKEN_PREFIX).and_then(|name| RepositoryName::parse(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cosign_tag_is_a_signatures_push_only_where_a_rule_accepts_cosign() {
        let signed = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let push = |tag: &str| Push {
            repository: Repository::own(RepositoryName::parse("app").unwrap()),
            tag: Tag::parse(tag).unwrap(),
            digest: Some(Digest::parse(&format!("sha256:{}", "cd".repeat(32))).unwrap()),
            pushed_at: DateTime::UNIX_EPOCH,
            media_type: None,
            artifact_media_type: None,
            dry_run: true,
        };
        let cosign = push(&format!("sha256-{}.sig", "ab".repeat(32)));
        let signature = cosign.as_cosign_signature(Kinds::of([Kind::Cosign, Kind::Notation])).unwrap();
        assert_eq!((signature.subject, signature.kind, signature.digest, signature.dry_run),
                   (Some(signed), Some(Kind::Cosign), cosign.digest.clone(), true));
        assert_eq!(cosign.as_cosign_signature(Kinds::of([Kind::Notation])), None, "no rule here accepts cosign");
        assert_eq!(push("v1.4.2").as_cosign_signature(Kinds::of([Kind::Cosign])), None, "a release tag is a push");
    }

    fn sweep(globs: &[&str]) -> ReconcileRequest {
        ReconcileRequest {
            repositories: globs.iter().map(|g| Glob::parse(g).unwrap()).collect(),
            max_writes: 7,
            resume_at: None,
            registry_id: None,
            dry_run: true,
            fan_out: true,
        }
    }

    #[test]
    fn a_sweep_knows_its_repositories_resumes_only_within_them_and_fans_out_to_one_each() {
        let names = |r: &ReconcileRequest| r.literal_names().map(|n| n.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(names(&sweep(&["app", "team/web"])), Some(vec!["app".to_owned(), "team/web".to_owned()]), "no listing needed");
        assert_eq!(names(&sweep(&["app", "team/*"])), None, "a pattern needs the listing");
        let team = sweep(&["team/*"]);
        assert!(team.covers("team/web") && !team.covers("app") && !team.covers("team/web/api"));

        let mut resumed = team.clone();
        let web = RepositoryName::parse("team/web").unwrap();
        assert_eq!(resumed.resume_from(&continuation_token(&web)), Ok(()));
        assert_eq!(resumed.resume_at, Some(web.clone()));
        let mut other = team.clone();
        assert_eq!(other.resume_from(&continuation_token(&RepositoryName::parse("app").unwrap())), Err(BadContinuation::OtherRepositories));
        assert_eq!(other.resume_from("app"), Err(BadContinuation::NotAToken));
        assert_eq!(other.resume_at, None, "a refused token changes nothing");

        // A fanned-out message sweeps one repository, from its start, and fans out no further.
        let one = resumed.of_one(&web);
        assert_eq!(one.repositories.iter().map(|g| g.source()).collect::<Vec<_>>(), ["team/web"]);
        assert_eq!((one.resume_at, one.fan_out, one.max_writes, one.dry_run), (None, false, 7, true));
    }

    #[test]
    fn a_request_says_its_time_and_repository_and_an_ignored_one_neither() {
        let app = Repository::own(RepositoryName::parse("app").unwrap());
        let at: DateTime<Utc> = "2026-11-24T10:15:02Z".parse().unwrap();
        let push = Push {
            repository: app.clone(),
            tag: Tag::parse("v1").unwrap(),
            digest: None,
            pushed_at: at,
            media_type: None,
            artifact_media_type: None,
            dry_run: false,
        };
        let retag = Request::Retag(push);
        assert_eq!((retag.time(), retag.repository()), (Some(at), Some(&app)));
        let ignored = Request::Ignore(Ignored { reason: "r".into(), repository: Some("app".into()), digest: None, tag: None });
        assert_eq!((ignored.time(), ignored.repository()), (None, None));
        let sources = Sources::new(vec![Tag::parse("a").unwrap(), Tag::parse("b").unwrap()]).unwrap();
        assert_eq!(sources.as_slice().iter().map(Tag::as_str).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(Sources::new(Vec::new()), None);
    }

    #[test]
    fn a_continuation_token_names_the_repository_to_resume_at() {
        let name = RepositoryName::parse("team/web").unwrap();
        assert_eq!(resume_point(&continuation_token(&name)), Some(name));
        assert_eq!(resume_point("team/web"), None);
        assert_eq!(resume_point("resume-at:Team"), None);
    }

    #[test]
    fn sources_are_never_empty() {
        assert_eq!(Sources::new(Vec::new()), None);
        let tag = Tag::parse("v1").unwrap();
        assert_eq!(Sources::new(vec![tag.clone()]).unwrap().first(), &tag);
    }
}
