//! A small web app with a resetkit reset flow, for the HTTP target's tests:
//! session cookie, CSRF field in every form, the link stores the token in
//! the session and redirects to the set-password page. `Flaws` switch on
//! the classic mistakes one at a time.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use resetkit::account::{Account, AccountId};
use resetkit::hasher::{Argon2Hasher, PasswordHasher};
use resetkit::mail::Mailer;
use resetkit::memory::{InMemoryAccounts, InMemoryEventLog, InMemoryTokenStore};
use resetkit::policy::{Limit, PasswordPolicy, RateLimits};
use resetkit::{CompleteError, RequestContext, ResetService};
use resetkit_smtp::{SmtpConfig, SmtpMailer, TlsMode};
use secrecy::SecretString;

/// The mistakes the app can make.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flaws {
    /// Build the link from the request's Host (or X-Forwarded-Host).
    pub link_from_host: bool,
    /// Answer 429 to known accounts past the limit (unknown ones never).
    pub throttle_429_for_known: bool,
    /// Opening the link spends it (a scanner's GET burns the user's link).
    pub spend_on_get: bool,
    /// No Referrer-Policy on the reset pages.
    pub no_referrer_policy: bool,
    /// Known accounts answer 20 ms later (work done on the request path).
    pub slow_for_known: bool,
}

/// Emails per account per window of the app (and of its target file).
pub const PER_ACCOUNT: u32 = 40;

/// The seeded accounts: (id, email, password, disabled).
pub const ACCOUNTS: &[(&str, &str, &str, bool)] = &[
    ("alice", "alice@example.test", "alice-demo-password-1", false),
    ("bob", "bob@example.test", "bob-demo-password-22", false),
    ("carol", "carol@example.test", "carol-demo-password-5", true),
    ("dave", "family@example.test", "dave-demo-password-3", false),
    ("erin", "family@example.test", "erin-demo-password-4", false),
];

#[derive(Default)]
struct Session {
    csrf: String,
    token: Option<String>,
    user: Option<String>,
}

/// The stores and mailer every service of the app shares.
#[derive(Clone)]
struct Parts {
    accounts: Arc<InMemoryAccounts>,
    tokens: Arc<InMemoryTokenStore>,
    events: Arc<InMemoryEventLog>,
    mailer: Arc<dyn Mailer>,
    hasher: Arc<dyn PasswordHasher>,
}

struct App {
    flaws: Flaws,
    parts: Parts,
    service: ResetService,
    sessions: Mutex<HashMap<String, Session>>,
    counter: AtomicU64,
    known_requests: Mutex<HashMap<String, u32>>,
    opened: Mutex<HashSet<String>>,
}

/// A running app.
pub struct MiniApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MiniApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Parts {
    fn service(&self, base_url: &str) -> ResetService {
        ResetService::builder()
            .base_url(base_url)
            .allow_insecure_http_for_local_testing()
            .site_name("Mini app")
            .accounts(self.accounts.clone())
            .tokens(self.tokens.clone())
            .events(self.events.clone())
            .mailer(self.mailer.clone())
            .sender(Arc::new(resetkit::sender::FixedSender::new(
                resetkit::mail::Mailbox::address_only("noreply@example.test").expect("valid sender"),
            )))
            .hasher(self.hasher.clone())
            .rate_limits(RateLimits {
                per_account: Some(Limit {
                    max: PER_ACCOUNT,
                    window: Duration::from_secs(900),
                }),
                per_client: None,
            })
            .build()
            .expect("the mini app's service builds")
    }
}

impl App {
    fn next(&self, what: &str) -> String {
        format!(
            "{what}-{}-{}",
            self.counter.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        )
    }

    /// The session of the request, creating one (and a Set-Cookie) if needed.
    fn session(&self, headers: &HeaderMap) -> (String, String, Option<HeaderValue>) {
        let sid = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|p| p.trim().strip_prefix("sid=").map(str::to_owned))
            .next();
        let mut sessions = self.sessions.lock().expect("mini app lock");
        if let Some(sid) = sid
            && let Some(s) = sessions.get(&sid)
        {
            return (sid, s.csrf.clone(), None);
        }
        let sid = self.next("sid");
        let csrf = self.next("csrf");
        sessions.insert(
            sid.clone(),
            Session {
                csrf: csrf.clone(),
                ..Session::default()
            },
        );
        let cookie = HeaderValue::from_str(&format!("sid={sid}; Path=/; HttpOnly; SameSite=Lax")).ok();
        (sid, csrf, cookie)
    }

    fn with_session<T>(&self, sid: &str, f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        self.sessions.lock().expect("mini app lock").get_mut(sid).map(f)
    }
}

