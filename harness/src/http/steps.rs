//! The steps of the flow a scenario takes through the app: open a link and
//! reach the set-password form, submit a new password, sign in.

use url::Url;

use super::api::IdentifierShape;
use super::context::{Completion, HttpCtx, driver_error};
use super::driver::{FormPage, Prepared, Submission, User, form_in};
use super::exchange::Visit;
use super::target_file::{FormStep, HttpTarget};
use crate::runner::Problem;

impl HttpCtx {
    /// Opens `link` as `user` and finds the set-password form, or says how
    /// the link was refused.
    pub async fn open_reset_form(
        &self,
        user: &User,
        link: &Url,
    ) -> Result<Result<FormPage, Completion>, Problem> {
        let target = &self.target;
        let field = &target.set_password.password_field;
        let visit = user
            .open(link)
            .await
            .map_err(|e| driver_error("opening the reset link", e))?;
        let visit = match form_in(visit.clone(), field) {
            Ok(page) => return Ok(Ok(page.for_step(FormStep::SetPassword))),
            Err(_) => visit,
        };
        if let Some(invalid) = &target.link.invalid
            && invalid.check(&visit).is_ok()
        {
            return Ok(Err(Completion::Refused(format!(
                "opening the link: {} (link.invalid)",
                visit.summary()
            ))));
        }
        Ok(Err(Completion::Unrecognised(format!(
            "no form with `{field}` after opening the link: {}",
            visit.summary()
        ))))
    }

    /// Submits `password` (twice when there is a confirmation field) in a
    /// loaded set-password form.
    pub async fn submit_password(
        &self,
        user: &User,
        page: &FormPage,
        password: &str,
    ) -> Result<Completion, Problem> {
        self.submit_room(1).await?;
        submit_password(&self.target, user, page, password).await
    }

    /// Opens `link` as a new user and sets `password`. For an API
    /// set-password step, calls it with the link's token and placeholders
    /// as the front end's page would.
    pub async fn complete(&self, link: &Url, password: &str) -> Result<Completion, Problem> {
        if self.target.set_password_api().is_some() {
            let user = self.user("front-end")?;
            let prepared = self.prepare_confirm(&user, link, password).await?;
            self.submit_room(1).await?;
            let first = user
                .send_raw(
                    prepared.method.clone(),
                    &prepared.url,
                    &prepared.headers,
                    prepared.body.as_ref(),
                )
                .await
                .map_err(|e| driver_error("calling the set-password API", e))?;
            let visit = user
                .follow(first)
                .await
                .map_err(|e| driver_error("calling the set-password API", e))?;
            return Ok(classify_submit(&self.target, visit));
        }
        let user = self.user("link-opener")?;
        match self.open_reset_form(&user, link).await? {
            Ok(page) => self.submit_password(&user, &page, password).await,
            Err(refused) => Ok(refused),
        }
    }

    /// The set-password API call for `link` and `password`, prepared as
    /// `user` (its CSRF token fetched), not sent: the body's `{token}` and
    /// other placeholders are what the link pattern captured.
    pub async fn prepare_confirm(
        &self,
        user: &User,
        link: &Url,
        password: &str,
    ) -> Result<Prepared, Problem> {
        let call = self
            .target
            .set_password_api()
            .ok_or_else(|| Problem::Error("the set-password step is a form, not an API call".into()))?;
        let (token, named) = self.target.link_pattern().captures(link).ok_or_else(|| {
            Problem::Error(format!(
                "{link} does not have the link's shape {}",
                self.target.link_target()
            ))
        })?;
        let mut vars = vec![
            ("token".to_owned(), token),
            ("password".to_owned(), password.to_owned()),
        ];
        vars.extend(named);
        user.prepare_call(
            &call,
            FormStep::SetPassword,
            &vars,
            IdentifierShape::Single,
            None,
            &[],
        )
        .await
        .map_err(|e| {
            driver_error(
                &format!(
                    "preparing the set-password API call ({} {})",
                    call.method, call.url
                ),
                e,
            )
        })
    }

    /// Signs in as a new user; `None` when the target describes no login,
    /// else whether `login.success` was recognised (the error says what was seen).
    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
    ) -> Result<Option<Result<(), String>>, Problem> {
        let Some(login) = &self.target.login else {
            return Ok(None);
        };
        let user = self.user("signs-in")?;
        if let Some(call) = self.target.login_api() {
            let vars = [
                ("identifier".to_owned(), identifier.to_owned()),
                ("password".to_owned(), password.to_owned()),
            ];
            let visit = user
                .call(&call, FormStep::Login, &vars, IdentifierShape::Single, None, &[])
                .await
                .map_err(|e| {
                    driver_error(
                        &format!("calling the sign-in API ({} {})", call.method, call.url),
                        e,
                    )
                })?;
            return Ok(Some(
                login
                    .success
                    .check(&visit)
                    .map_err(|why| format!("{why} ({})", visit.summary())),
            ));
        }
        let page = user
            .load_form(&self.target.url(&login.page), &login.password_field)
            .await
            .map_err(|e| driver_error("loading the sign-in form", e))?
            .for_step(FormStep::Login);
        let submission = Submission::new()
            .set(login.identifier_field.clone(), identifier)
            .set(login.password_field.clone(), password);
        let visit = user
            .submit(&page, login.action.as_deref(), &submission)
            .await
            .map_err(|e| driver_error("submitting the sign-in form", e))?;
        Ok(Some(
            login
                .success
                .check(&visit)
                .map_err(|why| format!("{why} ({})", visit.summary())),
        ))
    }
}

/// The new password (twice when there is a confirmation field), and the
/// `set_password.fields` with the placeholders the link (the first URL of
/// `page`'s visit) matched.
pub fn password_submission(target: &HttpTarget, page: &FormPage, password: &str) -> Submission {
    let flow = &target.set_password;
    let mut submission = Submission::new().set(flow.password_field.clone(), password);
    if let Some(confirm) = &flow.confirm_field {
        submission = submission.set(confirm.clone(), password);
    }
    let captured = target
        .link_pattern()
        .captures(&page.visit.first().url)
        .map(|(_, named)| named)
        .unwrap_or_default();
    for (name, value) in &flow.fields {
        let value = captured
            .iter()
            .fold(value.clone(), |v, (k, x)| v.replace(&format!("{{{k}}}"), x));
        submission = submission.set(name.clone(), value);
    }
    submission
}

/// Submits `password` (twice when there is a confirmation field) in a
/// loaded set-password form of `target` and classifies the answer.
pub async fn submit_password(
    target: &HttpTarget,
    user: &User,
    page: &FormPage,
    password: &str,
) -> Result<Completion, Problem> {
    let visit = user
        .submit(page, None, &password_submission(target, page, password))
        .await
        .map_err(|e| driver_error("submitting the new password", e))?;
    Ok(classify_submit(target, visit))
}

/// What the answer to a set-password submit means.
pub fn classify_submit(target: &HttpTarget, visit: Visit) -> Completion {
    let flow = &target.set_password;
    match flow.success.check(&visit) {
        Ok(()) => Completion::Completed(Box::new(visit)),
        Err(why) => match &flow.failure {
            Some(failure) if failure.check(&visit).is_ok() => {
                Completion::Refused(format!("submitting: {} (set_password.failure)", visit.summary()))
            }
            _ => Completion::Unrecognised(format!("submitting: {why} ({})", visit.summary())),
        },
    }
}
