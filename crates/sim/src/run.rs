//! One seed's run: the world's steps on the model of ECR, their events delivered the way AWS
//! delivers them (EventBridge to Lambda asynchronously, at least once, late, retried twice on an
//! error; or through SQS in batches, failed messages back after the visibility timeout, to the
//! dead-letter queue after three receives), on as many instances as are busy at once, each the
//! real handler. Then quiescence, one sweep, and every event delivered once more.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ecr_retag::config::Config;
use ecr_retag::domain::rules::RuleSet;
use ecr_retag::error::RetagError;
use ecr_retag::lambda::{Answer, Handler};
use ecr_retag::registry::memory::{Call, Memory, Mishap, Turn, Weather, Written};
use tokio::time::Instant;

use crate::rng::mix;
use crate::world::{Workload, RULES};

/// Lambda's timeout for the function, as the template sets it.
const TIMEOUT: Duration = Duration::from_secs(30);
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_RECEIVES: u32 = 3;
/// The virtual date the world starts on.
const EPOCH: u64 = 1_767_225_600;

/// One invocation of the handler, as it ended.
pub struct Invocation {
    pub client: usize,
    pub start: Instant,
    pub end: Instant,
    /// The events it carried (a sweep carries its own).
    pub events: Vec<usize>,
    /// `None`: the handler panicked.
    pub answer: Option<Result<Answer, RetagError>>,
}

/// What a run leaves for the invariants to judge.
pub struct Run {
    pub deliveries: usize,
    pub events: Vec<String>,
    /// Whether each event was answered without an error at least once.
    pub handled: Vec<bool>,
    pub invocations: Vec<Invocation>,
    pub written: Vec<Written>,
    /// Where every tag pointed at quiescence, before the final sweep.
    pub quiescent: BTreeMap<String, BTreeMap<String, String>>,
    /// The same after the final sweep.
    pub swept: BTreeMap<String, BTreeMap<String, String>>,
    /// (repository, digest) of every workload manifest prod/app holds after the sweep.
    pub swept_holds: std::collections::BTreeSet<(String, String)>,
    /// When each of the workload's steps was carried out.
    pub steps_at: Vec<Instant>,
    pub steps: Vec<crate::world::Step>,
    /// Tagged writes that landed when every event was delivered again after the sweep.
    pub redelivered_writes: Vec<Written>,
    /// Where every tag pointed at the end, after that redelivery.
    pub end: BTreeMap<String, BTreeMap<String, String>>,
    /// The promotion records attached to the workload's images at the end.
    pub records: Vec<crate::records::Seen>,
}

/// The network and ECR, per call: a latency, and a mishap now and then; the same for the
/// same call of the same client, whatever order the calls come in.
struct Storm {
    seed: u64,
    calm: AtomicBool,
    seen: Mutex<HashMap<String, u64>>,
}

impl Weather for Storm {
    fn turn(&self, call: &Call, client: usize) -> Turn {
        let key = format!("{client} {call:?}");
        let nth = {
            let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = seen.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let roll = mix(self.seed, &format!("{key} {nth}"));
        // Mostly 0.5–40 ms; one call in a hundred is slow (0.3–1.5 s), as a network's tail is.
        let slow = (roll >> 20) % 100 == 0;
        let latency = if slow { Duration::from_millis(300 + (roll >> 8) % 1_200) } else { Duration::from_micros(500 + roll % 40_000) };
        if self.calm.load(Ordering::Relaxed) {
            return Turn { latency, mishap: None };
        }
        let dice = (roll >> 32) % 1000;
        let mishap = match call {
            Call::Put { .. } => match dice {
                0..40 => Some(Mishap::Throttled),
                40..70 => Some(Mishap::AnswerLost),
                70..100 => Some(Mishap::LandsLate(Duration::from_millis((roll >> 16) % 1_000))),
                100..110 => Some(Mishap::Timeout),
                _ => None,
            },
            _ => match dice {
                0..20 => Some(Mishap::Throttled),
                20..30 => Some(Mishap::Timeout),
                _ => None,
            },
        };
        Turn { latency, mishap }
    }
}

struct Sim {
    memory: Memory,
    /// The event queue a fanned-out sweep sends its messages to; the pollers deliver them.
    fanned: Arc<ecr_retag::queue::Memory>,
    config: Config,
    started: Instant,
    /// The instances: client id, handler, invocations under way.
    pool: Vec<(usize, Rc<Handler<Memory>>, usize)>,
    /// Invocations one instance takes at once: 1 on classic Lambda; more on Lambda Managed
    /// Instances (`AWS_LAMBDA_MAX_CONCURRENCY`), sharing the handler and its caches.
    per_instance: usize,
    instances: usize,
    invocations: Vec<Invocation>,
    handled: Vec<bool>,
    deliveries: usize,
    /// SQS messages: when each is visible again, its event, its receives so far.
    queue: Vec<(Instant, usize, u32)>,
    events: Vec<String>,
}

type Shared = Rc<RefCell<Sim>>;

fn now_at(sim: &Shared) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH) + sim.borrow().started.elapsed()
}

