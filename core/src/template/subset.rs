//! The part of Jinja an email template may use: bounded work and size.
//!
//! Fuel ([`super::TEMPLATE_FUEL`]) bounds the steps of a rendering, but one
//! step can build a huge value: `'x' * 100000000`, `{% set s = s ~ s %}`
//! forty times, a macro that doubles its argument nested forty deep,
//! `x|replace('', x)` chained, `escape` of `&`s chained. An operator's
//! template could exhaust the memory of every instance at save or at the
//! next mail; and a list nested by doubling (`[a, a]` bound forty times
//! over) prints or compares in one step for ever. Reset emails need none of
//! it: they print variables, loop over accounts and branch. So templates
//! may not use `set`, `with`, `macro`, `call`, `filter`, `import`, `from`,
//! `extends` or `namespace`, the `*` and `~` operators, list, tuple or map
//! literals, or filters other than [`ALLOWED_FILTERS`]; and only strings,
//! numbers and booleans are printed. What remains grows at most
//! polynomially with the template's own (bounded) size.

/// The filters a template may use: none of them makes its output larger
/// than its input plus its (literal) arguments.
pub(super) const ALLOWED_FILTERS: &[&str] = &[
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "length",
    "count",
    "default",
    "d",
    "first",
    "last",
    "truncate",
    "striptags",
    "int",
    "abs",
    "round",
];

/// Statements a template may not use.
const REFUSED_STATEMENTS: &[&str] = &[
    "set", "macro", "call", "import", "from", "extends", "filter", "with", "include", "block",
];

/// Checks a template's source against the subset; the error says what is
/// not allowed and why.
pub(super) fn check_source(source: &str) -> Result<(), String> {
    let mut rest = source;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let (close, is_statement) = match after.chars().next() {
            Some('{') => ("}}", false),
            Some('%') => ("%}", true),
            Some('#') => {
                rest = after.find("#}").map_or("", |end| &after[end + 2..]);
                continue;
            }
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        let Some(end) = find_outside_strings(body, close) else {
            // Unterminated: minijinja reports the syntax error.
            return Ok(());
        };
        let tag = body[..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        rest = &body[end + 2..];
        if is_statement {
            let word: String = tag.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
            if word == "raw" {
                rest = rest.find("endraw").map_or("", |i| &rest[i..]);
                rest = rest.find("%}").map_or("", |i| &rest[i + 2..]);
                continue;
            }
            if REFUSED_STATEMENTS.contains(&word.as_str()) {
                return Err(format!(
                    "uses `{{% {word} %}}`; reset email templates may print variables, loop and branch \
                     (for, if), but not set variables, define macros or import (a value built that way \
                     can grow without bound)"
                ));
            }
        }
        check_expression(tag)?;
    }
    Ok(())
}

/// Refuses `*`, `~`, `namespace`, literals of lists, tuples and maps, and
/// filters outside [`ALLOWED_FILTERS`] in one tag.
fn check_expression(tag: &str) -> Result<(), String> {
    let code = without_strings(tag);
    if code.contains('*') {
        return Err("uses the `*` operator; reset email templates may not multiply \
                    (a repeated string can take all memory)"
            .into());
    }
    if code.contains('~') {
        return Err("uses the `~` operator; write the parts side by side instead \
                    (`{{ a }} {{ b }}`): concatenation can grow without bound"
            .into());
    }
    let chars: Vec<char> = code.chars().collect();
    let mut depth_tuple: Vec<bool> = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        let before = chars[..i].iter().rev().find(|c| !c.is_whitespace()).copied();
        let follows_value =
            before.is_some_and(|b| b.is_ascii_alphanumeric() || b == '_' || b == ')' || b == ']');
        match c {
            '[' if !follows_value => {
                return Err(
                    "uses a list literal (`[...]`); reset email templates may not build lists".into(),
                );
            }
            '{' => {
                return Err("uses a map literal (`{...}`); reset email templates may not build maps".into());
            }
            '(' => depth_tuple.push(!follows_value),
            ')' => {
                depth_tuple.pop();
            }
            ',' if depth_tuple.last() == Some(&true) => {
                return Err(
                    "uses a tuple literal (`(a, b)`); reset email templates may not build lists".into(),
                );
            }
            _ => {}
        }
    }
    for word in code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word == "namespace" {
            return Err("uses `namespace()`; reset email templates may not keep state".into());
        }
    }
    for piece in code.split('|').skip(1) {
        let name: String = piece
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            // `||` is not Jinja; let minijinja name the syntax error.
            continue;
        }
        if !ALLOWED_FILTERS.contains(&name.as_str()) {
            return Err(format!(
                "uses the `{name}` filter; reset email templates may use only {} (others can \
                 multiply a value's size)",
                ALLOWED_FILTERS.join(", ")
            ));
        }
    }
    Ok(())
}

/// Each character of `text` with its byte index and whether it lies
/// inside a quoted string (the quotes themselves count as outside).
fn scan(text: &str) -> impl Iterator<Item = (usize, char, bool)> + '_ {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    text.char_indices().map(move |(i, c)| {
        let inside = match quote {
            Some(_) if escaped => {
                escaped = false;
                true
            }
            Some(_) if c == '\\' => {
                escaped = true;
                true
            }
            Some(q) if c == q => {
                quote = None;
                false
            }
            Some(_) => true,
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                false
            }
        };
        (i, c, inside)
    })
}

/// The position of `needle` in `text`, skipping quoted strings.
fn find_outside_strings(text: &str, needle: &str) -> Option<usize> {
    scan(text)
        .find(|(i, _, inside)| !inside && text[*i..].starts_with(needle))
        .map(|(i, _, _)| i)
}

/// `tag` with its quoted strings' contents left out.
fn without_strings(tag: &str) -> String {
    scan(tag)
        .filter(|(_, _, inside)| !inside)
        .map(|(_, c, _)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_reset_emails_need_is_allowed() {
        for source in [
            "Hello {{ username }},\n\n{{ link }}\n",
            "{% for a in accounts %}{{ a.username|upper }}: {{ a.link }}{% endfor %}",
            "{% if expires_minutes > 60 %}{{ expires_minutes // 60 }} hours{% endif %}",
            "{{ 'A * B ~ C | replace' }} {# a * comment ~ #}",
            "{% raw %}{% set x = 1 %}{% endraw %}",
            "{{ username|default('there')|title }}",
        ] {
            check_source(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        }
    }

    #[test]
    fn what_can_grow_without_bound_is_refused() {
        for (source, names) in [
            ("{{ 'x' * 100000000 }}", "`*`"),
            ("{% set s = username %}{% set s = s ~ s %}", "set"),
            ("{%- set s -%}{{ s }}{{ s }}{% endset %}", "set"),
            ("{% macro d(s) %}{{ s }}{{ s }}{% endmacro %}", "macro"),
            ("{{ username ~ username }}", "`~`"),
            ("{{ username|replace('', username) }}", "replace"),
            ("{{ username | replace('', username) }}", "replace"),
            ("{{ link|e|e }}", "`e`"),
            (
                "{% for b in [[username, username]] %}{{ b|length }}{% endfor %}",
                "list literal",
            ),
            (
                "{% for b in ((username, username),) %}{% endfor %}",
                "tuple literal",
            ),
            ("{{ {'a': link} }}", "map literal"),
            ("{{ range(1000)|join(link) }}", "join"),
            ("{{ namespace(s=link) }}", "namespace"),
            ("{% from 'x' import y %}", "from"),
        ] {
            let err = check_source(source).unwrap_err();
            assert!(err.contains(names), "{source}: {err}");
        }
    }
}
