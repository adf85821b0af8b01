//! Per-connection outbound queue of the DERP relay.
//!
//! Any task may push (a sender's reader, the registry on disconnects); only the
//! connection's own writer drains. Pushing never blocks and never waits on the
//! network: a full queue drops its *oldest* packet, so fresher packets win, as in
//! Tailscale's `sclient.sendPkt`. Disco and data packets have separate queues so a
//! flood of WireGuard data cannot starve NAT-traversal messages.
//!
//! Assumptions: the lock guards only these small queues and is never held across an
//! `.await` or while taking the registry lock.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::derp::frame::{Frame, Key, looks_like_disco};

/// Packets buffered per connection and queue (Tailscale's default send queue depth).
pub(super) const PACKET_QUEUE_DEPTH: usize = 32;
/// Control frames (PeerGone) buffered per connection; extras are dropped.
const CONTROL_QUEUE_DEPTH: usize = 256;

/// A packet waiting to be written as `RecvPacket(src, data)`.
#[derive(Debug, Clone)]
pub(super) struct Pkt {
    pub src: Key,
    pub data: Bytes,
}

/// Everything a writer has to send, taken in one go.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub control: VecDeque<Frame>,
    pub pong: Option<[u8; 8]>,
    pub disco: VecDeque<Pkt>,
    pub packets: VecDeque<Pkt>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.control.is_empty()
            && self.pong.is_none()
            && self.disco.is_empty()
            && self.packets.is_empty()
    }

    pub fn packet_count(&self) -> usize {
        self.disco.len() + self.packets.len()
    }
}

#[derive(Debug, Default)]
pub(super) struct Mailbox {
    queues: Mutex<Batch>,
    notify: Notify,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Batch> {
        // A panic elsewhere while holding this lock leaves plain queues behind,
        // which are still consistent: keep going rather than crash the relay.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a packet; returns true if an older packet was dropped to make room.
    pub fn push_packet(&self, pkt: Pkt) -> bool {
        let dropped = {
            let mut q = self.lock();
            let queue = if looks_like_disco(&pkt.data) {
                &mut q.disco
            } else {
                &mut q.packets
            };
            let dropped = queue.len() >= PACKET_QUEUE_DEPTH && queue.pop_front().is_some();
            queue.push_back(pkt);
            dropped
        };
        self.notify.notify_one();
        dropped
    }

    /// Queues a control frame; returns false (and drops it) if the queue is full.
    pub fn push_control(&self, frame: Frame) -> bool {
        let queued = {
            let mut q = self.lock();
            if q.control.len() >= CONTROL_QUEUE_DEPTH {
                false
            } else {
                q.control.push_back(frame);
                true
            }
        };
        if queued {
            self.notify.notify_one();
        }
        queued
    }

    /// Queues a Pong unless one is already pending (a client pinging faster than
    /// we write is ignored, like Tailscale's one-slot pong channel).
    pub fn push_pong(&self, data: [u8; 8]) {
        {
            let mut q = self.lock();
            if q.pong.is_some() {
                return;
            }
            q.pong = Some(data);
        }
        self.notify.notify_one();
    }

    /// Takes everything queued so far.
    pub fn take(&self) -> Batch {
        std::mem::take(&mut *self.lock())
    }

    /// Waits until something is pushed. A push that happened since the last wait
    /// completes this immediately (Notify keeps one permit), so no wakeup is lost
    /// between an empty [`Mailbox::take`] and this call.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derp::frame::{DISCO_MAGIC, KEY_LEN, NONCE_LEN, PeerGoneReason};

    fn pkt(n: u8) -> Pkt {
        Pkt {
            src: [n; 32],
            data: Bytes::from(vec![n; 4]),
        }
    }

    fn disco_pkt() -> Pkt {
        let mut d = DISCO_MAGIC.to_vec();
        d.extend_from_slice(&[0u8; KEY_LEN + NONCE_LEN]);
        Pkt {
            src: [9; 32],
            data: Bytes::from(d),
        }
    }

    #[test]
    fn full_queue_drops_oldest() {
        let mb = Mailbox::default();
        for i in 0..PACKET_QUEUE_DEPTH {
            assert!(!mb.push_packet(pkt(i as u8)));
        }
        assert!(mb.push_packet(pkt(200)));
        let b = mb.take();
        assert_eq!(b.packets.len(), PACKET_QUEUE_DEPTH);
        assert_eq!(b.packets.front().map(|p| p.src[0]), Some(1));
        assert_eq!(b.packets.back().map(|p| p.src[0]), Some(200));
        assert!(mb.take().is_empty());
    }

    #[test]
    fn disco_has_its_own_queue() {
        let mb = Mailbox::default();
        for i in 0..PACKET_QUEUE_DEPTH {
            mb.push_packet(pkt(i as u8));
        }
        assert!(
            !mb.push_packet(disco_pkt()),
            "disco not dropped by full data queue"
        );
        let b = mb.take();
        assert_eq!(b.disco.len(), 1);
        assert_eq!(b.packet_count(), PACKET_QUEUE_DEPTH + 1);
    }

    #[test]
    fn one_pending_pong_and_bounded_control() {
        let mb = Mailbox::default();
        mb.push_pong(*b"first...");
        mb.push_pong(*b"second..");
        for _ in 0..CONTROL_QUEUE_DEPTH {
            assert!(mb.push_control(Frame::PeerGone {
                key: [1; 32],
                reason: PeerGoneReason::NotHere
            }));
        }
        assert!(!mb.push_control(Frame::KeepAlive));
        let b = mb.take();
        assert_eq!(b.pong, Some(*b"first..."));
        assert_eq!(b.control.len(), CONTROL_QUEUE_DEPTH);
    }

    #[tokio::test]
    async fn push_before_wait_is_not_lost() {
        let mb = Mailbox::default();
        mb.push_packet(pkt(1));
        tokio::time::timeout(std::time::Duration::from_secs(1), mb.notified())
            .await
            .expect("permit stored");
    }
}
