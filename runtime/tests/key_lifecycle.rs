//! A key's life after it was issued — update, reroll with a grace period, disable, enable,
//! revoke, delete — through a `KeyVerifier`, on every store (memory, a real SQLite file, a real
//! PostgreSQL server), with the audit trail each change leaves; and an update made by one
//! instance seen by another on the same PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

mod pg_support;

use tokengate_runtime::VerifyError;
use tokengate_runtime::keys::{
    KeyAction, KeyChange, KeySpec, KeyStore, KeyUpdate, KeyVerifier, MemoryKeyStore, SqliteKeyStore, StoreError,
    open_store,
};
use tokengate_runtime::rejection::InvalidReason;

/// The reason a secret is refused, or `None` when it is accepted.
async fn refusal(verifier: &KeyVerifier, secret: &str) -> Option<InvalidReason> {
    match verifier.verify_secret(secret).await {
        Ok(_) => None,
        Err(VerifyError::Invalid(reason)) => Some(reason),
        Err(other) => panic!("not a verdict: {other}"),
    }
}

async fn lifecycle(store: Arc<dyn KeyStore>) {
    let name = store.name();
    let verifier = KeyVerifier::new(Arc::clone(&store));
    let issued = verifier
        .issue(KeySpec::api_key("user_1", "ci").scope("read").actor("alice"))
        .await
        .unwrap();
    let id = issued.record.id.clone();
    let first = issued.secret.expose().to_owned();
    assert_eq!(refusal(&verifier, &first).await, None, "{name}");

    // Update: seen by this process at once, though the key was cached.
    let update = KeyUpdate::new()
        .name("ci-2")
        .add_scope("write:users")
        .remove_scope("read");
    let changed = verifier
        .change(&id, &KeyChange::Update(update), "bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.after.as_ref().unwrap().scopes, ["write:users"], "{name}");
    let auth = verifier.verify_secret(&first).await.unwrap();
    assert_eq!(auth.scopes, ["write:users"], "{name}");
    assert_eq!(auth.name.as_deref(), Some("ci-2"), "{name}");
    // Replacing the scopes and adding some at once is refused, as is an expiry in the past.
    let both = KeyUpdate::new().scopes(["a"]).add_scope("b");
    let refused = verifier.change(&id, &KeyChange::Update(both), "bob").await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "{name}: {refused:?}");
    let past = KeyUpdate::new().expires_at(Some(1));
    assert!(matches!(
        verifier.change(&id, &KeyChange::Update(past), "bob").await,
        Err(StoreError::Invalid(_))
    ));

    // Reroll with a grace period: same key, both secrets work until the deadline.
    let second = verifier
        .reroll(&id, Duration::from_secs(2), "bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.record.id, id, "{name}");
    assert_eq!(second.record.scopes, ["write:users"], "{name}");
    let second = second.secret.expose().to_owned();
    assert_ne!(second, first);
    assert_eq!(refusal(&verifier, &second).await, None, "{name}");
    assert_eq!(
        refusal(&verifier, &first).await,
        None,
        "{name}: the old secret during its grace"
    );
    let deadline = Instant::now() + Duration::from_secs(4);
    while refusal(&verifier, &first).await.is_none() {
        assert!(Instant::now() < deadline, "{name}: the old secret outlived its grace");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refusal(&verifier, &first).await, Some(InvalidReason::Rotated), "{name}");
    assert_eq!(refusal(&verifier, &second).await, None, "{name}");

    // Reroll with no grace: the secret it replaces is refused at once.
    let third = verifier.reroll(&id, Duration::ZERO, "bob").await.unwrap().unwrap();
    let third = third.secret.expose().to_owned();
    assert_eq!(
        refusal(&verifier, &second).await,
        Some(InvalidReason::Rotated),
        "{name}"
    );
    assert_eq!(refusal(&verifier, &third).await, None, "{name}");
    let too_long = verifier.reroll(&id, Duration::from_secs(31 * 86_400), "bob").await;
    assert!(matches!(too_long, Err(StoreError::Invalid(_))), "{name}");

    // Disable and enable: reversible; disabling twice records nothing.
    verifier
        .change(&id, &KeyChange::Disable, "carol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        refusal(&verifier, &third).await,
        Some(InvalidReason::Disabled),
        "{name}"
    );
    let again = verifier
        .change(&id, &KeyChange::Disable, "carol")
        .await
        .unwrap()
        .unwrap();
    assert!(again.event.is_none(), "{name}");
    verifier
        .change(&id, &KeyChange::Enable, "carol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refusal(&verifier, &third).await, None, "{name}");

    // Revoke is final: no change but deletion afterwards.
    let revoke = KeyChange::Revoke {
        reason: Some("leaked".into()),
    };
    verifier.change(&id, &revoke, "dave").await.unwrap().unwrap();
    assert_eq!(refusal(&verifier, &third).await, Some(InvalidReason::Revoked), "{name}");
    let enable = verifier.change(&id, &KeyChange::Enable, "dave").await;
    assert!(matches!(enable, Err(StoreError::Invalid(_))), "{name}");
    assert!(verifier.reroll(&id, Duration::ZERO, "dave").await.is_err(), "{name}");

    // Delete: gone, its audit trail kept.
    let deleted = verifier.change(&id, &KeyChange::Delete, "erin").await.unwrap().unwrap();
    assert!(deleted.after.is_none(), "{name}");
    assert!(store.get(&id).await.unwrap().is_none(), "{name}");
    assert_eq!(
        refusal(&verifier, &third).await,
        Some(InvalidReason::UnknownToken),
        "{name}"
    );
    assert!(
        verifier
            .change(&id, &KeyChange::Disable, "erin")
            .await
            .unwrap()
            .is_none()
    );

    let history = verifier.history(&id).await.unwrap();
    let trail: Vec<(KeyAction, &str)> = history.iter().map(|e| (e.action, e.actor.as_str())).collect();
    assert_eq!(
        trail,
        [
            (KeyAction::Create, "alice"),
            (KeyAction::Update, "bob"),
            (KeyAction::Reroll, "bob"),
            (KeyAction::Reroll, "bob"),
            (KeyAction::Disable, "carol"),
            (KeyAction::Enable, "carol"),
            (KeyAction::Revoke, "dave"),
            (KeyAction::Delete, "erin"),
        ],
        "{name}"
    );
    assert_eq!(
        history[1].changes["scopes"],
        serde_json::json!({"from": ["read"], "to": ["write:users"]}),
        "{name}"
    );
    assert_eq!(history[6].changes["reason"], "leaked", "{name}");
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at), "{name}");
    // No secret and no secret's hash in the trail.
    let text = serde_json::to_string(&history).unwrap();
    for secret in [&first, &second, &third] {
        let hash = tokengate_runtime::keys::SecretHash::of(secret);
        let hex: String = hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(secret.as_str()) && !text.contains(&hex), "{name}");
    }
    // An actor that is no one is refused.
    let other = verifier.issue(KeySpec::api_key("user_1", "other")).await.unwrap();
    let nobody = verifier.change(&other.record.id, &KeyChange::Disable, " ").await;
    assert!(matches!(nobody, Err(StoreError::Invalid(_))), "{name}");
    assert_eq!(
        verifier.history(&other.record.id).await.unwrap()[0].actor,
        "application"
    );
}

