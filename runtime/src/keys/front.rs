//! The per-thread front of the cache of verified keys: the last keys each thread verified, so
//! a key reused on the same thread is answered from memory only that thread writes.
//!
//! The shared cache (`quick_cache`, behind [`KeyVerifier`](super::KeyVerifier)) is the source
//! of truth; this front only remembers, per thread, what a lookup in it returned. A server under
//! load runs the guard with cold caches, and a hit in the shared cache walks a chain of
//! dependent reads (its shards, the shard's lock and table, the entry); a hit here reads this
//! thread's slot for the key and the verifier's revocation count.
//!
//! An entry is answered only while all of these hold, so it is never answered past the shared
//! entry's deadline nor once an eviction that concerns its key has completed (it may outlive
//! the shared entry when the shared cache drops it for room, which revokes nothing):
//! - it belongs to this verifier (`owner`, a number no other verifier in the process gets) and
//!   this key;
//! - the verifier has counted nothing since the entry was filled (`generation`): every eviction
//!   that can concern a key (a revocation, a notice from another instance,
//!   [`KeyVerifier::evict`](super::KeyVerifier::evict), `clear_cache`) counts before and again
//!   after it removes the key from the shared cache, so a filling that read the shared entry
//!   before the removal holds an older count; so does a store lookup that removes the entry it
//!   had just inserted because a revocation raced with it;
//! - the shared entry's deadline has not passed (`until`: the cache TTL, which bounds how long a
//!   revocation made elsewhere takes to be seen, is the same for both);
//! - and, checked by the verifier on each hit as for the shared cache, the key's type and its
//!   own expiry (an expired key is dropped here and from the shared cache).
//!
//! Each thread holds [`SLOTS`] entries, one per slot, chosen by the key's hash: a lookup is one
//! comparison. An entry holds a reference to the verified [`Auth`](crate::Auth) until it is
//! replaced, invalidated and looked at again, or its thread ends.

use std::cell::RefCell;

use crate::cache::CoarseInstant;

use super::verifier::{CACHED_KEY_READ_ON_HIT, CacheKey, CachedKey};

/// Entries per thread (a power of two).
const SLOTS: usize = 16;

/// One key a thread verified through the shared cache. A hit reads its first 64 bytes (all
/// but the SHA-256 at the end of `cached`, used to evict an expired key): one cache line where
/// the coarse clock's instants are 8 bytes.
#[repr(C, align(64))]
struct Entry {
    owner: u64,
    key: CacheKey,
    /// The verifier's revocation count read before the shared cache was.
    generation: u64,
    /// The shared entry's deadline.
    until: CoarseInstant,
    cached: CachedKey,
}

const _: () = assert!(
    std::mem::size_of::<CoarseInstant>() > 8 || std::mem::offset_of!(Entry, cached) + CACHED_KEY_READ_ON_HIT <= 64,
    "what a hit reads of an entry must fit in one cache line"
);

thread_local! {
    static FRONT: RefCell<[Option<Entry>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

fn slot(key: &CacheKey) -> usize {
    // The key is a keyed pseudo-random value; its second half (the shared cache buckets by the
    // first) spreads the slots. Truncating to the slot index is the point.
    #[allow(clippy::cast_possible_truncation)]
    let bits = key.h2 as usize;
    bits & (SLOTS - 1)
}

/// What [`answer`]'s caller decided about an entry it was shown.
pub(super) enum Use<R> {
    /// Answer with `R` and keep the entry (possibly changed).
    Keep(R),
    /// Answer with `R` and drop the entry (the key expired).
    Drop(R),
}

/// Shows `use_entry` this thread's entry for `key` of verifier `owner`, if the entry is valid
/// under `generation` (the verifier's revocation count, read now) at `now`; drops a stale one.
/// `None` when there is no valid entry (ask the shared cache).
pub(super) fn answer<R>(
    owner: u64,
    key: CacheKey,
    generation: u64,
    now: CoarseInstant,
    use_entry: impl FnOnce(&mut CachedKey) -> Use<R>,
) -> Option<R> {
    FRONT
        .try_with(|front| {
            // Never contended: only this thread reaches it, and nothing below re-enters it.
            let mut front = front.try_borrow_mut().ok()?;
            let slot = &mut front[slot(&key)];
            let entry = slot.as_mut().filter(|e| e.owner == owner && e.key == key)?;
            if entry.generation != generation || now >= entry.until {
                *slot = None;
                return None;
            }
            match use_entry(&mut entry.cached) {
                Use::Keep(answer) => Some(answer),
                Use::Drop(answer) => {
                    *slot = None;
                    Some(answer)
                }
            }
        })
        .ok()
        .flatten()
}

/// Remembers, on this thread, what the shared cache answered for `key` of verifier `owner`.
/// `generation` must have been read before the shared cache was.
pub(super) fn fill(owner: u64, key: CacheKey, generation: u64, until: CoarseInstant, cached: CachedKey) {
    let _ = FRONT.try_with(|front| {
        if let Ok(mut front) = front.try_borrow_mut() {
            front[slot(&key)] = Some(Entry {
                owner,
                key,
                generation,
                until,
                cached,
            });
        }
    });
}
