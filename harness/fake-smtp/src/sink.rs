//! [`CountingSink`]: a minimal SMTP server for throughput figures. It
//! answers every command, accepts every message and only counts them (and
//! keeps the first, un-dot-stuffed), so that the server is not what a
//! benchmark measures. It runs on a thread and runtime of its own and stops
//! when the handle drops.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A counting SMTP sink on 127.0.0.1; see the [module docs](self).
#[derive(Debug)]
pub struct CountingSink {
    addr: SocketAddr,
    messages: Arc<AtomicU64>,
    first: Arc<Mutex<Option<Vec<u8>>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl CountingSink {
    /// Binds a free port on 127.0.0.1 and starts serving.
    pub fn start() -> std::io::Result<CountingSink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let messages = Arc::new(AtomicU64::new(0));
        let first = Arc::new(Mutex::new(None));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (m, f) = (Arc::clone(&messages), Arc::clone(&first));
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                let accept = async {
                    loop {
                        if let Ok((stream, _)) = listener.accept().await {
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(session(stream, Arc::clone(&m), Arc::clone(&f)));
                        }
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(CountingSink {
            addr,
            messages,
            first,
            stop: Some(stop),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Messages accepted so far.
    pub fn count(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// The first message accepted, as the client sent it (dot-stuffing
    /// undone).
    pub fn first_message(&self) -> Option<Vec<u8>> {
        self.first.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for CountingSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn session(stream: TcpStream, messages: Arc<AtomicU64>, first: Arc<Mutex<Option<Vec<u8>>>>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    if write.write_all(b"220 sink\r\n").await.is_err() {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).map(<[u8]>::to_ascii_uppercase).unwrap_or_default();
        let reply: &[u8] = match verb.as_slice() {
            b"EHLO" => b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            b"QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            b"DATA" => {
                if write.write_all(b"354 go\r\n").await.is_err() {
                    return;
                }
                let keep = first.lock().unwrap_or_else(PoisonError::into_inner).is_none();
                let mut body = Vec::new();
                loop {
                    line.clear();
                    if read.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    if keep {
                        body.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
                    }
                }
                if keep {
                    first
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(body);
                }
                messages.fetch_add(1, Ordering::Relaxed);
                b"250 queued\r\n"
            }
            _ => b"250 ok\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn it_counts_messages_and_keeps_the_first_unstuffed() {
        let sink = CountingSink::start().expect("sink starts");
        let mut s = TcpStream::connect(sink.addr()).await.expect("connects");
        let script = b"EHLO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
Subject: x\r\n\r\n..leading dot\r\n.\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n";
        s.write_all(script).await.expect("writes");
        let mut replies = String::new();
        s.read_to_string(&mut replies).await.expect("reads");
        assert!(replies.ends_with("221 bye\r\n"), "{replies}");
        assert_eq!(replies.matches("250 queued").count(), 2, "{replies}");
        assert_eq!(sink.count(), 2);
        assert_eq!(
            sink.first_message().as_deref(),
            Some(&b"Subject: x\r\n\r\n.leading dot\r\n"[..])
        );
    }
}
