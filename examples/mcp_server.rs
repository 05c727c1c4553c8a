//! An MCP server over Streamable HTTP (the official Rust SDK, `rmcp`), behind tokengate: an
//! OAuth 2.0 resource server as the MCP authorization spec (2025-06-18 and later) asks.
//!
//! ```sh
//! cargo run --example mcp_server                      # development mode, tokens printed
//! cargo run --example mcp_server -- --policy-report   # the tools' policies, then exit
//! cargo run --example mcp_server -- --help            # every flag
//! ```
//!
//! - `POST`/`GET`/`DELETE /mcp` take OAuth access tokens issued for this resource (`aud`
//!   contains `--resource-url`, default `http://ADDR/mcp`) and API keys;
//! - each tool's scopes are written once, in [`tool_policies`] (a `tokengate::mcp::ToolPolicies`):
//!   the `/mcp` handler enforces them on `tools/call` before `rmcp` sees it (HTTP `403` with
//!   `error="insufficient_scope"` and the `scope` to request, the MCP spec's scope challenge),
//!   the route-policy report lists them (`Router::mcp_tools`), and the RFC 9728 metadata at
//!   `/.well-known/oauth-protected-resource/mcp` advertises them;
//! - every `401` and `403` names that metadata (`resource_metadata="…"`), where an MCP client
//!   finds the authorization servers (`--oauth-issuer`, repeatable).
//!
//! Without `--oauth-issuer` or `--oauth-jwks-url` it runs in development mode: a development
//! RSA key (`tokengate-mcp-dev-key.pem` in the working directory, generated once) signs the
//! OAuth tokens printed at start-up, one per set of scopes, and demo API keys are issued
//! into memory.

#[path = "api_server/dev_key.rs"]
mod dev_key;
#[path = "api_server/start.rs"]
mod start;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use clap::Parser;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router};
use serde_json::json;
use tokengate::jwt::{JwtVerifier, OAuthRules};
use tokengate::keys::{KeySpec, KeyVerifier, MemoryKeyStore, open_store};
use tokengate::mcp::ToolPolicies;
use tokengate::metadata::ProtectedResource;
use tokengate::report::Format;
use tokengate::routing::{Router, any};
use tokengate::verifier::ByIssuer;
use tokengate::{TokenGate, TokenType, Verifier, accepts_token, policy};
use tower::ServiceExt as _;

use crate::dev_key::DevKey;

/// The issuer of development OAuth tokens.
const DEV_ISSUER: &str = "https://tokengate.dev.invalid";
const DEV_KEY_FILE: &str = "tokengate-mcp-dev-key.pem";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "mcp_server",
    about = "tokengate's MCP server example: tools guarded by scopes, RFC 9728 metadata",
    after_help = "Without --oauth-issuer or --oauth-jwks-url the server runs in development mode and prints tokens."
)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "TOKENGATE_ADDR", default_value = "127.0.0.1:3001")]
    addr: SocketAddr,

    /// OAuth authorization server, found by discovery; repeatable (each JWT goes to the
    /// server its `iss` names).
    #[arg(long, env = "TOKENGATE_OAUTH_ISSUER", value_name = "URL", value_delimiter = ',')]
    oauth_issuer: Vec<String>,

    /// JWKS URL of an authorization server without discovery (issuer: --oauth-issuer-name).
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_JWKS_URL",
        value_name = "URL",
        requires = "oauth_issuer_name"
    )]
    oauth_jwks_url: Option<String>,

    /// The `iss` of the tokens --oauth-jwks-url verifies.
    #[arg(
        long,
        env = "TOKENGATE_OAUTH_ISSUER_NAME",
        value_name = "ISSUER",
        requires = "oauth_jwks_url"
    )]
    oauth_issuer_name: Option<String>,

    /// This MCP server's resource identifier: the URL clients call, the `aud` its tokens
    /// must carry (default: http://ADDR/mcp).
    #[arg(long, env = "TOKENGATE_RESOURCE_URL", value_name = "URL")]
    resource_url: Option<String>,

    /// Key store for API keys (`sqlite://PATH`, a path or `postgres://…`; default: in memory,
    /// with demo keys in development mode).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database: Option<String>,

    /// Print the route-policy report (the tools' policies included) and exit.
    #[arg(long)]
    policy_report: bool,

    /// Report format: markdown, json, openapi or html.
    #[arg(long, default_value = "markdown", requires = "policy_report", value_parser = Format::from_str)]
    format: Format,

    /// With --policy-report: exit 1 naming every route that has no policy and is not public.
    #[arg(long, requires = "policy_report")]
    deny_unguarded: bool,
}

/// Each tool's policy: the one place its scopes are written. The `/mcp` handler enforces
/// these; the report and the resource metadata read them.
fn tool_policies() -> ToolPolicies {
    ToolPolicies::new()
        .tool(
            "list_users",
            policy!(accepts_token(oauth_token, api_key), require_scope("users:read")),
        )
        .tool(
            "delete_user",
            policy!(accepts_token(oauth_token, api_key), require_scope("users:write")),
        )
}

