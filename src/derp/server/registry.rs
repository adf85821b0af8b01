//! Who is connected to the relay, and who must hear when they leave.
//!
//! Owns the map node key → connections, the choice of the *active* connection
//! per key, and the PeerGone watcher sets. Mirrors `derpserver.Server`'s `clients`
//! and `peerGoneWatchers` (Tailscale 1.96):
//! - a key may be connected several times; the newest connection becomes active,
//!   and afterwards whichever connection last sent a frame ("last writer is
//!   active"), so a reconnecting client takes over while a stale connection that
//!   wakes up again is not starved;
//! - when a key's last connection goes, every connection that received packets
//!   from that key is sent `PeerGone(key, Disconnected)` so it drops its route.
//!
//! Assumptions: one `Mutex<Registry>` in the server guards this; it is held only for
//! map updates and never across `.await`. Mailbox locks may be taken while holding
//! it, never the reverse.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::mailbox::Mailbox;
use crate::derp::frame::{Frame, Key, PeerGoneReason};

pub(super) type ConnId = u64;

/// One authenticated connection.
#[derive(Debug)]
pub(super) struct ConnEntry {
    pub id: ConnId,
    pub key: Key,
    pub mailbox: Arc<Mailbox>,
    /// Set while the key has more than one connection: only then does activity
    /// need the registry lock (fast path otherwise).
    pub dup: AtomicBool,
}

#[derive(Debug)]
struct ClientSet {
    /// In registration order.
    conns: Vec<Arc<ConnEntry>>,
    active: ConnId,
}

#[derive(Debug, Default)]
pub(super) struct Registry {
    clients: HashMap<Key, ClientSet>,
    /// Source key → connections that were sent packets from it.
    watchers: HashMap<Key, HashMap<ConnId, Arc<Mailbox>>>,
    /// Connection → source keys it watches; present exactly while registered.
    watching: HashMap<ConnId, HashSet<Key>>,
}

