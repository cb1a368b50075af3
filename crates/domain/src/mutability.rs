//! Tag mutability with exclusions: which tags of a repository ECR keeps
//! immutable, what change would let a moving tag move, and which exclusion
//! filters let every moving tag of a rule set move while the version tags stay
//! immutable.
//!
//! ECR's modes: `MUTABLE`, `IMMUTABLE`, and the two `*_WITH_EXCLUSION` modes
//! with 1 to 5 wildcard filters (`*` the only metacharacter) naming the tags
//! that are the exception.

use std::fmt;

/// At most this many exclusion filters per repository (ECR's limit).
pub const MAX_FILTERS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Mutable,
    Immutable,
    /// Immutable, except the tags an exclusion filter matches.
    ImmutableWithExclusion,
    /// Mutable, except the tags an exclusion filter matches.
    MutableWithExclusion,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Mutable, Mode::Immutable, Mode::ImmutableWithExclusion, Mode::MutableWithExclusion];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Mutable => "MUTABLE",
            Mode::Immutable => "IMMUTABLE",
            Mode::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            Mode::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exclusion filter: `[0-9a-zA-Z._*-]{1,128}`, `*` matching any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Filter(String);

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, String> {
        let ok = (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._*-".contains(&b));
        if ok {
            Ok(Filter(text.to_owned()))
        } else {
            Err(format!("{text:?} is no exclusion filter: 1 to 128 of letters, digits, '.', '_', '-' and the wildcard '*'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the filter matches `text` (a tag, or another filter's shape).
    pub fn matches(&self, text: &str) -> bool {
        wildcard_match(self.0.as_bytes(), text.as_bytes())
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*` matches any run of characters; nothing else is special (ECR's filters and lifecycle patterns).
pub(crate) fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| wildcard_match(rest, &text[i..])),
        Some((c, rest)) => text.split_first().is_some_and(|(t, more)| t == c && wildcard_match(rest, more)),
    }
}

/// A repository's setting, as DescribeRepositories reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMutability {
    pub mode: Mode,
    pub filters: Vec<Filter>,
}

impl TagMutability {
    /// Whether ECR refuses to move `tag` once it exists.
    pub fn is_immutable(&self, tag: &str) -> bool {
        let excluded = self.filters.iter().any(|f| f.matches(tag));
        match self.mode {
            Mode::Mutable => false,
            Mode::Immutable => true,
            Mode::ImmutableWithExclusion => !excluded,
            Mode::MutableWithExclusion => excluded,
        }
    }

    /// For a `conflict`: the setting, and the change that would let `tag` move.
    pub fn advice(&self, repository: &str, tag: &str) -> String {
        let filters = if self.filters.is_empty() {
            "no exclusion filter".to_owned()
        } else {
            format!("exclusion filters {}", self.filters.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "))
        };
        let setting = format!("the repository is {} with {filters}", self.mode);
        let command = |mode: Mode, filters: &[String]| {
            let list: Vec<String> = filters.iter().map(|f| format!("filterType=WILDCARD,filter={f}")).collect();
            format!(
                "aws ecr put-image-tag-mutability --repository-name {repository} --image-tag-mutability {mode} --image-tag-mutability-exclusion-filters {}",
                list.join(" ")
            )
        };
        let mut kept: Vec<String> = self.filters.iter().map(ToString::to_string).collect();
        match self.mode {
            Mode::Mutable => format!("{setting}; it was immutable when written"),
            Mode::MutableWithExclusion => {
                let kept: Vec<String> = self.filters.iter().filter(|f| !f.matches(tag)).map(ToString::to_string).collect();
                if kept.is_empty() {
                    format!("{setting}, one of which covers `{tag}`; to let it move: aws ecr put-image-tag-mutability --repository-name {repository} --image-tag-mutability MUTABLE")
                } else {
                    format!("{setting}, which make `{tag}` immutable; to let it move, drop the filter that covers it: {}", command(self.mode, &kept))
                }
            }
            Mode::Immutable | Mode::ImmutableWithExclusion if kept.len() >= MAX_FILTERS => format!(
                "{setting}, none covering `{tag}`, and {MAX_FILTERS} filters is ECR's maximum: widen one to cover it, or rename the tag so that one does"
            ),
            Mode::Immutable => {
                kept.push(tag.to_owned());
                format!("the repository is IMMUTABLE; to let `{tag}` move: {}", command(Mode::ImmutableWithExclusion, &kept))
            }
            Mode::ImmutableWithExclusion => {
                kept.push(tag.to_owned());
                format!("{setting}, none covering `{tag}`; to let it move: {}", command(self.mode, &kept))
            }
        }
    }
}

impl TagMutability {
    /// For a moving tag this setting keeps immutable, the change to make. A template with a
    /// variable part (`v{major}`, `{date:%Y%m%d}`) needs its shape freed, not this one tag, or
    /// the next push conflicts again: the advice `plan`, `doctor` and `filters` give alike.
    pub fn moving_advice(&self, repository: &str, tag: &str, moving: Option<&Moving>) -> String {
        match moving {
            Some(m) if m.shape.contains('*') => format!(
                "exclude its shape from immutability; `ecr-retag filters --rules RULES` proposes filters for every moving tag \
                 (a filter `{}` may also free the version tags pushes carry)",
                m.shape
            ),
            _ => self.advice(repository, tag),
        }
    }
}

/// The template one of `rules` derived `tag` from: the most specific moving shape that matches it.
pub fn template_of<'a>(moving: &'a [Moving], rules: &[String], tag: &str) -> Option<&'a Moving> {
    moving
        .iter()
        .filter(|m| rules.contains(&m.rule) && wildcard_match(m.shape.as_bytes(), tag.as_bytes()))
        .max_by_key(|m| m.shape.len())
}

/// A moving tag of a rule set: its rule, its template, and its shape as a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moving {
    pub rule: String,
    pub template: String,
    pub shape: String,
}

/// Exclusion filters for a rule set's moving tags, and why some cannot have one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Proposal {
    /// At most [`MAX_FILTERS`], each with the moving tags it covers.
    pub filters: Vec<(Filter, Vec<Moving>)>,
    pub problems: Vec<String>,
}

impl Proposal {
    /// Every moving tag covered, and no version tag: exit 0.
    pub fn covers_all(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Filters that let each of `moving` move in an `IMMUTABLE_WITH_EXCLUSION` repository while
/// none of `protected` (the version tags pushes carry) does. A shape that would also match a
/// protected tag cannot be a filter: the problem names that tag and a naming that can be one.
pub fn propose(moving: &[Moving], protected: &[String]) -> Proposal {
    let mut proposal = Proposal::default();
    let clash = |filter: &Filter| protected.iter().find(|p| filter.matches(p)).cloned();
    let mut candidates: Vec<(Filter, Vec<Moving>)> = Vec::new();
    for m in moving {
        let Ok(filter) = Filter::parse(&m.shape) else { continue };
        if let Some(version) = clash(&filter) {
            let named = format!("{}-latest", m.template);
            let hint = match Filter::parse(&format!("{}-latest", m.shape)) {
                Ok(f) if clash(&f).is_none() => format!("; name it e.g. `{named}` (filter `{f}`)"),
                _ => String::new(),
            };
            proposal.problems.push(format!(
                "rule {:?}, `{}`: the filter `{filter}` would also match `{version}`, which must stay immutable{hint}",
                m.rule, m.template
            ));
            continue;
        }
        match candidates.iter_mut().find(|(f, _)| *f == filter) {
            Some((_, covered)) => covered.push(m.clone()),
            None => candidates.push((filter, vec![m.clone()])),
        }
    }
    // A filter whose shape a wider one matches adds nothing (`v*` covers `v*.*`).
    let shapes: Vec<Filter> = candidates.iter().map(|(f, _)| f.clone()).collect();
    for (filter, covered) in candidates {
        // The widest such filter: one no other filter matches in turn.
        let widest = shapes
            .iter()
            .filter(|w| **w != filter && w.matches(filter.as_str()))
            .find(|w| !shapes.iter().any(|x| x != *w && x.matches(w.as_str())));
        match widest {
            Some(wider) => {
                if let Some((_, into)) = proposal.filters.iter_mut().find(|(f, _)| f == wider) {
                    into.extend(covered);
                } else {
                    proposal.filters.push((wider.clone(), covered));
                }
            }
            None => match proposal.filters.iter_mut().find(|(f, _)| *f == filter) {
                Some((_, into)) => into.extend(covered),
                None => proposal.filters.push((filter, covered)),
            },
        }
    }
    if proposal.filters.len() > MAX_FILTERS {
        proposal.problems.push(format!(
            "{} filters are needed and ECR allows {MAX_FILTERS}: give the moving tags a shared shape (e.g. a `-latest` suffix)",
            proposal.filters.len()
        ));
    }
    proposal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(list: &[&str]) -> Vec<Filter> {
        list.iter().map(|f| Filter::parse(f).unwrap()).collect()
    }

    #[test]
    fn every_mode_reads_back_from_ecrs_name_and_nothing_else_does() {
        for mode in Mode::ALL {
            assert_eq!(Mode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(Mode::parse("immutable"), None);
    }

    #[test]
    fn a_naming_hint_is_offered_only_when_its_filter_would_not_clash_too() {
        let moving = [Moving { rule: "r".into(), template: "{tag}".into(), shape: "*".into() }];
        let clear = propose(&moving, &["1.2.3".to_owned()]);
        assert!(clear.problems[0].contains("name it e.g. `{tag}-latest` (filter `*-latest`)"), "{:?}", clear.problems);
        let clashing = propose(&moving, &["1.2.3".to_owned(), "rc-latest".to_owned()]);
        assert!(!clashing.problems[0].contains("name it"), "`*-latest` would match rc-latest too: {:?}", clashing.problems);
    }

    #[test]
    fn ecrs_five_filters_are_enough_and_a_sixth_is_a_problem() {
        let moving = |n: usize| -> Vec<Moving> {
            (0..n).map(|i| Moving { rule: "r".into(), template: format!("edge{i}"), shape: format!("edge{i}") }).collect()
        };
        let five = propose(&moving(MAX_FILTERS), &[]);
        assert_eq!((five.filters.len(), five.problems.len()), (MAX_FILTERS, 0), "{:?}", five.problems);
        let six = propose(&moving(MAX_FILTERS + 1), &[]);
        assert_eq!(six.problems.len(), 1, "{:?}", six.problems);
        assert!(six.problems[0].starts_with("6 filters are needed and ECR allows 5"), "{:?}", six.problems);
    }

    #[test]
    fn wildcards_match_as_ecr_does() {
        let f = Filter::parse("v*-latest").unwrap();
        assert!(f.matches("v1-latest") && f.matches("v1.4-latest") && f.matches("v-latest"));
        assert!(!f.matches("v1.4.2") && !f.matches("v1-latest-x"));
        assert!(Filter::parse("v*.*").unwrap().matches("v1.4.2"), "a wildcard cannot single out series tags");
        assert!(Filter::parse("stable").unwrap().matches("stable") && !Filter::parse("stable").unwrap().matches("stable2"));
        for bad in ["", "v/1", "a b", &"x".repeat(129)] {
            assert!(Filter::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_mode_says_which_tags_are_immutable() {
        let with = |mode, list: &[&str]| TagMutability { mode, filters: filters(list) };
        assert!(!with(Mode::Mutable, &[]).is_immutable("stable"));
        assert!(with(Mode::Immutable, &[]).is_immutable("stable"));
        let except = with(Mode::ImmutableWithExclusion, &["stable", "v*-latest"]);
        assert!(!except.is_immutable("stable") && !except.is_immutable("v1-latest") && except.is_immutable("v1.4.2"));
        let pinned = with(Mode::MutableWithExclusion, &["v*.*.*"]);
        assert!(pinned.is_immutable("v1.4.2") && !pinned.is_immutable("stable"));
    }

    #[test]
    fn a_conflict_says_what_would_let_the_tag_move() {
        let except = TagMutability { mode: Mode::ImmutableWithExclusion, filters: filters(&["edge"]) };
        assert_eq!(
            except.advice("app", "stable"),
            "the repository is IMMUTABLE_WITH_EXCLUSION with exclusion filters `edge`, none covering `stable`; to let it move: \
             aws ecr put-image-tag-mutability --repository-name app --image-tag-mutability IMMUTABLE_WITH_EXCLUSION \
             --image-tag-mutability-exclusion-filters filterType=WILDCARD,filter=edge filterType=WILDCARD,filter=stable"
        );
        let plain = TagMutability { mode: Mode::Immutable, filters: Vec::new() };
        assert_eq!(
            plain.advice("app", "v1"),
            "the repository is IMMUTABLE; to let `v1` move: aws ecr put-image-tag-mutability --repository-name app \
             --image-tag-mutability IMMUTABLE_WITH_EXCLUSION --image-tag-mutability-exclusion-filters filterType=WILDCARD,filter=v1"
        );
        let full = TagMutability { mode: Mode::ImmutableWithExclusion, filters: filters(&["a", "b", "c", "d", "e"]) };
        assert!(full.advice("app", "stable").contains("5 filters is ECR's maximum"));
        let pinned = TagMutability { mode: Mode::MutableWithExclusion, filters: filters(&["s*", "v*.*.*"]) };
        assert!(pinned.advice("app", "stable").ends_with("--image-tag-mutability-exclusion-filters filterType=WILDCARD,filter=v*.*.*"));
    }

    fn moving(rule: &str, template: &str, shape: &str) -> Moving {
        Moving { rule: rule.into(), template: template.into(), shape: shape.into() }
    }

    #[test]
    fn filters_cover_moving_tags_and_never_a_version_tag() {
        let protected = vec!["v1.4.2".to_owned(), "v0.1.0".to_owned()];
        let proposal = propose(
            &[moving("r", "stable", "stable"), moving("r", "v{major}-latest", "v*-latest"), moving("r", "v{major}.{minor}-latest", "v*.*-latest")],
            &protected,
        );
        assert!(proposal.covers_all(), "{proposal:?}");
        let got: Vec<(&str, usize)> = proposal.filters.iter().map(|(f, c)| (f.as_str(), c.len())).collect();
        assert_eq!(got, [("stable", 1), ("v*-latest", 2)], "v*-latest also covers v*.*-latest");

        let proposal = propose(&[moving("release", "v{major}", "v*")], &protected);
        assert_eq!(
            proposal.problems,
            ["rule \"release\", `v{major}`: the filter `v*` would also match `v1.4.2`, which must stay immutable; name it e.g. `v{major}-latest` (filter `v*-latest`)"]
        );
        assert!(!proposal.covers_all());
        let six: Vec<Moving> = ["a", "b", "c", "d", "e", "f"].iter().map(|t| moving("r", t, t)).collect();
        assert!(propose(&six, &protected).problems[0].starts_with("6 filters are needed and ECR allows 5"));
    }
}
