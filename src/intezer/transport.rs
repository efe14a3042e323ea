//! One HTTP exchange with Intezer: build the request, send it with a timeout
//! cut to the caller's deadline, and read the body under the size cap.
//!
//! Retries, access tokens and the rate limiter sit above this layer, in
//! `client.rs` and `token.rs`.

use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::TryStreamExt;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::io::ReaderStream;

use super::error::IntezerError;
use super::response::{is_path_segment, Reply};
use super::retry::{Delivery, Resend};
use super::settings::{normalize_base_url, IntezerSettings};
use crate::config::Secret;
use crate::download::{write_if_small, WriteError};

/// Maximum number of idle connections kept for reuse. Each keeps buffers
/// of tens of KiB. Connections a burst opens beyond this are closed when it
/// ends, so the memory of a burst is given back.
const MAX_IDLE_CONNECTIONS: usize = 64;

/// Body of a request. No `Debug`, because the token request carries the
/// API key in its JSON body.
pub(crate) enum RequestBody<'a> {
    None,
    Json(Value),
    /// Multipart upload of the file at `path`, streamed from disk.
    Upload {
        path: &'a Path,
        file_name: &'a str,
    },
}

/// Destination of the body of a 200 response.
pub(crate) enum Sink<'a> {
    Memory,
    /// Streamed to this file, which is created or truncated. Error bodies
    /// still go to memory.
    File(&'a Path),
}

/// One request to a path below the versioned root.
pub(crate) struct ApiRequest<'a> {
    pub endpoint: &'static str,
    pub method: Method,
    /// Path below the versioned root, starting with `/`.
    pub path: String,
    pub body: RequestBody<'a>,
    pub sink: Sink<'a>,
    pub resend: Resend,
}

impl<'a> ApiRequest<'a> {
    /// Creates a read with a JSON body, retried on any transient failure.
    pub fn json(endpoint: &'static str, method: Method, path: String, body: Value) -> Self {
        ApiRequest {
            endpoint,
            method,
            path,
            body: RequestBody::Json(body),
            sink: Sink::Memory,
            resend: Resend::Idempotent,
        }
    }
}

/// A failed attempt and how far it got, for the retry decision.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: IntezerError,
    pub delivery: Delivery,
}

impl Failure {
    pub fn not_sent(error: IntezerError) -> Self {
        Failure {
            error,
            delivery: Delivery::NotSent,
        }
    }
}

/// The shared HTTP client and the limits applied to each exchange.
pub(crate) struct Transport {
    http: reqwest::Client,
    /// `<base_url><api_version>`, without a trailing slash.
    root: String,
    request_timeout: Duration,
    max_response_bytes: u64,
    /// One permit per request open at once.
    in_flight: tokio::sync::Semaphore,
}

