//! Every check of RFC 9449 §4.3, each alone: a proof right in every way but one is refused
//! for that one reason (so a check that stopped working fails its test). Real keys: ES256
//! and Ed25519 proofs from aws-lc-rs, an HMAC "proof" made with the access token as its key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::{HeaderMap, HeaderValue, Method, Uri};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokengate_runtime::binding::dpop::{DpopConfig, DpopError, DpopVerifier, ProofRefusal, ProofTarget};
use tokengate_runtime::binding::proof::DpopKey;

const NOW: i64 = 1_900_000_000;
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.the-access-token.sig";
const URL: &str = "https://api.example.com/api/transfers";

fn verifier() -> DpopVerifier {
    DpopVerifier::new(DpopConfig::new("https://api.example.com").unwrap())
}

fn ath(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

fn header(key: &DpopKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()})
}

fn claims() -> Value {
    json!({"jti": "jti-1", "htm": "POST", "htu": URL, "iat": NOW, "ath": ath(TOKEN)})
}

fn headers(proofs: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for proof in proofs {
        headers.append("dpop", HeaderValue::from_str(proof).unwrap());
    }
    headers
}

/// The check of one proof for `POST /api/transfers` presenting [`TOKEN`] bound to `jkt`.
fn check_with(dpop: &DpopVerifier, proof: &str, jkt: &str) -> Result<(), ProofRefusal> {
    let uri: Uri = "/api/transfers".parse().unwrap();
    let target = ProofTarget {
        method: &Method::POST,
        uri: &uri,
    };
    dpop.check_at(&headers(&[proof]), target, TOKEN, jkt, NOW).map(|_| ())
}

