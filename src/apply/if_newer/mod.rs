//! `"move": "if-newer"` under concurrency: a moving tag ends on the highest
//! version among the pushes handled, whatever the order, duplication and
//! concurrency of their events, and however late a retried write lands.
//!
//! ECR has no conditional PutImage, so the guarantee rests on two rules:
//!
//! 1. **Fresh decisions.** A write is decided from a read that started at most
//!    [`FRESH`] before its one attempt is sent ([`Attempts::Once`](crate::registry::Attempts), given up
//!    after [`ONE_ATTEMPT_TIMEOUT`]); trying again means reading again. So every
//!    write lands within [`SETTLE`] of the read that allowed it, provided ECR
//!    carries out a request at most [`LANDING_SLACK`] after its caller stopped
//!    waiting.
//! 2. **A second look.** Whoever leaves such a tag on its image (written, or
//!    found already there) reads it again [`SETTLE`] after ([`settle`]). Any
//!    write decided from a read before ours landed has landed by then; a lower
//!    version found there is put back (`repaired`), and a higher one means ours
//!    was rightly overtaken (`superseded`).
//!
//! The highest version's own handler therefore always has the last word: a
//! lower write landing after its second look would have had to read after its
//! write, and then seen the higher version and stayed away.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use semver::Version;

use crate::domain::names::{Digest, Tag};
use crate::apply::put::{self, read_fault, Answer, Target};
use crate::error::{Fault, FaultKind, RetagError};
use crate::registry::{Attempts, Image, Lookup, PutError, ReadError, Registry, Repository, TagState, ONE_ATTEMPT_TIMEOUT};
use crate::report::{entry, Outcome, TagReport};
use crate::domain::rules::RuleSet;

mod second_look;
pub use second_look::{settle, Revision};

/// The longest a read may be old (from its start) when a write decided from it is sent.
pub const FRESH: Duration = Duration::from_millis(500);
/// How long after its caller gave up ECR is assumed to still carry out a PutImage.
pub const LANDING_SLACK: Duration = Duration::from_secs(1);
/// From a write (or a read that found the tag in place) to the second look:
/// every write decided before it has landed by then.
pub const SETTLE: Duration =
    Duration::from_millis((FRESH.as_millis() + ONE_ATTEMPT_TIMEOUT.as_millis() + LANDING_SLACK.as_millis()) as u64);

/// Attempts per tag (each after a fresh read), as many as the SDK makes for other calls.
const ATTEMPTS: u32 = 3;
/// Reads per call of [`Guard::write`], those re-done because a decision went stale included.
const ROUNDS: u32 = 6;

/// A tag to move only to a higher version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub tag: Tag,
    /// The pushed image's version, as the tag's rules read it.
    pub version: Version,
    pub rules: Vec<String>,
}

/// Where tags pointed, and when the read that said so started.
#[derive(Debug, Clone)]
pub struct Observed {
    pub at: Instant,
    pub tags: BTreeMap<Tag, TagState>,
}

/// An if-newer tag this invocation left on its image, to look at again after [`SETTLE`].
#[derive(Debug, Clone)]
pub struct Claim {
    pub repository: Repository,
    pub image: Image,
    pub media_type: String,
    pub want: Want,
    /// When the write that put it there was answered, or the read that found it there ended.
    pub touched: Instant,
    /// The lower version's image this invocation took the tag back from, if it did.
    pub(super) undid: Option<(Digest, Option<Version>)>,
    /// A promotion's source, where a holder's version is also read ([`holder_tags`]).
    pub origin: Option<Repository>,
}

/// Guarded writes of one image's if-newer tags.
pub struct Guard<'a, R> {
    pub registry: &'a R,
    pub rules: &'a RuleSet,
    pub target: Target<'a>,
    pub concurrency: usize,
    /// Decide and report, write nothing.
    pub dry_run: bool,
    /// A promotion's source: the target's images carry only the tags promoted there (`stable`,
    /// `v1`), so a holder's version is read from its tags in the source too ([`holder_tags`]).
    pub origin: Option<&'a Repository>,
}

/// A tag still to decide.
struct Pending {
    want: Want,
    /// Attempts sent so far (an unanswered one may still land).
    attempts: u32,
    /// Where the tag pointed when last read.
    previous: Option<Digest>,
}

