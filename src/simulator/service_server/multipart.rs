//! Reads one named part out of a `multipart/form-data` body (RFC 7578).
//!
//! The whole body is already in memory, so a small parser over the buffer
//! is enough. It handles what HTTP clients send for a file upload, but not
//! nested multipart bodies or `Content-Transfer-Encoding`.

use bytes::Bytes;

/// Returns the boundary parameter of a `multipart/form-data` content type,
/// or `None` for any other content type.
pub(super) fn boundary(content_type: &str) -> Option<String> {
    let mut parameters = content_type.split(';');
    let essence = parameters.next()?.trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parameters.find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// Returns the content of the part whose `Content-Disposition` has
/// `name="<field>"`, or an error saying why the body could not be read.
pub(super) fn find_part(
    body: &Bytes,
    boundary: &str,
    field: &str,
) -> Result<Option<Bytes>, String> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();

    let mut position = find(body, delimiter, 0)
        .ok_or_else(|| "multipart body has no opening boundary".to_string())?
        + delimiter.len();
    loop {
        // After a delimiter comes "--" (the closing one) or CRLF and a part.
        let rest = &body[position..];
        if rest.starts_with(b"--") {
            return Ok(None);
        }
        if !rest.starts_with(b"\r\n") {
            return Err("multipart boundary is not followed by CRLF".to_string());
        }
        let part_start = position + 2;

        let headers_end = find(body, b"\r\n\r\n", part_start)
            .ok_or_else(|| "multipart part has no end of headers".to_string())?;
        let content_start = headers_end + 4;
        let next = find(body, &[b"\r\n", delimiter].concat(), content_start)
            .ok_or_else(|| "multipart part has no closing boundary".to_string())?;

        let headers = String::from_utf8_lossy(&body[part_start..headers_end]);
        if part_name(&headers).as_deref() == Some(field) {
            return Ok(Some(body.slice(content_start..next)));
        }
        position = next + 2 + delimiter.len();
    }
}

/// Returns the `name` parameter of a part's `Content-Disposition` header.
fn part_name(headers: &str) -> Option<String> {
    let disposition = headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-disposition")
            .then_some(value)
    })?;
    disposition.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("name")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|offset| from + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_is_read_quoted_or_bare() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; boundary=\"x y\"").as_deref(),
            Some("x y")
        );
        assert_eq!(boundary("application/octet-stream"), None);
    }

    #[test]
    fn find_part_returns_named_part_with_binary_content() {
        let body = Bytes::from_static(
            b"--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
              --b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n\
              Content-Type: application/octet-stream\r\n\r\n\x00\r\n--\xff\r\n--b--\r\n",
        );

        let part = find_part(&body, "b", "file").unwrap();

        assert_eq!(part.as_deref(), Some(&b"\x00\r\n--\xff"[..]));
        assert_eq!(find_part(&body, "b", "other").unwrap(), None);
    }

    #[test]
    fn find_part_rejects_truncated_body() {
        let body =
            Bytes::from_static(b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc");
        assert!(find_part(&body, "b", "file").is_err());
    }
}
