//! Header checks: sender, recipient, `Auto-Submitted`, `Message-ID`,
//! `Date`, and no token in the subject or any other header.

use super::checks::{Check, Finding, list};
use super::mime::ParsedMail;

fn bare_address(address: &str) -> &str {
    let address = address.trim();
    match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => &address[open + 1..close],
        _ => address,
    }
}

pub(super) fn one_address(check: Check, header: &str, seen: &[String], expected: Option<&str>) -> Finding {
    let expected = expected.map(bare_address);
    let ok = match (seen, expected) {
        ([one], Some(expected)) => one.to_lowercase() == expected.to_lowercase(),
        ([_], None) => true,
        _ => false,
    };
    Finding::new(
        check,
        ok,
        match expected {
            Some(address) => format!("{header}: exactly <{address}>"),
            None => format!("{header}: exactly one address"),
        },
        format!("{header}: {}", list(seen)),
    )
}

pub(super) fn auto_submitted(mail: &ParsedMail) -> Finding {
    let values: Vec<&str> = mail.header_all("Auto-Submitted").collect();
    let ok = matches!(values.as_slice(), [value]
        if value.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("auto-generated"));
    Finding::new(
        Check::AutoSubmitted,
        ok,
        "one `Auto-Submitted: auto-generated` header",
        format!("Auto-Submitted: {}", list(values)),
    )
}

pub(super) fn message_id(mail: &ParsedMail) -> Finding {
    let values: Vec<&str> = mail.header_all("Message-ID").collect();
    let well_formed = |id: &str| {
        id.strip_prefix('<')
            .and_then(|id| id.strip_suffix('>'))
            .and_then(|id| id.split_once('@'))
            .is_some_and(|(left, right)| {
                let fine =
                    |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || "<>@".contains(c));
                fine(left) && fine(right)
            })
    };
    Finding::new(
        Check::MessageId,
        matches!(values.as_slice(), [id] if well_formed(id)),
        "one `Message-ID: <left@right>` header",
        format!("Message-ID: {}", list(values)),
    )
}

pub(super) fn date(mail: &ParsedMail) -> Finding {
    let values: Vec<&str> = mail.header_all("Date").collect();
    Finding::new(
        Check::Date,
        values.len() == 1 && mail.date.is_some(),
        "one valid RFC 5322 `Date` header",
        format!(
            "Date: {}{}",
            list(values),
            if mail.date.is_none() {
                " (not a valid date)"
            } else {
                ""
            }
        ),
    )
}

pub(super) fn no_token_in_subject(mail: &ParsedMail, tokens: &[String]) -> Finding {
    let raw = mail.header("Subject").unwrap_or_default();
    let leaked: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .filter(|t| mail.subject.contains(t) || raw.contains(t))
        .collect();
    Finding::new(
        Check::NoTokenInSubject,
        leaked.is_empty(),
        "a subject without the token",
        format!(
            "Subject: {:?}{}",
            mail.subject,
            if leaked.is_empty() {
                ""
            } else {
                " contains a token"
            }
        ),
    )
}

pub(super) fn no_token_in_headers(mail: &ParsedMail, tokens: &[String]) -> Finding {
    let leaking: Vec<&str> = mail
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("Subject"))
        .filter(|(_, value)| tokens.iter().any(|t| value.contains(t.as_str())))
        .map(|(name, _)| name.as_str())
        .collect();
    Finding::new(
        Check::NoTokenInHeaders,
        leaking.is_empty(),
        "the token in no header",
        if leaking.is_empty() {
            "no header carries it".to_owned()
        } else {
            format!("carried by: {}", list(leaking))
        },
    )
}
