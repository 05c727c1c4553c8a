//! End to end: `examples/mcp_server.rs` as a process on a free loopback port, driven by the
//! official MCP TypeScript SDK (`@modelcontextprotocol/sdk`, pinned in
//! `tests/mcp_client/package-lock.json`; `tests/mcp_client/client.mjs`): the SDK's own
//! discovery from a `401`, tools listed and called with a token for the resource, a token for
//! another audience refused, a token without `users:write` unable to call `delete_user`. And
//! the RFC 9728 document checked against the RFC's rules and the route-policy report.
//!
//! Setup: Node 20+ and `npm ci` in `tests/mcp_client/` (the test runs it when the SDK is not
//! installed). Without Node or the registry the SDK cases print a loud `SKIPPED` and pass —
//! unless `TOKENGATE_REQUIRE_NODE=1` (`.ci/run` sets it). The document's checks need no Node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

mod process;
use process::{Server, target_dir};

const LISTENING: &str = "tokengate MCP server listening on ";

fn start(dir: &Path, args: &[&str]) -> Server {
    Server::start_example("mcp_server", LISTENING, dir, args)
}

fn client_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("mcp_client")
}

/// `npm ci` when the SDK is not installed yet; `Err` says why the SDK cases cannot run.
fn install_sdk() -> Result<(), String> {
    if !Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err("`node` was not found".into());
    }
    if client_folder()
        .join("node_modules/@modelcontextprotocol/sdk/package.json")
        .is_file()
    {
        return Ok(());
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(client_folder())
        .output()
        .map_err(|e| format!("`npm` could not run: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "`npm ci` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Whether the SDK can run here; prints why not, or panics under `TOKENGATE_REQUIRE_NODE=1`.
fn sdk_available() -> bool {
    let Err(why) = install_sdk() else { return true };
    let message = format!(
        "\n\n*** SKIPPED: the MCP TypeScript SDK cases of tests/mcp_server.rs: {why}.\n*** Install Node 20+ and \
         npm (with access to the npm registry), or run `npm ci` in {}.\n\n",
        client_folder().display()
    );
    if std::env::var("TOKENGATE_REQUIRE_NODE").is_ok_and(|v| v == "1") {
        panic!("{message}TOKENGATE_REQUIRE_NODE=1: the MCP SDK cases must run here");
    }
    let _ = std::io::stderr().write_all(message.as_bytes());
    false
}

/// Runs one case of `client.mjs` against `url`: what the SDK did and saw.
fn sdk(case: &str, url: &str, token: Option<&str>) -> Value {
    let out = Command::new("node")
        .arg("client.mjs")
        .args([case, url])
        .args(token)
        .current_dir(client_folder())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.mjs {case} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// An RFC 9068 access token signed with the server's development key.
fn dev_token(dir: &Path, claims: &Value) -> String {
    let pem = std::fs::read(dir.join("tokengate-mcp-dev-key.pem")).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("tokengate-dev".into());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The exchange of `status` among those the SDK made.
fn exchange(report: &Value, status: u16) -> &Value {
    report["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == status)
        .unwrap_or_else(|| panic!("no {status} exchange in {report:#}"))
}

#[test]
fn the_official_mcp_client_discovers_calls_and_is_refused() {
    if !sdk_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let url = &s.base;
    let metadata_url = url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp");

    // No token: the SDK's auth() takes the metadata URL from the 401 and reads the document.
    let found = sdk("discovery", url, None);
    let first = &found["exchanges"][0];
    assert_eq!(first["status"], 401, "{found:#}");
    assert!(
        first["challenge"]
            .as_str()
            .unwrap()
            .contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{first}"
    );
    assert_eq!(found["exchanges"][1]["url"], metadata_url.as_str(), "{found:#}");
    assert_eq!(found["discoveryState"]["resourceMetadataUrl"], metadata_url.as_str());
    let document = &found["discoveryState"]["resourceMetadata"];
    assert_eq!(document["resource"], url.as_str());
    assert_eq!(document["scopes_supported"], json!(["users:read", "users:write"]));
    assert_eq!(
        document["authorization_servers"],
        json!(["https://tokengate.dev.invalid"])
    );
    // It then looks for the (development, absent) authorization server: discovery got that far.
    assert!(found["error"]["message"].is_string(), "{found:#}");
    // The SDK's own check of `resource` against the URL it called passes.
    assert_eq!(found["selectedResource"], url.as_str());

    // A token for this resource with both scopes: tools listed and both called.
    let all = s.printed("dev OAuth token (users:read users:write):");
    let called = sdk("tools", url, Some(&all));
    assert_eq!(called["tools"], json!(["delete_user", "list_users"]), "{called:#}");
    assert_eq!(called["list_users"]["ok"], true, "{called:#}");
    assert_eq!(called["delete_user"]["ok"], true, "{called:#}");
    assert_eq!(called["delete_user"]["text"], r#"{"deleted":true,"id":"user_2"}"#);

    // Without users:write: list_users works, delete_user is the MCP scope challenge.
    let read = s.printed("dev OAuth token (users:read):");
    let limited = sdk("tools", url, Some(&read));
    assert_eq!(limited["list_users"]["ok"], true, "{limited:#}");
    assert!(!limited["list_users"]["text"].as_str().unwrap().contains("user_2"));
    assert_eq!(limited["delete_user"]["error"]["code"], 403, "{limited:#}");
    let challenge = exchange(&limited, 403)["challenge"].as_str().unwrap();
    for part in [
        "error=\"insufficient_scope\"",
        "scope=\"users:write\"",
        &format!("resource_metadata=\"{metadata_url}\""),
    ] {
        assert!(challenge.contains(part), "{part} missing from {challenge}");
    }

    // A token of the same issuer and key for another resource: refused, 401 wrong-audience.
    let t = now();
    let other = dev_token(
        dir.path(),
        &json!({"iss": "https://tokengate.dev.invalid", "aud": "https://other.example/mcp", "sub": "user_demo",
                "client_id": "c", "scope": "users:read users:write", "iat": t, "exp": t + 600, "jti": "other"}),
    );
    let refused = sdk("refused", url, Some(&other));
    assert_eq!(refused["error"]["code"], 401, "{refused:#}");
    let answer = exchange(&refused, 401);
    assert!(
        answer["challenge"]
            .as_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["reason"], "wrong-audience");
    // The same claims for this resource pass: the audience alone made the difference.
    let mine = dev_token(
        dir.path(),
        &json!({"iss": "https://tokengate.dev.invalid", "aud": url, "sub": "user_demo",
                "client_id": "c", "scope": "users:read", "iat": t, "exp": t + 600, "jti": "mine"}),
    );
    assert_eq!(sdk("refused", url, Some(&mine))["connected"], true);
}

/// Fetches `path` from the server: status and JSON body.
fn fetch(base: &str, path: &str) -> (u16, Value) {
    let origin = base.trim_end_matches("/mcp");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let response = reqwest::get(format!("{origin}{path}")).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
}

/// An MCP `initialize` to `url` with `token`: the status, and the refusal's reason.
fn initialize(url: &str, token: &str) -> (u16, Option<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body["reason"].as_str().map(str::to_owned))
    })
}

/// The scopes the report says a route requires of OAuth tokens, sorted.
fn report_scopes(report: &Value) -> Vec<String> {
    let mut scopes: Vec<String> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["requirements"].as_array().unwrap())
        .filter(|q| q["kind"] == "scope" && q["applies_to"].as_array().unwrap().contains(&json!("oauth_token")))
        .flat_map(|q| q["values"].as_array().unwrap())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

#[test]
fn the_metadata_document_follows_rfc_9728_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (status, document) = fetch(&s.base, "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(status, 200, "{document}");
    // §2: `resource` is an absolute URL with no fragment; §3.3: it is the identifier the
    // metadata URL was built from, i.e. the URL clients call.
    let resource = document["resource"].as_str().unwrap();
    assert!(
        resource.starts_with("http://127.0.0.1:") && !resource.contains('#'),
        "{resource}"
    );
    assert_eq!(resource, s.base);
    assert_eq!(document["bearer_methods_supported"], json!(["header"]));
    assert_eq!(
        document["authorization_servers"],
        json!(["https://tokengate.dev.invalid"])
    );
    // The same document at the root (clients that do not insert the path fall back to it).
    assert_eq!(
        fetch(&s.base, "/.well-known/oauth-protected-resource"),
        (200, document.clone())
    );

    let out = Command::new(target_dir().join("examples").join("mcp_server"))
        .args(["--policy-report", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let scopes = report_scopes(&report);
    assert_eq!(scopes, ["users:read", "users:write"]);
    assert_eq!(document["scopes_supported"], json!(scopes));
    // The tools are operations of /mcp in the report, and the metadata routes are public.
    let rows: Vec<(String, String, String)> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (text("path"), text("handler"), text("status"))
        })
        .collect();
    let row = |p: &str, h: &str, st: &str| (p.to_owned(), h.to_owned(), st.to_owned());
    assert_eq!(
        rows,
        [
            row("/mcp", "mcp_server::mcp", "guarded"),
            row("/mcp", "tools/call delete_user", "guarded"),
            row("/mcp", "tools/call list_users", "guarded"),
            row(
                "/.well-known/oauth-protected-resource/mcp",
                "tokengate::metadata::protected_resource_metadata",
                "public"
            ),
            row(
                "/.well-known/oauth-protected-resource",
                "tokengate::metadata::protected_resource_metadata",
                "public"
            ),
        ]
    );
}

#[test]
fn a_configured_resource_url_is_the_document_and_the_audience() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--resource-url", "http://localhost:1/tools/mcp"]);
    assert!(s.base.ends_with("/tools/mcp"), "{}", s.base);
    let origin = s.base.split("/tools").next().unwrap().to_owned();
    let (_, document) = fetch(&origin, "/.well-known/oauth-protected-resource/tools/mcp");
    assert_eq!(document["resource"], "http://localhost:1/tools/mcp");
    // Tokens must name the configured resource, not the address the server listens on.
    let t = now();
    let token = |aud: &str| {
        dev_token(
            dir.path(),
            &json!({"iss": "https://tokengate.dev.invalid", "aud": aud, "sub": "u", "client_id": "c",
                    "scope": "users:read", "iat": t, "exp": t + 600, "jti": aud}),
        )
    };
    assert_eq!(initialize(&s.base, &token("http://localhost:1/tools/mcp")), (200, None));
    assert_eq!(
        initialize(&s.base, &token(&s.base)),
        (401, Some("wrong-audience".to_owned()))
    );
    // Flags the server cannot use are refused at start-up with the reason.
    for (args, expected) in [
        (&["--resource-url", "https://a.example/mcp#x"][..], "fragment"),
        (&["--resource-url", "mcp"][..], "absolute URL"),
        (
            &["--oauth-jwks-url", "https://a.example/jwks"][..],
            "--oauth-issuer-name",
        ),
    ] {
        let out = Command::new(target_dir().join("examples").join("mcp_server"))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}