/// The MCP tools: a small directory of users.
#[derive(Clone)]
struct Users {
    names: Arc<Mutex<BTreeMap<String, String>>>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct DeleteUser {
    /// The user's id, e.g. `user_1`.
    id: String,
}

#[tool_router]
impl Users {
    fn new(names: Arc<Mutex<BTreeMap<String, String>>>) -> Users {
        Users { names }
    }

    #[tool(description = "List the users (needs the scope users:read)")]
    fn list_users(&self) -> String {
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        json!(names).to_string()
    }

    #[tool(description = "Delete a user by id (needs the scope users:write)")]
    fn delete_user(&self, Parameters(DeleteUser { id }): Parameters<DeleteUser>) -> String {
        let removed = self.names.lock().ok().and_then(|mut n| n.remove(&id));
        json!({ "deleted": removed.is_some(), "id": id }).to_string()
    }
}

#[tool_handler]
impl rmcp::ServerHandler for Users {}

/// The server's state: the gate, the tools' policies and the MCP service behind them.
#[derive(Clone)]
struct McpApp {
    gate: TokenGate,
    tools: Arc<ToolPolicies>,
    mcp: StreamableHttpService<Users, NeverSessionManager>,
}

impl axum::extract::FromRef<McpApp> for TokenGate {
    fn from_ref(app: &McpApp) -> TokenGate {
        app.gate.clone()
    }
}

/// `/mcp` — every MCP message. The caller must hold an OAuth token for this resource or an
/// API key; a `tools/call` must also meet that tool's policy.
#[accepts_token(oauth_token, api_key)]
async fn mcp(State(app): State<McpApp>, request: Request) -> Response {
    let request = match app.tools.authorize(&app.gate, request).await {
        Ok(request) => request,
        Err(refusal) => return refusal,
    };
    match app.mcp.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// The routes: `/mcp`, its tools as operations with their policies, and the metadata.
fn routes(tools: &ToolPolicies, resource: &ProtectedResource) -> Router<McpApp> {
    let path = mcp_path(resource);
    Router::new()
        .route(&path, any(mcp))
        .mcp_tools(&path, tools)
        .serve_resource_metadata(resource)
}

/// Where the MCP endpoint is served: the resource URL's path (`/mcp` by default).
fn mcp_path(resource: &ProtectedResource) -> String {
    match resource.path() {
        "" => "/".to_owned(),
        path => path.to_owned(),
    }
}

/// A start-up failure: one line, exit code 2.
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
}

fn resource(args: &Args, addr: SocketAddr, issuers: &[String]) -> Result<ProtectedResource, Fatal> {
    let url = args
        .resource_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}/mcp"));
    let mut resource = ProtectedResource::new(url).map_err(|e| Fatal(format!("--resource-url: {e}")))?;
    for issuer in issuers {
        resource = resource
            .authorization_server(issuer.clone())
            .map_err(|e| Fatal(format!("--oauth-issuer: {e}")))?;
    }
    Ok(resource.resource_name("tokengate MCP example"))
}

/// The OAuth verifiers: one per authorization server, each JWT sent to its `iss`'s, all
/// requiring `aud` to contain the resource; or the development key's. And the issuers.
async fn oauth(args: &Args, audience: &str, dev: Option<&DevKey>) -> Result<(Arc<dyn Verifier>, Vec<String>), Fatal> {
    let mut by_issuer = ByIssuer::new();
    let mut issuers = Vec::new();
    if let Some(dev) = dev {
        let verifier = JwtVerifier::builder()
            .keys(dev.key_set()?)
            .oauth(OAuthRules::new(DEV_ISSUER, [audience]))
            .build()?;
        by_issuer = by_issuer.issuer(DEV_ISSUER, Arc::new(verifier));
        issuers.push(DEV_ISSUER.to_owned());
    }
    for issuer in &args.oauth_issuer {
        let verifier = JwtVerifier::oauth_from_issuer(issuer, [audience])
            .await
            .map_err(|e| Fatal(format!("OAuth discovery at {issuer} failed: {e}")))?;
        by_issuer = by_issuer.issuer(issuer.clone(), Arc::new(verifier));
        issuers.push(issuer.clone());
    }
    if let (Some(url), Some(issuer)) = (&args.oauth_jwks_url, &args.oauth_issuer_name) {
        let verifier = JwtVerifier::oauth_from_jwks_url(url, issuer, [audience])?;
        by_issuer = by_issuer.issuer(issuer.clone(), Arc::new(verifier));
        issuers.push(issuer.clone());
    }
    Ok((Arc::new(by_issuer), issuers))
}

