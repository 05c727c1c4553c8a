//! End to end: the example server's sender-constrained routes as a process. `POST
//! /api/transfers` with the DPoP-bound token development mode prints and proofs made by
//! `tokengate dpop proof`; `--public-url` and `--dpop-nonce`; `POST /api/settlements` over
//! `--tls-cert`/`--tls-key`/`--tls-client-ca` and behind `--client-cert-header` with
//! `--trusted-proxy`. Certificates from rcgen; tokens signed with the development key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod process;
mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use process::{Server, cli};
use support::pki::{Pki, pki, x5t};

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

async fn post(client: &reqwest::Client, url: &str, authorization: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = client
        .post(url)
        .timeout(Duration::from_secs(10))
        .header("authorization", authorization);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenges = response
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
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        challenges,
        nonce,
    }
}

/// A proof from `tokengate dpop proof` with the key file development mode printed.
fn proof(s: &Server, url: &str, token: &str, nonce: Option<&str>) -> String {
    let key = s.printed("dev DPoP key:");
    let key = key.split(" (jkt").next().unwrap();
    let mut args = vec![
        "dpop", "proof", "--key", key, "--method", "POST", "--url", url, "--token", token,
    ];
    if let Some(nonce) = nonce {
        args.extend(["--nonce", nonce]);
    }
    let (code, out, err) = cli(&args, None);
    assert_eq!(code, 0, "dpop proof failed: {err}");
    out.trim().to_owned()
}

