//! `/api/v1/user`: list, create, rename, delete.

use axum::Json;
use axum::extract::{Path, State};

use super::extract::{Authed, Body, Params, db_id, parse_u64};
use super::model::{CreateUserRequest, Empty, ListUsersResponse, User, UserResponse};
use crate::admin::{Admin, NewUser, UserFilter};
use crate::api::problem::Problem;
use crate::types::UserId;

type Reply<T> = Result<Json<T>, Problem>;

/// Lists users; at most one filter applies, in this order: name, email, id.
#[utoipa::path(get, path = "/api/v1/user", tag = "Users", operation_id = "listUsers",
    params(
        ("name" = Option<String>, Query, description = "Only the user with this name"),
        ("email" = Option<String>, Query, description = "Only users with this e-mail"),
        ("id" = Option<String>, Query, description = "Only the user with this id"),
    ),
    responses((status = 200, body = ListUsersResponse), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(admin): State<Admin>,
    Authed(c): Authed,
    q: Params,
) -> Reply<ListUsersResponse> {
    // A malformed id is refused even when another filter wins (Headscale).
    let id = q.id("id", "id")?;
    let filter = UserFilter {
        name: q.get("name").map(str::to_string),
        email: q.get("email").map(str::to_string),
        // Id 0 means "no filter"; one beyond the database's range matches
        // nobody.
        id: id
            .filter(|i| *i != 0)
            .map(|i| UserId(i64::try_from(i).unwrap_or(-1))),
    };
    let users = admin.list_users(&c, &filter)?;
    Ok(Json(ListUsersResponse {
        users: users.iter().map(|u| User::from(&**u)).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/user", tag = "Users", operation_id = "createUser",
    request_body = CreateUserRequest,
    responses((status = 200, body = UserResponse), (status = 400, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Body(r): Body<CreateUserRequest>,
) -> Reply<UserResponse> {
    if r.picture_url.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(Problem::bad_request(
            "pictureUrl is not supported by clawscale (leave it empty)",
        ));
    }
    let user = admin
        .create_user(
            &c,
            NewUser {
                name: r.name.unwrap_or_default(),
                display_name: r.display_name.unwrap_or_default(),
                email: r.email.unwrap_or_default(),
            },
        )
        .await?;
    Ok(Json(UserResponse {
        user: User::from(&user),
    }))
}

fn user_id(text: &str) -> Result<UserId, Problem> {
    Ok(UserId(db_id(parse_u64(text, "user id")?, "user")?))
}

#[utoipa::path(post, path = "/api/v1/user/{oldId}/rename/{newName}", tag = "Users",
    operation_id = "renameUser",
    params(("oldId" = String, Path, description = "The user's id"),
        ("newName" = String, Path, description = "The new name")),
    responses((status = 200, body = UserResponse), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn rename(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path((old_id, new_name)): Path<(String, String)>,
) -> Reply<UserResponse> {
    let user = admin.rename_user(&c, user_id(&old_id)?, &new_name).await?;
    Ok(Json(UserResponse {
        user: User::from(&user),
    }))
}

#[utoipa::path(delete, path = "/api/v1/user/{id}", tag = "Users", operation_id = "deleteUser",
    params(("id" = String, Path, description = "The user's id")),
    responses((status = 200, body = Empty), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(admin): State<Admin>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> Reply<Empty> {
    admin.delete_user(&c, user_id(&id)?).await?;
    Ok(Json(Empty {}))
}
