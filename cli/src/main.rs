//! The `tokengate` command: issue, list, revoke and verify API keys and M2M tokens in the
//! same database the server reads (by default `tokengate.db` in the working directory; a
//! `postgres://` URL for a PostgreSQL database shared by several servers).
//!
//! ```text
//! tokengate keys create --subject user_123 --name ci --scope write:users --expires-in 30d
//! tokengate keys list --subject user_123 --format json
//! tokengate keys list --limit 50 --after ak_3beecc9c60adb5f9b850e91a8ee1e992
//! tokengate keys revoke ak_3beecc9c60adb5f9b850e91a8ee1e992 --reason "rotated"
//! echo "$SECRET" | tokengate keys verify
//! tokengate dpop proof --key client-dpop.pem --method POST --url https://api.example.com/api/transfers --token "$TOKEN"
//! tokengate mtls thumbprint --cert client.pem
//! ```
//!
//! Exit codes: 0 success, 1 failure (unknown id, invalid key, database error), 2 usage error.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod binding;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokengate_runtime::keys::{
    DEFAULT_DATABASE_URL, KeyKind, KeyQuery, KeyRecord, KeySpec, KeyStore, KeyVerifier, StoreError, issue, now_unix,
    open_store, redact_url,
};
use tokengate_runtime::{Auth, VerifyError};

#[derive(Parser)]
#[command(
    name = "tokengate",
    version,
    about = "Manage tokengate API keys and M2M tokens; make DPoP proofs and certificate thumbprints"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Issue, list, revoke and verify API keys (`ak_…`) and M2M tokens (`mt_…`).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// DPoP (RFC 9449) for clients: a key, its thumbprint, a proof for one request.
    #[command(subcommand)]
    Dpop(binding::DpopCommand),
    /// Certificate-bound tokens (RFC 8705): a certificate's thumbprint.
    #[command(subcommand)]
    Mtls(binding::MtlsCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret (shown once: store it now).
    Create(CreateArgs),
    /// List keys: ids and metadata, never secrets.
    List(ListArgs),
    /// Revoke a key by id.
    Revoke(RevokeArgs),
    /// Verify a secret read from standard input (does not count as a use).
    Verify(VerifyArgs),
}

#[derive(Args)]
struct Database {
    /// The key database: `sqlite://PATH`, a file path, `postgres://USER:PASSWORD@HOST/DB`, or
    /// `memory:`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, value_name = "URL")]
    database: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// For people.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// An API key, `ak_…`.
    ApiKey,
    /// An opaque machine-to-machine token, `mt_…`.
    M2m,
}

#[derive(Args)]
struct CreateArgs {
    #[command(flatten)]
    db: Database,
    /// Whom the key acts for: `user_…`, `org_…` or `mch_…`.
    #[arg(long)]
    subject: String,
    /// A name for people (`ci`, `billing-worker`).
    #[arg(long, default_value = "cli")]
    name: String,
    /// A longer description.
    #[arg(long)]
    description: Option<String>,
    /// A scope the key carries (repeat for several).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Custom claims: a JSON object.
    #[arg(long, value_parser = parse_claims, value_name = "JSON")]
    claims: Option<serde_json::Value>,
    /// Lifetime: a number and a unit (`s`, `m`, `h`, `d`, `w`), e.g. `30d`. Default: never expires.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    expires_in: Option<Duration>,
    /// What to issue.
    #[arg(long, value_enum, default_value = "api-key")]
    kind: Kind,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    db: Database,
    /// Only the keys of this subject.
    #[arg(long)]
    subject: Option<String>,
    /// At most this many keys (default: all, read a page at a time).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Only the keys after this one (an id the previous listing showed last), oldest first.
    #[arg(long, value_name = "ID")]
    after: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Args)]
