//! A direct request, for manual use: `{"repository": "app", "tag": "v1.4.2"}`,
//! with an optional `digest`, `registry_id` and `dry_run`.

use chrono::{DateTime, Utc};

use crate::domain::names::{Digest, RegistryId, Repository, RepositoryName, Tag};
use crate::domain::request::{Push, Request};
use crate::input::fields::Fields;
use crate::input::InputError;

const FIELDS: &[&str] = &["repository", "tag", "digest", "registry_id", "dry_run"];

/// Whether `object` is meant as a direct request.
pub(crate) fn looks_like(object: &Fields<'_>) -> bool {
    FIELDS.iter().any(|k| object.has(k))
}

/// `now` is the push time.
pub(crate) fn parse(object: &Fields<'_>, now: DateTime<Utc>) -> Result<Request, InputError> {
    object.only(FIELDS, "a direct request")?;
    let name = object.name("repository", RepositoryName::parse)?;
    let tag = object.name("tag", Tag::parse)?;
    let digest = object.optional_name("digest", Digest::parse)?;
    let registry_id = object.optional_name("registry_id", RegistryId::parse)?;
    let dry_run = object.flag("dry_run")?;
    Ok(Request::Retag(Push::direct(Repository { registry_id, region: None, name }, tag, digest, now, dry_run)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::testing::{event_of, field_of, now, DIGEST};
    use serde_json::json;

    #[test]
    fn a_direct_request_uses_the_invocation_time() {
        let req = json!({"repository": "app", "tag": "v1.4.2", "digest": DIGEST, "registry_id": "123456789012", "dry_run": true});
        let Request::Retag(push) = event_of(&req, now()).unwrap() else { panic!() };
        assert_eq!(push.pushed_at, now());
        assert_eq!(push.digest.unwrap().as_str(), DIGEST);
        assert!(push.dry_run);
        assert_eq!(push.repository.region, None);

        let Request::Retag(push) = event_of(&json!({"repository": "app", "tag": "v1"}), now()).unwrap() else { panic!() };
        assert_eq!(push.digest, None, "without a digest the tag's current one is used");
        assert_eq!(push.repository.registry_id, None);
        assert!(!push.dry_run);
    }

    #[test]
    fn direct_requests_reject_typos_and_bad_values() {
        assert_eq!(field_of(&json!({"repository": "app", "tag": "v1", "dryrun": true})), "dryrun");
        assert_eq!(field_of(&json!({"repository": "app"})), "tag");
        assert_eq!(field_of(&json!({"tag": "v1"})), "repository");
        assert_eq!(field_of(&json!({"repository": "app", "tag": "v1", "dry_run": "yes"})), "dry_run");
        assert_eq!(field_of(&json!({"repository": "app", "tag": "v1", "digest": "latest"})), "digest");
        assert_eq!(field_of(&json!({"repository": "app", "tag": "v1", "registry_id": 123})), "registry_id");
    }
}
