//! A loopback double of GitHub's meta API for secret scanning, built to GitHub's documentation
//! (`GET /meta/public_keys/secret_scanning` → `{"public_keys": [{"key_identifier", "key",
//! "is_current"}]}`; a `User-Agent` required), with a real P-256 key that signs report bodies
//! as GitHub does (`Github-Public-Key-Identifier`, `Github-Public-Key-Signature`: base64 ASN.1
//! ECDSA over the raw body).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

pub const KEY_ID: &str = "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c";

/// GitHub's meta API on loopback: one signing key, and how many times it was asked.
pub struct GitHub {
    pub url: String,
    signer: EcdsaKeyPair,
    pub fetches: Arc<AtomicUsize>,
}

impl GitHub {
    pub async fn start() -> GitHub {
        let signer = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let der = signer.public_key().as_der().unwrap();
        let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_ref().to_vec()));
        let body = json!({"public_keys": [
            {"key_identifier": "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a", "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "is_current": false},
            {"key_identifier": KEY_ID, "key": pem, "is_current": true},
        ]});
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&fetches);
        let app = axum::Router::new().route(
            "/meta/public_keys/secret_scanning",
            axum::routing::get(move |headers: HeaderMap| {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                async move {
                    // GitHub's API refuses requests without a User-Agent.
                    if headers.get(http::header::USER_AGENT).is_none() {
                        return (StatusCode::FORBIDDEN, axum::Json(json!({"message": "no user agent"})));
                    }
                    (StatusCode::OK, axum::Json(body))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        GitHub {
            url: format!("http://{addr}/meta/public_keys/secret_scanning"),
            signer,
            fetches,
        }
    }

    pub fn headers(&self, key_id: &str, body: &[u8]) -> HeaderMap {
        let signature = self.signer.sign(&SystemRandom::new(), body).unwrap();
        let signature = base64::engine::general_purpose::STANDARD.encode(signature.as_ref());
        let mut headers = HeaderMap::new();
        headers.insert("github-public-key-identifier", HeaderValue::from_str(key_id).unwrap());
        headers.insert(
            "github-public-key-signature",
            HeaderValue::from_str(&signature).unwrap(),
        );
        headers
    }
}
