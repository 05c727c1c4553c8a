//! End to end: the example server as a process on a free loopback port, keys made with the
//! `tokengate` CLI on the same database, session and OAuth tokens signed with real keys
//! (served as a JWKS on loopback), every route with every token type.
//!
//! The binaries are the ones `cargo test` builds: `target/<profile>/examples/api_server` and
//! `target/<profile>/tokengate`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod process;
use process::{Server, cli, create_key, example_bin};

struct Reply {
    status: u16,
    body: Value,
    challenge: Option<String>,
}

async fn call(method: reqwest::Method, url: String, token: Option<&str>) -> Reply {
    let client = reqwest::Client::new();
    let mut request = client.request(method, url).timeout(Duration::from_secs(10));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        body,
        challenge,
    }
}

async fn get(s: &Server, path: &str, token: Option<&str>) -> Reply {
    call(reqwest::Method::GET, format!("{}{path}", s.base), token).await
}

async fn post(s: &Server, path: &str, token: Option<&str>) -> Reply {
    call(reqwest::Method::POST, format!("{}{path}", s.base), token).await
}

async fn delete(s: &Server, path: &str, token: Option<&str>) -> Reply {
    call(reqwest::Method::DELETE, format!("{}{path}", s.base), token).await
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An RSA key that signs test tokens.
struct Signer {
    private_pem: String,
    public_pem: String,
    kid: &'static str,
}

impl Signer {
    fn generate(kid: &'static str) -> Signer {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let private: Pkcs8V1Der<'_> = pair.as_der().unwrap();
        let public: PublicKeyX509Der<'_> = pair.public_key().as_der().unwrap();
        Signer {
            private_pem: pem::encode(&pem::Pem::new("PRIVATE KEY", private.as_ref().to_vec())),
            public_pem: pem::encode(&pem::Pem::new("PUBLIC KEY", public.as_ref().to_vec())),
            kid,
        }
    }

    fn from_private_pem(private_pem: String, kid: &'static str) -> Signer {
        Signer {
            private_pem,
            public_pem: String::new(),
            kid,
        }
    }

    fn sign(&self, typ: &str, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.to_owned());
        header.typ = Some(typ.to_owned());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    fn jwks(&self) -> Value {
        tokengate::jwt::jwks_from_pem(&self.public_pem, Some(self.kid), tokengate::jwt::Algorithm::RS256).unwrap()
    }
}

/// A JWKS endpoint on loopback.
async fn serve_jwks(jwks: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/jwks", axum::routing::get(move || async move { axum::Json(jwks) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks")
}

