//! Deliberately broken flows: the harness must report the right scenario
//! IDs as failed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use resetkit::account::{Account, AccountDirectory, AccountId};
use resetkit::error::StoreError;
use resetkit::hasher::PasswordHash;
use resetkit::mail::{DeliveryError, MailContent, Mailbox, Mailer, OutgoingEmail, SentReceipt};
use resetkit::memory::InMemoryAccounts;
use resetkit::sender::FixedSender;
use resetkit::store::{
    ConsumeOutcome, DenyOutcome, FinishOutcome, IssueOutcome, Outbox, OutboxCounts, OutboxEntry,
    OutboxStatus, TokenIssue, TokenStore,
};
use resetkit::template::{TemplateSource, Templates};
use resetkit::token::{RevokeReason, TokenHash, TokenRecord, TokenState};
use resetkit::{ResetService, ResetServiceBuilder};
use resetkit_harness::runner;
use resetkit_harness::scenario::{RunReport, Verdict};
use resetkit_harness::scenarios;
use resetkit_harness::target::{MemoryStores, Target, TargetConfig, TargetFactory};

/// A factory that builds the reference flow, then lets a test break one part.
struct Broken {
    name: &'static str,
    tweak: fn(ResetServiceBuilder, &TargetConfig, &MemoryStores) -> ResetServiceBuilder,
}

#[async_trait]
impl TargetFactory for Broken {
    fn describe(&self) -> String {
        format!("broken flow: {}", self.name)
    }

    async fn build(&self, _scenario: &str, config: &TargetConfig) -> Result<Target, String> {
        let stores = MemoryStores::default();
        let mailer: Arc<dyn Mailer> = Arc::new(config.smtp_mailer()?);
        let builder = stores
            .apply(config.apply(ResetService::builder()), config)
            .mailer(mailer);
        let service = (self.tweak)(builder, config, &stores)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(stores.target(service))
    }
}

async fn run(factory: Broken) -> RunReport {
    runner::run(
        &factory,
        &scenarios::all(),
        false,
        &mut resetkit_harness::report::NoProgress,
    )
    .await
}

fn assert_failed(report: &RunReport, expected: &[&str]) {
    let failed = report.failed_ids();
    let errors: Vec<_> = report
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Error(_)))
        .map(|r| (r.info.id, r.verdict.clone()))
        .collect();
    assert!(errors.is_empty(), "{}: harness errors {errors:?}", report.target);
    for id in expected {
        assert!(
            failed.contains(id),
            "{}: {id} should fail; failed: {failed:?}",
            report.target
        );
    }
    for id in &failed {
        assert!(
            expected.contains(id),
            "{}: {id} failed unexpectedly; expected only {expected:?}",
            report.target
        );
    }
    assert_eq!(report.exit_code(), 1, "a MUST failure exits 1");
}

/// Rewrites the link host in both bodies, as a template that hard-codes
/// another host would (the core refuses such templates at build time; see
/// `core_refuses_a_template_whose_link_host_differs`).
struct WrongHostMailer(Arc<dyn Mailer>);

#[async_trait]
impl Mailer for WrongHostMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentReceipt, DeliveryError> {
        let swap = |s: &str| {
            s.replace(
                "https://app.example.test/",
                "https://app.example.test.evil.example/",
            )
        };
        let rewritten = OutgoingEmail::new(
            email.message_id.clone(),
            email.kind,
            email.from.clone(),
            email.reply_to.clone(),
            email.to.clone(),
            MailContent {
                subject: email.subject.clone(),
                text: swap(email.expose_text()),
                html: swap(email.expose_html()),
            },
        );
        self.0.send(&rewritten).await
    }
}

/// Sends to the lower-cased (canonical, as typed) address instead of the stored one.
struct TypedAddressMailer(Arc<dyn Mailer>);

#[async_trait]
impl Mailer for TypedAddressMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentReceipt, DeliveryError> {
        let typed = Mailbox::address_only(&email.to.address().to_lowercase()).map_err(|e| {
            DeliveryError::RecipientRejected {
                recipient: e.to_string(),
                reply: None,
            }
        })?;
        let rewritten = OutgoingEmail::new(
            email.message_id.clone(),
            email.kind,
            email.from.clone(),
            email.reply_to.clone(),
            typed,
            MailContent {
                subject: email.subject.clone(),
                text: email.expose_text().to_owned(),
                html: email.expose_html().to_owned(),
            },
        );
        self.0.send(&rewritten).await
    }
}

