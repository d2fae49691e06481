//! How much guessing a reset token takes, estimated from the tokens a run
//! saw rather than assumed: the alphabet actually used (decimal, hex,
//! base36, alphanumeric, base64url) and the token's parts (a Django-style
//! `<timestamp>-<hash>` token's timestamp is not entropy).
//!
//! ```
//! use resetkit_harness::http::token_strength::estimate;
//!
//! // 32 hex characters: 128 bits, not 32 × 6 = 192.
//! let hex = ["0123456789abcdef0123456789abcdef".to_owned(), "fedcba9876543210fedcba9876543210".to_owned()];
//! assert_eq!(estimate(&hex).bits, 128.0);
//!
//! // Django's `<base36 timestamp>-<32 hex>`: the timestamp counts for nothing.
//! let django = ["cz1k4a-0123456789abcdef0123456789abcdef".to_owned(), "cz1k4b-fedcba9876543210fedcba9876543210".to_owned()];
//! let e = estimate(&django);
//! assert_eq!(e.bits, 128.0);
//! assert!(e.explanation.contains("timestamp"), "{}", e.explanation);
//! ```

/// The estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Bits of the random parts.
    pub bits: f64,
    /// How it was reached, for evidence.
    pub explanation: String,
}

/// Separators of a structured token (`<timestamp>-<hash>`, `<id>.<mac>`).
const SEPARATORS: &[char] = &['-', '.', ':'];

/// Estimates the entropy of one token of the run's kind from every token
/// seen (at least one). With two or more tokens, a token whose parts
/// (split at `-` `.` `:`) have the same lengths in every token is read as
/// structured: a part that barely changes between tokens (a shared
/// prefix of at least half its length, like a timestamp) counts for
/// nothing, and each other part counts its length × log2 of its alphabet.
pub fn estimate(tokens: &[String]) -> Estimate {
    let Some(first) = tokens.first() else {
        return Estimate {
            bits: 0.0,
            explanation: "no token seen".into(),
        };
    };
    let split = |t: &str| -> Vec<String> { t.split(SEPARATORS).map(str::to_owned).collect() };
    let shape = |t: &str| -> Vec<usize> { split(t).iter().map(String::len).collect() };
    let structured =
        tokens.len() >= 2 && shape(first).len() >= 2 && tokens.iter().all(|t| shape(t) == shape(first));
    if !structured {
        let (size, name) = alphabet(tokens.iter().map(String::as_str));
        let len = first.chars().count();
        let bits = len as f64 * size.log2();
        return Estimate {
            bits,
            explanation: format!(
                "{len} characters of the {name} alphabet (seen across {} token(s)) ≈ {bits:.0} bits",
                tokens.len()
            ),
        };
    }
    let parts: Vec<Vec<String>> = tokens.iter().map(|t| split(t)).collect();
    let mut bits = 0.0;
    let mut words = Vec::new();
    for i in 0..parts[0].len() {
        let column: Vec<&str> = parts.iter().map(|p| p[i].as_str()).collect();
        let len = column[0].chars().count();
        let shared = common_prefix(&column);
        if len == 0 {
            continue;
        }
        if shared * 2 >= len {
            words.push(format!(
                "part {} ({len} characters) barely changes between tokens (a timestamp or counter): 0 bits",
                i + 1
            ));
            continue;
        }
        let (size, name) = alphabet(column.iter().copied());
        let part_bits = len as f64 * size.log2();
        bits += part_bits;
        words.push(format!(
            "part {} ({len} {name} characters) ≈ {part_bits:.0} bits",
            i + 1
        ));
    }
    Estimate {
        bits,
        explanation: format!(
            "structured token (parts split at `-`/`.`/`:` with the same lengths in all {} tokens): {} = {bits:.0} bits",
            tokens.len(),
            words.join("; ")
        ),
    }
}

/// The smallest common alphabet holding every character of `texts`.
fn alphabet<'a>(texts: impl Iterator<Item = &'a str>) -> (f64, &'static str) {
    let mut digits = true;
    let mut lower_hex = true;
    let mut upper_hex = true;
    let mut lower36 = true;
    let mut upper36 = true;
    let mut alnum = true;
    let mut url_safe = true;
    for c in texts.flat_map(str::chars) {
        digits &= c.is_ascii_digit();
        lower_hex &= c.is_ascii_digit() || ('a'..='f').contains(&c);
        upper_hex &= c.is_ascii_digit() || ('A'..='F').contains(&c);
        lower36 &= c.is_ascii_digit() || c.is_ascii_lowercase();
        upper36 &= c.is_ascii_digit() || c.is_ascii_uppercase();
        alnum &= c.is_ascii_alphanumeric();
        url_safe &= c.is_ascii_alphanumeric() || c == '-' || c == '_';
    }
    if digits {
        (10.0, "decimal")
    } else if lower_hex || upper_hex {
        (16.0, "hex")
    } else if lower36 || upper36 {
        (36.0, "base36")
    } else if alnum {
        (62.0, "alphanumeric")
    } else if url_safe {
        (64.0, "base64url")
    } else {
        (64.0, "base64-like")
    }
}

fn common_prefix(column: &[&str]) -> usize {
    let Some(first) = column.first() else {
        return 0;
    };
    first
        .chars()
        .enumerate()
        .take_while(|(i, c)| column.iter().all(|t| t.chars().nth(*i) == Some(*c)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(tokens: &[&str]) -> Vec<String> {
        tokens.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn alphabets_are_read_from_the_tokens() {
        let b64 = owned(&["q2Zx_J0aW4uZ3Jvd3RoLnRva2VuLnZhbHVlLmhlcmUu"]);
        assert!((estimate(&b64).bits - 43.0 * 6.0).abs() < 0.01);
        // Without `-` or `_` seen, the alphabet is read as alphanumeric.
        let plain = owned(&["q2ZxXJ0aW4uZ3Jvd3RoLnRva2VuLnZhbHVlLmhlcmUu"]);
        assert!((estimate(&plain).bits - 43.0 * 62f64.log2()).abs() < 0.01);
        let base36 = owned(&["k3j4h5g6f7d8s9a0q1w2e3r4t5y6"]);
        assert!((estimate(&base36).bits - 28.0 * 36f64.log2()).abs() < 0.01);
        let alnum = owned(&["aB3dE5gH7jK9mN1pQ3sT5vX7"]);
        assert!((estimate(&alnum).bits - 24.0 * 62f64.log2()).abs() < 0.01);
        let digits = owned(&["123456"]);
        assert!(estimate(&digits).bits < 20.0);
    }

    #[test]
    fn random_dashes_in_base64url_are_not_structure() {
        let tokens = owned(&[
            "q2Zx-J0aW4uZ3Jvd3RoLnRva2VuLnZhbHVlLmhlcmUu",
            "a9Zx0J0aW4uZ3J-d3RoLnRva2VuLnZhbHVlLmhlcmUu",
        ]);
        let e = estimate(&tokens);
        assert!((e.bits - 258.0).abs() < 0.01, "{e:?}");
    }

    #[test]
    fn a_timestamp_prefix_is_not_entropy() {
        let tokens = owned(&[
            "cz1k4a-0123456789abcdef0123456789abcdef",
            "cz1k4c-f0123456789abcdef0123456789abcde",
            "cz1k4c-99999999999999999999999999999999",
        ]);
        let e = estimate(&tokens);
        assert_eq!(e.bits, 128.0, "{e:?}");
    }
}
