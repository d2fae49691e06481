//! Everything this app writes to add password reset: resetkit's stores on
//! the app's own `users` table, the SMTP mailer, the reset service, the
//! pages, and the two session hooks. (The rest of the crate is the app as
//! it was: its users table, its sign-in and account pages.)

use std::sync::Arc;

use axum::http::request::Parts;
use resetkit::account::AccountId;
use resetkit::hasher::Argon2Hasher;
use resetkit::mail::Mailbox;
use resetkit::sender::FixedSender;
use resetkit::{ResetService, SessionRevoker, async_trait};
use resetkit_axum::{HostSessions, ResetPages, SignedIn};
use resetkit_postgres::{PgStores, UsersTable};
use resetkit_smtp::SmtpMailer;

use crate::app::Sessions;

/// The reset pages over the app's `users` table (bigint ids, `is_active`).
pub async fn reset_pages(
    pool: sqlx::PgPool,
    settings: &crate::Settings,
    sessions: Arc<Sessions>,
) -> Result<ResetPages, Box<dyn std::error::Error + Send + Sync>> {
    let stores = PgStores::new(pool, &settings.resetkit_schema)?;
    let users = UsersTable::new("users")
        .schema(&settings.app_schema)
        .active_column("is_active");
    let accounts = stores.verified_accounts_for(users).await?; // id type read from the catalog
    stores.migrate().await?; // resetkit's tables; not an `accounts` table
    let mut builder = ResetService::builder()
        .base_url(&settings.base_url)
        .site_name("Existing App")
        .accounts(accounts)
        .tokens(stores.tokens.clone())
        .events(stores.events.clone())
        .inbox(stores.inbox.clone()) // accepted requests survive a restart
        // Expired tokens, old rate-limit entries and events are purged.
        .retention_stores(resetkit::flow::RetentionStores::new(
            stores.tokens.clone(),
            stores.events.clone(),
        ))
        .mailer(Arc::new(SmtpMailer::from_url(&settings.smtp_url)?))
        .sender(Arc::new(FixedSender::new(Mailbox::address_only(
            "noreply@existing-app.localhost",
        )?)))
        .rate_limits(settings.rate_limits.unwrap_or_default())
        .session_revoker(sessions.clone());
    if settings.fast_hash {
        builder = builder.hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()));
    }
    if settings.base_url.starts_with("http://127.0.0.1") {
        builder = builder.allow_insecure_http_for_local_testing();
    }
    let pages = ResetPages::builder(builder.build()?)
        .site_name("Existing App")
        .sign_in_url("/login")
        .secure_cookies(settings.base_url.starts_with("https://"))
        .host_sessions(sessions)
        .build()?;
    Ok(pages)
}

/// A completed reset, and "sign out everywhere" on the security page, end
/// the account's sessions.
#[async_trait]
impl SessionRevoker for Sessions {
    async fn revoke_sessions(&self, account: &AccountId) -> Result<(), String> {
        self.revoke(
            account
                .0
                .parse()
                .map_err(|_| format!("not a user id: {account}"))?,
        );
        Ok(())
    }
}

/// The "password changed" notice's security page: who is signed in (its
/// "sign out everywhere" is `revoke_sessions` above).
#[async_trait]
impl HostSessions for Sessions {
    async fn signed_in(&self, request: &Parts) -> Option<SignedIn> {
        let (id, username) = self.current(&request.headers)?;
        Some(SignedIn {
            account: AccountId(id.to_string()),
            username,
        })
    }
}
