//! Validated names: the digest, tag, repository and registry id of an image.
//!
//! Everything that arrives from outside (events, direct requests, ECR answers,
//! rendered templates) passes through one of these constructors, so the rest
//! of the crate can rely on the value being well formed.

use std::fmt;

/// ECR's quota of tags per image (not adjustable).
pub const MAX_TAGS_PER_IMAGE: usize = 1000;

/// A name that did not have the form ECR requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {value:?}")]
pub struct InvalidName {
    pub expected: &'static str,
    pub value: String,
}

fn invalid(expected: &'static str, value: &str) -> InvalidName {
    // Bound what we echo back: a huge field should not become a huge error message.
    let value = if value.len() > 300 {
        let mut end = 300;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &value[..end])
    } else {
        value.to_owned()
    };
    InvalidName { expected, value }
}

/// An image digest, `sha256:` followed by 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    const EXPECTED: &'static str = "\"sha256:\" followed by 64 lowercase hex digits";

    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let ok = s
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid(Self::EXPECTED, s))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

/// An image tag as Docker and OCI references allow it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub const MAX_LEN: usize = 128;
    const EXPECTED: &'static str =
        "a tag of 1 to 128 characters from [A-Za-z0-9_.-], not starting with '.' or '-'";

    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let bytes = s.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
            && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid(Self::EXPECTED, s))
        }
    }

    /// Turns a rendered template into a tag the way docker/metadata-action does:
    /// every character outside `[A-Za-z0-9_.-]` becomes `-`, then the result must be a valid tag.
    pub fn sanitize(rendered: &str) -> Result<Self, InvalidName> {
        let cleaned: String = rendered
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' })
            .collect();
        Self::parse(&cleaned)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ECR repository name: lowercase path segments, 2 to 256 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    const EXPECTED: &'static str = "an ECR repository name: 2 to 256 characters, lowercase path segments \
         of [a-z0-9] joined by '.', '_', '__' or '-' and separated by '/'";

    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        if (2..=256).contains(&s.len()) && s.split('/').all(valid_segment) {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid(Self::EXPECTED, s))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_segment(segment: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = segment.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between alphanumeric runs: one '.', one or two '_', or any number of '-'.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &segment[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// An AWS account id as ECR uses it for a registry: 12 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryId(String);

impl RegistryId {
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid("a registry id of 12 digits", s))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    )*};
}
display_as_str!(Digest, Tag, RepositoryName, RegistryId);

/// A repository in a registry: what every read and write names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// `None`: the caller's own registry.
    pub registry_id: Option<RegistryId>,
    /// `None`: the function's own region.
    pub region: Option<String>,
    pub name: RepositoryName,
}

impl Repository {
    /// The named repository in the caller's own registry and region.
    pub fn own(name: RepositoryName) -> Repository {
        Repository { registry_id: None, region: None, name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_value_is_echoed_whole_up_to_300_bytes_and_cut_on_a_character_boundary_beyond() {
        let exact = "A".repeat(300);
        assert_eq!(Tag::parse(&exact).unwrap_err().value, exact, "300 bytes: whole");
        // `a` then three-byte characters: byte 300 falls inside one, so the cut goes back to 298.
        let long = format!("a{}", "€".repeat(200));
        let echoed = Tag::parse(&long).unwrap_err().value;
        assert_eq!(echoed, format!("{}…", &long[..298]));
    }

    #[test]
    fn names_read_back_as_given() {
        let digest = format!("sha256:{HEX}");
        assert_eq!(Digest::parse(&digest).unwrap().as_str(), digest);
        assert_eq!(RegistryId::parse("123456789012").unwrap().as_str(), "123456789012");
    }

    #[test]
    fn repository_segments_allow_a_dot_one_or_two_underscores_or_dashes_between_alphanumerics_and_nothing_at_the_ends() {
        for good in ["a-b", "a--b", "a.b", "a_b", "a__b", "a1-b2.c3"] {
            assert!(RepositoryName::parse(good).is_ok(), "{good}");
        }
        for bad in ["a-", "a.", "a_", "a..b", "a___b", "a._b", "-a", "a-_b"] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad}");
        }
    }

    const HEX: &str = "16eb06ced985216bb14744c43dad833c58f56296d152e580542d0e8630f63316";

    #[test]
    fn digest_accepts_only_lowercase_sha256() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(d.hex(), HEX);
        for bad in [
            HEX.to_owned(),
            format!("sha256:{}", HEX.to_uppercase()),
            format!("sha512:{HEX}"),
            format!("sha256:{}", &HEX[1..]),
            format!("sha256:{HEX}0"),
            format!("sha256:{}g", &HEX[1..]),
            String::new(),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn tag_follows_the_docker_reference_grammar() {
        for good in ["v1", "v1.4.2", "_x", "1", "main-abc1234", &"a".repeat(128)] {
            assert!(Tag::parse(good).is_ok(), "{good} should be accepted");
        }
        for bad in ["", ".v1", "-v1", "v1+b5", "v 1", "tag:x", "é", &"a".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn sanitize_replaces_forbidden_characters_then_validates() {
        assert_eq!(Tag::sanitize("1.4.2+b5").unwrap().as_str(), "1.4.2-b5");
        assert_eq!(Tag::sanitize("main/ünï").unwrap().as_str(), "main--n-", "one - per character, not per byte");
        assert_eq!(Tag::sanitize("a:b c").unwrap().as_str(), "a-b-c");
        assert!(Tag::sanitize("").is_err());
        assert!(Tag::sanitize("+x").is_err(), "becomes -x, which may not start a tag");
        assert!(Tag::sanitize(&"x".repeat(129)).is_err());
    }

    #[test]
    fn repository_names_follow_ecr() {
        for good in ["app", "team/api", "a.b_c__d---e/f0", "ab"] {
            assert!(RepositoryName::parse(good).is_ok(), "{good} should be accepted");
        }
        for bad in ["a", "App", "team//api", "/app", "app/", "a..b", "a___b", "a-", "a b", "a.-b"] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(RepositoryName::parse(&"a".repeat(257)).is_err());
    }

    #[test]
    fn registry_id_is_twelve_digits() {
        assert!(RegistryId::parse("123456789012").is_ok());
        for bad in ["12345678901", "1234567890123", "12345678901a", ""] {
            assert!(RegistryId::parse(bad).is_err());
        }
    }

    #[test]
    fn errors_echo_a_bounded_value() {
        let err = Tag::parse(&"é".repeat(1000)).unwrap_err();
        assert!(err.value.len() <= 304);
    }
}