impl<R: Registry> Guard<'_, R> {
    /// Puts each tag on the image unless a holder has an equal or higher version,
    /// deciding from `observed` while it is fresh and from new reads after. Records
    /// each tag's outcome, and returns the claims of the tags now on the image.
    pub async fn write(
        &self,
        wants: Vec<Want>,
        mut observed: Option<Observed>,
        tags: &mut BTreeMap<String, TagReport>,
    ) -> Result<Vec<Claim>, RetagError> {
        let digest = self.target.digest();
        let mut pending: Vec<Pending> = wants.into_iter().map(|want| Pending { want, attempts: 0, previous: None }).collect();
        let mut holders: BTreeMap<Digest, Result<Vec<Tag>, Fault>> = BTreeMap::new();
        let mut claims = Vec::new();
        let mut immutable = Vec::new();
        for round in 0..ROUNDS {
            if pending.is_empty() {
                break;
            }
            let view = match observed.take().filter(|o| o.at.elapsed() < FRESH) {
                Some(view) => view,
                None => {
                    let asked: Vec<Tag> = pending.iter().map(|p| p.want.tag.clone()).collect();
                    let at = Instant::now();
                    match self.registry.read(self.target.repository, Lookup::Digest(digest), &asked).await {
                        Ok(snapshot) => Observed { at, tags: snapshot.tags },
                        Err(ReadError::RepositoryNotFound) => return Err(RetagError::repository_not_found(self.target.repository)),
                        Err(ReadError::Fault(fault)) => {
                            for p in pending.drain(..) {
                                entry(tags, &p.want.tag).fail(&fault);
                            }
                            break;
                        }
                    }
                }
            };
            self.look_up_holders(&pending, &view, &mut holders).await;

            let mut send = Vec::new();
            for mut p in pending.drain(..) {
                let entry = entry(tags, &p.want.tag);
                match view.tags.get(&p.want.tag) {
                    Some(TagState::At(d)) if d == digest => {
                        match (p.attempts, &p.previous) {
                            // An attempt that went unanswered landed after all.
                            (1.., Some(was)) => entry.mark(Outcome::Moved, Some(format!("was {was}"))),
                            (1.., None) => entry.mark(Outcome::Created, None),
                            (0, _) => entry.mark(Outcome::Unchanged, None),
                        }
                        claims.push(self.claim(p.want, Instant::now()));
                    }
                    Some(TagState::At(holder)) => match holders.get(holder) {
                        Some(Ok(held)) => match self.rules.version_of(&p.want.rules, held.iter().map(Tag::as_str)) {
                            Some(h) if p.want.version.cmp_precedence(&h) != Ordering::Greater => entry.mark(
                                Outcome::SkippedNotNewer,
                                Some(format!("held by {holder} at version {h}; {} is not newer", p.want.version)),
                            ),
                            // No version on the holder: it counts as older.
                            _ => {
                                p.previous = Some(holder.clone());
                                send.push(p);
                            }
                        },
                        Some(Err(fault)) => entry.fail(fault),
                        None => entry.fail(&not_looked_up(holder)),
                    },
                    // On an archived image: its version cannot be read, so it counts as older.
                    Some(TagState::Absent | TagState::Archived) | None => {
                        p.previous = None;
                        send.push(p);
                    }
                    Some(TagState::Unreadable(fault)) => entry.fail(fault),
                }
            }
            if self.dry_run {
                for p in send {
                    let entry = entry(tags, &p.want.tag);
                    match &p.previous {
                        Some(was) => entry.mark(Outcome::WouldMove, Some(format!("was {was}"))),
                        None => entry.mark(Outcome::WouldCreate, None),
                    }
                }
                break;
            }

            // One attempt each, sent only while the view is fresh (the concurrency bound may hold some back).
            let target = &self.target;
            let registry = self.registry;
            let fresh_until = view.at + FRESH;
            let answers: Vec<_> = stream::iter(send)
                .map(|p| async move {
                    if Instant::now() >= fresh_until {
                        return (p, None);
                    }
                    let answer = registry.put(target, &p.want.tag, Attempts::Once).await;
                    (p, Some(answer))
                })
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
            let mut retrying = false;
            for (mut p, answer) in answers {
                let Some(answer) = answer else {
                    // Stale before it could be sent: decided again from a new read.
                    pending.push(p);
                    continue;
                };
                if let Err(PutError::Fault(fault)) = &answer {
                    if fault.retryable() && p.attempts + 1 < ATTEMPTS {
                        // Tried again after a new read; the attempt may still land, so it counts.
                        p.attempts += 1;
                        retrying = true;
                        pending.push(p);
                        continue;
                    }
                }
                let entry = entry(tags, &p.want.tag);
                match put::record(entry, answer, &put::Was::of(p.previous.as_ref())) {
                    Answer::Immutable => immutable.push(p.want.tag),
                    Answer::RepositoryNotFound => return Err(RetagError::repository_not_found(self.target.repository)),
                    Answer::Done if matches!(entry.outcome, Outcome::Created | Outcome::Moved | Outcome::Unchanged) => {
                        claims.push(self.claim(p.want, Instant::now()));
                    }
                    Answer::Done => {}
                }
            }
            if retrying {
                tokio::time::sleep(backoff(round)).await;
            }
        }
        for p in pending {
            entry(tags, &p.want.tag).fail(&Fault::new(
                FaultKind::Timeout,
                "StaleRead",
                format!("no write could be sent within {} ms of the read that decided it", FRESH.as_millis()),
            ));
        }
        put::resolve_immutable(self.registry, &self.target, immutable, tags).await;
        Ok(claims)
    }

    /// The tags of every holder not looked up yet, one DescribeImages per holder, concurrently.
    async fn look_up_holders(&self, pending: &[Pending], view: &Observed, holders: &mut BTreeMap<Digest, Result<Vec<Tag>, Fault>>) {
        let mut unknown: Vec<&Digest> = pending
            .iter()
            .filter_map(|p| match view.tags.get(&p.want.tag) {
                Some(TagState::At(d)) if d != self.target.digest() && !holders.contains_key(d) => Some(d),
                _ => None,
            })
            .collect();
        unknown.sort();
        unknown.dedup();
        let found = join_all(unknown.iter().map(|d| holder_tags(self.registry, self.target.repository, self.origin, d))).await;
        for (d, tags) in unknown.into_iter().zip(found) {
            holders.insert(d.clone(), tags.map_err(read_fault));
        }
    }

    fn claim(&self, want: Want, touched: Instant) -> Claim {
        Claim {
            repository: self.target.repository.clone(),
            image: self.target.image.clone(),
            media_type: self.target.media_type.to_owned(),
            want,
            touched,
            undid: None,
            origin: self.origin.cloned(),
        }
    }
}

