//! Sender-constrained tokens end to end: routes declared with `#[require_dpop]` and
//! `#[require_mtls]`, served on loopback (plain HTTP, HTTPS with client certificates from
//! `tokengate::binding::tls`, and behind a "proxy" header), called with reqwest. Real keys
//! throughout: RS256 access tokens, ES256 DPoP proofs, certificates made by rcgen. The
//! introspection endpoint is a test double built to RFC 7662 (it answers `cnf` as an
//! authorization server does for a bound token).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokengate::binding::mtls::ClientCertHeaderLayer;
use tokengate::binding::proof::DpopKey;
use tokengate::binding::{DpopConfig, DpopVerifier};
use tokengate::introspection::{IntrospectionConfig, IntrospectionVerifier};
use tokengate::{Auth, TokenGate, TokenType, accepts_token, require_dpop, require_mtls};

use support::pki::{Pki, pki, x5t};
use support::{oauth_claims, oauth_token, oauth_verifier};

/// `POST /api/transfers`: OAuth tokens, DPoP-bound.
#[accepts_token(oauth_token)]
#[require_dpop]
async fn transfers(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `POST /api/settlements`: OAuth tokens, certificate-bound.
#[accepts_token(oauth_token)]
#[require_mtls]
async fn settlements(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// `GET /api/plain`: OAuth tokens, no binding required (a bound token is still checked).
#[accepts_token(oauth_token)]
async fn plain(auth: Auth) -> Json<Auth> {
    Json(auth)
}

fn app(gate: TokenGate) -> axum::Router {
    axum::Router::new()
        .route("/api/transfers", post(transfers))
        .route("/api/settlements", post(settlements))
        .route("/api/plain", get(plain))
        .with_state(gate)
}

/// A loopback listener and the base URL clients call.
async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

fn serve_http(listener: tokio::net::TcpListener, app: axum::Router) {
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
}

/// A gate with the OAuth verifier of `support` and DPoP proofs for `base`.
fn gate(base: &str, nonces: bool) -> TokenGate {
    let mut config = DpopConfig::new(base).unwrap();
    if nonces {
        config = config.nonces(&[42; 32], Duration::from_secs(300)).unwrap();
    }
    TokenGate::builder()
        .verifier(TokenType::OAuthToken, Arc::new(oauth_verifier()))
        .dpop(DpopVerifier::new(config))
        .build()
        .unwrap()
}

/// A server on loopback with the DPoP gate; its base URL.
async fn dpop_server(nonces: bool) -> String {
    let (listener, base) = listener().await;
    serve_http(listener, app(gate(&base, nonces)));
    base
}

struct Reply {
    status: u16,
    body: Value,
    challenges: Vec<String>,
    nonce: Option<String>,
}

impl Reply {
    fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or_default()
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    authorization: Option<String>,
    proof: Option<String>,
) -> Reply {
    let mut request = client.request(method, url).timeout(Duration::from_secs(10));
    let token = authorization
        .as_deref()
        .and_then(|a| a.split_once(' '))
        .map(|(_, token)| token.to_owned());
    let proof_sent = proof.clone();
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenges: Vec<String> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let nonce = response
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    if status != 200 {
        // A refusal never echoes the credentials: neither the token nor the proof.
        for secret in [&token, &proof_sent].into_iter().flatten() {
            assert!(!text.contains(secret.as_str()), "a refusal echoed a credential: {text}");
            assert!(challenges.iter().all(|c| !c.contains(secret.as_str())));
        }
    }
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        challenges,
        nonce,
    }
}

/// A DPoP call: `DPoP <token>` with a fresh proof of `key` for `method` `url`.
async fn dpop_call(key: &DpopKey, method: reqwest::Method, url: &str, token: &str) -> Reply {
    let proof = key.proof(method.as_str(), url, Some(token), None).unwrap();
    call(
        &reqwest::Client::new(),
        method,
        url,
        Some(format!("DPoP {token}")),
        Some(proof),
    )
    .await
}

fn bound_to(key: &DpopKey, user: &str) -> String {
    oauth_token(&oauth_claims(user, json!({"cnf": {"jkt": key.thumbprint()}})))
}

#[tokio::test]
async fn a_dpop_bound_token_with_its_proof_passes_once() {
    let base = dpop_server(false).await;
    let key = DpopKey::generate().unwrap();
    let token = bound_to(&key, "user_alice");
    let url = format!("{base}/api/transfers");
    let ok = dpop_call(&key, reqwest::Method::POST, &url, &token).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["subject"], "user_alice");
    assert_eq!(ok.body["claims"]["cnf"]["jkt"], key.thumbprint());
    // On a route that requires nothing, the bound token is accepted with its proof too.
    let plain = dpop_call(&key, reqwest::Method::GET, &format!("{base}/api/plain"), &token).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    // The same proof again: a replay.
    let proof = key.proof("POST", &url, Some(&token), None).unwrap();
    let client = reqwest::Client::new();
    let first = call(
        &client,
        reqwest::Method::POST,
        &url,
        Some(format!("DPoP {token}")),
        Some(proof.clone()),
    )
    .await;
    assert_eq!(first.status, 200);
    let replay = call(
        &client,
        reqwest::Method::POST,
        &url,
        Some(format!("DPoP {token}")),
        Some(proof),
    )
    .await;
    assert_eq!((replay.status, replay.reason()), (401, "dpop-proof-replayed"));
    assert!(
        replay.challenges[0].starts_with("DPoP realm=\"api\", error=\"invalid_dpop_proof\""),
        "{:?}",
        replay.challenges
    );
}

