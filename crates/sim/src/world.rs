//! The world the function lives in: what pipelines push, what scanners find, what signers sign
//! and what lifecycle archives, as a generated list of steps; each step changes the model of
//! ECR and emits the events ECR would.

use std::time::Duration;

use ecr_retag::domain::assess::Scanned;
use ecr_retag::domain::names::{Digest, Tag};
use ecr_retag::domain::scan::Findings;
use ecr_retag::registry::memory::Memory;
use ecr_retag::registry::Image;
use semver::Version;

use crate::rng::{sha256, Rng};

/// The rule set under test: if-newer lines, a scan gate, a signature gate, a promotion, an
/// opt-in by resource tag, an immutable tag (web's `release-*`), and a rule whose pushes are
/// SBOMs (which no rule may tag without `"artifacts": true`).
pub const RULES: &str = r#"{"rules":[
 {"name":"lines","repositories":["app"],"semver":true,"move":"if-newer","tags":["v{major}","v{major}.{minor}"]},
 {"name":"vetted","repositories":["app"],"semver":true,"move":"if-newer","when":{"scan":"HIGH"},"tags":["stable"],"record":true},
 {"name":"trusted","repositories":["app"],"semver":true,"move":"if-newer","when":{"signed":true},"tags":["trusted"]},
 {"name":"promote","repositories":["app"],"semver":true,"move":"if-newer","to":"prod/{repository}","tags":["v{major}"],"record":true},
 {"name":"web","repositories":["web","lab"],"repository_tags":{"retag":"on"},"semver":true,"move":"if-newer","tags":["v{major}","release-{major}"]},
 {"name":"sboms","repositories":["app"],"match":"sbom-.*","tags":["sbom-latest"]}
]}"#;

pub const REPOSITORIES: [&str; 4] = ["app", "web", "lab", "prod/app"];

/// What an image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    /// A multi-arch index; its children are the next two images.
    Index,
    Child,
    Notation,
    Cosign,
    /// An SPDX SBOM pushed under a tag of its own.
    Sbom,
}

#[derive(Debug, Clone)]
pub struct Img {
    pub digest: Digest,
    pub manifest: String,
    pub media_type: &'static str,
    pub kind: Kind,
}

impl Img {
    pub fn image(&self) -> Image {
        Image { digest: self.digest.clone(), manifest: self.manifest.clone(), media_type: Some(self.media_type.to_owned()) }
    }

    pub fn artifact(&self) -> bool {
        matches!(self.kind, Kind::Notation | Kind::Cosign | Kind::Sbom)
    }
}

/// One thing that happens in the world.
#[derive(Debug, Clone)]
pub enum Step {
    /// A pipeline pushes `image` as `repo:tag` (an index: its children first, untagged).
    Push { repo: &'static str, tag: String, image: usize },
    /// A scan of `image` completes with this many critical findings (rescans repeat it).
    Scan { repo: &'static str, image: usize, critical: u64 },
    /// A signature of `subject` is pushed: a Notation referrer, or cosign's `.sig` tag.
    Sign { repo: &'static str, subject: usize, signature: usize },
    /// Lifecycle moves `image` to the archive storage class (no event).
    Archive { repo: &'static str, image: usize },
    /// Someone restores it, and the restore completes (no event either).
    Restore { repo: &'static str, image: usize },
    /// The scheduled reconcile sweep; fanned out: one message per repository to the event queue.
    Sweep { fan_out: bool },
}

pub struct Workload {
    pub images: Vec<Img>,
    /// Each step with the time it happens at, from the start.
    pub steps: Vec<(Duration, Step)>,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn blob(name: &str) -> String {
    sha256(name.as_bytes())
}

fn made(kind: Kind, manifest: String, media_type: &'static str) -> Img {
    let digest = Digest::parse(&sha256(manifest.as_bytes())).unwrap_or_else(|e| panic!("a generated digest: {e}"));
    Img { digest, manifest, media_type, kind }
}

impl Workload {
    fn add(&mut self, img: Img) -> usize {
        self.images.push(img);
        self.images.len() - 1
    }

    /// A new image; `n` names it (and its blobs) within the seed.
    fn image(&mut self, seed: u64, n: usize) -> usize {
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":7}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":99}}]}}"#,
            blob(&format!("config {seed} {n}")),
            blob(&format!("layer {seed} {n}")),
        );
        self.add(made(Kind::Image, manifest, OCI_MANIFEST))
    }

    fn index(&mut self, seed: u64, n: usize) -> usize {
        // Named apart from the versions' own images (0 to 99), rebuilds (100 to 199) and the others (200 on).
        let children: Vec<usize> = (0..2).map(|i| self.image(seed, 1_000 + n * 10 + i)).collect();
        for &c in &children {
            self.images[c].kind = Kind::Child;
        }
        let entries: Vec<String> = children
            .iter()
            .zip(["amd64", "arm64"])
            .map(|(&c, arch)| {
                let child = &self.images[c];
                format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#, child.digest, child.manifest.len())
            })
            .collect();
        let manifest = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#, entries.join(","));
        // The children come right before the index in `images`.
        self.add(made(Kind::Index, manifest, OCI_INDEX))
    }

