//! `${VAR}` and `${VAR:-default}` expansion inside config string values. Expansion happens on
//! parsed strings, never on raw text, so it cannot change a value's type or a line number.
//! `$${` writes a literal `${`.

/// Expands every `${...}` in `text` using `lookup`; the error names the variable or the fault.
pub(crate) fn expand_env(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body_and_tail) = after.strip_prefix('{') {
            let end = body_and_tail.find('}').ok_or_else(|| format!("`${{` without a closing `}}` in \"{text}\""))?;
            out.push_str(&resolve(&body_and_tail[..end], lookup)?);
            rest = &body_and_tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(body: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(format!("`${{{body}}}` does not name an environment variable"));
    }
    match (lookup(name).filter(|v| !v.is_empty()), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => {
            Err(format!("environment variable {name} is not set (write `${{{name}:-default}}` to give a default)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_rules() {
        let table: [(&str, Result<&str, &str>); 9] = [
            ("plain", Ok("plain")),
            ("http://${HOST}:1", Ok("http://db.local:1")),
            ("${MISSING:-fallback}", Ok("fallback")),
            ("${EMPTY:-fallback}", Ok("fallback")),
            ("${HOST:-x}${HOST}", Ok("db.localdb.local")),
            ("$${HOST}", Ok("${HOST}")),
            ("cost $5", Ok("cost $5")),
            ("${MISSING}", Err("MISSING is not set")),
            ("${HOST", Err("without a closing")),
        ];
        for (input, want) in table {
            match (expand_env(input, &env), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input}: {got}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }
}
