//! Label sets made once and kept, so that recording a metric builds no label list.
//!
//! The `metrics` facade takes a key's labels either as a list built per call (an allocation)
//! or as a `'static` slice. Every label value tokengate records is a `&'static str` from a
//! closed set or from the code, so each combination is made into a slice the first time it
//! is seen and kept for the life of the process: in a table per thread (no lock on the
//! request path) in front of one shared table (so each combination is kept once, however many
//! threads see it). Past [`MAX_SETS`] combinations a set is built per call and not kept.
//!
//! ```ignore
//! let key = labels::key("tokengate_cache_lookups_total", &["cache", "result"], ["clerk", "hit"]);
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use metrics::{Key, Label};

/// The most label sets kept; past it a set is built for each call. Far more than the routes ×
/// token types × reasons of any application.
pub(super) const MAX_SETS: usize = 16_384;

/// A label set by the addresses of its names and values: `'static` strings do not move.
type Id = (usize, [(usize, usize); 4]);

type Table = HashMap<Id, &'static [Label]>;

static SHARED: Mutex<Option<Table>> = Mutex::new(None);

thread_local! {
    static LOCAL: RefCell<Table> = RefCell::new(HashMap::new());
}

/// The key of metric `name` with labels `names` = `values`, its label slice kept.
pub(super) fn key<const N: usize>(
    name: &'static str,
    names: &'static [&'static str; N],
    values: [&'static str; N],
) -> Key {
    match kept(names, values) {
        Some(labels) => Key::from_static_parts(name, labels),
        None => Key::from_parts(name, build(names, values)),
    }
}

fn kept<const N: usize>(names: &'static [&'static str; N], values: [&'static str; N]) -> Option<&'static [Label]> {
    let id = id(names, &values)?;
    let local = LOCAL.try_with(|local| local.borrow().get(&id).copied()).ok().flatten();
    if local.is_some() {
        return local;
    }
    let labels = shared(id, names, values)?;
    // A thread being torn down keeps nothing of its own; the shared table still has the set.
    let _ = LOCAL.try_with(|local| local.borrow_mut().insert(id, labels));
    Some(labels)
}

fn id<const N: usize>(names: &'static [&'static str; N], values: &[&'static str; N]) -> Option<Id> {
    let mut parts = [(0, 0); 4];
    for (part, value) in parts.iter_mut().zip(values) {
        *part = (value.as_ptr() as usize, value.len());
    }
    (N <= parts.len()).then_some((names.as_ptr() as usize, parts))
}

/// The set from the shared table, made and kept there if it is new and there is room.
fn shared<const N: usize>(
    id: Id,
    names: &'static [&'static str; N],
    values: [&'static str; N],
) -> Option<&'static [Label]> {
    let mut table = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    let table = table.get_or_insert_with(HashMap::new);
    if let Some(labels) = table.get(&id) {
        return Some(labels);
    }
    if table.len() >= MAX_SETS {
        return None;
    }
    let labels: &'static [Label] = Box::leak(build(names, values).into_boxed_slice());
    table.insert(id, labels);
    Some(labels)
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
        let id = id(&NAMES, &["x", "y"]).unwrap();
        let kept = SHARED.lock().unwrap().as_ref().unwrap()[&id];
        assert_eq!(kept.as_ptr(), kept_ptr(&again), "the key uses the kept slice");
        assert_ne!(key("m", &NAMES, ["x", "z"]).get_hash(), first.get_hash());
    }

    fn kept_ptr(key: &Key) -> *const Label {
        key.labels().as_slice().as_ptr()
    }
}