/// The tags that tell a holder's version: its tags in `place`, and for a promotion's target
/// (`origin`: its source) the same digest's tags in the source, where it carries the version it
/// was pushed as. A source that no longer holds the image adds nothing: the holder then counts
/// as older, as any holder without a version.
pub(super) async fn holder_tags<R: Registry>(registry: &R, place: &Repository, origin: Option<&Repository>, holder: &Digest) -> Result<Vec<Tag>, ReadError> {
    let mut tags = registry.tags_of(place, holder).await?;
    if let Some(origin) = origin.filter(|o| o.name != place.name) {
        // A failed read is no empty answer: taken for one, the holder would count as older.
        tags.extend(registry.tags_of(origin, holder).await?);
    }
    Ok(tags)
}

fn not_looked_up(holder: &Digest) -> Fault {
    Fault::new(FaultKind::Transport, "Internal", format!("the holder {holder} was not looked up"))
}

/// Full jitter over 100 ms, 200 ms, 400 ms …, at most 1 s: throttling clears within
/// PutImage's per-second quota, and each retry costs a read first.
fn backoff(round: u32) -> Duration {
    let ceiling = Duration::from_millis(100u64 << round.min(4)).min(Duration::from_secs(1));
    ceiling.mul_f64((jitter() >> 11) as f64 / (1u64 << 53) as f64)
}

thread_local! {
    /// xorshift64* state, seeded from std's random hasher keys on first use.
    static JITTER: std::cell::Cell<u64> =
        std::cell::Cell::new(std::collections::hash_map::RandomState::new().build_hasher().finish() | 1);
}

