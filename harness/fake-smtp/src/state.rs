//! Shared state behind the server handle: captured mail, transcripts,
//! rules and live connections.

use std::collections::{BTreeMap, HashMap};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::rules::{ActiveRule, Fault, Stage, take_fault};

/// One message the server accepted, with its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedMessage {
    /// The connection it arrived on (see [`Transcript::connection`]).
    pub connection: u64,
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`), without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The message exactly as received (dot-unstuffed, CRLF line ends).
    pub data: Vec<u8>,
    /// The user name the client authenticated as, if it did.
    pub authenticated_as: Option<String>,
    /// Whether the client had switched to TLS with `STARTTLS`.
    pub tls: bool,
    /// When the server accepted it (end of DATA).
    pub received_at: std::time::SystemTime,
    /// A number unique within the server, in arrival order from 1 (kept
    /// across [`clear`](crate::FakeSmtpServer::clear)).
    pub id: u64,
}

impl CapturedMessage {
    /// The raw message as text (lossy for non-UTF-8 bytes).
    pub fn data_text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// Whether `address` is one of the envelope recipients (ASCII case ignored).
    pub fn has_recipient(&self, address: &str) -> bool {
        self.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(address))
    }
}

/// Who wrote a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The client's command.
    Client,
    /// The server's reply.
    Server,
    /// Something the fake server noted (connection opened, fault applied, closed).
    Note,
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptEntry {
    /// Who wrote it.
    pub direction: Direction,
    /// The command, reply or note. Passwords are never recorded.
    pub line: String,
}

/// The SMTP conversation of one connection, as the server saw it: the
/// commands that reach its handler (EHLO, AUTH, MAIL, RCPT, DATA, end of
/// data, and STARTTLS) with the replies it chose, plus notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Connection number, in accept order from 0.
    pub connection: u64,
    /// The lines, in order.
    pub entries: Vec<TranscriptEntry>,
}

impl std::fmt::Display for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "--- connection {} ---", self.connection)?;
        for e in &self.entries {
            let tag = match e.direction {
                Direction::Client => "C:",
                Direction::Server => "S:",
                Direction::Note => "**",
            };
            writeln!(f, "{tag} {}", e.line)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Recorded {
    next_id: u64,
    messages: Vec<CapturedMessage>,
    transcripts: BTreeMap<u64, Vec<TranscriptEntry>>,
}

/// State shared by the handle, the proxy threads and the mailin handlers.
#[derive(Default)]
pub(crate) struct Shared {
    recorded: Mutex<Recorded>,
    rules: Mutex<Vec<ActiveRule>>,
    conns: Mutex<HashMap<u64, TcpStream>>,
    tls: Mutex<HashMap<u64, bool>>,
    pub(crate) notify: Notify,
    pub(crate) next_handler_id: AtomicU64,
    pub(crate) stopped: AtomicBool,
    pub(crate) credentials: Option<(String, String)>,
    /// The current session's greeting name and the family of names whose
    /// other members are stale sessions.
    session: Mutex<Option<(String, String)>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn with_credentials(credentials: Option<(String, String)>) -> Self {
        Shared {
            credentials,
            ..Shared::default()
        }
    }

    pub(crate) fn record(&self, conn: u64, direction: Direction, line: impl Into<String>) {
        lock(&self.recorded)
            .transcripts
            .entry(conn)
            .or_default()
            .push(TranscriptEntry {
                direction,
                line: line.into(),
            });
    }

    pub(crate) fn capture(&self, mut message: CapturedMessage) {
        {
            let mut recorded = lock(&self.recorded);
            recorded.next_id += 1;
            message.id = recorded.next_id;
            recorded.messages.push(message);
        }
        self.notify.notify_waiters();
    }

    pub(crate) fn messages(&self) -> Vec<CapturedMessage> {
        lock(&self.recorded).messages.clone()
    }

    pub(crate) fn messages_after(&self, id: u64) -> Vec<CapturedMessage> {
        let recorded = lock(&self.recorded);
        let start = recorded.messages.partition_point(|m| m.id <= id);
        recorded.messages[start..].to_vec()
    }

    pub(crate) fn message_by_id(&self, id: u64) -> Option<CapturedMessage> {
        lock(&self.recorded).messages.iter().find(|m| m.id == id).cloned()
    }

    pub(crate) fn message_count(&self) -> usize {
        lock(&self.recorded).messages.len()
    }

    pub(crate) fn find_message<F: Fn(&CapturedMessage) -> bool>(&self, pred: F) -> Option<CapturedMessage> {
        lock(&self.recorded).messages.iter().find(|m| pred(m)).cloned()
    }

    pub(crate) fn transcripts(&self) -> Vec<Transcript> {
        lock(&self.recorded)
            .transcripts
            .iter()
            .map(|(c, e)| Transcript {
                connection: *c,
                entries: e.clone(),
            })
            .collect()
    }

    pub(crate) fn clear(&self) {
        {
            let mut r = lock(&self.recorded);
            r.messages.clear();
            r.transcripts.clear();
        }
        self.notify.notify_waiters();
    }

    pub(crate) fn begin_session(&self, name: &str, family: &str) {
        *lock(&self.session) = Some((name.to_ascii_lowercase(), family.to_ascii_lowercase()));
        lock(&self.rules).clear();
        self.clear();
    }

    /// Whether a client greeting with `helo` belongs to an earlier session.
    pub(crate) fn is_stale(&self, helo: &str) -> bool {
        let helo = helo.to_ascii_lowercase();
        lock(&self.session)
            .as_ref()
            .is_some_and(|(name, family)| helo != *name && helo.ends_with(family.as_str()))
    }

    pub(crate) fn add_rule(&self, rule: super::rules::FaultRule) {
        lock(&self.rules).push(ActiveRule::new(rule));
    }

    pub(crate) fn clear_rules(&self) {
        lock(&self.rules).clear();
    }

    pub(crate) fn fault(&self, stage: Stage, sender: Option<&str>, recipients: &[String]) -> Option<Fault> {
        take_fault(&mut lock(&self.rules), stage, sender, recipients)
    }

    pub(crate) fn register_conn(&self, conn: u64, client: TcpStream) {
        lock(&self.conns).insert(conn, client);
    }

    pub(crate) fn forget_conn(&self, conn: u64) {
        lock(&self.conns).remove(&conn);
        lock(&self.tls).remove(&conn);
    }

    /// Closes the client side of connection `conn` without a reply.
    pub(crate) fn kill_conn(&self, conn: u64) {
        if let Some(stream) = lock(&self.conns).remove(&conn) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub(crate) fn kill_all(&self) {
        for (_, stream) in lock(&self.conns).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub(crate) fn set_tls(&self, conn: u64) {
        lock(&self.tls).insert(conn, true);
    }

    pub(crate) fn is_tls(&self, conn: u64) -> bool {
        lock(&self.tls).get(&conn).copied().unwrap_or(false)
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}
