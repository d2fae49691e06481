//! Acceptance: the service refuses to build with a configuration that would
//! break the flow, and the error names the offending setting or template.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, mailbox};
use resetkit::ResetServiceBuilder;
use resetkit::error::BuildError;
use resetkit::policy::Limit;
use resetkit::prelude::*;
use resetkit::template::{TemplateSource, Templates};

fn build_error(builder: ResetServiceBuilder) -> BuildError {
    match builder.build() {
        Ok(service) => panic!("expected a build error, got {service:?}"),
        Err(error) => error,
    }
}

/// The error names `needle` in its message.
fn assert_names(error: &BuildError, needle: &str) {
    let text = error.to_string();
    assert!(text.contains(needle), "`{text}` does not name `{needle}`");
}

/// A builder with every part except the ones the test leaves out.
fn parts(fx: &Fixture) -> ResetServiceBuilder {
    ResetService::builder()
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .clock(Arc::new(fx.clock.clone()))
}

#[test]
fn missing_parts_are_named() {
    let fx = Fixture::default();
    let accounts = || Arc::new(fx.accounts.clone()) as Arc<dyn AccountDirectory>;
    let tokens = || Arc::new(fx.tokens.clone());
    let events = || Arc::new(fx.events.clone()) as Arc<dyn EventLog>;
    let mailer = || Arc::new(fx.mailer.clone()) as Arc<dyn Mailer>;
    let sender = || Arc::new(FixedSender::new(mailbox("noreply@example.com"))) as Arc<dyn SenderResolver>;

    let no_base = parts(&fx)
        .accounts(accounts())
        .tokens(tokens())
        .events(events())
        .mailer(mailer())
        .sender(sender());
    let error = build_error(no_base);
    assert_eq!(error, BuildError::Missing { setting: "base_url" });
    assert_names(&error, "base_url");

    let no_sender = parts(&fx)
        .base_url("https://app.example.com")
        .accounts(accounts())
        .tokens(tokens())
        .events(events())
        .mailer(mailer());
    let error = build_error(no_sender);
    assert_eq!(error, BuildError::Missing { setting: "sender" });
    assert_names(&error, "sender");

    let no_mailer = parts(&fx)
        .base_url("https://app.example.com")
        .accounts(accounts())
        .tokens(tokens())
        .events(events())
        .sender(sender());
    assert_names(&build_error(no_mailer), "mailer");

    let no_accounts = parts(&fx)
        .base_url("https://app.example.com")
        .tokens(tokens())
        .events(events())
        .mailer(mailer())
        .sender(sender());
    assert_names(&build_error(no_accounts), "accounts");

    let no_tokens = parts(&fx)
        .base_url("https://app.example.com")
        .accounts(accounts())
        .events(events())
        .mailer(mailer())
        .sender(sender());
    assert_names(&build_error(no_tokens), "tokens");

    let no_events = parts(&fx)
        .base_url("https://app.example.com")
        .accounts(accounts())
        .tokens(tokens())
        .mailer(mailer())
        .sender(sender());
    assert_names(&build_error(no_events), "events");

    let outbox_mode_without_outbox = fx.builder().delivery(DeliveryMode::Outbox);
    assert_eq!(
        build_error(outbox_mode_without_outbox),
        BuildError::Missing { setting: "outbox" }
    );
}

#[test]
fn http_base_url_needs_the_explicit_local_testing_switch() {
    let fx = Fixture::default();
    let error = build_error(fx.builder().base_url("http://app.example.com"));
    assert!(
        matches!(
            error,
            BuildError::Invalid {
                setting: "base_url",
                ..
            }
        ),
        "{error:?}"
    );
    assert_names(&error, "base_url");
    assert_names(&error, "http://");
    assert_names(&error, "allow_insecure_http_for_local_testing");

    let service = fx
        .builder()
        .base_url("http://localhost:8080")
        .allow_insecure_http_for_local_testing()
        .build()
        .expect("http is allowed when asked for");
    assert_eq!(
        service.reset_link_target().as_str(),
        "http://localhost:8080/reset"
    );
}

#[test]
fn unusable_base_urls_and_paths_are_named() {
    let fx = Fixture::default();
    for base in [
        "app.example.com",
        "ftp://app.example.com",
        "https://user:pw@app.example.com",
        "https://app.example.com/?next=/x",
        "https://app.example.com/#top",
    ] {
        let error = build_error(fx.builder().base_url(base));
        assert!(
            matches!(
                error,
                BuildError::Invalid {
                    setting: "base_url",
                    ..
                }
            ),
            "{base}: {error:?}"
        );
    }
    // The credentials are not echoed back.
    let error = build_error(fx.builder().base_url("https://user:hunter2@app.example.com"));
    assert!(!error.to_string().contains("hunter2"), "{error}");

    assert_names(
        &build_error(fx.builder().reset_path("/reset?next=x")),
        "reset_path",
    );
    assert_names(&build_error(fx.builder().reset_path("/../admin")), "reset_path");
    assert_names(&build_error(fx.builder().deny_path("/reset")), "deny_path");
    assert_names(&build_error(fx.builder().security_path("/a#b")), "security_path");
    assert_names(&build_error(fx.builder().site_name("  ")), "site_name");
}

