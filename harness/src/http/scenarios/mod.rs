//! The black-box scenarios run over HTTP (`RST-HTTP-NNN`), in run order.
//! [`crate::scenario::select`] picks from [`all`].
//!
//! The app keeps its state from one scenario to the next, so the order
//! matters: the flow checks come first, the ones that spend rate limits
//! (identical answers with a throttled identifier, then timing) last.

mod enumeration;
mod flow;
mod injection;
mod links;
mod timing;

use super::runner::HttpScenario;
use super::target_file::{HttpTarget, LookAlikeKind};

/// Every HTTP scenario, in run order.
pub fn all() -> Vec<HttpScenario> {
    [
        flow::first(),
        injection::scenarios(),
        links::scenarios(),
        flow::shared(),
        enumeration::scenarios(),
        timing::scenarios(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub(crate) const OWASP: &str = "OWASP Forgot Password Cheat Sheet";

pub(crate) use crate::scenario::scenario;

/// Applies when the target lists an enabled account with its own address.
pub(crate) fn needs_account(target: &HttpTarget) -> Option<String> {
    target
        .plain_accounts()
        .is_empty()
        .then(|| "the target file lists no enabled account with an address of its own ([[accounts]])".into())
}

/// Applies when two listed accounts share an address.
pub(crate) fn needs_shared(target: &HttpTarget) -> Option<String> {
    target
        .shared_email_groups()
        .is_empty()
        .then(|| "the target file lists no two enabled accounts sharing an address ([[accounts]])".into())
}

fn needs_lookalike(target: &HttpTarget, kind: LookAlikeKind, what: &str) -> Option<String> {
    let any = target.lookalikes.iter().any(|l| {
        target
            .account(&l.account)
            .is_some_and(|a| l.kind(&a.email) == kind)
    });
    (!any).then(|| format!("the target file lists no {what} of an account's address ([[lookalikes]])"))
}

/// Applies when a case variant is listed.
pub(crate) fn needs_case_variant(target: &HttpTarget) -> Option<String> {
    needs_lookalike(target, LookAlikeKind::CaseVariant, "case variant")
}

/// Applies when a Unicode look-alike is listed.
pub(crate) fn needs_unicode_lookalike(target: &HttpTarget) -> Option<String> {
    needs_lookalike(target, LookAlikeKind::Unicode, "Unicode look-alike")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_numbered_in_run_order() {
        let all = super::all();
        let mut seen = HashSet::new();
        for (i, s) in all.iter().enumerate() {
            assert!(seen.insert(s.info.id), "duplicate {}", s.info.id);
            assert_eq!(s.info.id, format!("RST-HTTP-{:03}", i + 1));
            assert_eq!(s.info.group(), "HTTP");
            assert!(!s.info.requirement.text.is_empty() && !s.info.requirement.source.is_empty());
        }
        assert_eq!(all.len(), 16);
    }
}
