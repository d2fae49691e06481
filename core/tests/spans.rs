//! `tracing` spans per flow step: request → processing → delivery → link
//! opened → reset carry one keyed account fingerprint, never the address,
//! the account id or the token. Its own test binary: tracing caches
//! callsite interest process-wide, so a thread-local subscriber is only
//! reliable when no other test runs at the same time.

mod common;

use std::sync::{Arc, Mutex};

use common::{Fixture, GOOD_PASSWORD, secret};
use resetkit::memory::CapturingMailer;
use resetkit::prelude::*;

type Spans = Vec<(String, Vec<(String, String)>)>;

/// Every span opened (name and fields as recorded), for
/// [`spans_carry_the_account_fingerprint_never_the_address`].
#[derive(Clone, Default)]
struct SpanLog(Arc<Mutex<Spans>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl tracing::Subscriber for SpanLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut spans = self.0.lock().expect("lock");
        let mut fields = Vec::new();
        span.record(&mut Fields(&mut fields));
        spans.push((span.metadata().name().to_owned(), fields));
        tracing::span::Id::from_u64(u64::try_from(spans.len()).expect("few spans"))
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut spans = self.0.lock().expect("lock");
        let index = usize::try_from(span.into_u64()).expect("id") - 1;
        if let Some((_, fields)) = spans.get_mut(index) {
            values.record(&mut Fields(fields));
        }
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

impl SpanLog {
    fn field(&self, span: &str, field: &str) -> Option<String> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|(name, _)| name == span)
            .flat_map(|(_, fields)| fields.iter())
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.clone())
    }
}

#[tokio::test]
async fn spans_carry_the_account_fingerprint_never_the_address() {
    let log = SpanLog::default();
    let _default = tracing::subscriber::set_default(log.clone());
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let mailer = CapturingMailer::default();
    let service = fx
        .builder()
        .mailer(Arc::new(mailer.clone()))
        .outbox(Arc::new(InMemoryOutbox::default()))
        .build()
        .expect("valid");
    let worker = service.delivery_worker().expect("outbox mode");
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    worker.run_once().await.expect("pass");
    let link = mailer.sent()[0]
        .expose_text()
        .lines()
        .map(str::trim)
        .find(|l| l.contains("token="))
        .expect("a link")
        .to_owned();
    let token = link.split_once("token=").expect("token").1.to_owned();
    service.open_link(&token).await.expect("opens");
    service
        .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await
        .expect("reset");

    assert_eq!(
        log.field("resetkit.request", "outcome").as_deref(),
        Some("accepted")
    );
    assert!(log.field("resetkit.request", "request_id").is_some());
    let account = log
        .field("resetkit.issue_and_queue", "account")
        .expect("the account's fingerprint");
    assert_eq!(account.len(), 16, "{account}");
    for span in ["resetkit.deliver", "resetkit.open_link", "resetkit.complete"] {
        assert_eq!(
            log.field(span, "account").as_deref(),
            Some(account.as_str()),
            "{span} carries the same fingerprint"
        );
    }
    assert!(log.field("resetkit.deliver", "message_id").is_some());
    let all = log.0.lock().expect("lock").clone();
    for (span, fields) in &all {
        for (name, value) in fields {
            // (The account id `a1` is too short to look for: hex ids may hold it.)
            for secret in ["alice@example.com", "alice", token.as_str()] {
                assert!(
                    !value.contains(secret),
                    "{span}.{name} = {value} holds `{secret}`"
                );
            }
        }
    }
}
