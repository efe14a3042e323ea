//! The HTTP endpoint of the metrics and health checks: `/metrics`
//! (Prometheus text format), `/healthz` (the process answers) and `/readyz`
//! (registered with AL and taking tasks).

use std::net::SocketAddr;

use actix_web::{web, App, HttpResponse, HttpServer};

use super::metrics::metrics;

async fn render_metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics().render())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn readyz() -> HttpResponse {
    if metrics().is_ready() {
        HttpResponse::Ok().content_type("text/plain").body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("not ready")
    }
}

/// Starts the endpoint on `addr` in the current actix system and returns
/// the address it is bound to (useful with port 0).
pub fn start(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let server = HttpServer::new(|| {
        App::new()
            .route("/metrics", web::get().to(render_metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    actix_rt::spawn(server.run());
    Ok(bound)
}
