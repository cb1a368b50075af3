//! Tag templates such as `v{major}.{minor}` or `main-{date:%Y%m%d}`.
//!
//! A template is parsed and checked once, when the rule set is loaded, into
//! segments; rendering an event is then a walk over those segments with no
//! parsing and no allocation beyond the output string.

use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use regex::Regex;

/// What a template may refer to besides the built-in placeholders.
pub enum Scope<'a> {
    /// A `match` rule: captures of this (anchored) regex, by name or number.
    Regex(&'a Regex),
    /// A `semver` rule: `{version}`, `{major}`, `{minor}`, `{patch}`, `{prerelease}`.
    Semver,
}

/// What a rule matched on, for rendering.
pub enum Matched<'a> {
    Regex(regex::Captures<'a>),
    Semver(semver::Version),
}

/// The values a template is rendered with.
pub struct Vars<'a> {
    pub tag: &'a str,
    pub repository: &'a str,
    /// 64 hex digits, without `sha256:`.
    pub digest_hex: &'a str,
    pub pushed_at: DateTime<Utc>,
    pub matched: &'a Matched<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("is empty")]
    Empty,
    #[error("has an unclosed `{{` at byte {0}; write `{{{{` for a literal brace")]
    Unclosed(usize),
    #[error("has an unmatched `}}` at byte {0}; write `}}}}` for a literal brace")]
    Unmatched(usize),
    #[error("has an unknown placeholder `{{{name}}}`; known here: {known}")]
    Unknown { name: String, known: String },
    #[error("uses `{{{0}}}`, which exists only in rules with \"semver\": true")]
    SemverOnly(String),
    #[error("uses `{{digest:{0}}}`; N must be a number from 1 to 64")]
    DigestLength(String),
    #[error("uses `{{repository:{0}}}`; N must be a number of leading path segments to leave out, from 1 to 9")]
    RepositorySegments(String),
    #[error("uses `{{date}}` without a format; write e.g. `{{date:%Y%m%d}}`")]
    DateWithoutFormat,
    #[error("has an invalid strftime format in `{{date:{0}}}`")]
    DateFormat(String),
    #[error("can never render a valid tag: {0}")]
    NeverValid(String),
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Tag,
    Repository,
    /// `{repository:N}`: the name without its first N path segments (`dev/team/api`, N 1: `team/api`).
    RepositoryAfter(usize),
    Digest(usize),
    Date(Vec<Item<'static>>),
    Capture(usize),
    Version,
    Major,
    Minor,
    Patch,
    Prerelease,
}

/// A parsed tag template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

const BUILTIN: &[&str] = &["tag", "repository", "repository:N", "digest", "digest:N", "date:FORMAT"];
const SEMVER: &[&str] = &["version", "major", "minor", "patch", "prerelease"];

impl Template {
    pub fn parse(source: &str, scope: &Scope<'_>) -> Result<Self, TemplateError> {
        if source.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let brace = rest.as_bytes()[i];
            let after = &rest[i + 1..];
            if after.as_bytes().first() == Some(&brace) {
                literal.push(brace as char);
                offset += i + 2;
                rest = &after[1..];
                continue;
            }
            if brace == b'}' {
                return Err(TemplateError::Unmatched(offset + i));
            }
            let close = after.find('}').ok_or(TemplateError::Unclosed(offset + i))?;
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(placeholder(&after[..close], scope)?);
            offset += i + 1 + close + 1;
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        let template = Self { source: source.to_owned(), segments };
        template.check_can_be_valid()?;
        Ok(template)
    }

    /// The template as written in the rule set.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether a later push may derive this tag again for another image, so the tag
    /// moves (`stable`, `v{major}`, `v{major}.{minor}`, a date stamp): nothing in it
    /// names one push (the tag, a capture of it, the full version, the digest).
    pub fn moves(&self) -> bool {
        !self.segments.iter().any(|s| {
            matches!(s, Segment::Tag | Segment::Capture(_) | Segment::Version | Segment::Patch | Segment::Prerelease | Segment::Digest(_))
        })
    }

