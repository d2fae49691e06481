//! The user's first step, [`ResetService::request`]: validate, apply the
//! per-client limit, record the request in the inbox. What happens to it
//! then (accounts, tokens, mail) is in `process.rs`.

use crate::delivery::random_id;
use crate::error::StoreError;
use crate::event::RateScope;
use crate::fingerprint::fingerprint;
use crate::flow::throttle::{Refusal, to_events};
use crate::flow::{RequestAccepted, RequestContext, RequestError, ResetService};
use crate::identifier::parse_identifier;
use crate::metrics::RequestOutcome;
use crate::store::InboxRequest;
use tracing::Instrument as _;

impl ResetService {
    /// Asks for a reset link for `identifier` (an email or a username, per
    /// the identifier mode). Returns the same [`RequestAccepted`] for known,
    /// unknown, disabled, shared and rate-limited identifiers.
    ///
    /// It does one uniform step whatever the identifier: validate, apply
    /// the per-client limit, record the request in the inbox (see
    /// [`RequestProcessing`](crate::flow::RequestProcessing)); workers look
    /// the accounts up, issue tokens and queue the mail. So the answer takes
    /// as long for an unknown identifier as for a known one, on every store.
    ///
    /// Errors: [`RequestError::Invalid`] for malformed input;
    /// [`RequestError::Unavailable`] when the request could not be recorded
    /// (the inbox is full or its database is down), for every identifier
    /// alike: show "try again in a moment", never "check your email".
    pub async fn request(
        &self,
        identifier: &str,
        ctx: &RequestContext,
    ) -> Result<RequestAccepted, RequestError> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "resetkit.request",
            identifier = tracing::field::Empty,
            request_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let answer = self
            .request_inner(identifier, ctx, &span)
            .instrument(span.clone())
            .await;
        let outcome = match &answer {
            Ok(true) => RequestOutcome::Accepted,
            Ok(false) => RequestOutcome::Throttled,
            Err(RequestError::Unavailable(_)) => RequestOutcome::Unavailable,
            Err(_) => RequestOutcome::Invalid,
        };
        span.record("outcome", outcome.as_str());
        if let Some(metrics) = &self.inner.metrics {
            metrics.request_answered(outcome, started.elapsed());
        }
        answer.map(|_| RequestAccepted)
    }

    /// `request`'s work: whether the request was recorded (`false`:
    /// throttled at the door).
    async fn request_inner(
        &self,
        identifier: &str,
        ctx: &RequestContext,
        span: &tracing::Span,
    ) -> Result<bool, RequestError> {
        let identifier = parse_identifier(identifier, self.inner.identifier_mode)?;
        span.record(
            "identifier",
            fingerprint(&self.inner.fingerprint_key, identifier.as_str()).get(..16),
        );
        let ctx = sanitize_context(ctx);
        let inner = &self.inner;
        // The inbox is full: answer "try again" at once (no store call, no
        // quota spent), the same for every identifier.
        if let Some(full) = inner.shed.shedding() {
            return Err(full.into());
        }
        let now = inner.clock.now();
        if let (Some(limit), Some(client)) = (inner.rate_limits.per_client, &ctx.client_addr) {
            let key = self.client_rate_key(client);
            // Refused attempts are not stored: a flood keeps at most
            // `limit.max` entries per client.
            if !inner.limiter.admit(&key, now, limit.window, limit.max).await? {
                // One event per client and window, with a count (see
                // `throttle`): a flood must not fill the activity log.
                let found = self.throttle_events(&Refusal {
                    scope: RateScope::Client,
                    key: &key.as_text(),
                    account: None,
                    client: Some(client),
                    window: limit.window,
                });
                if !found.is_empty() {
                    tracing::info!(client = %client, "password reset requests rate limited (client)");
                    inner.events.record_all(to_events(found, now)).await?;
                }
                return Ok(false);
            }
        }
        let id = random_id().map_err(|e| StoreError::unavailable("request.id", e.to_string()))?;
        span.record("request_id", id.as_str());
        let pushed = inner
            .inbox
            .push(InboxRequest {
                id,
                identifier,
                client: ctx.client_addr,
                locale: ctx.locale,
                received_at: now,
                attempts: 0,
            })
            .await;
        if let Err(error) = pushed {
            inner.shed.close(&error);
            return Err(error.into());
        }
        self.after_push().await?;
        Ok(true)
    }
}

/// Bounds what the host passes in so it can neither bloat the event log nor
/// inject control characters into it.
fn sanitize_context(ctx: &RequestContext) -> RequestContext {
    let clean = |s: &String, max: usize| -> Option<String> {
        let s: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
        (!s.trim().is_empty()).then(|| s.trim().to_owned())
    };
    RequestContext {
        client_addr: ctx.client_addr.as_ref().and_then(|s| clean(s, 64)),
        locale: ctx.locale.as_ref().and_then(|s| clean(s, 35)),
    }
}
