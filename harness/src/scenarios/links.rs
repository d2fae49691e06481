//! Link and message correctness, checked with [`crate::inspect`].

use crate::runner::Scenario;

pub(super) fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