    fn sbom(&mut self, seed: u64, subject: usize) -> usize {
        let of = &self.images[subject];
        let document = blob(&format!("sbom {seed} {subject}"));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/spdx+json","digest":"{document}","size":5120}},"layers":[{{"mediaType":"application/spdx+json","digest":"{document}","size":5120}}],"subject":{{"mediaType":"{}","digest":"{}","size":{}}}}}"#,
            of.media_type, of.digest, of.manifest.len()
        );
        self.add(made(Kind::Sbom, manifest, OCI_MANIFEST))
    }

    fn signature(&mut self, seed: u64, subject: usize, notation: bool) -> usize {
        let of = &self.images[subject];
        let layer = blob(&format!("signature {seed} {subject} {notation}"));
        if notation {
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.cncf.notary.signature","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/jose+json","digest":"{layer}","size":2090}}],"subject":{{"mediaType":"{}","digest":"{}","size":{}}}}}"#,
                blob("{}"), of.media_type, of.digest, of.manifest.len()
            );
            self.add(made(Kind::Notation, manifest, OCI_MANIFEST))
        } else {
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":246,"digest":"{layer}"}}]}}"#,
                blob(&format!("cosign config {seed} {subject}"))
            );
            self.add(made(Kind::Cosign, manifest, OCI_MANIFEST))
        }
    }

    /// A workload for `seed`: releases of `app` out of order (hotfixes, re-pushes, one multi-arch
    /// index), scans that pass and fail and rescans that change their mind, signatures before and
    /// after scans, an archived image (sometimes restored), `web` (opted in, with an immutable tag) and `lab` (not opted
    /// in), and sweeps at any moment, direct or fanned out.
    pub fn generate(seed: u64) -> Workload {
        let mut rng = Rng::new(seed, "workload");
        let mut w = Workload { images: Vec::new(), steps: Vec::new() };
        let mut versions: Vec<Version> = Vec::new();
        while versions.len() < 5 + rng.below(5) as usize {
            let v = Version::new(1 + rng.below(2), rng.below(3), rng.below(3));
            if !versions.contains(&v) {
                versions.push(v);
            }
        }
        let mut app: Vec<Step> = Vec::new();
        let index_at = rng.chance(40).then(|| rng.below(versions.len() as u64) as usize);
        for (n, v) in versions.iter().enumerate() {
            let image = if index_at == Some(n) { w.index(seed, n) } else { w.image(seed, n) };
            let tag = if rng.chance(30) { format!("v{v}") } else { v.to_string() };
            app.push(Step::Push { repo: "app", tag: tag.clone(), image });
            let mut later = Vec::new();
            if rng.chance(75) {
                later.push(Step::Scan { repo: "app", image, critical: u64::from(rng.chance(30)) });
                if rng.chance(25) {
                    later.push(Step::Scan { repo: "app", image, critical: u64::from(rng.chance(50)) });
                }
            }
            if rng.chance(45) {
                let signature = w.signature(seed, image, rng.chance(50));
                later.push(Step::Sign { repo: "app", subject: image, signature });
            }
            if rng.chance(15) {
                let sbom = w.sbom(seed, image);
                later.push(Step::Push { repo: "app", tag: format!("sbom-{n}"), image: sbom });
            }
            if rng.chance(12) {
                // A rebuild pushed under the same tag.
                let again = w.image(seed, 100 + n);
                later.push(Step::Push { repo: "app", tag, image: again });
                if rng.chance(60) {
                    later.push(Step::Scan { repo: "app", image: again, critical: 0 });
                }
            }
            let archived = rng.chance(8);
            if archived {
                later.push(Step::Archive { repo: "app", image });
            }
            // Scans, signatures and rebuilds come after their push, in any order among themselves.
            rng.shuffle(&mut later);
            if archived && rng.chance(40) {
                later.push(Step::Restore { repo: "app", image });
            }
            app.extend(later);
        }
        let mut others: Vec<Step> = Vec::new();
        for (n, repo) in [(200, "web"), (201, "web"), (202, "web"), (300, "lab")] {
            let image = w.image(seed, n);
            let v = Version::new(1, rng.below(3), n as u64 % 10);
            others.push(Step::Push { repo, tag: v.to_string(), image });
        }
        for _ in 0..rng.below(3) {
            others.push(Step::Sweep { fan_out: rng.chance(50) });
        }
        // Interleave the two lists at random, each in its own order. A third of the worlds are a burst
        // (a pipeline pushing a release train at once): PutImage's quota throttles, retries meet
        // writes decided since.
        let (mut a, mut b) = (app.into_iter().peekable(), others.into_iter().peekable());
        let mut at = Duration::ZERO;
        let spacing = if rng.chance(33) { 150 } else { 2_500 };
        while a.peek().is_some() || b.peek().is_some() {
            let step = match (a.peek().is_some(), b.peek().is_some()) {
                (true, true) if rng.chance(70) => a.next(),
                (true, false) => a.next(),
                _ => b.next(),
            };
            at += Duration::from_millis(rng.below(spacing));
            if let Some(step) = step {
                w.steps.push((at, step));
            }
        }
        w
    }

    /// The model's repositories before anything is pushed: web opted in, with `release-*`
    /// immutable (every other tag there an exclusion).
    pub fn set_up(memory: &Memory) {
        for name in REPOSITORIES {
            memory.add_repository(name);
        }
        memory.set_resource_tags("web", &[("retag", "on")]);
        let mutability = ecr_retag::domain::mutability::TagMutability {
            mode: ecr_retag::domain::mutability::Mode::ImmutableWithExclusion,
            filters: ["v*", "1*", "2*"].iter().filter_map(|f| ecr_retag::domain::mutability::Filter::parse(f).ok()).collect(),
        };
        memory.set_mutability("web", mutability);
    }

    /// Carries out `step` on the model and returns the events ECR emits for it.
    pub fn apply(&self, memory: &Memory, step: &Step, at: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        match step {
            Step::Push { repo, tag, image } => {
                let img = &self.images[*image];
                let mut events = Vec::new();
                if img.kind == Kind::Index {
                    for child in &self.images[image - 2..*image] {
                        memory.add_image(repo, child.image(), Some(at));
                        events.push(push_event(repo, child, None, at));
                    }
                }
                memory.add_image(repo, img.image(), Some(at));
                memory.point(repo, &tag_of(tag), &img.digest);
                events.push(push_event(repo, img, Some(tag), at));
                events
            }
            Step::Scan { repo, image, critical } => {
                let img = &self.images[*image];
                let counts = [("CRITICAL".to_owned(), *critical), ("MEDIUM".to_owned(), 2)].into_iter().collect();
                memory.set_scan(repo, &img.digest, Scanned::Done(Findings { counts, unsplit: None }));
                let tags: Vec<String> = memory.tags(repo).into_iter().filter(|(_, d)| *d == img.digest).map(|(t, _)| t.to_string()).collect();
                vec![scan_event(repo, img, &tags, *critical, at)]
            }
            Step::Sign { repo, subject, signature } => {
                let sig = &self.images[*signature];
                memory.add_image(repo, sig.image(), Some(at));
                match sig.kind {
                    Kind::Cosign => {
                        let tag = format!("{}.sig", self.images[*subject].digest.as_str().replacen(':', "-", 1));
                        memory.point(repo, &tag_of(&tag), &sig.digest);
                        vec![push_event(repo, sig, Some(&tag), at)]
                    }
                    _ => vec![push_event(repo, sig, None, at)],
                }
            }
            Step::Archive { repo, image } => {
                memory.archive(repo, &self.images[*image].digest);
                Vec::new()
            }
            Step::Restore { repo, image } => {
                memory.restored(repo, &self.images[*image].digest);
                Vec::new()
            }
            Step::Sweep { fan_out } => vec![format!(r#"{{"reconcile": {{"repositories": ["app", "web", "lab"], "fan_out": {fan_out}}}}}"#)],
        }
    }
}

pub fn tag_of(text: &str) -> Tag {
    Tag::parse(text).unwrap_or_else(|e| panic!("a generated tag {text:?}: {e}"))
}

fn push_event(repo: &str, img: &Img, tag: Option<&str>, at: chrono::DateTime<chrono::Utc>) -> String {
    let mut detail = serde_json::json!({
        "result": "SUCCESS", "repository-name": repo, "image-digest": img.digest.as_str(), "action-type": "PUSH",
        "manifest-media-type": img.media_type,
    });
    if let Some(tag) = tag {
        detail["image-tag"] = tag.into();
    }
    match img.kind {
        Kind::Notation => detail["artifact-media-type"] = "application/vnd.cncf.notary.signature".into(),
        Kind::Sbom => detail["artifact-media-type"] = "application/spdx+json".into(),
        _ => {}
    }
    envelope("ECR Image Action", detail, at)
}

fn scan_event(repo: &str, img: &Img, tags: &[String], critical: u64, at: chrono::DateTime<chrono::Utc>) -> String {
    let mut counts = serde_json::json!({"MEDIUM": 2});
    if critical > 0 {
        counts["CRITICAL"] = critical.into();
    }
    let detail = serde_json::json!({
        "scan-status": "COMPLETE", "repository-name": repo, "finding-severity-counts": counts,
        "image-digest": img.digest.as_str(), "image-tags": tags,
    });
    envelope("ECR Image Scan", detail, at)
}

fn envelope(kind: &str, detail: serde_json::Value, at: chrono::DateTime<chrono::Utc>) -> String {
    serde_json::json!({
        "version": "0", "id": crate::rng::sha256(detail.to_string().as_bytes())[7..43].to_owned(), "detail-type": kind, "source": "aws.ecr",
        "account": "123456789012", "time": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "region": "eu-west-1",
        "resources": [], "detail": detail,
    })
    .to_string()
}