/// An authorization server on loopback: its discovery document and JWKS, counting requests.
async fn serve_issuer(jwks: Value) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    let (h1, h2) = (hits.clone(), hits.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move {
                h1.fetch_add(1, Ordering::SeqCst);
                axum::Json(discovery)
            }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || async move {
                h2.fetch_add(1, Ordering::SeqCst);
                axum::Json(jwks)
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (issuer, hits)
}

fn reason(r: &Reply) -> &str {
    r.body["reason"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn development_mode_every_route_every_token_type() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("e2e.db");
    let database = format!("sqlite://{}", db_file.display());
    let s = Server::start(dir.path(), &["--database", &database, "--key-cache-ttl", "1"]);
    assert!(
        s.lines.iter().any(|l| l.contains("NOT FOR PRODUCTION")),
        "development mode is announced loudly"
    );
    let writer = s.printed("demo API key (write:users):");
    let reader = s.printed("demo API key (no scopes):");
    let machine = s.printed("demo M2M token (write:users):");
    let session = s.printed("dev session token (1 hour):");
    let oauth = s.printed("dev OAuth token (write:users):");
    assert!(writer.starts_with("ak_") && reader.starts_with("ak_") && machine.starts_with("mt_"));
    assert!(
        s.lines.iter().any(|l| l.trim_start().starts_with("curl ")),
        "curl lines are printed"
    );

    let r = get(&s, "/health", None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ok")));

    // GET /api/example: API keys only.
    let r = get(&s, "/api/example", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "Unauthorized");
    assert_eq!(reason(&r), "missing-credentials");
    let r = get(&s, "/api/example", Some(&writer)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["userId"], "user_demo");
    assert!(r.body.get("claims").is_some());
    assert_eq!(get(&s, "/api/example", Some(&reader)).await.status, 200);
    for other in [&session, &oauth, &machine] {
        let r = get(&s, "/api/example", Some(other)).await;
        assert_eq!((r.status, reason(&r)), (401, "token-type-mismatch"));
    }
    let r = get(&s, "/api/example", Some("garbage")).await;
    assert_eq!((r.status, reason(&r)), (401, "malformed-token"));
    // One character changed (to one it is not already): the checksum no longer matches.
    let last = if writer.ends_with('x') { 'y' } else { 'x' };
    let mistyped = format!("{}{last}", &writer[..writer.len() - 1]);
    let r = get(&s, "/api/example", Some(&mistyped)).await;
    assert_eq!((r.status, reason(&r)), (401, "bad-checksum"));

    // POST /api/example: sessions and OAuth pass, keys need write:users.
    for token in [&session, &oauth, &writer] {
        let r = post(&s, "/api/example", Some(token)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["data"][0]["id"], "user_demo", "{:?}", r.body);
    }
    let r = post(&s, "/api/example", Some(&reader)).await;
    assert_eq!(r.status, 403);
    assert!(
        r.body["message"].as_str().unwrap().contains("write:users"),
        "{:?}",
        r.body
    );
    let r = post(&s, "/api/example", Some(&machine)).await;
    assert_eq!((r.status, reason(&r)), (401, "token-type-mismatch"));

    // An expired session token, signed with the development key kept beside the database.
    let dev_key = std::fs::read_to_string(dir.path().join("tokengate-dev-key.pem")).unwrap();
    let dev = Signer::from_private_pem(dev_key, "tokengate-dev");
    let expired = dev.sign(
        "JWT",
        &json!({"sub": "user_demo", "sid": "s", "iat": now() - 7200, "exp": now() - 3600}),
    );
    let r = post(&s, "/api/example", Some(&expired)).await;
    assert_eq!((r.status, reason(&r)), (401, "token-expired"));

    // DELETE /api/users/{id}: keys, OAuth and M2M with write:users.
    for token in [&machine, &oauth, &writer] {
        assert_eq!(delete(&s, "/api/users/user_nobody", Some(token)).await.status, 404);
    }
    assert_eq!(delete(&s, "/api/users/user_nobody", Some(&reader)).await.status, 403);
    let r = delete(&s, "/api/users/user_nobody", Some(&session)).await;
    assert_eq!((r.status, reason(&r)), (401, "token-type-mismatch"));

    // A key from the CLI on the same database works at once; revoked, it stops within the TTL.
    let (id, secret) = create_key(&database, "user_123", &["write:users"]);
    let r = get(&s, "/api/example", Some(&secret)).await;
    assert_eq!((r.status, r.body["userId"].as_str()), (200, Some("user_123")));
    let (code, _, err) = cli(
        &["keys", "revoke", &id, "--database", &database, "--reason", "test"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(&s, "/api/example", Some(&secret)).await;
        if r.status == 401 {
            assert_eq!(reason(&r), "token-revoked");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked key was still accepted after 5 s (TTL 1 s)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleting the demo user: 204, then 404, and the POST route sees no rows.
    assert_eq!(delete(&s, "/api/users/user_demo", Some(&machine)).await.status, 204);
    assert_eq!(delete(&s, "/api/users/user_demo", Some(&machine)).await.status, 404);
    let r = post(&s, "/api/example", Some(&session)).await;
    assert_eq!(r.body["data"], json!([]));
}

/// `token` with one signature byte changed (in the middle: the last base64url character
/// carries padding bits).
fn tampered(token: &str) -> String {
    let middle = token.len() - 100;
    let flipped = if &token[middle..=middle] == "A" { "B" } else { "A" };
    format!("{}{flipped}{}", &token[..middle], &token[middle + 1..])
}

/// `GET /api/me` shows every type of caller; `GET /api/feed` serves anonymous callers and
/// personalises for signed-in ones, and refuses every present but bad credential (never
/// anonymous): malformed, forged, expired, revoked, of a type it does not accept, or of
/// another scheme.
#[tokio::test(flavor = "multi_thread")]
async fn development_mode_me_and_the_optional_feed() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("feed.db").display());
    let s = Server::start(dir.path(), &["--database", &database, "--key-cache-ttl", "1"]);
    let writer = s.printed("demo API key (write:users):");
    let machine = s.printed("demo M2M token (write:users):");
    let session = s.printed("dev session token (1 hour):");
    let oauth = s.printed("dev OAuth token (write:users):");

    for (token, token_type) in [
        (&writer, "api_key"),
        (&machine, "m2m_token"),
        (&session, "session_token"),
        (&oauth, "oauth_token"),
    ] {
        let r = get(&s, "/api/me", Some(token)).await;
        assert_eq!(
            (r.status, r.body["tokenType"].as_str()),
            (200, Some(token_type)),
            "{:?}",
            r.body
        );
        for field in ["userId", "orgId", "subject", "scopes", "claims"] {
            assert!(r.body.get(field).is_some(), "{token_type}: {field} in {:?}", r.body);
        }
    }
    let r = get(&s, "/api/me", Some(&session)).await;
    assert_eq!(
        (r.body["userId"].as_str(), r.body["orgId"].as_str()),
        (Some("user_demo"), Some("org_demo"))
    );
    assert_eq!(r.body["scopes"], json!([]));
    assert_eq!(
        get(&s, "/api/me", Some(&writer)).await.body["scopes"],
        json!(["write:users"])
    );
    assert_eq!(get(&s, "/api/me", None).await.status, 401);

    let r = get(&s, "/api/feed", None).await;
    assert_eq!((r.status, &r.body), (200, &json!({"personalized": false})));
    for token in [&session, &writer] {
        let r = get(&s, "/api/feed", Some(token)).await;
        assert_eq!(
            (r.status, &r.body),
            (200, &json!({"personalized": true, "userId": "user_demo"}))
        );
    }

    let dev = Signer::from_private_pem(
        std::fs::read_to_string(dir.path().join("tokengate-dev-key.pem")).unwrap(),
        "tokengate-dev",
    );
    let expired = dev.sign(
        "JWT",
        &json!({"iss": "https://tokengate.dev.invalid", "sub": "user_demo", "sid": "s", "iat": now() - 7200, "exp": now() - 3600}),
    );
    let forged = Signer::generate("tokengate-dev").sign(
        "JWT",
        &json!({"iss": "https://tokengate.dev.invalid", "sub": "user_demo", "sid": "s", "iat": now(), "exp": now() + 600}),
    );
    let (id, revoked) = create_key(&database, "user_gone", &[]);
    assert_eq!(get(&s, "/api/feed", Some(&revoked)).await.status, 200);
    let (code, _, err) = cli(&["keys", "revoke", &id, "--database", &database], None);
    assert_eq!(code, 0, "{err}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (token, why) in [
        ("garbage".to_owned(), "malformed-token"),
        (tampered(&session), "bad-signature"),
        (forged, "bad-signature"),
        (expired, "token-expired"),
        (revoked, "token-revoked"),
        (oauth.clone(), "token-type-mismatch"),
        (machine.clone(), "token-type-mismatch"),
    ] {
        let r = get(&s, "/api/feed", Some(&token)).await;
        assert_eq!(r.status, 401, "{why}: {:?}", r.body);
        assert!(r.body.get("personalized").is_none(), "{why}: never served as anonymous");
        if why != "bad-signature" {
            assert_eq!(reason(&r), why);
        }
    }
    let basic = reqwest::Client::new()
        .get(format!("{}/api/feed", s.base))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(
        basic.status().as_u16(),
        401,
        "another scheme is a credential, not anonymous"
    );
}

/// Clerk's reverification refusal, exactly.
fn assert_reverification(r: &Reply, preset: &str) {
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({"clerk_error":{"type":"forbidden","reason":"reverification-error","metadata":{"reverification":preset}}})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn development_mode_session_requirements_and_step_up() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("e2e.db").display());
    let s = Server::start(dir.path(), &["--database", &database]);
    let session = s.printed("dev session token (1 hour):");
    let plain = s.printed("dev session token (plain):");
    let oauth = s.printed("dev OAuth token (write:users):");
    let password = s.printed("dev OAuth token (password):");
    let reader = s.printed("demo API key (no scopes):");
    for path in [
        "/api/org/members",
        "/api/invoices",
        "/api/exports",
        "/api/analytics",
        "/api/account",
        "/api/payouts",
    ] {
        assert!(
            s.lines.iter().any(|l| l.contains("curl") && l.contains(path)),
            "a curl line for {path}"
        );
    }

    // The printed session token passes every session route; the Auth comes back as JSON.
    let routes = [
        (reqwest::Method::GET, "/api/org/members"),
        (reqwest::Method::GET, "/api/invoices"),
        (reqwest::Method::GET, "/api/exports"),
        (reqwest::Method::GET, "/api/analytics"),
        (reqwest::Method::DELETE, "/api/account"),
        (reqwest::Method::POST, "/api/payouts"),
    ];
    for (method, path) in &routes {
        let r = call(method.clone(), format!("{}{path}", s.base), Some(&session)).await;
        assert_eq!(r.status, 200, "{method} {path}: {:?}", r.body);
        assert_eq!(
            (r.body["userId"].as_str(), r.body["tokenType"].as_str()),
            (Some("user_demo"), Some("session_token"))
        );
        assert_eq!(r.body["orgRole"], "org:admin");
        // The other token types are not accepted there (API keys: none of these routes).
        let r = call(method.clone(), format!("{}{path}", s.base), Some(&reader)).await;
        assert_eq!((r.status, reason(&r)), (401, "token-type-mismatch"), "{path}");
    }

    // The plain session token: each requirement refuses it, naming what is missing.
    let r = get(&s, "/api/org/members", Some(&plain)).await;
    assert_eq!((r.status, reason(&r)), (403, "no-active-organization"));
    let r = get(&s, "/api/invoices", Some(&plain)).await;
    assert_eq!((r.status, reason(&r)), (403, "no-active-organization"));
    let r = get(&s, "/api/exports", Some(&plain)).await;
    assert_eq!(
        (r.status, reason(&r), r.body["missing_features"].clone()),
        (403, "missing-feature", json!(["exports"]))
    );
    let r = get(&s, "/api/analytics", Some(&plain)).await;
    assert_eq!(
        (r.status, reason(&r), r.body["missing_plans"].clone()),
        (403, "missing-plan", json!(["o:pro"]))
    );
    assert_reverification(&delete(&s, "/api/account", Some(&plain)).await, "strict");
    assert_reverification(&post(&s, "/api/payouts", Some(&plain)).await, "strict_mfa");

    // Tokens signed with the development key: v2 organization claims, stale factors.
    let dev_key = std::fs::read_to_string(dir.path().join("tokengate-dev-key.pem")).unwrap();
    let dev = Signer::from_private_pem(dev_key, "tokengate-dev");
    let session_with = |extra: Value| {
        let mut claims = json!({"sub": "user_demo", "sid": "s", "iat": now(), "exp": now() + 60});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        dev.sign("JWT", &claims)
    };
    let member = session_with(
        json!({"v": 2, "fea": "o:invoices", "o": {"id": "org_1", "rol": "member", "per": "read", "fpm": "1"}}),
    );
    let r = get(&s, "/api/org/members", Some(&member)).await;
    assert_eq!(
        (r.status, reason(&r), r.body["missing_roles"].clone()),
        (403, "missing-role", json!(["org:admin"]))
    );
    assert_eq!(get(&s, "/api/invoices", Some(&member)).await.status, 200);
    let no_permission = session_with(json!({"org_id": "org_1", "org_role": "org:admin", "org_permissions": []}));
    let r = get(&s, "/api/invoices", Some(&no_permission)).await;
    assert_eq!((r.status, reason(&r)), (403, "missing-permission"));
    let user_plan = session_with(json!({"pla": "u:pro", "fea": "u:exports"}));
    assert_eq!(get(&s, "/api/exports", Some(&user_plan)).await.status, 200);
    assert_eq!(get(&s, "/api/analytics", Some(&user_plan)).await.status, 403);
    let second_factor_stale = session_with(json!({"fva": [0, 15]}));
    assert_reverification(&delete(&s, "/api/account", Some(&second_factor_stale)).await, "strict");
    let first_factor_stale = session_with(json!({"fva": [15, 0]}));
    assert_eq!(delete(&s, "/api/account", Some(&first_factor_stale)).await.status, 200);
    assert_reverification(&post(&s, "/api/payouts", Some(&first_factor_stale)).await, "strict_mfa");

    // OAuth tokens on POST /api/payouts: RFC 9470 step-up.
    let r = post(&s, "/api/payouts", Some(&oauth)).await;
    assert_eq!(
        (r.status, r.body["tokenType"].as_str()),
        (200, Some("oauth_token")),
        "{:?}",
        r.body
    );
    let r = post(&s, "/api/payouts", Some(&password)).await;
    assert_eq!((r.status, reason(&r)), (401, "insufficient-user-authentication"));
    let challenge = r.challenge.unwrap();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\"")
            && challenge.ends_with("acr_values=\"mfa\", max_age=600"),
        "{challenge}"
    );
    let old = dev.sign(
        "at+jwt",
        &json!({"iss": "https://tokengate.dev.invalid", "aud": "tokengate-example", "sub": "user_demo",
                "client_id": "c", "jti": "old", "iat": now(), "exp": now() + 60, "acr": "mfa", "auth_time": now() - 700}),
    );
    let r = post(&s, "/api/payouts", Some(&old)).await;
    assert_eq!(r.status, 401);
    assert!(r.challenge.unwrap().contains("more recent authentication is required"));
    // OAuth tokens are not accepted by the session-only routes.
    let r = get(&s, "/api/exports", Some(&oauth)).await;
    assert_eq!((r.status, reason(&r)), (401, "token-type-mismatch"));
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_issuers_on_a_loopback_jwks() {
    let signer = Signer::generate("test-key-1");
    let stranger = Signer::generate("test-key-1");
    let jwks_url = serve_jwks(signer.jwks()).await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("e2e.db").display());
    let s = Server::start(
        dir.path(),
        &[
            "--database",
            &database,
            "--session-jwks-url",
            &jwks_url,
            "--authorized-party",
            "https://app.example",
            "--session-issuer",
            "https://clerk.example",
            "--session-issuer",
            "https://clerk.other.example",
            "--oauth-jwks-url",
            &jwks_url,
            "--oauth-issuer-name",
            "https://issuer.example",
            "--oauth-audience",
            "api://tokengate-example",
        ],
    );
    assert!(
        !s.lines.iter().any(|l| l.contains("DEVELOPMENT MODE")),
        "no development key when keys are configured"
    );

    let t = now();
    let session = |azp: &str| {
        json!({"iss": "https://clerk.example", "sub": "user_9", "sid": "sess_9", "azp": azp,
               "iat": t, "nbf": t, "exp": t + 600})
    };
    let r = post(
        &s,
        "/api/example",
        Some(&signer.sign("JWT", &session("https://app.example"))),
    )
    .await;
    assert_eq!((r.status, r.body["data"].clone()), (200, json!([])));
    let r = post(
        &s,
        "/api/example",
        Some(&signer.sign("JWT", &session("https://evil.example"))),
    )
    .await;
    assert_eq!((r.status, reason(&r)), (401, "wrong-authorized-party"));
    let r = post(
        &s,
        "/api/example",
        Some(&stranger.sign("JWT", &session("https://app.example"))),
    )
    .await;
    assert_eq!((r.status, reason(&r)), (401, "bad-signature"));
    session_issuers_and_sid(&s, &signer, &session("https://app.example")).await;

    let access = |scope: &str, exp: i64| {
        json!({"iss": "https://issuer.example", "aud": "api://tokengate-example", "sub": "user_9",
               "client_id": "client_1", "scope": scope, "iat": t - 10, "exp": exp, "jti": format!("j{exp}{scope}")})
    };
    let oauth = signer.sign("at+jwt", &access("write:users read:users", t + 600));
    assert_eq!(delete(&s, "/api/users/user_nobody", Some(&oauth)).await.status, 404);
    assert_eq!(post(&s, "/api/example", Some(&oauth)).await.status, 200);
    let weak = signer.sign("at+jwt", &access("read:users", t + 600));
    let r = delete(&s, "/api/users/user_nobody", Some(&weak)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["missing_scopes"], json!(["write:users"]));
    let expired = signer.sign("at+jwt", &access("write:users", t - 60));
    let r = delete(&s, "/api/users/user_nobody", Some(&expired)).await;
    assert_eq!((r.status, reason(&r)), (401, "token-expired"));

    // Keys from the CLI work in this mode too.
    let (_, secret) = create_key(&database, "user_9", &[]);
    assert_eq!(get(&s, "/api/example", Some(&secret)).await.status, 200);
    assert_eq!(post(&s, "/api/example", Some(&secret)).await.status, 403);
}

/// Development mode: the RFC 9728 document at the root (the resource is the server's URL), its
/// scopes the report's, and every 401 and 403 pointing at it.
#[tokio::test(flavor = "multi_thread")]
async fn resource_metadata_in_development_mode() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("e2e.db").display());
    let s = Server::start(dir.path(), &["--database", &database]);
    let r = get(&s, "/.well-known/oauth-protected-resource", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"resource": s.base, "authorization_servers": ["https://tokengate.dev.invalid"],
               "scopes_supported": ["write:users"], "bearer_methods_supported": ["header"],
               "resource_name": "tokengate example API",
               // DPoP is checked (its algorithms), required by one route only; a route
               // requires certificate-bound tokens.
               "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "RS256", "PS256"],
               "dpop_bound_access_tokens_required": false,
               "tls_client_certificate_bound_access_tokens": true})
    );
    let pointer = format!("resource_metadata=\"{}/.well-known/oauth-protected-resource\"", s.base);
    let missing = get(&s, "/api/example", None).await.challenge.unwrap();
    assert_eq!(missing, format!("Bearer realm=\"tokengate-example\", {pointer}"));
    let reader = s.printed("demo API key (no scopes):");
    let r = post(&s, "/api/example", Some(&reader)).await;
    assert_eq!(r.status, 403);
    let challenge = r.challenge.unwrap();
    assert!(
        challenge.contains(&pointer) && challenge.ends_with("scope=\"write:users\""),
        "{challenge}"
    );
    // A development OAuth token for this resource passes as well as the printed ones.
    let dev_key = std::fs::read_to_string(dir.path().join("tokengate-dev-key.pem")).unwrap();
    let dev = Signer::from_private_pem(dev_key, "tokengate-dev");
    let t = now();
    let token = dev.sign(
        "at+jwt",
        &json!({"iss": "https://tokengate.dev.invalid", "aud": s.base, "sub": "user_demo", "client_id": "c",
                "scope": "write:users", "iat": t, "exp": t + 600, "jti": "resource"}),
    );
    assert_eq!(post(&s, "/api/example", Some(&token)).await.status, 200);
}

