//! Deterministic fault rules: which SMTP stage, which sender / recipient,
//! what to do (reply, disconnect, delay) and how many times.

use std::fmt;
use std::time::Duration;

/// The SMTP stage a [`FaultRule`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// The TCP connection, before the greeting. A reply here replaces the
    /// `220` greeting and the connection is closed after it.
    Connect,
    /// `EHLO` / `HELO`.
    Helo,
    /// `MAIL FROM`.
    MailFrom,
    /// `RCPT TO` (once per recipient).
    RcptTo,
    /// The `DATA` command, before the client sends the message.
    DataStart,
    /// The end of the message (`.`), where the final reply is given.
    DataEnd,
}

/// An address pattern: an exact address, `*@domain`, `prefix*` or `*`.
/// Matching ignores ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    /// Any address (`*`).
    Any,
    /// Exactly this address.
    Exact(String),
    /// Any address at this domain (`*@domain`).
    Domain(String),
    /// Any address starting with this text (`prefix*`).
    Prefix(String),
}

impl AddressPattern {
    /// Parses `*`, `*@domain`, `prefix*` or an exact address.
    pub fn parse(pattern: &str) -> Self {
        let p = pattern.trim().to_ascii_lowercase();
        if p == "*" {
            AddressPattern::Any
        } else if let Some(domain) = p.strip_prefix("*@") {
            AddressPattern::Domain(domain.to_owned())
        } else if let Some(prefix) = p.strip_suffix('*') {
            AddressPattern::Prefix(prefix.to_owned())
        } else {
            AddressPattern::Exact(p)
        }
    }

    /// Whether `address` (with or without angle brackets) matches.
    pub fn matches(&self, address: &str) -> bool {
        let a = address
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_ascii_lowercase();
        match self {
            AddressPattern::Any => true,
            AddressPattern::Exact(e) => a == *e,
            AddressPattern::Domain(d) => a.rsplit_once('@').is_some_and(|(_, ad)| ad == d),
            AddressPattern::Prefix(p) => a.starts_with(p.as_str()),
        }
    }
}

impl From<&str> for AddressPattern {
    fn from(pattern: &str) -> Self {
        AddressPattern::parse(pattern)
    }
}

/// A reply the fake server gives instead of the normal one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultReply {
    /// Basic code, e.g. 550.
    pub code: u16,
    /// Enhanced status code, e.g. `5.7.1`.
    pub enhanced: Option<String>,
    /// Text after the codes.
    pub text: String,
}

impl FaultReply {
    /// The reply line without the trailing CRLF: `550 5.7.1 not authorised`.
    pub fn line(&self) -> String {
        format!("{} {}", self.code, self.message())
    }

    /// The text after the basic code (enhanced code and text).
    pub fn message(&self) -> String {
        match &self.enhanced {
            Some(e) => format!("{e} {}", self.text),
            None => self.text.clone(),
        }
    }
}

impl fmt::Display for FaultReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this reply (a 4xx / 5xx rejects the stage; 421 also closes).
    Reply(FaultReply),
    /// Close the connection without answering.
    Disconnect,
    /// Wait this long, then carry on normally.
    Delay(Duration),
}

/// A deterministic fault: at `stage`, for matching sender / recipient, do
/// `fault`, optionally only the first N times.
///
/// ```
/// use resetkit_fake_smtp::{FaultRule, Stage};
///
/// let rule = FaultRule::reply(Stage::MailFrom, 550, Some("5.7.1"), "not authorised")
///     .sender("noreply@example.com");
/// assert!(rule.applies(Stage::MailFrom, Some("noreply@example.com"), &[]));
/// assert!(!rule.applies(Stage::MailFrom, Some("support@example.com"), &[]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    stage: Stage,
    sender: Option<AddressPattern>,
    recipient: Option<AddressPattern>,
    fault: Fault,
    times: Option<u32>,
}

impl FaultRule {
    /// A rule applying `fault` at `stage` to every session.
    pub fn new(stage: Stage, fault: Fault) -> Self {
        FaultRule {
            stage,
            sender: None,
            recipient: None,
            fault,
            times: None,
        }
    }

    /// Reply with `code`, optional enhanced code and `text` at `stage`.
    pub fn reply(stage: Stage, code: u16, enhanced: Option<&str>, text: &str) -> Self {
        Self::new(
            stage,
            Fault::Reply(FaultReply {
                code,
                enhanced: enhanced.map(str::to_owned),
                text: text.to_owned(),
            }),
        )
    }

