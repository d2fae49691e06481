use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::mail::{Mailer, OutgoingEmail, SentReceipt};

/// A mailer that keeps every message in memory instead of sending it.
#[derive(Debug, Clone, Default)]
pub struct CapturingMailer {
    sent: Arc<Mutex<Vec<OutgoingEmail>>>,
}

impl CapturingMailer {
    /// Every captured message, oldest first.
    pub fn sent(&self) -> Vec<OutgoingEmail> {
        lock(&self.sent).clone()
    }

    /// Captured messages to `address` (compared case-insensitively).
    pub fn sent_to(&self, address: &str) -> Vec<OutgoingEmail> {
        lock(&self.sent)
            .iter()
            .filter(|m| m.to.address().eq_ignore_ascii_case(address))
            .cloned()
            .collect()
    }

    /// Forgets captured messages.
    pub fn clear(&self) {
        lock(&self.sent).clear();
    }
}

#[async_trait]
impl Mailer for CapturingMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentReceipt, crate::mail::DeliveryError> {
        lock(&self.sent).push(email.clone());
        Ok(SentReceipt {
            message_id: email.message_id.clone(),
            server_reply: Some("250 captured".into()),
        })
    }
}
