//! The recording functions without the `metrics` feature: empty, inlined away.

use super::{Backend, Cache, CallOutcome, Notice, Outcome};
use crate::token::TokenType;

/// Nothing to time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopwatch;

impl Stopwatch {
    #[inline(always)]
    pub(crate) fn start() -> Stopwatch {
        Stopwatch
    }
}

#[inline(always)]
pub(super) fn decision(_: &'static str, _: Option<TokenType>, _: Outcome, _: &'static str) {}

#[inline(always)]
pub(super) fn key_decision(_: &'static str, _: TokenType, _: &str) {}

#[inline(always)]
pub(super) fn cache_lookup(_: Cache, _: bool) {}

#[inline(always)]
pub(super) fn verification(_: &'static str, _: TokenType, _: Stopwatch) {}

#[inline(always)]
pub(super) fn backend_call(_: Backend, _: CallOutcome, _: Option<Stopwatch>) {}

#[inline(always)]
pub(super) fn revocation_notice(_: Notice) {}

pub(super) struct InFlight;

impl InFlight {
    #[inline(always)]
    pub(super) fn start(_: Backend) -> InFlight {
        InFlight
    }
}
