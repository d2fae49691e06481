//! Reset emails: waiting for them and their links, and which account to
//! ask next within the declared limits, or when the app has stopped
//! mailing one (it is probably throttling).

use std::time::{Duration, Instant};

use url::Url;

use super::{HttpCtx, LinkMail, lock};
use crate::fake_smtp::CapturedMessage;
use crate::http::driver::Submission;
use crate::http::target_file::{HttpTarget, TestAccount};
use crate::inspect::{ParsedMail, html_links, text_links};
use crate::runner::{Problem, fail};

impl HttpCtx {
    /// The enabled, unshared account asked least so far that can still get
    /// `mails` emails within the declared per-account limit. With a
    /// declared window (`limits.window_secs`), when every account has spent
    /// its budget, waits for the first one to have room again (bounded by
    /// `limits.max_wait_secs`) instead of giving up.
    pub async fn plain_account(&self, mails: u32) -> Result<TestAccount, Problem> {
        loop {
            match self.plan_account(mails)? {
                Ok(account) => return Ok(account),
                Err((wait, why)) => self.wait_for_window(wait, &why).await?,
            }
        }
    }

    /// An account with room now, or how long until one has room and why.
    #[allow(clippy::type_complexity)]
    fn plan_account(
        &self,
        mails: u32,
    ) -> Result<Result<TestAccount, (std::time::Duration, String)>, Problem> {
        let all = self.target.plain_accounts();
        if all.is_empty() {
            return Err(Problem::Skip(
                "the target file lists no enabled account with an address of its own ([[accounts]])".into(),
            ));
        }
        let exhausted = lock(&self.state.exhausted).clone();
        let accounts: Vec<&TestAccount> = all
            .iter()
            .copied()
            .filter(|a| !exhausted.iter().any(|e| e == a.key()))
            .collect();
        let least = accounts
            .iter()
            .min_by_key(|a| self.requests_for(a))
            .ok_or_else(|| {
                Problem::Error(format!(
                    "every listed account stopped getting reset emails in this run ({}): the app is \
                     probably throttling. {THROTTLE_FIX}",
                    exhausted.join(", ")
                ))
            })?;
        let used = self.requests_for(least);
        let Some(limit) = self.target.limits.per_account else {
            return Ok(Ok((*least).clone()));
        };
        if used + mails <= limit {
            return Ok(Ok((*least).clone()));
        }
        if self.target.limits.window().is_some() && mails <= limit {
            // The account whose window frees up first.
            let times = lock(&self.state.account_times);
            let soonest = accounts
                .iter()
                .filter_map(|a| {
                    let t = times.get(a.key()).map(Vec::as_slice).unwrap_or_default();
                    self.room_in(t, limit, mails)
                })
                .min()
                .unwrap_or_default();
            return Ok(Err((
                soonest,
                format!(
                    "every listed account has used its reset emails for this window (limits.per_account = {limit})"
                ),
            )));
        }
        Err(Problem::Error(format!(
            "every listed account has used its reset emails for this window ({used} of limits.per_account = {limit}); \
             list more [[accounts]], declare limits.window_secs so the harness waits for the window to pass, or \
             start the app with higher limits"
        )))
    }

    /// The enabled, unshared account asked least so far, whatever its
    /// budget: for checks whose requests are valid past a limit (an
    /// answer to a throttled request is an answer to compare, and a timing
    /// sample like any other), so they never stop because earlier checks
    /// spent the limits.
    pub fn known_account(&self) -> Result<TestAccount, Problem> {
        let all = self.target.plain_accounts();
        let sent = lock(&self.state.account_requests);
        all.iter()
            .min_by_key(|a| sent.get(a.key()).copied().unwrap_or(0))
            .map(|a| (*a).clone())
            .ok_or_else(|| {
                Problem::Skip(
                    "the target file lists no enabled account with an address of its own ([[accounts]])"
                        .into(),
                )
            })
    }

    /// Marks the accounts at `address` as no longer getting mail in this
    /// run (the app throttles them), so later checks use others.
    pub fn mark_exhausted(&self, address: &str) {
        let mut exhausted = lock(&self.state.exhausted);
        for account in self
            .target
            .accounts
            .iter()
            .filter(|a| a.email.eq_ignore_ascii_case(address))
        {
            if !exhausted.iter().any(|e| e == account.key()) {
                exhausted.push(account.key().to_owned());
            }
        }
    }

