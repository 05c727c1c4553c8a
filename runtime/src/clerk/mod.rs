//! Clerk-hosted verification: the tokens Clerk issues, verified the way Clerk's SDK does — and
//! with a cache, single-flight calls and a call budget the SDK lacks.
//!
//! - [`config`]: [`ClerkConfig`] (`CLERK_SECRET_KEY`, `CLERK_MACHINE_SECRET_KEY`,
//!   `CLERK_API_URL`, `CLERK_JWT_KEY`, `CLERK_AUTHORIZED_PARTIES`), secrets redacted;
//! - [`api`]: [`ClerkApi`], the Backend API client for the three machine-token verify calls;
//! - [`backoff`]: pauses after `429`, `5xx` with `Retry-After`, and `401`/`403`;
//! - [`resources`]: the verify responses and their mapping to [`AuthInfo`](crate::AuthInfo);
//! - [`cache`]: the verdict cache (revocation delay: [`DEFAULT_CACHE_TTL`]);
//! - [`verifier`]: [`ClerkMachineVerifier`], the [`Verifier`](crate::Verifier) for `ak_`,
//!   `mt_` and `oat_` tokens.
//!
//! # Environment
//!
//! | variable | meaning |
//! |---|---|
//! | `CLERK_SECRET_KEY` | required: `sk_live_…`/`sk_test_…`, sent as `Authorization: Bearer` |
//! | `CLERK_MACHINE_SECRET_KEY` | optional: verifies `mt_` tokens instead of the secret key |
//! | `CLERK_API_URL` | optional: default `https://api.clerk.com` (no `/v1`); `https`, or `http` to a loopback host only |
//! | `CLERK_JWT_KEY` | optional: PEM public key for networkless session verification |
//! | `CLERK_AUTHORIZED_PARTIES` | optional: comma-separated origins allowed in `azp` |
//!
//! # Call budget
//!
//! A token Clerk may have issued and nobody has seen yet costs one Backend API call, against
//! the instance's quota. The calls are bounded in flight, per second and per client
//! ([`ClerkConfig::with_call_budget`]; defaults [`DEFAULT_LIVE_CALL_BUDGET`] for a
//! `sk_live_…` key, [`DEFAULT_TEST_CALL_BUDGET`] otherwise): over a bound, `503` with
//! `Retry-After` at once, so a flood of random `ak_…` strings never drives Clerk to `429`
//! for everyone, and one client's flood leaves the others their share.
//!
//! # Revocation delay
//!
//! A verified machine token is reused for [`ClerkConfig::cache_ttl`] (default 30 s, never
//! past the token's expiration): a token revoked in Clerk may be accepted for that long.
//! Lower it with [`ClerkConfig::with_cache_ttl`]; `Duration::ZERO` asks Clerk on every
//! request (concurrent requests still share one call).
//!
//! Session tokens are JWTs: verify them with the JWT verifier, fed by
//! [`ClerkConfig::session_keys`] (the PEM key, or `GET {api}/v1/jwks` with the secret key)
//! and [`ClerkConfig::authorized_parties`].
//!
//! ```
//! use tokengate_runtime::clerk::{ClerkConfig, SessionKeys};
//!
//! let config = ClerkConfig::from_lookup(|name| match name {
//!     "CLERK_SECRET_KEY" => Some("sk_test_example".into()),
//!     _ => None,
//! })
//! .unwrap();
//! match config.session_keys().unwrap() {
//!     SessionKeys::Jwks { url, headers } => {
//!         assert_eq!(url, "https://api.clerk.com/v1/jwks");
//!         assert!(headers["authorization"].is_sensitive());
//!     }
//!     SessionKeys::Pem(_) => unreachable!("no CLERK_JWT_KEY set"),
//! }
//! ```

pub mod api;
pub mod backoff;
pub mod cache;
pub mod config;
pub mod resources;
mod shape;
pub mod verifier;

pub use api::{ApiVerdict, ClerkApi};
pub use config::{
    API_VERSION, ClerkConfig, ClerkConfigError, DEFAULT_API_URL, DEFAULT_CACHE_TTL, DEFAULT_LIVE_CALL_BUDGET,
    DEFAULT_NEGATIVE_TTL, DEFAULT_TEST_CALL_BUDGET, SecretKey, SessionKeys, TokenShape,
};
pub use verifier::ClerkMachineVerifier;