/// Which step of the token lifecycle a [`BuggyTokens`] store gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenBug {
    /// Check-then-write consume: reads the record, waits, then spends it
    /// without re-checking — the classic race.
    NonAtomicConsume,
    /// Store contract v1's release: puts the token back to active whatever
    /// happened to it meanwhile, so a link revoked while it was being spent
    /// comes back.
    ReleaseRevives,
    /// Newest-wins as two operations: revoke, yield, insert.
    SplitIssue,
    /// One secret for both links: the deny link's secret also opens and
    /// spends the reset link (the v1 flow mailed the reset token in both).
    SharedSecret,
}

/// An in-memory token store with one deliberate bug.
struct BuggyTokens {
    inner: Arc<dyn TokenStore>,
    bug: TokenBug,
    deny_to_reset: std::sync::Mutex<std::collections::HashMap<TokenHash, TokenHash>>,
    /// Under [`TokenBug::ReleaseRevives`]: revoked tokens this store gave
    /// back, which it then serves as active.
    revived: std::sync::Mutex<std::collections::HashSet<TokenHash>>,
}

impl BuggyTokens {
    fn new(inner: Arc<dyn TokenStore>, bug: TokenBug) -> Self {
        BuggyTokens {
            inner,
            bug,
            deny_to_reset: std::sync::Mutex::new(std::collections::HashMap::new()),
            revived: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }

    fn is_revived(&self, hash: &TokenHash) -> bool {
        self.revived.lock().is_ok_and(|r| r.contains(hash))
    }

    /// Under [`TokenBug::SharedSecret`], the reset token a deny secret maps to.
    fn reset_hash(&self, hash: &TokenHash) -> TokenHash {
        if self.bug != TokenBug::SharedSecret {
            return *hash;
        }
        self.deny_to_reset
            .lock()
            .ok()
            .and_then(|m| m.get(hash).copied())
            .unwrap_or(*hash)
    }
}

#[async_trait]
impl TokenStore for BuggyTokens {
    async fn issue(&self, issue: TokenIssue) -> Result<IssueOutcome, StoreError> {
        if let (Some(deny), Ok(mut map)) = (issue.record.deny_hash, self.deny_to_reset.lock()) {
            map.insert(deny, issue.record.hash);
        }
        if self.bug != TokenBug::SplitIssue || !issue.supersede {
            return self.inner.issue(issue).await;
        }
        let now = issue.record.issued_at;
        let superseded = self
            .inner
            .revoke_for_account(&issue.record.account, RevokeReason::Superseded, now)
            .await?;
        // Let the other requests run between the two steps.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        let outcome = self
            .inner
            .issue(TokenIssue {
                supersede: false,
                ..issue
            })
            .await?;
        Ok(match outcome {
            IssueOutcome::Issued { .. } => IssueOutcome::Issued { superseded },
            refused => refused,
        })
    }
    async fn find(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let found = self.inner.find(&self.reset_hash(hash)).await?;
        if self.is_revived(hash) {
            return Ok(found.map(|r| TokenRecord {
                state: TokenState::Active,
                ..r
            }));
        }
        Ok(found)
    }
    async fn find_by_deny(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.find_by_deny(hash).await
    }
    async fn consume(&self, hash: &TokenHash, now: SystemTime) -> Result<ConsumeOutcome, StoreError> {
        let hash = self.reset_hash(hash);
        if self.revived.lock().is_ok_and(|mut r| r.remove(&hash))
            && let Some(record) = self.inner.find(&hash).await?
        {
            return Ok(ConsumeOutcome::Consumed(TokenRecord {
                state: TokenState::Spending { at: now },
                ..record
            }));
        }
        if self.bug != TokenBug::NonAtomicConsume {
            return self.inner.consume(&hash, now).await;
        }
        let Some(record) = self.inner.find(&hash).await? else {
            return self.inner.consume(&hash, now).await;
        };
        if let Some(reason) = record.unusable_reason(now) {
            return Ok(ConsumeOutcome::Rejected(reason));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = self.inner.consume(&hash, now).await?;
        Ok(ConsumeOutcome::Consumed(TokenRecord {
            state: TokenState::Spending { at: now },
            ..record
        }))
    }
    async fn finish(&self, hash: &TokenHash, now: SystemTime) -> Result<FinishOutcome, StoreError> {
        self.inner.finish(&self.reset_hash(hash), now).await
    }
    async fn release(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let hash = self.reset_hash(hash);
        if self.bug != TokenBug::ReleaseRevives {
            return self.inner.release(&hash).await;
        }
        if self.inner.release(&hash).await? {
            return Ok(true);
        }
        // Put it back whatever happened to it meanwhile.
        if let Ok(mut revived) = self.revived.lock() {
            revived.insert(hash);
        }
        Ok(true)
    }
    async fn revoke_for_account(
        &self,
        account: &AccountId,
        reason: RevokeReason,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        self.inner.revoke_for_account(account, reason, now).await
    }
    async fn deny(&self, hash: &TokenHash, now: SystemTime) -> Result<DenyOutcome, StoreError> {
        self.inner.deny(hash, now).await
    }
    async fn restamp(
        &self,
        account: &AccountId,
        from: &resetkit::account::PasswordStamp,
        to: &resetkit::account::PasswordStamp,
    ) -> Result<usize, StoreError> {
        self.inner.restamp(account, from, to).await
    }
}

/// An outbox that does not keep the token hashes of its messages, so the
/// worker cannot tell that a waiting message's link died.
struct ForgetfulOutbox(Arc<dyn Outbox>);

#[async_trait]
impl Outbox for ForgetfulOutbox {
    async fn enqueue(&self, entry: OutboxEntry) -> Result<(), StoreError> {
        self.0
            .enqueue(OutboxEntry {
                tokens: Vec::new(),
                requested_at: None,
                ..entry
            })
            .await
    }
    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.0.claim(now, max, lease).await
    }
    async fn mark_sent(&self, id: &str, attempt: u32, now: SystemTime) -> Result<(), StoreError> {
        self.0.mark_sent(id, attempt, now).await
    }
    async fn mark_failed(
        &self,
        id: &str,
        attempt: u32,
        error: &DeliveryError,
        now: SystemTime,
        retry_in: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.0.mark_failed(id, attempt, error, now, retry_in).await
    }
    async fn renew(
        &self,
        id: &str,
        attempt: u32,
        now: SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.0.renew(id, attempt, now, lease).await
    }
    async fn mark_dropped(&self, id: &str, attempt: u32, reason: &str) -> Result<(), StoreError> {
        self.0.mark_dropped(id, attempt, reason).await
    }
    async fn status(&self, id: &str) -> Result<Option<OutboxStatus>, StoreError> {
        self.0.status(id).await
    }
    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        self.0.counts().await
    }
}