struct RevokeArgs {
    #[command(flatten)]
    db: Database,
    /// The key's id (`ak_…`/`mt_…` followed by 32 hex digits), as `keys list` shows it.
    id: String,
    /// Why, kept with the key.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    db: Database,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        let code = match e {
            StoreError::Invalid(_) | StoreError::InvalidConfig(_) | StoreError::Unsupported(_) => 2,
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

fn parse_claims(text: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err("the claims must be a JSON object, e.g. '{\"team\":\"billing\"}'".into()),
        Err(e) => Err(format!(
            "not valid JSON ({e}); give an object, e.g. '{{\"team\":\"billing\"}}'"
        )),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let usage = || format!("`{text}` is not a duration: use a number and a unit, e.g. 30d, 12h, 15m, 3600s or 2w");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| usage())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(usage()),
    };
    if number == 0 {
        return Err("the lifetime must be more than zero".into());
    }
    let secs = number
        .checked_mul(unit_secs)
        .filter(|s| *s <= 100 * 366 * 86_400)
        .ok_or_else(|| "the lifetime must be at most 100 years".to_string())?;
    Ok(Duration::from_secs(secs))
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn status(record: &KeyRecord, now: i64) -> &'static str {
    if record.is_revoked() {
        "revoked"
    } else if record.is_expired_at(now) {
        "expired"
    } else {
        "active"
    }
}

fn record_json(record: &KeyRecord, now: i64) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    value["status"] = status(record, now).into();
    value
}

fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

async fn open(db: &Database) -> Result<Arc<dyn KeyStore>, Failure> {
    open_store(&db.database).await.map_err(Failure::from)
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let store = open(&args.db).await?;
    let kind = match args.kind {
        Kind::ApiKey => KeyKind::ApiKey,
        Kind::M2m => KeyKind::M2mToken,
    };
    let mut spec = KeySpec::new(kind, args.subject, args.name).scopes(args.scopes);
    if let Some(description) = args.description {
        spec = spec.description(description);
    }
    if let Some(claims) = args.claims {
        spec = spec.claims(claims);
    }
    if let Some(lifetime) = args.expires_in {
        spec = spec.expires_in(lifetime);
    }
    let issued = issue(&*store, spec).await?;
    let record = &issued.record;
    match args.format {
        Format::Json => {
            let mut value = record_json(record, now_unix());
            value["secret"] = issued.secret.expose().into();
            print_json(&value);
        }
        Format::Text => {
            let what = match record.kind {
                KeyKind::ApiKey => "API key",
                KeyKind::M2mToken => "M2M token",
            };
            println!("Created {what} {} ({}) for {}", record.id, record.name, record.subject);
            if !record.scopes.is_empty() {
                println!("Scopes:  {}", record.scopes.join(" "));
            }
            if let Some(exp) = record.expires_at {
                println!("Expires: {}", format_time(exp));
            }
            println!("Secret (shown once, store it now):");
            println!("{}", issued.secret.expose());
        }
    }
    Ok(())
}

/// How many keys `keys list` reads at a time: the listing streams, whatever the table's size.
const LIST_PAGE: usize = 500;

async fn list(args: ListArgs) -> Result<(), Failure> {
    let store = open(&args.db).await?;
    let mut remaining = args
        .limit
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut query = KeyQuery::new().limit(LIST_PAGE.min(remaining));
    query.subject = args.subject;
    query.after = args.after;
    let mut out = Listing::new(args.format);
    while remaining > 0 {
        query = query.limit(LIST_PAGE.min(remaining));
        let page = store.list_page(&query).await?;
        remaining -= page.len();
        out.rows(&page);
        match page.last() {
            Some(last) if page.len() == query.limit => query.after = Some(last.id.clone()),
            _ => break,
        }
    }
    out.finish();
    if remaining == 0 && !out.is_empty() {
        let more = store.list_page(&query.limit(1)).await?;
        if !more.is_empty() {
            eprintln!("more keys follow: list them with --after {}", out.last_id());
        }
    }
    Ok(())
}

/// The output of `keys list`, printed a page at a time: a table, or one JSON array.
struct Listing {
    format: Format,
    now: i64,
    printed: usize,
    last_id: String,
}