#[tokio::test]
async fn a_bound_token_is_never_a_bearer_token_on_any_route() {
    let base = dpop_server(false).await;
    let key = DpopKey::generate().unwrap();
    let dpop_bound = bound_to(&key, "user_alice");
    let cert_bound = oauth_token(&oauth_claims(
        "user_bob",
        json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
    ));
    let client = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::GET, "/api/plain"),
        (reqwest::Method::POST, "/api/transfers"),
    ] {
        let url = format!("{base}{path}");
        // Even with a valid proof beside it: the scheme says bearer.
        let proof = key.proof(method.as_str(), &url, Some(&dpop_bound), None).unwrap();
        let reply = call(
            &client,
            method.clone(),
            &url,
            Some(format!("Bearer {dpop_bound}")),
            Some(proof),
        )
        .await;
        assert_eq!(
            (reply.status, reply.reason()),
            (401, "dpop-bound-token-as-bearer"),
            "{path}"
        );
        let reply = call(&client, method, &url, Some(format!("Bearer {cert_bound}")), None).await;
        assert_eq!(
            (reply.status, reply.reason()),
            (401, "client-certificate-required"),
            "{path}"
        );
    }
    // A cnf this server cannot check is refused, not ignored.
    let other_binding = oauth_token(&oauth_claims("user_carol", json!({"cnf": {"kid": "key-1"}})));
    let reply = call(
        &client,
        reqwest::Method::GET,
        &format!("{base}/api/plain"),
        Some(format!("Bearer {other_binding}")),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.reason()), (401, "unsupported-confirmation"));
}

#[tokio::test]
async fn a_route_that_requires_dpop_refuses_unbound_tokens_with_a_dpop_challenge() {
    let base = dpop_server(false).await;
    let unbound = oauth_token(&oauth_claims("user_alice", json!({})));
    let client = reqwest::Client::new();
    let url = format!("{base}/api/transfers");
    let reply = call(
        &client,
        reqwest::Method::POST,
        &url,
        Some(format!("Bearer {unbound}")),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.reason()), (401, "dpop-required"));
    // The route takes DPoP only: one challenge, with the algorithms.
    assert_eq!(reply.challenges.len(), 1, "{:?}", reply.challenges);
    assert!(reply.challenges[0].starts_with("DPoP realm=\"api\", error=\"invalid_token\""));
    assert!(reply.challenges[0].ends_with("algs=\"ES256 ES384 EdDSA RS256 PS256\""));
    // Unbound, with the DPoP scheme: refused too.
    let key = DpopKey::generate().unwrap();
    let proof = key.proof("POST", &url, Some(&unbound), None).unwrap();
    let reply = call(
        &client,
        reqwest::Method::POST,
        &url,
        Some(format!("DPoP {unbound}")),
        Some(proof),
    )
    .await;
    assert_eq!((reply.status, reply.reason()), (401, "token-not-dpop-bound"));
    // A route that takes both schemes says so: a Bearer and a DPoP challenge.
    let reply = call(&client, reqwest::Method::GET, &format!("{base}/api/plain"), None, None).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.challenges,
        [
            "Bearer realm=\"api\"".to_owned(),
            "DPoP realm=\"api\", algs=\"ES256 ES384 EdDSA RS256 PS256\"".to_owned()
        ]
    );
}

