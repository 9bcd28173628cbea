//! One test case and what it expects, independent of the file format.

use std::sync::Arc;

use crate::engine::{Decision, DecisionRequest, Verdict};
use crate::entities::EntityMap;

/// One request to decide and the decision it must get.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// A readable name: the `name` field, or the row's principal, action and resource.
    pub name: String,
    /// The test file as the user named it.
    pub file: String,
    /// 1-based line of the case in its file, when the format tells us.
    pub line: Option<usize>,
    /// The request, uids parsed and checked against the schema.
    pub request: DecisionRequest,
    /// The whole entity data of this case (shared by the cases of a table).
    pub entities: Arc<EntityMap>,
    /// What the decision must be; `None` marks a skipped case.
    pub expect: Option<Expectation>,
}

/// The expected outcome of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Allow or Deny.
    pub verdict: Verdict,
    /// Which policies must have determined it.
    pub reasons: ReasonCheck,
    /// Which errors the decision may report.
    pub errors: ErrorCheck,
}

/// How the determining policies are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReasonCheck {
    /// Not checked.
    Any,
    /// Exactly these ids (YAML `allow(a b)`).
    Exactly(Vec<String>),
    /// At least these ids (Cedar's `reason`, a subset check as in Cedar's CLI).
    AtLeast(Vec<String>),
}

/// How errors are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCheck {
    /// Exactly this many policy evaluation errors (Cedar's `num_errors`);
    /// fail-closed explanations are not evaluation errors.
    Count(usize),
    /// Every string must appear in some reported error or fail-closed note.
    Contains(Vec<String>),
}

impl Expectation {
    /// Why `decision` does not meet this expectation; empty when it does.
    pub fn mismatches(&self, decision: &Decision) -> Vec<String> {
        let mut out = Vec::new();
        if decision.verdict != self.verdict {
            out.push(format!(
                "expected {}, decided {}",
                verdict_word(self.verdict),
                verdict_word(decision.verdict)
            ));
        }
        match &self.reasons {
            ReasonCheck::Any => {}
            ReasonCheck::Exactly(ids) => {
                let mut want = ids.clone();
                want.sort();
                want.dedup();
                if want != decision.reasons {
                    out.push(format!(
                        "expected determining policies {}, got {}",
                        id_list(&want),
                        id_list(&decision.reasons)
                    ));
                }
            }
            ReasonCheck::AtLeast(ids) => {
                let missing: Vec<String> = ids
                    .iter()
                    .filter(|id| !decision.reasons.contains(id))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    out.push(format!(
                        "missing determining policies {}",
                        id_list(&missing)
                    ));
                }
            }
        }
        match &self.errors {
            ErrorCheck::Count(count) if *count != decision.evaluation_errors => {
                out.push(format!(
                    "expected {count} evaluation error(s), got {}",
                    decision.evaluation_errors
                ));
            }
            ErrorCheck::Count(_) => {}
            ErrorCheck::Contains(needles) => {
                for needle in needles {
                    if !decision.errors.iter().any(|e| e.contains(needle.as_str())) {
                        out.push(format!("no reported error mentions `{needle}`"));
                    }
                }
            }
        }
        out
    }

    /// The expectation in the YAML cell notation, e.g. `deny(policy-a)`.
    pub fn describe(&self) -> String {
        let mut text = verdict_word(self.verdict).to_string();
        match &self.reasons {
            ReasonCheck::Any => {}
            ReasonCheck::Exactly(ids) => text.push_str(&format!("({})", ids.join(" "))),
            ReasonCheck::AtLeast(ids) => {
                text.push_str(&format!(" (at least: {})", ids.join(" ")));
            }
        }
        match &self.errors {
            ErrorCheck::Count(0) => {}
            ErrorCheck::Count(n) => text.push_str(&format!(", {n} evaluation error(s)")),
            ErrorCheck::Contains(needles) => {
                text.push_str(&format!(", errors mentioning {}", needles.join("; ")));
            }
        }
        text
    }
}

/// `allow` or `deny`, as test files write it.
pub fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    }
}

fn id_list(ids: &[String]) -> String {
    if ids.is_empty() {
        "(none)".to_string()
    } else {
        ids.iter()
            .map(|id| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn decision(
        verdict: Verdict,
        reasons: &[&str],
        errors: &[&str],
        evaluation: usize,
    ) -> Decision {
        Decision {
            verdict,
            reasons: reasons.iter().map(|s| s.to_string()).collect(),
            errors: errors.iter().map(|s| s.to_string()).collect(),
            evaluation_errors: evaluation,
        }
    }

    fn expect(verdict: Verdict, reasons: ReasonCheck, errors: ErrorCheck) -> Expectation {
        Expectation {
            verdict,
            reasons,
            errors,
        }
    }

    #[test]
    fn a_matching_decision_has_no_mismatch() {
        let e = expect(
            Verdict::Allow,
            ReasonCheck::Exactly(vec!["b".into(), "a".into()]),
            ErrorCheck::Count(0),
        );
        assert!(e
            .mismatches(&decision(Verdict::Allow, &["a", "b"], &[], 0))
            .is_empty());
    }

    #[test]
    fn each_difference_is_named() {
        let e = expect(
            Verdict::Allow,
            ReasonCheck::Exactly(vec!["a".into()]),
            ErrorCheck::Count(0),
        );
        let got = e.mismatches(&decision(Verdict::Deny, &["f"], &["boom"], 1));
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], "expected allow, decided deny");
        assert!(got[1].contains("`a`") && got[1].contains("`f`"));
        assert_eq!(got[2], "expected 0 evaluation error(s), got 1");
    }

    #[test]
    fn cedar_reasons_are_a_subset_check_and_texts_must_appear() {
        let e = expect(
            Verdict::Deny,
            ReasonCheck::AtLeast(vec!["a".into()]),
            ErrorCheck::Contains(vec!["unknown".into()]),
        );
        assert!(e
            .mismatches(&decision(Verdict::Deny, &["a", "b"], &["x is unknown"], 0))
            .is_empty());
        let got = e.mismatches(&decision(Verdict::Deny, &["b"], &[], 0));
        assert_eq!(
            got,
            vec![
                "missing determining policies `a`",
                "no reported error mentions `unknown`"
            ]
        );
    }
}
