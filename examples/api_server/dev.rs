//! Development mode: the generated RSA key, demo API keys and tokens, a DPoP key and a token
//! bound to it, and the `curl` lines printed at start-up.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokengate::binding::proof::DpopKey;
use tokengate::jwt::KeySet;
use tokengate::keys::{KeyQuery, KeySpec, KeyVerifier};

use crate::args::Args;
use crate::dev_key;
use crate::{DEMO_USER, DEV_AUDIENCE, DEV_ISSUER, DEV_KEY_FILE, Fatal, fail};

/// Beside the SQLite file, or in the working directory with PostgreSQL.
pub(crate) fn dev_key_path(db_path: Option<&Path>) -> PathBuf {
    db_path
        .and_then(Path::parent)
        .unwrap_or(Path::new(""))
        .join(DEV_KEY_FILE)
}

/// The development DPoP key's file, beside the development RSA key.
const DEV_DPOP_KEY_FILE: &str = "tokengate-dev-dpop-key.pem";

/// The development keys: the RSA key pair that signs development tokens (shared with the MCP
/// example) and a DPoP client key, generated once, kept beside the database.
pub(crate) struct DevKey {
    rsa: dev_key::DevKey,
    /// The client key the development DPoP-bound token is bound to.
    pub(crate) dpop: DpopKey,
    pub(crate) dpop_path: PathBuf,
}