fn refused(proof: &str, key: &DpopKey) -> DpopError {
    match check_with(&verifier(), proof, &key.thumbprint()) {
        Err(ProofRefusal::Invalid(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_correct_proof_passes() {
    let key = DpopKey::generate().unwrap();
    let proof = key.sign(&header(&key), &claims()).unwrap();
    check_with(&verifier(), &proof, &key.thumbprint()).unwrap();
    // The helper's own proofs too (fresh `iat`, random `jti`).
    let made = key.proof("POST", URL, Some(TOKEN), None).unwrap();
    let uri: Uri = "/api/transfers".parse().unwrap();
    let target = ProofTarget {
        method: &Method::POST,
        uri: &uri,
    };
    verifier()
        .check(&headers(&[&made]), target, TOKEN, &key.thumbprint())
        .unwrap();
}

#[test]
fn one_proof_header_exactly() {
    let key = DpopKey::generate().unwrap();
    let proof = key.sign(&header(&key), &claims()).unwrap();
    let uri: Uri = "/api/transfers".parse().unwrap();
    let target = ProofTarget {
        method: &Method::POST,
        uri: &uri,
    };
    let jkt = key.thumbprint();
    let dpop = verifier();
    assert_eq!(
        dpop.check_at(&HeaderMap::new(), target, TOKEN, &jkt, NOW).unwrap_err(),
        ProofRefusal::Invalid(DpopError::Missing)
    );
    assert_eq!(
        dpop.check_at(&headers(&[&proof, &proof]), target, TOKEN, &jkt, NOW)
            .unwrap_err(),
        ProofRefusal::Invalid(DpopError::Multiple)
    );
}

#[test]
fn malformed_proofs() {
    let key = DpopKey::generate().unwrap();
    for proof in ["", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.!!!.sig", "W10.e30.sig"] {
        assert_eq!(refused(proof, &key), DpopError::Malformed, "{proof}");
    }
}

#[test]
fn typ_must_be_dpop_jwt() {
    let key = DpopKey::generate().unwrap();
    let mut h = header(&key);
    h["typ"] = json!("JWT");
    assert_eq!(refused(&key.sign(&h, &claims()).unwrap(), &key), DpopError::WrongTyp);
}

#[test]
fn alg_none_is_refused() {
    let key = DpopKey::generate().unwrap();
    let mut h = header(&key);
    h["alg"] = json!("none");
    let unsigned = format!("{}.{}.", B64.encode(h.to_string()), B64.encode(claims().to_string()));
    assert_eq!(refused(&unsigned, &key), DpopError::DisallowedAlgorithm);
}

#[test]
fn an_hmac_proof_keyed_with_the_token_is_refused() {
    // The classic confusion: a symmetric "jwk" (`oct`) and HS256 keyed with something the
    // attacker knows. Both the algorithm and the key are refused.
    let key = DpopKey::generate().unwrap();
    let oct = json!({"kty": "oct", "k": B64.encode(TOKEN)});
    let h = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": oct});
    let signed = format!("{}.{}", B64.encode(h.to_string()), B64.encode(claims().to_string()));
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, TOKEN.as_bytes()),
        signed.as_bytes(),
    );
    let proof = format!("{signed}.{}", B64.encode(tag.as_ref()));
    assert_eq!(refused(&proof, &key), DpopError::DisallowedAlgorithm);
}

#[test]
fn an_algorithm_outside_the_configured_list_is_refused() {
    let key = DpopKey::generate().unwrap();
    let proof = key.sign(&header(&key), &claims()).unwrap();
    let rsa_only = DpopVerifier::new(
        DpopConfig::new("https://api.example.com")
            .unwrap()
            .algorithms(["PS256"])
            .unwrap(),
    );
    assert_eq!(
        check_with(&rsa_only, &proof, &key.thumbprint()),
        Err(ProofRefusal::Invalid(DpopError::DisallowedAlgorithm))
    );
}

#[test]
fn the_jwk_must_be_public_and_of_the_algorithm() {
    let key = DpopKey::generate().unwrap();
    // A private member: a client that leaks its key.
    let mut h = header(&key);
    h["jwk"]["d"] = json!(B64.encode([7u8; 32]));
    assert_eq!(refused(&key.sign(&h, &claims()).unwrap(), &key), DpopError::BadKey);
    // Another curve than ES256's.
    let mut h = header(&key);
    h["jwk"]["crv"] = json!("P-384");
    assert_eq!(refused(&key.sign(&h, &claims()).unwrap(), &key), DpopError::BadKey);
    // No jwk at all.
    let h = json!({"typ": "dpop+jwt", "alg": "ES256"});
    assert_eq!(refused(&key.sign(&h, &claims()).unwrap(), &key), DpopError::Malformed);
}

#[test]
fn crit_is_refused() {
    let key = DpopKey::generate().unwrap();
    let mut h = header(&key);
    h["crit"] = json!(["exp"]);
    assert_eq!(
        refused(&key.sign(&h, &claims()).unwrap(), &key),
        DpopError::UnsupportedCritical
    );
}

#[test]
fn the_signature_must_be_the_jwks() {
    let key = DpopKey::generate().unwrap();
    let other = DpopKey::generate().unwrap();
    // Signed by another key than the one in the header.
    let proof = other.sign(&header(&key), &claims()).unwrap();
    assert_eq!(refused(&proof, &key), DpopError::BadSignature);
    // A claim changed after signing.
    let proof = key.sign(&header(&key), &claims()).unwrap();
    let mut parts: Vec<String> = proof.split('.').map(str::to_owned).collect();
    let mut changed = claims();
    changed["htm"] = json!("GET");
    parts[1] = B64.encode(changed.to_string());
    assert_eq!(refused(&parts.join("."), &key), DpopError::BadSignature);
}

#[test]
fn htm_must_be_the_method() {
    let key = DpopKey::generate().unwrap();
    let mut c = claims();
    c["htm"] = json!("GET");
    assert_eq!(
        refused(&key.sign(&header(&key), &c).unwrap(), &key),
        DpopError::WrongMethod
    );
}

#[test]
fn htu_must_be_the_public_url_of_the_request() {
    let key = DpopKey::generate().unwrap();
    for htu in [
        "https://evil.example.com/api/transfers",
        "http://api.example.com/api/transfers",
        "https://api.example.com/api/settlements",
        "https://api.example.com:8443/api/transfers",
        "https://api.example.com/api/transfers/",
        "/api/transfers",
    ] {
        let mut c = claims();
        c["htu"] = json!(htu);
        assert_eq!(
            refused(&key.sign(&header(&key), &c).unwrap(), &key),
            DpopError::WrongUrl,
            "{htu}"
        );
    }
    // Query and fragment are ignored; scheme and host in any case; the default port.
    for htu in [
        "https://api.example.com/api/transfers?x=1",
        "https://api.example.com/api/transfers#f",
        "HTTPS://API.EXAMPLE.COM/api/transfers",
        "https://api.example.com:443/api/transfers",
    ] {
        let mut c = claims();
        c["htu"] = json!(htu);
        check_with(&verifier(), &key.sign(&header(&key), &c).unwrap(), &key.thumbprint()).unwrap();
    }
}

#[test]
fn a_public_url_with_a_prefix_is_the_proxys_path() {
    let key = DpopKey::generate().unwrap();
    let behind_proxy = DpopVerifier::new(DpopConfig::new("https://example.com/billing/").unwrap());
    let mut c = claims();
    c["htu"] = json!("https://example.com/billing/api/transfers");
    check_with(&behind_proxy, &key.sign(&header(&key), &c).unwrap(), &key.thumbprint()).unwrap();
    c["htu"] = json!(URL);
    assert_eq!(
        check_with(&behind_proxy, &key.sign(&header(&key), &c).unwrap(), &key.thumbprint()),
        Err(ProofRefusal::Invalid(DpopError::WrongUrl))
    );
}

#[test]
fn iat_must_be_within_the_window() {
    let key = DpopKey::generate().unwrap();
    for (iat, ok) in [(NOW - 61, false), (NOW - 60, true), (NOW + 5, true), (NOW + 6, false)] {
        let mut c = claims();
        c["iat"] = json!(iat);
        let result = check_with(&verifier(), &key.sign(&header(&key), &c).unwrap(), &key.thumbprint());
        match ok {
            true => result.unwrap(),
            false => assert_eq!(result, Err(ProofRefusal::Invalid(DpopError::Stale)), "{iat}"),
        }
    }
    let mut c = claims();
    c["iat"] = json!("now");
    assert_eq!(
        refused(&key.sign(&header(&key), &c).unwrap(), &key),
        DpopError::Malformed
    );
}

#[test]
fn jti_is_required_and_bounded() {
    let key = DpopKey::generate().unwrap();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        refused(&key.sign(&header(&key), &c).unwrap(), &key),
        DpopError::MissingJti
    );
    c["jti"] = json!("x".repeat(257));
    assert_eq!(
        refused(&key.sign(&header(&key), &c).unwrap(), &key),
        DpopError::MissingJti
    );
}

#[test]
fn a_jti_is_used_once_within_its_window() {
    let key = DpopKey::generate().unwrap();
    let dpop = verifier();
    let proof = key.sign(&header(&key), &claims()).unwrap();
    let uri: Uri = "/api/transfers".parse().unwrap();
    let target = ProofTarget {
        method: &Method::POST,
        uri: &uri,
    };
    let jkt = key.thumbprint();
    let checked = dpop.check_at(&headers(&[&proof]), target, TOKEN, &jkt, NOW).unwrap();
    dpop.remember_at(&checked, NOW).unwrap();
    let again = dpop
        .check_at(&headers(&[&proof]), target, TOKEN, &jkt, NOW + 30)
        .unwrap();
    assert_eq!(dpop.remember_at(&again, NOW + 30), Err(Some(DpopError::Replayed)));
    // Another jti of the same key is new.
    let mut c = claims();
    c["jti"] = json!("jti-2");
    let fresh = key.sign(&header(&key), &c).unwrap();
    let checked = dpop.check_at(&headers(&[&fresh]), target, TOKEN, &jkt, NOW).unwrap();
    dpop.remember_at(&checked, NOW).unwrap();
}

#[test]
fn ath_must_hash_the_token() {
    let key = DpopKey::generate().unwrap();
    let mut c = claims();
    c["ath"] = json!(ath("another token"));
    assert_eq!(
        refused(&key.sign(&header(&key), &c).unwrap(), &key),
        DpopError::WrongTokenHash
    );
    c.as_object_mut().unwrap().remove("ath");
    assert_eq!(
        refused(&key.sign(&header(&key), &c).unwrap(), &key),
        DpopError::WrongTokenHash
    );
}

#[test]
fn the_proof_key_must_be_the_tokens() {
    let key = DpopKey::generate().unwrap();
    let thief = DpopKey::generate().unwrap();
    // A thief with the token signs a perfect proof with their own key.
    let proof = thief.sign(&header(&thief), &claims()).unwrap();
    assert_eq!(refused(&proof, &key), DpopError::KeyMismatch);
}

#[test]
fn ed25519_proofs_are_accepted() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    let pair = Ed25519KeyPair::generate().unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref())});
    let jkt = tokengate_runtime::binding::dpop::thumbprint(jwk.as_object().unwrap()).unwrap();
    let h = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk});
    let signed = format!("{}.{}", B64.encode(h.to_string()), B64.encode(claims().to_string()));
    let proof = format!("{signed}.{}", B64.encode(pair.sign(signed.as_bytes()).as_ref()));
    check_with(&verifier(), &proof, &jkt).unwrap();
}

#[test]
fn nonces_when_required() {
    let key = DpopKey::generate().unwrap();
    let dpop = DpopVerifier::new(
        DpopConfig::new("https://api.example.com")
            .unwrap()
            .nonces(&[9; 32], Duration::from_secs(300))
            .unwrap(),
    );
    let jkt = key.thumbprint();
    let nonce = match check_with(&dpop, &key.sign(&header(&key), &claims()).unwrap(), &jkt) {
        Err(ProofRefusal::UseNonce(nonce)) => nonce,
        other => panic!("expected use_dpop_nonce, got {other:?}"),
    };
    let mut c = claims();
    c["nonce"] = json!(nonce);
    check_with(&dpop, &key.sign(&header(&key), &c).unwrap(), &jkt).unwrap();
    // A nonce of another server key is not one.
    let other = DpopVerifier::new(
        DpopConfig::new("https://api.example.com")
            .unwrap()
            .nonces(&[8; 32], Duration::from_secs(300))
            .unwrap(),
    );
    assert!(matches!(
        check_with(&other, &key.sign(&header(&key), &c).unwrap(), &jkt),
        Err(ProofRefusal::UseNonce(_))
    ));
}