/// Two authorization servers (one by discovery, one by JWKS URL), no `--oauth-audience`:
/// each token is verified with its own issuer's keys, for the audience `--resource-url`; an
/// unknown issuer costs no fetch; the metadata lists both servers.
#[tokio::test(flavor = "multi_thread")]
async fn several_oauth_issuers_and_the_resource_as_audience() {
    use std::sync::atomic::Ordering;
    let (a, b) = (Signer::generate("key-a"), Signer::generate("key-b"));
    let (issuer_a, hits_a) = serve_issuer(a.jwks()).await;
    let (issuer_b, hits_b) = serve_issuer(b.jwks()).await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("e2e.db").display());
    let session_jwks = serve_jwks(a.jwks()).await;
    let jwks_b = format!("{issuer_b}/jwks");
    let resource = "https://api.example/v1";
    let s = Server::start(
        dir.path(),
        &[
            "--database",
            &database,
            "--session-jwks-url",
            &session_jwks,
            "--oauth-issuer",
            &issuer_a,
            "--oauth-jwks-url",
            &jwks_b,
            "--oauth-issuer-name",
            &issuer_b,
            "--resource-url",
            resource,
        ],
    );
    let t = now();
    let access = |iss: &str, aud: &str| {
        json!({"iss": iss, "aud": aud, "sub": "user_9", "client_id": "c", "scope": "write:users",
               "iat": t - 10, "exp": t + 600, "jti": format!("{iss}{aud}")})
    };
    for (signer, iss) in [(&a, &issuer_a), (&b, &issuer_b)] {
        let r = post(&s, "/api/example", Some(&signer.sign("at+jwt", &access(iss, resource)))).await;
        assert_eq!(r.status, 200, "{iss}: {:?}", r.body);
    }
    // A's key cannot speak for B: the token goes to B's keys, where A's `kid` is unknown.
    let r = post(
        &s,
        "/api/example",
        Some(&a.sign("at+jwt", &access(&issuer_b, resource))),
    )
    .await;
    assert_eq!((r.status, reason(&r)), (401, "unknown-key"));
    let r = post(
        &s,
        "/api/example",
        Some(&a.sign("at+jwt", &access(&issuer_a, "https://other.example"))),
    )
    .await;
    assert_eq!((r.status, reason(&r)), (401, "wrong-audience"));
    let fetched = (hits_a.load(Ordering::SeqCst), hits_b.load(Ordering::SeqCst));
    let r = post(
        &s,
        "/api/example",
        Some(&a.sign("at+jwt", &access("https://evil.example", resource))),
    )
    .await;
    assert_eq!((r.status, reason(&r)), (401, "wrong-issuer"));
    assert_eq!((hits_a.load(Ordering::SeqCst), hits_b.load(Ordering::SeqCst)), fetched);
    let challenge = r.challenge.unwrap();
    let metadata_url = "https://api.example/.well-known/oauth-protected-resource/v1";
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let document = get(&s, "/.well-known/oauth-protected-resource/v1", None).await.body;
    assert_eq!(document["resource"], resource);
    assert_eq!(document["authorization_servers"], json!([issuer_a, issuer_b]));
    assert_eq!(document["scopes_supported"], json!(["write:users"]));
}

