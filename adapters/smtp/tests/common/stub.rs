//! A scripted SMTP server for counting commands: answers 220 / 250 / 354 /
//! 250, refuses `RCPT TO` addresses starting with `bad`, and logs every
//! command with the number of the connection it came on. It runs on its own
//! thread and runtime, so it outlives the runtime of the test using it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the stub does after accepting a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterMessage {
    /// Keep the connection open for more.
    Keep,
    /// Close the connection without a word (as an idle timeout would).
    Close,
    /// Send `421 4.4.2 idle timeout` and close.
    Reply421,
}

#[derive(Clone)]
pub struct Stub {
    pub addr: SocketAddr,
    log: Log,
}

type Log = Arc<Mutex<Vec<(usize, String)>>>;

impl Stub {
    pub fn start(after: AfterMessage) -> Stub {
        Stub::start_holding(after, 0)
    }

    /// Like [`start`](Self::start), but `DATA` is answered only once `hold`
    /// sessions have sent it, so that many sessions are open at once.
    pub fn start_holding(after: AfterMessage, hold: usize) -> Stub {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&log);
        let (in_data, _) = tokio::sync::watch::channel(0usize);
        let in_data = Arc::new(in_data);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let mut n = 0;
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    n += 1;
                    let gate = (Arc::clone(&in_data), hold);
                    tokio::spawn(serve(stream, n, after, Arc::clone(&shared), gate));
                }
            });
        });
        Stub { addr, log }
    }

    /// Every command, as `(connection, verb)`, in order.
    pub fn commands(&self) -> Vec<(usize, String)> {
        self.log.lock().unwrap().clone()
    }

    /// The verbs seen on connection `n`.
    pub fn on(&self, n: usize) -> Vec<String> {
        self.commands()
            .into_iter()
            .filter(|(c, _)| *c == n)
            .map(|(_, v)| v)
            .collect()
    }

    pub fn connections(&self) -> usize {
        self.commands().iter().map(|(c, _)| *c).max().unwrap_or(0)
    }

    pub fn count(&self, verb: &str) -> usize {
        self.commands().iter().filter(|(_, v)| v == verb).count()
    }

    /// Messages accepted (each logged as `.` after its data).
    pub fn messages(&self) -> usize {
        self.count(".")
    }

    /// Waits (up to 10 s) until `cond` holds for the log.
    pub async fn wait_until(&self, cond: impl Fn(&Stub) -> bool) -> bool {
        for _ in 0..1000 {
            if cond(self) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

async fn serve(
    stream: TcpStream,
    n: usize,
    after: AfterMessage,
    log: Log,
    (in_data, hold): (Arc<tokio::sync::watch::Sender<usize>>, usize),
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write.write_all(b"220 stub ready\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        log.lock().unwrap().push((n, verb.clone()));
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-stub\r\n250 8BITMIME\r\n",
            "MAIL" | "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
            "RCPT" if line.to_ascii_lowercase().contains("<bad") => b"550 5.1.1 no such user\r\n",
            "RCPT" => b"250 2.1.5 ok\r\n",
            "QUIT" => {
                let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                return;
            }
            "DATA" => {
                in_data.send_modify(|c| *c += 1);
                if in_data.subscribe().wait_for(|c| *c >= hold).await.is_err() {
                    return;
                }
                if write.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == ".\r\n" => break,
                        Ok(_) => {}
                    }
                }
                log.lock().unwrap().push((n, ".".into()));
                if write.write_all(b"250 2.0.0 queued\r\n").await.is_err() {
                    return;
                }
                match after {
                    AfterMessage::Keep => continue,
                    AfterMessage::Close => return,
                    AfterMessage::Reply421 => {
                        let _ = write.write_all(b"421 4.4.2 idle timeout\r\n").await;
                        return;
                    }
                }
            }
            _ => b"502 5.5.1 unknown command\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
