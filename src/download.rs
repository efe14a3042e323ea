//! Writing a small HTTP response body to a file in one step, shared by the
//! service-server and Intezer clients.
//!
//! Each step of tokio's file API (create, each write, flush) is a hop to a
//! blocking thread and back, which cost more CPU than the write itself for
//! the small files most tasks have (docs/benchmarks/profile.md). A body
//! whose length is known and small is read whole and written with one
//! call; a larger one is left to the caller to stream.

use std::path::Path;

use reqwest::Response;

/// Largest body written in one step.
pub const ONE_WRITE_MAX_BYTES: u64 = 1 << 20;

/// Failure of a one-step write.
#[derive(Debug)]
pub enum WriteError {
    /// The body could not be read from the connection.
    Body(reqwest::Error),
    /// The file could not be written.
    File(std::io::Error),
}

/// Writes the body of `response` to `dest` in one step and returns the
/// bytes written, when the body declares a length of at most
/// [`ONE_WRITE_MAX_BYTES`]. Returns the response unread otherwise.
pub async fn write_if_small(
    response: Response,
    dest: &Path,
) -> Result<Result<u64, WriteError>, Response> {
    let small = response
        .content_length()
        .is_some_and(|length| length <= ONE_WRITE_MAX_BYTES);
    if !small {
        return Err(response);
    }
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(err) => return Ok(Err(WriteError::Body(err))),
    };
    Ok(tokio::fs::write(dest, &body)
        .await
        .map(|()| body.len() as u64)
        .map_err(WriteError::File))
}
