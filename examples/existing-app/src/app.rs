//! The application as it was before adding reset: its own `users` table
//! (bigint ids, `is_active`, bcrypt hashes from its previous framework),
//! in-memory sign-in sessions, a sign-in form and an account page.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use minijinja::Environment;
use resetkit::PasswordCheck;
use resetkit::account::AccountId;
use resetkit_axum::ResetPages;
use resetkit_axum::form::Form;
use secrecy::SecretString;
use sqlx::{PgPool, Row as _};

/// A demo user: (id, username, email, password, active, bcrypt-hashed).
pub type DemoUser = (i64, &'static str, &'static str, &'static str, bool, bool);

/// The users the app starts with. alice and bob still have bcrypt hashes
/// from the app's previous framework; dave and erin share an address.
pub const DEMO_USERS: [DemoUser; 5] = [
    (
        1001,
        "alice",
        "alice@example.test",
        "alice-demo-password-1",
        true,
        true,
    ),
    (
        1002,
        "bob",
        "bob@example.test",
        "bob-demo-password-22",
        true,
        true,
    ),
    (
        1003,
        "carol",
        "carol@example.test",
        "carol-demo-password-5",
        false,
        true,
    ),
    (
        1004,
        "dave",
        "family@example.test",
        "dave-demo-password-3",
        true,
        false,
    ),
    (
        1005,
        "erin",
        "family@example.test",
        "erin-demo-password-4",
        true,
        false,
    ),
];

/// Creates the app's `users` table in `schema` (if needed) and resets the
/// demo users to their original passwords.
pub async fn setup_users(
    pool: &PgPool,
    schema: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("schema {schema:?}: letters, digits and `_` only").into());
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {schema}.users ( \
             id bigserial PRIMARY KEY, username text NOT NULL UNIQUE, email text, \
             password_hash text, is_active boolean NOT NULL DEFAULT true, \
             created_at timestamptz NOT NULL DEFAULT now())"
    )))
    .execute(pool)
    .await?;
    let argon2 = resetkit::hasher::Argon2Hasher::fast_insecure_for_tests();
    for (id, username, email, password, active, legacy) in DEMO_USERS {
        let hash = if legacy {
            bcrypt::hash(password, 8)?
        } else {
            use resetkit::hasher::PasswordHasher as _;
            argon2.hash(&SecretString::from(password))?.expose().to_owned()
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {schema}.users (id, username, email, password_hash, is_active) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET username = $2, email = $3, password_hash = $4, is_active = $5"
        )))
        .bind(id)
        .bind(username)
        .bind(email)
        .bind(hash)
        .bind(active)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Drops `schema` (demo runs: resetkit's tokens, events and rate-limit
/// counts start empty).
pub async fn drop_schema(
    pool: &PgPool,
    schema: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("schema {schema:?}: letters, digits and `_` only").into());
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(pool)
    .await?;
    Ok(())
}

/// Sign-in sessions: cookie `app_session` → (user id, username, CSRF).
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, (i64, String, String)>>,
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("app_session="))
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (i64, String, String)>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The signed-in user of a request.
    pub fn current(&self, headers: &HeaderMap) -> Option<(i64, String)> {
        let sessions = self.lock();
        let (id, name, _) = sessions.get(session_id(headers)?)?;
        Some((*id, name.clone()))
    }

    fn csrf(&self, headers: &HeaderMap) -> Option<String> {
        Some(self.lock().get(session_id(headers)?)?.2.clone())
    }

    fn start(&self, user: i64, username: String) -> String {
        let id = random();
        self.lock().insert(id.clone(), (user, username, random()));
        id
    }

    /// Ends every session of `user`.
    pub fn revoke(&self, user: i64) {
        self.lock().retain(|_, (id, _, _)| *id != user);
    }
}

/// What the app's handlers share.
pub struct App {
    /// The app's database.
    pub pool: PgPool,
    /// Schema of its `users` table.
    pub schema: String,
    /// Sign-in sessions.
    pub sessions: Arc<Sessions>,
    /// The reset pages (their CSRF helper and service are used at sign-in).
    pub pages: ResetPages,
}

type AppState = State<Arc<App>>;

