//! What stays the host's: who is signed in, and ending their sessions.
//!
//! One hook ends sessions: [`resetkit::SessionRevoker::revoke_sessions`].
//! Give it to the [`ResetService`](resetkit::ResetService) builder
//! (`session_revoker`) and a completed reset signs the account out
//! everywhere. [`HostSessions`] is built on it and adds only who is signed
//! in: given to [`ResetPagesBuilder::host_sessions`](crate::ResetPagesBuilder::host_sessions),
//! the password-changed notice's security page (`/account/security`) shows
//! a signed-in visitor a "Sign out of every session" button that calls the
//! same `revoke_sessions`.
//!
//! A session table in PostgreSQL (the usual hand-rolled shape):
//!
//! ```
//! use axum::http::request::Parts;
//! use resetkit::account::AccountId;
//! use resetkit::async_trait;
//! use resetkit_axum::{HostSessions, SignedIn};
//!
//! struct SessionTable; // holds your sqlx::PgPool
//!
//! #[async_trait]
//! impl resetkit::SessionRevoker for SessionTable {
//!     async fn revoke_sessions(&self, account: &AccountId) -> Result<(), String> {
//!         // sqlx::query("DELETE FROM sessions WHERE user_id = $1::bigint")
//!         //     .bind(&account.0).execute(&self.pool).await.map_err(|e| e.to_string())?;
//!         Ok(())
//!     }
//! }
//!
//! #[async_trait]
//! impl HostSessions for SessionTable {
//!     async fn signed_in(&self, request: &Parts) -> Option<SignedIn> {
//!         // read your session cookie from request.headers, look it up
//!         let _ = request;
//!         None
//!     }
//! }
//! ```
//!
//! With `tower-sessions` / `axum-login`, the session store is keyed by
//! session id, not by user: keep a side index `user id -> session ids`
//! (written at sign-in) and delete those records in `revoke_sessions`
//! (`SessionStore::delete(&id)` for each). `signed_in` reads the user id the
//! layer stored; the extension `tower_sessions::Session` is in
//! `request.extensions`.

use async_trait::async_trait;
use axum::http::request::Parts;
use resetkit::SessionRevoker;
use resetkit::account::AccountId;

/// Who is signed in on a request, as the host knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The account.
    pub account: AccountId,
    /// The name to show.
    pub username: String,
}

/// The host's sign-in sessions, as the security page needs them: who is
/// signed in, on top of the one hook that ends an account's sessions
/// ([`SessionRevoker::revoke_sessions`], which "sign out everywhere" calls).
#[async_trait]
pub trait HostSessions: SessionRevoker {
    /// The account signed in on this request, if any.
    async fn signed_in(&self, request: &Parts) -> Option<SignedIn>;
}
