//! The route-policy report's HTML page in a real browser (Debian's `chromium`, headless): it
//! renders, has one row per route, its text matches the JSON report, its filter box filters,
//! and hostile text (a condition's name) stays text.
//!
//! Where no Chromium is installed the tests print `SKIPPED` and pass, unless
//! `TOKENGATE_REQUIRE_CHROMIUM=1` (CI sets it, and `.ci/run` installs `chromium`), which
//! turns that into a failure. `TOKENGATE_CHROMIUM` names the browser's binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokengate::report::Format;
use tokengate::routing::{Router, get};
use tokengate::verifier::StaticVerifier;
use tokengate::{PolicyLayer, TokenGate, TokenType, accepts_token, policy, public, require_scope};

mod process;

use process::example_bin;

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TOKENGATE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The browser, or `None` after saying loudly that the test is skipped.
fn browser_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(browser) = chromium() {
        return Some(browser);
    }
    let message =
        format!("SKIPPED {test}: no chromium on PATH (install Debian's `chromium`, or set TOKENGATE_CHROMIUM); ");
    if std::env::var("TOKENGATE_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1") {
        panic!("{message}TOKENGATE_REQUIRE_CHROMIUM=1: the browser tests must run here");
    }
    eprintln!("{message}set TOKENGATE_REQUIRE_CHROMIUM=1 to make this a failure");
    None
}

/// The DOM of `page` after its script ran, as headless Chromium prints it.
fn dump_dom(browser: &Path, page: &Path, fragment: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}{fragment}", page.display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("</html>"), "chromium printed no page:\n{dom}");
    dom
}

/// One `<tr class="route …">` of the dumped DOM: its attributes and its cells' text.
#[derive(Debug)]
struct Row {
    class: String,
    method: String,
    path: String,
    status: String,
    /// Each `<td>`: its class and its text (tags removed, entities decoded).
    cells: Vec<(String, String)>,
}

fn attr(tag: &str, name: &str) -> String {
    let start = tag.find(&format!("{name}=\"")).map(|i| i + name.len() + 2);
    start
        .and_then(|s| tag[s..].find('"').map(|e| decode(&tag[s..s + e])))
        .unwrap_or_default()
}

