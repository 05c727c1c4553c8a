//! The example server: Clerk's two seed routes, made real with tokengate, and the checks of
//! Clerk's `auth.protect()` as declarations: an organization role and permission, a Billing
//! feature and plan, reverification, and RFC 9470 step-up for OAuth tokens.
//!
//! ```sh
//! cargo run --example api_server                      # zero configuration
//! cargo run --example api_server -- --policy-report   # the route-policy report, then exit
//! cargo run --example api_server -- --help            # every flag
//! ```
//!
//! With no key option it runs in development mode: an SQLite file in the working directory
//! (or the PostgreSQL database `--database postgres://…` names, shared by several instances)
//! holds the API keys and a `users` table, a development RSA key pair is generated beside it
//! (and reused), and start-up prints demo API keys, development session tokens (one that
//! passes every session requirement, one that none accepts), OAuth tokens and an M2M token,
//! with `curl` lines for each route.
//!
//! The handlers and their declarations are here, at the crate root (their paths name the
//! routes in the report and the metrics); the rest is one module a concern: `args` (the
//! flags), `gate` (the verifiers the flags configure), `serve` (listening, metrics,
//! shutdown), `users` (the application's own table), `dev` (development mode's credentials
//! and `curl` lines), `binding` (the listener, DPoP, TLS and client certificates), and, shared
//! with `mcp_server`, `dev_key` (the development key) and `start` (flags and logging).

mod args;
mod binding;
mod dev;
mod dev_key;
mod gate;
mod serve;
mod start;
mod users;

use std::process::ExitCode;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tokengate::metadata::ProtectedResource;
use tokengate::routing::{Router, delete, get, post};
use tokengate::secret_scanning::SecretScanning;
use tokengate::{
    Auth, Caller, TokenGate, accepts_token, public, rate_limit, require_acr, require_dpop, require_feature,
    require_mtls, require_permission, require_plan, require_reverification, require_role, require_scope,
};

use crate::args::Args;
use crate::users::UsersDb;

/// The issuer and audience of development OAuth tokens.
pub(crate) const DEV_ISSUER: &str = "https://tokengate.dev.invalid";
pub(crate) const DEV_AUDIENCE: &str = "tokengate-example";
pub(crate) const DEV_KEY_FILE: &str = "tokengate-dev-key.pem";
pub(crate) const DEMO_USER: &str = "user_demo";

/// The server's state: the gate the guards use, and the database.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) gate: TokenGate,
    pub(crate) db: UsersDb,
    /// GitHub's secret-scanning reports of leaked keys.
    pub(crate) leaks: SecretScanning,
}

impl FromRef<App> for TokenGate {
    fn from_ref(app: &App) -> TokenGate {
        app.gate.clone()
    }
}

/// `GET /api/example` — the seed's first route: API keys only.
#[accepts_token(api_key)]
async fn get_example(auth: Auth) -> Json<Value> {
    Json(json!({ "userId": auth.user_id, "claims": auth.claims }))
}

