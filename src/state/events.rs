//! Control-protocol events for the audit trail: what happened to a node
//! without an operator asking (it registered, logged in again, rotated its
//! key, logged out, or was removed as an inactive ephemeral node).
//!
//! The writer emits them after the database commit, from the transitions
//! that cause them, so no code path can change a node this way unnoticed.
//! Operator-driven changes are not events: the admin operations layer
//! (`admin`) records those itself, with the operator as the actor.
//!
//! Delivery is an unbounded channel to one subscriber (the audit writer),
//! set through the writer ([`StateHandle::set_event_sink`]): emitting never
//! waits, and the volume is bounded by the rate of registrations.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::StateHandle;
use super::writer::Core;
use crate::types::Node;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A new machine registered with a pre-auth key.
    Registered,
    /// A known machine authenticated again (after a logout or expiry).
    LoggedIn,
    /// A node replaced its node key with a new one (key rotation).
    KeyRotated,
    /// A node logged out; it stays registered with its key expired.
    LoggedOut,
    /// A node's key expiry passed (`node.expiry` or an operator's time);
    /// it must log in again.
    Expired,
    /// An ephemeral node was removed: it logged out, or stayed offline past
    /// the inactivity timeout.
    Deleted,
}

/// Who caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventActor {
    /// The node itself, over the control protocol.
    Node,
    /// The server (timers, clean-up).
    System,
}

/// One control-protocol event, with the node before and after it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub actor: EventActor,
    pub before: Option<Arc<Node>>,
    pub after: Option<Arc<Node>>,
}

impl Event {
    /// The node the event is about (after it when it still exists).
    pub fn node(&self) -> Option<&Arc<Node>> {
        self.after.as_ref().or(self.before.as_ref())
    }
}

pub type EventSink = mpsc::UnboundedSender<Event>;

impl Core {
    /// Hands `event` to the subscriber, if any (never waits).
    pub(super) fn emit(&self, event: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }
}

impl StateHandle {
    /// Makes `sink` the receiver of every event from now on (replacing any
    /// earlier one).
    pub async fn set_event_sink(&self, sink: EventSink) -> super::Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                core.events = Some(sink);
                Ok(())
            })
        })
        .await
    }
}
