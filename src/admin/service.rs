//! The `HeadscaleService` implementation: thin methods over
//! [`StateHandle`]. Each validates its request, makes one state call (the
//! state writer publishes and fans out the change, so nothing here has to
//! remember to notify anyone) and converts the answer.
//!
//! Reads come from one World snapshot per request; only pre-auth keys
//! (listed, or shown on a node) are read from the database: the World does
//! not carry them.

use std::collections::BTreeMap;

use chrono::Duration;
use tonic::{Request, Response, Status};

use super::proto::headscale_service_server::{HeadscaleService, HeadscaleServiceServer};
use super::proto::*;
use super::{convert, status::unsupported};
use crate::state::StateHandle;
use crate::types::UserId;

/// How far in the future an `ExpireNode` expiry may lie and still count as
/// "now": the Headscale CLI stamps the request with its own clock.
const CLOCK_SKEW: Duration = Duration::seconds(60);

type Reply<T> = Result<Response<T>, Status>;

/// The admin service over the shared state handle.
#[derive(Clone)]
pub struct AdminService {
    state: StateHandle,
}

impl AdminService {
    pub fn new(state: StateHandle) -> Self {
        AdminService { state }
    }

    /// The tonic server wrapper, ready for `Server::add_service`.
    pub fn into_server(self) -> HeadscaleServiceServer<Self> {
        HeadscaleServiceServer::new(self)
    }

    async fn node_response(&self, id: crate::types::NodeId) -> Result<Node, Status> {
        let world = self.state.world();
        let node = world
            .node(id)
            .ok_or_else(|| Status::not_found("node not found"))?;
        let key = match node.auth_key_id {
            Some(k) => self.state.preauth_key(k).await?,
            None => None,
        };
        Ok(convert::node(node, &world, key.as_ref()))
    }
}

fn ok<T>(t: T) -> Reply<T> {
    Ok(Response::new(t))
}

#[tonic::async_trait]
impl HeadscaleService for AdminService {
    // === users ===

    async fn create_user(&self, r: Request<CreateUserRequest>) -> Reply<CreateUserResponse> {
        let r = r.into_inner();
        let user = self
            .state
            .create_user(&r.name, &r.display_name, &r.email)
            .await?;
        ok(CreateUserResponse {
            user: Some(convert::user(&user)),
        })
    }

    async fn rename_user(&self, r: Request<RenameUserRequest>) -> Reply<RenameUserResponse> {
        let r = r.into_inner();
        let id = convert::user_id(r.old_id)?;
        let user = self.state.rename_user(id, &r.new_name).await?;
        ok(RenameUserResponse {
            user: Some(convert::user(&user)),
        })
    }

    async fn delete_user(&self, r: Request<DeleteUserRequest>) -> Reply<DeleteUserResponse> {
        let id = convert::user_id(r.into_inner().id)?;
        let world = self.state.world();
        if world.user(id).is_none() {
            return Err(Status::not_found("user not found"));
        }
        // Checked here too so the answer says what to do; the database
        // refuses the same case (nodes reference their user).
        let nodes = world.nodes.values().filter(|n| n.user_id == id).count();
        if nodes > 0 {
            return Err(Status::failed_precondition(format!(
                "user still owns {nodes} node(s); delete them first"
            )));
        }
        self.state.delete_user(id).await?;
        ok(DeleteUserResponse {})
    }

    async fn list_users(&self, r: Request<ListUsersRequest>) -> Reply<ListUsersResponse> {
        let r = r.into_inner();
        let world = self.state.world();
        // One filter at most, in Headscale's order: name, email, id.
        let keep = |u: &crate::types::User| {
            if !r.name.is_empty() {
                u.name == r.name
            } else if !r.email.is_empty() {
                u.email == r.email
            } else if r.id != 0 {
                u64::try_from(u.id.0) == Ok(r.id)
            } else {
                true
            }
        };
        // The World keeps users in id order already.
        let users = world
            .users
            .values()
            .filter(|u| keep(u))
            .map(|u| convert::user(u))
            .collect();
        ok(ListUsersResponse { users })
    }

    // === pre-auth keys ===

    async fn create_pre_auth_key(
        &self,
        r: Request<CreatePreAuthKeyRequest>,
    ) -> Reply<CreatePreAuthKeyResponse> {
        let r = r.into_inner();
        if r.user == 0 {
            return Err(Status::invalid_argument(
                "a user is required: clawscale keys always belong to a user",
            ));
        }
        let user = convert::user_id(r.user)?;
        let expiration = r
            .expiration
            .as_ref()
            .map(convert::from_timestamp)
            .transpose()?;
        let (key, secret) = self
            .state
            .create_preauth_key(user, r.reusable, r.ephemeral, expiration, r.acl_tags)
            .await?;
        let world = self.state.world();
        let owner = world.user(key.user_id).map(|u| u.as_ref());
        ok(CreatePreAuthKeyResponse {
            pre_auth_key: Some(convert::preauth_key(&key, owner, secret)),
        })
    }

