//! Any payload through the input reader (strict JSON, then the shape and its
//! fields). It may not panic, and an accepted push must carry well-formed names.
#![no_main]
use ecr_retag::domain::request::Request;
use ecr_retag::input::{parse, Invocation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let now = chrono::DateTime::UNIX_EPOCH;
    if let Ok(Invocation::Event(Request::Retag(push))) = parse(text, now) {
        assert!(ecr_retag::domain::names::Tag::parse(push.tag.as_str()).is_ok());
        assert!(ecr_retag::domain::names::RepositoryName::parse(push.repository.name.as_str()).is_ok());
        if let Some(d) = push.digest {
            assert_eq!(d.hex().len(), 64);
        }
    }
});
