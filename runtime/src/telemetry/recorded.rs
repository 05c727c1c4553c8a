//! The recording functions with the `metrics` feature: each builds its key from kept label
//! sets ([`labels`](super::labels)) and hands it to the installed recorder (global or local).

use std::time::Instant;

use metrics::{Key, Level, Metadata, Unit};

use super::labels::key;
use super::{
    BACKEND_CALL_DURATION, BACKEND_CALLS, BACKEND_CALLS_IN_FLIGHT, Backend, CACHE_LOOKUPS, Cache, CallOutcome,
    DECISIONS, KEY_DECISIONS, Notice, Outcome, REVOCATION_NOTICES, VERIFICATION_DURATION,
};
use crate::token::TokenType;

static METADATA: Metadata<'static> = Metadata::new("tokengate", Level::INFO, Some(module_path!()));

static DECISION_LABELS: [&str; 4] = ["route", "token_type", "outcome", "reason"];
static KEY_DECISION_LABELS: [&str; 3] = ["route", "token_type", "key_id"];
static CACHE_LABELS: [&str; 2] = ["cache", "result"];
static VERIFICATION_LABELS: [&str; 2] = ["verifier", "token_type"];
static BACKEND_LABELS: [&str; 1] = ["backend"];
static BACKEND_CALL_LABELS: [&str; 2] = ["backend", "outcome"];
static NOTICE_LABELS: [&str; 1] = ["kind"];

/// The time since a start, for a histogram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopwatch(Instant);

impl Stopwatch {
    #[inline]
    pub(crate) fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    fn seconds(self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

fn count(key: &Key, by: u64) {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA).increment(by));
}

fn observe(key: &Key, value: f64) {
    metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA).record(value));
}

fn type_name(token_type: Option<TokenType>) -> &'static str {
    token_type.map_or("none", TokenType::as_str)
}

pub(super) fn decision(route: &'static str, token_type: Option<TokenType>, outcome: Outcome, reason: &'static str) {
    let labels = [route, type_name(token_type), outcome.as_str(), reason];
    count(&key(DECISIONS, &DECISION_LABELS, labels), 1);
}

/// The opt-in count per key id: the id is not `'static`, so this one allocates.
pub(super) fn key_decision(route: &'static str, token_type: TokenType, key_id: &str) {
    let labels = vec![
        metrics::Label::from_static_parts(KEY_DECISION_LABELS[0], route),
        metrics::Label::from_static_parts(KEY_DECISION_LABELS[1], token_type.as_str()),
        metrics::Label::new(KEY_DECISION_LABELS[2], key_id.to_owned()),
    ];
    count(&Key::from_parts(KEY_DECISIONS, labels), 1);
}

pub(super) fn cache_lookup(cache: Cache, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    count(&key(CACHE_LOOKUPS, &CACHE_LABELS, [cache.as_str(), result]), 1);
}

pub(super) fn verification(verifier: &'static str, token_type: TokenType, watch: Stopwatch) {
    let labels = [verifier, token_type.as_str()];
    observe(
        &key(VERIFICATION_DURATION, &VERIFICATION_LABELS, labels),
        watch.seconds(),
    );
}

pub(super) fn backend_call(backend: Backend, outcome: CallOutcome, watch: Option<Stopwatch>) {
    let labels = [backend.as_str(), outcome.as_str()];
    count(&key(BACKEND_CALLS, &BACKEND_CALL_LABELS, labels), 1);
    if let Some(watch) = watch {
        observe(
            &key(BACKEND_CALL_DURATION, &BACKEND_LABELS, [backend.as_str()]),
            watch.seconds(),
        );
    }
}

pub(super) fn revocation_notice(notice: Notice) {
    count(&key(REVOCATION_NOTICES, &NOTICE_LABELS, [notice.as_str()]), 1);
}

/// One call in flight, counted in the gauge until dropped (a cancelled call too).
pub(super) struct InFlight(std::borrow::Cow<'static, Key>);

impl InFlight {
    pub(super) fn start(backend: Backend) -> InFlight {
        let key = key(BACKEND_CALLS_IN_FLIGHT, &BACKEND_LABELS, [backend.as_str()]);
        metrics::with_recorder(|recorder| recorder.register_gauge(&key, &METADATA).increment(1.0));
        InFlight(key)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::with_recorder(|recorder| recorder.register_gauge(&self.0, &METADATA).decrement(1.0));
    }
}

/// Gives each metric its help text and unit in the installed (global) recorder: call it once
/// after installing the exporter, for `# HELP` lines in Prometheus's output.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(DECISIONS, "Policy decisions by route, token type, outcome and reason.");
    describe_counter!(KEY_DECISIONS, "Allowed requests per API key or M2M token id (opt-in).");
    describe_counter!(CACHE_LOOKUPS, "Cache hits and misses of tokengate's caches.");
    describe_histogram!(
        VERIFICATION_DURATION,
        Unit::Seconds,
        "Time of verifications that were awaited."
    );
    describe_counter!(
        BACKEND_CALLS,
        "Calls to JWKS, key stores, introspection and Clerk, by outcome."
    );
    describe_histogram!(BACKEND_CALL_DURATION, Unit::Seconds, "Time of backend calls.");
    describe_gauge!(BACKEND_CALLS_IN_FLIGHT, "Backend calls in flight now.");
    describe_counter!(REVOCATION_NOTICES, "Revocation notices received from key stores.");
}