/// `--session-issuer` was given twice: either issuer passes, another or none is refused; and
/// a session needs its `sid`.
async fn session_issuers_and_sid(s: &Server, signer: &Signer, session: &Value) {
    let mut other = session.clone();
    other["iss"] = json!("https://clerk.other.example");
    let r = post(s, "/api/example", Some(&signer.sign("JWT", &other))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for (claim, value, expected) in [
        ("iss", json!("https://clerk.evil.example"), "wrong-issuer"),
        ("iss", Value::Null, "wrong-issuer"),
        ("sid", Value::Null, "missing-session-id"),
    ] {
        let mut claims = session.clone();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(claim);
        } else {
            claims[claim] = value;
        }
        let r = post(s, "/api/example", Some(&signer.sign("JWT", &claims))).await;
        assert_eq!((r.status, reason(&r)), (401, expected), "{claim}");
    }
}

fn run_example(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(example_bin())
        .args(args)
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn mistakes_in_flags_fail_at_start_up_with_one_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--no-such-flag"], "--no-such-flag"),
        (
            &["--session-public-key", "/nonexistent/key.pem", "--addr", "127.0.0.1:0"],
            "/nonexistent/key.pem",
        ),
        (
            &["--session-public-key", "a.pem", "--session-jwks-url", "https://x/jwks"],
            "cannot be used with",
        ),
        (
            &["--oauth-introspection-url", "https://as/introspect"],
            "--oauth-client-id",
        ),
        (&["--addr", "not-an-address"], "not-an-address"),
        (
            &[
                "--authorized-party",
                "https://app.example.com/",
                "--addr",
                "127.0.0.1:0",
            ],
            "give an origin",
        ),
        (&["--key-cache-ttl", "86401", "--addr", "127.0.0.1:0"], "one day"),
        // Clerk-hosted mode verifies session tokens with Clerk's keys: a local key would be ignored.
        (
            &[
                "--clerk-secret-key",
                "sk_test_exampleSecretKey0123456789",
                "--session-public-key",
                "a.pem",
            ],
            "cannot be used with",
        ),
        (&["--format", "json"], "--policy-report"),
        (&["--policy-report", "--format", "yaml"], "markdown, json or openapi"),
        (
            &["--session-jwks-url", "http://example.com/jwks", "--addr", "127.0.0.1:0"],
            "https",
        ),
        // Nothing listens on port 9 of loopback: discovery fails at start-up, not per request.
        (
            &[
                "--oauth-issuer",
                "http://127.0.0.1:9",
                "--oauth-audience",
                "api://x",
                "--addr",
                "127.0.0.1:0",
            ],
            "OAuth discovery at http://127.0.0.1:9 failed",
        ),
        (
            &["--resource-url", "https://api.example/#top", "--addr", "127.0.0.1:0"],
            "fragment",
        ),
        (
            &[
                "--session-issuer",
                " https://clerk.example.com",
                "--addr",
                "127.0.0.1:0",
            ],
            "--session-issuer",
        ),
        // The secret key would cross the network in cleartext.
        (
            &[
                "--clerk-secret-key",
                "sk_test_exampleSecretKey0123456789",
                "--clerk-api-url",
                "http://api.clerk.example",
                "--addr",
                "127.0.0.1:0",
            ],
            "uses plain http to a host that is not loopback",
        ),
    ];
    for (args, expected) in cases {
        let (code, _, err) = run_example(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?} printed more than one line:\n{err}");
        assert!(lines[0].contains(expected), "{args:?}: {err}");
        assert!(!lines[0].contains("For more information"), "{args:?}: {err}");
        assert!(
            !err.contains("exampleSecretKey"),
            "{args:?} repeated a secret key: {err}"
        );
    }
}

