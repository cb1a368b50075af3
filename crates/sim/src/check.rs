//! The invariants (docs/testing.md), judged on what a run left: every write ECR carried out or
//! refused, each invocation's answer, and where the tags were at quiescence, after one sweep,
//! and after every event was delivered again. The expectations come from the workload alone:
//! a reference model of what the rules say, a fraction of the engine's size.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ecr_retag::error::RetagError;
use ecr_retag::lambda::Answer;
use ecr_retag::registry::PutError;
use ecr_retag::report::Report;
use semver::Version;

use crate::run::Run;
use ecr_retag::registry::memory::Written;
use crate::world::{Kind, Step, Workload};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: u8,
    pub detail: String,
}

/// What the world's steps left, the facts the expectations are computed from.
struct Facts {
    /// (repository, pushed tag) → image, as the last push left it.
    pushed: BTreeMap<(&'static str, String), usize>,
    /// Archived at the end.
    archived: BTreeSet<usize>,
    /// Archived at some moment.
    ever_archived: BTreeSet<usize>,
    /// Every scan of an image, in order: critical findings.
    scans: HashMap<usize, Vec<u64>>,
    /// Image → its signatures.
    signatures: HashMap<usize, Vec<usize>>,
    /// The version each image was pushed as.
    version_of: HashMap<usize, Version>,
}

fn version(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok().filter(|v| v.pre.is_empty())
}

impl Facts {
    fn of(workload: &Workload) -> Facts {
        let mut f = Facts { pushed: BTreeMap::new(), archived: BTreeSet::new(), ever_archived: BTreeSet::new(), scans: HashMap::new(), signatures: HashMap::new(), version_of: HashMap::new() };
        for (_, step) in &workload.steps {
            match step {
                Step::Push { repo, tag, image } => {
                    f.pushed.insert((repo, tag.clone()), *image);
                    if let Some(v) = version(tag) {
                        f.version_of.insert(*image, v);
                    }
                }
                Step::Scan { image, critical, .. } => f.scans.entry(*image).or_default().push(*critical),
                Step::Sign { subject, signature, .. } => f.signatures.entry(*subject).or_default().push(*signature),
                Step::Archive { image, .. } => {
                    f.archived.insert(*image);
                    f.ever_archived.insert(*image);
                }
                Step::Restore { image, .. } => {
                    f.archived.remove(image);
                }
                Step::Sweep { .. } => {}
            }
        }
        f
    }

    /// The images of `repo` a rule may put a derived tag on: each still holds its pushed
    /// version, and is not archived. With `and`, only those it also accepts.
    fn candidates(&self, repo: &str, and: impl Fn(usize) -> bool) -> Vec<(Version, usize)> {
        self.candidates_or_archived(repo, |i| !self.archived.contains(&i) && and(i))
    }

    /// The same, archived images included unless `and` leaves them out.
    fn candidates_or_archived(&self, repo: &str, and: impl Fn(usize) -> bool) -> Vec<(Version, usize)> {
        let mut out: Vec<(Version, usize)> = self
            .pushed
            .iter()
            .filter(|((r, _), image)| *r == repo && and(**image))
            .filter_map(|((_, tag), image)| Some((version(tag)?, *image)))
            .collect();
        out.sort();
        out
    }

    /// The highest candidate for each key (`v1`, `v1.2`, …) a version derives.
    fn highest(&self, candidates: &[(Version, usize)], key: impl Fn(&Version) -> String) -> BTreeMap<String, (Version, usize)> {
        let mut out: BTreeMap<String, (Version, usize)> = BTreeMap::new();
        for (v, image) in candidates {
            out.insert(key(v), (v.clone(), *image));
        }
        out
    }
}

/// Where each rule-derived tag must be: (repository, tag) → image, for the if-newer lines.
fn lines(facts: &Facts, handled: impl Fn(usize) -> bool + Copy) -> Vec<(&'static str, String, (Version, usize))> {
    let mut out = Vec::new();
    let app = facts.candidates("app", handled);
    for (tag, want) in facts.highest(&app, |v| format!("v{}", v.major)) {
        out.push(("app", tag, want));
    }
    for (tag, want) in facts.highest(&app, |v| format!("v{}", v.major)) {
        out.push(("prod/app", tag, want));
    }
    for (tag, want) in facts.highest(&app, |v| format!("v{}.{}", v.major, v.minor)) {
        out.push(("app", tag, want));
    }
    for (tag, want) in facts.highest(&facts.candidates("web", handled), |v| format!("v{}", v.major)) {
        out.push(("web", tag, want));
    }
    out
}

/// What a run is judged with: the run, the facts of its world, and the violations found so far.
struct Judge<'a> {
    run: &'a Run,
    images: &'a [crate::world::Img],
    facts: Facts,
    by_digest: HashMap<&'a str, usize>,
    out: Vec<Violation>,
}

