//! What the registry's calls meet, for the simulation (`crates/sim`): a latency per call and
//! the mishaps of a network and of ECR, as a [`Weather`] decides them; PutImage's quota; and
//! a log of every tagged write ECR carried out or refused, with what held at that moment
//! ([`Written`]), for the invariants to judge.
//!
//! The mishaps of a PutImage are the ones the if-newer design rests on: throttling, an answer
//! lost after the write was applied, and a write that lands after its caller gave up on it.
//! An attempt of [`Attempts::Retried`] is the SDK's: a lost answer is tried again (and meets
//! `AlreadyExists`), a late one is sent again at once while the first is still on its way.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::{Call, Memory, State};
use crate::domain::assess::Scanned;
use crate::domain::manifest::References;
use crate::domain::names::{Digest, RepositoryName, Tag};
use crate::domain::signature::Kinds;
use crate::fault::{Fault, FaultKind};
use crate::registry::{Attempts, Image, PutError, Repository};

/// Decides, for each call, how long it takes and what goes wrong with it.
pub trait Weather: Send + Sync {
    fn turn(&self, call: &Call, client: usize) -> Turn;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Turn {
    /// How long the call takes before ECR acts on it (on the paused clock, no real time).
    pub latency: Duration,
    pub mishap: Option<Mishap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mishap {
    /// ThrottlingException; nothing was done.
    Throttled,
    /// No answer in time; nothing was done.
    Timeout,
    /// PutImage only: carried out, but the answer was lost (the caller sees a timeout).
    AnswerLost,
    /// PutImage only: the caller gave up (a timeout), and the write lands this much later.
    LandsLate(Duration),
}

/// One tagged PutImage as ECR carried it out or refused it, and what held when it did.
#[derive(Debug, Clone)]
pub struct Written {
    /// The client whose call it was ([`Memory::client`]).
    pub client: usize,
    /// It landed after its caller had given up on it.
    pub late: bool,
    /// When the call was sent, and when ECR carried it out.
    pub sent: Instant,
    pub at: Instant,
    pub repository: RepositoryName,
    pub tag: Tag,
    pub digest: Digest,
    /// The manifest bytes sent.
    pub manifest: String,
    pub answer: Result<(), PutError>,
    /// The caller got this answer (not when it was lost, or the SDK tried again and answered that).
    pub seen: bool,
    pub archived: bool,
    pub scan: Option<Scanned>,
    pub signed: Kinds,
}

struct Late {
    due: Instant,
    sent: Instant,
    client: usize,
    repository: RepositoryName,
    tag: Tag,
    image: Image,
}

#[derive(Default)]
pub(super) struct Climate {
    weather: Option<Arc<dyn Weather>>,
    late: Vec<Late>,
    /// PutImage calls a second, the account's quota (`None`: none).
    put_quota: Option<usize>,
    recent_puts: VecDeque<Instant>,
    written: Vec<Written>,
    /// When the PutImage being carried out was sent.
    sent: Option<Instant>,
}

fn fault(mishap: Mishap) -> Fault {
    match mishap {
        Mishap::Throttled => Fault::new(FaultKind::Throttled, "ThrottlingException", "Rate exceeded"),
        _ => Fault::new(FaultKind::Timeout, "Timeout", "no answer within the attempt's timeout"),
    }
}

impl Memory {
    /// Another client of this registry, its calls logged as `id`'s.
    pub fn client(&self, id: usize) -> Memory {
        Memory { client: id, ..self.clone() }
    }

    pub fn set_weather(&self, weather: Arc<dyn Weather>) {
        self.lock().weather.weather = Some(weather);
    }

    /// PutImage calls a second the account may make; more are throttled.
    pub fn set_put_quota(&self, per_second: usize) {
        self.lock().weather.put_quota = Some(per_second);
    }

    /// An archived image's restore completes (ECR takes up to 20 minutes): it is readable again.
    pub fn restored(&self, repository: &str, digest: &Digest) {
        self.with(repository, |r| {
            r.archived.remove(digest);
        });
    }

    /// Whether the repository holds the manifest `digest` (tagged or not).
    pub fn holds(&self, repository: &str, digest: &Digest) -> bool {
        let name = super::repository_name(repository);
        self.lock().repositories.get(&name).is_some_and(|r| r.images.contains_key(digest))
    }

    /// Every tag of the repository and where it points.
    pub fn tags(&self, repository: &str) -> std::collections::BTreeMap<Tag, Digest> {
        let name = super::repository_name(repository);
        self.lock().repositories.get(&name).map(|r| r.tags.iter().map(|(t, d)| (t.clone(), d.clone())).collect()).unwrap_or_default()
    }

    /// Lands every write still on its way, as the passing of time would.
    pub fn land_late(&self) {
        self.lock().land_due(None);
    }

    /// Every tagged write carried out or refused since the last [`Memory::take_written`].
    pub fn take_written(&self) -> Vec<Written> {
        std::mem::take(&mut self.lock().weather.written)
    }

    /// The call's turn: its latency waited, then the registry as it is now (late writes due
    /// landed), or the fault it met instead.
    pub(super) async fn enter(&self, call: Call) -> Result<MutexGuard<'_, State>, Fault> {
        let turn = self.turn(&call).await;
        let mut state = self.lock();
        state.calls.push(call);
        match turn.mishap {
            Some(mishap) => Err(fault(mishap)),
            None => Ok(state),
        }
    }

    /// A PutImage's turn: the mishap is the write's to carry out ([`Memory::land`]).
    pub(super) async fn enter_put(&self, call: Call, attempts: Attempts) -> (MutexGuard<'_, State>, Option<(Mishap, Attempts)>) {
        let sent = Instant::now();
        let turn = self.turn(&call).await;
        let mut state = self.lock();
        state.weather.sent = Some(sent);
        state.calls.push(call);
        let over = state.weather.over_quota(Instant::now());
        (state, over.or(turn.mishap).map(|m| (m, attempts)))
    }

    async fn turn(&self, call: &Call) -> Turn {
        let weather = self.lock().weather.weather.clone();
        let turn = weather.map(|w| w.turn(call, self.client)).unwrap_or_default();
        if !turn.latency.is_zero() {
            tokio::time::sleep(turn.latency).await;
        }
        self.lock().land_due(Some(Instant::now()));
        turn
    }

    /// Carries out a tagged PutImage as ECR would, with what the call met on its way.
    pub(super) fn land(&self, state: &mut State, repository: &Repository, tag: &Tag, image: &Image, mishap: Option<(Mishap, Attempts)>) -> Result<(), PutError> {
        let now = Instant::now();
        match mishap {
            None => state.apply_put(self.client, false, &repository.name, tag, image),
            Some((refused @ (Mishap::Throttled | Mishap::Timeout), _)) => Err(PutError::Fault(fault(refused))),
            Some((Mishap::AnswerLost, Attempts::Once)) => {
                let _ = state.apply_put(self.client, false, &repository.name, tag, image);
                state.unseen();
                Err(PutError::Fault(fault(Mishap::AnswerLost)))
            }
            // The SDK tries again and finds its first attempt landed.
            Some((Mishap::AnswerLost, Attempts::Retried)) => {
                let first = state.apply_put(self.client, false, &repository.name, tag, image);
                state.unseen();
                first.and_then(|()| state.apply_put(self.client, false, &repository.name, tag, image))
            }
            Some((Mishap::LandsLate(after), attempts)) => {
                let sent = state.weather.sent.unwrap_or(now);
                let late = Late { due: now + after, sent, client: self.client, repository: repository.name.clone(), tag: tag.clone(), image: image.clone() };
                state.weather.late.push(late);
                match attempts {
                    Attempts::Once => Err(PutError::Fault(fault(Mishap::Timeout))),
                    // The SDK's second attempt, sent while the first is still on its way.
                    Attempts::Retried => state.apply_put(self.client, false, &repository.name, tag, image),
                }
            }
        }
    }
}

impl Climate {
    /// Throttled when the account has made its quota of PutImage calls in the last second.
    fn over_quota(&mut self, now: Instant) -> Option<Mishap> {
        let quota = self.put_quota?;
        while self.recent_puts.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            self.recent_puts.pop_front();
        }
        if self.recent_puts.len() >= quota {
            return Some(Mishap::Throttled);
        }
        self.recent_puts.push_back(now);
        None
    }
}