/// One invocation on an idle instance (or a new one), recorded.
async fn invoke(sim: &Shared, payload: String, events: Vec<usize>) -> Option<Result<Answer, RetagError>> {
    let (client, handler) = {
        let mut s = sim.borrow_mut();
        s.deliveries += events.len().max(1);
        let per_instance = s.per_instance;
        match s.pool.iter_mut().find(|(_, _, busy)| *busy < per_instance) {
            Some((client, handler, busy)) => {
                *busy += 1;
                (*client, handler.clone())
            }
            None => {
                s.instances += 1;
                let client = s.instances;
                let handler = Handler::new(s.memory.client(client), s.config.clone()).with_queue(s.fanned.clone());
                let handler = Rc::new(handler.with_signer(Arc::new(crate::records::SimKey)));
                s.pool.push((client, handler.clone(), 1));
                (client, handler)
            }
        }
    };
    let now = now_at(sim);
    let start = Instant::now();
    let task = {
        let handler = handler.clone();
        tokio::task::spawn_local(async move { handler.invoke_at(&payload, now + TIMEOUT, now).await })
    };
    let answer = task.await.ok();
    if std::env::var_os("SIMULATE_DEBUG").is_some() {
        let shown = match &answer {
            Some(Ok(a)) => serde_json::to_string(a).unwrap_or_default(),
            Some(Err(e)) => format!("error: {e}"),
            None => "panicked".to_owned(),
        };
        eprintln!("[{:?}] client {client} events {events:?}: {shown}", start.duration_since(sim.borrow().started));
    }
    let mut s = sim.borrow_mut();
    if let Some((_, _, busy)) = s.pool.iter_mut().find(|(c, _, _)| *c == client) {
        *busy -= 1;
    }
    s.invocations.push(Invocation { client, start, end: Instant::now(), events, answer: answer.clone() });
    answer
}

/// EventBridge to Lambda, asynchronously: an error is retried after a minute, then two.
async fn deliver_async(sim: Shared, event: usize, after: Duration) {
    tokio::time::sleep(after).await;
    for retry in [Duration::from_secs(60), Duration::from_secs(120), Duration::ZERO] {
        let payload = sim.borrow().events[event].clone();
        match invoke(&sim, payload, vec![event]).await {
            Some(Ok(_)) => {
                sim.borrow_mut().handled[event] = true;
                return;
            }
            _ if retry.is_zero() => return,
            _ => tokio::time::sleep(retry).await,
        }
    }
}

