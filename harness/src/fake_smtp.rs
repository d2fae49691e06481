//! Fake SMTP server (work in progress).
