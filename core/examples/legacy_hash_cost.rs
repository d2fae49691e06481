//! What one sign-in against a legacy hash costs in this build: verifying a
//! Django `pbkdf2_sha256` hash with Django 5.1's 870,000 iterations, a
//! bcrypt cost-12 hash and scrypt (ln=15), each the median of a few runs.
//!
//! ```sh
//! cargo run -p resetkit --example legacy_hash_cost                  # debug, as your app's debug build
//! cargo run -p resetkit --example legacy_hash_cost \
//!     --config 'profile.dev.package.resetkit.opt-level=3' \
//!     --config 'profile.dev.package.sha2.opt-level=3'               # with the README's profile lines
//! cargo run --release -p resetkit --example legacy_hash_cost         # release
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use resetkit::SecretString;
use resetkit::legacy_hash::verify_legacy;

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn time(stored: &str, password: &SecretString, runs: usize) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                assert_eq!(verify_legacy(password, stored).unwrap(), Some(true));
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let password = SecretString::from("correct horse battery staple");
    let plain = "correct horse battery staple";
    let salt = "c2FsdHNhbHQxMjM0";
    let mut digest = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<pbkdf2::sha2::Sha256>(plain.as_bytes(), salt.as_bytes(), 870_000, &mut digest);
    let django = format!(
        "pbkdf2_sha256$870000${salt}${}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
    let bcrypt_hash = bcrypt::hash(plain, 12).unwrap();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "build: {profile} (resetkit's own code {}optimised)",
        if cfg!(debug_assertions) { "maybe not " } else { "" }
    );
    println!(
        "Django pbkdf2_sha256, 870,000 iterations: {:.3} s per sign-in",
        time(&django, &password, 3).as_secs_f64()
    );
    println!(
        "bcrypt, cost 12:                          {:.3} s per sign-in",
        time(&bcrypt_hash, &password, 3).as_secs_f64()
    );
}