impl Registry {
    /// Adds `entry` and makes it the active connection for its key.
    pub fn register(&mut self, entry: Arc<ConnEntry>) {
        self.watching.insert(entry.id, HashSet::new());
        let set = self.clients.entry(entry.key).or_insert_with(|| ClientSet {
            conns: Vec::new(),
            active: entry.id,
        });
        set.active = entry.id;
        set.conns.push(entry);
        if set.conns.len() > 1 {
            for c in &set.conns {
                c.dup.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Removes `entry`. If it was its key's last connection, queues
    /// `PeerGone(key, Disconnected)` to every connection that received from it.
    pub fn unregister(&mut self, entry: &ConnEntry) {
        if let Some(sources) = self.watching.remove(&entry.id) {
            for src in sources {
                if let Some(w) = self.watchers.get_mut(&src) {
                    w.remove(&entry.id);
                    if w.is_empty() {
                        self.watchers.remove(&src);
                    }
                }
            }
        }
        let Some(set) = self.clients.get_mut(&entry.key) else {
            return;
        };
        set.conns.retain(|c| c.id != entry.id);
        match set.conns.as_slice() {
            [] => {
                self.clients.remove(&entry.key);
                self.notify_gone(entry.key);
            }
            [only] => {
                only.dup.store(false, Ordering::Relaxed);
                set.active = only.id;
            }
            [.., newest] => {
                if set.active == entry.id {
                    set.active = newest.id;
                }
            }
        }
    }

    fn notify_gone(&mut self, key: Key) {
        let Some(watchers) = self.watchers.remove(&key) else {
            return;
        };
        for (id, mailbox) in watchers {
            if let Some(w) = self.watching.get_mut(&id) {
                w.remove(&key);
            }
            mailbox.push_control(Frame::PeerGone {
                key,
                reason: PeerGoneReason::Disconnected,
            });
        }
    }

    /// The mailbox of the active connection for `key`.
    pub fn lookup(&self, key: &Key) -> Option<Arc<Mailbox>> {
        let set = self.clients.get(key)?;
        set.conns
            .iter()
            .find(|c| c.id == set.active)
            .map(|c| Arc::clone(&c.mailbox))
    }

    /// Makes `entry` the active connection for its key (it just sent something).
    pub fn note_activity(&mut self, entry: &ConnEntry) {
        if let Some(set) = self.clients.get_mut(&entry.key)
            && set.conns.iter().any(|c| c.id == entry.id)
        {
            set.active = entry.id;
        }
    }

    /// Records that `entry` was sent a packet from `src`, so it hears when `src`
    /// leaves. Ignored if `entry` is no longer registered.
    pub fn add_watcher(&mut self, src: Key, entry: &ConnEntry) {
        let Some(w) = self.watching.get_mut(&entry.id) else {
            return;
        };
        w.insert(src);
        self.watchers
            .entry(src)
            .or_default()
            .insert(entry.id, Arc::clone(&entry.mailbox));
    }

    /// Number of registered connections (duplicates included).
    pub fn connection_count(&self) -> usize {
        self.watching.len()
    }

    pub fn is_connected(&self, key: &Key) -> bool {
        self.clients.contains_key(key)
    }

    #[cfg(test)]
    pub fn watcher_count(&self) -> usize {
        self.watchers.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: ConnId, key: u8) -> Arc<ConnEntry> {
        Arc::new(ConnEntry {
            id,
            key: [key; 32],
            mailbox: Arc::new(Mailbox::default()),
            dup: AtomicBool::new(false),
        })
    }

    fn is(a: &Option<Arc<Mailbox>>, b: &Arc<ConnEntry>) -> bool {
        a.as_ref().is_some_and(|m| Arc::ptr_eq(m, &b.mailbox))
    }

    #[test]
    fn newest_takes_over_and_last_writer_wins() {
        let mut r = Registry::default();
        let old = entry(1, 7);
        let new = entry(2, 7);
        r.register(old.clone());
        assert!(!old.dup.load(Ordering::Relaxed));
        r.register(new.clone());
        assert!(old.dup.load(Ordering::Relaxed) && new.dup.load(Ordering::Relaxed));
        assert!(is(&r.lookup(&[7; 32]), &new));
        r.note_activity(&old);
        assert!(is(&r.lookup(&[7; 32]), &old));
        r.unregister(&old);
        assert!(is(&r.lookup(&[7; 32]), &new));
        assert!(!new.dup.load(Ordering::Relaxed));
        assert_eq!(r.connection_count(), 1);
    }

    #[test]
    fn removing_active_of_three_falls_back_to_newest() {
        let mut r = Registry::default();
        let (a, b, c) = (entry(1, 7), entry(2, 7), entry(3, 7));
        r.register(a.clone());
        r.register(b.clone());
        r.register(c.clone());
        r.note_activity(&a);
        r.unregister(&a);
        assert!(is(&r.lookup(&[7; 32]), &c));
        assert!(b.dup.load(Ordering::Relaxed));
    }

    #[test]
    fn peer_gone_only_when_last_connection_leaves() {
        let mut r = Registry::default();
        let sender1 = entry(1, 1);
        let sender2 = entry(2, 1);
        let receiver = entry(3, 2);
        r.register(sender1.clone());
        r.register(sender2.clone());
        r.register(receiver.clone());
        r.add_watcher([1; 32], &receiver);

        r.unregister(&sender1);
        assert!(receiver.mailbox.take().control.is_empty());
        r.unregister(&sender2);
        let b = receiver.mailbox.take();
        assert_eq!(
            b.control.into_iter().collect::<Vec<_>>(),
            vec![Frame::PeerGone {
                key: [1; 32],
                reason: PeerGoneReason::Disconnected
            }]
        );
        assert_eq!(r.watcher_count(), 0);
    }

    #[test]
    fn departed_watcher_is_forgotten() {
        let mut r = Registry::default();
        let sender = entry(1, 1);
        let receiver = entry(2, 2);
        r.register(sender.clone());
        r.register(receiver.clone());
        r.add_watcher([1; 32], &receiver);
        assert_eq!(r.watcher_count(), 1);
        r.unregister(&receiver);
        assert_eq!(r.watcher_count(), 0);
        // A late add for an unregistered connection does not leak.
        r.add_watcher([1; 32], &receiver);
        assert_eq!(r.watcher_count(), 0);
        r.unregister(&sender);
        assert!(receiver.mailbox.take().control.is_empty());
        assert!(!r.is_connected(&[1; 32]));
    }
}