    async fn expire_pre_auth_key(
        &self,
        r: Request<ExpirePreAuthKeyRequest>,
    ) -> Reply<ExpirePreAuthKeyResponse> {
        let id = convert::key_id(r.into_inner().id)?;
        self.state.expire_preauth_key(id).await?;
        ok(ExpirePreAuthKeyResponse {})
    }

    async fn delete_pre_auth_key(
        &self,
        r: Request<DeletePreAuthKeyRequest>,
    ) -> Reply<DeletePreAuthKeyResponse> {
        let id = convert::key_id(r.into_inner().id)?;
        self.state.delete_preauth_key(id).await?;
        ok(DeletePreAuthKeyResponse {})
    }

    async fn list_pre_auth_keys(
        &self,
        _: Request<ListPreAuthKeysRequest>,
    ) -> Reply<ListPreAuthKeysResponse> {
        let mut keys = self.state.list_preauth_keys(None).await?;
        keys.sort_by_key(|k| k.id);
        let world = self.state.world();
        let pre_auth_keys = keys
            .iter()
            .map(|k| {
                let owner = world.user(k.user_id).map(|u| u.as_ref());
                convert::preauth_key(k, owner, convert::masked_key(&k.prefix))
            })
            .collect();
        ok(ListPreAuthKeysResponse { pre_auth_keys })
    }

    // === nodes ===

    async fn get_node(&self, r: Request<GetNodeRequest>) -> Reply<GetNodeResponse> {
        let id = convert::node_id(r.into_inner().node_id)?;
        ok(GetNodeResponse {
            node: Some(self.node_response(id).await?),
        })
    }

    async fn delete_node(&self, r: Request<DeleteNodeRequest>) -> Reply<DeleteNodeResponse> {
        let id = convert::node_id(r.into_inner().node_id)?;
        self.state.delete_node(id).await?;
        ok(DeleteNodeResponse {})
    }

    async fn expire_node(&self, r: Request<ExpireNodeRequest>) -> Reply<ExpireNodeResponse> {
        let r = r.into_inner();
        let id = convert::node_id(r.node_id)?;
        if r.disable_expiry && r.expiry.is_some() {
            return Err(Status::invalid_argument(
                "cannot set both disable_expiry and expiry",
            ));
        }
        if r.disable_expiry {
            return Err(unsupported("disabling node key expiry"));
        }
        if let Some(ts) = &r.expiry {
            let at = convert::from_timestamp(ts)?;
            if at > self.state.now() + CLOCK_SKEW {
                return Err(unsupported("setting a future node expiry"));
            }
        }
        self.state.expire_node(id).await?;
        ok(ExpireNodeResponse {
            node: Some(self.node_response(id).await?),
        })
    }

    async fn rename_node(&self, r: Request<RenameNodeRequest>) -> Reply<RenameNodeResponse> {
        let r = r.into_inner();
        let id = convert::node_id(r.node_id)?;
        self.state.rename_node(id, &r.new_name).await?;
        ok(RenameNodeResponse {
            node: Some(self.node_response(id).await?),
        })
    }

    async fn list_nodes(&self, r: Request<ListNodesRequest>) -> Reply<ListNodesResponse> {
        let r = r.into_inner();
        let world = self.state.world();
        let owner = if r.user.is_empty() {
            None
        } else {
            // Headscale filters by user name; a numeric id is accepted too
            // when no user has that name.
            let by_name = world.user_by_name(&r.user).map(|u| u.id);
            let by_id = || {
                r.user
                    .parse::<i64>()
                    .ok()
                    .map(UserId)
                    .filter(|id| world.user(*id).is_some())
            };
            Some(
                by_name
                    .or_else(by_id)
                    .ok_or_else(|| Status::not_found(format!("user {:?} not found", r.user)))?,
            )
        };
        let keys: BTreeMap<_, _> = self
            .state
            .list_preauth_keys(None)
            .await?
            .into_iter()
            .map(|k| (k.id, k))
            .collect();
        // The World keeps nodes in id order already.
        let nodes = world
            .nodes
            .values()
            .filter(|n| owner.is_none_or(|id| n.user_id == id))
            .map(|n| convert::node(n, &world, n.auth_key_id.and_then(|k| keys.get(&k))))
            .collect();
        ok(ListNodesResponse { nodes })
    }

