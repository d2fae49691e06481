//! The SQL literals of migration 4's `canonical_identifier` function,
//! generated from the core's case folding so PostgreSQL and the core fold
//! every character alike.

use std::sync::OnceLock;

use resetkit::identifier::case_fold;

/// Every code point is scanned (the last folding one is in Adlam, U+1E921,
/// but scanning all of them once per process is cheap and certain).
const LAST: u32 = 0x10FFFF;

struct Literals {
    from: String,
    to: String,
    multi: String,
    whitespace: String,
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn literals() -> &'static Literals {
    static LITERALS: OnceLock<Literals> = OnceLock::new();
    LITERALS.get_or_init(|| {
        let mut from = String::new();
        let mut to = String::new();
        let mut pairs = Vec::new();
        let mut whitespace = String::new();
        for c in (0..=LAST).filter_map(char::from_u32) {
            if c.is_whitespace() {
                whitespace.push(c);
            }
            let mut buf = [0u8; 4];
            let single: &str = c.encode_utf8(&mut buf);
            let folded = case_fold(single);
            if folded == single {
                continue;
            }
            let mut chars = folded.chars();
            match (chars.next(), chars.next()) {
                (Some(f), None) => {
                    from.push(c);
                    to.push(f);
                }
                _ => pairs.push(format!("[{}, {}]", literal(single), literal(&folded))),
            }
        }
        Literals {
            from: literal(&from),
            to: literal(&to),
            multi: format!("ARRAY[{}]::text[]", pairs.join(", ")),
            whitespace: literal(&whitespace),
        }
    })
}

/// `sql` with the folding placeholders of migration 4 filled in.
pub(crate) fn expand(sql: &str) -> String {
    if !sql.contains("__FOLD_") {
        return sql.to_owned();
    }
    let l = literals();
    sql.replace("__FOLD_FROM__", &l.from)
        .replace("__FOLD_TO__", &l.to)
        .replace("__FOLD_MULTI__", &l.multi)
        .replace("__WHITESPACE__", &l.whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_cover_single_and_multi_character_folds() {
        let l = literals();
        assert!(l.from.contains('K') && l.to.contains('k'));
        assert!(l.from.contains('\u{212A}'), "Kelvin sign");
        assert!(l.from.contains('ς'), "final sigma folds to σ");
        assert!(!l.from.contains('ı'), "dotless i has no default folding");
        assert!(l.multi.contains("['ß', 'ss']"), "{}", &l.multi[..200]);
        assert_eq!(l.from.chars().count(), l.to.chars().count());
        assert!(l.whitespace.contains('\u{3000}'));
        let sql = expand("translate(x, __FOLD_FROM__, __FOLD_TO__) __FOLD_MULTI__ __WHITESPACE__");
        assert!(!sql.contains("__"));
    }
}