/// `--clerk-jwt-key` takes the PEM text or a file's path; a value it cannot use is refused in
/// one line that does not repeat it (it may be a private key pasted by mistake).
#[test]
fn a_clerk_jwt_key_it_cannot_use_is_not_repeated() {
    let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("notes.txt");
    std::fs::write(&not_pem, body).unwrap();
    let not_pem = not_pem.to_str().unwrap();
    for (value, expected) in [
        (pem.as_str(), "--clerk-jwt-key"),
        (body, "neither PEM text"),
        (not_pem, "holds no PEM block"),
    ] {
        let (code, _, err) = run_example(&[
            "--clerk-secret-key",
            "sk_test_exampleSecretKey0123456789",
            "--clerk-jwt-key",
            value,
            "--addr",
            "127.0.0.1:0",
        ]);
        assert_eq!(code, 2, "{err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(expected), "{err}");
        assert!(!err.contains(body), "{err}");
    }
}

#[test]
fn policy_report_lists_every_route_without_starting_anything() {
    let (code, out, err) = run_example(&["--policy-report", "--format", "json", "--deny-unguarded"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let rows: Vec<(String, String, String)> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().into(),
                r["path"].as_str().unwrap().into(),
                r["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = |m: &str, p: &str, st: &str| (m.to_owned(), p.to_owned(), st.to_owned());
    assert_eq!(
        rows,
        vec![
            expect("GET", "/api/example", "guarded"),
            expect("POST", "/api/example", "guarded"),
            expect("DELETE", "/api/users/{id}", "guarded"),
            expect("GET", "/api/org/members", "guarded"),
            expect("GET", "/api/invoices", "guarded"),
            expect("GET", "/api/exports", "guarded"),
            expect("GET", "/api/analytics", "guarded"),
            expect("DELETE", "/api/account", "guarded"),
            expect("POST", "/api/payouts", "guarded"),
            expect("GET", "/api/search", "guarded"),
            expect("GET", "/api/me", "guarded"),
            expect("GET", "/api/feed", "guarded"),
            expect("POST", "/api/transfers", "guarded"),
            expect("POST", "/api/settlements", "guarded"),
            expect("GET", "/health", "public"),
            expect("POST", "/github/secret-scanning", "public"),
            expect("GET", "/.well-known/oauth-protected-resource", "public"),
        ]
    );
    assert_eq!(report["routes"][1]["requirements"][0]["applies_to"], json!(["api_key"]));
    // Optional authentication shows as such: `/api/feed` admits anonymous callers, `/api/me` not.
    assert_eq!(report["routes"][11]["optional"], json!(true));
    assert_eq!(report["routes"][10]["optional"], json!(false));
    let requirement = |route: usize, i: usize| {
        let q = &report["routes"][route]["requirements"][i];
        (
            q["kind"].as_str().unwrap().to_owned(),
            q["values"].clone(),
            q["applies_to"].clone(),
        )
    };
    let sessions = json!(["session_token"]);
    assert_eq!(
        requirement(5, 0),
        ("feature".into(), json!(["exports"]), sessions.clone())
    );
    assert_eq!(requirement(6, 0), ("plan".into(), json!(["o:pro"]), sessions.clone()));
    assert_eq!(
        requirement(7, 0),
        ("reverification".into(), json!(["strict"]), sessions.clone())
    );
    assert_eq!(
        requirement(8, 0),
        ("reverification".into(), json!(["strict_mfa"]), sessions)
    );
    assert_eq!(
        requirement(8, 1),
        ("acr".into(), json!(["mfa"]), json!(["oauth_token"]))
    );
    assert_eq!(
        requirement(8, 2),
        ("max_age".into(), json!(["600"]), json!(["oauth_token"]))
    );
    assert!(
        report["routes"][0]["source"]["file"]
            .as_str()
            .unwrap()
            .ends_with("api_server/main.rs")
    );

    let (code, out, _) = run_example(&["--policy-report"]);
    assert_eq!(code, 0);
    assert!(out.contains("| DELETE | `/api/users/{id}` | guarded |"), "{out}");
    let feed = out.lines().find(|l| l.contains("`/api/feed`")).unwrap();
    assert!(feed.contains("or none (optional)"), "{feed}");
    assert!(
        out.contains("reverification `strict_mfa` (for session_token); acr `mfa` (for oauth_token); authentication at most 600 s old (for oauth_token)"),
        "{out}"
    );
    let (code, out, _) = run_example(&["--policy-report", "--format", "openapi"]);
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["paths"]["/api/example"]["post"]["security"][2],
        json!({"api_key": ["write:users"]})
    );
    let payouts = &doc["paths"]["/api/payouts"]["post"];
    assert_eq!(payouts["security"], json!([{"session_token": []}, {"oauth_token": []}]));
    let description = payouts["description"].as_str().unwrap();
    assert!(
        description.starts_with("Requires reverification `strict_mfa` (for session_token)"),
        "{description}"
    );
    assert!(
        description.contains("insufficient_user_authentication") && description.contains("reverification-error"),
        "{description}"
    );
    let exports = doc["paths"]["/api/exports"]["get"]["description"].as_str().unwrap();
    assert_eq!(exports, "Requires feature `exports` (for session_token).");
    // Nothing was created in the working directory: no database, no key.
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(example_bin())
        .arg("--policy-report")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(status.status.success());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A minimal stand-in for Clerk's Backend API on loopback, to the excerpted spec: the JWKS
/// (with the secret key) and the API-key and M2M verify endpoints.
async fn serve_clerk(secret: &'static str, jwks: Value) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let authorized = move |h: &HeaderMap| {
        h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {secret}"))
            && h.get("clerk-api-version").is_some()
    };
    let counted = calls.clone();
    let verify_key = move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if !authorized(&headers) {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"errors": [{"message": "bad key", "code": "unauthorized"}]})),
                );
            }
            if body["secret"] != "ak_clerkIssuedKey0123456789abcdefghij" {
                return (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"errors": [{"message": "not found", "code": "not_found"}]})),
                );
            }
            let now = now() * 1000;
            (
                StatusCode::OK,
                axum::Json(json!({
                    "object": "api_key", "id": "ak_2abc", "type": "api_key", "subject": "user_clerk",
                    "name": "ci", "description": null, "claims": {"plan": "pro"}, "scopes": ["write:users"],
                    "revoked": false, "revocation_reason": null, "expired": false, "expiration": null,
                    "created_by": "user_clerk", "last_used_at": null, "created_at": now, "updated_at": now
                })),
            )
        }
    };
    let app = axum::Router::new()
        .route(
            "/v1/jwks",
            axum::routing::get(move |headers: HeaderMap| async move {
                if authorized(&headers) {
                    (StatusCode::OK, axum::Json(jwks))
                } else {
                    (StatusCode::UNAUTHORIZED, axum::Json(json!({"errors": []})))
                }
            }),
        )
        .route("/api_keys/verify", axum::routing::post(verify_key));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), calls)
}

