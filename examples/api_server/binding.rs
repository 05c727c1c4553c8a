//! Sender-constrained tokens: the DPoP checks (`--public-url`, `--dpop-nonce`), the client
//! certificate's source (`--tls-cert`/`--tls-key`/`--tls-client-ca`, or
//! `--client-cert-header` from `--trusted-proxy` addresses), and the bound listener whose
//! address is the default public URL.

use std::net::SocketAddr;
use std::time::Duration;

use tokengate::binding::mtls::ClientCertHeaderLayer;
use tokengate::binding::tls::TlsConfig;
use tokengate::binding::{DpopConfig, DpopVerifier};

use crate::args::Args;
use crate::{Fatal, fail};

/// How long a DPoP nonce is accepted.
const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// The listening socket, and what clients call it.
pub(crate) struct Listening {
    pub(crate) listener: tokio::net::TcpListener,
    pub(crate) addr: SocketAddr,
    /// `http(s)://…`: --public-url, or the address listened on.
    pub(crate) public_url: String,
    /// HTTPS, when --tls-cert is given.
    pub(crate) tls: Option<TlsConfig>,
}

/// Binds --addr and reads the TLS files, before anything else needs the public URL.
pub(crate) async fn listen(args: &Args) -> Result<Listening, Fatal> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            TlsConfig::from_pem_files(cert, key, args.tls_client_ca.as_deref()).map_err(|e| {
                fail(format!(
                    "cannot serve HTTPS: {e} (check --tls-cert, --tls-key and --tls-client-ca)"
                ))
            })?,
        ),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "; another process listens there: choose another --addr, or port 0 for a free one"
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "; this machine has no such address: use one of its own, e.g. 127.0.0.1 or 0.0.0.0"
            }
            _ => "",
        };
        fail(format!("cannot listen on {}: {e}{hint}", args.addr))
    })?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = match &args.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("{scheme}://{addr}"),
    };
    Ok(Listening {
        listener,
        addr,
        public_url,
        tls,
    })
}

/// The DPoP checks the flags ask for.
pub(crate) fn dpop(args: &Args, public_url: &str) -> Result<DpopVerifier, Fatal> {
    let mut config = DpopConfig::new(public_url).map_err(|e| fail(format!("--public-url: {e}")))?;
    if args.dpop_nonce {
        let key = match &args.dpop_nonce_key {
            Some(hex) => decode_hex(hex).filter(|k| k.len() >= 32).ok_or_else(|| {
                fail("--dpop-nonce-key must be at least 32 bytes written as hex digits (64 or more; e.g. `openssl rand -hex 32`)")
            })?,
            None => {
                let mut key = vec![0u8; 32];
                aws_lc_rs::rand::fill(&mut key).map_err(|_| fail("no randomness for the DPoP nonce key"))?;
                key
            }
        };
        config = config.nonces(&key, NONCE_LIFETIME)?;
    }
    Ok(DpopVerifier::new(config))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The layer that reads --client-cert-header from --trusted-proxy addresses, if configured.
pub(crate) fn cert_header(args: &Args) -> Result<Option<ClientCertHeaderLayer>, Fatal> {
    match &args.client_cert_header {
        Some(name) => ClientCertHeaderLayer::new(name, args.trusted_proxies.iter().copied())
            .map(Some)
            .map_err(|e| fail(format!("--client-cert-header {name}: {e}"))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::decode_hex;

    #[test]
    fn hex_keys() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
