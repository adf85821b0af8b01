//! The `HeadscaleService` implementation: each method takes the caller the
//! connection established (`grpc::caller`), parses its request, calls one
//! operation of [`Admin`] and converts the answer. Rules, authorisation
//! and auditing are the operations' (`admin`).

use tonic::{Request, Response, Status};

use super::proto::headscale_service_server::{HeadscaleService, HeadscaleServiceServer};
use super::proto::*;
use super::{caller, convert};
use crate::admin::{self, Admin, AuthId, NewPreAuthKey, NewUser, NodeExpiry, UserFilter};
use crate::types::Scope;

type Reply<T> = Result<Response<T>, Status>;

/// The admin service over the operations layer.
#[derive(Clone)]
pub struct AdminService {
    admin: Admin,
}

impl AdminService {
    pub fn new(admin: Admin) -> Self {
        AdminService { admin }
    }

    /// The tonic server wrapper, ready for `Server::add_service`.
    pub fn into_server(self) -> HeadscaleServiceServer<Self> {
        HeadscaleServiceServer::new(self)
    }
}

fn ok<T>(t: T) -> Reply<T> {
    Ok(Response::new(t))
}

fn auth_id(text: &str) -> Result<AuthId, Status> {
    AuthId::parse(text).map_err(Status::invalid_argument)
}

fn routes(list: &[String]) -> Result<Vec<ipnet::IpNet>, Status> {
    list.iter()
        .map(|t| {
            t.parse::<ipnet::IpNet>()
                .map_err(|e| Status::invalid_argument(format!("route {t:?}: {e}")))
        })
        .collect()
}

#[tonic::async_trait]
impl HeadscaleService for AdminService {
    // === users ===

