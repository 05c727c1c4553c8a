//! The `TokenGate` the flags describe: development mode, configured issuers and keys, or
//! Clerk-hosted mode.

use std::sync::Arc;
use std::time::Duration;

use tokengate::introspection::{IntrospectionConfig, IntrospectionVerifier};
use tokengate::jwt::{JwtVerifier, KeySet, M2mRules, OAuthRules, SessionRules};
use tokengate::keys::{KeyVerifier, open_store, redact_url};
use tokengate::metadata::ProtectedResource;
use tokengate::rate_limit::{OnRedisError, RateLimits};
use tokengate::verifier::{ByFormat, ByIssuer};
use tokengate::{TokenGate, TokenGateBuilder, TokenType, Verifier};

use crate::args::Args;
use crate::binding::{self, Listening};
use crate::dev::{DevKey, dev_key_path};
use crate::serve::serve;
use crate::users::{UsersDb, open_users_db, open_users_pg, sqlite_path};
use crate::{DEV_AUDIENCE, DEV_ISSUER, Fatal, fail};

pub(crate) async fn run(args: Args) -> Result<(), Fatal> {
    let rules = session_rules(&args)?;
    let listening = binding::listen(&args).await?;
    // The key store first: it names an unsupported URL scheme and what it takes.
    let store = open_store(&args.database).await.map_err(|e| {
        fail(format!(
            "cannot open the key store at {}: {e}",
            redact_url(&args.database)
        ))
    })?;
    let db_path = sqlite_path(&args.database)?;
    let db = match &db_path {
        Some(path) => open_users_db(path).await?,
        None => UsersDb::Postgres(open_users_pg(&args.database).await?),
    };
    let keys = Arc::new(
        KeyVerifier::builder(Arc::clone(&store))
            .cache_ttl(Duration::from_secs(args.key_cache_ttl))
            .build()
            .map_err(|e| fail(format!("--key-cache-ttl {}: {e}", args.key_cache_ttl)))?,
    );
    if let Some(secret_key) = &args.clerk_secret_key {
        return run_clerk(args.clone(), listening, secret_key, rules, db, keys).await;
    }
    let dev_key = if dev_mode(&args) {
        Some(DevKey::load_or_create(&dev_key_path(db_path.as_deref()))?)
    } else {
        None
    };

    let resource_url = resource_url(&args, &listening.public_url);
    let audience = args.oauth_audience.clone().unwrap_or_else(|| resource_url.clone());
    let session = session_verifier(&args, rules, dev_key.as_ref(), &audience)?;
    // OAuth access tokens for this resource: JWTs from the configured issuers (or the
    // development key), opaque tokens by introspection.
    let (oauth_jwt, issuers) = match &dev_key {
        Some(_) if args.oauth_issuer.is_empty() && args.oauth_jwks_url.is_none() => {
            (Some(Arc::clone(&session)), vec![DEV_ISSUER.to_owned()])
        }
        _ => oauth_issuers(&args, &audience).await?,
    };
    let introspection = introspection_verifier(&args, &audience)?;

    let gate = TokenGate::builder()
        .verifier(TokenType::SessionToken, Arc::clone(&session))
        .verifier(TokenType::ApiKey, keys.clone());
    // Development M2M tokens are JWTs the development key signs; others are opaque keys.
    let dev_m2m = dev_key.as_ref().map(|_| Arc::clone(&session));
    let gate = machine_verifiers(gate, &keys, dev_m2m, oauth_jwt, introspection);
    let resource = protected_resource(&args, &resource_url, &issuers)?;
    let gate = gate
        .dpop(binding::dpop(&args, &listening.public_url)?)
        .realm("tokengate-example")
        .resource_metadata(resource.metadata_url())
        .rate_limits(rate_limits(&args).await?)
        .build()?;

    serve(listening, &args, &resource, gate, db, keys, dev_key).await
}

/// M2M tokens (opaque keys from the key store, and JWTs when `m2m_jwt` is given) and OAuth
/// access tokens (JWTs, opaque tokens by introspection), when any OAuth verifier is configured.
fn machine_verifiers(
    mut gate: TokenGateBuilder,
    keys: &Arc<KeyVerifier>,
    m2m_jwt: Option<Arc<dyn Verifier>>,
    oauth_jwt: Option<Arc<dyn Verifier>>,
    introspection: Option<Arc<dyn Verifier>>,
) -> TokenGateBuilder {
    let mut m2m = ByFormat::new().opaque(keys.clone());
    if let Some(v) = m2m_jwt {
        m2m = m2m.jwt(v);
    }
    gate = gate.verifier(TokenType::M2mToken, Arc::new(m2m));
    if oauth_jwt.is_none() && introspection.is_none() {
        return gate;
    }
    let mut oauth = ByFormat::new();
    if let Some(v) = oauth_jwt {
        oauth = oauth.jwt(v);
    }
    if let Some(v) = introspection {
        oauth = oauth.opaque(v);
        gate = gate.opaque_oauth_tokens(true);
    }
    gate.verifier(TokenType::OAuthToken, Arc::new(oauth))
}

