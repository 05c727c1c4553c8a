//! `keys update`, `reroll`, `disable`, `enable`, `delete` and `history`: a key's life after it
//! was issued, each change recorded in the audit trail with its actor.

use std::time::Duration;

use clap::Args;
use tokengate_runtime::keys::{Changed, KeyChange, KeyEvent, KeyUpdate, change, now_unix};

use crate::output::{format_time, print_json, record_json};
use crate::parse::{parse_claims, parse_duration, parse_grace, parse_rate};
use crate::{Database, Failure, Format, open, unknown_id};
use tokengate_runtime::rate_limit::Rate;

/// Flags every command that changes a key takes.
#[derive(Args)]
pub(crate) struct Target {
    #[command(flatten)]
    db: Database,
    /// The key's id (`ak_…`/`mt_…` followed by 32 hex digits), as `keys list` shows it.
    id: String,
    /// Who makes the change, for the audit trail (default: the OS user).
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Args)]
pub(crate) struct UpdateArgs {
    #[command(flatten)]
    target: Target,
    /// A new name.
    #[arg(long)]
    name: Option<String>,
    /// A new description.
    #[arg(long, conflicts_with = "no_description")]
    description: Option<String>,
    /// Remove the description.
    #[arg(long)]
    no_description: bool,
    /// Replace every scope with these (repeat for several).
    #[arg(long = "scope", value_name = "SCOPE", conflicts_with_all = ["add_scopes", "remove_scopes"])]
    scopes: Vec<String>,
    /// A scope to add (repeatable).
    #[arg(long = "add-scope", value_name = "SCOPE")]
    add_scopes: Vec<String>,
    /// A scope to remove (repeatable).
    #[arg(long = "remove-scope", value_name = "SCOPE")]
    remove_scopes: Vec<String>,
    /// New custom claims: a JSON object, replacing the old ones.
    #[arg(long, value_parser = parse_claims, value_name = "JSON")]
    claims: Option<serde_json::Value>,
    /// A new lifetime from now: a number and a unit (`s`, `m`, `h`, `d`, `w`), e.g. `30d`.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", conflicts_with = "no_expiry")]
    expires_in: Option<Duration>,
    /// Never expire.
    #[arg(long)]
    no_expiry: bool,
    /// A new rate limit of the key's own (`20/min`), on every route in addition to the routes'.
    #[arg(long, value_parser = parse_rate, value_name = "RATE", conflicts_with = "no_rate_limit")]
    rate_limit: Option<Rate>,
    /// Remove the key's own rate limit.
    #[arg(long)]
    no_rate_limit: bool,
}

#[derive(Args)]
pub(crate) struct RerollArgs {
    #[command(flatten)]
    target: Target,
    /// How long the current secret keeps working: `0` (refused at once) or e.g. `24h`, `7d`
    /// (at most 30 days).
    #[arg(long, value_parser = parse_grace, value_name = "DURATION")]
    grace: Duration,
}

impl UpdateArgs {
    fn update(&self) -> Result<KeyUpdate, Failure> {
        let mut update = KeyUpdate::new();
        update.name.clone_from(&self.name);
        if self.no_description {
            update = update.description(None);
        } else if let Some(description) = &self.description {
            update = update.description(Some(description.clone()));
        }
        if !self.scopes.is_empty() {
            update = update.scopes(self.scopes.clone());
        }
        update.add_scopes.clone_from(&self.add_scopes);
        update.remove_scopes.clone_from(&self.remove_scopes);
        update.claims.clone_from(&self.claims);
        if self.no_expiry {
            update = update.expires_at(None);
        } else if let Some(lifetime) = self.expires_in {
            let secs = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
            update = update.expires_at(Some(now_unix().saturating_add(secs)));
        }
        if self.no_rate_limit {
            update = update.rate_limit(None);
        } else if let Some(rate) = self.rate_limit {
            update = update.rate_limit(Some(rate));
        }
        if update == KeyUpdate::new() {
            return Err(Failure::usage(
                "nothing to update: give --name, --description, --scope, --add-scope, --remove-scope, --claims, \
                 --expires-in, --no-expiry, --rate-limit or --no-rate-limit",
            ));
        }
        Ok(update)
    }
}