#[tokio::test]
async fn memory_store() {
    lifecycle(Arc::new(MemoryKeyStore::new())).await;
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(Arc::new(
        SqliteKeyStore::open(dir.path().join("lifecycle.db")).await.unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn postgres_store() {
    let Some((_cluster, url)) = pg_support::database().await else {
        return;
    };
    lifecycle(open_store(&url).await.unwrap()).await;
}

/// Two instances on one PostgreSQL database: an update, a reroll without grace and a disable
/// made through one are seen by the other within about a second, though it had the key cached
/// for 10 minutes.
#[tokio::test]
async fn postgres_changes_reach_a_second_instance() {
    let Some((_cluster, url)) = pg_support::database().await else {
        return;
    };
    let build = |store| {
        KeyVerifier::builder(store)
            .cache_ttl(Duration::from_secs(600))
            .build()
            .unwrap()
    };
    let a = build(open_store(&url).await.unwrap());
    let b = build(open_store(&url).await.unwrap());
    let issued = a
        .issue(KeySpec::api_key("user_1", "shared").scope("read"))
        .await
        .unwrap();
    let id = issued.record.id.clone();
    let secret = issued.secret.expose().to_owned();
    assert_eq!(b.verify_secret(&secret).await.unwrap().scopes, ["read"]);

    let within_seconds = |what: &'static str| (what, Instant::now() + Duration::from_secs(3));
    a.change(&id, &KeyChange::Update(KeyUpdate::new().add_scope("write")), "ops")
        .await
        .unwrap();
    let (what, deadline) = within_seconds("the update");
    while b.verify_secret(&secret).await.unwrap().scopes != ["read", "write"] {
        assert!(Instant::now() < deadline, "{what} did not reach the second instance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let rerolled = a.reroll(&id, Duration::ZERO, "ops").await.unwrap().unwrap();
    let (what, deadline) = within_seconds("the reroll");
    while refusal(&b, &secret).await != Some(InvalidReason::Rotated) {
        assert!(Instant::now() < deadline, "{what} did not reach the second instance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new_secret = rerolled.secret.expose().to_owned();
    assert_eq!(refusal(&b, &new_secret).await, None);

    a.change(&id, &KeyChange::Disable, "ops").await.unwrap();
    let (what, deadline) = within_seconds("disabling");
    while refusal(&b, &new_secret).await != Some(InvalidReason::Disabled) {
        assert!(Instant::now() < deadline, "{what} did not reach the second instance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
