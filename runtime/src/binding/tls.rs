//! Serving HTTPS with client certificates (the `tls` feature): rustls over tokio, hyper-util's
//! HTTP/1 and HTTP/2 server, and the handshake's client certificate in every request as a
//! [`ClientCertificate`] (with the peer address as `ConnectInfo<SocketAddr>`).
//!
//! With a client CA, a client certificate is asked for and, when one is sent, verified
//! against that CA (`WebPkiClientVerifier`); a client without one still connects (routes
//! that do not require a certificate-bound token keep working) and its requests carry no
//! certificate, so certificate-bound tokens are refused on them.
//!
//! ```no_run
//! # async fn run(app: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use tokengate_runtime::binding::tls::{TlsConfig, serve};
//!
//! let tls = TlsConfig::from_pem_files(Path::new("cert.pem"), Path::new("key.pem"), Some(Path::new("clients-ca.pem")))?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! serve(listener, app, tls, std::future::pending()).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::mtls::ClientCertificate;

/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS configuration that could not be built: which file or setting, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {reason}")]
    Pem {
        /// `--tls-cert`, `--tls-key`, `--tls-client-ca`, or which input.
        what: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificate, key or client CA.
    #[error("TLS configuration refused: {0}")]
    Rustls(String),
}

/// The server's certificate chain and key, and the CA its clients' certificates chain to.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    server: Arc<rustls::ServerConfig>,
    client_auth: bool,
}

impl TlsConfig {
    /// From PEM files: the certificate chain, its private key, and optionally the CA that
    /// client certificates must chain to (without it, no client certificate is asked for).
    pub fn from_pem_files(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<TlsConfig, TlsError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|e| TlsError::Pem {
                what,
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        };
        let ca = client_ca
            .map(|p| read("client CA", p).map(|pem| (pem, p)))
            .transpose()?;
        TlsConfig::build(
            (&read("certificate", cert)?, cert),
            (&read("private key", key)?, key),
            ca.as_ref().map(|(pem, p)| (pem.as_slice(), *p)),
        )
    }

    /// From PEM texts (the paths in errors say "(inline)").
    pub fn from_pem(cert: &[u8], key: &[u8], client_ca: Option<&[u8]>) -> Result<TlsConfig, TlsError> {
        let inline = Path::new("(inline)");
        TlsConfig::build((cert, inline), (key, inline), client_ca.map(|ca| (ca, inline)))
    }

    fn build(cert: (&[u8], &Path), key: (&[u8], &Path), ca: Option<(&[u8], &Path)>) -> Result<TlsConfig, TlsError> {
        let pem_error = |what: &'static str, path: &Path, reason: String| TlsError::Pem {
            what,
            path: path.display().to_string(),
            reason,
        };
        let chain = certificates(cert.0).map_err(|r| {
            // A key given for the certificate, most likely with the certificate given for the key.
            let swapped = PrivateKeyDer::from_pem_slice(cert.0).is_ok();
            let hint = if swapped {
                "; it holds a private key: are the certificate and key swapped?"
            } else {
                ""
            };
            pem_error("certificate", cert.1, format!("{r}{hint}"))
        })?;
        let private_key = PrivateKeyDer::from_pem_slice(key.0)
            .map_err(|e| pem_error("private key", key.1, format!("no PEM private key ({e})")))?;
        let builder =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = match ca {
            Some((pem, path)) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in certificates(pem).map_err(|r| pem_error("client CA", path, r))? {
                    roots.add(ca).map_err(|e| pem_error("client CA", path, e.to_string()))?;
                }
                let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsError::Rustls(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_single_cert(chain, private_key).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => pem_error(
                "private key",
                key.1,
                format!(
                    "not the key of the certificate {} (the first of its chain); give the private key that \
                     certificate was issued for",
                    cert.1.display()
                ),
            ),
            e => TlsError::Rustls(e.to_string()),
        })?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsConfig {
            server: Arc::new(server),
            client_auth: ca.is_some(),
        })
    }

    /// Whether client certificates are asked for.
    pub fn asks_for_client_certificates(&self) -> bool {
        self.client_auth
    }
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not PEM certificates ({e})"))?;
    if chain.is_empty() {
        return Err("no `BEGIN CERTIFICATE` block".to_owned());
    }
    Ok(chain)
}

/// Serves `app` over TLS on `listener` until `shutdown` completes (connections already open
/// are then left to finish). Each request carries `ConnectInfo<SocketAddr>` and, when the
/// client sent one, its [`ClientCertificate`]. A failed handshake closes that connection only.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: TlsConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::clone(&tls.server));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(target: "tokengate", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        tokio::spawn(connection(acceptor.clone(), tcp, peer, app.clone()));
    }
}

/// One connection: the handshake, then HTTP/1 or HTTP/2 with the certificate in each request.
async fn connection(acceptor: TlsAcceptor, tcp: tokio::net::TcpStream, peer: SocketAddr, app: axum::Router) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(target: "tokengate", %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(target: "tokengate", %peer, "TLS handshake timed out");
            return;
        }
    };
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(<[CertificateDer<'_>]>::first)
        .map(|der| ClientCertificate::from_der(der.as_ref()));
    let service = app.map_request(move |mut request: http::Request<hyper::body::Incoming>| {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(peer));
        // The handshake's certificate replaces anything a layer could have been told.
        extensions.remove::<ClientCertificate>();
        if let Some(certificate) = &certificate {
            extensions.insert(certificate.clone());
        }
        request
    });
    let served = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
        .await;
    if let Err(e) = served {
        tracing::debug!(target: "tokengate", %peer, error = %e, "connection ended with an error");
    }
}
