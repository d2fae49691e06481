//! Sending several prepared forms so they land at the same instant (the
//! "last byte" technique): each request goes out on its own connection
//! with everything but its final byte, and once every connection holds a
//! nearly complete request, the final bytes are written together. The app
//! then sees N complete requests within a fraction of a millisecond,
//! whatever the connection set-up and scheduling cost.
//!
//! Plain `http://` only; for `https://` the requests are released from a
//! barrier through the normal client instead (less tight).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::cookie::CookieStore;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use super::driver::{DriverError, Prepared, RawBody, User, error_chain};
use super::exchange::{Exchange, Visit};

/// Longest wait for one raced response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends every `(user, request)` together; each result is the visit its
/// response started (redirects then followed one by one as usual).
pub async fn race(entries: Vec<(User, Prepared)>) -> Vec<Result<Visit, DriverError>> {
    let raw = entries
        .iter()
        .all(|(_, p)| p.url.scheme() == "http" && p.url.host_str().is_some());
    let barrier = Arc::new(Barrier::new(entries.len().max(1)));
    let mut tasks = Vec::new();
    for (user, prepared) in entries {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let first = if raw {
                last_byte(&user, &prepared, &barrier).await
            } else {
                barrier.wait().await;
                let body = prepared.body.clone().or_else(|| {
                    (prepared.method == reqwest::Method::POST)
                        .then(|| RawBody::form(&prepared.fields, &user.target.secret_fields()))
                });
                user.send_raw(
                    prepared.method.clone(),
                    &prepared.url,
                    &prepared.headers,
                    body.as_ref(),
                )
                .await
            }?;
            user.follow(first).await
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap_or_else(|e| {
            Err(DriverError::Transport {
                method: "POST".into(),
                url: String::new(),
                reason: format!("the sending task failed: {e}"),
            })
        }));
    }
    out
}

async fn last_byte(user: &User, prepared: &Prepared, barrier: &Barrier) -> Result<Exchange, DriverError> {
    let url = &prepared.url;
    let transport = |reason: String| DriverError::Transport {
        method: prepared.method.to_string(),
        url: url.to_string(),
        reason,
    };
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let raw_body = prepared.body.clone().or_else(|| {
        (prepared.method == reqwest::Method::POST)
            .then(|| RawBody::form(&prepared.fields, &user.target.secret_fields()))
    });
    let body = raw_body.as_ref().map(|b| b.text.clone()).unwrap_or_default();
    let mut head = format!(
        "{} {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: resetkit-harness/{}\r\nConnection: close\r\n",
        prepared.method,
        url.path(),
        url.query().map(|q| format!("?{q}")).unwrap_or_default(),
        match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        },
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(cookies) = user.jar.cookies(url)
        && let Ok(text) = cookies.to_str()
    {
        head.push_str(&format!("Cookie: {text}\r\n"));
    }
    let mut shown = Vec::new();
    let fixed: Vec<(String, String)> = user
        .target
        .client
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    for (name, value) in user.address.iter().chain(&fixed).chain(&prepared.headers) {
        if name.contains(['\r', '\n', ':']) || value.contains(['\r', '\n']) {
            return Err(DriverError::Header {
                name: name.clone(),
                reason: "contains a line break or colon".into(),
            });
        }
        head.push_str(&format!("{name}: {value}\r\n"));
        shown.push((name.clone(), value.clone()));
    }
    if let Some(raw) = &raw_body {
        head.push_str(&format!(
            "Content-Type: {}\r\nContent-Length: {}\r\n",
            raw.content_type,
            body.len()
        ));
    }
    head.push_str("\r\n");
    let request = format!("{head}{body}").into_bytes();
    let (early, last) = request.split_at(request.len() - 1);
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| transport(error_chain(&e)))?;
    let _ = stream.set_nodelay(true);
    stream
        .write_all(early)
        .await
        .map_err(|e| transport(error_chain(&e)))?;
    stream.flush().await.map_err(|e| transport(error_chain(&e)))?;
    barrier.wait().await;
    let started = Instant::now();
    stream
        .write_all(last)
        .await
        .map_err(|e| transport(error_chain(&e)))?;
    let mut response = Vec::new();
    tokio::time::timeout(RESPONSE_TIMEOUT, stream.read_to_end(&mut response))
        .await
        .map_err(|_| transport(format!("no complete response within {RESPONSE_TIMEOUT:?}")))?
        .map_err(|e| transport(error_chain(&e)))?;
    let elapsed = started.elapsed();
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let body_start = match parsed.parse(&response) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(transport("an incomplete response".into())),
        Err(e) => return Err(transport(format!("an unreadable response: {e}"))),
    };
    let status = parsed.code.unwrap_or(0);
    let response_headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut body = response[body_start..].to_vec();
    let chunked = response_headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    for (_, cookie) in response_headers.iter().filter(|(n, _)| n == "set-cookie") {
        user.jar.add_cookie_str(cookie, url);
    }
    let exchange = Exchange {
        user: format!("{} (raced)", user.label),
        method: prepared.method.to_string(),
        url: url.clone(),
        request_headers: shown,
        request_body: raw_body.map(|b| b.shown),
        status,
        headers: response_headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        elapsed,
    };
    user.log.push(exchange.clone());
    Ok(exchange)
}

/// Decodes a chunked body (best effort: stops at the first malformed chunk).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        let start = line_end + 2;
        if size == 0 || start + size > data.len() {
            break;
        }
        out.extend_from_slice(&data[start..start + size]);
        data = data.get(start + size + 2..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::dechunk;

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), b"hello world");
        assert_eq!(dechunk(b"zz\r\n"), b"");
    }
}
