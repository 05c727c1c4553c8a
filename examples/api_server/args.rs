//! The server's flags (each with its environment variable).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;
use tokengate::keys::DEFAULT_DATABASE_URL;
use tokengate::report::Format;
use tokengate::secret_scanning::GITHUB_META_URL;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "api_server",
    about = "tokengate's example server: the seed's routes, guarded by declarations",
    after_help = "Without a session key option the server runs in development mode and prints demo credentials."
)]
pub(crate) struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "TOKENGATE_ADDR", default_value = "127.0.0.1:3000")]
    pub(crate) addr: SocketAddr,

    /// Database holding the API keys and the `users` table: `sqlite://PATH`, a file path, or
    /// `postgres://USER:PASSWORD@HOST/DB` (shared by several instances; a revocation reaches
    /// all of them within about a second).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub(crate) database: String,

    /// PEM public key (or JWK/JWKS file) that signs session tokens.
    #[arg(
        long,
        env = "TOKENGATE_SESSION_PUBLIC_KEY",
        value_name = "PATH",
        conflicts_with = "session_jwks_url"
    )]
    pub(crate) session_public_key: Option<PathBuf>,

    /// JWKS URL of the session-token issuer.
    #[arg(long, env = "TOKENGATE_SESSION_JWKS_URL", value_name = "URL")]
    pub(crate) session_jwks_url: Option<String>,

    /// An origin allowed in a session token's `azp` claim (repeatable).
    #[arg(
        long = "authorized-party",
        env = "TOKENGATE_AUTHORIZED_PARTIES",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub(crate) authorized_parties: Vec<String>,

    /// The `iss` session tokens must carry, compared exactly (repeatable; Clerk: the Frontend
    /// API URL, e.g. https://clerk.example.com). Without it any issuer is accepted.
    #[arg(
        long = "session-issuer",
        env = "TOKENGATE_SESSION_ISSUERS",
        value_name = "ISS",
        value_delimiter = ','
    )]
    pub(crate) session_issuers: Vec<String>,

    /// OAuth authorization server, found by discovery (`/.well-known/...`); repeatable (each
    /// JWT goes to the server its `iss` names; TOKENGATE_OAUTH_ISSUER takes them comma-separated).
    #[arg(long, env = "TOKENGATE_OAUTH_ISSUER", value_name = "URL", value_delimiter = ',')]
    pub(crate) oauth_issuer: Vec<String>,

    /// JWKS URL of an OAuth authorization server without discovery (its issuer is then
    /// taken from --oauth-issuer-name).
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_JWKS_URL",
        value_name = "URL",
        requires = "oauth_issuer_name"
    )]
    pub(crate) oauth_jwks_url: Option<String>,

    /// The `iss` of OAuth JWT access tokens, when --oauth-jwks-url is used without discovery.
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_ISSUER_NAME",
        value_name = "ISSUER",
        requires = "oauth_jwks_url"
    )]
    pub(crate) oauth_issuer_name: Option<String>,

    /// This resource server's audience in OAuth access tokens (default: --resource-url).
    #[arg(long, env = "TOKENGATE_OAUTH_AUDIENCE", value_name = "AUD")]
    pub(crate) oauth_audience: Option<String>,

    /// This server's resource identifier (RFC 8707/9728): the URL clients call, in the
    /// metadata at /.well-known/oauth-protected-resource and in every challenge
    /// (default: http://ADDR).
    #[arg(long, env = "TOKENGATE_RESOURCE_URL", value_name = "URL")]
    pub(crate) resource_url: Option<String>,

    /// RFC 7662 introspection endpoint for opaque OAuth tokens.
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_INTROSPECTION_URL",
        value_name = "URL",
        requires_all = ["oauth_client_id", "oauth_client_secret"]
    )]
    pub(crate) oauth_introspection_url: Option<String>,

    /// Client id for introspection.
    #[arg(long, env = "TOKENGATE_OAUTH_CLIENT_ID", requires = "oauth_introspection_url")]
    pub(crate) oauth_client_id: Option<String>,

    /// Client secret for introspection.
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_CLIENT_SECRET",
        hide_env_values = true,
        requires = "oauth_introspection_url"
    )]
    pub(crate) oauth_client_secret: Option<String>,

    /// Clerk secret key: verify every token type with Clerk (Clerk-hosted mode).
    #[arg(
        long,
        env = "CLERK_SECRET_KEY",
        hide_env_values = true,
        conflicts_with_all = ["session_public_key", "session_jwks_url"]
    )]
    pub(crate) clerk_secret_key: Option<String>,

    /// Clerk Backend API URL.
    #[arg(long, env = "CLERK_API_URL", requires = "clerk_secret_key")]
    pub(crate) clerk_api_url: Option<String>,

    /// Clerk instance PEM public key, for networkless session verification: the PEM text (as
    /// Clerk's `CLERK_JWT_KEY`) or the path of a file holding it.
    #[arg(
        long,
        env = "CLERK_JWT_KEY",
        value_name = "PEM|PATH",
        requires = "clerk_secret_key",
        allow_hyphen_values = true
    )]
    pub(crate) clerk_jwt_key: Option<String>,

    /// How long a verified API key is cached, in seconds: on SQLite, the longest a revocation
    /// made elsewhere (the CLI, another instance) takes to be seen; on PostgreSQL, only while
    /// the revocation notices' connection is down.
    #[arg(long, env = "TOKENGATE_KEY_CACHE_TTL", value_name = "SECONDS", default_value_t = 30)]
    pub(crate) key_cache_ttl: u64,

    /// Print the route-policy report and exit (starts nothing, touches no network).
    #[arg(long)]
    pub(crate) policy_report: bool,

    /// Report format: markdown, json, openapi or html (a self-contained page).
    #[arg(long, default_value = "markdown", requires = "policy_report", value_parser = Format::from_str)]
    pub(crate) format: Format,

    /// With --policy-report: exit 1 naming every route that has no policy and is not #[public].
    #[arg(long, requires = "policy_report")]
    pub(crate) deny_unguarded: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics (off by default; port 0 picks a free one).
    #[arg(long, env = "TOKENGATE_METRICS_ADDR", value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,

    /// Where `POST /github/secret-scanning` fetches GitHub's signing keys (GitHub's meta API).
    #[arg(long, env = "TOKENGATE_GITHUB_META_URL", value_name = "URL", default_value = GITHUB_META_URL)]
    pub(crate) github_meta_url: String,

    /// A GitHub token for that fetch (no scope needed), to stay clear of anonymous rate limits.
    #[arg(long, env = "TOKENGATE_GITHUB_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub(crate) github_token: Option<String>,

    /// Redis holding the rate-limit counts, shared by every instance (`redis://HOST:6379/0`);
    /// without it each instance counts alone.
    #[arg(long, env = "TOKENGATE_REDIS_URL", value_name = "URL", hide_env_values = true)]
    pub(crate) redis_url: Option<String>,

    /// What a rate-limited route does while Redis cannot answer: refuse with 503 (default) or
    /// allow the request and log a warning.
    #[arg(long, value_name = "ACTION", default_value = "refuse", value_parser = ["refuse", "allow"], requires = "redis_url")]
    pub(crate) redis_unavailable: String,

    /// What a leak report does to a key of ours: revoke it (default) or only record it.
    #[arg(long, value_name = "ACTION", default_value = "revoke", value_parser = ["revoke", "record"])]
    pub(crate) on_leak: String,
    /// The external base URL clients call (e.g. https://api.example.com), which DPoP proofs
    /// name in `htu`. Behind a proxy the server cannot see it; without it, the address the
    /// server listens on (http://127.0.0.1:3000).
    #[arg(long, env = "TOKENGATE_PUBLIC_URL", value_name = "URL")]
    pub(crate) public_url: Option<String>,

    /// Require DPoP server nonces (RFC 9449 §8): a proof without a fresh nonce is answered
    /// `401 use_dpop_nonce` with one in `DPoP-Nonce`.
    #[arg(long, env = "TOKENGATE_DPOP_NONCE")]
    pub(crate) dpop_nonce: bool,

    /// The key that seals DPoP nonces (at least 32 bytes, as 64+ hex digits), the same on
    /// every instance so any of them accepts another's nonces. Without it, a random key per
    /// process (one instance only).
    #[arg(
        long,
        env = "TOKENGATE_DPOP_NONCE_KEY",
        value_name = "HEX",
        hide_env_values = true,
        requires = "dpop_nonce"
    )]
    pub(crate) dpop_nonce_key: Option<String>,

    /// The request header in which a TLS-terminating proxy forwards the client certificate
    /// (URL-encoded PEM, as nginx's `$ssl_client_escaped_cert`), for certificate-bound tokens.
    /// Read only from --trusted-proxy addresses; ignored from anyone else.
    #[arg(
        long,
        env = "TOKENGATE_CLIENT_CERT_HEADER",
        value_name = "NAME",
        requires = "trusted_proxies"
    )]
    pub(crate) client_cert_header: Option<String>,

    /// The address of a proxy trusted to set --client-cert-header (repeatable).
    #[arg(
        long = "trusted-proxy",
        env = "TOKENGATE_TRUSTED_PROXIES",
        value_name = "ADDR",
        value_delimiter = ',',
        requires = "client_cert_header"
    )]
    pub(crate) trusted_proxies: Vec<IpAddr>,

    /// Serve HTTPS with this certificate chain (PEM), with --tls-key.
    #[arg(long, env = "TOKENGATE_TLS_CERT", value_name = "PATH", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "TOKENGATE_TLS_KEY", value_name = "PATH", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,

    /// Ask HTTPS clients for a certificate issued by this CA (PEM), for certificate-bound
    /// tokens; clients without one still connect.
    #[arg(long, env = "TOKENGATE_TLS_CLIENT_CA", value_name = "PATH", requires = "tls_cert")]
    pub(crate) tls_client_ca: Option<PathBuf>,
}