impl State {
    /// The write just logged was never answered to its caller.
    fn unseen(&mut self) {
        if let Some(last) = self.weather.written.last_mut() {
            last.seen = false;
        }
    }

    /// Lands the late writes due by `now` (all of them: `None`), in the order they fall due.
    fn land_due(&mut self, now: Option<Instant>) {
        let mut due: Vec<Late> = Vec::new();
        let mut kept = Vec::new();
        for late in std::mem::take(&mut self.weather.late) {
            if now.is_none_or(|n| late.due <= n) { due.push(late) } else { kept.push(late) }
        }
        self.weather.late = kept;
        due.sort_by_key(|l| l.due);
        for late in due {
            self.weather.sent = Some(late.sent);
            let _ = self.apply_put(late.client, true, &late.repository, &late.tag, &late.image);
        }
    }

    /// A tagged PutImage as ECR answers it: an existing immutable tag refused (even on the same
    /// image), a tag already on the image `AlreadyExists`, a manifest new to the repository refused
    /// while its blobs or children are not there (LayersNotFoundException,
    /// ReferencedImagesNotFoundException). Logged with what held.
    pub(super) fn apply_put(&mut self, client: usize, late: bool, repository: &RepositoryName, tag: &Tag, image: &Image) -> Result<(), PutError> {
        let Some(stored) = self.repositories.get_mut(repository) else { return Err(PutError::RepositoryNotFound) };
        let answer = match stored.tags.get(tag) {
            Some(_) if stored.mutability.as_ref().is_some_and(|m| m.is_immutable(tag.as_str())) => Err(PutError::TagImmutable),
            Some(d) if *d == image.digest => Err(PutError::AlreadyExists),
            _ => match stored.absent_references(image) {
                Some(missing) => Err(PutError::Fault(missing)),
                None => {
                    stored.tags.insert(tag.clone(), image.digest.clone());
                    stored.images.entry(image.digest.clone()).or_insert_with(|| (image.clone(), None));
                    Ok(())
                }
            },
        };
        let written = Written {
            client,
            late,
            sent: self.weather.sent.unwrap_or_else(Instant::now),
            at: Instant::now(),
            repository: repository.clone(),
            tag: tag.clone(),
            digest: image.digest.clone(),
            manifest: image.manifest.clone(),
            answer: answer.clone(),
            seen: !late,
            archived: stored.archived.contains(&image.digest),
            scan: stored.scans.get(&image.digest).cloned(),
            signed: stored.signed(&image.digest),
        };
        if self.weather.weather.is_some() {
            self.weather.written.push(written);
        }
        answer
    }
}

