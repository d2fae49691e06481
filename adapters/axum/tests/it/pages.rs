//! The pages over HTTP: the flow, the link landing, the deny and security
//! pages, templates and locale, the mount path.

use crate::common;

use std::sync::{Arc, Mutex};

use axum::http::request::Parts;
use common::{ALICE_PASSWORD, Browser, password_is, start, start_with};
use reqwest::StatusCode;
use resetkit::account::AccountId;
use resetkit_axum::{BuildError, HostSessions, ResetPages, ServeOptions, SignedIn};

const NEW_PASSWORD: &str = "tangerine lighthouse orbit 42";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_link_new_password_done() {
    let app = start().await;
    let user = Browser::new(&app);
    let form = user.get("/forgot").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("<label for=\"identifier\">"), "labelled field");
    user.forgot("alice@example.test")
        .await
        .assert_redirect("/forgot/sent");
    let sent = user.get("/forgot/sent").await;
    assert!(sent.body.contains(resetkit::RequestAccepted::MESSAGE));

    let link = app.reset_path("alice@example.test");
    user.get(&link).await.assert_redirect("/reset/new");
    let form = user.get("/reset/new").await;
    assert!(form.body.contains(">alice<"), "{}", form.body);
    assert!(!form.body.contains(link.split("token=").nth(1).unwrap()));
    let csrf = form.csrf();
    let mismatch = user
        .post(
            "/reset/new",
            &[
                ("password", NEW_PASSWORD),
                ("confirm", "something else"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::OK);
    assert!(mismatch.body.contains("do not match"));
    assert!(
        mismatch
            .body
            .contains("aria-describedby=\"password-error password-help\""),
        "the error is tied to the field"
    );
    user.post(
        "/reset/new",
        &[
            ("password", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
            ("csrf_token", &csrf),
        ],
    )
    .await
    .assert_redirect("/reset/done");
    assert!(
        user.get("/reset/done")
            .await
            .body
            .contains("Your password has been changed")
    );
    assert!(password_is(&app, "alice", NEW_PASSWORD).await);
    user.get(&link).await.assert_redirect("/reset/invalid");
    let invalid = user.get("/reset/invalid").await;
    assert!(invalid.body.contains(resetkit::flow::INVALID_LINK_MESSAGE));
}

/// The victim's form stays bound to the victim's link, whatever link is
/// opened later in the same browser (a cross-site navigation to an
/// attacker's own valid link).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_link_does_not_redirect_the_open_form() {
    let app = start().await;
    let attacker = Browser::new(&app);
    attacker.forgot("mallory").await;
    let mallory_link = app.reset_path("mallory@example.test");

    let victim = Browser::new(&app);
    victim.forgot("alice").await;
    victim
        .get(&app.reset_path("alice@example.test"))
        .await
        .assert_redirect("/reset/new");
    let open_form = victim.get("/reset/new").await;
    assert!(open_form.body.contains(">alice<"));
    // Another tab, or a page the victim visits, opens mallory's link.
    victim.get(&mallory_link).await.assert_redirect("/reset/new");
    assert!(victim.get("/reset/new").await.body.contains(">mallory<"));
    // The form that was already open still sets alice's password.
    victim
        .post(
            "/reset/new",
            &[
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
                ("csrf_token", &open_form.csrf()),
            ],
        )
        .await
        .assert_redirect("/reset/done");
    assert!(password_is(&app, "alice", NEW_PASSWORD).await);
    assert!(!password_is(&app, "mallory", NEW_PASSWORD).await);
    assert!(password_is(&app, "mallory", ALICE_PASSWORD).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_link_cookie_does_not_hand_over_the_victims_form() {
    let app = start().await;
    let attacker = Browser::new(&app);
    attacker.forgot("mallory").await;
    attacker
        .get(&app.reset_path("mallory@example.test"))
        .await
        .assert_redirect("/reset/new");
    let planted = attacker.cookie("resetkit_link").expect("the link cookie");
    // The attacker plants their own link cookie in the victim's browser.
    let victim = Browser::new(&app);
    victim.plant("resetkit_link", &planted);
    victim.forgot("alice").await;
    victim
        .get(&app.reset_path("alice@example.test"))
        .await
        .assert_redirect("/reset/new");
    assert!(victim.get("/reset/new").await.body.contains(">alice<"));
    // With the id they planted, the attacker still sees only their own link.
    let seen = attacker.get("/reset/new").await;
    assert!(!seen.body.contains(">alice<"), "the victim's form leaked");
    assert!(seen.body.contains(">mallory<"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deny_link_asks_before_revoking() {
    let app = start().await;
    let user = Browser::new(&app);
    user.forgot("bob").await;
    let link = app.reset_path("bob@example.test");
    let deny = app.deny_path("bob@example.test");
    let scanner = Browser::new(&app);
    scanner.head(&deny).await;
    let confirm = scanner.get(&deny).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("action=\"/reset/deny\""));
    user.get(&link).await.assert_redirect("/reset/new");
    scanner
        .post("/reset/deny", &[("csrf_token", &confirm.csrf())])
        .await
        .assert_redirect("/reset/deny/done");
    assert!(scanner.get("/reset/deny/done").await.body.contains("cancelled"));
    user.get("/reset/new").await.assert_redirect("/reset/invalid");
    Browser::new(&app)
        .get("/reset/deny")
        .await
        .assert_redirect("/reset/invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_deny_link_does_not_redirect_the_open_confirmation() {
    let app = start().await;
    let user = Browser::new(&app);
    user.forgot("bob").await;
    user.forgot("mallory").await;
    let bob_link = app.reset_path("bob@example.test");
    let mallory_link = app.reset_path("mallory@example.test");
    let open_form = user.get(&app.deny_path("bob@example.test")).await;
    user.get(&app.deny_path("mallory@example.test")).await;
    user.post("/reset/deny", &[("csrf_token", &open_form.csrf())])
        .await
        .assert_redirect("/reset/deny/done");
    let other = Browser::new(&app);
    other.get(&bob_link).await.assert_redirect("/reset/invalid");
    other.get(&mallory_link).await.assert_redirect("/reset/new");
}

struct FakeSessions {
    revoked: Mutex<Vec<AccountId>>,
}

#[resetkit::async_trait]
impl HostSessions for FakeSessions {
    async fn signed_in(&self, request: &Parts) -> Option<SignedIn> {
        let mut cookies = request.headers.get_all("cookie").iter();
        let signed_in = cookies.any(|c| c.to_str().is_ok_and(|c| c.contains("host_session=alice")));
        signed_in.then(|| SignedIn {
            account: AccountId::from("alice"),
            username: "alice".into(),
        })
    }
}

#[resetkit::async_trait]
impl resetkit::SessionRevoker for FakeSessions {
    async fn revoke_sessions(&self, account: &AccountId) -> Result<(), String> {
        self.revoked
            .lock()
            .map_err(|e| e.to_string())?
            .push(account.clone());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_page_signs_out_everywhere_through_the_host_hook() {
    let sessions = Arc::new(FakeSessions {
        revoked: Mutex::new(Vec::new()),
    });
    let hook = sessions.clone();
    let app = start_with(
        move |b| b.host_sessions(hook).sign_in_url("/login"),
        ServeOptions::default(),
    )
    .await;
    let anonymous = Browser::new(&app);
    let page = anonymous.get("/account/security").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("reset your password again") && !page.body.contains("Sign out of every session")
    );

    let user = Browser::new(&app);
    let signed_in = user
        .request(
            reqwest::Method::GET,
            "/account/security",
            &[("cookie", "host_session=alice")],
            None,
        )
        .await;
    assert!(signed_in.body.contains("Signed in as <strong>alice</strong>"));
    let csrf_cookie = user.cookie(resetkit_axum::CSRF_COOKIE).unwrap();
    let body = format!("csrf_token={}", signed_in.csrf());
    let cookie = format!("host_session=alice; {}={csrf_cookie}", resetkit_axum::CSRF_COOKIE);
    let done = user
        .request(
            reqwest::Method::POST,
            "/account/security",
            &[("cookie", &cookie)],
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await;
    done.assert_redirect("/login");
    assert_eq!(*sessions.revoked.lock().unwrap(), vec![AccountId::from("alice")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_overridable_and_follow_accept_language() {
    let app = start_with(
        |b| {
            b.template(
                "forgot_sent.html",
                "{% extends \"base.html\" %}{% block content %}<p>HOST COPY: {{ accepted_message }}</p>{% endblock %}",
            )
            .template(
                "pt-BR/forgot.html",
                "{% extends \"base.html\" %}{% block heading %}Esqueceu a senha?{% endblock %}\
                 {% block content %}<form method=\"post\" action=\"{{ mount }}/forgot\">\
                 <input type=\"hidden\" name=\"csrf_token\" value=\"{{ csrf_token }}\">\
                 <label for=\"identifier\">Usuário</label><input id=\"identifier\" name=\"identifier\"></form>{% endblock %}",
            )
            .template(
                "fr/forgot.html",
                "{% extends \"base.html\" %}{% block heading %}Mot de passe oublié ?{% endblock %}\
                 {% block content %}<form method=\"post\" action=\"{{ mount }}/forgot\">\
                 <input type=\"hidden\" name=\"csrf_token\" value=\"{{ csrf_token }}\">\
                 <label for=\"identifier\">Identifiant</label><input id=\"identifier\" name=\"identifier\"></form>{% endblock %}",
            )
        },
        ServeOptions::default(),
    )
    .await;
    let user = Browser::new(&app);
    assert!(user.get("/forgot/sent").await.body.contains("HOST COPY"));
    let french = user
        .request(
            reqwest::Method::GET,
            "/forgot",
            &[("accept-language", "fr-CH, fr;q=0.9, en;q=0.5")],
            None,
        )
        .await;
    assert!(french.body.contains("Mot de passe oublié") && french.body.contains("lang=\"fr\""));
    // A language registered with an upper-case region is found too.
    let brazilian = user
        .request(
            reqwest::Method::GET,
            "/forgot",
            &[("accept-language", "pt-BR")],
            None,
        )
        .await;
    assert!(brazilian.body.contains("Esqueceu a senha?"), "{}", brazilian.body);
    let english = user
        .request(
            reqwest::Method::GET,
            "/forgot",
            &[("accept-language", "de, en;q=0.8")],
            None,
        )
        .await;
    assert!(english.body.contains("Forgot your password?") && english.body.contains("lang=\"en\""));
    // A broken override is a start-up error naming the template.
    let service = app.pages.service().clone();
    let error = ResetPages::builder(service)
        .template("reset_form.html", "{% for %}")
        .build()
        .unwrap_err();
    assert!(
        matches!(error, BuildError::Template { ref name, .. } if name == "reset_form.html"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_mounted_under_a_prefix_link_and_redirect_there() {
    // Links built for /password/... but pages served at the root: refused.
    let app = start().await;
    let misplaced = ResetPages::builder(app.pages.service().clone())
        .mount_path("/password")
        .build()
        .unwrap_err();
    assert!(misplaced.to_string().contains("link_paths"), "{misplaced}");
    let bad = ResetPages::builder(app.pages.service().clone())
        .mount_path("password/")
        .build()
        .unwrap_err();
    assert!(matches!(bad, BuildError::MountPath(_)));
    for odd in ["//evil.example", "/a/../b", "/./x", "/a//b"] {
        let refused = ResetPages::builder(app.pages.service().clone())
            .mount_path(odd)
            .build()
            .unwrap_err();
        assert!(matches!(refused, BuildError::MountPath(_)), "{odd}: {refused}");
    }

    let nested = common::start_nested("/password", ServeOptions::default()).await;
    let user = Browser::new(&nested);
    let form = user.get("/password/forgot").await;
    assert!(form.body.contains("action=\"/password/forgot\""), "{}", form.body);
    user.post(
        "/password/forgot",
        &[("identifier", "alice"), ("csrf_token", &form.csrf())],
    )
    .await
    .assert_redirect("/password/forgot/sent");
    let link = nested.link_path_under("alice@example.test", "/password/reset?token=");
    user.get(&link).await.assert_redirect("/password/reset/new");
    let form = user.get("/password/reset/new").await;
    assert!(form.body.contains("action=\"/password/reset/new\""));
    user.post(
        "/password/reset/new",
        &[
            ("password", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
            ("csrf_token", &form.csrf()),
        ],
    )
    .await
    .assert_redirect("/password/reset/done");
}

/// Serves another `ResetPages` over the same service (a second instance
/// behind a load balancer); returns its base URL.
async fn twin(
    app: &common::App,
    edit: impl FnOnce(resetkit_axum::ResetPagesBuilder) -> resetkit_axum::ResetPagesBuilder,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let pages = edit(ResetPages::builder(app.pages.service().clone()).secure_cookies(false))
        .build()
        .expect("pages");
    tokio::spawn(resetkit_axum::serve(
        listener,
        pages.router(),
        ServeOptions::default(),
        std::future::pending(),
    ));
    format!("http://{addr}")
}

fn secrets(pages_key: &str) -> resetkit::secrets::DeploymentSecrets {
    resetkit::secrets::DeploymentSecrets::new(
        resetkit::secrets::KeyRing::new(pages_key.as_bytes().to_vec(), None),
        resetkit::fingerprint::FingerprintKey::new(b"fingerprint key of the fleet".to_vec()).expect("key"),
    )
}

/// With the same secrets, a form served by one instance is accepted by
/// another (no sticky sessions); with other keys it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_with_the_same_secrets_accepts_the_open_form() {
    let fleet = secrets("the fleet's pages key, 32 bytes or more");
    let app = start_with(|b| b.secrets(&fleet), ServeOptions::default()).await;
    let same = twin(&app, |b| b.secrets(&fleet)).await;
    let other = twin(&app, |b| {
        b.secrets(&secrets("another site's pages key, 32 bytes+"))
    })
    .await;

    let user = Browser::new(&app);
    user.forgot("alice").await.assert_redirect("/forgot/sent");
    user.get(&app.reset_path("alice@example.test"))
        .await
        .assert_redirect("/reset/new");
    let form = user.get("/reset/new").await.csrf();
    // The load balancer sends the next requests elsewhere, same cookies.
    let moved = |base: &str| {
        let b = Browser::at(base.to_owned());
        for name in ["resetkit_link", "resetkit_opened", "resetkit_csrf"] {
            if let Some(value) = user.cookie(name) {
                b.plant(name, &value);
            }
        }
        b
    };
    let elsewhere = moved(&other);
    elsewhere
        .get("/reset/new")
        .await
        .assert_redirect("/reset/invalid");
    let refused = elsewhere
        .post(
            "/reset/new",
            &[
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
                ("csrf_token", &form),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // The forgot form of one instance posts to the other.
    let on_twin = moved(&same);
    let forgot_csrf = user.get("/forgot").await.csrf();
    on_twin
        .post("/forgot", &[("identifier", "bob"), ("csrf_token", &forgot_csrf)])
        .await
        .assert_redirect("/forgot/sent");
    assert!(on_twin.get("/reset/new").await.body.contains(">alice<"));
    on_twin
        .post(
            "/reset/new",
            &[
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
                ("csrf_token", &form),
            ],
        )
        .await
        .assert_redirect("/reset/done");
    assert!(password_is(&app, "alice", NEW_PASSWORD).await);
}