impl Listing {
    fn new(format: Format) -> Listing {
        Listing {
            format,
            now: now_unix(),
            printed: 0,
            last_id: String::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.printed == 0
    }

    fn last_id(&self) -> &str {
        &self.last_id
    }

    fn rows(&mut self, records: &[KeyRecord]) {
        for r in records {
            match self.format {
                Format::Json => {
                    let text = serde_json::to_string_pretty(&record_json(r, self.now)).unwrap_or_default();
                    let indented = text.replace('\n', "\n  ");
                    print!("{}\n  {indented}", if self.printed == 0 { "[" } else { "," });
                }
                Format::Text => {
                    if self.printed == 0 {
                        println!(
                            "{:<35}  {:<9}  {:<7}  {:<20}  {:<20}  {:<20}  SCOPES",
                            "ID", "KIND", "STATUS", "NAME", "SUBJECT", "LAST USED"
                        );
                    }
                    let last_used = r.last_used_at.map_or_else(|| "never".into(), format_time);
                    println!(
                        "{:<35}  {:<9}  {:<7}  {:<20}  {:<20}  {:<20}  {}",
                        r.id,
                        r.kind.as_str(),
                        status(r, self.now),
                        r.name,
                        r.subject,
                        last_used,
                        r.scopes.join(" ")
                    );
                }
            }
            self.printed += 1;
            self.last_id.clone_from(&r.id);
        }
        let _ = std::io::stdout().flush();
    }

    fn finish(&self) {
        match (self.format, self.printed) {
            (Format::Json, 0) => println!("[]"),
            (Format::Json, _) => println!("\n]"),
            (Format::Text, 0) => println!("No keys."),
            (Format::Text, _) => {}
        }
    }
}

async fn revoke(args: RevokeArgs) -> Result<(), Failure> {
    let store = open(&args.db).await?;
    let before = store.get(&args.id).await?;
    let Some(before) = before else {
        return Err(Failure::new(format!(
            "no key with id `{}` in {}; `tokengate keys list` shows the ids",
            args.id.escape_debug(),
            redact_url(&args.db.database)
        )));
    };
    if let Some(at) = before.revoked_at {
        println!("{} was already revoked at {}", before.id, format_time(at));
        return Ok(());
    }
    let record = store
        .revoke(&args.id, args.reason.as_deref(), now_unix())
        .await?
        .ok_or_else(|| Failure::new(format!("the key `{}` disappeared while revoking it", args.id)))?;
    if store.name() == "postgres" {
        println!(
            "Revoked {}; servers on this PostgreSQL database are notified and stop accepting it within about a second",
            record.id
        );
    } else {
        println!(
            "Revoked {}; servers stop accepting it within their key cache TTL (30 s by default)",
            record.id
        );
    }
    Ok(())
}

async fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let mut input = String::new();
    std::io::stdin()
        .take(8 * 1024)
        .read_to_string(&mut input)
        .map_err(|e| Failure::new(format!("cannot read the secret from standard input: {e}")))?;
    let secret = input.trim();
    if secret.is_empty() {
        return Err(Failure {
            code: 2,
            message: "no secret on standard input; pipe it in: `echo \"$SECRET\" | tokengate keys verify`".into(),
        });
    }
    let store = open(&args.db).await?;
    let verifier = KeyVerifier::new(store);
    match verifier.verify_secret(secret).await {
        Ok(auth) => {
            print_auth(&auth, args.format);
            Ok(())
        }
        Err(VerifyError::Invalid(reason)) => {
            if let Format::Json = args.format {
                print_json(&serde_json::json!({"valid": false, "reason": reason.as_str()}));
            }
            Err(Failure::new(format!("invalid: {reason}")))
        }
        Err(e) => Err(Failure::new(e.to_string())),
    }
}

fn print_auth(auth: &Auth, format: Format) {
    match format {
        Format::Json => {
            let mut value = serde_json::to_value(auth).unwrap_or_default();
            value["valid"] = true.into();
            print_json(&value);
        }
        Format::Text => {
            println!("valid {}", auth.token_type);
            println!("id:      {}", auth.id.as_deref().unwrap_or("-"));
            println!("name:    {}", auth.name.as_deref().unwrap_or("-"));
            println!("subject: {}", auth.subject.as_deref().unwrap_or("-"));
            println!("scopes:  {}", auth.scopes.join(" "));
            if let Some(exp) = auth.expiration {
                println!("expires: {}", format_time(exp));
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(KeysCommand::Create(args)) => create(args).await,
        Command::Keys(KeysCommand::List(args)) => list(args).await,
        Command::Keys(KeysCommand::Revoke(args)) => revoke(args).await,
        Command::Keys(KeysCommand::Verify(args)) => verify(args).await,
        Command::Dpop(command) => binding::dpop(command).map_err(Failure::new),
        Command::Mtls(command) => binding::mtls(command).map_err(Failure::new),
    };
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("30y").is_err());
        assert!(parse_duration("99999999999w").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_716_883_200), "2024-05-28T08:00:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn claims() {
        assert!(parse_claims(r#"{"a":1}"#).is_ok());
        assert!(parse_claims("[1]").unwrap_err().contains("JSON object"));
        assert!(parse_claims("{").unwrap_err().contains("not valid JSON"));
    }
}