    async fn health(&self, _: Request<HealthRequest>) -> Reply<HealthResponse> {
        // A real write through the writer, committed by the database.
        let database_connectivity = match self.state.health().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "health check: database unreachable");
                false
            }
        };
        ok(HealthResponse {
            database_connectivity,
        })
    }

    // === not supported (yet) ===

    async fn debug_create_node(
        &self,
        _: Request<DebugCreateNodeRequest>,
    ) -> Reply<DebugCreateNodeResponse> {
        Err(unsupported("DebugCreateNode"))
    }

    async fn set_tags(&self, r: Request<SetTagsRequest>) -> Reply<SetTagsResponse> {
        let r = r.into_inner();
        let id = convert::node_id(r.node_id)?;
        self.state.set_tags(id, r.tags).await?;
        ok(SetTagsResponse {
            node: Some(self.node_response(id).await?),
        })
    }

    async fn set_approved_routes(
        &self,
        r: Request<SetApprovedRoutesRequest>,
    ) -> Reply<SetApprovedRoutesResponse> {
        let r = r.into_inner();
        let id = convert::node_id(r.node_id)?;
        let routes = r
            .routes
            .iter()
            .map(|t| {
                t.parse::<ipnet::IpNet>()
                    .map_err(|e| Status::invalid_argument(format!("route {t:?}: {e}")))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        self.state.set_approved_routes(id, routes).await?;
        ok(SetApprovedRoutesResponse {
            node: Some(self.node_response(id).await?),
        })
    }

    async fn register_node(&self, _: Request<RegisterNodeRequest>) -> Reply<RegisterNodeResponse> {
        Err(unsupported("RegisterNode (interactive login)"))
    }

    async fn backfill_node_i_ps(
        &self,
        _: Request<BackfillNodeIPsRequest>,
    ) -> Reply<BackfillNodeIPsResponse> {
        Err(unsupported("BackfillNodeIPs"))
    }

    async fn auth_register(&self, _: Request<AuthRegisterRequest>) -> Reply<AuthRegisterResponse> {
        Err(unsupported("AuthRegister (interactive login)"))
    }

    async fn auth_approve(&self, _: Request<AuthApproveRequest>) -> Reply<AuthApproveResponse> {
        Err(unsupported("AuthApprove (interactive login)"))
    }

    async fn auth_reject(&self, _: Request<AuthRejectRequest>) -> Reply<AuthRejectResponse> {
        Err(unsupported("AuthReject (interactive login)"))
    }

    async fn create_api_key(&self, r: Request<CreateApiKeyRequest>) -> Reply<CreateApiKeyResponse> {
        let r = r.into_inner();
        let scope = match r.scope.trim() {
            "" => crate::types::Scope::Admin,
            s => s.parse().map_err(Status::invalid_argument)?,
        };
        let expiration = r
            .expiration
            .as_ref()
            .map(convert::from_timestamp)
            .transpose()?;
        let (_, api_key) = self.state.create_api_key(scope, expiration).await?;
        ok(CreateApiKeyResponse { api_key })
    }

    async fn expire_api_key(&self, r: Request<ExpireApiKeyRequest>) -> Reply<ExpireApiKeyResponse> {
        let r = r.into_inner();
        let key = convert::api_key_ref(r.id, &r.prefix)?;
        self.state.expire_api_key(key).await?;
        ok(ExpireApiKeyResponse {})
    }

    async fn list_api_keys(&self, _: Request<ListApiKeysRequest>) -> Reply<ListApiKeysResponse> {
        let keys = self.state.list_api_keys().await?;
        ok(ListApiKeysResponse {
            api_keys: keys.iter().map(convert::api_key).collect(),
        })
    }

    async fn delete_api_key(&self, r: Request<DeleteApiKeyRequest>) -> Reply<DeleteApiKeyResponse> {
        let r = r.into_inner();
        let key = convert::api_key_ref(r.id, &r.prefix)?;
        self.state.delete_api_key(key).await?;
        ok(DeleteApiKeyResponse {})
    }

    async fn get_policy(&self, _: Request<GetPolicyRequest>) -> Reply<GetPolicyResponse> {
        let world = self.state.world();
        let Some(text) = world.policy.text.as_deref() else {
            return Err(Status::not_found("no policy is set"));
        };
        Ok(Response::new(GetPolicyResponse {
            policy: text.to_string(),
            updated_at: world.policy.updated_at.map(convert::timestamp),
        }))
    }

    async fn set_policy(&self, req: Request<SetPolicyRequest>) -> Reply<SetPolicyResponse> {
        let text = req.into_inner().policy;
        self.state.set_policy(text).await?;
        let world = self.state.world();
        Ok(Response::new(SetPolicyResponse {
            policy: world.policy.text.as_deref().unwrap_or_default().to_string(),
            updated_at: world.policy.updated_at.map(convert::timestamp),
        }))
    }

    async fn check_policy(&self, req: Request<CheckPolicyRequest>) -> Reply<CheckPolicyResponse> {
        self.state.check_policy(&req.into_inner().policy)?;
        Ok(Response::new(CheckPolicyResponse {}))
    }
}
