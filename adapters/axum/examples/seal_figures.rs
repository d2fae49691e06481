//! What sealing opened links costs (`resetkit_axum::opened`): seal and
//! open per link, an open that fails (a wrong link id: every key and id is
//! tried), and the bytes a sealed link adds to the cookie and the form.
//!
//! ```sh
//! cargo run --release -p resetkit-axum --example seal_figures
//! ```

use std::time::{Instant, SystemTime};

use resetkit::secrets::KeyRing;
use resetkit_axum::opened::LinkSeal;

fn main() {
    const N: u32 = 200_000;
    let token = "Q2hvb3NlIGEgbG9uZyByYW5kb20gdG9rZW4gaGVyZSE";
    let seal = LinkSeal::new(&KeyRing::new(
        b"a pages key of at least thirty-two bytes".to_vec(),
        Some(b"the previous pages key, thirty-two+ bytes".to_vec()),
    ));
    let now = SystemTime::now();
    let ids: Vec<String> = (0..4)
        .map(|i| format!("link-id-{i}-of-the-browser-cookie-43-chars"))
        .collect();

    let started = Instant::now();
    let mut sealed = String::new();
    for _ in 0..N {
        sealed = seal.seal(&ids[3], token, now);
    }
    let per_seal = started.elapsed() / N;

    let started = Instant::now();
    for _ in 0..N {
        assert!(seal.open(&ids, &sealed, now).is_some());
    }
    let per_open = started.elapsed() / N;

    let strangers: Vec<String> = (0..8).map(|i| format!("someone-else-{i}")).collect();
    let started = Instant::now();
    for _ in 0..N {
        assert!(seal.open(&strangers, &sealed, now).is_none());
    }
    let per_refusal = started.elapsed() / N;

    println!(
        "seal {per_seal:?}, open (4 link ids, the newest last) {per_open:?}, refused open (8 ids x 2 keys) \
         {per_refusal:?}; a sealed link is {} bytes (token {} bytes)",
        sealed.len(),
        token.len()
    );
}
