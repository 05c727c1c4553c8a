//! Differential test against Clerk's own code: the same generated session claims and
//! requirements go to `@clerk/shared` (`runtime/tests/clerk_differential/decide.mjs`: the claims
//! parser and `createCheckAuthorization`, as `@clerk/backend` composes them) and to tokengate
//! (a real RS256 token through `JwtVerifier`, then `Policy::check`), and no decision may differ.
//!
//! The claims are random and often malformed: `fea` and `pla` with every scope and stray
//! entries, of the wrong JSON type; `fva` of every shape; Clerk's v1 (`org_*`) and v2 (`o`,
//! `per`, `fpm`) organization claims. The requirements are roles, permissions, features,
//! plans and reverification, all-of and any-of.
//!
//! One class of input is compared one way only: an organization id, role, slug or permission
//! list of the wrong JSON type (a number for `org_id`…). Clerk's parser passes such a value on
//! (a number is a "truthy" organization id); tokengate refuses the token as malformed
//! (`invalid-claims`, fail closed). For those cases the test asserts that tokengate never
//! grants what Clerk refuses.
//!
//! Setup: Node and `npm ci` in `runtime/tests/clerk_differential/` (the lockfile pins
//! `@clerk/shared`). Where Node, npm or the registry is unavailable the test prints a loud
//! `SKIPPED` and passes — unless `TOKENGATE_REQUIRE_NODE=1` (`.ci/run` sets it). The default
//! seed is fixed (a deterministic CI); `TOKENGATE_DIFF_SEED` and `TOKENGATE_DIFF_CASES` explore
//! other or longer runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod jwt_support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jwt_support::{RSA, now};
use serde_json::{Value, json};
use tokengate_runtime::jwt::{JwtVerifier, KeySet, SessionRules};
use tokengate_runtime::{Credential, Match, Policy, Requirement, RequirementKind, TokenType, TokenTypes, Verifier};

/// A small deterministic generator (xorshift64*), so that a seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

const FEATURES: &[&str] = &["exports", "reports", "invoices", "profile", "a:b", ""];
const PLANS: &[&str] = &["pro", "free", "enterprise", ""];
const SCOPES: &[&str] = &["o", "u", "ou", "uo", "x", "oo", "org", ""];
const ROLES: &[&str] = &["org:admin", "org:member", "org:billing", "org:org"];
const PERMISSIONS: &[&str] = &[
    "org:invoices:read",
    "org:invoices:create",
    "org:reports:read",
    "org:org:read",
    "org:exports:read",
];
const REQUIRED_FEATURES: &[&str] = &[
    "exports",
    "o:exports",
    "u:exports",
    "reports",
    "o:reports",
    "u:profile",
    "invoices",
];
const REQUIRED_PLANS: &[&str] = &["pro", "o:pro", "u:pro", "free", "u:free", "enterprise"];

/// A comma-separated `scope:name` claim, sometimes with spaces, stray or broken entries.
fn entitlement_claim(rng: &mut Rng, names: &[&str]) -> Value {
    match rng.below(12) {
        0 => json!(5),
        1 => json!(["o:exports", "o:pro"]),
        2 => rng.pick(&[json!(true), json!(false), json!(0), Value::Null, json!("")]),
        _ => {
            let entries: Vec<String> = (0..1 + rng.below(4))
                .map(|_| match rng.below(20) {
                    0 => "broken".to_owned(),
                    1 => format!(" {}:{} ", rng.pick(SCOPES), rng.pick(names)),
                    2..=6 => format!("{}:{}", rng.pick(SCOPES), rng.pick(names)),
                    _ => format!("{}:{}", rng.pick(&["o", "u"]), rng.pick(&names[..3])),
                })
                .collect();
            json!(entries.join(","))
        }
    }
}

