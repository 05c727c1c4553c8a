//! The `tokengate` command: issue, list, revoke and verify API keys and M2M tokens in the
//! same database the server reads (by default `tokengate.db` in the working directory; a
//! `postgres://` URL for a PostgreSQL database shared by several servers).
//!
//! ```text
//! tokengate keys create --subject user_123 --name ci --scope write:users --expires-in 30d
//! tokengate keys list --subject user_123 --format json
//! tokengate keys list --limit 50 --after ak_3beecc9c60adb5f9b850e91a8ee1e992
//! tokengate keys revoke ak_3beecc9c60adb5f9b850e91a8ee1e992 --reason "rotated"
//! tokengate keys update ak_3beecc9c60adb5f9b850e91a8ee1e992 --add-scope read:users --name ci-2
//! tokengate keys reroll ak_3beecc9c60adb5f9b850e91a8ee1e992 --grace 24h
//! tokengate keys disable ak_3beecc9c60adb5f9b850e91a8ee1e992 --actor alice
//! tokengate keys history ak_3beecc9c60adb5f9b850e91a8ee1e992 --format json
//! echo "$SECRET" | tokengate keys verify
//! tokengate dpop proof --key client-dpop.pem --method POST --url https://api.example.com/api/transfers --token "$TOKEN"
//! tokengate mtls thumbprint --cert client.pem
//! ```
//!
//! Every command takes `--format json`; every change is recorded in the key's audit trail with
//! `--actor` (default: the OS user). Exit codes: 0 success, 1 failure (an invalid key, a
//! database error, `revoke` of an unknown id), 2 bad input (a malformed flag, conflicting
//! flags, an unknown id given to `update`/`reroll`/`disable`/`enable`/`delete`/`history`).

mod lifecycle;
mod output;
mod parse;

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod binding;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokengate_runtime::VerifyError;
use tokengate_runtime::keys::{
    DEFAULT_DATABASE_URL, KeyChange, KeyKind, KeyQuery, KeySpec, KeyStore, KeyVerifier, MemoryKeyStore, StoreError,
    change, is_key_id, issue, looks_like_secret, now_unix, open_store, quote_id, redact_url, sqlite_file,
};
use tokengate_runtime::rejection::InvalidReason;

use crate::lifecycle::{RerollArgs, Target, UpdateArgs};
use crate::output::{Listing, format_time, print_auth, print_json, record_json};
use crate::parse::{parse_claims, parse_duration, parse_limit, parse_rate};
use tokengate_runtime::rate_limit::Rate;

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
    /// Revoke a key by id (final).
    Revoke(RevokeArgs),
    /// Verify a secret read from standard input (does not count as a use).
    Verify(VerifyArgs),
    /// Change a key's name, description, scopes, claims or expiry (its secret stays).
    Update(UpdateArgs),
    /// Give a key a new secret; the old one keeps working for --grace.
    Reroll(RerollArgs),
    /// Refuse a key until it is enabled again (`token-disabled`).
    Disable(Target),
    /// Accept a disabled key again.
    Enable(Target),
    /// Delete a key (its audit trail stays).
    Delete(Target),
    /// A key's audit trail: every change, when, by whom.
    History(Target),
}

#[derive(Args)]
pub(crate) struct Database {
    /// The key database: `sqlite://PATH`, a file path, `postgres://USER:PASSWORD@HOST/DB`, or
    /// `memory:`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, value_name = "URL")]
    database: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
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
    /// Who issues it, for the audit trail (default: the OS user).
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
    /// A rate limit of the key's own, on every route in addition to the routes' (`20/min`,
    /// `10/s`, `5000/h`, `100000/day`).
    #[arg(long, value_parser = parse_rate, value_name = "RATE")]
    rate_limit: Option<Rate>,
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
    #[arg(long, value_parser = parse_limit, allow_negative_numbers = true)]
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
    /// Who revokes it, for the audit trail (default: the OS user).
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
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
pub(crate) struct Failure {
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

