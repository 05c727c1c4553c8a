//! No span field, event field or metric label holds a token or a part of one: the known
//! traffic of `telemetry.rs` with every span, span field and event captured by a subscriber
//! layer, and the Prometheus exporter's whole output.
//!
//! The only test of its binary, with the subscriber installed process-wide: `tracing` caches
//! each call site's interest across threads, so a subscriber set for one thread while other
//! tests of the same binary run could miss spans.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tokengate_runtime::telemetry;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

mod jwt_support;
mod telemetry_support;

use telemetry_support::{app, recorder, traffic};

// ---------------------------------------------------------------------------------------
// Spans and events, every field as text.

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut Vec<String>, &'a str);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push(format!("{} {}={value:?}", self.1, field.name()));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(format!("{} {}={value}", self.1, field.name()));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Captured {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut lines = self.0.lock().unwrap();
        let name = attrs.metadata().name();
        lines.push(format!("span {name}"));
        attrs.record(&mut Fields(&mut lines, name));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let name = ctx.span(id).map_or("?", |s| s.name());
        values.record(&mut Fields(&mut self.0.lock().unwrap(), name));
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        event.record(&mut Fields(&mut self.0.lock().unwrap(), "event"));
    }
}

/// The parts of a token a leak could show: the whole, each JWT segment, the random part of
/// an opaque secret, and any 12 characters in a row of it.
fn fragments(secret: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![secret.to_owned()];
    out.extend(secret.split('.').filter(|s| s.len() >= 12).map(str::to_owned));
    let chars: Vec<char> = secret.chars().collect();
    out.extend(chars.windows(12).step_by(6).map(|w| w.iter().collect::<String>()));
    out
}

#[tokio::test]
async fn no_label_span_field_or_event_holds_a_secret() {
    let (recorder, handle) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let app = app().await;
    let secrets = traffic(&app).await;

    let lines = captured.0.lock().unwrap().clone();
    // The capture works: the spans and their fields are there to be searched.
    let authorizations = lines.iter().filter(|l| *l == "span tokengate.authorize").count();
    assert_eq!(authorizations, 14, "{lines:#?}");
    for field in [
        "tokengate.authorize code.function.name=app::write",
        "tokengate.authorize tokengate.decision=refused",
        "tokengate.authorize tokengate.reason=bad-checksum",
        "tokengate.authorize tokengate.token_type=session_token",
        "tokengate.authorize http.response.status_code=503",
        "tokengate.authorize otel.status_code=ERROR",
        "tokengate.authorize tokengate.policy=accepts session_token, api_key; scope `write:users` (for api_key)",
        "tokengate.key_store.lookup tokengate.outcome=ok",
    ] {
        assert!(lines.iter().any(|l| l == field), "no `{field}` in {lines:#?}");
    }
    let text = handle.render();
    for secret in &secrets {
        for fragment in fragments(secret) {
            assert!(!text.contains(&fragment), "a label holds `{fragment}`:\n{text}");
            let leak = lines.iter().find(|l| l.contains(&fragment));
            assert!(leak.is_none(), "`{}` holds a part of a token", leak.unwrap());
        }
    }
    assert_eq!(telemetry::DECISIONS, "tokengate_decisions_total");
}
