//! Example pushes a rule matches, for checking rule sets offline
//! (`ecr_retag::lint`): a few tags generated from a `match` regex (its shortest
//! forms and one longer, each alternative), or typical versions for `semver`
//! rules, and a repository its globs accept.

use regex_syntax::hir::{Class, Hir, HirKind};

/// At most this many example tags per rule.
const LIMIT: usize = 12;

/// Strings the pattern matches (not all of them valid tags), from its syntax tree.
pub fn from_pattern(pattern: &str) -> Vec<String> {
    match regex_syntax::parse(pattern) {
        Ok(hir) => {
            let mut out = strings(&hir);
            out.dedup();
            out
        }
        Err(_) => Vec::new(),
    }
}

pub fn semver(prerelease: bool) -> Vec<String> {
    let mut out = vec!["v1.2.3".to_owned(), "1.2.3".to_owned(), "v10.0.0".to_owned()];
    if prerelease {
        out.push("v2.0.0-rc.1".to_owned());
    }
    out
}

/// A repository name a glob accepts: every wildcard filled with `x`.
pub fn repository(glob: &str) -> String {
    glob.replace("**", "x").replace(['*', '?'], "x")
}

fn strings(hir: &Hir) -> Vec<String> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => vec![String::new()],
        HirKind::Literal(literal) => vec![String::from_utf8_lossy(&literal.0).into_owned()],
        HirKind::Class(class) => vec![representative(class).map(String::from).unwrap_or_default()],
        HirKind::Capture(capture) => strings(&capture.sub),
        HirKind::Repetition(rep) => {
            let sub = strings(&rep.sub);
            let mut counts = vec![rep.min, rep.min.max(1)];
            // One more repetition where the pattern allows it (`x{1,2}` gives `x` and `xx`).
            if rep.max.is_none_or(|max| max > rep.min.max(1)) {
                counts.push(rep.min.max(1) + 1);
            }
            counts.dedup();
            let mut out = Vec::new();
            for n in counts {
                for s in &sub {
                    out.push(s.repeat(n as usize));
                }
            }
            out.truncate(LIMIT);
            out
        }
        HirKind::Concat(parts) => parts.iter().fold(vec![String::new()], |acc, part| {
            let tails = strings(part);
            let mut out = Vec::new();
            for head in &acc {
                for tail in &tails {
                    if out.len() < LIMIT {
                        out.push(format!("{head}{tail}"));
                    }
                }
            }
            out
        }),
        HirKind::Alternation(branches) => {
            let mut out: Vec<String> = branches.iter().flat_map(strings).collect();
            out.truncate(LIMIT);
            out
        }
    }
}

/// A character of the class, preferring the ones tags are made of.
fn representative(class: &Class) -> Option<char> {
    let chars: Vec<(char, char)> = match class {
        Class::Unicode(c) => c.ranges().iter().map(|r| (r.start(), r.end())).collect(),
        Class::Bytes(c) => c.ranges().iter().map(|r| (char::from(r.start()), char::from(r.end()))).collect(),
    };
    let contains = |c: char| chars.iter().any(|(a, b)| (*a..=*b).contains(&c));
    ['a', '0', 'A', '_', '.', '-'].into_iter().find(|c| contains(*c)).or_else(|| chars.first().map(|(a, _)| *a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_give_their_short_forms_and_each_alternative() {
        assert_eq!(from_pattern(".*"), ["", "a", "aa"]);
        assert_eq!(from_pattern("main-(?<sha>[0-9a-f]{7,40})")[0], "main-aaaaaaa");
        assert_eq!(from_pattern("latest|edge"), ["latest", "edge"]);
        assert_eq!(from_pattern("v\\d+"), ["v0", "v00"]);
        assert_eq!(repository("team/**/api"), "team/x/api");
    }

    #[test]
    fn a_bounded_repetition_gives_one_more_only_where_allowed_and_combinations_stop_at_the_limit() {
        assert_eq!(from_pattern("x{1,2}"), ["x", "xx"]);
        assert_eq!(from_pattern("x{0,1}"), ["", "x"]);
        assert_eq!(from_pattern("x{2}"), ["xx"]);
        assert_eq!(from_pattern("x{2,3}"), ["xx", "xxx"]);
        let combined = from_pattern("(ab|cd|ef|gh)(ij|kl|mn|op)");
        assert_eq!(combined.len(), LIMIT, "{combined:?}");
        assert_eq!((combined[0].as_str(), combined[LIMIT - 1].as_str()), ("abij", "efop"));
    }
}