/// A directory with a remote store's latency on password writes. The core
/// re-checks the account after consuming a token, which alone stops most
/// double spends on an in-memory directory; with real latency the racing
/// completions all pass that check before any write lands.
struct SlowWrites(Arc<InMemoryAccounts>);

#[async_trait]
impl AccountDirectory for SlowWrites {
    async fn find_by_email(&self, e: &str) -> Result<Vec<Account>, StoreError> {
        self.0.find_by_email(e).await
    }
    async fn find_by_username(&self, u: &str) -> Result<Option<Account>, StoreError> {
        self.0.find_by_username(u).await
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.0.find_by_id(id).await
    }
    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.0.set_password_hash(id, hash).await
    }
}

fn smtp(config: &TargetConfig) -> Arc<dyn Mailer> {
    match config.smtp_mailer() {
        Ok(m) => Arc::new(m),
        Err(e) => panic!("mailer: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_host_differing_from_the_base_fails_the_link_scenarios() {
    let report = run(Broken {
        name: "link host differs from the base URL",
        tweak: |b, config, _| b.mailer(Arc::new(WrongHostMailer(smtp(config)))),
    })
    .await;
    // Links that leave the configured base break every scenario that uses
    // one; the link-correctness scenario must be among them.
    let failed = report.failed_ids();
    let verdicts: Vec<_> = report
        .results
        .iter()
        .map(|r| (r.info.id, r.verdict.clone(), r.actual.clone()))
        .collect();
    assert!(
        failed.contains(&"RST-LINK-003"),
        "failed: {failed:?} {verdicts:#?}"
    );
    assert!(failed.contains(&"RST-FLOW-001"), "failed: {failed:?}");
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sender_without_fallback_fails_the_sender_scenarios() {
    let report = run(Broken {
        name: "one fixed sender, no fallback",
        tweak: |b, _, _| b.sender(Arc::new(FixedSender::new(TargetConfig::primary_sender()))),
    })
    .await;
    assert_failed(&report, &["RST-SEND-001", "RST-SEND-002", "RST-SEND-006"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_atomic_consume_fails_the_concurrency_scenario() {
    let report = run(Broken {
        name: "token store with check-then-write consume",
        tweak: |b, _, stores| {
            b.token_store(Arc::new(BuggyTokens::new(
                stores.tokens.clone(),
                TokenBug::NonAtomicConsume,
            )))
            .accounts(Arc::new(SlowWrites(stores.accounts.clone())))
        },
    })
    .await;
    assert_failed(&report, &["RST-CONC-001"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailer_sending_to_the_typed_address_fails_the_stored_address_scenario() {
    let report = run(Broken {
        name: "mailer sends to the typed address",
        tweak: |b, config, _| b.mailer(Arc::new(TypedAddressMailer(smtp(config)))),
    })
    .await;
    assert_failed(&report, &["RST-MAIL-001"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_that_spares_a_token_being_spent_fails_the_revival_scenario() {
    let report = run(Broken {
        name: "release puts the token back to active, revoked or not",
        tweak: |b, _, stores| {
            b.token_store(Arc::new(BuggyTokens::new(
                stores.tokens.clone(),
                TokenBug::ReleaseRevives,
            )))
        },
    })
    .await;
    assert_failed(&report, &["RST-RACE-001"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_wins_in_two_steps_fails_the_one_live_link_scenario() {
    let report = run(Broken {
        name: "issue revokes, yields, then inserts",
        tweak: |b, _, stores| {
            b.token_store(Arc::new(BuggyTokens::new(
                stores.tokens.clone(),
                TokenBug::SplitIssue,
            )))
        },
    })
    .await;
    assert_failed(&report, &["RST-RACE-002"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_without_token_hashes_fails_the_superseded_mail_scenario() {
    let report = run(Broken {
        name: "outbox forgets which tokens a message carries",
        tweak: |b, config, stores| {
            if config.delivery == resetkit::delivery::DeliveryMode::Outbox {
                b.outbox(Arc::new(ForgetfulOutbox(stores.outbox.clone())))
            } else {
                b
            }
        },
    })
    .await;
    assert_failed(&report, &["RST-RACE-003"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_secret_for_reset_and_deny_fails_the_deny_link_scenario() {
    let report = run(Broken {
        name: "the deny link's secret also resets",
        tweak: |b, _, stores| {
            b.token_store(Arc::new(BuggyTokens::new(
                stores.tokens.clone(),
                TokenBug::SharedSecret,
            )))
        },
    })
    .await;
    assert_failed(&report, &["RST-DENY-002"]);
}

#[test]
fn core_refuses_a_template_whose_link_host_differs() {
    let mut templates = Templates::english();
    let en = templates.locale_mut("en");
    en.reset = TemplateSource::new(
        "Reset your password",
        "Open:\n{{ link | replace(\"app.example.test\", \"evil.example\") }}\n",
        "<a href=\"{{ link | replace('app.example.test', 'evil.example') }}\">Reset</a>",
    );
    let stores = MemoryStores::default();
    let err = stores
        .apply(
            ResetService::builder(),
            &TargetConfig::new(([127, 0, 0, 1], 25).into()),
        )
        .base_url("https://app.example.test")
        .mailer(Arc::new(resetkit::memory::CapturingMailer::default()))
        .sender(Arc::new(FixedSender::new(TargetConfig::primary_sender())))
        .templates(templates)
        .build()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("reset.text"),
        "the build names the template: {err:?}"
    );
}

/// The pre-fingerprint behaviour: a directory (like a host's audit hook)
/// that records every lookup finding nothing in the event trail with the
/// identifier as typed, in clear.
struct ClearTextLookups {
    accounts: Arc<InMemoryAccounts>,
    events: Arc<resetkit::memory::InMemoryEventLog>,
    clock: Arc<resetkit::clock::ManualClock>,
}

impl ClearTextLookups {
    async fn note_miss(&self, identifier: &str) -> Result<(), StoreError> {
        use resetkit::clock::Clock as _;
        use resetkit::store::EventLog as _;
        self.events
            .record(resetkit::event::Event::new(
                self.clock.now(),
                None,
                resetkit::event::EventKind::RequestIgnored {
                    reason: resetkit::event::IgnoreReason::UnknownIdentifier,
                    fingerprint: identifier.to_owned(),
                },
            ))
            .await
    }
}

#[async_trait]
impl AccountDirectory for ClearTextLookups {
    async fn find_by_email(&self, e: &str) -> Result<Vec<Account>, StoreError> {
        let found = self.accounts.find_by_email(e).await?;
        if found.is_empty() {
            self.note_miss(e).await?;
        }
        Ok(found)
    }
    async fn find_by_username(&self, u: &str) -> Result<Option<Account>, StoreError> {
        let found = self.accounts.find_by_username(u).await?;
        if found.is_none() {
            self.note_miss(u).await?;
        }
        Ok(found)
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.accounts.find_by_id(id).await
    }
    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError> {
        self.accounts.set_password_hash(id, hash).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_identifiers_logged_in_clear_fail_the_event_trail_scenario() {
    let report = run(Broken {
        name: "unknown identifiers written to the event trail in clear",
        tweak: |b, config, stores| {
            b.accounts(Arc::new(ClearTextLookups {
                accounts: stores.accounts.clone(),
                events: stores.events.clone(),
                clock: config.clock.clone(),
            }))
        },
    })
    .await;
    assert_failed(&report, &["RST-STORE-001"]);
}

/// A host that renders the operator's edited reset email itself, after
/// resetkit's lint has seen only the built-in templates: the edit that hid
/// the link (in a comment, or for every account but the sample) reaches
/// users. Here the edit is applied by commenting out the reset link.
struct EditAfterLintMailer(Arc<dyn Mailer>);

#[async_trait]
impl Mailer for EditAfterLintMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentReceipt, DeliveryError> {
        let html = email.expose_html();
        let anchor = "<a href=\"https://app.example.test/reset?";
        let edited = match html.find(anchor) {
            Some(start) => {
                let end = html[start..].find("</a>").map_or(html.len(), |e| start + e + 4);
                format!("{}<!-- {} -->{}", &html[..start], &html[start..end], &html[end..])
            }
            None => html.to_owned(),
        };
        let rewritten = OutgoingEmail::new(
            email.message_id.clone(),
            email.kind,
            email.from.clone(),
            email.reply_to.clone(),
            email.to.clone(),
            MailContent {
                subject: email.subject.clone(),
                text: email.expose_text().to_owned(),
                html: edited,
            },
        );
        self.0.send(&rewritten).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item4_template_edits_applied_after_the_lint_fail_the_template_scenarios() {
    let report = run(Broken {
        name: "operator's template edits applied after the lint",
        tweak: |b, config, _| {
            if config.templates == Templates::english() {
                b
            } else {
                b.templates(Templates::english())
                    .mailer(Arc::new(EditAfterLintMailer(smtp(config))))
            }
        },
    })
    .await;
    assert_failed(&report, &["RST-TPL-001", "RST-TPL-002"]);
    let evidence: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.info.id.starts_with("RST-TPL"))
        .filter_map(|r| r.actual.clone())
        .collect();
    assert!(
        evidence.iter().all(|a| a.contains("without one")),
        "the failure shows the email went out without a clickable link: {evidence:?}"
    );
}
