//! The small HTTP answers both ports give: a text body with a status, and a
//! 405 that names the allowed methods.
//!
//! Owns: building those `hyper` responses, so the web port (`exposition`) and
//! the push port (`push`) answer alike.
//!
//! May import: nothing from this crate (a leaf).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// A response of one in-memory body.
pub type Body = Full<Bytes>;

/// `status` with `body` as `text/plain; charset=utf-8`.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// 405 with the `Allow` header `allow` (`"GET, HEAD"`) and a body naming them.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let body = match allow.rsplit_once(", ") {
        Some((first, last)) => format!("Method not allowed: use {first} or {last}.\n"),
        None => format!("Method not allowed: use {allow}.\n"),
    };
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, body);
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_not_allowed_names_the_methods() {
        let cases = [
            ("GET", "Method not allowed: use GET.\n"),
            ("GET, HEAD", "Method not allowed: use GET or HEAD.\n"),
            (
                "PUT, POST, DELETE",
                "Method not allowed: use PUT, POST or DELETE.\n",
            ),
        ];
        for (allow, body) in cases {
            let r = method_not_allowed(allow);
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(r.headers()[ALLOW], allow);
            let got = format!("{:?}", r.body());
            assert!(got.contains(&body.escape_debug().to_string()), "{got}");
        }
    }
}