fn fva(rng: &mut Rng) -> Value {
    let age = |rng: &mut Rng| {
        rng.pick(&[
            json!(-1),
            json!(0),
            json!(5),
            json!(9),
            json!(10),
            json!(11),
            json!(59),
            json!(60),
            json!(61),
            json!(1439),
            json!(1440),
            json!(3000),
            json!(2.5),
            json!(9.99),
            json!(-2),
            json!(-0.5),
            json!("5"),
            Value::Null,
        ])
    };
    match rng.below(10) {
        0 => rng.pick(&[
            json!([1]),
            json!([1, 2, 3]),
            json!("0,5"),
            json!({"0": 1}),
            json!(7),
            Value::Null,
        ]),
        1..=3 => json!([rng.pick(&[-1, 0, 3, 30]), rng.pick(&[-1, 0, 3, 30])]),
        _ => json!([age(rng), age(rng)]),
    }
}

/// Clerk v1 organization claims; `typed` is cleared when a value has the wrong JSON type.
fn org_v1(rng: &mut Rng, claims: &mut Value, typed: &mut bool) {
    if rng.chance(70) {
        claims["org_id"] = rng.pick(&[json!("org_1"), json!("org_1"), json!("")]);
    }
    if rng.chance(70) {
        claims["org_role"] = json!(rng.pick(&[
            "org:admin",
            "admin",
            "org:org:admin",
            "org:member",
            "",
            "org:",
            "billing"
        ]));
    }
    if rng.chance(70) {
        let held: Vec<&str> = (0..rng.below(4)).map(|_| rng.pick(PERMISSIONS)).collect();
        claims["org_permissions"] = json!(held);
    }
    if rng.chance(8) {
        *typed = false;
        let field = rng.pick(&["org_id", "org_role", "org_permissions"]);
        claims[field] = rng.pick(&[json!(5), json!(["org:admin"]), json!("org:invoices:read"), json!(true)]);
    }
}

/// Clerk v2 organization claims (`o`, with `fea` for the permissions' features).
fn org_v2(rng: &mut Rng, claims: &mut Value, typed: &mut bool) {
    claims["v"] = json!(2);
    match rng.below(10) {
        0 => {
            claims["o"] = rng.pick(&[
                json!("org_1"),
                json!(1),
                json!(true),
                json!([]),
                json!(0),
                json!(""),
                Value::Null,
            ])
        }
        1 => {}
        _ => {
            let mut o = json!({});
            if rng.chance(85) {
                o["id"] = rng.pick(&[json!("org_1"), json!("org_1"), json!("")]);
            }
            if rng.chance(80) {
                o["rol"] = json!(rng.pick(&["admin", "member", "org:admin", "", "billing"]));
            }
            if rng.chance(75) {
                o["per"] = rng.pick(&[
                    json!("read,create"),
                    json!("read, create ,delete"),
                    json!(""),
                    json!(0),
                    json!(["read"]),
                    json!("read,,create"),
                ]);
            }
            if rng.chance(75) {
                let masks: Vec<String> = (0..1 + rng.below(3))
                    .map(|_| {
                        rng.pick(&["0", "1", "2", "3", "7", " 5", "x", "-1", "", "36893488147419103233"])
                            .to_owned()
                    })
                    .collect();
                o["fpm"] = if rng.chance(10) {
                    json!(3)
                } else {
                    json!(masks.join(","))
                };
            }
            if rng.chance(6) {
                *typed = false;
                let field = rng.pick(&["id", "rol", "slg"]);
                o[field] = rng.pick(&[json!(5), json!(["admin"]), json!(true)]);
            }
            claims["o"] = o;
        }
    }
}

/// Random session claims; the flag is false when an organization value has the wrong type.
fn claims(rng: &mut Rng, i: usize) -> (Value, bool) {
    let now = now();
    let mut claims = json!({
        "sub": "user_1", "sid": format!("sess_{i}"), "iat": now - 1, "nbf": now - 1, "exp": now + 600,
    });
    let mut typed = true;
    match rng.below(10) {
        0..=3 => org_v1(rng, &mut claims, &mut typed),
        4..=8 => org_v2(rng, &mut claims, &mut typed),
        _ => claims["v"] = rng.pick(&[json!("2"), json!(1), json!(3)]),
    }
    if rng.chance(80) {
        claims["fea"] = entitlement_claim(rng, FEATURES);
    }
    if rng.chance(70) {
        claims["pla"] = entitlement_claim(rng, PLANS);
    }
    if rng.chance(85) {
        claims["fva"] = fva(rng);
    }
    (claims, typed)
}