pub fn check(workload: &Workload, run: &Run) -> Vec<Violation> {
    let images = &workload.images;
    let by_digest = images.iter().enumerate().map(|(i, img)| (img.digest.as_str(), i)).collect();
    let mut judge = Judge { run, images, facts: Facts::of(workload), by_digest, out: Vec::new() };
    judge.never_backwards_at_quiescence();
    judge.never_backwards_as_it_happens();
    for w in &run.written {
        judge.write(w);
    }
    judge.conflicts_reported();
    judge.quiet_when_done();
    judge.converged();
    judge.honest_failures();
    judge.out.extend(crate::records::well_formed(&run.records));
    // The recorded rules' tags: "vetted" (stable) in app, "promote" (v{major}) in prod/app.
    let recorded: [crate::records::Recorded<'_>; 2] = [("app", |t| t == "stable"), ("prod/app", |t| t.starts_with('v') && !t.contains('.'))];
    let retired = |digest: &str| judge.by_digest.get(digest).is_some_and(|i| judge.facts.ever_archived.contains(i));
    let incomplete = crate::records::complete(&run.records, &run.end, &recorded, retired);
    judge.out.extend(incomplete);
    judge.out
}

impl Judge<'_> {
    fn say(&mut self, invariant: u8, detail: String) {
        self.out.push(Violation { invariant, detail });
    }

    /// The image a tag points at in `state`, as the world knows it.
    fn at(&self, state: &BTreeMap<String, BTreeMap<String, String>>, repo: &str, tag: &str) -> Option<usize> {
        state.get(repo).and_then(|tags| tags.get(tag)).and_then(|d| self.by_digest.get(d.as_str()).copied())
    }

    /// When the earliest invocation of the write's client under way at the write began (an
    /// instance may run several at once).
    fn begun(&self, w: &Written) -> Option<tokio::time::Instant> {
        self.run.invocations.iter().filter(|i| i.client == w.client && i.start <= w.at && w.at <= i.end).map(|i| i.start).min()
    }

    /// Invariant 1 at quiescence: no if-newer tag below the highest version whose push was handled. A
    /// promotion's tags are judged after the sweep (8), which retries its failures; so are lines
    /// with an archived image, whose holder counts as older, so the next event takes its tags.
    fn never_backwards_at_quiescence(&mut self) {
        let (run, images) = (self.run, self.images);
        let delivered = |image: usize| {
            run.events.iter().zip(&run.handled).any(|(e, ok)| *ok && e.contains(images[image].digest.as_str()) && e.contains("\"PUSH\""))
        };
        let archived_lines: BTreeSet<String> = self
            .facts
            .ever_archived
            .iter()
            .filter_map(|i| self.facts.version_of.get(i))
            .flat_map(|v| [format!("v{}", v.major), format!("v{}.{}", v.major, v.minor)])
            .collect();
        let judged = lines(&self.facts, delivered).into_iter().filter(|(r, t, _)| *r != "prod/app" && !(*r == "app" && archived_lines.contains(t)));
        for (repo, tag, (want, _)) in judged.collect::<Vec<_>>() {
            match self.at(&run.quiescent, repo, &tag).and_then(|i| self.facts.version_of.get(&i)) {
                Some(held) if *held >= want => {}
                held => {
                    let held = held.cloned();
                    self.say(1, format!("{repo}:{tag} at quiescence holds {held:?}, below {want}, the highest delivered"));
                }
            }
        }
    }

    /// Invariant 1 as each write lands: an if-newer write is decided on a read at most FRESH old when it is
    /// sent, so one that moves a tag below a version already there before that read is a stale
    /// decision. (A write landing after its caller gave up is the second look's to repair, and a
    /// holder that had lost its version, archived or its tag pushed onto a rebuild, counts as older.)
    fn never_backwards_as_it_happens(&mut self) {
        let (run, fresh) = (self.run, ecr_retag::apply::if_newer::FRESH);
        let mut held: BTreeMap<(String, String), (usize, tokio::time::Instant)> = BTreeMap::new();
        for w in run.written.iter().filter(|w| w.answer.is_ok()) {
            let Some(&image) = self.by_digest.get(w.digest.as_str()) else { continue };
            let key = (w.repository.to_string(), w.tag.to_string());
            let guarded = ["stable", "trusted"].contains(&w.tag.as_str()) || (w.tag.as_str().starts_with('v') && !w.tag.as_str().contains('-'));
            if let (true, false, Some(&(before, since))) = (guarded, w.late, held.get(&key)) {
                let (old, new) = (self.facts.version_of.get(&before), self.facts.version_of.get(&image));
                let read_at_the_latest = w.sent.checked_sub(fresh).unwrap_or(w.sent);
                let lost = run.archived_within(before, read_at_the_latest, w.at) || run.rebuilt_by(before, w.at);
                if old.zip(new).is_some_and(|(o, n)| n < o) && !lost && since < read_at_the_latest {
                    let undone = self.images[before].digest.clone();
                    self.say(1, format!("{}:{} moved back from {undone} to {} on a read older than the write it undid", w.repository, w.tag, w.digest));
                }
            }
            held.insert(key, (image, w.at));
        }
    }

    /// Invariants 2 to 5 on one write ECR carried out or refused. An image archived, or a scan that failed,
    /// after the invocation began may have come after its read: no client can close that window.
    fn write(&mut self, w: &Written) {
        let Some(&image) = self.by_digest.get(w.digest.as_str()) else {
            self.say(3, format!("{}:{} put on {}, a digest no pipeline pushed", w.repository, w.tag, w.digest));
            return;
        };
        let img = &self.images[image];
        if w.manifest != img.manifest || crate::rng::sha256(w.manifest.as_bytes()) != w.digest.as_str() {
            self.say(3, format!("{}:{} put with bytes that are not {}'s", w.repository, w.tag, w.digest));
        }
        if let Err(PutError::Fault(f)) = &w.answer {
            if f.code == "LayersNotFoundException" || f.code == "ReferencedImagesNotFoundException" {
                self.say(5, format!("{}:{} put before the image's blobs and children were there ({})", w.repository, w.tag, f.code));
            }
        }
        if w.answer.is_err() {
            return;
        }
        let sidecar = [".sig", ".att", ".sbom"].iter().any(|s| w.tag.as_str().ends_with(s));
        if img.artifact() && !sidecar {
            self.say(2, format!("{}:{} put on the artifact {}", w.repository, w.tag, w.digest));
        }
        let begun = self.begun(w);
        let settled_before = |changed: Option<tokio::time::Instant>| changed.is_some_and(|c| begun.is_none_or(|b| c < b));
        if w.archived && !w.late && settled_before(self.run.archived_at(image, w.at)) {
            self.say(2, format!("{}:{} put on {}, archived before the invocation began", w.repository, w.tag, w.digest));
        }
        if w.repository.as_str() == "lab" {
            self.say(2, format!("lab:{} written, but lab has not opted in", w.tag));
        }
        if w.late {
            return;
        }
        let passes = matches!(&w.scan, Some(ecr_retag::domain::assess::Scanned::Done(f)) if f.counts.get("CRITICAL").copied().unwrap_or(0) == 0);
        if w.tag.as_str() == "stable" && !passes && settled_before(self.run.last_change(image, w.at, |s| matches!(s, Step::Scan { .. }))) {
            self.say(4, format!("app:stable put on {} while its scan, settled before the invocation began, is {:?}", w.digest, w.scan));
        }
        if w.tag.as_str() == "trusted" && w.signed.is_empty() {
            self.say(4, format!("app:trusted put on {}, which has no signature", w.digest));
        }
    }

    /// Invariant 6: every refusal of an immutable tag whose answer reached the function is reported as a
    /// conflict by one of its client's invocations under way then; or, when the re-read that tells
    /// whose the tag is failed, as a retryable failure (the tag may be the image's own, from an
    /// earlier attempt: only a later delivery can say). And `release-*` is written once.
    fn conflicts_reported(&mut self) {
        let run = self.run;
        for w in run.written.iter().filter(|w| w.seen && w.answer == Err(PutError::TagImmutable)) {
            let during: Vec<&crate::run::Invocation> = run.invocations.iter().filter(|i| i.client == w.client && i.start <= w.at && w.at <= i.end).collect();
            let reports: Vec<&Report> = during
                .iter()
                .filter_map(|i| match &i.answer {
                    Some(Ok(Answer::Event(r))) => Some(r),
                    Some(Err(RetagError::TagsNotApplied { report, .. })) => Some(&**report),
                    _ => None,
                })
                .collect();
            // A batch answers with its failed messages only: nothing to read the outcome from.
            if reports.len() < during.len() {
                continue;
            }
            let said = |t: &ecr_retag::report::TagReport| {
                t.tag == w.tag.as_str() && serde_json::to_value(t.outcome).is_ok_and(|o| o == "conflict" || o == "unchanged" || (o == "failed" && t.retryable))
            };
            if !reports.iter().any(|r| r.tags.iter().any(said)) {
                let seen: Vec<_> = reports.iter().map(|r| r.tags.iter().find(|t| t.tag == w.tag.as_str()).map(|t| (t.outcome, t.detail.clone()))).collect();
                self.say(6, format!("{}:{} refused as immutable, and not reported as a conflict: {seen:?}", w.repository, w.tag));
            }
        }
        for w in run.written.iter().filter(|w| w.answer.is_ok() && w.tag.as_str().starts_with("release-")) {
            let times = run.written.iter().filter(|o| o.answer.is_ok() && o.tag == w.tag && o.repository == w.repository).count();
            if times > 1 {
                self.say(6, format!("{}:{} written {times} times", w.repository, w.tag));
            }
        }
    }

    /// Invariant 7: after quiescence and the sweep, every event delivered once more writes nothing.
    fn quiet_when_done(&mut self) {
        for w in &self.run.redelivered_writes {
            self.say(7, format!("{}:{} written again (on {}) when the events were delivered once more", w.repository, w.tag, w.digest));
        }
    }

    /// Invariant 8: after quiescence and one sweep, every tag is where the rules say; and 5: a promoted
    /// image's referrers and cosign sidecars followed it.
    fn converged(&mut self) {
        let (run, images, facts) = (self.run, self.images, &self.facts);
        let mut found = Vec::new();
        for (repo, tag, (version, want)) in lines(facts, |_| true) {
            let held = self.at(&run.swept, repo, &tag);
            // A copy promoted before its source was archived is no archived image: a higher version may keep the tag.
            let kept = held.is_some_and(|h| repo == "prod/app" && facts.archived.contains(&h) && facts.version_of.get(&h).is_some_and(|v| *v > version));
            if held != Some(want) && !kept {
                found.push((8, format!("{repo}:{tag} after the sweep is on {held:?}, not the highest version's image {want}")));
            }
        }
        let passed = |i: usize| facts.scans.get(&i).and_then(|s| s.last()) == Some(&0);
        let ever_passed = |i: usize| facts.scans.get(&i).is_some_and(|s| s.contains(&0));
        let signed = |i: usize| facts.signatures.contains_key(&i);
        // Each gated tag: whether an image passes its gate now, and whether it ever did.
        type Gate<'g> = &'g dyn Fn(usize) -> bool;
        let gated: [(&str, Gate, Gate); 2] = [("stable", &passed, &ever_passed), ("trusted", &signed, &signed)];
        for (tag, now, once) in gated {
            let want = facts.candidates("app", now).last().map(|(v, i)| (v.clone(), *i));
            let held = self.at(&run.swept, "app", tag);
            // A gated tag is not taken back when a rescan fails: a higher version that passed once may keep it.
            let fine = match (&want, held) {
                (Some((_, w)), Some(h)) if *w == h => true,
                (_, Some(h)) => once(h) && want.as_ref().is_none_or(|(v, _)| facts.version_of.get(&h).is_some_and(|hv| hv > v)),
                (None, None) => true,
                (Some(_), None) => false,
            };
            if !fine {
                found.push((8, format!("app:{tag} after the sweep is on {held:?}; the rules say {want:?}")));
            }
        }
        for (repo, tags) in &run.swept {
            for (tag, digest) in tags {
                let Some(&i) = self.by_digest.get(digest.as_str()) else { continue };
                if tag.starts_with("release-") && facts.version_of.get(&i).is_none_or(|v| format!("release-{}", v.major) != *tag) {
                    found.push((8, format!("{repo}:{tag} is on {digest}, of another major version")));
                }
                // An image archived in its source is retired: nothing more follows it into the target.
                if repo != "prod/app" || images[i].artifact() || facts.archived.contains(&i) {
                    continue;
                }
                for sig in facts.signatures.get(&i).into_iter().flatten() {
                    let followed = match images[*sig].kind {
                        Kind::Cosign => tags.contains_key(&format!("{}.sig", digest.replacen(':', "-", 1))),
                        _ => run.swept_holds.contains(&(repo.clone(), images[*sig].digest.to_string())),
                    };
                    if !followed {
                        found.push((5, format!("prod/app:{tag} is on {digest}, but its signature {} did not follow it", images[*sig].digest)));
                    }
                }
            }
        }
        for (invariant, detail) in found {
            self.say(invariant, detail);
        }
    }

    /// Invariant 9: no panic; a failure says whether a retry can help, and why.
    fn honest_failures(&mut self) {
        for inv in &self.run.invocations {
            match &inv.answer {
                None => self.out.push(Violation { invariant: 9, detail: format!("the handler panicked on events {:?}", inv.events) }),
                Some(Err(e)) if e.to_string().trim().is_empty() || e.error_type().is_empty() => {
                    self.out.push(Violation { invariant: 9, detail: format!("a failure without a reason: {e:?}") })
                }
                _ => {}
            }
        }
    }
}
