//! Any payload: the strict JSON reader, then the event parser. Neither may panic,
//! and an accepted push must carry well-formed names.
#![no_main]
use ecr_retag::event::{parse, parse_json, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(value) = parse_json(text) else { return };
    let now = chrono::DateTime::UNIX_EPOCH;
    if let Ok(Request::Retag(push)) = parse(&value, now) {
        assert!(ecr_retag::domain::names::Tag::parse(push.tag.as_str()).is_ok());
        assert!(ecr_retag::domain::names::RepositoryName::parse(push.repository.as_str()).is_ok());
        if let Some(d) = push.digest {
            assert_eq!(d.hex().len(), 64);
        }
    }
});
