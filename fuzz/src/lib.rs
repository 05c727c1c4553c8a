//! The fuzz targets of tokengate, as plain functions over bytes: run by libFuzzer through
//! `cargo fuzz` (`fuzz_targets/*.rs`) or by the stable-Rust `fuzz-loop` binary. Each must
//! return normally for every input; a panic is a bug in the library.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, header};
use tokengate_runtime::TokenType;
use tokengate_runtime::classify::{Classifier, Prefixes};
use tokengate_runtime::extract::extract;
use tokengate_runtime::jwt::{JwtVerifier, KeySet, M2mRules, OAuthRules, SessionRules, TokenCacheConfig};

/// The names of the targets, as `fuzz-loop` and `cargo fuzz` know them.
pub const TARGETS: [&str; 4] = ["extraction", "classification", "jwt", "api_key"];

/// Runs the target called `name` on `data`; `false` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "extraction" => extraction(data),
        "classification" => classification(data),
        "jwt" => jwt(data),
        "api_key" => api_key(data),
        _ => return false,
    }
    true
}

/// Extraction: the input is split on `\n` into header values; the first byte of each chooses
/// `Authorization` (even) or `Cookie` (odd). Whatever is extracted is classified too.
pub fn extraction(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        let name = if selector % 2 == 0 {
            header::AUTHORIZATION
        } else {
            header::COOKIE
        };
        headers.append(name, value);
    }
    for session_cookie in [false, true] {
        if let Ok(Some(presented)) = extract(&headers, session_cookie) {
            let token = presented.token();
            assert!(!token.is_empty(), "an empty token was extracted");
            let _ = Classifier::default().classify(token);
        }
    }
}

/// Classification of an arbitrary string, with Clerk's prefixes and with opaque OAuth tokens.
pub fn classification(data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    let _ = Classifier::default().classify(&token);
    let _ = Classifier::new(Prefixes::default())
        .with_opaque_oauth(true)
        .classify(&token);
}

/// API key parsing: `check_secret` on an arbitrary string.
pub fn api_key(data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    let _ = tokengate_runtime::keys::check_secret(&token);
    if let Ok(kind) = tokengate_runtime::keys::check_secret(&token) {
        assert!(
            token.starts_with(kind.prefix()),
            "a secret accepted under another prefix"
        );
    }
}

struct JwtFixture {
    pair: aws_lc_rs::rsa::KeyPair,
    verifier: JwtVerifier,
    runtime: tokio::runtime::Runtime,
}

fn jwt_fixture() -> &'static JwtFixture {
    static FIXTURE: OnceLock<JwtFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("an RSA key");
        let der = pair.public_key().as_der().expect("a DER public key");
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der.as_ref())
        );
        let verifier = JwtVerifier::builder()
            .keys(KeySet::from_pem(&pem).expect("the PEM parses"))
            .session(SessionRules::new().authorized_parties(["https://app.example.com"]))
            .oauth(OAuthRules::new(
                "https://issuer.example.com",
                ["https://api.example.com"],
            ))
            .m2m(M2mRules::new().issuer("https://clerk.example.com"))
            .token_cache(TokenCacheConfig::disabled())
            .build()
            .expect("the verifier builds");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        JwtFixture {
            pair,
            verifier,
            runtime,
        }
    })
}

/// The JWT header/claims path of `JwtVerifier::verify_token` with a static RSA key.
///
/// First byte even: the rest is the token text, verified as each JWT type. First byte odd:
/// the rest is `header\npayload` JSON text, signed with the real key (RS256), so the fuzzer
/// reaches the claims checks behind the signature.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = jwt_fixture();
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let mut parts = rest.splitn(2, |b| *b == b'\n');
        let header = parts.next().unwrap_or_default();
        let payload = parts.next().unwrap_or_default();
        let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let mut sig = vec![0; f.pair.public_modulus_len()];
        f.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message.as_bytes(),
                &mut sig,
            )
            .expect("signing works");
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    for t in [TokenType::SessionToken, TokenType::OAuthToken, TokenType::M2mToken] {
        if let Ok(auth) = f.runtime.block_on(f.verifier.verify_token(&token, t)) {
            assert_eq!(auth.token_type, t, "verified as another type");
            assert!(mode % 2 == 1, "an unsigned token verified");
        }
    }
}