    /// Close the connection without a reply at `stage`.
    pub fn disconnect(stage: Stage) -> Self {
        Self::new(stage, Fault::Disconnect)
    }

    /// Stall for `delay` at `stage`, then carry on.
    pub fn delay(stage: Stage, delay: Duration) -> Self {
        Self::new(stage, Fault::Delay(delay))
    }

    /// Only when the envelope sender matches `pattern` (see [`AddressPattern`]).
    /// Never matches at [`Stage::Connect`] and [`Stage::Helo`], where no sender is known.
    pub fn sender(mut self, pattern: &str) -> Self {
        self.sender = Some(AddressPattern::parse(pattern));
        self
    }

    /// Only when the recipient matches `pattern`: at `RCPT TO` the recipient
    /// being added, at `DATA` any recipient of the transaction.
    pub fn recipient(mut self, pattern: &str) -> Self {
        self.recipient = Some(AddressPattern::parse(pattern));
        self
    }

    /// Only the first `n` times the rule matches; afterwards the server behaves normally.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The fault.
    pub fn fault(&self) -> &Fault {
        &self.fault
    }

    /// Whether the rule's filters match (ignoring the "first N times" budget).
    pub fn applies(&self, stage: Stage, sender: Option<&str>, recipients: &[String]) -> bool {
        if stage != self.stage {
            return false;
        }
        if let Some(p) = &self.sender
            && !sender.is_some_and(|s| p.matches(s))
        {
            return false;
        }
        if let Some(p) = &self.recipient
            && !recipients.iter().any(|r| p.matches(r))
        {
            return false;
        }
        true
    }
}

/// A rule with its remaining budget.
#[derive(Debug)]
pub(crate) struct ActiveRule {
    rule: FaultRule,
    remaining: Option<u32>,
}

impl ActiveRule {
    pub(crate) fn new(rule: FaultRule) -> Self {
        let remaining = rule.times;
        ActiveRule { rule, remaining }
    }
}

/// Finds the first applicable rule with budget left, spends one use and returns its fault.
pub(crate) fn take_fault(
    rules: &mut [ActiveRule],
    stage: Stage,
    sender: Option<&str>,
    recipients: &[String],
) -> Option<Fault> {
    let active = rules
        .iter_mut()
        .find(|a| a.remaining != Some(0) && a.rule.applies(stage, sender, recipients))?;
    if let Some(n) = active.remaining.as_mut() {
        *n -= 1;
    }
    Some(active.rule.fault.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_domain_and_prefix_ignoring_case() {
        assert!(AddressPattern::parse("NoReply@Example.com").matches("<noreply@example.COM>"));
        assert!(AddressPattern::parse("*@example.com").matches("a@example.com"));
        assert!(!AddressPattern::parse("*@example.com").matches("a@sub.example.com"));
        assert!(AddressPattern::parse("bounce*").matches("bounce-1@x.test"));
        assert!(!AddressPattern::parse("bounce*").matches("x-bounce@x.test"));
        assert!(AddressPattern::parse("*").matches("anything@x.test"));
    }

    #[test]
    fn first_n_times_then_normal() {
        let mut rules = vec![ActiveRule::new(
            FaultRule::reply(Stage::RcptTo, 451, Some("4.7.1"), "greylisted").times(2),
        )];
        let to = vec!["a@x.test".to_owned()];
        assert!(take_fault(&mut rules, Stage::RcptTo, Some("s@x.test"), &to).is_some());
        assert!(take_fault(&mut rules, Stage::RcptTo, Some("s@x.test"), &to).is_some());
        assert!(take_fault(&mut rules, Stage::RcptTo, Some("s@x.test"), &to).is_none());
    }

    #[test]
    fn filters_need_known_addresses() {
        let rule = FaultRule::disconnect(Stage::DataStart).recipient("*@blocked.test");
        assert!(rule.applies(Stage::DataStart, Some("s@x.test"), &["u@blocked.test".into()]));
        assert!(!rule.applies(Stage::DataStart, Some("s@x.test"), &["u@ok.test".into()]));
        assert!(!rule.applies(Stage::RcptTo, Some("s@x.test"), &["u@blocked.test".into()]));
    }
}