/// Development mode: no session-token key and no Clerk secret key configured, so the server
/// signs its own tokens with the development key.
fn dev_mode(args: &Args) -> bool {
    args.session_public_key.is_none() && args.session_jwks_url.is_none() && args.clerk_secret_key.is_none()
}

/// Session tokens: verified with --session-public-key, --session-jwks-url, else the
/// development key (which also signs the development OAuth and M2M tokens).
fn session_verifier(
    args: &Args,
    rules: SessionRules,
    dev_key: Option<&DevKey>,
    audience: &str,
) -> Result<Arc<dyn Verifier>, Fatal> {
    let verifier = match (&args.session_public_key, &args.session_jwks_url, dev_key) {
        (Some(path), _, _) => {
            let keys = KeySet::from_file(path)
                .map_err(|e| fail(format!("cannot read --session-public-key {}: {e}", path.display())))?;
            JwtVerifier::builder().keys(keys).session(rules).build()?
        }
        (None, Some(url), _) => {
            let jwks =
                tokengate::jwt::JwksCache::new(url).map_err(|e| fail(format!("--session-jwks-url {url}: {e}")))?;
            JwtVerifier::builder().jwks(jwks).session(rules).build()?
        }
        (None, None, Some(dev)) => JwtVerifier::builder()
            .keys(dev.key_set()?)
            .session(rules)
            // The printed tokens' audience, and the resource's (--oauth-audience, else
            // the resource URL): development tokens minted for this resource pass too.
            .oauth(OAuthRules::new(DEV_ISSUER, [DEV_AUDIENCE, audience]))
            .m2m(M2mRules::new().issuer(DEV_ISSUER))
            .build()?,
        (None, None, None) => return Err(fail("no session-token key configured")),
    };
    Ok(Arc::new(verifier))
}

/// Opaque OAuth tokens, by introspection at --oauth-introspection-url when it is given.
fn introspection_verifier(args: &Args, audience: &str) -> Result<Option<Arc<dyn Verifier>>, Fatal> {
    let Some(url) = &args.oauth_introspection_url else {
        return Ok(None);
    };
    let config = IntrospectionConfig::new(
        url.clone(),
        args.oauth_client_id.clone().unwrap_or_default(),
        args.oauth_client_secret.clone().unwrap_or_default(),
    )
    .audience(audience.to_owned());
    Ok(Some(Arc::new(IntrospectionVerifier::new(config)?)))
}

/// The resource identifier: --resource-url, or the URL clients call (--public-url, else the
/// address the server listens on).
pub(crate) fn resource_url(args: &Args, public_url: &str) -> String {
    args.resource_url.clone().unwrap_or_else(|| public_url.to_owned())
}

/// The resource's RFC 9728 metadata: its identifier and the issuers it trusts.
pub(crate) fn protected_resource(args: &Args, url: &str, issuers: &[String]) -> Result<ProtectedResource, Fatal> {
    // Without --resource-url the resource is the public URL: a mistake there is --public-url's.
    let flag = match (&args.resource_url, &args.public_url) {
        (None, Some(_)) => "--public-url",
        _ => "--resource-url",
    };
    let mut resource = ProtectedResource::new(url).map_err(|e| fail(format!("{flag}: {e}")))?;
    for issuer in issuers {
        resource = resource
            .authorization_server(issuer.clone())
            .map_err(|e| fail(format!("--oauth-issuer: {e}")))?;
    }
    Ok(resource.resource_name("tokengate example API"))
}

