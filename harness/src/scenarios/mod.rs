//! The in-process scenario suite. Each scenario has a stable ID
//! (`RST-<GROUP>-<NNN>`), the requirement it checks quoted with its source,
//! and a severity. [`crate::scenario::select`] picks from [`all`].

mod delivery;
mod duplicates;
mod enumeration;
mod flow;
mod lifecycle;
mod links;
mod passwords;
mod stored;
mod tokens;

use crate::runner::Ctx;
use crate::scenario::Scenario;
pub(crate) use crate::scenario::scenario;
use crate::target::TargetConfig;

/// Every scenario, in report order.
pub fn all() -> Vec<Scenario<Ctx>> {
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

pub(crate) const OWASP: &str = "OWASP Forgot Password Cheat Sheet";
pub(crate) const SEED: &str = "resetkit seed: failure modes of reset flows";
pub(crate) const NIST: &str = "NIST SP 800-63B-4, 3.1.1.2 Password Verifiers";

/// The default configuration (nothing to change).
pub(crate) fn defaults(_: &mut TargetConfig) {}

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
