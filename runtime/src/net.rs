//! Network addresses: which client a request comes from ([`ClientKey`], for the per-client
//! shares of the backend-call bounds in [`budget`](crate::budget)), and which hosts are
//! loopback (the only ones a secret may be sent to over plain `http`), and a database or Redis
//! URL as a message may show it ([`redact_url`]).
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use axum::extract::ConnectInfo;
//! use tokengate_runtime::net::ClientKey;
//!
//! let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
//! let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
//! // IPv6 addresses count per /64: one host usually holds a whole /64.
//! assert_eq!(ClientKey::from_ip(a), ClientKey::from_ip(b));
//! assert_ne!(ClientKey::from_ip("192.0.2.1".parse().unwrap()), ClientKey::from_ip("192.0.2.2".parse().unwrap()));
//!
//! let mut extensions = http::Extensions::new();
//! assert_eq!(ClientKey::from_peer(&extensions), None);
//! extensions.insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 4711))));
//! assert_eq!(ClientKey::from_peer(&extensions), Some(ClientKey::from_ip("192.0.2.1".parse().unwrap())));
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap};
use sha2::{Digest, Sha256};

/// Who a request comes from, for the per-client shares of the bounds on backend calls: the
/// peer's IP address (IPv6 by its /64 prefix), or a key the application derives itself (a
/// trusted proxy's client-address header, a tenant id) with
/// [`TokenGateBuilder::client_key`](crate::TokenGateBuilder::client_key).
///
/// Holds 16 bytes, never the text it was made from; `Debug` shows none of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey([u8; 16]);

impl ClientKey {
    /// The client at `ip`: an IPv4 address (also written IPv4-mapped, `::ffff:a.b.c.d`) as it
    /// is, an IPv6 address by its /64 prefix.
    pub fn from_ip(ip: IpAddr) -> ClientKey {
        let v6 = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_ipv6_mapped(),
                None => {
                    let mut octets = v6.octets();
                    octets[8..].fill(0);
                    octets.into()
                }
            },
        };
        ClientKey(v6.octets())
    }

    /// A client named by the application: a tenant, an account, a trusted proxy's
    /// client-address header. Only a digest of `name` is kept.
    pub fn from_name(name: &[u8]) -> ClientKey {
        let digest = Sha256::new_with_prefix(b"tokengate client\0")
            .chain_update(name)
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        ClientKey(key)
    }

    /// The peer of the connection, from axum's `ConnectInfo<SocketAddr>` (present when the
    /// server is started with `into_make_service_with_connect_info::<SocketAddr>()`). Behind
    /// a reverse proxy this is the proxy: every client then shares one key.
    pub fn from_peer(extensions: &Extensions) -> Option<ClientKey> {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| ClientKey::from_ip(addr.ip()))
    }

    /// What the gate uses unless told otherwise ([`TokenGateBuilder::client_key`](crate::TokenGateBuilder::client_key)):
    /// [`from_peer`](Self::from_peer).
    pub fn default_for(_headers: &HeaderMap, extensions: &Extensions) -> Option<ClientKey> {
        ClientKey::from_peer(extensions)
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientKey(..)")
    }
}

/// How the gate tells clients apart: from the request's headers and extensions, `None` when
/// it cannot (then only the global bounds apply).
pub type ClientKeyFn = dyn Fn(&HeaderMap, &Extensions) -> Option<ClientKey> + Send + Sync;

/// Whether a URL's host (as `url::Url::host_str` gives it: IPv6 in brackets) is loopback:
/// `localhost`, `127.0.0.0/8` or `::1`.
#[cfg(any(feature = "introspection", feature = "clerk", test))]
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Query parameters whose values are hidden by [`redact_url`]: a name holding one of these
/// (`password`, `sslpassword`, `auth_token`, `client_secret`, `pwd`, ...), in any case.
const SECRET_PARAMETERS: [&str; 4] = ["pass", "secret", "token", "pwd"];

/// `url` as a message or a log line may show it: the password of its user information and the
/// value of any query parameter that may be one (a name holding `pass`, `secret`, `token` or
/// `pwd`, in any case) replaced by `***`.
/// It errs on the side of hiding: the user information ends at the last `@` (a password may
/// hold `/`, `?` or `#`), a query parameter's value runs to the next `&`, `?` or `;`, parameter
/// names are compared percent-decoded, and a string without `://` is read the same way.
///
/// ```
/// use tokengate_runtime::net::redact_url;
///
/// assert_eq!(redact_url("postgres://app:s3cret@db/keys"), "postgres://app:***@db/keys");
/// assert_eq!(redact_url("postgres://db/keys?password=s3cret&sslmode=require"), "postgres://db/keys?password=***&sslmode=require");
/// assert_eq!(redact_url("redis://:s3cret@cache:6379/0"), "redis://***@cache:6379/0");
/// ```
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (credentials, rest) = match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            // A Redis URL's lone user information is usually a password written without `:`.
            let lone_password = !userinfo.contains(':') && scheme.to_ascii_lowercase().starts_with("redis");
            let shown = match (userinfo.contains(':'), user.is_empty() || lone_password) {
                (true, false) => format!("{user}:***@"),
                (false, false) => format!("{user}@"),
                (_, true) => "***@".to_owned(),
            };
            (shown, host)
        }
        None => (String::new(), rest),
    };
    format!("{scheme}{credentials}{}", redact_query(rest))
}

