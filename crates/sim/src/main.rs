//! `simulate`: the real handler against a model of ECR and of AWS's delivery, one seeded world
//! at a time, on a paused clock; eleven invariants judged on every run (docs/testing.md).
//!
//! `simulate [--seeds N] [--seed S] [--deliveries D] [--threads T]` prints
//! `simulation: D deliveries, N seeds, T s, V invariant violations` and exits 1 on a violation,
//! after the seed, its shortest breaking history found by dropping steps, and what broke.
//! The same seed replays the same run.

mod check;
mod records;
mod rng;
mod run;
mod world;

use std::process::ExitCode;
use std::time::Instant;

use check::Violation;
use world::Workload;

const USAGE: &str = "usage: simulate [--seeds N] [--seed S] [--deliveries D] [--threads T]

Runs the deterministic simulation: seeds 1, 2, … until N seeds or D deliveries (default:
100000 deliveries), or the one seed S. Exit 0: no invariant broken; 1: one was (the seed and
its shortest history are printed); 2: a usage mistake.";

struct Options {
    seeds: Option<u64>,
    seed: Option<u64>,
    deliveries: usize,
    threads: usize,
}

fn options() -> Result<Options, String> {
    let mut o = Options { seeds: None, seed: None, deliveries: 100_000, threads: 2 };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = value.parse::<u64>().map_err(|_| format!("{flag}: {value:?} is not a number"))?;
        match flag.as_str() {
            "--seeds" => o.seeds = Some(number),
            "--seed" => o.seed = Some(number),
            "--deliveries" => o.deliveries = number as usize,
            "--threads" => o.threads = (number as usize).max(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

/// One seed's run on a fresh single-threaded runtime whose clock is paused.
fn simulate(seed: u64, workload: &Workload) -> (usize, Vec<Violation>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build();
    let Ok(runtime) = runtime else { return (0, vec![Violation { invariant: 9, detail: "no runtime".into() }]) };
    let local = tokio::task::LocalSet::new();
    let run = local.block_on(&runtime, run::run(seed, workload));
    (run.deliveries, check::check(workload, &run))
}

/// The smallest workload (steps dropped one at a time) that still breaks an invariant of `first`'s.
fn shrink(seed: u64, workload: Workload, first: u8) -> (Workload, Vec<Violation>) {
    let mut best = workload;
    let mut violations = simulate(seed, &best).1;
    let mut i = best.steps.len();
    while i > 0 {
        i -= 1;
        let mut fewer = Workload { images: best.images.clone(), steps: best.steps.clone() };
        fewer.steps.remove(i);
        let found = simulate(seed, &fewer).1;
        if found.iter().any(|v| v.invariant == first) {
            best = fewer;
            violations = found;
        }
    }
    (best, violations)
}

fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("simulate: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // A panic in the handler is a finding (invariant 9), reported with its seed, not as noise.
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let seeds: Vec<u64> = match o.seed {
        Some(s) => vec![s],
        // Without --seeds, as many as the delivery budget takes.
        None => (1..=o.seeds.unwrap_or(1_000_000)).collect(),
    };
    let budget = if o.seeds.is_some() || o.seed.is_some() { usize::MAX } else { o.deliveries };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let delivered = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let ran = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..o.threads {
            scope.spawn(|| loop {
                use std::sync::atomic::Ordering::SeqCst;
                let i = next.fetch_add(1, SeqCst);
                if i >= seeds.len() || delivered.load(SeqCst) >= budget || !failures.lock().map_or(true, |f| f.is_empty()) {
                    return;
                }
                let seed = seeds[i];
                let workload = Workload::generate(seed);
                let (n, violations) = simulate(seed, &workload);
                delivered.fetch_add(n, SeqCst);
                ran.fetch_add(1, SeqCst);
                if !violations.is_empty() {
                    if let Ok(mut f) = failures.lock() {
                        f.push((seed, workload, violations));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_default();
    let count: usize = failures.iter().map(|(_, _, v)| v.len()).sum();
    println!(
        "simulation: {} deliveries, {} seeds, {:.1} s, {count} invariant violations",
        delivered.into_inner(),
        ran.into_inner(),
        started.elapsed().as_secs_f64()
    );
    let Some((seed, workload, violations)) = failures.into_iter().min_by_key(|(s, _, _)| *s) else { return ExitCode::SUCCESS };
    let steps = workload.steps.len();
    let (shortest, found) = shrink(seed, workload, violations[0].invariant);
    eprintln!("seed {seed} breaks invariant {} (replay: scripts/simulate --seed {seed}); its shortest history, {} of {steps} steps:", violations[0].invariant, shortest.steps.len());
    for (at, step) in &shortest.steps {
        eprintln!("  {:>7.3} s  {}", at.as_secs_f64(), describe(&shortest, step));
    }
    for v in found.iter().take(10) {
        eprintln!("invariant {}: {}", v.invariant, v.detail);
    }
    ExitCode::FAILURE
}

fn describe(w: &Workload, step: &world::Step) -> String {
    use world::Step::*;
    let short = |i: usize| format!("#{i} {}", &w.images[i].digest.as_str()[7..19]);
    match step {
        Push { repo, tag, image } => format!("push {repo}:{tag} = {} ({:?})", short(*image), w.images[*image].kind),
        Scan { repo, image, critical } => format!("scan {repo} {} -> {critical} critical", short(*image)),
        Sign { repo, subject, signature } => format!("sign {repo} {} with {} ({:?})", short(*subject), short(*signature), w.images[*signature].kind),
        Archive { repo, image } => format!("archive {repo} {}", short(*image)),
        Restore { repo, image } => format!("restore {repo} {}", short(*image)),
        Sweep { fan_out: false } => "sweep".to_owned(),
        Sweep { fan_out: true } => "sweep, fanned out".to_owned(),
    }
}