#[tokio::test]
async fn proofs_for_another_request_time_or_key_are_refused() {
    let base = dpop_server(false).await;
    let key = DpopKey::generate().unwrap();
    let token = bound_to(&key, "user_alice");
    let url = format!("{base}/api/transfers");
    let client = reqwest::Client::new();
    let send = |proof: String| {
        let client = client.clone();
        let (url, token) = (url.clone(), token.clone());
        async move {
            call(
                &client,
                reqwest::Method::POST,
                &url,
                Some(format!("DPoP {token}")),
                Some(proof),
            )
            .await
        }
    };
    // Another method.
    let reply = send(key.proof("GET", &url, Some(&token), None).unwrap()).await;
    assert_eq!(reply.reason(), "dpop-proof-wrong-method");
    // Another URL: another path, and the address the proxy would see instead of the public one.
    let reply = send(
        key.proof("POST", &format!("{base}/api/settlements"), Some(&token), None)
            .unwrap(),
    )
    .await;
    assert_eq!(reply.reason(), "dpop-proof-wrong-url");
    let reply = send(
        key.proof("POST", "https://api.example.com/api/transfers", Some(&token), None)
            .unwrap(),
    )
    .await;
    assert_eq!(reply.reason(), "dpop-proof-wrong-url");
    // An old proof.
    let old = json!({"jti": "old", "htm": "POST", "htu": url, "iat": support::now() - 600,
        "ath": ath(&token)});
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()});
    let reply = send(key.sign(&header, &old).unwrap()).await;
    assert_eq!(reply.reason(), "dpop-proof-stale");
    // A thief's own key.
    let thief = DpopKey::generate().unwrap();
    let reply = send(thief.proof("POST", &url, Some(&token), None).unwrap()).await;
    assert_eq!((reply.status, reply.reason()), (401, "dpop-key-mismatch"));
    // A proof for another token of the same key.
    let other = bound_to(&key, "user_bob");
    let reply = send(key.proof("POST", &url, Some(&other), None).unwrap()).await;
    assert_eq!(reply.reason(), "dpop-proof-wrong-token-hash");
}

fn ath(token: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes()))
}

#[tokio::test]
async fn server_nonces_are_asked_for_then_accepted() {
    let base = dpop_server(true).await;
    let key = DpopKey::generate().unwrap();
    let token = bound_to(&key, "user_alice");
    let url = format!("{base}/api/transfers");
    let first = dpop_call(&key, reqwest::Method::POST, &url, &token).await;
    assert_eq!((first.status, first.reason()), (401, "use-dpop-nonce"));
    assert!(first.challenges[0].starts_with("DPoP realm=\"api\", error=\"use_dpop_nonce\""));
    let nonce = first.nonce.expect("a DPoP-Nonce header");
    let proof = key.proof("POST", &url, Some(&token), Some(&nonce)).unwrap();
    let second = call(
        &reqwest::Client::new(),
        reqwest::Method::POST,
        &url,
        Some(format!("DPoP {token}")),
        Some(proof),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.body);
}

