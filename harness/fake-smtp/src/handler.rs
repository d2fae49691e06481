//! The mailin [`Handler`]: applies fault rules per stage, records the
//! transcript and captures accepted messages.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mailin_embedded::response::{AUTH_OK, INVALID_CREDENTIALS, OK};
use mailin_embedded::{Handler, Response};

use super::rules::{Fault, Stage};
use super::state::{CapturedMessage, Direction, Shared};

/// One handler per connection: mailin clones the prototype once per accepted
/// connection, in accept order, which is how a handler learns its
/// connection number (the proxy connects to mailin in the same order).
pub(crate) struct FakeHandler {
    shared: Arc<Shared>,
    conn: u64,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    user: Option<String>,
    helo: String,
}

impl FakeHandler {
    pub(crate) fn prototype(shared: Arc<Shared>) -> Self {
        FakeHandler {
            shared,
            conn: u64::MAX,
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
            user: None,
            helo: String::new(),
        }
    }

    fn client(&self, line: impl Into<String>) {
        self.shared.record(self.conn, Direction::Client, line);
    }

    fn reply(&self, response: Response, line: impl Into<String>) -> Response {
        self.shared.record(self.conn, Direction::Server, line);
        response
    }

    /// Applies the rule for `stage`, if any: `Some(response)` overrides the
    /// normal reply; `None` means carry on.
    fn apply(&self, stage: Stage, sender: Option<&str>, recipients: &[String]) -> Option<Response> {
        match self.shared.fault(stage, sender, recipients)? {
            Fault::Reply(r) => {
                self.shared.record(
                    self.conn,
                    Direction::Note,
                    format!("fault rule at {stage:?}: reply"),
                );
                Some(self.reply(Response::custom(r.code, r.message()), r.line()))
            }
            Fault::Disconnect => {
                self.shared.record(
                    self.conn,
                    Direction::Note,
                    format!("fault rule at {stage:?}: disconnect"),
                );
                self.shared.kill_conn(self.conn);
                Some(Response::custom(421, "closing".to_owned()))
            }
            Fault::Delay(d) => {
                self.shared.record(
                    self.conn,
                    Direction::Note,
                    format!("fault rule at {stage:?}: delay {d:?}"),
                );
                std::thread::sleep(d);
                None
            }
        }
    }

    fn check_auth(&mut self, mechanism: &str, user: &str, password: &str) -> Response {
        self.client(format!("AUTH {mechanism} {user} [password hidden]"));
        let ok = self
            .shared
            .credentials
            .as_ref()
            .is_some_and(|(u, p)| u == user && p == password);
        if ok {
            self.user = Some(user.to_owned());
            self.reply(AUTH_OK, "235 Authentication succeeded")
        } else {
            self.reply(INVALID_CREDENTIALS, "535 Invalid credentials")
        }
    }
}

impl Clone for FakeHandler {
    fn clone(&self) -> Self {
        let conn = self.shared.next_handler_id.fetch_add(1, Ordering::SeqCst);
        FakeHandler {
            shared: Arc::clone(&self.shared),
            conn,
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
            user: None,
            helo: String::new(),
        }
    }
}

impl Handler for FakeHandler {
    fn helo(&mut self, _ip: IpAddr, domain: &str) -> Response {
        self.client(format!("EHLO/HELO {domain}"));
        self.helo = domain.to_owned();
        if let Some(r) = self.apply(Stage::Helo, None, &[]) {
            return r;
        }
        self.reply(OK, "250 (greeting and extensions)")
    }

    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_owned();
        self.to.clear();
        self.client(format!("MAIL FROM:<{from}>"));
        if let Some(r) = self.apply(Stage::MailFrom, Some(from), &[]) {
            return r;
        }
        self.reply(OK, "250 OK")
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.client(format!("RCPT TO:<{to}>"));
        let one = [to.to_owned()];
        if let Some(r) = self.apply(Stage::RcptTo, Some(&self.from.clone()), &one) {
            return r;
        }
        self.to.push(to.to_owned());
        self.reply(OK, "250 OK")
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.client("DATA");
        self.data.clear();
        self.from = from.to_owned();
        self.to = to.to_vec();
        if let Some(r) = self.apply(Stage::DataStart, Some(from), to) {
            return r;
        }
        self.reply(OK, "354 Start mail input")
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.client(format!("[message, {} bytes]", self.data.len()));
        self.client(".");
        let to = self.to.clone();
        let from = self.from.clone();
        if let Some(r) = self.apply(Stage::DataEnd, Some(&from), &to)
            && r.is_error
        {
            return r;
        }
        if self.shared.is_stale(&self.helo) {
            self.shared.record(
                self.conn,
                Direction::Note,
                format!("message of an earlier session ({}) accepted, not kept", self.helo),
            );
            self.data.clear();
            return self.reply(OK, "250 OK");
        }
        self.shared.capture(CapturedMessage {
            connection: self.conn,
            mail_from: from,
            rcpt_to: to,
            data: std::mem::take(&mut self.data),
            authenticated_as: self.user.clone(),
            tls: self.shared.is_tls(self.conn),
            received_at: std::time::SystemTime::now(),
            id: 0,
        });
        self.reply(OK, "250 OK")
    }

    fn auth_plain(&mut self, _authorization_id: &str, authentication_id: &str, password: &str) -> Response {
        self.check_auth("PLAIN", authentication_id, password)
    }

    fn auth_login(&mut self, username: &str, password: &str) -> Response {
        self.check_auth("LOGIN", username, password)
    }
}
