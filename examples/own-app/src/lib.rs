//! The README's recipe "Add reset to your own app", as a crate CI builds
//! and tests (`tests/recipe.rs` walks it on PostgreSQL): an app with its
//! own `accounts` table (uuid ids, a `login` column, addresses shared by
//! two accounts, a `locked` flag, Django-format PBKDF2 hashes) adds
//! password reset with resetkit's PostgreSQL stores, the outbox and its
//! delivery worker, the SMTP mailer and the reset pages, and upgrades old
//! hashes at sign-in without killing a pending reset link.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, State};
use axum::response::{Html, IntoResponse, Response};
use resetkit::SecretString;
use resetkit::mail::Mailbox;
use resetkit::prelude::*;
use resetkit::sender::FixedSender;
use resetkit_axum::{ResetPages, ServeOptions};
use resetkit_postgres::{PgStores, UsersTable};
use resetkit_smtp::SmtpMailer;
use tokio::sync::watch;

/// What the app is configured with.
pub struct Settings {
    /// The public base URL links are built on (`https://app.example.com`).
    pub base_url: String,
    /// The SMTP server (`smtp://user:pass@mail.example.com:587?tls=starttls`).
    pub smtp_url: String,
    /// The From of reset emails.
    pub from: String,
    /// The schema resetkit's own tables go in (tokens, events, outbox, ...).
    pub resetkit_schema: String,
}

/// Errors of the set-up, each naming the setting at fault.
pub type SetupError = Box<dyn std::error::Error + Send + Sync>;

// --- recipe: service ---
/// Step 1-5: stores on the app's own table, migrations, outbox, SMTP.
pub async fn reset_service(pool: sqlx::PgPool, settings: &Settings) -> Result<ResetService, SetupError> {
    let stores = PgStores::new(pool, &settings.resetkit_schema)?;
    // The app's table and its columns; checked against the catalog (the id
    // type, uuid here, is read from it): a wrong name fails here.
    let users = UsersTable::new("accounts")
        .username_column("login")
        .email_column("email")
        .password_hash_column("password") // Django's pbkdf2_sha256$… work as they are
        .disabled_column("locked");
    let accounts = stores.verified_accounts_for(users).await?;
    stores.migrate().await?; // resetkit's tables only, in settings.resetkit_schema
    let mut builder = ResetService::builder()
        .base_url(&settings.base_url)
        .accounts(accounts)
        .tokens(stores.tokens.clone())
        .events(stores.events.clone())
        .inbox(stores.inbox.clone()) // accepted requests survive a restart
        .outbox(stores.outbox.clone()) // mail waits here while SMTP is down...
        .retention_stores(stores.retention_stores()) // ...and old records are purged
        .mailer(Arc::new(SmtpMailer::from_url(&settings.smtp_url)?))
        .sender(Arc::new(FixedSender::new(Mailbox::address_only(&settings.from)?)));
    if settings.base_url.starts_with("http://127.0.0.1") {
        builder = builder.allow_insecure_http_for_local_testing();
    }
    Ok(builder.build()?)
}
// --- end ---

// --- recipe: serve ---
/// Step 6-7: the delivery worker, the pages next to the app's own routes.
pub async fn serve(
    service: ResetService,
    pool: sqlx::PgPool,
    settings: &Settings,
    listener: tokio::net::TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(), SetupError> {
    // ... and this worker sends it: with an outbox, nothing is mailed until
    // the host starts one (on one instance or several: they share the queue).
    let worker = service.delivery_worker().ok_or("the service has no outbox")?;
    let mut stop = shutdown.clone();
    tokio::spawn(async move {
        worker
            .run(Duration::from_secs(1), async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    });
    let pages = ResetPages::builder(service.clone())
        .sign_in_url("/login")
        .secure_cookies(settings.base_url.starts_with("https://"))
        .build()?;
    let app = axum::Router::new()
        .route("/login", axum::routing::post(sign_in))
        .with_state(SignIn { service, pool })
        .merge(pages.router()); // /forgot, /reset, /reset/new, ...
    let mut stop = shutdown;
    resetkit_axum::serve(listener, app, ServeOptions::default(), async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await?;
    Ok(())
}
// --- end ---

/// What the sign-in handler needs.
#[derive(Clone)]
struct SignIn {
    service: ResetService,
    pool: sqlx::PgPool,
}

/// The sign-in form.
#[derive(serde::Deserialize)]
struct SignInForm {
    login: String,
    password: String,
}

// --- recipe: sign-in ---
/// Step 8: check the password, and replace an old-format hash once it is
/// known to be right (re-hashing the same password keeps a pending link).
async fn sign_in(State(app): State<SignIn>, Form(form): Form<SignInForm>) -> Response {
    let id: Option<String> = sqlx::query_scalar("SELECT id::text FROM accounts WHERE login = $1")
        .bind(&form.login)
        .fetch_optional(&app.pool)
        .await
        .ok()
        .flatten();
    let Some(id) = id.map(AccountId) else {
        return (axum::http::StatusCode::UNAUTHORIZED, "wrong login or password").into_response();
    };
    let typed = SecretString::from(form.password);
    match app.service.check_password(&id, &typed).await {
        Ok(PasswordCheck::Correct) => {}
        Ok(PasswordCheck::NeedsRehash(_)) => {
            if let Err(e) = app.service.rehash_password(&id, &typed).await {
                eprintln!("keeping the old hash of {id}: {e}"); // sign-in still succeeds
            }
        }
        Ok(PasswordCheck::Wrong) | Ok(_) => {
            return (axum::http::StatusCode::UNAUTHORIZED, "wrong login or password").into_response();
        }
        Err(_) => return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "try again").into_response(),
    }
    Html(format!("signed in as {}", form.login)).into_response() // + the app's own session
}
// --- end ---
