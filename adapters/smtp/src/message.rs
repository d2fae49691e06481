//! Turns an [`OutgoingEmail`] into MIME: multipart/alternative (text and
//! HTML), `Auto-Submitted`, Message-ID, Date, Reply-To when given. Display
//! names are encoded by lettre (quoted or RFC 2047), and the core's
//! [`Mailbox`] already refuses CR/LF, so no header can be injected.

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox as LettreMailbox, MultiPart};
use resetkit::mail::{DeliveryError, Mailbox, OutgoingEmail};

fn mailbox(m: &Mailbox) -> Option<LettreMailbox> {
    Some(LettreMailbox::new(
        m.name().map(str::to_owned),
        m.address().parse().ok()?,
    ))
}

/// Formats `email` as the bytes sent after `DATA`.
pub(crate) fn format(email: &OutgoingEmail) -> Result<Vec<u8>, DeliveryError> {
    let from = mailbox(&email.from).ok_or_else(|| DeliveryError::Misconfigured {
        reason: format!("sender address <{}> cannot be used in SMTP", email.from.address()),
        reply: None,
    })?;
    let to = mailbox(&email.to).ok_or_else(|| DeliveryError::RecipientRejected {
        recipient: email.to.address().to_owned(),
        reply: None,
    })?;
    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(email.message_id.clone()))
        .date_now();
    for (name, value) in email.extra_headers() {
        builder = builder.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(name),
            (*value).to_owned(),
        ));
    }
    if let Some(reply_to) = &email.reply_to {
        let reply_to = mailbox(reply_to).ok_or_else(|| DeliveryError::Misconfigured {
            reason: format!("Reply-To address <{}> cannot be used in SMTP", reply_to.address()),
            reply: None,
        })?;
        builder = builder.reply_to(reply_to);
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(
            email.expose_text().to_owned(),
            email.expose_html().to_owned(),
        ))
        .map_err(|e| DeliveryError::Misconfigured {
            reason: format!("cannot build the message: {e}"),
            reply: None,
        })?;
    Ok(message.formatted())
}