/// `POST /api/example` — the seed's second route: sessions and OAuth tokens pass, API keys
/// need `write:users`. Returns the caller's rows of the `users` table.
#[accepts_token(session_token, oauth_token, api_key)]
#[require_scope(api_key: "write:users")]
async fn post_example(State(app): State<App>, auth: Auth) -> Result<Json<Value>, StatusCode> {
    let rows = app
        .db
        .find(auth.user_id.as_deref().unwrap_or_default())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "users query failed");
            StatusCode::SERVICE_UNAVAILABLE
        })?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, email)| json!({ "id": id, "name": name, "email": email }))
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `DELETE /api/users/{id}` — machine callers and OAuth clients with `write:users`.
#[accepts_token(api_key, oauth_token, m2m_token)]
#[require_scope("write:users")]
async fn delete_user(State(app): State<App>, UrlPath(id): UrlPath<String>) -> StatusCode {
    match app.db.delete(&id).await {
        Ok(deleted) if deleted > 0 => StatusCode::NO_CONTENT,
        Ok(_) => StatusCode::NOT_FOUND,
        Err(e) => {
            tracing::error!(error = %e, "users delete failed");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// `GET /api/org/members` — organization admins (a session's organization role).
#[require_role("org:admin")]
async fn org_members(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `GET /api/invoices` — sessions holding the organization permission `org:invoices:read`.
#[require_permission("org:invoices:read")]
async fn invoices(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `GET /api/exports` — the Clerk Billing feature `exports` (the organization's or the user's).
#[require_feature("exports")]
async fn exports(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `GET /api/analytics` — the active organization on the `pro` plan.
#[require_plan("o:pro")]
async fn analytics(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `DELETE /api/account` — a second factor verified in the last 10 minutes (Clerk's `strict`);
/// refused with Clerk's reverification body, which Clerk's front-end turns into a prompt.
#[require_reverification(strict)]
async fn delete_account(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `POST /api/payouts` — sessions: both factors in the last 10 minutes (`strict_mfa`); OAuth
/// tokens: issued for a multi-factor authentication (`acr` `mfa`) at most 600 s old (RFC 9470).
#[accepts_token(session_token, oauth_token)]
#[require_reverification(strict_mfa)]
#[require_acr("mfa", max_age = 600)]
async fn payouts(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `GET /api/search` — API keys, each at most 10 requests a minute (shared by every instance
/// with `--redis-url`); every answer carries the `RateLimit` headers.
#[accepts_token(api_key)]
#[rate_limit("10/min")]
async fn search(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `GET /api/me` — the verified caller, whatever its type, as JSON (`tokenType`, `userId`,
/// `orgId`, `subject`, `scopes`, `claims`, …). Touches no database: the route to curl first,
/// and the one the benchmarks use to compare verification alone with other SDKs.
#[accepts_token(any)]
async fn me(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `GET /api/feed` — optional authentication: anonymous callers get the public feed, a valid
/// session token or API key a personalised one; a credential that is present but bad is
/// refused (`401`), never served as anonymous.
#[accepts_token(optional, session_token, api_key)]
async fn feed(caller: Option<Caller>) -> Json<Value> {
    let user_id = match caller {
        None => return Json(json!({ "personalized": false })),
        Some(Caller::Session(session)) => Some(session.user_id),
        Some(Caller::ApiKey(key)) => key.user_id,
    };
    Json(json!({ "personalized": true, "userId": user_id }))
}

/// `POST /api/transfers` — OAuth tokens bound to a DPoP key (RFC 9449): `Authorization: DPoP
/// <token>` with a `DPoP` proof of that key for this request. An unbound token is refused.
#[accepts_token(oauth_token)]
#[require_dpop]
async fn transfers(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `POST /api/settlements` — OAuth tokens bound to a client certificate (RFC 8705), presented
/// over this server's TLS or forwarded by a trusted proxy. An unbound token is refused.
#[accepts_token(oauth_token)]
#[require_mtls]
async fn settlements(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `GET /health` — intentionally open.
#[public]
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `POST /github/secret-scanning` — GitHub's reports of our keys found in public code (its
/// secret-scanning partner program). GitHub holds no token: the body's ECDSA signature,
/// checked with GitHub's published keys, is the authentication.
#[public]
async fn github_secret_scanning(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    app.leaks.handle(&headers, &body).await
}

/// The routes, without state: what the report reads and the server serves.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/api/example", get(get_example).post(post_example))
        .route("/api/users/{id}", delete(delete_user))
        .route("/api/org/members", get(org_members))
        .route("/api/invoices", get(invoices))
        .route("/api/exports", get(exports))
        .route("/api/analytics", get(analytics))
        .route("/api/account", delete(delete_account))
        .route("/api/payouts", post(payouts))
        .route("/api/search", get(search))
        .route("/api/me", get(me))
        .route("/api/feed", get(feed))
        .route("/api/transfers", post(transfers))
        .route("/api/settlements", post(settlements))
        .route("/health", get(health))
        .route("/github/secret-scanning", post(github_secret_scanning))
}

/// The routes and the RFC 9728 metadata of `resource` (public, derived from them): what the
/// server serves and the report lists.
pub(crate) fn app_routes(resource: &ProtectedResource) -> Router<App> {
    routes().serve_resource_metadata(resource)
}

/// A start-up failure: one line, exit code 2.
pub(crate) struct Fatal(pub(crate) String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
}

pub(crate) fn fail(message: impl Into<String>) -> Fatal {
    Fatal(message.into())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Args = match start::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    start::init_logging();

    if args.policy_report {
        let resource =
            match gate::protected_resource(&args, &gate::resource_url(&args, &format!("http://{}", args.addr)), &[]) {
                Ok(resource) => resource,
                Err(Fatal(message)) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(2);
                }
            };
        let report = app_routes(&resource).report();
        println!("{}", report.render(args.format));
        if args.deny_unguarded
            && let Err(e) = report.deny_unguarded()
        {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
        return ExitCode::SUCCESS;
    }

    match gate::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