/// The MCP service: stateless (each request stands alone, so each is authorized alone), with
/// the resource's host allowed besides loopback.
fn mcp_service(
    names: Arc<Mutex<BTreeMap<String, String>>>,
    resource: &ProtectedResource,
) -> StreamableHttpService<Users, NeverSessionManager> {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(url) = url::Url::parse(resource.resource())
        && let Some(host) = url.host_str()
    {
        hosts.push(host.to_owned());
    }
    let mut config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    config.legacy_session_mode = false;
    config.json_response = true;
    StreamableHttpService::new(
        move || Ok(Users::new(Arc::clone(&names))),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// The gate: OAuth tokens for the resource (its identifier depends on the bound address),
/// API keys from the store; and the resource, whose metadata its challenges point at.
async fn gate(
    args: &Args,
    addr: SocketAddr,
    dev: Option<&DevKey>,
) -> Result<(TokenGate, ProtectedResource, Arc<KeyVerifier>), Fatal> {
    let audience = resource(args, addr, &[])?.resource().to_owned();
    let (oauth, issuers) = oauth(args, &audience, dev).await?;
    let resource = resource(args, addr, &issuers)?;
    let store = match &args.database {
        Some(url) => open_store(url).await?,
        None => Arc::new(MemoryKeyStore::new()),
    };
    let keys = Arc::new(KeyVerifier::builder(store).build()?);
    let gate = TokenGate::builder()
        .verifier(TokenType::OAuthToken, oauth)
        .verifier(TokenType::ApiKey, keys.clone())
        .realm("tokengate-mcp")
        .resource_metadata(resource.metadata_url())
        .build()?;
    Ok((gate, resource, keys))
}

async fn run(args: Args) -> Result<(), Fatal> {
    let tools = tool_policies();
    // Every tool rmcp serves has a policy (else it would be open to any caller of /mcp).
    let served = Users::tool_router().list_all();
    tools.check_served(served.iter().map(|t| &*t.name)).map_err(Fatal)?;
    // A --resource-url the server cannot use is reported before anything is written.
    resource(&args, args.addr, &[]).map(drop)?;
    let dev_mode = args.oauth_issuer.is_empty() && args.oauth_jwks_url.is_none();
    let dev = if dev_mode {
        Some(DevKey::load_or_create(std::path::Path::new(DEV_KEY_FILE))?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| Fatal(format!("cannot listen on {}: {e}", args.addr)))?;
    let addr = listener.local_addr()?;
    let (gate, resource, keys) = gate(&args, addr, dev.as_ref()).await?;
    let routes = routes(&tools, &resource);
    routes.check_verifiers(&gate)?;
    let names = Arc::new(Mutex::new(demo_users()));
    let app = McpApp {
        gate,
        tools: Arc::new(tools),
        mcp: mcp_service(names, &resource),
    };
    println!("tokengate MCP server listening on http://{addr}{}", mcp_path(&resource));
    println!(
        "resource: {} (metadata: {})",
        resource.resource(),
        resource.metadata_url()
    );
    if let Some(dev) = &dev {
        print_dev_credentials(dev, &keys, &resource).await?;
    }
    println!("ready");
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    let app = routes.with_state(app).into_axum();
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Fatal(format!("server error: {e}")))
}

fn demo_users() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("user_1".to_owned(), "Ada".to_owned()),
        ("user_2".to_owned(), "Grace".to_owned()),
        ("user_3".to_owned(), "Edsger".to_owned()),
    ])
}

/// Development mode: an OAuth token for each set of scopes (for this resource, an hour) and
/// demo API keys, with the commands that use them.
async fn print_dev_credentials(dev: &DevKey, keys: &KeyVerifier, resource: &ProtectedResource) -> Result<(), Fatal> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token = |scope: &str| {
        dev.sign(
            "at+jwt",
            &json!({
                "iss": DEV_ISSUER, "aud": resource.resource(), "sub": "user_demo", "client_id": "mcp_demo",
                "scope": scope, "iat": now, "exp": now + 3600, "jti": format!("mcp-{scope}-{now}"),
            }),
        )
    };
    let reader = keys
        .issue(KeySpec::api_key("user_demo", "mcp-read").scope("users:read"))
        .await?;
    println!();
    println!("!! DEVELOPMENT MODE — a generated key signs the tokens below. NOT FOR PRODUCTION. !!");
    println!("   Pass --oauth-issuer (repeatable) or --oauth-jwks-url with --oauth-issuer-name in production.");
    println!();
    println!("dev OAuth token (users:read): {}", token("users:read")?);
    println!(
        "dev OAuth token (users:read users:write): {}",
        token("users:read users:write")?
    );
    println!("demo API key (users:read): {}", reader.secret.expose());
    println!();
    println!("try:");
    println!("  curl -i {}", resource.resource());
    println!("  curl {}", resource.metadata_url());
    println!(
        "  npx @modelcontextprotocol/inspector   # Streamable HTTP, URL {}, header Authorization: Bearer <token>",
        resource.resource()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Args = match start::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    start::init_logging();
    let outcome = if args.policy_report {
        policy_report(&args)
    } else {
        run(args).await
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// `--policy-report`: the routes and the tools' policies; starts nothing.
fn policy_report(args: &Args) -> Result<(), Fatal> {
    let resource = resource(args, args.addr, &[])?;
    let report = routes(&tool_policies(), &resource).report();
    println!("{}", report.render(args.format));
    match args.deny_unguarded {
        true => report.deny_unguarded().map_err(Fatal),
        false => Ok(()),
    }
}
