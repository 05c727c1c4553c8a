//! Single flight: concurrent misses for one secret (a hot key whose entry just expired, a
//! burst from a new client) share one store lookup; the others wait for its answer.
//!
//! A lookup whose requests are all gone (clients that disconnected) is dropped with the last
//! of them, and a lookup that is [forgotten](SingleFlight::forget) (its key was revoked) is
//! never joined again: a request that starts after a revocation never shares an earlier read.
//! A cancelled lookup is taken over by the next waiter (`OnceCell::get_or_init`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::auth::Auth;
use crate::verifier::VerifyError;

use super::secret::SecretHash;

/// The answer of one store lookup, shared by its waiters.
type Answer = Result<Auth, VerifyError>;

/// One store lookup in flight and how many requests wait for it.
struct Lookup {
    cell: Arc<tokio::sync::OnceCell<Answer>>,
    waiters: usize,
}

/// The store lookups in flight, by secret hash.
#[derive(Default)]
pub(super) struct SingleFlight {
    lookups: Mutex<HashMap<SecretHash, Lookup>>,
}

impl SingleFlight {
    /// Runs `look_up` for `hash`, or waits for the lookup already in flight for it.
    pub(super) async fn run<F>(&self, hash: SecretHash, look_up: impl FnOnce() -> F) -> Answer
    where
        F: Future<Output = Answer>,
    {
        let waiter = self.join(hash);
        waiter.cell.get_or_init(look_up).await.clone()
    }

    /// Drops the lookups of these secrets: a later request starts a new one.
    pub(super) fn forget<'h>(&self, hashes: impl IntoIterator<Item = &'h SecretHash>) {
        let mut lookups = self.lock();
        for hash in hashes {
            lookups.remove(hash);
        }
    }

    /// Drops every lookup.
    pub(super) fn clear(&self) {
        self.lock().clear();
    }

    /// How many lookups are in flight.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn join(&self, hash: SecretHash) -> Waiter<'_> {
        let mut lookups = self.lock();
        let lookup = lookups.entry(hash).or_insert_with(|| Lookup {
            cell: Arc::new(tokio::sync::OnceCell::new()),
            waiters: 0,
        });
        lookup.waiters += 1;
        Waiter {
            flights: self,
            hash,
            cell: Arc::clone(&lookup.cell),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SecretHash, Lookup>> {
        self.lookups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request's place in a lookup; leaving (answered or cancelled) removes the lookup with its
/// last waiter.
struct Waiter<'a> {
    flights: &'a SingleFlight,
    hash: SecretHash,
    cell: Arc<tokio::sync::OnceCell<Answer>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut lookups = self.flights.lock();
        // The entry may be a later lookup's: a revocation dropped this one and a new request
        // started another for the same secret.
        if let Some(lookup) = lookups.get_mut(&self.hash)
            && Arc::ptr_eq(&lookup.cell, &self.cell)
        {
            lookup.waiters = lookup.waiters.saturating_sub(1);
            if lookup.waiters == 0 {
                lookups.remove(&self.hash);
            }
        }
    }
}