/// An RFC 7662 endpoint that answers for one opaque token, bound to `jkt`.
async fn introspection_endpoint(jkt: String) -> String {
    let (listener, base) = listener().await;
    let app = axum::Router::new().route(
        "/introspect",
        post(move |body: String| {
            let jkt = jkt.clone();
            async move {
                let active = body.contains("token=opaque-bound-token");
                Json(if active {
                    json!({"active": true, "sub": "user_dana", "client_id": "client_1", "scope": "pay",
                        "exp": support::now() + 60, "cnf": {"jkt": jkt}})
                } else {
                    json!({"active": false})
                })
            }
        }),
    );
    serve_http(listener, app);
    format!("{base}/introspect")
}

#[tokio::test]
async fn an_introspected_token_is_bound_by_the_cnf_the_server_returns() {
    let key = DpopKey::generate().unwrap();
    let endpoint = introspection_endpoint(key.thumbprint()).await;
    let (listener, base) = listener().await;
    let introspection =
        IntrospectionVerifier::new(IntrospectionConfig::new(endpoint, "rs", "secret-of-the-rs")).unwrap();
    let gate = TokenGate::builder()
        .verifier(TokenType::OAuthToken, Arc::new(introspection))
        .opaque_oauth_tokens(true)
        .dpop(DpopVerifier::new(DpopConfig::new(&base).unwrap()))
        .build()
        .unwrap();
    serve_http(listener, app(gate));
    let url = format!("{base}/api/transfers");
    let token = "opaque-bound-token";
    let bearer = call(
        &reqwest::Client::new(),
        reqwest::Method::POST,
        &url,
        Some(format!("Bearer {token}")),
        None,
    )
    .await;
    assert_eq!((bearer.status, bearer.reason()), (401, "dpop-bound-token-as-bearer"));
    let ok = dpop_call(&key, reqwest::Method::POST, &url, token).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["subject"], "user_dana");
}

fn tls_client(pki: &Pki, identity: Option<usize>) -> reqwest::Client {
    let mut builder =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()]);
    if let Some(i) = identity {
        let (cert, key) = &pki.clients[i];
        builder = builder.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn certificate_bound_tokens_over_the_servers_own_tls() {
    let pki = pki();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let tls = tokengate::binding::tls::TlsConfig::from_pem(
        pki.server_pem.as_bytes(),
        pki.server_key_pem.as_bytes(),
        Some(pki.ca_pem.as_bytes()),
    )
    .unwrap();
    assert!(tls.asks_for_client_certificates());
    let app = app(gate(&base, false));
    tokio::spawn(tokengate::binding::tls::serve(
        listener,
        app,
        tls,
        std::future::pending(),
    ));
    let bound = oauth_token(&oauth_claims(
        "user_erin",
        json!({"cnf": {"x5t#S256": x5t(&pki.client_der[0])}}),
    ));
    let url = format!("{base}/api/settlements");
    let bearer = Some(format!("Bearer {bound}"));
    // The matching certificate.
    let ok = call(
        &tls_client(&pki, Some(0)),
        reqwest::Method::POST,
        &url,
        bearer.clone(),
        None,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["subject"], "user_erin");
    // Another certificate of the same CA.
    let other = call(
        &tls_client(&pki, Some(1)),
        reqwest::Method::POST,
        &url,
        bearer.clone(),
        None,
    )
    .await;
    assert_eq!((other.status, other.reason()), (401, "client-certificate-mismatch"));
    // No certificate.
    let none = call(&tls_client(&pki, None), reqwest::Method::POST, &url, bearer, None).await;
    assert_eq!((none.status, none.reason()), (401, "client-certificate-required"));
    // An unbound token on the route that requires the binding, with a certificate.
    let unbound = oauth_token(&oauth_claims("user_erin", json!({})));
    let reply = call(
        &tls_client(&pki, Some(0)),
        reqwest::Method::POST,
        &url,
        Some(format!("Bearer {unbound}")),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.reason()), (401, "certificate-binding-required"));
}