/// The development DPoP key at `path`: read, or generated and written (mode 0600).
fn dpop_key(path: &Path) -> Result<DpopKey, Fatal> {
    match std::fs::read_to_string(path) {
        Ok(pem) => DpopKey::from_pkcs8_pem(&pem).map_err(|e| {
            fail(format!(
                "{} is not a usable DPoP key: {e}; delete it to generate a new one",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = DpopKey::generate()?;
            dev_key::write_private_file(path, &key.to_pkcs8_pem())
                .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
            Ok(key)
        }
        Err(e) => Err(fail(format!(
            "cannot read the development DPoP key {}: {e}",
            path.display()
        ))),
    }
}

impl DevKey {
    pub(crate) fn load_or_create(path: &Path) -> Result<DevKey, Fatal> {
        let dpop_path = path.with_file_name(DEV_DPOP_KEY_FILE);
        let dpop = dpop_key(&dpop_path)?;
        let rsa = dev_key::DevKey::load_or_create(path).map_err(fail)?;
        Ok(DevKey { rsa, dpop, dpop_path })
    }

    pub(crate) fn key_set(&self) -> Result<KeySet, Fatal> {
        self.rsa.key_set().map_err(fail)
    }

    fn sign(&self, typ: &str, claims: &Value) -> Result<String, Fatal> {
        self.rsa.sign(typ, claims).map_err(fail)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The demo keys development mode issues: subject and name.
const DEMO_KEYS: [(&str, &str); 3] = [
    (DEMO_USER, "demo-write"),
    (DEMO_USER, "demo-read"),
    ("mch_demo", "demo-m2m"),
];

/// Revokes the demo keys an earlier start issued, found by subject and name (an indexed query
/// each, so a database with many keys under the demo user starts as fast as an empty one).
async fn revoke_demo_keys(keys: &KeyVerifier) -> Result<(), Fatal> {
    for (subject, name) in DEMO_KEYS {
        let mut query = KeyQuery::new().subject(subject).name(name);
        loop {
            let page = keys.store().list_page(&query).await?;
            for old in page.iter().filter(|k| k.revoked_at.is_none()) {
                keys.revoke(&old.id, Some("replaced at server start")).await?;
            }
            match page.last() {
                Some(last) if page.len() == query.limit => query = query.after(last.id.clone()),
                _ => break,
            }
        }
    }
    Ok(())
}

/// Issues fresh demo keys (revoking the previous ones: secrets are shown once) and prints
/// every credential a newcomer needs, with a `curl` line for each route.
/// The development tokens printed at start-up, signed with the development key.
pub(crate) struct DemoTokens {
    /// Passes every session route: organization admin, feature, plan, fresh factors.
    pub(crate) session: String,
    /// Refused by every session requirement.
    pub(crate) plain_session: String,
    /// `acr` `mfa`, authenticated now.
    pub(crate) oauth: String,
    /// `acr` `pwd`: refused by `POST /api/payouts` with the RFC 9470 challenge.
    pub(crate) password_oauth: String,
    /// Bound to the development DPoP key (`cnf.jkt`): `POST /api/transfers` with a proof.
    pub(crate) dpop_oauth: String,
}

impl DemoTokens {
    pub(crate) fn sign(dev: &DevKey, args: &Args) -> Result<DemoTokens, Fatal> {
        let iat = now();
        let issuer = args.session_issuers.first().map_or(DEV_ISSUER, String::as_str);
        let mut session = json!({
            "iss": issuer, "sub": DEMO_USER, "sid": "sess_demo", "sts": "active",
            "iat": iat, "nbf": iat, "exp": iat + 3600,
        });
        if let Some(azp) = args.authorized_parties.first() {
            session["azp"] = json!(azp);
        }
        let mut plain = session.clone();
        plain["fva"] = json!([120, -1]);
        let entitled = json!({
            "org_id": "org_demo", "org_slug": "demo", "org_role": "org:admin",
            "org_permissions": ["org:invoices:read"], "fea": "o:exports", "pla": "o:pro", "fva": [0, 0],
        });
        if let (Value::Object(claims), Value::Object(extra)) = (&mut session, entitled) {
            claims.extend(extra);
        }
        let oauth = |acr: &str| {
            json!({
                "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": DEMO_USER, "client_id": "client_demo",
                "scope": "write:users", "iat": iat, "exp": iat + 3600, "jti": format!("demo-{acr}-{iat}"),
                "acr": acr, "auth_time": iat,
            })
        };
        let mut bound = oauth("mfa");
        bound["jti"] = json!(format!("demo-dpop-{iat}"));
        bound["cnf"] = json!({ "jkt": dev.dpop.thumbprint() });
        Ok(DemoTokens {
            session: dev.sign("JWT", &session)?,
            plain_session: dev.sign("JWT", &plain)?,
            oauth: dev.sign("at+jwt", &oauth("mfa"))?,
            password_oauth: dev.sign("at+jwt", &oauth("pwd"))?,
            dpop_oauth: dev.sign("at+jwt", &bound)?,
        })
    }
}

/// The `curl` lines of the session routes: each with a token that passes and one refused.
fn print_session_routes(base: &str, t: &DemoTokens) {
    let (ok, plain) = (&t.session, &t.plain_session);
    for (method, path, refusal) in [
        ("GET", "/api/org/members", "403 no-active-organization"),
        ("GET", "/api/invoices", "403 no-active-organization"),
        ("GET", "/api/exports", "403 missing-feature"),
        ("GET", "/api/analytics", "403 missing-plan"),
        ("DELETE", "/api/account", "403 reverification-error (Clerk's body)"),
        ("POST", "/api/payouts", "403 reverification-error (Clerk's body)"),
    ] {
        println!("  curl -X {method} -H 'Authorization: Bearer {ok}' {base}{path}");
        println!("  curl -X {method} -H 'Authorization: Bearer {plain}' {base}{path}   # {refusal}");
    }
    println!(
        "  curl -X POST -H 'Authorization: Bearer {}' {base}/api/payouts",
        t.oauth
    );
    println!(
        "  curl -i -X POST -H 'Authorization: Bearer {}' {base}/api/payouts   # 401 insufficient_user_authentication",
        t.password_oauth
    );
}

/// The DPoP-bound token and how to call `POST /api/transfers` with it: a proof made by the
/// `tokengate` CLI with the development DPoP key, fresh for each request.
fn print_dpop_route(base: &str, dev: &DevKey, t: &DemoTokens, nonces: bool) {
    let key = dev.dpop_path.display();
    let url = format!("{base}/api/transfers");
    println!();
    println!("dev DPoP key:                 {key} (jkt {})", dev.dpop.thumbprint());
    println!("dev DPoP-bound OAuth token:   {}", t.dpop_oauth);
    println!("   (bound to the dev DPoP key: send `Authorization: DPoP <token>` and a fresh `DPoP` proof per request)");
    let nonce = if nonces {
        println!("   (--dpop-nonce: the first call answers 401 use_dpop_nonce; add `--nonce <its DPoP-Nonce header>`)");
        " --nonce $NONCE"
    } else {
        ""
    };
    println!("  TOKEN={}", t.dpop_oauth);
    println!(
        "  curl -X POST -H \"Authorization: DPoP $TOKEN\" -H \"DPoP: $(cargo run -q -p tokengate-cli -- dpop proof --key {key} --method POST --url {url} --token $TOKEN{nonce})\" {url}"
    );
    println!("  curl -i -X POST -H \"Authorization: Bearer $TOKEN\" {url}   # 401 dpop-bound-token-as-bearer");
    println!(
        "  curl -i -X POST -H 'Authorization: Bearer {}' {url}   # 401 dpop-required",
        t.oauth
    );
    println!(
        "  POST {base}/api/settlements takes a token bound to a client certificate (cnf.x5t#S256: `tokengate mtls thumbprint --cert client.pem`), over --tls-client-ca or a trusted proxy's --client-cert-header"
    );
}

/// The demo keys' secrets, as printed.
struct DemoKeys<'a> {
    writer: &'a str,
    reader: &'a str,
    machine: &'a str,
}

/// The development-mode banner and every demo credential, one a line.
fn print_credentials(demo: &DemoKeys<'_>, tokens: &DemoTokens) {
    let DemoKeys {
        writer,
        reader,
        machine,
    } = demo;
    let session = &tokens.session;
    let oauth = &tokens.oauth;
    println!();
    println!("!! DEVELOPMENT MODE — a generated key signs the tokens below. NOT FOR PRODUCTION. !!");
    println!("   Pass --session-public-key / --session-jwks-url (and OAuth options) in production.");
    println!();
    println!("demo API key (write:users):   {writer}");
    println!("demo API key (no scopes):     {reader}");
    println!("demo M2M token (write:users): {machine}");
    println!("dev session token (1 hour):   {session}");
    println!(
        "   (org:admin of org_demo with org:invoices:read, feature o:exports, plan o:pro, both factors just verified)"
    );
    println!("dev session token (plain):    {}", tokens.plain_session);
    println!("   (no organization, feature or plan; first factor verified 2 hours ago, no second factor)");
    println!("dev OAuth token (write:users): {oauth}");
    println!("   (acr mfa, authenticated at start-up: passes max_age=600 for 10 minutes)");
    println!("dev OAuth token (password):   {}", tokens.password_oauth);
}

/// `curl` lines for the API routes, each with a credential that passes (or the refusal it meets).
fn print_api_routes(base: &str, demo: &DemoKeys<'_>, tokens: &DemoTokens) {
    let DemoKeys {
        writer,
        reader,
        machine,
    } = demo;
    let session = &tokens.session;
    let oauth = &tokens.oauth;
    println!();
    println!("try:");
    println!("  curl {base}/health");
    println!("  curl -H 'Authorization: Bearer {writer}' {base}/api/me   # the verified caller");
    println!("  curl -H 'Authorization: Bearer {session}' {base}/api/me");
    println!("  curl {base}/api/feed   # anonymous: {{\"personalized\":false}}");
    println!("  curl -H 'Authorization: Bearer {session}' {base}/api/feed   # personalized");
    println!("  curl -H 'Authorization: Bearer {writer}' {base}/api/example");
    println!("  curl -X POST -H 'Authorization: Bearer {writer}' {base}/api/example");
    println!("  curl -X POST -H 'Authorization: Bearer {reader}' {base}/api/example   # 403: no write:users");
    println!("  curl -X POST -H 'Authorization: Bearer {session}' {base}/api/example");
    println!("  curl -X POST -H 'Authorization: Bearer {oauth}' {base}/api/example");
    println!("  curl -X DELETE -H 'Authorization: Bearer {machine}' {base}/api/users/user_nobody   # 404");
}

pub(crate) async fn print_demo_credentials(
    base: &str,
    dev: &DevKey,
    keys: &KeyVerifier,
    args: &Args,
) -> Result<(), Fatal> {
    revoke_demo_keys(keys).await?;
    let writer = keys
        .issue(KeySpec::api_key(DEMO_USER, "demo-write").scope("write:users"))
        .await?;
    let reader = keys.issue(KeySpec::api_key(DEMO_USER, "demo-read")).await?;
    let machine = keys
        .issue(KeySpec::m2m_token("mch_demo", "demo-m2m").scope("write:users"))
        .await?;
    let tokens = DemoTokens::sign(dev, args)?;
    let demo = DemoKeys {
        writer: writer.secret.expose(),
        reader: reader.secret.expose(),
        machine: machine.secret.expose(),
    };
    print_credentials(&demo, &tokens);
    print_api_routes(base, &demo, &tokens);
    print_session_routes(base, &tokens);
    print_dpop_route(base, dev, &tokens, args.dpop_nonce);
    println!();
    println!("create your own: cargo run -p tokengate-cli -- keys create --subject user_123 --scope write:users");
    Ok(())
}
