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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRef, Path as UrlPath, State};
use axum::http::StatusCode;
use clap::Parser;
use serde_json::{Value, json};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokengate::introspection::{IntrospectionConfig, IntrospectionVerifier};
use tokengate::jwt::{Algorithm, JwtVerifier, KeySet, M2mRules, OAuthRules, SessionRules, jwks_from_pem};
use tokengate::keys::{
    Access, DEFAULT_DATABASE_URL, KeyQuery, KeySpec, KeyVerifier, SqliteConnections, StoreError, is_postgres_url,
    open_store, redact_url,
};
use tokengate::report::Format;
use tokengate::routing::{Router, delete, get, post};
use tokengate::verifier::ByFormat;
use tokengate::{
    Auth, TokenGate, TokenType, Verifier, accepts_token, public, require_acr, require_feature, require_permission,
    require_plan, require_reverification, require_role, require_scope,
};

/// The issuer and audience of development OAuth tokens.
const DEV_ISSUER: &str = "https://tokengate.dev.invalid";
const DEV_AUDIENCE: &str = "tokengate-example";
const DEV_KID: &str = "tokengate-dev";
const DEV_KEY_FILE: &str = "tokengate-dev-key.pem";
const DEMO_USER: &str = "user_demo";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "api_server",
    about = "tokengate's example server: the seed's routes, guarded by declarations",
    after_help = "Without a session key option the server runs in development mode and prints demo credentials."
)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "TOKENGATE_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,

    /// Database holding the API keys and the `users` table: `sqlite://PATH`, a file path, or
    /// `postgres://USER:PASSWORD@HOST/DB` (shared by several instances; a revocation reaches
    /// all of them within about a second).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    database: String,

    /// PEM public key (or JWK/JWKS file) that signs session tokens.
    #[arg(
        long,
        env = "TOKENGATE_SESSION_PUBLIC_KEY",
        value_name = "PATH",
        conflicts_with = "session_jwks_url"
    )]
    session_public_key: Option<PathBuf>,

    /// JWKS URL of the session-token issuer.
    #[arg(long, env = "TOKENGATE_SESSION_JWKS_URL", value_name = "URL")]
    session_jwks_url: Option<String>,

    /// An origin allowed in a session token's `azp` claim (repeatable).
    #[arg(
        long = "authorized-party",
        env = "TOKENGATE_AUTHORIZED_PARTIES",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    authorized_parties: Vec<String>,

    /// The `iss` session tokens must carry, compared exactly (repeatable; Clerk: the Frontend
    /// API URL, e.g. https://clerk.example.com). Without it any issuer is accepted.
    #[arg(
        long = "session-issuer",
        env = "TOKENGATE_SESSION_ISSUERS",
        value_name = "ISS",
        value_delimiter = ','
    )]
    session_issuers: Vec<String>,

    /// OAuth authorization server, found by discovery (`/.well-known/...`).
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_ISSUER",
        value_name = "URL",
        conflicts_with = "oauth_jwks_url"
    )]
    oauth_issuer: Option<String>,

    /// JWKS URL of the OAuth authorization server (with --oauth-audience; the issuer is then
    /// taken from --oauth-issuer-name).
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_JWKS_URL",
        value_name = "URL",
        requires = "oauth_issuer_name"
    )]
    oauth_jwks_url: Option<String>,

    /// The `iss` of OAuth JWT access tokens, when --oauth-jwks-url is used without discovery.
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_ISSUER_NAME",
        value_name = "ISSUER",
        requires = "oauth_jwks_url"
    )]
    oauth_issuer_name: Option<String>,

    /// This resource server's audience in OAuth access tokens.
    #[arg(long, env = "TOKENGATE_OAUTH_AUDIENCE", value_name = "AUD")]
    oauth_audience: Option<String>,

    /// RFC 7662 introspection endpoint for opaque OAuth tokens.
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_INTROSPECTION_URL",
        value_name = "URL",
        requires_all = ["oauth_client_id", "oauth_client_secret"]
    )]
    oauth_introspection_url: Option<String>,

    /// Client id for introspection.
    #[arg(long, env = "TOKENGATE_OAUTH_CLIENT_ID", requires = "oauth_introspection_url")]
    oauth_client_id: Option<String>,

    /// Client secret for introspection.
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_CLIENT_SECRET",
        hide_env_values = true,
        requires = "oauth_introspection_url"
    )]
    oauth_client_secret: Option<String>,

    /// Clerk secret key: verify every token type with Clerk (Clerk-hosted mode).
    #[arg(long, env = "CLERK_SECRET_KEY", hide_env_values = true)]
    clerk_secret_key: Option<String>,

    /// Clerk Backend API URL.
    #[arg(long, env = "CLERK_API_URL", requires = "clerk_secret_key")]
    clerk_api_url: Option<String>,

    /// Clerk instance PEM public key, for networkless session verification.
    #[arg(long, env = "CLERK_JWT_KEY", requires = "clerk_secret_key")]
    clerk_jwt_key: Option<String>,

    /// How long a verified API key is cached, in seconds: on SQLite, the longest a revocation
    /// made elsewhere (the CLI, another instance) takes to be seen; on PostgreSQL, only while
    /// the revocation notices' connection is down.
    #[arg(long, env = "TOKENGATE_KEY_CACHE_TTL", value_name = "SECONDS", default_value_t = 30)]
    key_cache_ttl: u64,

    /// Print the route-policy report and exit (starts nothing, touches no network).
    #[arg(long)]
    policy_report: bool,

    /// Report format: markdown, json, openapi or html (a self-contained page).
    #[arg(long, default_value = "markdown", requires = "policy_report", value_parser = Format::from_str)]
    format: Format,

    /// With --policy-report: exit 1 naming every route that has no policy and is not #[public].
    #[arg(long, requires = "policy_report")]
    deny_unguarded: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics (off by default; port 0 picks a free one).
    #[arg(long, env = "TOKENGATE_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
}