/// A server behind a "proxy" that forwards the client certificate in `x-client-cert`, trusted
/// from `trusted` only; requests come from 127.0.0.1.
async fn behind_proxy(trusted: IpAddr) -> String {
    let (listener, base) = listener().await;
    let app = app(gate(&base, false)).layer(ClientCertHeaderLayer::new("x-client-cert", [trusted]).unwrap());
    serve_http(listener, app);
    base
}

#[tokio::test]
async fn a_certificate_header_counts_only_from_a_trusted_proxy() {
    let pki = pki();
    let escaped =
        percent_encoding::utf8_percent_encode(&pki.clients[0].0, percent_encoding::NON_ALPHANUMERIC).to_string();
    let bound = oauth_token(&oauth_claims(
        "user_frank",
        json!({"cnf": {"x5t#S256": x5t(&pki.client_der[0])}}),
    ));
    let send = |base: String, cert: String| {
        let bound = bound.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/settlements"))
                .bearer_auth(bound)
                .header("x-client-cert", cert)
                .send()
                .await
                .unwrap()
        }
    };
    // From the trusted proxy: the forwarded certificate binds.
    let trusted = behind_proxy(IpAddr::from([127, 0, 0, 1])).await;
    assert_eq!(send(trusted.clone(), escaped.clone()).await.status(), 200);
    let other =
        percent_encoding::utf8_percent_encode(&pki.clients[1].0, percent_encoding::NON_ALPHANUMERIC).to_string();
    let mismatch: Value = send(trusted, other).await.json().await.unwrap();
    assert_eq!(mismatch["reason"], "client-certificate-mismatch");
    // From any other address, the same header is ignored: no certificate.
    let untrusted = behind_proxy(IpAddr::from([10, 9, 8, 7])).await;
    let response = send(untrusted, escaped).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "client-certificate-required");
}

#[test]
fn metadata_members_for_rfc_9728() {
    use tokengate::binding::metadata::BindingMetadata;
    use tokengate::routing::{Router, get as tg_get, post as tg_post};
    let gate = gate("https://api.example.com", false);
    let dpop_only: Router<TokenGate> = Router::new().route("/api/transfers", tg_post(transfers));
    let members = BindingMetadata::of(&gate, &dpop_only.report(), false).to_json();
    assert_eq!(
        Value::Object(members),
        json!({
            "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "RS256", "PS256"],
            "dpop_bound_access_tokens_required": true,
            "tls_client_certificate_bound_access_tokens": false,
        })
    );
    let mixed: Router<TokenGate> = Router::new()
        .route("/api/transfers", tg_post(transfers))
        .route("/api/settlements", tg_post(settlements))
        .route("/api/plain", tg_get(plain));
    let metadata = BindingMetadata::of(&gate, &mixed.report(), false);
    assert!(!metadata.dpop_bound_access_tokens_required);
    assert!(metadata.tls_client_certificate_bound_access_tokens);
}

#[tokio::test]
async fn a_group_layer_requires_dpop_and_checks_the_proof_once() {
    use tokengate::{PolicyLayer, policy};
    let (listener, base) = listener().await;
    let gate = gate(&base, false);
    let group = axum::Router::new()
        .route("/api/transfers", post(transfers))
        .route("/api/plain", get(plain))
        .layer(PolicyLayer::new(
            gate.clone(),
            policy!(accepts_token(oauth_token), require_dpop),
        ))
        .with_state(gate);
    serve_http(listener, group);
    let key = DpopKey::generate().unwrap();
    let token = bound_to(&key, "user_gina");
    // The layer checks the proof (and remembers its jti); the handler's own #[require_dpop]
    // reuses the layer's verdict instead of seeing the same proof as a replay.
    let ok = dpop_call(&key, reqwest::Method::POST, &format!("{base}/api/transfers"), &token).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // A route without its own requirement, below the layer: unbound tokens are refused there too.
    let unbound = oauth_token(&oauth_claims("user_gina", json!({})));
    let reply = call(
        &reqwest::Client::new(),
        reqwest::Method::GET,
        &format!("{base}/api/plain"),
        Some(format!("Bearer {unbound}")),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.reason()), (401, "dpop-required"));
}