    /// Requests a fresh link for the least-used account, moving on to the
    /// next account when the app stopped mailing one (throttling).
    pub async fn fresh_link(&self, mails: u32) -> Result<(TestAccount, LinkMail), Problem> {
        let mut tried = Vec::new();
        loop {
            let account = match self.plain_account(mails).await {
                Ok(account) => account,
                Err(e) if tried.is_empty() => return Err(e),
                Err(_) => {
                    return Err(Problem::Error(format!("cannot check: {}", tried.join("; "))));
                }
            };
            match self.request_link(&account).await {
                Ok(mail) => {
                    if !tried.is_empty() {
                        self.note(format!("Moved on to `{}`: {}", account.key(), tried.join("; ")));
                    }
                    return Ok((account, mail));
                }
                Err(Problem::Error(why)) if why.contains(THROTTLING) => {
                    self.mark_exhausted(&account.email);
                    tried.push(why);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Requests a reset for `account` as a new user, checks the answer is
    /// "accepted", and waits for the email to its stored address.
    pub async fn request_link(&self, account: &TestAccount) -> Result<LinkMail, Problem> {
        let mut retried = false;
        loop {
            let user = self.user(&format!("{}-requests", account.key()))?;
            let mark = self.mail_mark();
            let visit = self
                .forgot(&user, &self.typed(account), Submission::new())
                .await?;
            let Err(why) = self.target.forgot.accepted.check(&visit) else {
                return self.link_mail(mark, &account.email, false).await;
            };
            // An answer the file declares as throttled is the app's limit
            // speaking, not a broken form: wait for the window once, or say
            // it is throttling.
            if let Some(throttled) = &self.target.limits.throttled
                && throttled.check(&visit).is_ok()
            {
                let said = format!(
                    "the request for {} was answered as throttled ({throttled}: limits.throttled)",
                    account.key()
                );
                match self.target.limits.window() {
                    Some(window) if !retried => {
                        self.wait_for_window(window, &said).await?;
                        retried = true;
                        continue;
                    }
                    _ => return Err(Problem::Error(format!("{said}: {THROTTLING}. {THROTTLE_FIX}"))),
                }
            }
            return Err(fail(
                format!("the forgot-password form answers {}", self.target.forgot.accepted),
                format!("{why} ({})", visit.summary()),
            ));
        }
    }

    /// Waits for a new email (after `mark`) to `address` with a reset
    /// link: `Ok(None)` when no email to it arrived at all, a failure when
    /// emails arrived without such a link.
    pub async fn wait_link_mail(&self, mark: usize, address: &str) -> Result<Option<LinkMail>, Problem> {
        let wait = self.target.checks.mail_wait();
        let found = self
            .wait_mail_for(mark, wait, |m| {
                m.has_recipient(address) && first_link(&self.target, m).is_some()
            })
            .await;
        if let Some(message) = found {
            let link =
                first_link(&self.target, &message).ok_or_else(|| Problem::Error("link vanished".into()))?;
            if let Some(token) = self.target.link_pattern().token(&link) {
                lock(&self.state.tokens).push(token);
            }
            *lock(&self.state.link_mails)
                .entry(address.to_ascii_lowercase())
                .or_insert(0) += 1;
            return Ok(Some(LinkMail { message, link }));
        }
        let others = self
            .mails_since(mark)
            .into_iter()
            .filter(|m| m.has_recipient(address))
            .count();
        if others > 0 {
            return Err(fail(
                format!(
                    "the email to {address} carries a reset link like {}",
                    self.target.link_target()
                ),
                format!("{others} email(s) to {address} arrived, none with such a link"),
            ));
        }
        Ok(None)
    }

    /// Waits for a new email (after `mark`) to `address` and returns its
    /// first reset link. When none arrives: a failure if `missing_fails`
    /// and no email at all arrived earlier in the run; else a harness
    /// error that says why (a declared limit is spent, or the app stopped
    /// mailing after some requests: it is probably throttling).
    pub async fn link_mail(
        &self,
        mark: usize,
        address: &str,
        missing_fails: bool,
    ) -> Result<LinkMail, Problem> {
        if let Some(mail) = self.wait_link_mail(mark, address).await? {
            return Ok(mail);
        }
        let wait = self.target.checks.mail_wait();
        let hint = self.limit_hint(address);
        if !hint.is_empty() {
            return Err(Problem::Error(format!(
                "cannot check: no email to {address} within {wait:?}{hint}"
            )));
        }
        if let Some(why) = self.throttling(address) {
            self.mark_exhausted(address);
            return Err(Problem::Error(why));
        }
        let why = format!("no email to {address} within {wait:?}");
        Err(if missing_fails {
            fail(
                format!("a reset email to {address} arrives at the fake SMTP server"),
                why,
            )
        } else {
            Problem::Error(format!("cannot check: {why}"))
        })
    }

    /// Why missing mail to `address` looks like the app's own rate limit:
    /// reset emails arrived earlier in this run (to it or to others), and
    /// now none does. `None` when nothing arrived yet in the run.
    pub fn throttling(&self, address: &str) -> Option<String> {
        let mails = lock(&self.state.link_mails);
        let here = mails.get(&address.to_ascii_lowercase()).copied().unwrap_or(0);
        let total: u32 = mails.values().sum();
        drop(mails);
        if total == 0 {
            return None;
        }
        let requests: u32 = self
            .target
            .accounts
            .iter()
            .filter(|a| a.email.eq_ignore_ascii_case(address))
            .map(|a| self.requests_for(a))
            .sum();
        let client = self.client_requests();
        Some(format!(
            "no reset email to {address} within {:?}, although {here} arrived for it and {total} in all \
             earlier in this run ({requests} requests for it, {client} from this client so far): {THROTTLING}. \
             {THROTTLE_FIX}",
            self.target.checks.mail_wait()
        ))
    }

    /// Waits for the first message after `mark` with `address` among its
    /// recipients (ASCII case ignored).
    pub async fn wait_mail(&self, mark: usize, address: &str) -> Option<CapturedMessage> {
        self.wait_mail_for(mark, self.target.checks.mail_wait(), |m| m.has_recipient(address))
            .await
    }

    /// Waits up to `wait` for the first message after `mark` matching `pred`.
    pub async fn wait_mail_for(
        &self,
        mark: usize,
        wait: Duration,
        pred: impl Fn(&CapturedMessage) -> bool,
    ) -> Option<CapturedMessage> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(m) = self.mails_since(mark).into_iter().find(|m| pred(m)) {
                return Some(m);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Why mail to `address` may be missing because of a declared limit
    /// (empty when no limit is spent).
    pub fn limit_hint(&self, address: &str) -> String {
        let mut hints = Vec::new();
        if let Some(limit) = self.target.limits.per_account {
            for account in self
                .target
                .accounts
                .iter()
                .filter(|a| a.email.eq_ignore_ascii_case(address))
            {
                let n = self.requests_for(account);
                if n > limit {
                    hints.push(format!(
                        "{n} requests for `{}` this run, over limits.per_account = {limit}",
                        account.key()
                    ));
                }
            }
        }
        let client = self.client_requests();
        if let Some(limit) = self.target.limits.per_client
            && client > limit
        {
            hints.push(format!(
                "{client} reset requests from one client address this run, over limits.per_client = {limit} \
                 (set client.address_header if the app trusts a proxy header, or raise the app's limit)"
            ));
        }
        if hints.is_empty() {
            String::new()
        } else {
            format!(" — likely rate limited: {}", hints.join("; "))
        }
    }
}

/// Words every "probably throttling" message carries.
pub const THROTTLING: &str =
    "the app is probably throttling (its own rate limit), not breaking a requirement";

/// How to change the target file when the app throttles.
pub const THROTTLE_FIX: &str = "Fix the target file: list more [[accounts]] so the checks spread their \
     requests, and declare the app's [limits] (per_account, per_client, window_secs, throttled) so the \
     harness plans around them and waits for a spent window to pass. A previous run's requests may still \
     count: an app that keeps its counts in memory forgets them when restarted, but counts kept in a \
     database (resetkit on PostgreSQL) survive a restart: wait for the window to pass, or clear the \
     accounts' limits (resetkit: the operator console's account page, \"Clear the limit\").";

/// Whether `message` carries a reset link (the target's shape, on any
/// host): a reset email, not a notice.
pub fn is_reset_mail(target: &HttpTarget, message: &CapturedMessage) -> bool {
    !reset_links(target, message).is_empty()
}

/// The first reset link in `message` (text part first).
pub fn first_link(target: &HttpTarget, message: &CapturedMessage) -> Option<Url> {
    reset_links(target, message).into_iter().next()
}

/// The distinct absolute reset links of `message` (the target's shape, on
/// any host), text part first.
pub fn reset_links(target: &HttpTarget, message: &CapturedMessage) -> Vec<Url> {
    let Ok(parsed) = ParsedMail::parse(&message.data) else {
        return Vec::new();
    };
    let pattern = target.link_pattern();
    let mut written = parsed.text.as_deref().map(text_links).unwrap_or_default();
    written.extend(parsed.html.as_deref().map(html_links).unwrap_or_default());
    let mut links: Vec<Url> = Vec::new();
    for url in written.iter().filter_map(|l| Url::parse(l).ok()) {
        if pattern.token(&url).is_some() && !links.contains(&url) {
            links.push(url);
        }
    }
    links
}
