//! Who may open the operator console (`/admin`): the portal's own rule,
//! given to `resetkit-axum` as its [`AdminGuard`]. A signed-in demo
//! operator ([`crate::DEMO_OPERATORS`]) is admitted; anyone not signed in is
//! sent to the sign-in page; other signed-in accounts get a 403.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use resetkit_axum::{AdminGuard, HostSessions};

use crate::html;
use crate::routes::{page, see_other};
use crate::session::SessionStore;

/// The portal's [`AdminGuard`].
pub(crate) struct OperatorGuard {
    pub(crate) sessions: Arc<SessionStore>,
    pub(crate) operators: Vec<String>,
}

#[async_trait]
impl AdminGuard for OperatorGuard {
    async fn authorize(&self, request: &Parts) -> Result<String, Response> {
        match self.sessions.signed_in(request).await {
            None => Err(see_other("/login")),
            Some(user) if self.operators.contains(&user.account.0) => Ok(user.username),
            Some(_) => Err(page(
                StatusCode::FORBIDDEN,
                html::error(
                    "Operators only",
                    "This account may not open the operator console.",
                ),
            )),
        }
    }
}