    /// The tags it renders, as an ECR wildcard filter: the fixed text, `*` for each placeholder.
    pub fn wildcard(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(s) => out.extend(s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })),
                _ if out.ends_with('*') => {}
                _ => out.push('*'),
            }
        }
        out
    }

    /// The repositories it renders (a `"to"` template), as a repository glob: the fixed text, `**`
    /// for each placeholder, since `{repository}` may render a `/`.
    pub fn repository_glob(&self) -> Result<super::Glob, super::glob::GlobError> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(s) => {
                    // Glob syntax is not a repository name's: a literal `*` or `?` is refused.
                    if let Some(c) = s.chars().find(|c| matches!(c, '*' | '?')) {
                        return Err(super::glob::GlobError::Character(c));
                    }
                    out.push_str(s);
                }
                _ if out.ends_with("**") => {}
                _ => out.push_str("**"),
            }
        }
        super::Glob::parse(&out)
    }

    /// Renders the template; the result still has to be sanitised into a tag.
    pub fn render(&self, vars: &Vars<'_>) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(32);
        for segment in &self.segments {
            match segment {
                Segment::Literal(s) => out.push_str(s),
                Segment::Tag => out.push_str(vars.tag),
                Segment::Repository => out.push_str(vars.repository),
                // Fewer segments than that: nothing, and the rendering is then no valid name.
                Segment::RepositoryAfter(n) => {
                    if let Some(rest) = vars.repository.splitn(n + 1, '/').nth(*n) {
                        out.push_str(rest);
                    }
                }
                Segment::Digest(n) => out.push_str(vars.digest_hex.get(..*n).unwrap_or(vars.digest_hex)),
                // Writing can fail (never panics) if chrono cannot format a valid item.
                Segment::Date(items) => write!(out, "{}", vars.pushed_at.format_with_items(items.iter()))?,
                Segment::Capture(i) => {
                    if let Matched::Regex(caps) = vars.matched {
                        out.push_str(caps.get(*i).map_or("", |m| m.as_str()));
                    }
                }
                Segment::Version | Segment::Major | Segment::Minor | Segment::Patch | Segment::Prerelease => {
                    if let Matched::Semver(v) = vars.matched {
                        match segment {
                            Segment::Version => write!(out, "{v}")?,
                            Segment::Major => write!(out, "{}", v.major)?,
                            Segment::Minor => write!(out, "{}", v.minor)?,
                            Segment::Patch => write!(out, "{}", v.patch)?,
                            _ => out.push_str(v.pre.as_str()),
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Rejects templates that no event could turn into a valid tag: a literal
    /// start that sanitises to `.` or `-`, or literal text alone too long.
    fn check_can_be_valid(&self) -> Result<(), TemplateError> {
        if let Some(Segment::Literal(first)) = self.segments.first() {
            let c = first.chars().next().unwrap_or('a');
            if !(c.is_ascii_alphanumeric() || c == '_') {
                return Err(TemplateError::NeverValid(format!(
                    "it starts with {c:?}, and a tag must start with a letter, digit or '_'"
                )));
            }
        }
        let literal_len: usize = self
            .segments
            .iter()
            .map(|s| if let Segment::Literal(l) = s { l.chars().count() } else { 0 })
            .sum();
        if literal_len > crate::names::Tag::MAX_LEN {
            return Err(TemplateError::NeverValid(format!(
                "its fixed text alone is {literal_len} characters, over the limit of 128"
            )));
        }
        Ok(())
    }
}

fn placeholder(inner: &str, scope: &Scope<'_>) -> Result<Segment, TemplateError> {
    let (name, arg) = match inner.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (inner, None),
    };
    match (name, arg) {
        ("tag", None) => return Ok(Segment::Tag),
        ("repository", None) => return Ok(Segment::Repository),
        ("repository", Some(n)) => {
            return match n.parse::<usize>() {
                Ok(n @ 1..=9) => Ok(Segment::RepositoryAfter(n)),
                _ => Err(TemplateError::RepositorySegments(n.to_owned())),
            }
        }
        ("digest", None) => return Ok(Segment::Digest(64)),
        ("digest", Some(n)) => {
            return match n.parse::<usize>() {
                Ok(n @ 1..=64) => Ok(Segment::Digest(n)),
                _ => Err(TemplateError::DigestLength(n.to_owned())),
            }
        }
        ("date", None) => return Err(TemplateError::DateWithoutFormat),
        ("date", Some(format)) => return date_items(format).map(Segment::Date),
        _ => {}
    }
    let semver_segment = match inner {
        "version" => Some(Segment::Version),
        "major" => Some(Segment::Major),
        "minor" => Some(Segment::Minor),
        "patch" => Some(Segment::Patch),
        "prerelease" => Some(Segment::Prerelease),
        _ => None,
    };
    match scope {
        Scope::Semver => semver_segment.ok_or_else(|| unknown(inner, scope)),
        Scope::Regex(re) => {
            if let Some(i) = capture_index(re, inner) {
                Ok(Segment::Capture(i))
            } else if semver_segment.is_some() {
                Err(TemplateError::SemverOnly(inner.to_owned()))
            } else {
                Err(unknown(inner, scope))
            }
        }
    }
}

fn capture_index(re: &Regex, name: &str) -> Option<usize> {
    if let Ok(i) = name.parse::<usize>() {
        return (i < re.captures_len()).then_some(i);
    }
    re.capture_names().position(|n| n == Some(name))
}

fn unknown(name: &str, scope: &Scope<'_>) -> TemplateError {
    let mut known: Vec<String> = BUILTIN.iter().map(|s| format!("{{{s}}}")).collect();
    match scope {
        Scope::Semver => known.extend(SEMVER.iter().map(|s| format!("{{{s}}}"))),
        Scope::Regex(re) => {
            // Group 0 is the whole match; the anchoring wrapper adds no group of its own.
            known.extend((0..re.captures_len()).map(|i| format!("{{{i}}}")));
            known.extend(re.capture_names().flatten().map(|n| format!("{{{n}}}")));
        }
    }
    TemplateError::Unknown { name: name.to_owned(), known: known.join(", ") }
}

fn date_items(format: &str) -> Result<Vec<Item<'static>>, TemplateError> {
    let bad = || TemplateError::DateFormat(format.to_owned());
    if format.is_empty() {
        return Err(bad());
    }
    let items = StrftimeItems::new(format).parse_to_owned().map_err(|_| bad())?;
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(bad());
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "16eb06ced985216bb14744c43dad833c58f56296d152e580542d0e8630f63316";

    fn at() -> DateTime<Utc> {
        "2026-11-24T10:15:02Z".parse().unwrap()
    }

    fn render_semver(template: &str, tag: &str) -> String {
        let t = Template::parse(template, &Scope::Semver).unwrap();
        let version = semver::Version::parse(tag.trim_start_matches('v')).unwrap();
        let matched = Matched::Semver(version);
        let vars = Vars { tag, repository: "team/api", digest_hex: HEX, pushed_at: at(), matched: &matched };
        t.render(&vars).unwrap()
    }

    fn render_regex(template: &str, pattern: &str, tag: &str) -> String {
        let re = Regex::new(&format!("^(?:{pattern})$")).unwrap();
        let t = Template::parse(template, &Scope::Regex(&re)).unwrap();
        let matched = Matched::Regex(re.captures(tag).unwrap());
        let vars = Vars { tag, repository: "team/api", digest_hex: HEX, pushed_at: at(), matched: &matched };
        t.render(&vars).unwrap()
    }

    #[test]
    fn semver_placeholders() {
        assert_eq!(render_semver("v{major}.{minor}", "v1.4.2"), "v1.4");
        assert_eq!(render_semver("{version}", "v1.4.2-rc.1+b5"), "1.4.2-rc.1+b5");
        assert_eq!(render_semver("{major}-{prerelease}", "2.0.0-beta.3"), "2-beta.3");
        assert_eq!(render_semver("p{patch}{prerelease}", "1.2.3"), "p3");
    }

    #[test]
    fn builtin_placeholders_and_literal_braces() {
        assert_eq!(render_semver("{tag}-{repository}", "v1.4.2"), "v1.4.2-team/api");
        assert_eq!(render_semver("prod/{repository:1}", "v1.4.2"), "prod/api", "team/api without its first segment");
        assert_eq!(render_semver("prod/{repository:2}", "v1.4.2"), "prod/", "no segment left");
        assert_eq!(render_semver("sha-{digest:7}", "v1.0.0"), "sha-16eb06c");
        assert_eq!(render_semver("{digest}", "v1.0.0"), HEX);
        assert_eq!(render_semver("{date:%Y%m%d}", "v1.0.0"), "20261124");
        assert_eq!(render_semver("d{date:%Y-%m-%dT%H%M%S}", "v1.0.0"), "d2026-11-24T101502");
        assert_eq!(render_semver("a{{b}}c", "v1.0.0"), "a{b}c");
    }

    #[test]
    fn regex_captures_by_name_and_number() {
        let p = "main-(?<sha>[0-9a-f]{7,40})";
        assert_eq!(render_regex("git-{sha}", p, "main-abc1234"), "git-abc1234");
        assert_eq!(render_regex("git-{1}", p, "main-abc1234"), "git-abc1234");
        assert_eq!(render_regex("{0}", p, "main-abc1234"), "main-abc1234");
        assert_eq!(render_regex("x{2}", "(a)|(b)", "a"), "x", "a group that did not take part is empty");
    }

    #[test]
    fn configuration_errors_are_specific() {
        let re = Regex::new("^(?:main-(?<sha>[0-9a-f]+))$").unwrap();
        let regex = Scope::Regex(&re);
        let err = |t: &str, s: &Scope<'_>| Template::parse(t, s).unwrap_err();
        assert_eq!(err("", &Scope::Semver), TemplateError::Empty);
        assert_eq!(err("v{major", &Scope::Semver), TemplateError::Unclosed(1));
        assert_eq!(err("v}", &Scope::Semver), TemplateError::Unmatched(1));
        assert!(matches!(err("v{majr}", &Scope::Semver), TemplateError::Unknown { name, .. } if name == "majr"));
        assert_eq!(err("v{major}", &regex), TemplateError::SemverOnly("major".into()));
        assert!(matches!(err("{sha}", &Scope::Semver), TemplateError::Unknown { .. }));
        assert!(matches!(err("{2}", &regex), TemplateError::Unknown { .. }));
        assert_eq!(err("{digest:0}", &regex), TemplateError::DigestLength("0".into()));
        assert_eq!(err("{digest:65}", &regex), TemplateError::DigestLength("65".into()));
        assert_eq!(err("{repository:0}", &regex), TemplateError::RepositorySegments("0".into()));
        assert_eq!(err("{repository:x}", &regex), TemplateError::RepositorySegments("x".into()));
        assert_eq!(err("{date}", &regex), TemplateError::DateWithoutFormat);
        assert_eq!(err("{date:%Q}", &regex), TemplateError::DateFormat("%Q".into()));
        assert_eq!(err("{date:}", &regex), TemplateError::DateFormat(String::new()));
        assert!(matches!(err("-{sha}", &regex), TemplateError::NeverValid(_)));
        assert!(matches!(err(&"x".repeat(129), &regex), TemplateError::NeverValid(_)));
    }

    #[test]
    fn unknown_placeholder_lists_what_is_available() {
        let re = Regex::new("^(?:main-(?<sha>[0-9a-f]+))$").unwrap();
        let msg = Template::parse("{shaa}", &Scope::Regex(&re)).unwrap_err().to_string();
        assert!(msg.contains("{sha}") && msg.contains("{date:FORMAT}") && msg.contains("{1}"), "{msg}");
    }

    #[test]
    fn a_to_template_is_its_fixed_text_with_one_double_star_per_run_of_placeholders() {
        let glob = |t: &str| Template::parse(t, &Scope::Semver).unwrap().repository_glob().unwrap().source().to_owned();
        assert_eq!(glob("prod/{repository}"), "prod/**");
        assert_eq!(glob("prod/{repository}{major}"), "prod/**", "adjacent placeholders: one `**`");
        assert_eq!(glob("prod/{repository}-v{major}"), "prod/**-v**");
    }

    #[test]
    fn a_stray_brace_is_placed_at_its_byte_in_the_template_after_escaped_braces_and_placeholders() {
        let at = |t: &str| Template::parse(t, &Scope::Semver).unwrap_err();
        // `{{` and `}}` are two bytes each; `{major}` seven.
        assert_eq!(at("a{{b}}c}"), TemplateError::Unmatched(7));
        assert_eq!(at("v{major}-x}"), TemplateError::Unmatched(10));
        assert_eq!(at("{{v{major}.{minor}-{"), TemplateError::Unclosed(19));
        assert_eq!(at("x{major}{{y}}{"), TemplateError::Unclosed(13));
    }

    #[test]
    fn fixed_text_of_exactly_128_characters_can_still_be_valid_and_129_cannot() {
        assert!(Template::parse(&"a".repeat(128), &Scope::Semver).is_ok());
        assert!(matches!(Template::parse(&"a".repeat(129), &Scope::Semver), Err(TemplateError::NeverValid(_))));
    }

    #[test]
    fn a_template_moves_unless_it_names_the_push_and_its_shape_is_a_wildcard() {
        let semver = |t: &str| Template::parse(t, &Scope::Semver).unwrap();
        for (template, moves, shape) in [
            ("stable", true, "stable"),
            ("v{major}", true, "v*"),
            ("v{major}.{minor}-latest", true, "v*.*-latest"),
            ("{date:%Y%m%d}", true, "*"),
            ("{repository}-edge", true, "*-edge"),
            ("{version}", false, "*"),
            ("v{major}.{minor}.{patch}", false, "v*.*.*"),
            ("{tag}-copy", false, "*-copy"),
            ("sha-{digest:12}", false, "sha-*"),
            // Adjacent placeholders are one wildcard: `v**` would be another filter shape.
            ("v{major}{minor}", true, "v*"),
            ("{major}{minor}-x", true, "*-x"),
        ] {
            let t = semver(template);
            assert_eq!((t.moves(), t.wildcard().as_str()), (moves, shape), "{template}");
        }
        let re = Regex::new("^(?:main-(?<sha>.*))$").unwrap();
        assert!(!Template::parse("sha-{sha}", &Scope::Regex(&re)).unwrap().moves(), "a capture names the push");
    }

}