/// Lambda's SQS poller: up to ten visible messages a batch; the failed ones come back.
async fn poll(sim: Shared, world_done: Rc<RefCell<bool>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = Instant::now();
        let batch: Vec<(usize, u32)> = {
            let mut s = sim.borrow_mut();
            for body in s.fanned.take() {
                s.events.push(body);
                s.handled.push(false);
                let event = s.events.len() - 1;
                s.queue.push((now, event, 0));
            }
            if *world_done.borrow() && s.queue.is_empty() {
                return;
            }
            let mut taken = Vec::new();
            s.queue.retain(|(visible, event, receives)| {
                if *visible <= now && taken.len() < 10 {
                    taken.push((*event, *receives + 1));
                    false
                } else {
                    true
                }
            });
            taken
        };
        if batch.is_empty() {
            continue;
        }
        let messages: Vec<serde_json::Value> = {
            let s = sim.borrow();
            batch
                .iter()
                .enumerate()
                .map(|(i, (event, _))| serde_json::json!({"messageId": format!("m{i}"), "receiptHandle": "r", "body": s.events[*event], "eventSource": "aws:sqs", "awsRegion": "eu-west-1"}))
                .collect()
        };
        let payload = serde_json::json!({ "Records": messages }).to_string();
        let answer = invoke(&sim, payload, batch.iter().map(|(e, _)| *e).collect()).await;
        let failed: Vec<String> = match &answer {
            Some(Ok(Answer::Batch(b))) => b.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect(),
            _ => (0..batch.len()).map(|i| format!("m{i}")).collect(),
        };
        let mut s = sim.borrow_mut();
        for (i, (event, receives)) in batch.into_iter().enumerate() {
            if !failed.contains(&format!("m{i}")) {
                s.handled[event] = true;
            } else if receives < MAX_RECEIVES {
                s.queue.push((Instant::now() + VISIBILITY_TIMEOUT, event, receives));
            }
        }
    }
}

fn snapshot(memory: &Memory) -> BTreeMap<String, BTreeMap<String, String>> {
    crate::world::REPOSITORIES
        .iter()
        .map(|r| ((*r).to_owned(), memory.tags(r).into_iter().map(|(t, d)| (t.to_string(), d.to_string())).collect()))
        .collect()
}