impl super::Stored {
    /// What ECR refuses a new manifest for: a blob or a child the repository does not hold.
    pub(super) fn absent_references(&self, image: &Image) -> Option<Fault> {
        if self.images.contains_key(&image.digest) {
            return None;
        }
        let references = References::of(&image.digest, &image.manifest).ok()?;
        if let Some(blob) = references.blobs.iter().find(|b| !self.holds_blob(b)) {
            return Some(Fault::new(FaultKind::Permanent, "LayersNotFoundException", format!("The layer {blob} does not exist")));
        }
        let child = references.children.iter().find(|c| !self.images.contains_key(*c))?;
        Some(Fault::new(FaultKind::Permanent, "ReferencedImagesNotFoundException", format!("The image {child} is not in the repository")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registry, Target};

    /// The same turn for every PutImage.
    struct Always(Turn);

    impl Weather for Always {
        fn turn(&self, call: &Call, _: usize) -> Turn {
            if matches!(call, Call::Put { .. }) { self.0 } else { Turn::default() }
        }
    }

    fn image(manifest: &str, n: u8) -> Image {
        Image { digest: Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap(), manifest: manifest.to_owned(), media_type: None }
    }

    fn app() -> Repository {
        Repository::own(RepositoryName::parse("app").unwrap())
    }

    async fn put(memory: &Memory, image: &Image, tag: &str, attempts: Attempts) -> Result<(), PutError> {
        memory.put(&Target { repository: &app(), image, media_type: "m" }, &Tag::parse(tag).unwrap(), attempts).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_was_applied_and_a_late_write_lands_after_its_caller_gave_up() {
        let memory = Memory::with_repositories(&["app"]);
        let (one, two) = (image("{}", 1), image("{}", 2));
        memory.set_weather(Arc::new(Always(Turn { latency: Duration::from_millis(30), mishap: Some(Mishap::AnswerLost) })));
        let started = Instant::now();
        assert!(matches!(put(&memory, &one, "v1", Attempts::Once).await, Err(PutError::Fault(f)) if f.kind == FaultKind::Timeout));
        assert_eq!(started.elapsed(), Duration::from_millis(30), "the latency passes on the paused clock");
        assert_eq!(memory.tag("app", &Tag::parse("v1").unwrap()), Some(one.digest.clone()), "applied, though unanswered");
        assert_eq!(put(&memory, &one, "v2", Attempts::Retried).await, Err(PutError::AlreadyExists), "the SDK's retry finds it landed");

        memory.set_weather(Arc::new(Always(Turn { latency: Duration::ZERO, mishap: Some(Mishap::LandsLate(Duration::from_millis(800))) })));
        assert!(put(&memory, &two, "v1", Attempts::Once).await.is_err());
        assert_eq!(memory.tag("app", &Tag::parse("v1").unwrap()), Some(one.digest.clone()), "not yet");
        tokio::time::sleep(Duration::from_millis(800)).await;
        memory.set_weather(Arc::new(Always(Turn::default())));
        assert_eq!(put(&memory, &one, "v3", Attempts::Once).await, Ok(()));
        assert_eq!(memory.tag("app", &Tag::parse("v1").unwrap()), Some(two.digest.clone()), "landed before the next call");
        let written = memory.take_written();
        assert_eq!(written.iter().filter(|w| w.late).count(), 1);
        assert_eq!(written.len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn puts_over_the_quota_are_throttled_and_a_manifest_needs_its_blobs() {
        let memory = Memory::with_repositories(&["app"]);
        memory.set_weather(Arc::new(Always(Turn::default())));
        memory.set_put_quota(2);
        let one = image("{}", 1);
        assert_eq!(put(&memory, &one, "a", Attempts::Once).await, Ok(()));
        assert_eq!(put(&memory, &one, "b", Attempts::Once).await, Ok(()));
        assert!(matches!(put(&memory, &one, "c", Attempts::Once).await, Err(PutError::Fault(f)) if f.kind == FaultKind::Throttled));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(put(&memory, &one, "c", Attempts::Once).await, Ok(()), "a second later");

        let layer = format!("sha256:{}", "ab".repeat(32));
        let needs = image(&format!(r#"{{"schemaVersion":2,"config":{{"digest":"{layer}","size":1}},"layers":[]}}"#), 3);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(matches!(put(&memory, &needs, "d", Attempts::Once).await, Err(PutError::Fault(f)) if f.code == "LayersNotFoundException"));
        assert_eq!(memory.tag("app", &Tag::parse("d").unwrap()), None);
    }
}