    async fn create_user(&self, r: Request<CreateUserRequest>) -> Reply<CreateUserResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let new = NewUser {
            name: r.name,
            display_name: r.display_name,
            email: r.email,
        };
        let user = self.admin.create_user(&c, new).await?;
        ok(CreateUserResponse {
            user: Some(convert::user(&user)),
        })
    }

    async fn rename_user(&self, r: Request<RenameUserRequest>) -> Reply<RenameUserResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let id = convert::user_id(r.old_id)?;
        let user = self.admin.rename_user(&c, id, &r.new_name).await?;
        ok(RenameUserResponse {
            user: Some(convert::user(&user)),
        })
    }

    async fn delete_user(&self, r: Request<DeleteUserRequest>) -> Reply<DeleteUserResponse> {
        let c = caller(&r)?;
        let id = convert::user_id(r.into_inner().id)?;
        self.admin.delete_user(&c, id).await?;
        ok(DeleteUserResponse {})
    }

    async fn list_users(&self, r: Request<ListUsersRequest>) -> Reply<ListUsersResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let filter = UserFilter {
            name: Some(r.name).filter(|n| !n.is_empty()),
            email: Some(r.email).filter(|e| !e.is_empty()),
            id: match r.id {
                0 => None,
                id => Some(crate::types::UserId(i64::try_from(id).unwrap_or(-1))),
            },
        };
        let users = self.admin.list_users(&c, &filter)?;
        ok(ListUsersResponse {
            users: users.iter().map(|u| convert::user(u)).collect(),
        })
    }

    // === pre-auth keys ===

    async fn create_pre_auth_key(
        &self,
        r: Request<CreatePreAuthKeyRequest>,
    ) -> Reply<CreatePreAuthKeyResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let new = NewPreAuthKey {
            user: match r.user {
                0 => None,
                u => Some(convert::user_id(u)?),
            },
            reusable: r.reusable,
            ephemeral: r.ephemeral,
            expiration: r
                .expiration
                .as_ref()
                .map(convert::from_timestamp)
                .transpose()?,
            tags: r.acl_tags,
            ..Default::default()
        };
        let (info, secret) = self.admin.create_preauth_key(&c, new).await?;
        ok(CreatePreAuthKeyResponse {
            pre_auth_key: Some(convert::preauth_key(&info, secret)),
        })
    }

    async fn expire_pre_auth_key(
        &self,
        r: Request<ExpirePreAuthKeyRequest>,
    ) -> Reply<ExpirePreAuthKeyResponse> {
        let c = caller(&r)?;
        let id = convert::key_id(r.into_inner().id)?;
        self.admin.expire_preauth_key(&c, id).await?;
        ok(ExpirePreAuthKeyResponse {})
    }

    async fn delete_pre_auth_key(
        &self,
        r: Request<DeletePreAuthKeyRequest>,
    ) -> Reply<DeletePreAuthKeyResponse> {
        let c = caller(&r)?;
        let id = convert::key_id(r.into_inner().id)?;
        self.admin.delete_preauth_key(&c, id).await?;
        ok(DeletePreAuthKeyResponse {})
    }

    async fn list_pre_auth_keys(
        &self,
        r: Request<ListPreAuthKeysRequest>,
    ) -> Reply<ListPreAuthKeysResponse> {
        let c = caller(&r)?;
        let keys = self.admin.list_preauth_keys(&c, None).await?;
        ok(ListPreAuthKeysResponse {
            pre_auth_keys: keys
                .iter()
                .map(|k| convert::preauth_key(k, convert::masked_key(&k.key.prefix)))
                .collect(),
        })
    }

    // === nodes ===

    async fn get_node(&self, r: Request<GetNodeRequest>) -> Reply<GetNodeResponse> {
        let c = caller(&r)?;
        let id = convert::node_id(r.into_inner().node_id)?;
        let i = self.admin.get_node(&c, id).await?;
        ok(GetNodeResponse {
            node: Some(convert::node(&i)),
        })
    }

    async fn delete_node(&self, r: Request<DeleteNodeRequest>) -> Reply<DeleteNodeResponse> {
        let c = caller(&r)?;
        let id = convert::node_id(r.into_inner().node_id)?;
        self.admin.delete_node(&c, id).await?;
        ok(DeleteNodeResponse {})
    }

    async fn expire_node(&self, r: Request<ExpireNodeRequest>) -> Reply<ExpireNodeResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let id = convert::node_id(r.node_id)?;
        let when = match (r.disable_expiry, &r.expiry) {
            (true, Some(_)) => {
                return Err(Status::invalid_argument(
                    "cannot set both disable_expiry and expiry",
                ));
            }
            (true, None) => NodeExpiry::Never,
            (false, Some(ts)) => NodeExpiry::At(convert::from_timestamp(ts)?),
            (false, None) => NodeExpiry::Now,
        };
        let i = self.admin.expire_node(&c, id, when).await?;
        ok(ExpireNodeResponse {
            node: Some(convert::node(&i)),
        })
    }

    async fn rename_node(&self, r: Request<RenameNodeRequest>) -> Reply<RenameNodeResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let id = convert::node_id(r.node_id)?;
        let i = self.admin.rename_node(&c, id, &r.new_name).await?;
        ok(RenameNodeResponse {
            node: Some(convert::node(&i)),
        })
    }

    async fn list_nodes(&self, r: Request<ListNodesRequest>) -> Reply<ListNodesResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let nodes = self.admin.list_nodes(&c, Some(r.user.as_str())).await?;
        ok(ListNodesResponse {
            nodes: nodes.iter().map(convert::node).collect(),
        })
    }

    async fn set_tags(&self, r: Request<SetTagsRequest>) -> Reply<SetTagsResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let id = convert::node_id(r.node_id)?;
        let i = self.admin.set_tags(&c, id, r.tags).await?;
        ok(SetTagsResponse {
            node: Some(convert::node(&i)),
        })
    }

    async fn set_approved_routes(
        &self,
        r: Request<SetApprovedRoutesRequest>,
    ) -> Reply<SetApprovedRoutesResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let id = convert::node_id(r.node_id)?;
        let i = self
            .admin
            .set_approved_routes(&c, id, routes(&r.routes)?)
            .await?;
        ok(SetApprovedRoutesResponse {
            node: Some(convert::node(&i)),
        })
    }

    async fn register_node(&self, r: Request<RegisterNodeRequest>) -> Reply<RegisterNodeResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let id = auth_id(&r.key)?;
        let i = self.admin.register_pending(&c, &id, &r.user).await?;
        ok(RegisterNodeResponse {
            node: Some(convert::node(&i)),
        })
    }

    async fn backfill_node_i_ps(
        &self,
        r: Request<BackfillNodeIPsRequest>,
    ) -> Reply<BackfillNodeIPsResponse> {
        let c = caller(&r)?;
        let changes = self
            .admin
            .backfill_ips(&c, r.into_inner().confirmed)
            .await?;
        ok(BackfillNodeIPsResponse { changes })
    }

    async fn debug_create_node(
        &self,
        r: Request<DebugCreateNodeRequest>,
    ) -> Reply<DebugCreateNodeResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let routes = routes(&r.routes)?;
        let id = auth_id(&r.key)?;
        let i = self
            .admin
            .debug_create_node(&c, &r.user, &id, &r.name, routes)
            .await?;
        ok(DebugCreateNodeResponse {
            node: Some(convert::node(&i)),
        })
    }

    // === interactive registrations ===

    async fn auth_register(&self, r: Request<AuthRegisterRequest>) -> Reply<AuthRegisterResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let id = auth_id(&r.auth_id)?;
        let i = self.admin.register_pending(&c, &id, &r.user).await?;
        ok(AuthRegisterResponse {
            node: Some(convert::node(&i)),
        })
    }

    async fn auth_approve(&self, r: Request<AuthApproveRequest>) -> Reply<AuthApproveResponse> {
        let c = caller(&r)?;
        let id = auth_id(&r.into_inner().auth_id)?;
        self.admin.approve_auth(&c, &id).await?;
        ok(AuthApproveResponse {})
    }

    async fn auth_reject(&self, r: Request<AuthRejectRequest>) -> Reply<AuthRejectResponse> {
        let c = caller(&r)?;
        let id = auth_id(&r.into_inner().auth_id)?;
        self.admin.reject_auth(&c, &id).await?;
        ok(AuthRejectResponse {})
    }

    // === API keys ===

    async fn create_api_key(&self, r: Request<CreateApiKeyRequest>) -> Reply<CreateApiKeyResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let scope = match r.scope.trim() {
            "" => Scope::Admin,
            s => s.parse().map_err(Status::invalid_argument)?,
        };
        let expiration = r
            .expiration
            .as_ref()
            .map(convert::from_timestamp)
            .transpose()?;
        let (_, api_key) = self.admin.create_api_key(&c, scope, expiration).await?;
        ok(CreateApiKeyResponse { api_key })
    }

    async fn expire_api_key(&self, r: Request<ExpireApiKeyRequest>) -> Reply<ExpireApiKeyResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let key = admin::api_key_ref(Some(r.id), &r.prefix)?;
        self.admin.expire_api_key(&c, key).await?;
        ok(ExpireApiKeyResponse {})
    }

    async fn list_api_keys(&self, r: Request<ListApiKeysRequest>) -> Reply<ListApiKeysResponse> {
        let c = caller(&r)?;
        let keys = self.admin.list_api_keys(&c).await?;
        ok(ListApiKeysResponse {
            api_keys: keys.iter().map(convert::api_key).collect(),
        })
    }

    async fn delete_api_key(&self, r: Request<DeleteApiKeyRequest>) -> Reply<DeleteApiKeyResponse> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let key = admin::api_key_ref(Some(r.id), &r.prefix)?;
        self.admin.delete_api_key(&c, key).await?;
        ok(DeleteApiKeyResponse {})
    }

    // === policy and health ===

    async fn get_policy(&self, r: Request<GetPolicyRequest>) -> Reply<GetPolicyResponse> {
        let c = caller(&r)?;
        let p = self.admin.get_policy(&c)?;
        ok(GetPolicyResponse {
            policy: p.text.to_string(),
            updated_at: p.updated_at.map(convert::timestamp),
        })
    }

    async fn set_policy(&self, r: Request<SetPolicyRequest>) -> Reply<SetPolicyResponse> {
        let c = caller(&r)?;
        let p = self.admin.set_policy(&c, r.into_inner().policy).await?;
        ok(SetPolicyResponse {
            policy: p.text.to_string(),
            updated_at: p.updated_at.map(convert::timestamp),
        })
    }

    async fn check_policy(&self, r: Request<CheckPolicyRequest>) -> Reply<CheckPolicyResponse> {
        let c = caller(&r)?;
        self.admin.check_policy(&c, &r.into_inner().policy)?;
        ok(CheckPolicyResponse {})
    }

    async fn health(&self, r: Request<HealthRequest>) -> Reply<HealthResponse> {
        let c = caller(&r)?;
        ok(HealthResponse {
            database_connectivity: self.admin.health(&c).await?,
        })
    }
}
