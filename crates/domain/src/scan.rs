//! Image scan results: severities, the counts a basic scan (ECR) or an
//! enhanced scan (Amazon Inspector) reports, and the gate a rule's
//! `"when": {"scan": "…"}` sets.

use std::collections::BTreeMap;
use std::fmt;

/// ECR's finding severities, lowest first (so `>` reads "more severe").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Undefined,
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Informational,
        Severity::Undefined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Undefined => "UNDEFINED",
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// ECR's spelling, upper case.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `finding-severity-counts` of a completed scan: only the severities that
/// occurred. A severity name this version does not know is kept, and counts
/// as more severe than any gate (fail closed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub counts: BTreeMap<String, u64>,
    /// Findings an Inspector event counts only in its `TOTAL`: below MEDIUM (LOW,
    /// INFORMATIONAL, UNTRIAGED), not split by severity. `None` for a basic scan.
    pub unsplit: Option<u64>,
}

impl Findings {
    /// Whether a rule gated at `allowed` may promote: no finding above it. An undecided
    /// gate ([`Findings::undecided`]) does not pass: fail closed.
    pub fn passes(&self, allowed: Severity) -> bool {
        !self.undecided(allowed)
            && self.counts.iter().filter(|(_, n)| **n > 0).all(|(name, _)| Severity::parse(name).is_some_and(|s| s <= allowed))
    }

    /// A gate at LOW or below, and findings below MEDIUM that the event does not split:
    /// whether any is above the gate cannot be told from these counts.
    pub fn undecided(&self, allowed: Severity) -> bool {
        allowed < Severity::Medium && self.unsplit.unwrap_or(0) > 0
    }

    /// `HIGH 1, MEDIUM 4`, most severe first (unknown names last); `none` when clean.
    pub fn summary(&self) -> String {
        let mut parts: Vec<(Option<Severity>, String)> = self
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| (Severity::parse(name), format!("{name} {n}")))
            .collect();
        parts.sort_by(|a, b| match (a.0, b.0) {
            (Some(x), Some(y)) => y.cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1.cmp(&b.1),
        });
        if let Some(n) = self.unsplit.filter(|n| *n > 0) {
            parts.push((None, format!("{n} below MEDIUM (not split by severity)")));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.into_iter().map(|(_, p)| p).collect::<Vec<_>>().join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(pairs: &[(&str, u64)]) -> Findings {
        Findings { unsplit: None, counts: pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect() }
    }

    #[test]
    fn a_summary_names_unsplit_findings_only_when_there_are_some() {
        let none_below = Findings { unsplit: Some(0), ..findings(&[("HIGH", 1)]) };
        assert!(!none_below.summary().contains("below MEDIUM"), "{}", none_below.summary());
        let some_below = Findings { unsplit: Some(3), ..findings(&[("HIGH", 1)]) };
        assert!(some_below.summary().contains("3 below MEDIUM"), "{}", some_below.summary());
    }

    #[test]
    fn a_gate_lets_through_findings_up_to_its_severity() {
        let sample = findings(&[("HIGH", 1), ("MEDIUM", 4), ("LOW", 7)]);
        assert!(!sample.passes(Severity::Medium), "one HIGH finding is above MEDIUM");
        assert!(sample.passes(Severity::High));
        assert!(sample.passes(Severity::Critical));
        assert!(findings(&[]).passes(Severity::Undefined), "a clean scan passes every gate");
        assert!(findings(&[("CRITICAL", 0), ("LOW", 2)]).passes(Severity::Low), "zero counts are no findings");
        assert!(findings(&[("UNDEFINED", 1)]).passes(Severity::Undefined), "at the gate is not above it");
        assert!(!findings(&[("SEVERE", 1)]).passes(Severity::Critical), "an unknown severity fails closed");
    }

    #[test]
    fn unsplit_findings_below_medium_decide_gates_at_medium_and_above_only() {
        let inspector = Findings { unsplit: Some(7), ..findings(&[("CRITICAL", 0), ("HIGH", 0), ("MEDIUM", 2)]) };
        assert!(inspector.passes(Severity::Medium) && inspector.passes(Severity::High));
        assert!(!inspector.passes(Severity::Low) && inspector.undecided(Severity::Low), "LOW 7 or INFORMATIONAL 7?");
        assert!(!inspector.undecided(Severity::Medium));
        let clean = Findings { unsplit: Some(0), ..findings(&[("MEDIUM", 0)]) };
        assert!(clean.passes(Severity::Undefined), "nothing below MEDIUM either: every gate decides");
        assert_eq!(inspector.summary(), "MEDIUM 2, 7 below MEDIUM (not split by severity)");
    }

    #[test]
    fn severities_order_as_ecr_ranks_them() {
        assert!(Severity::Critical > Severity::High && Severity::High > Severity::Medium);
        assert!(Severity::Low > Severity::Informational && Severity::Informational > Severity::Undefined);
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert_eq!(Severity::parse("medium"), None, "ECR's spelling only");
    }

    #[test]
    fn the_summary_lists_the_worst_first() {
        assert_eq!(findings(&[("LOW", 7), ("HIGH", 1), ("MEDIUM", 4)]).summary(), "HIGH 1, MEDIUM 4, LOW 7");
        assert_eq!(findings(&[("NEW", 2), ("LOW", 0), ("INFORMATIONAL", 3)]).summary(), "INFORMATIONAL 3, NEW 2");
        assert_eq!(findings(&[]).summary(), "none");
    }
}