/// A requirement for tokengate, and the same as parameters of Clerk's `has()`.
struct Query {
    requirement: Requirement,
    any: bool,
    params: Vec<Value>,
}

fn query(rng: &mut Rng) -> Query {
    let any = rng.chance(35);
    let n = if rng.chance(60) { 1 } else { 2 + rng.below(2) };
    let (kind, values, params): (RequirementKind, Vec<String>, Vec<Value>) = match rng.below(5) {
        0 => {
            let v: Vec<&str> = (0..n).map(|_| rng.pick(ROLES)).collect();
            (
                RequirementKind::Role,
                owned(&v),
                v.iter().map(|r| json!({"role": r})).collect(),
            )
        }
        1 => {
            let v: Vec<&str> = (0..n).map(|_| rng.pick(PERMISSIONS)).collect();
            (
                RequirementKind::Permission,
                owned(&v),
                v.iter().map(|p| json!({"permission": p})).collect(),
            )
        }
        2 => {
            let v: Vec<&str> = (0..n).map(|_| rng.pick(REQUIRED_FEATURES)).collect();
            (
                RequirementKind::Feature,
                owned(&v),
                v.iter().map(|f| json!({"feature": f})).collect(),
            )
        }
        3 => {
            let v: Vec<&str> = (0..n).map(|_| rng.pick(REQUIRED_PLANS)).collect();
            (
                RequirementKind::Plan,
                owned(&v),
                v.iter().map(|p| json!({"plan": p})).collect(),
            )
        }
        _ => reverification(rng),
    };
    let matching = if any { Match::Any } else { Match::All };
    let requirement = Requirement::new(kind, matching, values).unwrap();
    Query {
        requirement,
        any,
        params,
    }
}

fn owned(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn reverification(rng: &mut Rng) -> (RequirementKind, Vec<String>, Vec<Value>) {
    if rng.chance(50) {
        let preset = rng.pick(&["strict_mfa", "strict", "moderate", "lax"]);
        (
            RequirementKind::Reverification,
            vec![preset.to_owned()],
            vec![json!({"reverification": preset})],
        )
    } else {
        let level = rng.pick(&["first_factor", "second_factor", "multi_factor"]);
        let minutes = rng.pick(&[1, 3, 5, 10, 30, 60, 1440]);
        (
            RequirementKind::Reverification,
            vec![format!("{level}:{minutes}")],
            vec![json!({"reverification": {"level": level, "afterMinutes": minutes}})],
        )
    }
}

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clerk_differential")
}