fn start(dir: &Path, extra: &[&str]) -> Server {
    let database = format!("sqlite://{}", dir.join("binding.db").display());
    let mut args = vec!["--database", &database];
    args.extend_from_slice(extra);
    Server::start(dir, &args)
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_takes_the_printed_dpop_bound_token_with_a_proof() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let token = s.printed("dev DPoP-bound OAuth token:");
    let unbound = s.printed("dev OAuth token (write:users):");
    let url = format!("{}/api/transfers", s.base);
    let client = reqwest::Client::new();
    let dpop = format!("DPoP {token}");
    let first = proof(&s, &url, &token, None);
    let ok = post(&client, &url, &dpop, &[("dpop", &first)]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        (ok.body["tokenType"].as_str(), ok.body["subject"].as_str()),
        (Some("oauth_token"), Some("user_demo"))
    );
    // The same proof twice.
    let replay = post(&client, &url, &dpop, &[("dpop", &first)]).await;
    assert_eq!((replay.status, replay.reason()), (401, "dpop-proof-replayed"));
    // The bound token as a bearer token, here and on a route that requires nothing of it.
    let bearer = post(&client, &url, &format!("Bearer {token}"), &[]).await;
    assert_eq!((bearer.status, bearer.reason()), (401, "dpop-bound-token-as-bearer"));
    let elsewhere = post(
        &client,
        &format!("{}/api/example", s.base),
        &format!("Bearer {token}"),
        &[],
    )
    .await;
    assert_eq!(
        (elsewhere.status, elsewhere.reason()),
        (401, "dpop-bound-token-as-bearer")
    );
    // An unbound token: DPoP required, said with a DPoP challenge.
    let unbound = post(&client, &url, &format!("Bearer {unbound}"), &[]).await;
    assert_eq!((unbound.status, unbound.reason()), (401, "dpop-required"));
    assert!(
        unbound.challenges.iter().all(|c| c.starts_with("DPoP ")),
        "{:?}",
        unbound.challenges
    );
    assert!(
        unbound.challenges[0].contains("algs=\"ES256"),
        "{:?}",
        unbound.challenges
    );
    // The route is in the report with its requirement.
    let (code, report) = {
        let out = std::process::Command::new(process::example_bin())
            .args(["--policy-report", "--format", "json"])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_str(&report).unwrap();
    let route = |path: &str| {
        report["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == path)
            .cloned()
            .unwrap()
    };
    assert_eq!(route("/api/transfers")["sender_constraints"], json!(["dpop"]));
    assert_eq!(route("/api/settlements")["sender_constraints"], json!(["mtls"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn public_url_is_what_proofs_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--public-url", "https://api.example.test/"]);
    let token = s.printed("dev DPoP-bound OAuth token:");
    let client = reqwest::Client::new();
    let dpop = format!("DPoP {token}");
    let url = format!("{}/api/transfers", s.base);
    let public = proof(&s, "https://api.example.test/api/transfers", &token, None);
    let ok = post(&client, &url, &dpop, &[("dpop", &public)]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // The address the server listens on is not the URL clients call.
    let local = proof(&s, &url, &token, None);
    let wrong = post(&client, &url, &dpop, &[("dpop", &local)]).await;
    assert_eq!((wrong.status, wrong.reason()), (401, "dpop-proof-wrong-url"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dpop_nonce_asks_for_a_server_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--dpop-nonce"]);
    let token = s.printed("dev DPoP-bound OAuth token:");
    let url = format!("{}/api/transfers", s.base);
    let client = reqwest::Client::new();
    let dpop = format!("DPoP {token}");
    let first = post(&client, &url, &dpop, &[("dpop", &proof(&s, &url, &token, None))]).await;
    assert_eq!((first.status, first.reason()), (401, "use-dpop-nonce"));
    assert!(
        first.challenges[0].contains("error=\"use_dpop_nonce\""),
        "{:?}",
        first.challenges
    );
    let nonce = first.nonce.unwrap();
    let second = post(
        &client,
        &url,
        &dpop,
        &[("dpop", &proof(&s, &url, &token, Some(&nonce)))],
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.body);
}

/// An OAuth token bound to a certificate, signed with the development key in `dir`.
fn certificate_bound(dir: &Path, x5t: &str) -> String {
    let pem = std::fs::read(dir.join("tokengate-dev-key.pem")).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("tokengate-dev".into());
    header.typ = Some("at+jwt".into());
    let now = support::now();
    let claims = json!({
        "iss": "https://tokengate.dev.invalid", "aud": "tokengate-example", "sub": "user_settler",
        "client_id": "client_settler", "iat": now, "exp": now + 600, "jti": "settle-1",
        "cnf": {"x5t#S256": x5t},
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
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

/// Writes `text` to `dir/name`; the path as text.
fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn settlements_over_the_servers_tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let write = |name: &str, text: &str| write_file(dir.path(), name, text);
    let (cert, key, ca) = (
        write("server.pem", &pki.server_pem),
        write("server-key.pem", &pki.server_key_pem),
        write("ca.pem", &pki.ca_pem),
    );
    let s = start(
        dir.path(),
        &["--tls-cert", &cert, "--tls-key", &key, "--tls-client-ca", &ca],
    );
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let token = certificate_bound(dir.path(), &x5t(&pki.client_der[0]));
    let url = format!("{}/api/settlements", s.base);
    let bearer = format!("Bearer {token}");
    let ok = post(&tls_client(&pki, Some(0)), &url, &bearer, &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["subject"], "user_settler");
    let other = post(&tls_client(&pki, Some(1)), &url, &bearer, &[]).await;
    assert_eq!((other.status, other.reason()), (401, "client-certificate-mismatch"));
    let none = post(&tls_client(&pki, None), &url, &bearer, &[]).await;
    assert_eq!((none.status, none.reason()), (401, "client-certificate-required"));
    // The printed, unbound OAuth token: the route requires the binding.
    let unbound = s.printed("dev OAuth token (write:users):");
    let reply = post(&tls_client(&pki, Some(0)), &url, &format!("Bearer {unbound}"), &[]).await;
    assert_eq!((reply.status, reply.reason()), (401, "certificate-binding-required"));
}

#[tokio::test(flavor = "multi_thread")]
async fn settlements_behind_a_proxy_header_only_from_trusted_addresses() {
    let pki = pki();
    let escaped =
        percent_encoding::utf8_percent_encode(&pki.clients[0].0, percent_encoding::NON_ALPHANUMERIC).to_string();
    let client = reqwest::Client::new();
    for (trusted, status, reason) in [
        ("127.0.0.1", 200, ""),
        ("10.20.30.40", 401, "client-certificate-required"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let s = start(
            dir.path(),
            &["--client-cert-header", "x-ssl-client-cert", "--trusted-proxy", trusted],
        );
        let token = certificate_bound(dir.path(), &x5t(&pki.client_der[0]));
        let url = format!("{}/api/settlements", s.base);
        let reply = post(
            &client,
            &url,
            &format!("Bearer {token}"),
            &[("x-ssl-client-cert", &escaped)],
        )
        .await;
        assert_eq!(
            (reply.status, reply.reason()),
            (status, reason),
            "trusted {trusted}: {}",
            reply.body
        );
    }
}

#[test]
fn flag_mistakes_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(process::example_bin())
            .args(["--addr", "127.0.0.1:0", "--database"])
            .arg(format!("sqlite://{}", dir.path().join("flags.db").display()))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for (args, expected) in [
        (&["--trusted-proxy", "127.0.0.1"][..], "--client-cert-header"),
        (&["--client-cert-header", "x-cert"], "--trusted-proxy"),
        (
            &["--client-cert-header", "bad header", "--trusted-proxy", "127.0.0.1"],
            "is not a header name",
        ),
        (
            &["--client-cert-header", "x-cert", "--trusted-proxy", "proxy.local"],
            "proxy.local",
        ),
        (&["--tls-cert", "cert.pem"], "--tls-key"),
        (
            &["--tls-cert", "missing.pem", "--tls-key", "missing-key.pem"],
            "missing.pem",
        ),
        (&["--public-url", "api.example.com"], "--public-url"),
        (&["--dpop-nonce", "--dpop-nonce-key", "abcd"], "--dpop-nonce-key"),
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// `tokengate dpop`: a proof's `htu` leaves out the URL's query and fragment (RFC 9449 §4.2),
/// and each mistake in its flags is one line that says what to do instead.
#[test]
fn dpop_cli_proofs_and_their_mistakes() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dpop.pem");
    let key = key.to_str().unwrap();
    let (code, _, err) = cli(&["dpop", "key", "--out", key], None);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&["dpop", "key", "--out", key], None);
    assert_ne!(code, 0);
    assert!(err.contains("exists already") && err.contains("--out"), "{err}");

    let url = "https://api.example.com/api/transfers?page=2#top";
    let (code, out, err) = cli(&["dpop", "proof", "--key", key, "--url", url, "--token", "t"], None);
    assert_eq!(code, 0, "{err}");
    let payload = out.trim().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["htu"], "https://api.example.com/api/transfers");

    let url = "https://api.example.com/api/transfers";
    for (args, expected) in [
        (&["--method", "GE T"][..], "not an HTTP method"),
        (&["--method", ""], "not an HTTP method"),
        (&["--token", ""], "--token is empty"),
        (&["--nonce", " "], "--nonce is empty"),
    ] {
        let (code, _, err) = cli(
            &[&["dpop", "proof", "--key", key, "--url", url][..], args].concat(),
            None,
        );
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let missing = dir.path().join("missing.pem");
    let (code, _, err) = cli(
        &["dpop", "proof", "--key", missing.to_str().unwrap(), "--url", url],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("tokengate dpop key --out dpop.pem"), "{err}");
}

/// `tokengate mtls thumbprint` on a DER file or a key says which file it wants and how to get it.
#[test]
fn mtls_cli_mistakes_say_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let der = dir.path().join("client.der");
    std::fs::write(&der, [0x30, 0x82, 0x01, 0xff, 0xa0, 0x03, 0x02, 0x01, 0x02, 0xc3, 0x28]).unwrap();
    let (code, _, err) = cli(&["mtls", "thumbprint", "--cert", der.to_str().unwrap()], None);
    assert_ne!(code, 0);
    assert!(err.contains("openssl x509 -inform DER"), "{err}");
    let key = dir.path().join("client-key.pem");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let (code, _, err) = cli(&["mtls", "thumbprint", "--cert", key.to_str().unwrap()], None);
    assert_ne!(code, 0);
    assert!(err.contains("not its key"), "{err}");
}

/// `--tls-key` that is not the certificate's key, and the two files swapped, each get a line
/// that says so.
#[test]
fn tls_key_mistakes_say_which_file_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let write = |name: &str, text: &str| write_file(dir.path(), name, text);
    let cert = write("server.pem", &pki.server_pem);
    let key = write("server-key.pem", &pki.server_key_pem);
    let other_key = write("client-key.pem", &pki.clients[0].1);
    for (cert, key, expected) in [
        (&cert, &other_key, "not the key of the certificate"),
        (&key, &cert, "are the certificate and key swapped?"),
    ] {
        let out = std::process::Command::new(process::example_bin())
            .args(["--addr", "127.0.0.1:0", "--database"])
            .arg(format!("sqlite://{}", dir.path().join("tls.db").display()))
            .args(["--tls-cert", cert, "--tls-key", key])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
