//! Certificate-bound tokens (RFC 8705): the client certificate of a request, and where it
//! comes from.
//!
//! The gate reads a [`ClientCertificate`] from the request's extensions and compares its
//! SHA-256 with a token's `cnf."x5t#S256"`. It gets there in one of two ways:
//!
//! - the server terminates TLS itself and asks for client certificates
//!   ([`crate::binding::tls`], the `tls` feature), which puts the handshake's certificate in
//!   each request;
//! - a TLS-terminating proxy forwards the certificate in a header (URL-encoded PEM, as
//!   nginx's `$ssl_client_escaped_cert`), read by [`ClientCertHeaderLayer`] **only when the
//!   connection comes from a configured proxy address**. From any other peer the header is
//!   ignored (and removed, so nothing after the layer reads it): a client cannot name its own
//!   certificate. A certificate-bound token is then refused for want of a certificate.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use tokengate_runtime::binding::mtls::ClientCertHeaderLayer;
//!
//! let layer = ClientCertHeaderLayer::new("x-ssl-client-cert", [IpAddr::V4(Ipv4Addr::LOCALHOST)]).unwrap();
//! # drop(layer);
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::{HeaderName, Request};
use sha2::{Digest as _, Sha256};
use tower::{Layer, Service};

/// The largest certificate header looked at, in bytes.
pub const MAX_CERT_HEADER_BYTES: usize = 16 * 1024;

/// The client's certificate (DER), as the TLS handshake or a trusted proxy gave it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    der: Arc<[u8]>,
    thumbprint: Arc<str>,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint)
            .finish()
    }
}

impl ClientCertificate {
    /// A certificate from its DER bytes.
    pub fn from_der(der: impl Into<Arc<[u8]>>) -> ClientCertificate {
        let der: Arc<[u8]> = der.into();
        let thumbprint = B64.encode(Sha256::digest(&der)).into();
        ClientCertificate { der, thumbprint }
    }

    /// The first `CERTIFICATE` of a PEM text, or `None`.
    pub fn from_pem(pem_text: &str) -> Option<ClientCertificate> {
        pem::parse_many(pem_text)
            .ok()?
            .into_iter()
            .find(|p| p.tag() == "CERTIFICATE")
            .map(|p| ClientCertificate::from_der(p.into_contents()))
    }

    /// A certificate from a URL-encoded PEM header value (nginx's `$ssl_client_escaped_cert`).
    pub fn from_escaped_pem(value: &[u8]) -> Option<ClientCertificate> {
        let decoded = percent_encoding::percent_decode(value).decode_utf8().ok()?;
        ClientCertificate::from_pem(&decoded)
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The base64url SHA-256 of the DER bytes: what a bound token's `cnf."x5t#S256"` holds.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Whether `x5t` (a token's `cnf."x5t#S256"`) names this certificate (constant time).
    pub fn matches(&self, x5t: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        x5t.len() == self.thumbprint.len() && bool::from(x5t.as_bytes().ct_eq(self.thumbprint.as_bytes()))
    }
}

/// A [`ClientCertHeaderLayer`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertHeaderError {
    /// The header name is not a valid HTTP header name.
    #[error("{0:?} is not a header name; use e.g. `x-ssl-client-cert`")]
    HeaderName(String),
    /// No proxy address: the header would never be read.
    #[error(
        "a client-certificate header needs at least one trusted proxy address (the proxy that terminates TLS and sets it); without one it would be read from nobody"
    )]
    NoTrustedProxy,
}

/// Reads the client certificate from a header set by a TLS-terminating proxy, only on
/// connections from `trusted` addresses (the server must be served with
/// `into_make_service_with_connect_info::<SocketAddr>()`; without the peer address the
/// header is never trusted).
#[derive(Clone, Debug)]
pub struct ClientCertHeaderLayer {
    header: HeaderName,
    trusted: Arc<[IpAddr]>,
}

impl ClientCertHeaderLayer {
    /// Trusts `header` from `trusted` peer addresses only.
    pub fn new(header: &str, trusted: impl IntoIterator<Item = IpAddr>) -> Result<Self, CertHeaderError> {
        let name =
            HeaderName::from_bytes(header.as_bytes()).map_err(|_| CertHeaderError::HeaderName(header.to_owned()))?;
        let trusted: Arc<[IpAddr]> = trusted.into_iter().map(canonical).collect();
        if trusted.is_empty() {
            return Err(CertHeaderError::NoTrustedProxy);
        }
        Ok(ClientCertHeaderLayer { header: name, trusted })
    }

    /// Takes the header off `request`, and leaves its certificate in the extensions when the
    /// peer is trusted.
    fn apply<B>(&self, request: &mut Request<B>) {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| canonical(c.0.ip()));
        let count = request.headers().get_all(&self.header).iter().count();
        let Some(value) = request.headers_mut().remove(&self.header) else {
            return;
        };
        if !peer.is_some_and(|p| self.trusted.contains(&p)) {
            tracing::debug!(
                target: "tokengate",
                peer = ?peer,
                header = %self.header,
                "client-certificate header from a peer that is not a trusted proxy: ignored"
            );
            return;
        }
        let certificate = (count == 1 && value.len() <= MAX_CERT_HEADER_BYTES)
            .then(|| ClientCertificate::from_escaped_pem(value.as_bytes()))
            .flatten();
        match certificate {
            Some(certificate) => {
                request.extensions_mut().insert(certificate);
            }
            None => tracing::warn!(
                target: "tokengate",
                header = %self.header,
                "the trusted proxy's client-certificate header holds no URL-encoded PEM certificate: ignored"
            ),
        }
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address, so `127.0.0.1` matches `::ffff:127.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl<S> Layer<S> for ClientCertHeaderLayer {
    type Service = ClientCertHeader<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientCertHeader {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service of [`ClientCertHeaderLayer`].
#[derive(Clone, Debug)]
pub struct ClientCertHeader<S> {
    layer: ClientCertHeaderLayer,
    inner: S,
}

impl<S, B> Service<Request<B>> for ClientCertHeader<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.layer.apply(&mut request);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_layer_needs_a_proxy_and_a_name() {
        assert_eq!(
            ClientCertHeaderLayer::new("x-cert", []).unwrap_err(),
            CertHeaderError::NoTrustedProxy
        );
        assert!(matches!(
            ClientCertHeaderLayer::new("bad header", [IpAddr::from([127, 0, 0, 1])]),
            Err(CertHeaderError::HeaderName(_))
        ));
    }

    #[test]
    fn mapped_addresses_match_their_ipv4() {
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(canonical(mapped), IpAddr::from([10, 0, 0, 1]));
    }
}