#[tokio::test(flavor = "multi_thread")]
async fn clerk_hosted_mode_verifies_sessions_and_api_keys_with_clerk() {
    const SECRET: &str = "sk_test_exampleSecretKey0123456789";
    let signer = Signer::generate("ins_clerk_1");
    let (api, calls) = serve_clerk(SECRET, signer.jwks()).await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("e2e.db").display());
    let s = Server::start(
        dir.path(),
        &[
            "--database",
            &database,
            "--clerk-secret-key",
            SECRET,
            "--clerk-api-url",
            &api,
        ],
    );
    assert!(s.lines.iter().any(|l| l.contains("Clerk-hosted mode")), "{:?}", s.lines);

    // A session token signed with the instance key, fetched from GET /v1/jwks with the secret key.
    let t = now();
    let session = signer.sign(
        "JWT",
        &json!({"sub": "user_clerk", "sid": "sess_1", "iat": t, "nbf": t, "exp": t + 600}),
    );
    let r = post(&s, "/api/example", Some(&session)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // An API key issued by Clerk, verified by the Backend API, then served from the cache.
    let key = "ak_clerkIssuedKey0123456789abcdefghij";
    for _ in 0..3 {
        let r = get(&s, "/api/example", Some(key)).await;
        assert_eq!(
            (r.status, r.body["userId"].as_str()),
            (200, Some("user_clerk")),
            "{:?}",
            r.body
        );
    }
    assert_eq!(r_calls(&calls), 1, "verified once, then cached");
    assert_eq!(
        post(&s, "/api/example", Some(key)).await.status,
        200,
        "the key carries write:users"
    );
    let r = get(&s, "/api/example", Some("ak_unknownKey0123456789abcdefghijkl")).await;
    assert_eq!((r.status, reason(&r)), (401, "unknown-token"));
    // A string that cannot be a Clerk key never reaches the API.
    let before = r_calls(&calls);
    let r = get(&s, "/api/example", Some("ak_x")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r_calls(&calls), before);
}

