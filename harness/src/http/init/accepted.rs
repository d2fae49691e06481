//! Drafting `forgot.accepted`: what only an accepted request gets.
//!
//! The answer to an address no account has is what every request should
//! get from a correct app, but not all of it says "accepted": the page
//! heading, the form itself and an error message are there too, and a
//! heading is also on every refusal. So a text is drafted only when it is
//! not on the empty form page, and, with `--account`, when the answer to
//! the account's request carries it too. When the two answers differ (the
//! app tells accounts apart), the text comes from the account's answer,
//! and the draft says so. When it cannot tell, the draft says that.

use url::Url;

use super::page::{Outcome, Page, outcome_of, text_lines};

/// Words an "accepted" message tends to have.
const HINTS: &[&str] = &["sent", "email", "check", "if an account", "instructions"];

/// The drafted `accepted` and the comment that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Drafted {
    pub(super) outcome: Outcome,
    pub(super) comment: String,
}

/// Lines of `answer` with a hint word that the form page does not show,
/// cut before `typed` (an echoed address is not the same for every request).
fn candidates(form_page: &Page, answer: &Page, typed: &str) -> Vec<String> {
    let on_form: Vec<String> = text_lines(&form_page.body, "");
    text_lines(&answer.body, typed)
        .into_iter()
        .filter(|line| {
            let lower = line.to_ascii_lowercase();
            line.len() >= 8
                && HINTS.iter().any(|w| lower.contains(w))
                && !on_form
                    .iter()
                    .any(|f| f.contains(line.as_str()) || line.contains(f.as_str()))
        })
        .collect()
}

/// Drafts `accepted` from the answer to `unknown` and, when given, the
/// answer to the test account's request.
pub(super) fn draft(
    base: &Url,
    form_page: &Page,
    unknown: (&str, &Page),
    known: Option<(&str, &Page)>,
) -> Drafted {
    let (probe, unknown_answer) = unknown;
    let unknown_outcome = outcome_of(base, unknown_answer, &[]);
    let Some((account, known_answer)) = known else {
        // Only the unknown address's answer: a redirect describes itself;
        // a text must at least not be on the form page already.
        if unknown_outcome.redirect.is_some() {
            return Drafted {
                outcome: unknown_outcome,
                comment: format!(
                    "found: the answer to a request for {probe} (no such account); not compared with a known \
                     account's answer (run init with --account to check that it is the same)"
                ),
            };
        }
        return match candidates(form_page, unknown_answer, probe).into_iter().next() {
            Some(text) => Drafted {
                outcome: Outcome {
                    text: Some(text),
                    ..unknown_outcome
                },
                comment: format!(
                    "guessed from the answer to a request for {probe} (no such account), not on the form page; \
                     CHECK: init could not compare it with an accepted request's answer (give --account): it must \
                     be text only an accepted request gets"
                ),
            },
            None => Drafted {
                outcome: unknown_outcome,
                comment: format!(
                    "FILL IN: the answer to a request for {probe} (no such account) has no text that is not \
                     already on the form page, and init could not compare it with an accepted request (give \
                     --account): add the `text` or `redirect` only an accepted request gets"
                ),
            },
        };
    };
    let known_outcome = outcome_of(base, known_answer, &[]);
    let same_shape =
        known_outcome.status == unknown_outcome.status && known_outcome.redirect == unknown_outcome.redirect;
    if same_shape && known_outcome.redirect.is_some() {
        return Drafted {
            outcome: known_outcome,
            comment: format!(
                "found: the answers to a request for {account} and for {probe} (no such account) both redirect here"
            ),
        };
    }
    let from_known = candidates(form_page, known_answer, account);
    let from_unknown = candidates(form_page, unknown_answer, probe);
    if let Some(text) = from_known.iter().find(|t| from_unknown.contains(t)) {
        return Drafted {
            outcome: Outcome {
                text: Some(text.clone()),
                ..known_outcome
            },
            comment: format!(
                "found: text in the answers to a request for {account} and for {probe} (no such account), \
                 not on the form page"
            ),
        };
    }
    match from_known.into_iter().next() {
        Some(text) => Drafted {
            outcome: Outcome {
                text: Some(text),
                ..known_outcome
            },
            comment: format!(
                "found: text only the answer to a request for {account} carries; the answer for {probe} (no such \
                 account) differs{}: RST-HTTP-015 will show how",
                if same_shape { "" } else { " in status or redirect" }
            ),
        },
        None => Drafted {
            outcome: known_outcome,
            comment: format!(
                "FILL IN: the answer to a request for {account} has no text that is not on the form page; add \
                 the `text` or `redirect` only an accepted request gets"
            ),
        },
    }
}