#[test]
fn unsafe_policies_are_named() {
    let fx = Fixture::default();
    let too_long = TokenPolicy {
        lifetime: Duration::from_secs(7 * 24 * 3600),
        newest_wins: true,
    };
    assert_names(
        &build_error(fx.builder().token_policy(too_long)),
        "token_policy.lifetime",
    );
    let zero = RateLimits {
        per_account: Some(Limit {
            max: 0,
            window: Duration::from_secs(60),
        }),
        per_client: None,
    };
    assert_names(
        &build_error(fx.builder().rate_limits(zero)),
        "rate_limits.per_account",
    );
    let mut weak = PasswordPolicy::default();
    weak.min_chars = 6;
    assert_names(
        &build_error(fx.builder().password_policy(weak)),
        "password_policy.min_chars",
    );
    let contradictory = fx
        .builder()
        .duplicate_email_policy(DuplicateEmailPolicy::RequireUsername)
        .identifier_mode(IdentifierMode::EmailOnly);
    let error = build_error(contradictory);
    assert_names(&error, "duplicate_email_policy");
    assert_names(&error, "EmailOnly");
}

/// Builds with the English templates after `edit`, expecting an error that
/// names `template` (e.g. `reset.text`) and `locale`.
fn assert_template_refused(edit: impl FnOnce(&mut Templates), template: &str, locale: &str) {
    let fx = Fixture::default();
    let mut templates = Templates::english();
    edit(&mut templates);
    let error = build_error(fx.builder().templates(templates));
    match &error {
        BuildError::Template {
            template: named,
            locale: named_locale,
            ..
        } => {
            assert_eq!(named, template, "{error}");
            assert_eq!(named_locale, locale, "{error}");
        }
        other => panic!("expected a template error for {template}, got {other:?}"),
    }
    assert_names(&error, template);
    assert_names(&error, &format!("`{locale}`"));
    // The message names the link without printing the sample token.
    assert!(!error.to_string().contains("token=") || error.to_string().contains("token=…"));
}

#[test]
fn templates_that_drop_or_break_the_link_are_refused_naming_the_template() {
    // Text body without the link.
    assert_template_refused(
        |t| t.locale_mut("en").reset.text = "Hello {{ username }}, open {{ deny_link }}".into(),
        "reset.text",
        "en",
    );
    // Link present, but not alone on its own line (cannot be copied).
    assert_template_refused(
        |t| {
            t.locale_mut("en").reset.text = "Open {{ link }} now.\n\n{{ deny_link }}\n".into();
        },
        "reset.text",
        "en",
    );
    // HTML body mentions the link but not in an href.
    assert_template_refused(
        |t| {
            t.locale_mut("en").reset.html = "<p>{{ link }}</p><a href=\"{{ deny_link }}\">not me</a>".into();
        },
        "reset.html",
        "en",
    );
    // The "this wasn't me" link dropped.
    assert_template_refused(
        |t| t.locale_mut("en").reset.text = "Open:\n{{ link }}\n".into(),
        "reset.text",
        "en",
    );
    // The combined email keeps only the first account's link.
    assert_template_refused(
        |t| {
            t.locale_mut("en").reset_combined.text =
                "{{ accounts[0].link }}\n{{ accounts[0].deny_link }}\n".into();
        },
        "reset_combined.text",
        "en",
    );
    // The password-changed notice without its security link.
    assert_template_refused(
        |t| t.locale_mut("en").password_changed.html = "<p>Changed.</p>".into(),
        "password_changed.html",
        "en",
    );
    // A subject that leaks the link.
    assert_template_refused(
        |t| t.locale_mut("en").reset.subject = "Your link: {{ link }}".into(),
        "reset.subject",
        "en",
    );
    // A typo'd variable fails at build time, not when the first user asks.
    assert_template_refused(
        |t| t.locale_mut("en").reset.text = "{{ lnk }}".into(),
        "reset.render",
        "en",
    );
    // Syntax errors name the part.
    assert_template_refused(
        |t| t.locale_mut("en").reset.html = "{% if %}".into(),
        "reset.html",
        "en",
    );
    // A broken translation names its locale.
    assert_template_refused(
        |t| {
            t.locale_mut("fr").reset = TemplateSource::new(
                "Réinitialiser",
                "Bonjour {{ username }}",
                "<a href=\"{{ link }}\">ok</a>",
            );
        },
        "reset.text",
        "fr",
    );
}

#[test]
fn a_custom_template_that_keeps_the_links_builds_and_is_used() {
    let fx = Fixture::with_accounts([Account::new("1", "alice", "alice@example.com")]);
    let mut templates = Templates::english();
    templates.locale_mut("en").reset = TemplateSource::new(
        "Password help for {{ username }}",
        "Hi {{ username }}!\n{{ link }}\nNot you?\n{{ deny_link }}\n",
        "<a href=\"{{ link }}\">reset</a> <a href=\"{{ deny_link }}\">not me</a>",
    );
    let service = fx.builder().templates(templates).build().expect("valid template");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(service.request("alice", &RequestContext::default()))
        .expect("accepted");
    let sent = fx.mailer.sent();
    assert_eq!(sent[0].subject, "Password help for alice");
    common::reset_token(&sent[0]);
}