impl Transport {
    /// Validates the settings and builds the HTTP client.
    pub fn new(settings: &IntezerSettings) -> Result<Self, IntezerError> {
        let base_url = normalize_base_url(&settings.base_url);
        validate_base_url(&base_url)?;
        if !is_path_segment(&settings.api_version) {
            return Err(IntezerError::Config(format!(
                "api_version {:?} must be a single path segment such as \"v2-0\"",
                settings.api_version
            )));
        }
        if settings.api_key.is_empty() {
            return Err(IntezerError::Config(
                "api_key is empty; set the Intezer API key".into(),
            ));
        }
        if settings.request_timeout.is_zero() || settings.connect_timeout.is_zero() {
            return Err(IntezerError::Config(
                "connect_timeout and request_timeout must be greater than zero".into(),
            ));
        }
        if settings.max_response_bytes == 0 {
            return Err(IntezerError::Config(
                "max_response_bytes must be greater than zero".into(),
            ));
        }

        // Redirects are not followed because the API does not use them, and a
        // redirected upload or token request could reach an unconfigured host.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .user_agent(settings.user_agent.as_str())
            .pool_max_idle_per_host(
                settings
                    .max_requests_in_flight
                    .clamp(1, MAX_IDLE_CONNECTIONS),
            )
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca_path) = &settings.ca_path {
            for certificate in read_ca_bundle(ca_path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if !settings.tls_verify {
            tracing::warn!(
                base_url = %base_url,
                "TLS certificate verification is off for Intezer; any server can impersonate it"
            );
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|err| {
            IntezerError::Config(format!(
                "failed to build the HTTP client: {}",
                error_chain(&err)
            ))
        })?;

        Ok(Transport {
            http,
            root: format!("{base_url}{}", settings.api_version),
            request_timeout: settings.request_timeout,
            max_response_bytes: settings.max_response_bytes,
            in_flight: tokio::sync::Semaphore::new(settings.max_requests_in_flight.max(1)),
        })
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Sends `request` once and reads its response. `bearer` goes in the
    /// `Authorization` header, marked sensitive so that it never shows in
    /// `Debug` output.
    pub async fn send(
        &self,
        request: &ApiRequest<'_>,
        bearer: Option<&Secret>,
        deadline: Instant,
    ) -> Result<Reply, Failure> {
        let endpoint = request.endpoint;
        let deadline_passed = || Failure::not_sent(IntezerError::DeadlineExceeded { endpoint });
        // Held until the body is read, so it bounds open connections.
        let _permit = match tokio::time::timeout_at(deadline, self.in_flight.acquire()).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; a timeout is the deadline.
            Ok(Err(_)) | Err(_) => return Err(deadline_passed()),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(deadline_passed());
        }

        let url = format!("{}{}", self.root, request.path);
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .timeout(self.request_timeout.min(remaining));
        if let Some(token) = bearer {
            builder = builder.bearer_auth(token.expose());
        }
        builder = match &request.body {
            RequestBody::None => builder,
            RequestBody::Json(value) => builder.json(value),
            RequestBody::Upload { path, file_name } => {
                builder.multipart(upload_form(path, file_name).await?)
            }
        };

        let response = builder.send().await.map_err(|err| {
            // A failed connection means nothing was sent, but a failure after
            // connecting may come after the server got the request.
            let delivery = if err.is_connect() {
                Delivery::NotSent
            } else {
                Delivery::Unknown
            };
            Failure {
                error: reqwest_error(endpoint, err),
                delivery,
            }
        })?;

        let status = response.status();
        let headers = response.headers().clone();
        tracing::trace!(
            endpoint,
            status = status.as_u16(),
            "Intezer response headers received"
        );

        // The body is only partly read when these fail, so an upload that
        // the server may have accepted is marked as not safely resendable.
        let body_failure = |error: IntezerError| Failure {
            delivery: if error.is_transient() {
                Delivery::Unknown
            } else {
                Delivery::Answered
            },
            error,
        };
        let mut reply = Reply {
            status,
            headers,
            body: Default::default(),
            written: None,
        };
        match (&request.sink, status) {
            (Sink::File(dest), StatusCode::OK) => {
                let written = self
                    .download_body(endpoint, response, dest)
                    .await
                    .map_err(body_failure)?;
                reply.written = Some(written);
            }
            _ => {
                reply.body = self
                    .read_body(endpoint, response)
                    .await
                    .map_err(body_failure)?
                    .freeze();
            }
        }
        Ok(reply)
    }

    /// Reads a body into memory, failing as soon as it passes the cap.
    async fn read_body(
        &self,
        endpoint: &'static str,
        mut response: Response,
    ) -> Result<BytesMut, IntezerError> {
        let limit = self.max_response_bytes;
        let too_large = IntezerError::ResponseTooLarge { endpoint, limit };
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(too_large);
        }

        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| reqwest_error(endpoint, err))?
        {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Streams a body to `dest` and returns the bytes written. On any
    /// failure the partial file is removed, so `dest` never contains
    /// a truncated sample.
    async fn download_body(
        &self,
        endpoint: &'static str,
        response: Response,
        dest: &Path,
    ) -> Result<u64, IntezerError> {
        let limit = self.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(IntezerError::ResponseTooLarge { endpoint, limit });
        }

        let result = match write_if_small(response, dest).await {
            Ok(written) => written.map_err(|err| match err {
                WriteError::Body(err) => reqwest_error(endpoint, err),
                WriteError::File(err) => local_file_error(dest, &err),
            }),
            Err(response) => {
                let file = tokio::fs::File::create(dest)
                    .await
                    .map_err(|err| local_file_error(dest, &err))?;
                write_capped(endpoint, response, file, dest, limit).await
            }
        };
        if result.is_err() {
            if let Err(err) = tokio::fs::remove_file(dest).await {
                tracing::warn!(endpoint, path = %dest.display(), error = %err, "failed to remove partial download");
            }
        }
        result
    }
}

async fn write_capped(
    endpoint: &'static str,
    mut response: Response,
    mut file: tokio::fs::File,
    dest: &Path,
    limit: u64,
) -> Result<u64, IntezerError> {
    let mut written: u64 = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| reqwest_error(endpoint, err))?
    {
        written += chunk.len() as u64;
        if written > limit {
            return Err(IntezerError::ResponseTooLarge { endpoint, limit });
        }
        file.write_all(&chunk)
            .await
            .map_err(|err| local_file_error(dest, &err))?;
    }
    file.flush()
        .await
        .map_err(|err| local_file_error(dest, &err))?;
    Ok(written)
}