/// Runs `workload` under `seed`'s weather and delivery, to quiescence and beyond.
pub async fn run(seed: u64, workload: &Workload) -> Run {
    ecr_retag::apply::if_newer::seed_jitter(seed);
    let memory = Memory::default();
    Workload::set_up(&memory);
    let storm = Arc::new(Storm { seed, calm: AtomicBool::new(false), seen: Mutex::default() });
    memory.set_weather(storm.clone());
    memory.set_put_quota(10);
    let rules = RuleSet::from_json(RULES).unwrap_or_else(|e| panic!("the simulation's rules: {e}"));
    let sim: Shared = Rc::new(RefCell::new(Sim {
        memory: memory.clone(),
        fanned: Arc::default(),
        config: Config::with_rules(rules),
        started: Instant::now(),
        pool: Vec::new(),
        // A third of the worlds run on Lambda Managed Instances, four invocations per process.
        per_instance: if mix(seed, "managed instances") % 3 == 0 { 4 } else { 1 },
        instances: 0,
        invocations: Vec::new(),
        handled: Vec::new(),
        deliveries: 0,
        queue: Vec::new(),
        events: Vec::new(),
    }));
    let world_done = Rc::new(RefCell::new(false));
    let pollers: Vec<_> = (0..2).map(|_| tokio::task::spawn_local(poll(sim.clone(), world_done.clone()))).collect();
    let mut deliveries = Vec::new();
    let start = Instant::now();
    let mut steps_at = Vec::with_capacity(workload.steps.len());
    for (at, step) in &workload.steps {
        tokio::time::sleep_until(start + *at).await;
        steps_at.push(Instant::now());
        let when = chrono::DateTime::<chrono::Utc>::from(now_at(&sim));
        for payload in workload.apply(&memory, step, when) {
            let event = {
                let mut s = sim.borrow_mut();
                s.events.push(payload);
                s.handled.push(false);
                s.events.len() - 1
            };
            let roll = mix(seed, &format!("delivery {event}"));
            let copies = 1 + u64::from(roll % 100 < 25) + u64::from(roll % 100 < 5);
            let sweep = sim.borrow().events[event].starts_with("{\"reconcile\"");
            for copy in 0..copies {
                let roll = mix(seed, &format!("delivery {event} {copy}"));
                let late = roll % 10 == 0;
                let delay = Duration::from_millis(if late { 5_000 + (roll >> 8) % 60_000 } else { 10 + (roll >> 8) % 3_000 });
                if sweep || (roll >> 40) % 100 < 60 {
                    deliveries.push(tokio::task::spawn_local(deliver_async(sim.clone(), event, delay)));
                } else {
                    sim.borrow_mut().queue.push((Instant::now() + delay, event, 0));
                }
            }
        }
    }
    *world_done.borrow_mut() = true;
    for d in deliveries.into_iter().chain(pollers) {
        let _ = d.await;
    }
    // Quiescence: every write still on its way lands.
    tokio::time::sleep(Duration::from_secs(5)).await;
    memory.land_late();
    let quiescent = snapshot(&memory);

    storm.calm.store(true, Ordering::Relaxed);
    let sweep = r#"{"reconcile": {"repositories": ["app", "web", "lab"]}}"#.to_owned();
    let _ = invoke(&sim, sweep, Vec::new()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let swept = snapshot(&memory);
    let swept_holds = workload
        .images
        .iter()
        .filter(|img| memory.holds("prod/app", &img.digest))
        .map(|img| ("prod/app".to_owned(), img.digest.to_string()))
        .collect();
    let written = memory.take_written();

    let events = sim.borrow().events.clone();
    for (n, payload) in events.iter().enumerate().filter(|(_, p)| !p.starts_with("{\"reconcile\"")) {
        let _ = invoke(&sim, payload.clone(), vec![n]).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let redelivered_writes = memory.take_written().into_iter().filter(|w| w.answer.is_ok()).collect();
    let end = snapshot(&memory);
    let digests: Vec<String> = workload.images.iter().map(|img| img.digest.to_string()).collect();
    let records = crate::records::collect(&memory, &crate::world::REPOSITORIES, &digests).await;

    let s = Rc::try_unwrap(sim).map(RefCell::into_inner).unwrap_or_else(|_| panic!("a task still holds the simulation"));
    Run { deliveries: s.deliveries, events, handled: s.handled, invocations: s.invocations, written, quiescent, swept, swept_holds, steps_at, steps: workload.steps.iter().map(|(_, s)| s.clone()).collect(), redelivered_writes, end, records }
}

impl Run {
    /// When the last step `kind` accepts happened to `image` (a scan, an archive) by `by`, if one did.
    pub fn last_change(&self, image: usize, by: Instant, kind: impl Fn(&crate::world::Step) -> bool) -> Option<Instant> {
        use crate::world::Step;
        self.steps
            .iter()
            .zip(&self.steps_at)
            .filter(|(s, at)| {
                **at <= by && kind(s) && matches!(s, Step::Scan { image: i, .. } | Step::Archive { image: i, .. } | Step::Restore { image: i, .. } if *i == image)
            })
            .map(|(_, at)| *at)
            .last()
    }
    /// Whether the tag `image` was pushed as had been pushed onto another image by `by`.
    pub fn rebuilt_by(&self, image: usize, by: Instant) -> bool {
        use crate::world::Step;
        let Some(tag) = self.steps.iter().find_map(|s| match s {
            Step::Push { tag, image: i, .. } if *i == image => Some(tag),
            _ => None,
        }) else {
            return false;
        };
        self.steps.iter().zip(&self.steps_at).any(|(s, at)| *at <= by && matches!(s, Step::Push { tag: t, image: i, .. } if t == tag && *i != image))
    }
    /// When `image` was archived, if it was still archived at `at` (not restored since).
    pub fn archived_at(&self, image: usize, at: Instant) -> Option<Instant> {
        use crate::world::Step;
        let last = self.last_change(image, at, |s| matches!(s, Step::Archive { .. } | Step::Restore { .. }))?;
        let archive = self.steps.iter().zip(&self.steps_at).any(|(s, t)| *t == last && matches!(s, Step::Archive { image: i, .. } if *i == image));
        archive.then_some(last)
    }
    /// Whether `image` was archived at any moment from `from` to `to`.
    pub fn archived_within(&self, image: usize, from: Instant, to: Instant) -> bool {
        use crate::world::Step;
        self.archived_at(image, from).is_some()
            || self.steps.iter().zip(&self.steps_at).any(|(s, t)| *t > from && *t <= to && matches!(s, Step::Archive { image: i, .. } if *i == image))
    }
}
