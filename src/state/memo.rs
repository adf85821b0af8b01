//! A value derived from some of a World's `Arc`s, computed once per
//! version of them and shared by every World cloned from the one that
//! computed it.
//!
//! The key holds those `Arc`s weakly: a replaced compiled policy must be
//! freed at once, and a live `Weak` keeps its allocation's address from
//! being reused, so comparing addresses is sound.

use std::sync::{Arc, Mutex, Weak};

/// One `Arc`'s identity, without keeping its value alive.
#[derive(Debug)]
pub(super) struct Version<T>(Weak<T>);

impl<T> Version<T> {
    pub(super) fn of(a: &Arc<T>) -> Self {
        Version(Arc::downgrade(a))
    }
}

impl<T> PartialEq for Version<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.ptr_eq(&other.0)
    }
}

/// The last value with the versions (`K`) it was computed from.
#[derive(Debug)]
pub(super) struct Memo<K, V>(Arc<Mutex<Option<(K, V)>>>);

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo(Arc::default())
    }
}

impl<K, V> Clone for Memo<K, V> {
    fn clone(&self) -> Self {
        Memo(self.0.clone())
    }
}

impl<K: PartialEq, V: Clone> Memo<K, V> {
    /// The value for `key`: the remembered one, or `build` given the
    /// previous value (which it may return again when equal).
    pub(super) fn get(&self, key: K, build: impl FnOnce(Option<V>) -> V) -> V {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, v)) = slot.as_ref()
            && *k == key
        {
            return v.clone();
        }
        let value = build(slot.take().map(|(_, v)| v));
        *slot = Some((key, value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_kept_while_its_versions_are_the_same() {
        let memo: Memo<Version<u8>, u32> = Memo::default();
        let a = Arc::new(1u8);
        let mut builds = 0;
        let get = |v: &Arc<u8>, builds: &mut u32| {
            memo.get(Version::of(v), |_| {
                *builds += 1;
                u32::from(**v)
            })
        };
        assert_eq!(get(&a, &mut builds), 1);
        assert_eq!(get(&a.clone(), &mut builds), 1);
        assert_eq!(builds, 1, "same allocation, no rebuild");
        let b = Arc::new(1u8);
        assert_eq!(get(&b, &mut builds), 1);
        assert_eq!(builds, 2, "equal value, other allocation: rebuilt");
    }

    #[test]
    fn the_key_does_not_keep_the_value_alive() {
        let memo: Memo<Version<Vec<u8>>, ()> = Memo::default();
        let a = Arc::new(vec![0u8; 16]);
        memo.get(Version::of(&a), |_| ());
        assert_eq!(Arc::strong_count(&a), 1);
        let weak = Arc::downgrade(&a);
        drop(a);
        assert!(weak.upgrade().is_none());
    }
}
