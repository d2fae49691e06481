//! SMTP mailer for resetkit (work in progress).