/// `npm ci` when `@clerk/shared` is not installed yet; `Err` says why it cannot run.
fn install() -> Result<(), String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("`node` was not found".into());
    }
    if folder().join("node_modules/@clerk/shared/package.json").is_file() {
        return Ok(());
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(folder())
        .output()
        .map_err(|e| format!("`npm` could not run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`npm ci` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn skip(why: &str) {
    let message = format!(
        "\n\n*** SKIPPED: differential test against Clerk's @clerk/shared: {why}.\n*** Install Node 20+ and npm \
         (with access to the npm registry), or run `npm ci` in {}.\n\n",
        folder().display()
    );
    if std::env::var("TOKENGATE_REQUIRE_NODE").is_ok_and(|v| v == "1") {
        panic!("{message}TOKENGATE_REQUIRE_NODE=1: the differential test must run here");
    }
    let _ = std::io::stderr().write_all(message.as_bytes());
}

/// Clerk's decisions for every case: one Node process, one JSON line per case each way.
fn clerk_decisions(lines: &[String]) -> Vec<Value> {
    let mut child = Command::new("node")
        .arg("decide.mjs")
        .current_dir(folder())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = lines.join("\n");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let answers: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    writer.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success(), "decide.mjs failed");
    assert_eq!(answers.len(), lines.len(), "one answer per case");
    answers
}

struct Case {
    claims: Value,
    typed: bool,
    queries: Vec<Query>,
}

fn cases(seed: u64, n: usize) -> Vec<Case> {
    // splitmix64 of the seed: nearby seeds give unrelated runs.
    let mixed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut rng = Rng((mixed ^ (mixed >> 27)) | 1);
    (0..n)
        .map(|i| {
            let (claims, typed) = claims(&mut rng, i);
            let queries = (0..6).map(|_| query(&mut rng)).collect();
            Case { claims, typed, queries }
        })
        .collect()
}

/// tokengate's decisions for one case: the token verified for real, then each requirement.
async fn tokengate_decisions(verifier: &JwtVerifier, case: &Case) -> Vec<bool> {
    let token = RSA.token(&case.claims);
    let auth = verifier
        .verify(Credential::new_for_tests(&token, TokenType::SessionToken))
        .await
        .ok();
    case.queries
        .iter()
        .map(|q| {
            let policy = Policy::accepting(TokenTypes::DEFAULT).require(q.requirement.clone());
            auth.as_ref().is_some_and(|a| policy.check(a).is_ok())
        })
        .collect()
}

/// The seed of a default run: fixed, so that CI is deterministic; set `TOKENGATE_DIFF_SEED` to
/// explore others (`TOKENGATE_DIFF_CASES=100000` for a long run).
const DEFAULT_SEED: u64 = 24;

#[tokio::test]
async fn decisions_match_clerks_own_code() {
    if let Err(why) = install() {
        skip(&why);
        return;
    }
    let seed = std::env::var("TOKENGATE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let n = std::env::var("TOKENGATE_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let cases = cases(seed, n);
    let lines: Vec<String> = cases
        .iter()
        .map(|c| {
            let queries: Vec<Value> = c
                .queries
                .iter()
                .map(|q| json!({"any": q.any, "params": q.params}))
                .collect();
            json!({"claims": c.claims, "queries": queries}).to_string()
        })
        .collect();
    let clerk = clerk_decisions(&lines);
    let verifier = JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .session(SessionRules::new())
        .build()
        .unwrap();

    let (mut compared, mut granted, mut one_way, mut stricter, mut differences) = (0, 0, 0, 0, Vec::new());
    // Per kind: how many Clerk granted, and how many it refused.
    let mut outcomes = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for (case, answer) in cases.iter().zip(&clerk) {
        let ours = tokengate_decisions(&verifier, case).await;
        for (i, (q, mine)) in case.queries.iter().zip(ours).enumerate() {
            let theirs = answer["decisions"][i].as_bool().unwrap();
            compared += 1;
            granted += usize::from(theirs);
            let kind = outcomes.entry(q.requirement.kind().as_str()).or_default();
            *(if theirs { &mut kind.0 } else { &mut kind.1 }) += 1;
            let differs = if case.typed { mine != theirs } else { mine && !theirs };
            one_way += usize::from(!case.typed);
            stricter += usize::from(!case.typed && theirs && !mine);
            if differs {
                differences.push(format!(
                    "{} ({}): clerk {theirs}, tokengate {mine}\n    claims {}",
                    q.requirement,
                    q.params.len(),
                    case.claims
                ));
            }
        }
    }
    eprintln!(
        "differential (seed {seed}): {compared} decisions over {n} sessions, {granted} granted by Clerk, {one_way} compared one way (wrong-typed organization claims; {stricter} of them refused by tokengate only)"
    );
    assert!(
        differences.is_empty(),
        "{} decisions differ from Clerk's (TOKENGATE_DIFF_SEED={seed} replays):\n{}",
        differences.len(),
        differences.iter().take(12).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!("granted / refused by Clerk, per kind: {outcomes:?}");
    assert!(granted > compared / 10, "the generator must exercise both outcomes");
    assert!(
        outcomes.len() == 5 && outcomes.values().all(|(yes, no)| *yes >= 20 && *no >= 20),
        "every kind of requirement must be both granted and refused: {outcomes:?}"
    );
}
