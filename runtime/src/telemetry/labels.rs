//! Metric keys made once and kept, so that recording a metric builds no label list.
//!
//! The `metrics` facade takes a key's labels either as a list built per call (an allocation)
//! or as a `'static` slice, and hashes them into the key. Every label value tokengate records
//! is a `&'static str` from a closed set or from the code, so each combination is made into a
//! key (labels and hash) the first time it is seen and kept for the life of the process: in a
//! table per thread (no lock on the request path) in front of one shared table (so each
//! combination is kept once, however many threads see it). Past [`MAX_SETS`] combinations a
//! key is built per call and not kept.
//!
//! A crate-private module, so its example is the unit test below: the same label values give
//! the same kept key, and a new combination a new one.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, PoisonError};

use metrics::{Key, Label};

/// The most label sets kept; past it a set is built for each call. Far more than the routes ×
/// token types × reasons of any application.
pub(super) const MAX_SETS: usize = 16_384;

/// A key by the addresses of its name, label names and values: `'static` strings do not move.
type Id = (usize, usize, [(usize, usize); 4]);

type Table = HashMap<Id, &'static Key, BuildHasherDefault<IdHasher>>;

static SHARED: Mutex<Option<Table>> = Mutex::new(None);

thread_local! {
    static LOCAL: RefCell<Table> = RefCell::new(Table::default());
}

/// The key of metric `name` with labels `names` = `values`: kept, or built for this call.
pub(super) fn key<const N: usize>(
    name: &'static str,
    names: &'static [&'static str; N],
    values: [&'static str; N],
) -> Cow<'static, Key> {
    match kept(name, names, values) {
        Some(key) => Cow::Borrowed(key),
        None => Cow::Owned(Key::from_parts(name, build(names, values))),
    }
}

fn kept<const N: usize>(
    name: &'static str,
    names: &'static [&'static str; N],
    values: [&'static str; N],
) -> Option<&'static Key> {
    let id = id(name, names, &values)?;
    let local = LOCAL.try_with(|local| local.borrow().get(&id).copied()).ok().flatten();
    if local.is_some() {
        return local;
    }
    let key = shared(id, name, names, values)?;
    // A thread being torn down keeps nothing of its own; the shared table still has the key.
    let _ = LOCAL.try_with(|local| local.borrow_mut().insert(id, key));
    Some(key)
}

fn id<const N: usize>(name: &'static str, names: &'static [&'static str; N], values: &[&'static str; N]) -> Option<Id> {
    let mut parts = [(0, 0); 4];
    for (part, value) in parts.iter_mut().zip(values) {
        *part = (value.as_ptr() as usize, value.len());
    }
    (N <= parts.len()).then_some((name.as_ptr() as usize, names.as_ptr() as usize, parts))
}

/// The key from the shared table, made and kept there if it is new and there is room.
fn shared<const N: usize>(
    id: Id,
    name: &'static str,
    names: &'static [&'static str; N],
    values: [&'static str; N],
) -> Option<&'static Key> {
    let mut table = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    let table = table.get_or_insert_with(Table::default);
    if let Some(key) = table.get(&id) {
        return Some(key);
    }
    if table.len() >= MAX_SETS {
        return None;
    }
    let labels: &'static [Label] = Box::leak(build(names, values).into_boxed_slice());
    let key: &'static Key = Box::leak(Box::new(Key::from_static_parts(name, labels)));
    table.insert(id, key);
    Some(key)
}

/// Hashes an [`Id`]: a few addresses the program chose, so a multiply-and-rotate per word
/// (the `FxHash` scheme) is enough, and far cheaper than SipHash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn build<const N: usize>(names: &'static [&'static str; N], values: [&'static str; N]) -> Vec<Label> {
    names
        .iter()
        .zip(values)
        .map(|(name, value)| Label::from_static_parts(name, value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    static NAMES: [&str; 2] = ["a", "b"];

    #[test]
    fn a_set_is_made_once_and_reads_back() {
        let first = key("m", &NAMES, ["x", "y"]);
        let again = key("m", &NAMES, ["x", "y"]);
        let labels: Vec<(&str, &str)> = again.labels().map(|l| (l.key(), l.value())).collect();
        assert_eq!(labels, [("a", "x"), ("b", "y")]);
        assert_eq!(first.get_hash(), again.get_hash());
        let id = id("m", &NAMES, &["x", "y"]).unwrap();
        let kept: &Key = SHARED.lock().unwrap().as_ref().unwrap()[&id];
        assert!(
            matches!(again, Cow::Borrowed(k) if std::ptr::eq(k, kept)),
            "the kept key is handed out"
        );
        assert_ne!(key("m", &NAMES, ["x", "z"]).get_hash(), first.get_hash());
        assert_ne!(
            key("n", &NAMES, ["x", "y"]).get_hash(),
            first.get_hash(),
            "the name is part of the key"
        );
    }
}