/// One verifier per configured authorization server (discovery for each --oauth-issuer, the
/// JWKS URL for --oauth-issuer-name), each JWT sent to its `iss`'s; and their issuers.
async fn oauth_issuers(args: &Args, audience: &str) -> Result<(Option<Arc<dyn Verifier>>, Vec<String>), Fatal> {
    let mut by_issuer = ByIssuer::new();
    let mut issuers = Vec::new();
    for issuer in &args.oauth_issuer {
        let verifier = JwtVerifier::oauth_from_issuer(issuer, [audience])
            .await
            .map_err(|e| fail(format!("OAuth discovery at {issuer} failed: {e}")))?;
        by_issuer = by_issuer.issuer(issuer.clone(), Arc::new(verifier));
        issuers.push(issuer.clone());
    }
    if let (Some(url), Some(issuer)) = (&args.oauth_jwks_url, &args.oauth_issuer_name) {
        let verifier = JwtVerifier::oauth_from_jwks_url(url, issuer, [audience])?;
        by_issuer = by_issuer.issuer(issuer.clone(), Arc::new(verifier));
        issuers.push(issuer.clone());
    }
    if issuers.is_empty() {
        return Ok((None, issuers));
    }
    Ok((Some(Arc::new(by_issuer)), issuers))
}

/// Clerk-hosted mode: session tokens with the instance's keys (PEM or the Backend API's
/// JWKS), API keys, M2M and OAuth tokens through the Backend API, JWT machine tokens locally.
async fn run_clerk(
    args: Args,
    listening: Listening,
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
    if let Some(key) = &args.clerk_jwt_key {
        config = config.with_jwt_key(clerk_jwt_key(key)?);
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
    let resource_url = resource_url(&args, &listening.public_url);
    let resource = protected_resource(&args, &resource_url, args.oauth_issuer_name.as_slice())?;
    let gate = TokenGate::builder()
        .verifier(TokenType::SessionToken, jwt)
        .verifier_for(ClerkMachineVerifier::token_types(), Arc::new(machines))
        .dpop(binding::dpop(&args, &listening.public_url)?)
        .realm("tokengate-example")
        .resource_metadata(resource.metadata_url())
        .rate_limits(rate_limits(&args).await?)
        .build()?;
    println!("Clerk-hosted mode: tokens are verified with Clerk's keys and Backend API");
    serve(listening, &args, &resource, gate, db, keys, None).await
}

/// `--clerk-jwt-key`: the PEM text itself, or the path of a file holding it. Neither is
/// repeated in a message: a private key given by mistake would be.
fn clerk_jwt_key(value: &str) -> Result<String, Fatal> {
    if value.contains("-----BEGIN") {
        return Ok(value.to_owned());
    }
    let path = std::path::Path::new(value.trim());
    match std::fs::read_to_string(path) {
        Ok(pem) if pem.contains("-----BEGIN") => Ok(pem),
        Ok(_) => Err(fail(format!(
            "--clerk-jwt-key: {} holds no PEM block; give the instance's PEM public key (Clerk dashboard, API keys, \
             \"JWKS Public Key\") as text or as a file",
            path.display()
        ))),
        Err(e) => Err(fail(format!(
            "--clerk-jwt-key: neither PEM text (it has no `-----BEGIN` line) nor a readable file ({e}); give the \
             instance's PEM public key, e.g. CLERK_JWT_KEY=\"$(cat clerk.pem)\", or --clerk-jwt-key clerk.pem"
        ))),
    }
}

/// Where the rate-limit counts live: Redis with `--redis-url` (shared by every instance), else
/// this process.
async fn rate_limits(args: &Args) -> Result<RateLimits, Fatal> {
    let Some(url) = &args.redis_url else {
        return Ok(RateLimits::in_process());
    };
    let on_error = match args.redis_unavailable.as_str() {
        "allow" => OnRedisError::Allow,
        _ => OnRedisError::Refuse,
    };
    RateLimits::redis(url, on_error)
        .await
        .map_err(|e| fail(format!("--redis-url: {e}")))
}

/// The session rules the flags ask for: authorized parties and issuers.
fn session_rules(args: &Args) -> Result<SessionRules, Fatal> {
    let mut rules = SessionRules::new();
    for party in &args.authorized_parties {
        check_origin(party)?;
    }
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

/// `--authorized-party`: an origin, as a session token's `azp` names it and as it is compared,
/// exactly: `scheme://host[:port]` (`https://app.example.com`, `chrome-extension://ID`),
/// without a path, a query or a trailing slash.
fn check_origin(party: &str) -> Result<(), Fatal> {
    let is_origin = party.split_once("://").is_some_and(|(scheme, host)| {
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
        scheme_ok && !host.is_empty() && !host.contains(['/', '?', '#', '@', ' ']) && !host.ends_with(':')
    });
    if is_origin {
        return Ok(());
    }
    Err(fail(format!(
        "--authorized-party {party:?}: give an origin, `scheme://host[:port]` without a path or a trailing slash \
         (e.g. https://app.example.com or http://localhost:3000): a session token's `azp` is compared with it exactly"
    )))
}
