//! A rule set and a pushed tag: `TAG\nUNIX-SECONDS\nRULES-JSON`. Loading, rendering
//! and planning may not panic, and every tag planned for writing is a valid tag,
//! never the pushed one.
#![no_main]
use ecr_retag_domain::names::{Digest, Tag};
use ecr_retag_domain::plan::{plan, Phase, Verdict};
use ecr_retag_domain::rules::{RuleSet, Subject};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\n');
    let (Some(tag), Some(secs), Some(rules)) = (parts.next(), parts.next(), parts.next()) else { return };
    let Ok(rules) = RuleSet::from_json(rules) else { return };
    let Some(pushed_at) = secs.trim().parse::<i64>().ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0)) else {
        return;
    };
    let Ok(pushed) = Tag::parse(tag) else { return };
    let digest = Digest::parse("sha256:c1c735361890448e6985e2338a833ffda0c768242425d348604a4430517a3445").unwrap();
    for repository in ["app", "team/api", "a/b/c"] {
        for artifact in [false, true] {
            let subject = Subject { repository, tag: &pushed, digest: &digest, pushed_at, repository_tags: None, artifact };
            for planned in plan(&rules, &subject, Phase::PUSH).tags {
                if let Verdict::Write(t) = planned.verdict {
                    assert!(Tag::parse(t.as_str()).is_ok(), "{t:?}");
                    assert_ne!(t.as_str(), tag);
                }
            }
        }
    }
});
