//! The loopback listener clients connect to. Each connection is relayed to
//! the embedded mailin server; the relay applies connect-stage faults,
//! closes connections on `Disconnect` faults and idle timeouts, and lets the
//! handle stop accepting when it drops.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::rules::{Fault, Stage};
use super::state::{Direction, Shared};

/// Accepts clients until `shared` is stopped and the listener is woken.
pub(crate) fn spawn_acceptor(
    listener: TcpListener,
    backend: SocketAddr,
    shared: Arc<Shared>,
    idle_timeout: Duration,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("fake-smtp-accept".into())
        .spawn(move || {
            let mut next_conn: u64 = 0;
            for client in listener.incoming() {
                if shared.is_stopped() {
                    break;
                }
                let Ok(client) = client else { continue };
                // Connect to mailin here, serially: mailin accepts (and clones
                // its handler) in this same order, so the numbers line up.
                let Ok(server) = TcpStream::connect(backend) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let conn = next_conn;
                next_conn += 1;
                let shared = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name(format!("fake-smtp-conn-{conn}"))
                    .spawn(move || relay(conn, client, server, &shared, idle_timeout));
                if spawned.is_err() {
                    continue;
                }
            }
        })
}

fn close(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

fn relay(conn: u64, mut client: TcpStream, mut server: TcpStream, shared: &Shared, idle: Duration) {
    let peer = client
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    shared.record(conn, Direction::Note, format!("connection from {peer}"));
    if let Ok(c) = client.try_clone() {
        shared.register_conn(conn, c);
    }
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    match shared.fault(Stage::Connect, None, &[]) {
        Some(Fault::Reply(r)) => {
            shared.record(conn, Direction::Note, "fault rule at Connect: reply");
            shared.record(conn, Direction::Server, r.line());
            let _ = client.write_all(format!("{}\r\n", r.line()).as_bytes());
            return finish(conn, &client, &server, shared, None);
        }
        Some(Fault::Disconnect) => {
            shared.record(conn, Direction::Note, "fault rule at Connect: disconnect");
            return finish(conn, &client, &server, shared, None);
        }
        Some(Fault::Delay(d)) => {
            shared.record(
                conn,
                Direction::Note,
                format!("fault rule at Connect: delay {d:?}"),
            );
            std::thread::sleep(d);
        }
        _ => {}
    }
    let to_client = match (server.try_clone(), client.try_clone()) {
        (Ok(mut from), Ok(mut to)) => std::thread::Builder::new()
            .name(format!("fake-smtp-conn-{conn}-out"))
            .spawn(move || {
                let _ = io::copy(&mut from, &mut to);
                close(&from, &to);
            })
            .ok(),
        _ => None,
    };
    let _ = client.set_read_timeout(Some(idle));
    let mut tls = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let chunk = &buf[..n];
                if !tls && chunk.len() >= 8 && chunk[..8].eq_ignore_ascii_case(b"STARTTLS") {
                    tls = true;
                    shared.record(conn, Direction::Client, "STARTTLS");
                    shared.set_tls(conn);
                }
                if server.write_all(chunk).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                shared.record(conn, Direction::Note, format!("idle for {idle:?}: closing"));
                break;
            }
            Err(_) => break,
        }
    }
    finish(conn, &client, &server, shared, to_client);
}

fn finish(conn: u64, client: &TcpStream, server: &TcpStream, shared: &Shared, out: Option<JoinHandle<()>>) {
    close(client, server);
    if let Some(h) = out {
        let _ = h.join();
    }
    shared.forget_conn(conn);
    shared.record(conn, Direction::Note, "connection closed");
}
