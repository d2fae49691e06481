//! The in-process scenario suite. Each scenario has a stable ID
//! (`RST-<GROUP>-<NNN>`), the requirement it checks quoted with its source,
//! and a severity.

mod delivery;
mod duplicates;
mod enumeration;
mod flow;
mod lifecycle;
mod links;
mod passwords;
mod stored;
mod tokens;

use crate::runner::{BoxCheck, BuildExpectation, Ctx, Scenario};
use crate::scenario::{Requirement, ScenarioInfo, Severity};
use crate::target::TargetConfig;

/// Every scenario, in report order.
pub fn all() -> Vec<Scenario> {
    [
        flow::scenarios(),
        links::scenarios(),
        enumeration::scenarios(),
        duplicates::scenarios(),
        tokens::scenarios(),
        lifecycle::scenarios(),
        passwords::scenarios(),
        delivery::scenarios(),
        stored::scenarios(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The scenarios `patterns` select (ID prefix or glob; none selects all).
pub fn select(patterns: &[String]) -> Vec<Scenario> {
    all()
        .into_iter()
        .filter(|s| patterns.is_empty() || patterns.iter().any(|p| s.info.matches(p)))
        .collect()
}

pub(crate) const OWASP: &str = "OWASP Forgot Password Cheat Sheet";
pub(crate) const SEED: &str = "resetkit seed: failure modes of reset flows";
pub(crate) const NIST: &str = "NIST SP 800-63B-4, 3.1.1.2 Password Verifiers";

/// The default configuration (nothing to change).
pub(crate) fn defaults(_: &mut TargetConfig) {}

/// Builds a scenario.
pub(crate) fn scenario(
    id: &'static str,
    title: &'static str,
    severity: Severity,
    requirement: (&'static str, &'static str),
    configure: fn(&mut TargetConfig),
    run: for<'a> fn(&'a Ctx) -> BoxCheck<'a>,
) -> Scenario {
    Scenario {
        info: ScenarioInfo {
            id,
            title,
            severity,
            requirement: Requirement {
                source: requirement.0,
                text: requirement.1,
            },
        },
        configure,
        build: BuildExpectation::Succeeds,
        run,
    }
}

/// Builds a scenario whose configuration the target must refuse to build
/// with (see [`BuildExpectation::Refused`]).
pub(crate) fn refusal_scenario(
    id: &'static str,
    title: &'static str,
    requirement: (&'static str, &'static str),
    configure: fn(&mut TargetConfig),
    run: for<'a> fn(&'a Ctx) -> BoxCheck<'a>,
) -> Scenario {
    Scenario {
        build: BuildExpectation::Refused,
        ..scenario(id, title, Severity::Must, requirement, configure, run)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_well_formed_and_at_least_thirty() {
        let all = super::all();
        assert!(all.len() >= 30, "{} scenarios", all.len());
        let mut seen = HashSet::new();
        for s in &all {
            assert!(seen.insert(s.info.id), "duplicate id {}", s.info.id);
            assert!(s.info.id.starts_with("RST-"), "{}", s.info.id);
            assert!(!s.info.requirement.text.is_empty() && !s.info.requirement.source.is_empty());
        }
    }
}