/// Builds the upload form: the file part named `file` with its file name,
/// streamed from disk, and `verify_file_support=True` spelt as Intezer's
/// Python clients send booleans.
async fn upload_form(path: &Path, file_name: &str) -> Result<Form, Failure> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|err| Failure::not_sent(local_file_error(path, &err)))?;
    let length = file
        .metadata()
        .await
        .map_err(|err| Failure::not_sent(local_file_error(path, &err)))?
        .len();

    let stream = ReaderStream::new(file).map_err(std::io::Error::other);
    let part = Part::stream_with_length(reqwest::Body::wrap_stream(stream), length)
        .file_name(file_name.to_string())
        .mime_str("application/octet-stream")
        .map_err(|err| {
            Failure::not_sent(IntezerError::Transport {
                endpoint: super::endpoint::ANALYZE,
                message: error_chain(&err),
            })
        })?;
    Ok(Form::new()
        .part("file", part)
        .text("verify_file_support", "True"))
}

/// Reads every certificate of a PEM bundle and checks that TLS accepts
/// them as root certificates.
fn read_ca_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, IntezerError> {
    let pem = std::fs::read(path).map_err(|err| {
        IntezerError::Config(format!(
            "failed to read ca_cert_path {}: {err}",
            path.display()
        ))
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
        IntezerError::Config(format!(
            "ca_cert_path {} is not a PEM certificate bundle: {}",
            path.display(),
            error_chain(&err)
        ))
    })?;
    if certificates.is_empty() {
        return Err(IntezerError::Config(format!(
            "ca_cert_path {} contains no PEM certificate",
            path.display()
        )));
    }

    // The PEM parser only decodes base64, so a certificate that is not valid
    // DER is first noticed when a client is built with it. A client built
    // with these certificates alone attributes that failure to this file.
    let mut probe = reqwest::Client::builder().tls_built_in_root_certs(false);
    for certificate in &certificates {
        probe = probe.add_root_certificate(certificate.clone());
    }
    probe.build().map_err(|err| {
        IntezerError::Config(format!(
            "ca_cert_path {} contains an invalid certificate: {}",
            path.display(),
            error_chain(&err)
        ))
    })?;
    Ok(certificates)
}

/// Checks that the base URL is a plain http(s) URL. Credentials in the URL
/// are rejected because the URL appears in logs.
fn validate_base_url(base_url: &str) -> Result<(), IntezerError> {
    let url = url::Url::parse(base_url).map_err(|err| {
        IntezerError::Config(format!("base_url {base_url:?} is not a valid URL: {err}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(IntezerError::Config(format!(
            "base_url {base_url:?} must be an http or https URL such as https://analyze.intezer.com/api/"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(IntezerError::Config(
            "base_url must not contain credentials; set api_key instead".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(IntezerError::Config(format!(
            "base_url {base_url:?} must not have a query or fragment"
        )));
    }
    Ok(())
}

/// Maps a reqwest error without its URL: timeouts to `Timeout`, the rest
/// to `Transport` with the chain of causes.
pub(crate) fn reqwest_error(endpoint: &'static str, err: reqwest::Error) -> IntezerError {
    if err.is_timeout() {
        return IntezerError::Timeout { endpoint };
    }
    IntezerError::Transport {
        endpoint,
        message: error_chain(&err.without_url()),
    }
}

/// Joins an error and its sources with ": ".
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn local_file_error(path: &Path, err: &std::io::Error) -> IntezerError {
    IntezerError::LocalFile {
        path: path.display().to_string(),
        message: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base_url: &str) -> IntezerSettings {
        IntezerSettings::new(base_url, Secret::new("key"))
    }

    #[test]
    fn transport_builds_versioned_root() {
        let transport = Transport::new(&settings("http://127.0.0.1:9/api")).unwrap();

        assert_eq!(transport.root(), "http://127.0.0.1:9/api/v2-0");
    }

    #[test]
    fn transport_rejects_bad_base_urls() {
        for base_url in [
            "ftp://host/api/",
            "not a url",
            "https://user:pw@host/api/",
            "https://host/api/?x=1",
        ] {
            let result = Transport::new(&settings(base_url));
            assert!(matches!(result, Err(IntezerError::Config(_))), "{base_url}");
        }
    }

    #[test]
    fn transport_rejects_empty_api_key() {
        let mut settings = settings("http://127.0.0.1:9/api/");
        settings.api_key = Secret::new("  ");

        assert!(matches!(
            Transport::new(&settings),
            Err(IntezerError::Config(_))
        ));
    }

    #[test]
    fn transport_rejects_api_version_with_slash() {
        let mut settings = settings("http://127.0.0.1:9/api/");
        settings.api_version = "v2-0/../x".into();

        assert!(matches!(
            Transport::new(&settings),
            Err(IntezerError::Config(_))
        ));
    }

    #[test]
    fn transport_rejects_missing_ca_file() {
        let mut settings = settings("http://127.0.0.1:9/api/");
        settings.ca_path = Some("/nonexistent/ca.pem".into());

        assert!(matches!(
            Transport::new(&settings),
            Err(IntezerError::Config(_))
        ));
    }
}