/// The app's own routes.
pub fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login_submit))
        .route("/account", get(account))
        .route("/logout", post(logout))
        .layer(axum::middleware::from_fn(resetkit_axum::security_headers))
        .with_state(app)
}

/// The app's pages: minijinja templates (the engine of resetkit's reset
/// pages and emails), HTML auto-escaped.
static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("home.html", include_str!("templates/home.html")),
        ("login.html", include_str!("templates/login.html")),
        ("account.html", include_str!("templates/account.html")),
        ("refused.html", include_str!("templates/refused.html")),
    ] {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, template = name, "a template does not compile");
        }
    }
    env
});

/// Page `name` titled `title`.
fn page(name: &str, title: &str, ctx: minijinja::Value) -> Html<String> {
    let rendered = PAGES
        .get_template(name)
        .and_then(|t| t.render(minijinja::context! { title, ..ctx }));
    Html(rendered.unwrap_or_else(|error| {
        tracing::error!(%error, template = name, "rendering a page failed");
        "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
    }))
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
}

fn refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        page("refused.html", "Request refused", minijinja::context! {}),
    )
        .into_response()
}

async fn home(State(app): AppState, headers: HeaderMap) -> Response {
    let signed_in_as = app.sessions.current(&headers).map(|(_, name)| name);
    page("home.html", "Existing App", minijinja::context! { signed_in_as }).into_response()
}

fn login_page(csrf: &str, error: Option<&str>) -> Html<String> {
    page("login.html", "Sign in", minijinja::context! { csrf, error })
}

async fn login_form(State(app): AppState, headers: HeaderMap) -> Response {
    let csrf = app.pages.csrf().token(&headers);
    let mut response = login_page(&csrf.value, None).into_response();
    if let Some(cookie) = csrf.set_cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

async fn login_submit(State(app): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = Form::parse(&headers, &body) else {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    };
    let csrf = form.get("csrf_token");
    if !app.pages.csrf().verify(&headers, csrf) {
        return refused();
    }
    let (Some(identifier), Some(password)) = (form.get("identifier"), form.get("password")) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let password = SecretString::from(password);
    let sql = format!(
        "SELECT id, username FROM {}.users WHERE is_active AND (lower(username) = lower($1) OR lower(email) = lower($1))",
        app.schema
    );
    let rows = match sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(identifier)
        .fetch_all(&app.pool)
        .await
    {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "sign-in lookup failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let user = match rows.as_slice() {
        [row] => row
            .try_get::<i64, _>(0)
            .ok()
            .zip(row.try_get::<String, _>(1).ok()),
        _ => None,
    };
    let wrong = || login_page(csrf.unwrap_or_default(), Some("Wrong username or password")).into_response();
    let Some((id, username)) = user else {
        return wrong();
    };
    let account = AccountId(id.to_string());
    let service = app.pages.service();
    match service.check_password(&account, &password).await {
        Ok(PasswordCheck::Correct) => {}
        // A bcrypt hash from the old framework: upgrade it to argon2id now.
        Ok(PasswordCheck::NeedsRehash(format)) => {
            if let Err(error) = service.rehash_password(&account, &password).await {
                tracing::warn!(%error, ?format, "upgrading a legacy hash failed");
            }
        }
        Ok(_) => return wrong(),
        Err(error) => {
            tracing::error!(%error, "checking a password failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let session = app.sessions.start(id, username);
    let cookie = format!("app_session={session}; HttpOnly; SameSite=Lax; Path=/");
    let mut response = see_other("/account");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

async fn account(State(app): AppState, headers: HeaderMap) -> Response {
    let (Some((_, name)), Some(csrf)) = (app.sessions.current(&headers), app.sessions.csrf(&headers)) else {
        return see_other("/login");
    };
    page(
        "account.html",
        "Your account",
        minijinja::context! { username => name, csrf },
    )
    .into_response()
}

async fn logout(State(app): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&headers, &body).unwrap_or_default();
    match (app.sessions.csrf(&headers), form.get("csrf_token")) {
        (Some(expected), Some(given)) if expected == given => {
            if let Some(id) = session_id(&headers) {
                app.sessions.lock().remove(id);
            }
            see_other("/")
        }
        _ => refused(),
    }
}
