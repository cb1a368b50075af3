//! Repository globs: `*` stays within one path segment, `**` crosses `/`.
//!
//! Compiled once into an anchored regex; the `regex` crate is already here for
//! `match` rules, so this costs no extra dependency.

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Glob {
    source: String,
    regex: Regex,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("is empty")]
    Empty,
    #[error("has {0:?}, which no ECR repository name contains (names are lowercase a-z, 0-9, '.', '_', '-' and '/'; globs add '*' and '?')")]
    Character(char),
}

impl Glob {
    pub fn parse(source: &str) -> Result<Self, GlobError> {
        if source.is_empty() {
            return Err(GlobError::Empty);
        }
        if let Some(c) = source
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/' | '*' | '?')))
        {
            return Err(GlobError::Character(c));
        }
        let mut pattern = String::from("^");
        let mut rest = source;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("**/") {
                // `team/**/api` also matches `team/api`.
                pattern.push_str("(?:.*/)?");
                rest = r;
            } else if let Some(r) = rest.strip_prefix("**") {
                pattern.push_str(".*");
                rest = r;
            } else if let Some(r) = rest.strip_prefix('*') {
                pattern.push_str("[^/]*");
                rest = r;
            } else if let Some(r) = rest.strip_prefix('?') {
                pattern.push_str("[^/]");
                rest = r;
            } else {
                let c = rest.chars().next().unwrap_or_default();
                pattern.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
                rest = &rest[c.len_utf8()..];
            }
        }
        pattern.push('$');
        // The pattern is built from escaped literals and fixed pieces only.
        let regex = Regex::new(&pattern).map_err(|_| GlobError::Empty)?;
        Ok(Self { source: source.to_owned(), regex })
    }

    pub fn matches(&self, repository: &str) -> bool {
        self.regex.is_match(repository)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, repo: &str) -> bool {
        Glob::parse(glob).unwrap().matches(repo)
    }

    #[test]
    fn star_stays_in_one_segment() {
        assert!(m("team/*", "team/api"));
        assert!(!m("team/*", "team/api/worker"));
        assert!(!m("team/*", "team"));
        assert!(m("*", "app"));
        assert!(!m("*", "team/api"));
        assert!(m("app-*", "app-web"));
    }

    #[test]
    fn double_star_crosses_slashes() {
        assert!(m("team/**", "team/api/worker"));
        assert!(m("**", "a/b/c"));
        assert!(m("team/**/api", "team/x/y/api"));
        assert!(m("team/**/api", "team/api"));
        assert!(!m("team/**/api", "other/api"));
    }

    #[test]
    fn literals_are_literal() {
        assert!(m("app", "app"));
        assert!(!m("app", "apps"));
        assert!(!m("a.p", "axp"), "a dot is not a regex wildcard");
        assert!(m("a?p", "axp"));
    }

    #[test]
    fn impossible_globs_are_rejected() {
        assert_eq!(Glob::parse("").unwrap_err(), GlobError::Empty);
        assert_eq!(Glob::parse("App").unwrap_err(), GlobError::Character('A'));
        assert_eq!(Glob::parse("team/[ab]").unwrap_err(), GlobError::Character('['));
    }
}
