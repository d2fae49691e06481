//! Shared fixture for the acceptance tests: in-memory stores, a capturing
//! mailer, a manual clock, the fast hasher, and helpers that pull links and
//! tokens out of captured emails and rejection reasons out of the event log.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use resetkit::ResetServiceBuilder;
use resetkit::event::{Event, EventKind, IgnoreReason};
use resetkit::prelude::*;
use resetkit::token::RejectReason;
use secrecy::SecretString;

/// The configured public base URL.
pub const BASE: &str = "https://app.example.com";
/// What every reset link starts with.
pub const RESET_PREFIX: &str = "https://app.example.com/reset?token=";
/// What every "this wasn't me" link starts with.
pub const DENY_PREFIX: &str = "https://app.example.com/reset/deny?token=";
/// The link of the password-changed notice.
pub const SECURITY_LINK: &str = "https://app.example.com/account/security";
/// The fixed sender.
pub const NOREPLY: &str = "noreply@example.com";
/// A password that passes the default policy.
pub const GOOD_PASSWORD: &str = "blue kettle under a quiet bridge";

/// When every test starts (a fixed instant, so nothing depends on the wall clock).
pub fn start_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A validated mailbox.
pub fn mailbox(address: &str) -> Mailbox {
    Mailbox::address_only(address).expect("test addresses are valid")
}

/// A secret from text.
pub fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// The parts of one service, kept so tests can look inside them.
#[derive(Clone)]
pub struct Fixture {
    pub accounts: InMemoryAccounts,
    pub tokens: InMemoryTokenStore,
    pub events: InMemoryEventLog,
    pub mailer: CapturingMailer,
    pub clock: ManualClock,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture {
            accounts: InMemoryAccounts::default(),
            tokens: InMemoryTokenStore::default(),
            events: InMemoryEventLog::default(),
            mailer: CapturingMailer::default(),
            clock: ManualClock::new(start_time()),
        }
    }
}

impl Fixture {
    /// A fixture holding `accounts`.
    pub fn with_accounts(accounts: impl IntoIterator<Item = Account>) -> Self {
        let fixture = Fixture::default();
        for account in accounts {
            fixture.accounts.insert(account);
        }
        fixture
    }

    /// A builder with every required part set (inline delivery, fixed sender,
    /// fast hasher, manual clock, default policies). Requests are processed
    /// before `request` returns (`RequestProcessing::Immediate`; the default
    /// leaves them to in-process workers), so tests can read the mail and
    /// events right after.
    pub fn builder(&self) -> ResetServiceBuilder {
        ResetService::builder()
            .request_processing(resetkit::flow::RequestProcessing::Immediate)
            .base_url(BASE)
            .accounts(Arc::new(self.accounts.clone()))
            .tokens(Arc::new(self.tokens.clone()))
            .events(Arc::new(self.events.clone()))
            .mailer(Arc::new(self.mailer.clone()))
            .sender(Arc::new(FixedSender::new(mailbox(NOREPLY))))
            .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
            .clock(Arc::new(self.clock.clone()))
    }

    /// The service from [`Fixture::builder`].
    pub fn service(&self) -> ResetService {
        self.builder().build().expect("the test configuration is valid")
    }

    /// Every event kind recorded so far, oldest first.
    pub fn kinds(&self) -> Vec<EventKind> {
        self.events.all().into_iter().map(|e| e.kind).collect()
    }

    /// Events recorded after the first `skip`.
    pub fn events_since(&self, skip: usize) -> Vec<Event> {
        self.events.all().into_iter().skip(skip).collect()
    }

    /// Every `TokenRejected` reason, oldest first.
    pub fn rejections(&self) -> Vec<RejectReason> {
        self.kinds()
            .into_iter()
            .filter_map(|k| match k {
                EventKind::TokenRejected { reason } => Some(reason),
                _ => None,
            })
            .collect()
    }

    /// The most recent `TokenRejected` reason.
    pub fn last_rejection(&self) -> Option<RejectReason> {
        self.rejections().pop()
    }

    /// Every `RequestIgnored` reason, oldest first.
    pub fn ignore_reasons(&self) -> Vec<IgnoreReason> {
        self.kinds()
            .into_iter()
            .filter_map(|k| match k {
                EventKind::RequestIgnored { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }

    /// How many events of this name were recorded.
    pub fn count(&self, name: &str) -> usize {
        self.kinds().iter().filter(|k| k.name() == name).count()
    }

    /// Requests a reset for `identifier` and returns the token of the reset
    /// email it produced (the last captured email).
    pub async fn request_token(&self, service: &ResetService, identifier: &str) -> String {
        let before = self.mailer.sent().len();
        service
            .request(identifier, &RequestContext::default())
            .await
            .expect("the request is well formed");
        let sent = self.mailer.sent();
        assert_eq!(
            sent.len(),
            before + 1,
            "expected one new email for `{identifier}`"
        );
        reset_token(sent.last().expect("one email"))
    }

    /// Like [`Fixture::request_token`], returning the reset token and the
    /// secret of the email's "this wasn't me" link.
    pub async fn request_links(&self, service: &ResetService, identifier: &str) -> (String, String) {
        let token = self.request_token(service, identifier).await;
        let mail = self.mailer.sent().pop().expect("one email");
        (token, deny_token(&mail))
    }
}

/// Every `http://` or `https://` URL in `text` (text part or HTML).
pub fn links_in(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(start) = rest
        .find("http://")
        .into_iter()
        .chain(rest.find("https://"))
        .min()
    {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>'))
            .unwrap_or(tail.len());
        links.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    links
}

/// Undoes the HTML escaping minijinja applies to attribute values
/// (`/` becomes `&#x2f;`, `&` becomes `&amp;`, ...).
pub fn html_unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The values of every `href="..."` attribute in `html`, unescaped.
pub fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(value, _)| html_unescape(value)))
        .collect()
}

/// Every link of an email: URLs in the text part and hrefs of the HTML part.
pub fn all_links(mail: &OutgoingEmail) -> Vec<String> {
    let mut links = links_in(mail.expose_text());
    links.extend(hrefs(mail.expose_html()));
    links
}

/// The tokens of every reset link standing alone on a line of the text part,
/// in order.
pub fn reset_tokens(mail: &OutgoingEmail) -> Vec<String> {
    mail.expose_text()
        .lines()
        .filter_map(|line| line.trim().strip_prefix(RESET_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// The token of the one reset link in `mail`; checks the HTML part carries
/// the same link.
pub fn reset_token(mail: &OutgoingEmail) -> String {
    let tokens = reset_tokens(mail);
    assert_eq!(
        tokens.len(),
        1,
        "expected exactly one reset link in the text part"
    );
    let token = tokens.into_iter().next().expect("one token");
    let link = format!("{RESET_PREFIX}{token}");
    assert!(
        hrefs(mail.expose_html()).contains(&link),
        "the HTML part must carry the same link"
    );
    token
}

/// The token of the "this wasn't me" link in `mail`.
pub fn deny_token(mail: &OutgoingEmail) -> String {
    let tokens: Vec<&str> = mail
        .expose_text()
        .lines()
        .filter_map(|line| line.trim().strip_prefix(DENY_PREFIX))
        .collect();
    assert_eq!(tokens.len(), 1, "expected exactly one deny link in the text part");
    tokens[0].to_owned()
}
