//! Listening, serving, the metrics endpoint and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokengate::TokenGate;
use tokengate::keys::{KeyVerifier, redact_url};
use tokengate::metadata::ProtectedResource;

use crate::args::Args;
use crate::dev::{DevKey, print_demo_credentials};
use crate::users::UsersDb;
use crate::{App, app_routes};
use crate::{Fatal, fail};

/// Installs the Prometheus recorder and serves its text at `http://ADDR/metrics`: tokengate's
/// metrics (README, "Operating tokengate") for a scraper or `curl`. Returns the bound address.
async fn metrics_endpoint(addr: SocketAddr) -> Result<SocketAddr, Fatal> {
    // Histograms with buckets (not the exporter's default summaries), so that percentiles can
    // be taken over several instances: docs/grafana-dashboard.json uses `histogram_quantile`.
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&tokengate::telemetry::SECONDS_BUCKETS)
        .map_err(|e| fail(format!("cannot configure the metrics recorder: {e}")))?
        .install_recorder()
        .map_err(|e| fail(format!("cannot install the metrics recorder: {e}")))?;
    tokengate::telemetry::describe_metrics();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| fail(format!("cannot listen on --metrics-addr {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    // Histograms are drained into their summaries by the upkeep, not by each scrape alone.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    handle.render(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}

/// Binds the server's address (before the gate is built: the resource URL defaults to it).
pub(crate) async fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener, Fatal> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| fail(format!("cannot listen on {addr}: {e}")))
}

pub(crate) async fn serve(
    args: &Args,
    listener: tokio::net::TcpListener,
    resource: &ProtectedResource,
    gate: TokenGate,
    db: UsersDb,
    keys: Arc<KeyVerifier>,
    dev_key: Option<DevKey>,
) -> Result<(), Fatal> {
    let routes = app_routes(resource);
    routes.check_verifiers(&gate).map_err(|e| {
        fail(format!(
            "{e} (configure OAuth with --oauth-issuer, --oauth-jwks-url or --oauth-introspection-url)"
        ))
    })?;

    let metrics = match args.metrics_addr {
        Some(addr) => Some(metrics_endpoint(addr).await?),
        None => None,
    };
    let addr = listener.local_addr()?;

    println!("tokengate example server listening on http://{addr}");
    println!(
        "resource: {} (metadata: {})",
        resource.resource(),
        resource.metadata_url()
    );
    if let Some(metrics) = metrics {
        println!("metrics: http://{metrics}/metrics");
    }
    println!(
        "database: {} (TTL of the key cache, i.e. the revocation delay: {}s)",
        redact_url(&args.database),
        keys.cache_ttl().as_secs()
    );
    if let Some(dev) = &dev_key {
        db.seed_demo_user().await?;
        print_demo_credentials(addr, dev, &keys, args).await?;
    }
    println!("ready");

    let app = routes.with_state(App { gate, db: db.clone() }).into_axum();
    #[allow(clippy::print_stdout)]
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    // With the peer's address in each request, the bounds on backend calls give every
    // client its own share (tokengate's `ClientKey::from_peer`).
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| fail(format!("server error: {e}")))?;
    if let Err(e) = keys.shutdown().await {
        tracing::warn!(error = %e, "could not flush last-used times on shutdown");
    }
    db.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