/// The server's state: the gate the guards use, and the database.
#[derive(Clone)]
struct App {
    gate: TokenGate,
    db: UsersDb,
}

/// The `users` table, in SQLite or PostgreSQL (wherever the keys are). With SQLite, the query
/// on a request's path (`find`) runs on rusqlite connections with its statement prepared once
/// (tokengate's `SqliteConnections`), the rest on the sqlx pool.
#[derive(Clone)]
enum UsersDb {
    Sqlite(SqlitePool, SqliteConnections),
    Postgres(PgPool),
}

type UserRow = (String, String, String);

impl UsersDb {
    async fn find(&self, id: &str) -> Result<Vec<UserRow>, String> {
        match self {
            UsersDb::Sqlite(_, reads) => {
                let id = id.to_owned();
                let rows = reads.read(move |c| {
                    let mut find = c
                        .prepare_cached("SELECT id, name, email FROM users WHERE id = ?1")
                        .map_err(StoreError::sqlite)?;
                    let rows = find
                        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .map_err(StoreError::sqlite)?;
                    rows.collect::<Result<Vec<UserRow>, _>>().map_err(StoreError::sqlite)
                });
                rows.await.map_err(|e| e.to_string())
            }
            UsersDb::Postgres(pool) => sqlx::query_as("SELECT id, name, email FROM users WHERE id = $1")
                .bind(id)
                .fetch_all(pool)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Deletes a user; how many rows went.
    async fn delete(&self, id: &str) -> Result<u64, sqlx::Error> {
        Ok(match self {
            UsersDb::Sqlite(pool, _) => sqlx::query("DELETE FROM users WHERE id = ?")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
            UsersDb::Postgres(pool) => sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }

    async fn seed_demo_user(&self) -> Result<(), sqlx::Error> {
        match self {
            UsersDb::Sqlite(pool, _) => {
                sqlx::query(
                    "INSERT OR IGNORE INTO users (id, name, email) VALUES (?, 'Demo User', 'demo@example.com')",
                )
                .bind(DEMO_USER)
                .execute(pool)
                .await?;
            }
            UsersDb::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO users (id, name, email) VALUES ($1, 'Demo User', 'demo@example.com') \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(DEMO_USER)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    async fn close(&self) {
        match self {
            UsersDb::Sqlite(pool, reads) => {
                reads.close();
                pool.close().await;
            }
            UsersDb::Postgres(pool) => pool.close().await,
        }
    }
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

/// `GET /health` — intentionally open.
#[public]
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The routes, without state: what the report reads and the server serves.
fn routes() -> Router<App> {
    Router::new()
        .route("/api/example", get(get_example).post(post_example))
        .route("/api/users/{id}", delete(delete_user))
        .route("/api/org/members", get(org_members))
        .route("/api/invoices", get(invoices))
        .route("/api/exports", get(exports))
        .route("/api/analytics", get(analytics))
        .route("/api/account", delete(delete_account))
        .route("/api/payouts", post(payouts))
        .route("/health", get(health))
}

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

/// A start-up failure: one line, exit code 2.
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
}

fn fail(message: impl Into<String>) -> Fatal {
    Fatal(message.into())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message spans several lines; keep it to one, without the usage text.
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("{} (see --help)", message.join(" "));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    if args.policy_report {
        let report = routes().report();
        println!("{}", report.render(args.format));
        if args.deny_unguarded
            && let Err(e) = report.deny_unguarded()
        {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
        return ExitCode::SUCCESS;
    }

    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), Fatal> {
    let rules = session_rules(&args)?;
    let db_path = sqlite_path(&args.database)?;
    let store = open_store(&args.database).await.map_err(|e| {
        fail(format!(
            "cannot open the key store at {}: {e}",
            redact_url(&args.database)
        ))
    })?;
    let db = match &db_path {
        Some(path) => open_users_db(path).await?,
        None => UsersDb::Postgres(open_users_pg(&args.database).await?),
    };
    let keys = Arc::new(
        KeyVerifier::builder(Arc::clone(&store))
            .cache_ttl(Duration::from_secs(args.key_cache_ttl))
            .build()?,
    );

    let dev_mode =
        args.session_public_key.is_none() && args.session_jwks_url.is_none() && args.clerk_secret_key.is_none();
    if let Some(secret_key) = &args.clerk_secret_key {
        return run_clerk(args.clone(), secret_key, rules, db, keys).await;
    }
    let dev_key = if dev_mode {
        Some(DevKey::load_or_create(&dev_key_path(db_path.as_deref()))?)
    } else {
        None
    };

    // Session tokens.
    let session: Arc<dyn Verifier> = match (&args.session_public_key, &args.session_jwks_url, &dev_key) {
        (Some(path), _, _) => {
            let keys = KeySet::from_file(path)
                .map_err(|e| fail(format!("cannot read --session-public-key {}: {e}", path.display())))?;
            Arc::new(JwtVerifier::builder().keys(keys).session(rules).build()?)
        }
        (None, Some(url), _) => {
            let jwks =
                tokengate::jwt::JwksCache::new(url).map_err(|e| fail(format!("--session-jwks-url {url}: {e}")))?;
            Arc::new(JwtVerifier::builder().jwks(jwks).session(rules).build()?)
        }
        (None, None, Some(dev)) => Arc::new(
            JwtVerifier::builder()
                .keys(dev.key_set()?)
                .session(rules)
                .oauth(OAuthRules::new(DEV_ISSUER, [DEV_AUDIENCE]))
                .m2m(M2mRules::new().issuer(DEV_ISSUER))
                .build()?,
        ),
        (None, None, None) => return Err(fail("no session-token key configured")),
    };

    // OAuth access tokens: JWTs from the configured issuer (or the development key), opaque
    // tokens by introspection.
    let audience = args.oauth_audience.clone();
    let oauth_jwt: Option<Arc<dyn Verifier>> = match (&args.oauth_issuer, &args.oauth_jwks_url) {
        (Some(issuer), _) => {
            let audience = audience.ok_or_else(|| {
                fail("--oauth-issuer needs --oauth-audience (this API's identifier in the tokens' `aud`)")
            })?;
            let verifier = JwtVerifier::oauth_from_issuer(issuer, [audience])
                .await
                .map_err(|e| fail(format!("OAuth discovery at {issuer} failed: {e}")))?;
            Some(Arc::new(verifier))
        }
        (None, Some(url)) => {
            let audience = audience.ok_or_else(|| fail("--oauth-jwks-url needs --oauth-audience"))?;
            let issuer = args.oauth_issuer_name.clone().unwrap_or_default();
            Some(Arc::new(JwtVerifier::oauth_from_jwks_url(url, &issuer, [audience])?))
        }
        (None, None) if dev_mode => Some(Arc::clone(&session)),
        (None, None) => None,
    };
    let introspection: Option<Arc<dyn Verifier>> = match &args.oauth_introspection_url {
        Some(url) => {
            let mut config = IntrospectionConfig::new(
                url.clone(),
                args.oauth_client_id.clone().unwrap_or_default(),
                args.oauth_client_secret.clone().unwrap_or_default(),
            );
            if let Some(aud) = &args.oauth_audience {
                config = config.audience(aud.clone());
            }
            Some(Arc::new(IntrospectionVerifier::new(config)?))
        }
        None => None,
    };

    let mut gate = TokenGate::builder()
        .verifier(TokenType::SessionToken, Arc::clone(&session))
        .verifier(TokenType::ApiKey, keys.clone());
    let mut m2m = ByFormat::new().opaque(keys.clone());
    if dev_mode {
        m2m = m2m.jwt(Arc::clone(&session));
    }
    gate = gate.verifier(TokenType::M2mToken, Arc::new(m2m));
    if oauth_jwt.is_some() || introspection.is_some() {
        let mut oauth = ByFormat::new();
        if let Some(v) = oauth_jwt {
            oauth = oauth.jwt(v);
        }
        if let Some(v) = introspection {
            oauth = oauth.opaque(v);
            gate = gate.opaque_oauth_tokens(true);
        }
        gate = gate.verifier(TokenType::OAuthToken, Arc::new(oauth));
    }
    let gate = gate.realm("tokengate-example").build()?;

    serve(&args, gate, db, keys, dev_key).await
}

/// Clerk-hosted mode: session tokens with the instance's keys (PEM or the Backend API's
/// JWKS), API keys, M2M and OAuth tokens through the Backend API, JWT machine tokens locally.
async fn run_clerk(
    args: Args,
    secret_key: &str,
    rules: SessionRules,
    db: UsersDb,
    keys: Arc<KeyVerifier>,
) -> Result<(), Fatal> {
    use tokengate::clerk::{ClerkConfig, ClerkMachineVerifier, SessionKeys};
    let mut config = ClerkConfig::new(secret_key)?.with_authorized_parties(args.authorized_parties.clone());
    if let Some(url) = &args.clerk_api_url {
        config = config.with_api_url(url.clone())?;
    }
    if let Some(pem) = &args.clerk_jwt_key {
        config = config.with_jwt_key(pem.clone());
    }
    let key_source = match config.session_keys()? {
        SessionKeys::Pem(pem) => {
            JwtVerifier::builder().keys(KeySet::from_pem(pem).map_err(|e| fail(format!("--clerk-jwt-key: {e}")))?)
        }
        SessionKeys::Jwks { url, headers } => {
            let mut jwks = tokengate::jwt::JwksCache::builder(url);
            for (name, value) in &headers {
                jwks = jwks.header(name.as_str(), value.to_str().unwrap_or_default());
            }
            JwtVerifier::builder().jwks(jwks.build()?)
        }
    };
    // Clerk's M2M JWTs are signed by the instance key, which signs nothing else with an
    // `mch_` subject, and carry Clerk's M2M category (checked): any issuer will do.
    let mut jwt = key_source.session(rules).m2m(M2mRules::new().skip_issuer_check());
    if let (Some(issuer), Some(audience)) = (&args.oauth_issuer_name, &args.oauth_audience) {
        jwt = jwt.oauth(OAuthRules::new(issuer.clone(), [audience.clone()]));
    }
    let jwt: Arc<dyn Verifier> = Arc::new(jwt.build()?);
    let machines = ClerkMachineVerifier::new(config)?.with_jwt_verifier(Arc::clone(&jwt));
    let gate = TokenGate::builder()
        .verifier(TokenType::SessionToken, jwt)
        .verifier_for(ClerkMachineVerifier::token_types(), Arc::new(machines))
        .realm("tokengate-example")
        .build()?;
    println!("Clerk-hosted mode: tokens are verified with Clerk's keys and Backend API");
    serve(&args, gate, db, keys, None).await
}

/// The session rules the flags ask for: authorized parties and issuers.
fn session_rules(args: &Args) -> Result<SessionRules, Fatal> {
    let mut rules = SessionRules::new();
    if !args.authorized_parties.is_empty() {
        rules = rules.authorized_parties(args.authorized_parties.clone());
    }
    for issuer in &args.session_issuers {
        if issuer.is_empty() || issuer.trim() != issuer {
            return Err(fail(format!(
                "--session-issuer {issuer:?}: give the exact `iss` of your session tokens, without spaces (e.g. https://clerk.example.com; TOKENGATE_SESSION_ISSUERS takes them comma-separated)"
            )));
        }
        rules = rules.issuer(issuer.clone());
    }
    Ok(rules)
}

async fn serve(
    args: &Args,
    gate: TokenGate,
    db: UsersDb,
    keys: Arc<KeyVerifier>,
    dev_key: Option<DevKey>,
) -> Result<(), Fatal> {
    let routes = routes();
    routes.check_verifiers(&gate).map_err(|e| {
        fail(format!(
            "{e} (configure OAuth with --oauth-issuer, --oauth-jwks-url or --oauth-introspection-url)"
        ))
    })?;

    let metrics = match args.metrics_addr {
        Some(addr) => Some(metrics_endpoint(addr).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| fail(format!("cannot listen on {}: {e}", args.addr)))?;
    let addr = listener.local_addr()?;

    println!("tokengate example server listening on http://{addr}");
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

/// The SQLite file a database URL names; `None` for a PostgreSQL URL.
fn sqlite_path(database: &str) -> Result<Option<PathBuf>, Fatal> {
    let database = database.trim();
    if is_postgres_url(database) {
        return Ok(None);
    }
    let path = database
        .strip_prefix("sqlite://")
        .or_else(|| database.strip_prefix("sqlite:"))
        .unwrap_or(database);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") || path == "memory:" {
        return Err(fail(format!(
            "--database {database}: the example server needs a database file (e.g. {DEFAULT_DATABASE_URL})"
        )));
    }
    Ok(Some(PathBuf::from(path)))
}

/// Beside the SQLite file, or in the working directory with PostgreSQL.
fn dev_key_path(db_path: Option<&Path>) -> PathBuf {
    db_path
        .and_then(Path::parent)
        .unwrap_or(Path::new(""))
        .join(DEV_KEY_FILE)
}

async fn open_users_db(path: &Path) -> Result<UsersDb, Fatal> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(3));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|e| fail(format!("cannot open the database {}: {e}", path.display())))?;
    sqlx::query("CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let reads = SqliteConnections::open(path, 2, Access::ReadOnly)
        .map_err(|e| fail(format!("cannot open the database {}: {e}", path.display())))?;
    Ok(UsersDb::Sqlite(pool, reads))
}

async fn open_users_pg(url: &str) -> Result<PgPool, Fatal> {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .map_err(|e| fail(format!("cannot open the database {}: {e}", redact_url(url))))?;
    // Instances starting together would race on CREATE TABLE IF NOT EXISTS: take turns.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tokengate-example-users'))")
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(pool)
}

/// The development RSA key pair: generated once, kept beside the database.
struct DevKey {
    private_pem: String,
    public_pem: String,
}

impl DevKey {
    fn load_or_create(path: &Path) -> Result<DevKey, Fatal> {
        let private_pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use aws_lc_rs::encoding::AsDer;
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| fail("could not generate the development RSA key"))?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair
                    .as_der()
                    .map_err(|_| fail("could not encode the development key"))?;
                let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
                write_private_file(path, &pem).map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
                pem
            }
            Err(e) => return Err(fail(format!("cannot read the development key {}: {e}", path.display()))),
        };
        let public_pem = public_pem_of(&private_pem).map_err(|e| {
            fail(format!(
                "{} is not a usable RSA key: {e}; delete it to generate a new one",
                path.display()
            ))
        })?;
        Ok(DevKey {
            private_pem,
            public_pem,
        })
    }

    fn key_set(&self) -> Result<KeySet, Fatal> {
        let jwks = jwks_from_pem(&self.public_pem, Some(DEV_KID), Algorithm::RS256)?;
        Ok(KeySet::from_jwks(&jwks.to_string())?)
    }

    fn sign(&self, typ: &str, claims: &Value) -> Result<String, Fatal> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(DEV_KID.to_owned());
        header.typ = Some(typ.to_owned());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.private_pem.as_bytes())?;
        Ok(jsonwebtoken::encode(&header, claims, &key)?)
    }
}

fn public_pem_of(private_pem: &str) -> Result<String, String> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    let parsed = pem::parse(private_pem).map_err(|e| e.to_string())?;
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(parsed.contents()).map_err(|e| e.to_string())?;
    let public: aws_lc_rs::encoding::PublicKeyX509Der<'_> = pair.public_key().as_der().map_err(|e| e.to_string())?;
    Ok(pem::encode(&pem::Pem::new("PUBLIC KEY", public.as_ref().to_vec())))
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The demo keys development mode issues: subject and name.
const DEMO_KEYS: [(&str, &str); 3] = [
    (DEMO_USER, "demo-write"),
    (DEMO_USER, "demo-read"),
    ("mch_demo", "demo-m2m"),
];

/// Revokes the demo keys an earlier start issued, found by subject and name (an indexed query
/// each, so a database with many keys under the demo user starts as fast as an empty one).
async fn revoke_demo_keys(keys: &KeyVerifier) -> Result<(), Fatal> {
    for (subject, name) in DEMO_KEYS {
        let mut query = KeyQuery::new().subject(subject).name(name);
        loop {
            let page = keys.store().list_page(&query).await?;
            for old in page.iter().filter(|k| k.revoked_at.is_none()) {
                keys.revoke(&old.id, Some("replaced at server start")).await?;
            }
            match page.last() {
                Some(last) if page.len() == query.limit => query = query.after(last.id.clone()),
                _ => break,
            }
        }
    }
    Ok(())
}

/// Issues fresh demo keys (revoking the previous ones: secrets are shown once) and prints
/// every credential a newcomer needs, with a `curl` line for each route.
/// The development tokens printed at start-up, signed with the development key.
struct DemoTokens {
    /// Passes every session route: organization admin, feature, plan, fresh factors.
    session: String,
    /// Refused by every session requirement.
    plain_session: String,
    /// `acr` `mfa`, authenticated now.
    oauth: String,
    /// `acr` `pwd`: refused by `POST /api/payouts` with the RFC 9470 challenge.
    password_oauth: String,
}

impl DemoTokens {
    fn sign(dev: &DevKey, args: &Args) -> Result<DemoTokens, Fatal> {
        let iat = now();
        let issuer = args.session_issuers.first().map_or(DEV_ISSUER, String::as_str);
        let mut session = json!({
            "iss": issuer, "sub": DEMO_USER, "sid": "sess_demo", "sts": "active",
            "iat": iat, "nbf": iat, "exp": iat + 3600,
        });
        if let Some(azp) = args.authorized_parties.first() {
            session["azp"] = json!(azp);
        }
        let mut plain = session.clone();
        plain["fva"] = json!([120, -1]);
        let entitled = json!({
            "org_id": "org_demo", "org_slug": "demo", "org_role": "org:admin",
            "org_permissions": ["org:invoices:read"], "fea": "o:exports", "pla": "o:pro", "fva": [0, 0],
        });
        if let (Value::Object(claims), Value::Object(extra)) = (&mut session, entitled) {
            claims.extend(extra);
        }
        let oauth = |acr: &str| {
            json!({
                "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": DEMO_USER, "client_id": "client_demo",
                "scope": "write:users", "iat": iat, "exp": iat + 3600, "jti": format!("demo-{acr}-{iat}"),
                "acr": acr, "auth_time": iat,
            })
        };
        Ok(DemoTokens {
            session: dev.sign("JWT", &session)?,
            plain_session: dev.sign("JWT", &plain)?,
            oauth: dev.sign("at+jwt", &oauth("mfa"))?,
            password_oauth: dev.sign("at+jwt", &oauth("pwd"))?,
        })
    }
}

/// The `curl` lines of the session routes: each with a token that passes and one refused.
fn print_session_routes(base: &str, t: &DemoTokens) {
    let (ok, plain) = (&t.session, &t.plain_session);
    for (method, path, refusal) in [
        ("GET", "/api/org/members", "403 no-active-organization"),
        ("GET", "/api/invoices", "403 no-active-organization"),
        ("GET", "/api/exports", "403 missing-feature"),
        ("GET", "/api/analytics", "403 missing-plan"),
        ("DELETE", "/api/account", "403 reverification-error (Clerk's body)"),
        ("POST", "/api/payouts", "403 reverification-error (Clerk's body)"),
    ] {
        println!("  curl -X {method} -H 'Authorization: Bearer {ok}' {base}{path}");
        println!("  curl -X {method} -H 'Authorization: Bearer {plain}' {base}{path}   # {refusal}");
    }
    println!(
        "  curl -X POST -H 'Authorization: Bearer {}' {base}/api/payouts",
        t.oauth
    );
    println!(
        "  curl -i -X POST -H 'Authorization: Bearer {}' {base}/api/payouts   # 401 insufficient_user_authentication",
        t.password_oauth
    );
}

async fn print_demo_credentials(addr: SocketAddr, dev: &DevKey, keys: &KeyVerifier, args: &Args) -> Result<(), Fatal> {
    revoke_demo_keys(keys).await?;
    let writer = keys
        .issue(KeySpec::api_key(DEMO_USER, "demo-write").scope("write:users"))
        .await?;
    let reader = keys.issue(KeySpec::api_key(DEMO_USER, "demo-read")).await?;
    let machine = keys
        .issue(KeySpec::m2m_token("mch_demo", "demo-m2m").scope("write:users"))
        .await?;
    let tokens = DemoTokens::sign(dev, args)?;
    let session = &tokens.session;
    let oauth = &tokens.oauth;
    let base = format!("http://{addr}");
    println!();
    println!("!! DEVELOPMENT MODE — a generated key signs the tokens below. NOT FOR PRODUCTION. !!");
    println!("   Pass --session-public-key / --session-jwks-url (and OAuth options) in production.");
    println!();
    println!("demo API key (write:users):   {}", writer.secret.expose());
    println!("demo API key (no scopes):     {}", reader.secret.expose());
    println!("demo M2M token (write:users): {}", machine.secret.expose());
    println!("dev session token (1 hour):   {session}");
    println!(
        "   (org:admin of org_demo with org:invoices:read, feature o:exports, plan o:pro, both factors just verified)"
    );
    println!("dev session token (plain):    {}", tokens.plain_session);
    println!("   (no organization, feature or plan; first factor verified 2 hours ago, no second factor)");
    println!("dev OAuth token (write:users): {oauth}");
    println!("   (acr mfa, authenticated at start-up: passes max_age=600 for 10 minutes)");
    println!("dev OAuth token (password):   {}", tokens.password_oauth);
    println!();
    println!("try:");
    println!("  curl {base}/health");
    println!(
        "  curl -H 'Authorization: Bearer {}' {base}/api/example",
        writer.secret.expose()
    );
    println!(
        "  curl -X POST -H 'Authorization: Bearer {}' {base}/api/example",
        writer.secret.expose()
    );
    println!(
        "  curl -X POST -H 'Authorization: Bearer {}' {base}/api/example   # 403: no write:users",
        reader.secret.expose()
    );
    println!("  curl -X POST -H 'Authorization: Bearer {session}' {base}/api/example");
    println!("  curl -X POST -H 'Authorization: Bearer {oauth}' {base}/api/example");
    println!(
        "  curl -X DELETE -H 'Authorization: Bearer {}' {base}/api/users/user_nobody   # 404",
        machine.secret.expose()
    );
    print_session_routes(&base, &tokens);
    println!();
    println!("create your own: cargo run -p tokengate-cli -- keys create --subject user_123 --scope write:users");
    Ok(())
}