fn page(status: StatusCode, cookie: Option<HeaderValue>, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

fn reset_headers(app: &App, mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !app.flaws.no_referrer_policy {
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    response
}

fn form(action: &str, csrf: &str, fields: &str) -> String {
    format!(
        "<!doctype html><title>Mini app</title><form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">{fields}\
         <button type=\"submit\">Go</button></form>"
    )
}

/// The body's pairs, and whether the CSRF token matches the session's.
fn fields(app: &App, headers: &HeaderMap, body: &[u8]) -> (Vec<(String, String)>, String, bool) {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let (sid, csrf, _) = app.session(headers);
    let sent: Vec<&String> = pairs
        .iter()
        .filter(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v)
        .collect();
    let ok = sent.len() == 1 && *sent[0] == csrf;
    (pairs, sid, ok)
}

fn one<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let values: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    (values.len() == 1).then(|| values[0])
}

type AppState = State<Arc<App>>;

async fn forgot_form(State(app): AppState, headers: HeaderMap) -> Response {
    let (_, csrf, cookie) = app.session(&headers);
    page(
        StatusCode::OK,
        cookie,
        form("/forgot", &csrf, "<input name=\"identifier\" autofocus>"),
    )
}

async fn forgot_submit(State(app): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let (pairs, _, csrf_ok) = fields(&app, &headers, &body);
    if !csrf_ok {
        return page(
            StatusCode::FORBIDDEN,
            None,
            "Invalid or missing CSRF token".into(),
        );
    }
    if pairs.iter().any(|(k, _)| k.ends_with("[]")) {
        return page(StatusCode::BAD_REQUEST, None, "One identifier, please".into());
    }
    let Some(identifier) = one(&pairs, "identifier") else {
        return page(StatusCode::BAD_REQUEST, None, "One identifier, please".into());
    };
    if app.flaws.slow_for_known
        && ACCOUNTS
            .iter()
            .any(|(id, email, ..)| *id == identifier || *email == identifier)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if app.flaws.throttle_429_for_known {
        let key = identifier.trim().to_lowercase();
        if ACCOUNTS.iter().any(|(id, email, ..)| *id == key || *email == key) {
            let mut counts = app.known_requests.lock().expect("mini app lock");
            let n = counts.entry(key).or_insert(0);
            *n += 1;
            if *n > 3 {
                return page(StatusCode::TOO_MANY_REQUESTS, None, "Too many requests".into());
            }
        }
    }
    let service = if app.flaws.link_from_host {
        let host = headers
            .get("x-forwarded-host")
            .or_else(|| headers.get(header::HOST))
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        app.parts.service(&format!("http://{host}"))
    } else {
        app.service.clone()
    };
    match service
        .request(identifier, &RequestContext::from_client("127.0.0.1"))
        .await
    {
        Ok(_) => see_other("/forgot/sent"),
        Err(e) => page(StatusCode::BAD_REQUEST, None, format!("Please check: {e}")),
    }
}

async fn forgot_sent() -> Response {
    page(
        StatusCode::OK,
        None,
        "<p>If an account exists, an email is on its way.</p>".into(),
    )
}

async fn link(
    State(app): AppState,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let token = q.get("token").cloned().unwrap_or_default();
    let (sid, _, cookie) = app.session(&headers);
    let mut response = if app.service.inspect(&token).await.is_err()
        || (app.flaws.spend_on_get && !app.opened.lock().expect("mini app lock").insert(token.clone()))
    {
        see_other("/reset/invalid")
    } else {
        app.with_session(&sid, |s| s.token = Some(token));
        see_other("/reset/new")
    };
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    reset_headers(&app, response)
}

async fn new_form(State(app): AppState, headers: HeaderMap) -> Response {
    let (sid, csrf, _) = app.session(&headers);
    let token = app.with_session(&sid, |s| s.token.clone()).flatten();
    let response = match token {
        Some(token) if app.service.inspect(&token).await.is_ok() => page(
            StatusCode::OK,
            None,
            form(
                "/reset/new",
                &csrf,
                "<input type=\"password\" name=\"password\"><input type=\"password\" name=\"confirm\">",
            ),
        ),
        _ => see_other("/reset/invalid"),
    };
    reset_headers(&app, response)
}

async fn new_submit(State(app): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let (pairs, sid, csrf_ok) = fields(&app, &headers, &body);
    if !csrf_ok {
        return page(
            StatusCode::FORBIDDEN,
            None,
            "Invalid or missing CSRF token".into(),
        );
    }
    let token = app.with_session(&sid, |s| s.token.clone()).flatten();
    let (Some(token), Some(pw), Some(confirm)) = (token, one(&pairs, "password"), one(&pairs, "confirm"))
    else {
        return reset_headers(&app, see_other("/reset/invalid"));
    };
    let response = match app
        .service
        .complete(
            &token,
            SecretString::from(pw.to_owned()),
            SecretString::from(confirm.to_owned()),
        )
        .await
    {
        Ok(_) => {
            app.with_session(&sid, |s| s.token = None);
            see_other("/reset/done")
        }
        Err(CompleteError::InvalidLink) => see_other("/reset/invalid"),
        Err(e) => page(StatusCode::OK, None, format!("<p>{e}</p>")),
    };
    reset_headers(&app, response)
}

async fn outcome(State(app): AppState) -> Response {
    reset_headers(&app, page(StatusCode::OK, None, "<p>Done.</p>".into()))
}

async fn login_form(State(app): AppState, headers: HeaderMap) -> Response {
    let (_, csrf, cookie) = app.session(&headers);
    page(
        StatusCode::OK,
        cookie,
        form(
            "/login",
            &csrf,
            "<input name=\"identifier\"><input type=\"password\" name=\"password\">",
        ),
    )
}

async fn login_submit(State(app): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let (pairs, sid, csrf_ok) = fields(&app, &headers, &body);
    if !csrf_ok {
        return page(
            StatusCode::FORBIDDEN,
            None,
            "Invalid or missing CSRF token".into(),
        );
    }
    let identifier = one(&pairs, "identifier").unwrap_or_default().to_lowercase();
    let password = one(&pairs, "password").unwrap_or_default();
    let id = ACCOUNTS
        .iter()
        .find(|(id, email, ..)| {
            *id == identifier || (*email == identifier && *email != "family@example.test")
        })
        .map(|(id, ..)| *id);
    let ok = match id {
        Some(id) => app
            .service
            .verify_password(&AccountId::from(id), &SecretString::from(password.to_owned()))
            .await
            .unwrap_or(false),
        None => false,
    };
    if ok {
        app.with_session(&sid, |s| s.user = Some(identifier));
        see_other("/account")
    } else {
        page(StatusCode::OK, None, "<p>Wrong username or password.</p>".into())
    }
}

/// Starts the app on a free port; its mail goes to `smtp`.
pub async fn start(smtp: SocketAddr, flaws: Flaws) -> MiniApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let base_url = format!("http://{addr}");
    let hasher: Arc<dyn PasswordHasher> = Arc::new(Argon2Hasher::fast_insecure_for_tests());
    let accounts = Arc::new(InMemoryAccounts::default());
    for (id, email, password, disabled) in ACCOUNTS {
        let normalized = SecretString::from(PasswordPolicy::normalize(password));
        let hash = hasher.hash(&normalized).expect("hash");
        accounts.insert(
            Account::new(*id, *id, *email)
                .with_disabled(*disabled)
                .with_password_hash(hash),
        );
    }
    let smtp_config = SmtpConfig::builder(smtp.ip().to_string())
        .port(smtp.port())
        .tls(TlsMode::None)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
        .build()
        .expect("smtp config");
    let mailer: Arc<dyn Mailer> = Arc::new(SmtpMailer::new(smtp_config).expect("mailer"));
    let parts = Parts {
        accounts,
        tokens: Arc::new(InMemoryTokenStore::default()),
        events: Arc::new(InMemoryEventLog::default()),
        mailer,
        hasher,
    };
    let app = Arc::new(App {
        flaws,
        service: parts.service(&base_url),
        parts,
        sessions: Mutex::new(HashMap::new()),
        counter: AtomicU64::new(0),
        known_requests: Mutex::new(HashMap::new()),
        opened: Mutex::new(HashSet::new()),
    });
    let router = Router::new()
        .route("/forgot", get(forgot_form).post(forgot_submit))
        .route("/forgot/sent", get(forgot_sent))
        .route("/reset", get(link))
        .route("/reset/new", get(new_form).post(new_submit))
        .route("/reset/done", get(outcome))
        .route("/reset/invalid", get(outcome))
        .route("/login", get(login_form).post(login_submit))
        .route("/account", get(forgot_sent))
        .with_state(app);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    MiniApp { addr, base_url, task }
}

