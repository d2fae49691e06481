//! # resetkit-existing-app
//!
//! An axum application with its own PostgreSQL `users` table (bigint ids,
//! an `is_active` flag, bcrypt hashes left by its previous framework) that
//! adds "Forgot your password?" with `resetkit-axum`, `resetkit-postgres`
//! and `resetkit-smtp`. [`reset`] is everything the integration adds; [`app`]
//! is the application as it was (plus upgrading legacy hashes at sign-in).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod app;
pub mod reset;

use std::net::SocketAddr;
use std::sync::Arc;

use resetkit::policy::RateLimits;
use tokio::sync::oneshot;

/// How the app is started.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Public base URL (default `http://<bound address>`).
    pub base_url: String,
    /// PostgreSQL URL.
    pub database_url: String,
    /// Schema of the app's `users` table.
    pub app_schema: String,
    /// Schema of resetkit's tables.
    pub resetkit_schema: String,
    /// SMTP server URL (`smtp://127.0.0.1:2525?tls=none` ...).
    pub smtp_url: String,
    /// Tiny argon2 parameters (tests and harness runs only).
    pub fast_hash: bool,
    /// Rate limits (`None`: resetkit's defaults).
    pub rate_limits: Option<RateLimits>,
    /// Drop resetkit's schema at start (tokens, events, rate-limit counts):
    /// a demo or harness run starts clean, as the re-seeded users do.
    pub fresh_reset_state: bool,
}

/// A running app; dropping it stops the server.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The reset pages (their service, for tests).
    pub pages: resetkit_axum::ResetPages,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Prepares the database and serves the app until the handle is dropped.
/// An empty `base_url` means `http://<bound address>`.
pub async fn start(mut settings: Settings) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    if settings.base_url.is_empty() {
        settings.base_url = format!("http://{addr}");
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&settings.database_url)
        .await?;
    app::setup_users(&pool, &settings.app_schema).await?;
    if settings.fresh_reset_state {
        app::drop_schema(&pool, &settings.resetkit_schema).await?;
    }
    let sessions = Arc::new(app::Sessions::default());
    let pages = reset::reset_pages(pool.clone(), &settings, sessions.clone()).await?;
    let state = Arc::new(app::App {
        pool,
        schema: settings.app_schema.clone(),
        sessions,
        pages: pages.clone(),
    });
    let router = app::routes(state).merge(pages.router());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(resetkit_axum::serve(
        listener,
        router,
        resetkit_axum::ServeOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Running {
        addr,
        pages,
        stop: Some(stop),
    })
}