/// The actor of a change: `--actor`, else the OS user.
pub(crate) fn actor(given: Option<&str>) -> String {
    given.map(str::to_owned).unwrap_or_else(|| {
        ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
            .unwrap_or_else(|| "unknown".into())
    })
}

fn unknown(target: &Target) -> Failure {
    Failure::usage(unknown_id(&target.id, &target.db))
}

/// Applies a change and prints what it did.
pub(crate) async fn apply(target: Target, change: KeyChange) -> Result<(), Failure> {
    let store = open(&target.db).await?;
    let actor = actor(target.actor.as_deref());
    let changed = change::apply(&*store, &target.id, &change, &actor)
        .await?
        .ok_or_else(|| unknown(&target))?;
    print_changed(&changed, target.format, store.name());
    Ok(())
}

pub(crate) async fn update(args: UpdateArgs) -> Result<(), Failure> {
    let update = args.update()?;
    apply(args.target, KeyChange::Update(update)).await
}

pub(crate) async fn reroll(args: RerollArgs) -> Result<(), Failure> {
    let target = args.target;
    let store = open(&target.db).await?;
    let actor = actor(target.actor.as_deref());
    let (record, secret) = change::reroll(&*store, &target.id, args.grace, &actor)
        .await?
        .ok_or_else(|| unknown(&target))?;
    let until = record.grace_until.unwrap_or_default();
    match target.format {
        Format::Json => {
            let mut value = record_json(&record, now_unix());
            value["secret"] = secret.expose().into();
            print_json(&value);
        }
        Format::Text => {
            println!("Rerolled {}: a new secret for the same key", record.id);
            if args.grace.is_zero() {
                println!("The old secret is refused now.");
            } else {
                println!("The old secret keeps working until {}.", format_time(until));
            }
            println!("New secret (shown once, store it now):");
            println!("{}", secret.expose());
        }
    }
    Ok(())
}

pub(crate) async fn history(target: Target) -> Result<(), Failure> {
    let store = open(&target.db).await?;
    let events = store.history(&target.id).await?;
    if events.is_empty() && store.get(&target.id).await?.is_none() {
        return Err(unknown(&target));
    }
    match target.format {
        Format::Json => print_json(&serde_json::to_value(&events).unwrap_or_default()),
        Format::Text => {
            println!("{:<20}  {:<8}  {:<16}  CHANGES", "AT", "ACTION", "ACTOR");
            for e in &events {
                print_event(e);
            }
        }
    }
    Ok(())
}

fn print_event(e: &KeyEvent) {
    let changes = if e.changes.as_object().is_some_and(serde_json::Map::is_empty) {
        String::new()
    } else {
        e.changes.to_string()
    };
    println!(
        "{:<20}  {:<8}  {:<16}  {changes}",
        format_time(e.at),
        e.action.as_str(),
        e.actor
    );
}

fn print_changed(changed: &Changed, format: Format, store: &str) {
    let now = now_unix();
    match format {
        Format::Json => {
            let record = changed.after.as_ref().unwrap_or(&changed.before);
            let mut value = record_json(record, now);
            if changed.after.is_none() {
                value["status"] = "deleted".into();
            }
            value["changed"] = changed.event.is_some().into();
            print_json(&value);
        }
        Format::Text => {
            let id = &changed.before.id;
            let Some(event) = &changed.event else {
                println!("{id}: nothing to change");
                return;
            };
            let done = match event.action.as_str() {
                "update" => "Updated",
                "disable" => "Disabled",
                "enable" => "Enabled",
                "revoke" => "Revoked",
                "delete" => "Deleted",
                other => other,
            };
            println!("{done} {id}");
            if event.action.as_str() == "update" {
                println!("{}", event.changes);
            }
            if store == "postgres" {
                println!("Servers on this PostgreSQL database are notified and see it within about a second.");
            } else {
                println!("Servers see it within their key cache TTL (30 s by default).");
            }
        }
    }
}
