//! Fuzzes the parsers of Intezer responses: bodies of every endpoint under
//! each status code the client tells apart, access tokens, analysis and
//! strings polls, error bodies and rate-limit headers.
//!
//! Input: the first line is a header value (`Retry-After` and the
//! `X-RateLimit-*` headers), the rest is the response body. Without a
//! newline the whole input is the body.

#![no_main]

use intezer_dynamic::intezer::fuzzing::parse_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header_value, body) = match data.iter().position(|&byte| byte == b'\n') {
        Some(newline) => (&data[..newline], &data[newline + 1..]),
        None => (&data[..0], data),
    };
    parse_response(header_value, body);
});
