//! Checks on what an `airssys:web` guest answers: a valid status, and headers that are valid HTTP, latin-1, and
//! within the caps (a guest must not be able to make the host send, or hold, 100,000 headers).

use crate::errors::Fault;

/// Default caps on a guest's response headers (nginx's default header buffers hold about this much).
pub const MAX_HEADERS: usize = 256;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn bad_value_char(c: char) -> bool {
    (c < ' ' && c != '\t') || c == '\x7f' || u32::from(c) > 0xff
}

pub fn check_response(
    tag: &str,
    status: u16,
    headers: &[(String, String)],
    max_headers: usize,
    max_bytes: usize,
) -> Result<(), Fault> {
    if !(100..=599).contains(&status) {
        return Err(Fault::bad_response(format!(
            "{tag} answered with invalid status {status} (must be 100-599)"
        )));
    }
    if headers.len() > max_headers {
        return Err(Fault::bad_response(format!(
            "{tag} answered with {} headers, more than the {max_headers} allowed",
            headers.len()
        )));
    }
    let mut total = 0usize;
    for (name, value) in headers {
        total += name.len() + value.len();
        if !is_token(name) {
            let shown: String = name.chars().take(64).collect();
            return Err(Fault::bad_response(format!(
                "{tag} answered with an invalid header name {shown:?}"
            )));
        }
        if let Some(c) = value.chars().find(|&c| bad_value_char(c)) {
            let what = if u32::from(c) > 0xff {
                "a non-latin-1 character"
            } else {
                "a control character"
            };
            return Err(Fault::bad_response(format!(
                "{tag} answered with {what} in header {name:?}"
            )));
        }
    }
    if total > max_bytes {
        return Err(Fault::bad_response(format!(
            "{tag} answered with {total} bytes of headers, more than the {max_bytes} allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn accepts_ordinary_responses() {
        assert!(check_response(
            "t",
            200,
            &h(&[("content-type", "text/plain; charset=\u{e9}")]),
            8,
            1024
        )
        .is_ok());
        assert!(check_response("t", 599, &[], 8, 1024).is_ok());
    }

    #[test]
    fn refuses_bad_statuses_names_values_and_floods() {
        let err =
            |s, hs: &[(&str, &str)]| check_response("t", s, &h(hs), 4, 64).unwrap_err().message;
        assert!(err(99, &[]).contains("invalid status 99"));
        assert!(err(600, &[]).contains("invalid status 600"));
        assert!(err(200, &[("bad name", "x")]).contains("invalid header name"));
        assert!(err(200, &[("x", "a\nb")]).contains("control character"));
        assert!(err(200, &[("x", "\u{263a}")]).contains("non-latin-1"));
        assert!(err(
            200,
            &[("a", ""), ("b", ""), ("c", ""), ("d", ""), ("e", "")]
        )
        .contains("5 headers"));
        assert!(err(200, &[("a", &"x".repeat(100))]).contains("bytes of headers"));
    }
}