fn decode(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    decode(&out.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn rows(dom: &str) -> Vec<Row> {
    dom.split("<tr class=\"route")
        .skip(1)
        .map(|chunk| {
            let tr = &chunk[..chunk.find("</tr>").unwrap()];
            let open = &tr[..tr.find('>').unwrap()];
            let cells = tr
                .split("<td")
                .skip(1)
                .map(|td| {
                    let end = td.find('>').unwrap();
                    let body = &td[end + 1..td.find("</td>").unwrap()];
                    (attr(&td[..end], "class"), text_of(body))
                })
                .collect();
            Row {
                class: open.split('"').next().unwrap_or("").trim().to_owned(),
                method: attr(open, "data-method"),
                path: attr(open, "data-path"),
                status: attr(open, "data-status"),
                cells,
            }
        })
        .collect()
}

fn run_example(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(example_bin())
        .args(args)
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const TYPES: [&str; 4] = ["session_token", "oauth_token", "api_key", "m2m_token"];

/// Every row says what the JSON report says about its route.
fn assert_matches_json(rows: &[Row], json: &Value) {
    let routes = json["routes"].as_array().unwrap();
    assert_eq!(rows.len(), routes.len(), "one row per route: {rows:#?}");
    for (row, route) in rows.iter().zip(routes) {
        let status = route["status"].as_str().unwrap();
        assert_eq!(
            (row.method.as_str(), row.path.as_str()),
            (route["method"].as_str().unwrap(), route["path"].as_str().unwrap())
        );
        assert_eq!(row.status, status);
        let text: Vec<&str> = row.cells.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(text[0], route["method"]);
        assert_eq!(text[1], route["path"]);
        assert_eq!(text[2], status);
        assert_eq!(text[7], route["handler"], "{row:?}");
        let source = match &route["source"] {
            Value::Null => "—".to_owned(),
            s => format!("{}:{}", s["file"].as_str().unwrap(), s["line"]),
        };
        assert_eq!(text[8], source);
        let accepts: Vec<&str> = route["accepts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        for (i, token_type) in TYPES.iter().enumerate() {
            let (class, cell) = &row.cells[3 + i];
            let expected_class = match (status, accepts.contains(token_type)) {
                ("guarded", true) => "type accepted",
                ("guarded", false) => "type refused",
                _ => "type open",
            };
            assert_eq!(class, expected_class, "{} {} {token_type}", row.method, row.path);
            for requirement in route["requirements"].as_array().unwrap() {
                let applies = requirement["applies_to"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t == token_type);
                for value in requirement["values"].as_array().unwrap() {
                    let value = value.as_str().unwrap();
                    if applies && status == "guarded" {
                        assert!(
                            cell.contains(value),
                            "{token_type} of {} should name {value}: {cell}",
                            row.path
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_example_servers_page_renders_one_row_per_route_matching_the_json_report() {
    let Some(browser) = browser_or_skip("the_example_servers_page_renders_one_row_per_route_matching_the_json_report")
    else {
        return;
    };
    let html = run_example(&["--policy-report", "--format", "html"]);
    let json: Value = serde_json::from_str(&run_example(&["--policy-report", "--format", "json"])).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("src="),
        "no external asset"
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();

    let dom = dump_dom(&browser, &page, "");
    let n = json["routes"].as_array().unwrap().len();
    assert!(
        dom.contains(&format!("data-rendered=\"{n}\"")),
        "the script ran over {n} rows:\n{dom}"
    );
    assert!(dom.contains(&format!("data-shown=\"{n}\"")), "{dom}");
    let all = rows(&dom);
    assert_matches_json(&all, &json);
    assert!(all.iter().all(|r| !r.class.contains("hidden")));

    // The filter box, given by the page's fragment: only the public routes are left (the
    // health check, GitHub's secret-scanning endpoint and the RFC 9728 metadata).
    let filtered = dump_dom(&browser, &page, "#filter=public");
    assert!(filtered.contains("data-shown=\"3\""), "{filtered}");
    let filtered_rows = rows(&filtered);
    let shown: Vec<&str> = filtered_rows
        .iter()
        .filter(|r| !r.class.contains("hidden"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        shown,
        [
            "/health",
            "/github/secret-scanning",
            "/.well-known/oauth-protected-resource"
        ]
    );
}

// A router whose report carries text a page could mistake for markup.

#[accepts_token(api_key)]
#[require_scope("write:users")]
async fn create() -> &'static str {
    "created"
}

#[public]
async fn open() -> &'static str {
    "open"
}

async fn forgotten() -> &'static str {
    "no policy"
}

fn hostile_routes() -> Router<TokenGate> {
    let gate = TokenGate::builder()
        .verifier(TokenType::ApiKey, std::sync::Arc::new(StaticVerifier::new()))
        .build()
        .unwrap();
    let admin = Router::new().route("/stats", get(forgotten)).guard(
        PolicyLayer::new(gate, policy!(accepts_token(api_key), require_scope("admin")))
            .with_condition("<img src=x onerror=alert(1)>&\"'", |_, _| Box::pin(async { true })),
    );
    Router::new()
        .route("/items", get(open).post(create))
        .route("/forgotten", get(forgotten))
        .nest("/admin", admin)
}

#[test]
fn hostile_text_stays_text_and_every_status_shows() {
    let report = hostile_routes().report();
    let html = report.render(Format::Html);
    assert!(!html.contains("<img"), "a condition's name became markup");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#39;"));
    let Some(browser) = browser_or_skip("hostile_text_stays_text_and_every_status_shows") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let dom = dump_dom(&browser, &page, "");
    assert!(!dom.contains("<img"), "the browser made an element of it:\n{dom}");
    let json: Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
    let all = rows(&dom);
    assert_matches_json(&all, &json);
    let statuses: Vec<&str> = all.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["public", "guarded", "unguarded", "guarded"]);
    let admin = &all[3];
    assert!(
        admin.cells[5].1.contains("condition <img src=x onerror=alert(1)>&\"'"),
        "{admin:?}"
    );
}