fn jitter() -> u64 {
    JITTER.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// Seeds this thread's backoff jitter, so that a simulation's seed replays its run exactly.
pub fn seed_jitter(seed: u64) {
    JITTER.with(|state| state.set(seed | 1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::names::RepositoryName;
    use crate::registry::memory::{Call, Failure, Memory};
    use crate::registry::PutError;

    const CAREFUL: &str = r#"{"rules":[{"name":"release","semver":true,"move":"if-newer","tags":["stable"]}]}"#;
    const MEDIA: &str = "application/vnd.oci.image.manifest.v1+json";

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn tag(t: &str) -> Tag {
        Tag::parse(t).unwrap()
    }

    /// Repository "app", where image `n` carries `v1.n.0`, and `stable` is on image `stable`.
    fn registry_with(images: &[u8], stable: Option<u8>) -> Memory {
        let memory = Memory::with_repositories(&["app"]);
        for n in images {
            memory.point("app", &tag(&format!("v1.{n}.0")), &digest(*n));
        }
        if let Some(n) = stable {
            memory.point("app", &tag("stable"), &digest(n));
        }
        memory
    }

    fn stable(memory: &Memory) -> Option<Digest> {
        memory.tag("app", &tag("stable"))
    }

    /// The reads and writes in short: `read`, and `put NN` for image NN; every
    /// write a single attempt. (Holders' tag lookups are not what these tests count.)
    fn log(memory: &Memory) -> Vec<String> {
        memory
            .calls()
            .into_iter()
            .filter(|c| !matches!(c, Call::TagsOf(_)))
            .map(|c| match c {
                Call::Put { once: false, .. } => panic!("if-newer writes are single attempts"),
                Call::Put { digest, .. } => format!("put {}", &digest.hex()[..2]),
                other => other.kind().to_owned(),
            })
            .collect()
    }

    struct Case {
        rules: RuleSet,
        repository: Repository,
        image: Image,
    }

    impl Case {
        /// Pushing image `n` (v1.n.0).
        fn pushing(n: u8) -> Case {
            Case {
                rules: RuleSet::from_json(CAREFUL).unwrap(),
                repository: Repository { registry_id: None, region: None, name: RepositoryName::parse("app").unwrap() },
                image: Image { digest: digest(n), manifest: "{}".into(), media_type: Some(MEDIA.into()) },
            }
        }
        fn want(&self) -> Want {
            let n = self.image.digest.hex()[..2].parse::<u8>().unwrap();
            Want { tag: tag("stable"), version: Version::new(1, u64::from(n), 0), rules: vec!["release".into()] }
        }
        async fn write(&self, registry: &Memory, observed: Option<Observed>) -> (Vec<Claim>, TagReport) {
            let guard = Guard {
                registry,
                rules: &self.rules,
                target: Target { repository: &self.repository, image: &self.image, media_type: MEDIA },
                concurrency: 4,
                dry_run: false,
                origin: None,
            };
            let mut tags = BTreeMap::new();
            let claims = guard.write(vec![self.want()], observed, &mut tags).await.unwrap();
            (claims, tags.remove("stable").unwrap())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lower_versions_late_write_is_put_back_at_the_second_look() {
        let registry = registry_with(&[1, 2, 3], Some(1));
        // v1.2.0's write, decided when v1.1.0 held the tag, lands just after ours.
        registry.after_put(|tags| {
            tags.insert(tag("stable"), digest(2));
        });
        let case = Case::pushing(3);
        let (claims, report) = case.write(&registry, None).await;
        assert_eq!((report.outcome, claims.len()), (Outcome::Moved, 1));
        assert_eq!(stable(&registry), Some(digest(2)), "the late write landed");

        let revisions = settle(&registry, &case.rules, claims, 4, None).await;
        assert_eq!(stable(&registry), Some(digest(3)), "put back");
        let revision = revisions[0].clone().unwrap();
        assert_eq!(revision.outcome, Outcome::Repaired);
        assert_eq!(revision.detail, format!("a lower version's late write moved it to {} (version 1.2.0); put back", digest(2)));
        assert_eq!(log(&registry), ["read", "put 03", "read", "put 03", "read"], "one more look after the repair");
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_version_taking_the_tag_after_us_is_superseded_and_left_alone() {
        let registry = registry_with(&[1, 3, 4], Some(1));
        registry.after_put(|tags| {
            tags.insert(tag("stable"), digest(4));
        });
        let case = Case::pushing(3);
        let (claims, _) = case.write(&registry, None).await;
        let revisions = settle(&registry, &case.rules, claims, 4, None).await;
        let revision = revisions[0].clone().unwrap();
        assert_eq!(revision.outcome, Outcome::Superseded);
        assert!(revision.detail.contains("version 1.4.0; 1.3.0 is not newer"), "{}", revision.detail);
        assert_eq!(stable(&registry), Some(digest(4)));
        assert_eq!(log(&registry), ["read", "put 03", "read"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tag_still_in_place_at_the_second_look_keeps_its_outcome() {
        let registry = registry_with(&[1, 3], Some(1));
        let case = Case::pushing(3);
        let (claims, report) = case.write(&registry, None).await;
        assert_eq!(report.detail, Some(format!("was {}", digest(1))));
        let started = Instant::now();
        assert_eq!(settle(&registry, &case.rules, claims, 4, None).await, [None]);
        assert!(started.elapsed() >= SETTLE, "the look waits until every write decided before ours has landed");
    }

    #[tokio::test]
    async fn a_failed_attempt_is_tried_again_only_after_a_new_read() {
        let registry = registry_with(&[1, 3, 4], Some(1));
        registry.fail(Failure::Put(None, PutError::Fault(Fault::new(FaultKind::Timeout, "TimeoutError", "no answer"))), Some(1));
        // While our attempt goes unanswered, v1.4.0 moves the tag.
        registry.after_put(|tags| {
            tags.insert(tag("stable"), digest(4));
        });
        let (claims, report) = Case::pushing(3).write(&registry, None).await;
        assert_eq!(report.outcome, Outcome::SkippedNotNewer);
        assert!(claims.is_empty());
        assert_eq!(log(&registry), ["read", "put 03", "read"], "the retry reads first, and then does not write");
        assert_eq!(stable(&registry), Some(digest(4)));
    }

    #[tokio::test]
    async fn a_decision_from_a_read_older_than_fresh_is_made_again() {
        let registry = registry_with(&[1, 3, 4], Some(4));
        // The caller's read said v1.1.0 holds the tag, but that read is too old to act on.
        let observed = Observed {
            at: Instant::now().checked_sub(FRESH * 2).unwrap(),
            tags: BTreeMap::from([(tag("stable"), TagState::At(digest(1)))]),
        };
        let (claims, report) = Case::pushing(3).write(&registry, Some(observed)).await;
        assert_eq!((report.outcome, claims.len()), (Outcome::SkippedNotNewer, 0));
        assert_eq!(log(&registry), ["read"]);

        // A fresh one is acted on without reading again.
        let registry = registry_with(&[1, 3], Some(1));
        let observed = Observed { at: Instant::now(), tags: BTreeMap::from([(tag("stable"), TagState::At(digest(1)))]) };
        let (_, report) = Case::pushing(3).write(&registry, Some(observed)).await;
        assert_eq!((report.outcome, log(&registry)), (Outcome::Moved, vec!["put 03".to_owned()]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_look_that_cannot_end_before_the_deadline_fails_retryably_without_waiting() {
        let registry = registry_with(&[1, 3], Some(1));
        let case = Case::pushing(3);
        let (claims, _) = case.write(&registry, None).await;
        let started = Instant::now();
        let revisions = settle(&registry, &case.rules, claims, 4, Some(Instant::now() + Duration::from_secs(2))).await;
        let revision = revisions[0].clone().unwrap();
        assert_eq!((revision.outcome, revision.retryable), (Outcome::Failed, true));
        assert!(revision.detail.contains("a later delivery looks again"), "{}", revision.detail);
        assert!(started.elapsed() < SETTLE);
        assert_eq!(log(&registry).len(), 2, "no read after the write");
    }

    #[test]
    fn the_settle_window_covers_a_fresh_decision_an_attempt_and_the_slack() {
        assert_eq!(SETTLE, FRESH + ONE_ATTEMPT_TIMEOUT + LANDING_SLACK);
        for round in 0..8 {
            assert!(backoff(round) <= Duration::from_secs(1));
        }
    }
}
