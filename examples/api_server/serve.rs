//! Listening, serving, the metrics endpoint and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokengate::TokenGate;
use tokengate::binding::metadata::BindingMetadata;
use tokengate::keys::{KeyVerifier, redact_url};
use tokengate::metadata::ProtectedResource;
use tokengate::secret_scanning::{OnLeak, SecretScanning};

use crate::args::Args;
use crate::binding::{Listening, cert_header};
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

pub(crate) async fn serve(
    listening: Listening,
    args: &Args,
    resource: &ProtectedResource,
    gate: TokenGate,
    db: UsersDb,
    keys: Arc<KeyVerifier>,
    dev_key: Option<DevKey>,
) -> Result<(), Fatal> {
    // The metadata says how tokens may be bound: DPoP algorithms, whether certificates reach us.
    let certificates = listening
        .tls
        .as_ref()
        .is_some_and(|tls| tls.asks_for_client_certificates())
        || args.client_cert_header.is_some();
    let binding = BindingMetadata::of(&gate, &crate::routes().report(), certificates);
    let resource = &resource.clone().members(binding.to_json());
    let routes = app_routes(resource);
    routes.check_verifiers(&gate).map_err(|e| {
        fail(format!(
            "{e}. For this server: outside development mode OAuth tokens are verified only as configured; pass \
             --oauth-issuer URL, --oauth-jwks-url URL with --oauth-issuer-name, or --oauth-introspection-url URL"
        ))
    })?;

    let leaks = secret_scanning(args, Arc::clone(&keys))?;
    // Checked before the first line is printed: a mistake is the only line.
    let cert_layer = cert_header(args)?;
    let metrics = match args.metrics_addr {
        Some(addr) => Some(metrics_endpoint(addr).await?),
        None => None,
    };
    print_listening(&listening, args, resource, &gate, metrics, &keys);
    if let Some(dev) = &dev_key {
        db.seed_demo_user().await?;
        print_demo_credentials(&listening.public_url, dev, &keys, args).await?;
    }
    println!("ready");

    let mut app = routes
        .with_state(App {
            gate,
            db: db.clone(),
            leaks,
        })
        .into_axum();
    if let Some(layer) = cert_layer {
        app = app.layer(layer);
    }
    #[allow(clippy::print_stdout)]
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    serve_until_shutdown(listening, app).await?;
    if let Err(e) = keys.shutdown().await {
        tracing::warn!(error = %e, "could not flush last-used times on shutdown");
    }
    db.close().await;
    Ok(())
}

/// The start-up lines before the demo credentials: where the server listens, the resource and
/// its metadata, the metrics endpoint, token binding, the database.
fn print_listening(
    listening: &Listening,
    args: &Args,
    resource: &ProtectedResource,
    gate: &TokenGate,
    metrics: Option<SocketAddr>,
    keys: &KeyVerifier,
) {
    let scheme = if listening.tls.is_some() { "https" } else { "http" };
    println!("tokengate example server listening on {scheme}://{}", listening.addr);
    println!(
        "resource: {} (metadata: {})",
        resource.resource(),
        resource.metadata_url()
    );
    if let Some(metrics) = metrics {
        println!("metrics: http://{metrics}/metrics");
    }
    print_binding(args, gate, &listening.public_url, listening.tls.as_ref());
    println!(
        "database: {} (TTL of the key cache, i.e. the revocation delay: {}s)",
        redact_url(&args.database),
        keys.cache_ttl().as_secs()
    );
}

/// Serves `app` until Ctrl-C or SIGTERM, over TLS when it is configured.
async fn serve_until_shutdown(listening: Listening, app: axum::Router) -> Result<(), Fatal> {
    let Listening { listener, tls, .. } = listening;
    // With the peer's address in each request, the bounds on backend calls give every
    // client its own share (tokengate's `ClientKey::from_peer`); the client-certificate
    // header is read only from trusted proxies' addresses.
    match tls {
        Some(tls) => tokengate::binding::tls::serve(listener, app, tls, shutdown_signal()).await,
        None => {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(shutdown_signal())
                .await
        }
    }
    .map_err(|e| fail(format!("server error: {e}")))
}

/// The secret-scanning endpoint the flags describe.
fn secret_scanning(args: &Args, keys: Arc<KeyVerifier>) -> Result<SecretScanning, Fatal> {
    let mut leaks = SecretScanning::builder(keys).meta_url(&args.github_meta_url);
    if let Some(token) = &args.github_token {
        leaks = leaks.github_token(token);
    }
    if args.on_leak == "record" {
        leaks = leaks.on_leak(OnLeak::Record);
    }
    leaks.build().map_err(|e| fail(format!("--github-meta-url: {e}")))
}

/// What the server does with sender-constrained tokens, in one or two lines.
fn print_binding(args: &Args, gate: &TokenGate, public_url: &str, tls: Option<&tokengate::binding::tls::TlsConfig>) {
    if let Some(dpop) = gate.dpop() {
        let nonces = if dpop.requires_nonce() {
            ", server nonces required"
        } else {
            ""
        };
        println!("DPoP: proofs for {public_url} ({}){nonces}", dpop.algorithms_header());
    }
    let certificates = match (tls, &args.client_cert_header) {
        (Some(tls), _) if tls.asks_for_client_certificates() => "from this server's TLS handshake".to_owned(),
        (_, Some(header)) => format!(
            "from the `{header}` header of {}",
            args.trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "none (serve with --tls-client-ca, or --client-cert-header behind a proxy)".to_owned(),
    };
    println!("client certificates: {certificates}");
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
