//! `POST /machine/set-dns`: a node asks us to publish the TXT record of an
//! ACME DNS-01 challenge (tailcfg `SetDNSRequest`), so `tailscale cert` and
//! `tailscale serve --https` can get a certificate for its names.
//!
//! The tunnel's machine key must own the node key the request names (as for
//! map and register); `certs::authorize` then limits the record to
//! `_acme-challenge.<one of the node's CertDomains>`. The record is live in
//! the DNS server when we answer 200 (with replicas, in the database every
//! replica's DNS server reads): the client asks the CA to validate right
//! away (see `certs::Challenges`).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::{ControlState, Peer};
use crate::certs;
use crate::http::error::ApiError;
use crate::tailcfg::{SetDnsRequest, SetDnsResponse};

pub(super) async fn handler(
    State(cs): State<ControlState>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: SetDnsRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid set-dns request: {e}")))?;
    // Every request that names a record is counted, refused ones included.
    let (world, node) = super::owner::owned_node(&cs, &peer, req.node_key.as_deref(), "set-dns")
        .inspect_err(|_| cs.metrics.acme_challenge(false))?;
    if node.is_expired(cs.state.now()) {
        cs.metrics.acme_challenge(false);
        return Err(ApiError::unauthorized("node key expired"));
    }
    let decided = match &cs.challenges {
        None => Err(certs::Refusal::Disabled),
        Some(_) => certs::authorize(&world, &node, &req.name, &req.r#type, &req.value),
    };
    let challenge = match decided {
        Ok(c) => c,
        Err(refusal) => {
            cs.metrics.acme_challenge(false);
            tracing::info!(node = %node.id, name = %req.name, reason = %refusal, "set-dns refused");
            return Err(refusal.into());
        }
    };
    if let Some(store) = &cs.challenges {
        store.put(&challenge.owner, &challenge.value);
        // With replicas the CA may ask another replica's DNS server: the
        // value is in the database before we answer, or the client is told
        // to try again (a 503 from the state error).
        if let Err(e) = cs
            .state
            .share_acme_challenge(
                &challenge.owner,
                &challenge.value,
                store.lifetime().to_std().unwrap_or_default(),
            )
            .await
        {
            cs.metrics.acme_challenge(false);
            tracing::warn!(node = %node.id, error = %e, "could not share the ACME challenge");
            return Err(e.into());
        }
    }
    // For the operator's view only: the record is already live, so a
    // failure here is logged, not returned (the client would retry an order
    // that can succeed).
    if let Err(e) = cs
        .state
        .note_acme_challenge(node.id, challenge.domain.clone())
        .await
    {
        tracing::warn!(node = %node.id, error = %e, "could not note the ACME challenge");
    }
    cs.metrics.acme_challenge(true);
    tracing::info!(node = %node.id, domain = %challenge.domain, "ACME challenge published");
    Ok(axum::Json(SetDnsResponse {}).into_response())
}
