//! Rule evaluation alone: a set of 100 rules (regex and semver, with repository
//! globs and templates of every kind) against one pushed tag. The rule set is
//! compiled once, as at INIT; what is measured is the per-event work: `derive`
//! (every rule matched, every template of the matching ones rendered), `plan`
//! (that, deduplicated, plus the loop-safety check of every derived tag).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test's panic is its failure

use criterion::{criterion_group, criterion_main, Criterion};
use ecr_retag_domain::names::{Digest, Tag};
use ecr_retag_domain::plan::{plan, Phase, Verdict};
use ecr_retag_domain::rules::{RuleSet, Subject};
use std::hint::black_box;

fn hundred_rules() -> String {
    let rules: Vec<String> = (0..100)
        .map(|i| match i % 4 {
            0 => format!(r#"{{"name":"semver-{i}","repositories":["team-{i}/*","app"],"semver":true,"tags":["stable-{i}","v{{major}}-{i}","v{{major}}.{{minor}}-{i}","{{date:%Y%m%d}}-{i}"]}}"#),
            1 => format!(r#"{{"name":"main-{i}","match":"main-(?<sha>[0-9a-f]{{7,40}})","tags":["edge-{i}","main-{{date:%Y%m%d-%H%M%S}}-{{sha}}-{i}"]}}"#),
            2 => format!(r#"{{"name":"feature-{i}","repositories":["**"],"match":"feature-(?<name>[a-z0-9-]+)-{i}","tags":["f-{{name}}-{{digest:12}}"]}}"#),
            _ => format!(r#"{{"name":"pre-{i}","repositories":["other-{i}"],"semver":true,"prerelease":true,"tags":["next-{i}","{{version}}-{i}"]}}"#),
        })
        .collect();
    format!(r#"{{"rules":[{}]}}"#, rules.join(","))
}

fn bench(c: &mut Criterion) {
    let rules = RuleSet::from_json(&hundred_rules()).expect("the benchmark's rule set is valid");
    let digest = Digest::parse("sha256:c1c735361890448e6985e2338a833ffda0c768242425d348604a4430517a3445").unwrap();
    let pushed_at = "2026-11-24T10:15:02Z".parse().unwrap();
    let (pushed, other) = (Tag::parse("v1.4.2").unwrap(), Tag::parse("latest").unwrap());
    let subject = Subject { repository: "app", tag: &pushed, digest: &digest, pushed_at, repository_tags: None, artifact: false };
    let planned = plan(&rules, &subject, Phase::PUSH);
    assert_eq!(planned.tags.iter().filter(|t| matches!(t.verdict, Verdict::Write(_))).count(), 100, "25 semver rules x 4 tags match v1.4.2 in app");

    c.bench_function("derive: 100 rules against one tag", |b| b.iter(|| rules.derive(black_box(&subject))));
    c.bench_function("plan: 100 rules against one tag (100 tags derived, loop-checked)", |b| {
        b.iter(|| plan(black_box(&rules), black_box(&subject), Phase::PUSH))
    });
    let miss = Subject { tag: &other, ..subject };
    c.bench_function("any_match: 100 rules, no rule matches", |b| {
        b.iter(|| rules.any_match(black_box(miss.repository), black_box(miss.tag.as_str())))
    });
    c.bench_function("load: parse and compile 100 rules (INIT)", |b| {
        let text = hundred_rules();
        b.iter(|| RuleSet::from_json(black_box(&text)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
