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
use resetkit::store::{ConsumeOutcome, RateKey, TokenStore};
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

/// Check-then-write consume: reads the record, waits, then spends it
/// without re-checking — the classic race.
struct NonAtomicConsume(Arc<dyn TokenStore>);

#[async_trait]
impl TokenStore for NonAtomicConsume {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        self.0.insert(record).await
    }
    async fn find(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.0.find(hash).await
    }
    async fn consume(&self, hash: &TokenHash, now: SystemTime) -> Result<ConsumeOutcome, StoreError> {
        let Some(record) = self.0.find(hash).await? else {
            return self.0.consume(hash, now).await;
        };
        if let Some(reason) = record.unusable_reason(now) {
            return Ok(ConsumeOutcome::Rejected(reason));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = self.0.consume(hash, now).await?;
        Ok(ConsumeOutcome::Consumed(TokenRecord {
            state: TokenState::Used { at: now },
            ..record
        }))
    }
    async fn release(&self, hash: &TokenHash) -> Result<(), StoreError> {
        self.0.release(hash).await
    }
    async fn revoke_for_account(
        &self,
        account: &AccountId,
        reason: RevokeReason,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        self.0.revoke_for_account(account, reason, now).await
    }
    async fn hit(&self, key: &RateKey, now: SystemTime, window: Duration) -> Result<u32, StoreError> {
        self.0.hit(key, now, window).await
    }
    async fn admit(
        &self,
        key: &RateKey,
        now: SystemTime,
        window: Duration,
        max: u32,
    ) -> Result<bool, StoreError> {
        self.0.admit(key, now, window, max).await
    }
    async fn purge_expired(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        self.0.purge_expired(before, batch).await
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
            b.tokens(Arc::new(NonAtomicConsume(stores.tokens.clone())))
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