    /// Bad input: exit code 2.
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
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

/// The message for an id no key has. A value shaped like a key's secret is not repeated: the
/// message says how to find the key's id instead, and to reroll a secret that was shown.
pub(crate) fn unknown_id(id: &str, db: &Database) -> String {
    let mut message = format!(
        "no key with id {} in {}; `tokengate keys list` shows the ids",
        quote_id(id),
        redact_url(&db.database)
    );
    if looks_like_secret(id) {
        message.push_str(
            ". Ids are `ak_` or `mt_` and 32 hex digits: to find the id of the key whose secret this is, pipe \
             the secret to `tokengate keys verify`; if it was shown where others can read it, reroll the key \
             (`tokengate keys reroll ID`)",
        );
    }
    message
}

/// The store of a command that reads or changes existing keys. A missing SQLite file is not
/// created (a mistyped path would leave an empty database behind): the command reads an empty
/// store, answers as it would on an empty database, and a note on standard error names the path.
pub(crate) async fn open(db: &Database) -> Result<Arc<dyn KeyStore>, Failure> {
    // Only a file known not to exist: one that cannot be checked (no permission) is opened,
    // and its error reported.
    if let Some(file) = sqlite_file(&db.database)
        && file.try_exists().is_ok_and(|exists| !exists)
    {
        eprintln!(
            "note: no key database at {} (nothing there to read or change): check --database or DATABASE_URL; \
             `tokengate keys create` makes one",
            redact_url(&file.display().to_string())
        );
        return Ok(Arc::new(MemoryKeyStore::new()));
    }
    open_creating(db).await
}

/// The store, created when it is a new SQLite file (`keys create`).
async fn open_creating(db: &Database) -> Result<Arc<dyn KeyStore>, Failure> {
    let database = db.database.trim();
    if database == "memory:" || database == "memory://" || database.contains(":memory:") {
        eprintln!("note: an in-memory database keeps nothing once this command ends");
    }
    open_store(database).await.map_err(Failure::from)
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let store = open_creating(&args.db).await?;
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
    spec = spec.actor(lifecycle::actor(args.actor.as_deref()));
    if let Some(rate) = args.rate_limit {
        spec = spec.rate_limit(rate);
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

async fn revoke(args: RevokeArgs) -> Result<(), Failure> {
    let store = open(&args.db).await?;
    let before = store.get(&args.id).await?;
    let Some(before) = before else {
        return Err(Failure::new(unknown_id(&args.id, &args.db)));
    };
    if let Some(at) = before.revoked_at {
        match args.format {
            Format::Json => print_json(&record_json(&before, now_unix())),
            Format::Text => println!("{} was already revoked at {}", before.id, format_time(at)),
        }
        return Ok(());
    }
    let revoke = KeyChange::Revoke {
        reason: args.reason.clone(),
    };
    let actor = lifecycle::actor(args.actor.as_deref());
    let record = change::apply(&*store, &args.id, &revoke, &actor)
        .await?
        .and_then(|c| c.after)
        .ok_or_else(|| Failure::new(format!("the key `{}` disappeared while revoking it", args.id)))?;
    if let Format::Json = args.format {
        print_json(&record_json(&record, now_unix()));
    } else if store.name() == "postgres" {
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
            Err(Failure::new(format!(
                "invalid: {reason} ({}){}",
                reason.message(),
                verify_hint(secret, reason)
            )))
        }
        Err(e) => Err(Failure::new(e.to_string())),
    }
}

/// What to do about a secret `keys verify` refused, from its shape (never repeating it).
fn verify_hint(input: &str, reason: InvalidReason) -> &'static str {
    if input
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
    {
        "; give the secret alone, without `Bearer `"
    } else if is_key_id(input) {
        "; that is a key's id: `keys verify` reads the key's secret (`ak_…` or `mt_…`, 42 characters)"
    } else if input.starts_with("eyJ") {
        "; `keys verify` checks API keys and M2M tokens (`ak_…`, `mt_…`), not JWTs"
    } else {
        match reason {
            InvalidReason::BadChecksum => "; the secret was mistyped or cut: copy it again",
            InvalidReason::UnknownToken => {
                "; no key in this database has this secret: it was deleted, or issued with another --database"
            }
            _ => "",
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
        Command::Keys(KeysCommand::Update(args)) => lifecycle::update(args).await,
        Command::Keys(KeysCommand::Reroll(args)) => lifecycle::reroll(args).await,
        Command::Keys(KeysCommand::Disable(target)) => lifecycle::apply(target, KeyChange::Disable).await,
        Command::Keys(KeysCommand::Enable(target)) => lifecycle::apply(target, KeyChange::Enable).await,
        Command::Keys(KeysCommand::Delete(target)) => lifecycle::apply(target, KeyChange::Delete).await,
        Command::Keys(KeysCommand::History(target)) => lifecycle::history(target).await,
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