/// The host, path and query with the values of secret-looking query parameters hidden.
fn redact_query(rest: &str) -> String {
    let Some((before, query)) = rest.split_once('?') else {
        return rest.to_owned();
    };
    let mut out = format!("{before}?");
    for piece in query.split_inclusive(['&', '?', ';']) {
        let (body, separator) = match piece.char_indices().last() {
            Some((i, '&' | '?' | ';')) => piece.split_at(i),
            _ => (piece, ""),
        };
        match body.split_once('=') {
            Some((name, _)) if is_secret_parameter(name) => out.push_str(&format!("{name}=***{separator}")),
            _ => out.push_str(piece),
        }
    }
    out
}

fn is_secret_parameter(name: &str) -> bool {
    let name = percent_encoding::percent_decode_str(name)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    SECRET_PARAMETERS.iter().any(|secret| name.contains(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn clients_are_told_apart_by_address_and_ipv6_by_prefix() {
        assert_eq!(
            ClientKey::from_ip(ip("192.0.2.7")),
            ClientKey::from_ip(ip("::ffff:192.0.2.7"))
        );
        assert_ne!(ClientKey::from_ip(ip("192.0.2.7")), ClientKey::from_ip(ip("192.0.2.8")));
        assert_eq!(
            ClientKey::from_ip(ip("2001:db8::1")),
            ClientKey::from_ip(ip("2001:db8::ffff:1"))
        );
        assert_ne!(
            ClientKey::from_ip(ip("2001:db8::1")),
            ClientKey::from_ip(ip("2001:db8:0:1::1"))
        );
        assert_ne!(ClientKey::from_name(b"tenant-a"), ClientKey::from_name(b"tenant-b"));
        assert_ne!(ClientKey::from_name(b"192.0.2.7"), ClientKey::from_ip(ip("192.0.2.7")));
        assert_eq!(format!("{:?}", ClientKey::from_name(b"secret-ish")), "ClientKey(..)");
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.1", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "[::2]",
            "localhost.example.com",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db:5432/keys?sslmode=require",
                "postgres://app:***@db:5432/keys?sslmode=require",
            ),
            ("postgres://app@db/keys", "postgres://app@db/keys"),
            ("postgresql://db/keys", "postgresql://db/keys"),
            ("sqlite://keys.db", "sqlite://keys.db"),
            ("keys.db", "keys.db"),
            (
                "postgres://db/keys?user=app&password=s3cret",
                "postgres://db/keys?user=app&password=***",
            ),
            (
                "postgres://db/keys?SSLPassword=s3cret&sslmode=verify-full#x",
                "postgres://db/keys?SSLPassword=***&sslmode=verify-full#x",
            ),
            ("postgres://db?auth_token=s3cret", "postgres://db?auth_token=***"),
            (
                "postgres://u:p%40ss@db/k?password=s3cret",
                "postgres://u:***@db/k?password=***",
            ),
            ("redis://:s3cret@h:6379/0", "redis://***@h:6379/0"),
            ("redis://u:s3cret@h", "redis://u:***@h"),
            ("redis://h:6379", "redis://h:6379"),
            ("  postgres://a:s3cret@db  ", "postgres://a:***@db"),
            // No `://`, as a mistyped URL or a Redis address may be written.
            ("u:s3cret@h:6379", "u:***@h:6379"),
            ("postgres//app:s3cret@db/k", "postgres//app:***@db/k"),
            // `#`, `/` or `?` in a password: the user information ends at the last `@`.
            ("postgres://u:pa#s3cret@db/k", "postgres://u:***@db/k"),
            ("postgres://u:s3/cr?et@db/k", "postgres://u:***@db/k"),
            // A parameter name percent-encoded, a second `?`, `;`, a `#` inside a value.
            ("postgres://db/k?p%61ssword=s3cret", "postgres://db/k?p%61ssword=***"),
            (
                "postgres://db/k?sslmode=require?password=s3cret",
                "postgres://db/k?sslmode=require?password=***",
            ),
            (
                "postgres://db/k?a=1;password=s3cret;b=2",
                "postgres://db/k?a=1;password=***;b=2",
            ),
            ("postgres://db/k?password=ab#s3cret", "postgres://db/k?password=***"),
            // A Redis password written as the user.
            ("redis://s3cret@h:6379", "redis://***@h:6379"),
            ("postgres://app@db/k", "postgres://app@db/k"),
            (
                "postgres://[::1]:5432/k?password=s3cret",
                "postgres://[::1]:5432/k?password=***",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("s3cret"), "{url}");
        }
    }
}
