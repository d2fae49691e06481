//! `format = 2`: the target file's version, and what becomes of a file
//! written for format 1 (before the key existed).
//!
//! Format 1 read `[link] token_in = "path"` as "the token is a path
//! segment somewhere below `link.url`" (a prefix); format 2 reads
//! `link.url` as the whole path, with `{token}` and `{name}` placeholders
//! for the parts that vary. Such a file would load in format 2 and mean
//! something else (links judged against the wrong shape: false MUST
//! failures), so it is refused with how to convert it. Every other
//! format-1 file means the same in format 2 and is read, with a note
//! asking for the `format = 2` line.

use toml::{Table, Value};

use super::FORMAT;

/// Checks the version of a parsed file: the notes to print when it is
/// read as converted, or the key at fault and why it is refused.
pub(super) fn check(table: &Table) -> Result<Vec<String>, (String, String)> {
    let version = match table.get("format") {
        None => 1,
        Some(Value::Integer(n)) if (1..=i64::from(FORMAT)).contains(n) => *n,
        Some(Value::Integer(n)) => {
            return Err((
                "format".into(),
                format!(
                    "is {n}: this harness reads target files of format {FORMAT} (and converts format 1); \
                     use a newer resetkit-harness for this file"
                ),
            ));
        }
        Some(other) => {
            return Err((
                "format".into(),
                format!("must be a whole number (`format = {FORMAT}`), not {other}"),
            ));
        }
    };
    if version == i64::from(FORMAT) {
        return Ok(Vec::new());
    }
    let link = table.get("link").and_then(Value::as_table);
    let token_in = link.and_then(|l| l.get("token_in")).and_then(Value::as_str);
    let url = link.and_then(|l| l.get("url")).and_then(Value::as_str);
    let stated = if table.contains_key("format") {
        "`format = 1`"
    } else {
        "no `format` line"
    };
    if token_in == Some("path") && !url.is_some_and(|u| u.contains('{')) {
        let prefix = url.unwrap_or("/reset");
        let eg = format!("{}/{{uidb64}}/{{token}}/", prefix.trim_end_matches('/'));
        return Err((
            "link.token_in".into(),
            format!(
                "= \"path\" in a file of format 1 ({stated}): refused, because its meaning changed. In format 1, \
                 `link.url` ({prefix:?}) was a prefix and the token any path segment below it; in format {FORMAT}, \
                 `link.url` is the whole path of the link, with placeholders for what varies. To convert: \
                 write the link's path as a pattern, one placeholder per varying segment, e.g. \
                 `url = \"{eg}\"` (or `{{uidb36}}-{{token}}` when two values share a segment), remove \
                 `token_in` and `token_param`, and add `format = {FORMAT}` as the first line. \
                 `resetkit-harness init --url ... --account ...` drafts the pattern from a real email."
            ),
        ));
    }
    Ok(vec![format!(
        "the target file has {stated}: read as format 1 and converted to format {FORMAT} (same meaning: \
         it does not use `token_in = \"path\"`, the one key whose meaning changed). Add `format = {FORMAT}` \
         as its first line."
    )])
}