fn r_calls(calls: &std::sync::atomic::AtomicUsize) -> usize {
    calls.load(std::sync::atomic::Ordering::SeqCst)
}

/// `--metrics-addr`: Prometheus text at `/metrics` counting what the server decided, on its
/// own port; no metrics endpoint without the flag.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_addr_serves_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--metrics-addr", "127.0.0.1:0"]);
    let metrics = s.printed("metrics:");
    assert!(
        metrics.starts_with("http://127.0.0.1:") && metrics.ends_with("/metrics"),
        "{metrics}"
    );
    let writer = s.printed("demo API key (write:users):");
    assert_eq!(s.status_with(&writer).await, 200);
    assert_eq!(s.status_with(&writer).await, 200);
    assert_eq!(s.get("/api/example", None).await.0, 401);
    let response = reqwest::get(&metrics).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "Prometheus's text format"
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"tokengate_decisions_total{route="api_server::get_example",token_type="api_key",outcome="allowed",reason="ok"} 2"#,
        r#"tokengate_decisions_total{route="api_server::get_example",token_type="none",outcome="refused",reason="missing-credentials"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(text.contains("# HELP tokengate_decisions_total"), "{text}");
    assert!(!text.contains(&writer), "no secret in the metrics");

    let other = tempfile::tempdir().unwrap();
    let plain = Server::start(other.path(), &[]);
    assert!(!plain.lines.iter().any(|l| l.starts_with("metrics:")), "off by default");
}

/// A port another process holds: one line that says so and what to do.
#[test]
fn a_port_in_use_is_one_line_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run_example(&["--addr", &addr]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("another process listens there: choose another --addr"),
        "{err}"
    );
}