/// The target file for an app at `base_url` whose mail goes to `smtp`.
pub fn target_toml(base_url: &str, smtp: SocketAddr) -> String {
    format!(
        r#"
format = 2
name = "mini app"
base_url = "{base_url}"

[smtp]
listen = "{smtp}"

[csrf]
field = "csrf_token"

[forgot]
page = "/forgot"
identifier_field = "identifier"
accepted = {{ status = 303, redirect = "/forgot/sent" }}

[link]
url = "{base_url}/reset"
follow = "redirect"
invalid = {{ redirect = "/reset/invalid" }}

[set_password]
page = "/reset/new"
password_field = "password"
confirm_field = "confirm"
success = {{ status = 303, redirect = "/reset/done" }}
failure = {{ redirect = "/reset/invalid" }}

[login]
page = "/login"
identifier_field = "identifier"
password_field = "password"
success = {{ status = 303, redirect = "/account" }}

[[accounts]]
identifier = "alice"
email = "alice@example.test"
password = "alice-demo-password-1"

[[accounts]]
identifier = "bob"
email = "bob@example.test"
password = "bob-demo-password-22"

[[accounts]]
identifier = "carol"
email = "carol@example.test"
disabled = true

[[accounts]]
identifier = "dave"
email = "family@example.test"

[[accounts]]
identifier = "erin"
email = "family@example.test"

[[lookalikes]]
typed = "Alice@EXAMPLE.test"
account = "alice"

[[lookalikes]]
typed = "al\u0131ce@example.test"
account = "alice"

[limits]
per_account = {PER_ACCOUNT}

[checks]
mail_wait_secs = 3
parallel_submits = 6
timing_samples = 10
"#
    )
}
