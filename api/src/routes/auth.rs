//! Accounts over REST: password login, refresh token rotation, logout, the caller's own account,
//! a creator's agents, a creator's audit log, and accounts created by an admin.
//!
//! A login is throttled before its password is checked (see [`crate::accounts::throttle`]), and
//! every outcome is audited. Unknown emails, wrong passwords and disabled accounts get one and the
//! same 401, after the same amount of hashing work.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use twin_engine::{CreatorId, Slug, Timestamp};
use twin_store::{Account, AccountRole, AuditEntry, AuditRecord, LoginFailures, NewRefreshToken, Rotation};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::accounts::{self, AccountRequest, Actor, CreateError, password, refresh, throttle};
use crate::auth::{Caller, Identity, Role};
pub use crate::limits::ClientAddress;
use crate::problem::ApiError;
use crate::routes::AppState;
use crate::routes::rest::JsonBody;

const GENERIC_LOGIN_FAILURE: &str = "the email or password is wrong";
const DEFAULT_AUDIT_PAGE: u32 = 50;
const MAX_AUDIT_PAGE: u32 = 200;

fn store_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(error.to_string())
}

/// 429 with `Retry-After`: the login must wait.
fn throttled(wait: Duration) -> Response {
    let secs = throttle::retry_after_secs(wait);
    let mut error = ApiError::rate_limited(Duration::from_secs(secs));
    error.detail = format!("too many failed logins; try again in {secs} seconds");
    error.into_response()
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// An account as its owner, its creator or an admin sees it. Times are milliseconds since the
/// Unix epoch.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub email: String,
    /// `admin`, `creator` or `agent`.
    pub role: String,
    /// The tenant's slug; absent for admins.
    pub creator: Option<String>,
    /// The tenant's creator id; absent for admins.
    pub creator_id: Option<Uuid>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub last_login_at: Option<i64>,
}

impl From<&Account> for AccountView {
    fn from(account: &Account) -> Self {
        Self {
            id: account.id,
            email: account.email.clone(),
            role: account.role.as_str().to_owned(),
            creator: account.creator_slug.as_ref().map(|slug| slug.to_string()),
            creator_id: account.creator.map(|c| c.0),
            created_at: account.created_at.millis(),
            disabled_at: account.disabled_at.map(Timestamp::millis),
            last_login_at: account.last_login_at.map(Timestamp::millis),
        }
    }
}

/// Failed logins of an account over a period, so its owner learns of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedAttempts {
    pub count: u32,
    /// Milliseconds since the Unix epoch.
    pub last_at: Option<i64>,
    /// The client address of the last one.
    pub last_address: Option<String>,
}

impl From<&LoginFailures> for FailedAttempts {
    fn from(f: &LoginFailures) -> Self {
        Self { count: f.count, last_at: f.last_at.map(Timestamp::millis), last_address: f.last_address.clone() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque; single use: `POST /v1/auth/refresh` replaces it.
    pub refresh_token: String,
    pub account: AccountView,
    /// The failed logins since the previous successful one.
    pub failed_attempts_since_last_login: FailedAttempts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub account: AccountView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub account: AccountView,
    /// Failed logins since this account's last successful login.
    pub failed_attempts_since_last_login: FailedAttempts,
    /// The failed logins the last successful login reported.
    pub failed_attempts_before_last_login: FailedAttempts,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewAgentRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewAccountRequest {
    pub email: String,
    pub password: String,
    /// `creator` or `admin`.
    pub role: String,
    /// The creator's slug; required for `creator`, refused for `admin`.
    pub creator: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AccountView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The `id` of the last entry of the previous page.
    pub before: Option<i64>,
    /// Entries per page (default 50, at most 200).
    pub limit: Option<u32>,
}

/// One audit entry. Never holds passwords, tokens or message text.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// An account id, or `system` / `cli`.
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub client_address: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<AuditRecord> for AuditView {
    fn from(record: AuditRecord) -> Self {
        let e = record.entry;
        Self {
            id: record.id,
            at: e.at.millis(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            client_address: e.client_address,
            detail: e.detail,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

struct Audit<'a> {
    creator: Option<CreatorId>,
    actor: String,
    action: &'a str,
    target: Option<String>,
    address: &'a ClientAddress,
    detail: Value,
}

async fn audit(state: &AppState, now: Timestamp, a: Audit<'_>) -> Result<(), ApiError> {
    let entry = AuditEntry {
        creator: a.creator,
        at: now,
        actor: a.actor,
        action: a.action.to_owned(),
        target: a.target,
        client_address: Some(a.address.text()),
        detail: a.detail,
    };
    state.store.audit(&entry).await.map_err(store_error)
}

/// A fresh refresh token stored as the start or the next link of a family, and the access token.
struct Issued {
    access_token: String,
    refresh_token: String,
    refresh_hash: NewRefreshToken,
}

fn issue(state: &AppState, account: &Account, now: Timestamp) -> Result<Issued, ApiError> {
    let subject = twin_engine::UserId::parse(&account.id.to_string()).map_err(ApiError::internal)?;
    let access_token = state
        .keys
        .mint(accounts::token_tenant(account), &subject, accounts::token_role(account.role), accounts::ACCESS_TTL)
        .map_err(ApiError::internal)?;
    let (refresh_token, token_hash) = refresh::new_token();
    let ttl = i64::try_from(accounts::REFRESH_TTL.as_millis()).unwrap_or(i64::MAX);
    let refresh_hash = NewRefreshToken { token_hash, issued_at: now, expires_at: now.plus_millis(ttl) };
    Ok(Issued { access_token, refresh_token, refresh_hash })
}

/// Password login.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong email or password, or a disabled account (one message for all)"),
        (status = 429, description = "Too many failed logins: wait `Retry-After` seconds; the password was not checked"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    address: ClientAddress,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, Response> {
    login_inner(&state, &address, body).await
}

async fn login_inner(
    state: &AppState,
    address: &ClientAddress,
    body: LoginRequest,
) -> Result<Json<LoginResponse>, Response> {
    let e = |error: ApiError| error.into_response();
    if body.password.len() > password::MAX_BYTES || body.email.len() > accounts::MAX_EMAIL_BYTES {
        return Err(e(ApiError::unauthorized(GENERIC_LOGIN_FAILURE)));
    }
    let now = state.clock.now();
    let ip = address.text();
    let by_address = state.store.address_failures(&ip).await.map_err(|x| e(store_error(x)))?;
    let credentials = state.store.credentials(body.email.trim()).await.map_err(|x| e(store_error(x)))?;
    let account = credentials.as_ref().map(|c| &c.account);

    let address_wait = state.throttle.wait(by_address.count, by_address.last_at, throttle::ADDRESS_FREE_FAILURES, now);
    let account_wait = account
        .and_then(|a| state.throttle.wait(a.failures.count, a.failures.last_at, throttle::ACCOUNT_FREE_FAILURES, now));
    let wait = match (address_wait, account_wait) {
        (Some(a), Some(b)) => Some(("address", a.max(b))),
        (Some(a), None) => Some(("address", a)),
        (None, Some(b)) => Some(("account", b)),
        (None, None) => None,
    };
    if let Some((scope, wait)) = wait {
        let detail = json!({ "scope": scope, "retry_after_secs": throttle::retry_after_secs(wait) });
        let entry = Audit {
            creator: account.and_then(|a| a.creator),
            actor: "system".to_owned(),
            action: "login.throttled",
            target: account.map(|a| a.id.to_string()),
            address,
            detail,
        };
        audit(state, now, entry).await.map_err(e)?;
        return Err(throttled(wait));
    }

    let hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let matches = password::verify(body.password, hash).await;
    let account = match account {
        Some(account) if matches && account.disabled_at.is_none() => account,
        _ => {
            let reason = match account {
                None => "unknown email",
                Some(a) if a.disabled_at.is_some() => "disabled account",
                Some(_) => "wrong password",
            };
            let forget = throttle::ThrottlePolicy::forget_before(now);
            state
                .store
                .record_login_failure(account.map(|a| a.id), &ip, now, forget)
                .await
                .map_err(|x| e(store_error(x)))?;
            let entry = Audit {
                creator: account.and_then(|a| a.creator),
                actor: "system".to_owned(),
                action: "login.failed",
                target: account.map(|a| a.id.to_string()),
                address,
                detail: json!({ "reason": reason }),
            };
            audit(state, now, entry).await.map_err(e)?;
            return Err(e(ApiError::unauthorized(GENERIC_LOGIN_FAILURE)));
        }
    };

    let failures = state.store.record_login_success(account.id, now).await.map_err(|x| e(store_error(x)))?;
    let issued = issue(state, account, now).map_err(e)?;
    state.store.start_refresh_family(account, &issued.refresh_hash).await.map_err(|x| e(store_error(x)))?;
    let entry = Audit {
        creator: account.creator,
        actor: account.id.to_string(),
        action: "login.succeeded",
        target: Some(account.id.to_string()),
        address,
        detail: json!({ "failed_attempts_before": failures.count }),
    };
    audit(state, now, entry).await.map_err(e)?;
    let mut view = AccountView::from(account);
    view.last_login_at = Some(now.millis());
    Ok(Json(LoginResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: accounts::ACCESS_TTL.as_secs(),
        refresh_token: issued.refresh_token,
        account: view,
        failed_attempts_since_last_login: FailedAttempts::from(&failures),
    }))
}

/// Exchanges a refresh token for a new pair. A token used twice revokes its whole family.
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "accounts",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and the next refresh token", body = RefreshResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token (a reuse revokes the family)"),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    address: ClientAddress,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<RefreshResponse>, ApiError> {
    let invalid = || ApiError::unauthorized("the refresh token is invalid");
    let now = state.clock.now();
    // The next token is minted before the old one is checked, so rotation is one store call.
    let (next_token, next_hash) = refresh::new_token();
    let ttl = i64::try_from(accounts::REFRESH_TTL.as_millis()).unwrap_or(i64::MAX);
    let next = NewRefreshToken { token_hash: next_hash, issued_at: now, expires_at: now.plus_millis(ttl) };
    let old = refresh::hash(body.refresh_token.trim());
    let grant = match state.store.rotate_refresh(&old, &next, now).await.map_err(store_error)? {
        Rotation::Rotated(grant) => grant,
        Rotation::Reused(grant) => {
            let entry = Audit {
                creator: grant.creator,
                actor: "system".to_owned(),
                action: "refresh.reused",
                target: Some(grant.account.to_string()),
                address: &address,
                detail: json!({ "family": grant.family, "revoked": true }),
            };
            audit(&state, now, entry).await?;
            return Err(invalid());
        }
        Rotation::Invalid => return Err(invalid()),
    };
    let account = state.store.account(grant.creator, grant.account).await.map_err(store_error)?.ok_or_else(invalid)?;
    let issued = issue(&state, &account, now)?;
    Ok(Json(RefreshResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: accounts::ACCESS_TTL.as_secs(),
        refresh_token: next_token,
        account: AccountView::from(&account),
    }))
}

/// Revokes the refresh token's whole family. Answers 204 whether or not the token was known.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "accounts",
    request_body = RefreshRequest,
    responses((status = 204, description = "Logged out"))
)]
pub async fn logout(
    State(state): State<AppState>,
    address: ClientAddress,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.now();
    let hash = refresh::hash(body.refresh_token.trim());
    if let Some(grant) = state.store.revoke_refresh_family(&hash, now).await.map_err(store_error)? {
        let entry = Audit {
            creator: grant.creator,
            actor: grant.account.to_string(),
            action: "logout",
            target: Some(grant.account.to_string()),
            address: &address,
            detail: json!({ "family": grant.family }),
        };
        audit(&state, now, entry).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account, by the account id its access token carries.
/// How a human is named where others see their actions (a takeover, a draft decision): their
/// account's email, or the token's subject for tokens that name no account (`twin token`).
pub(crate) async fn display_name(state: &AppState, identity: &Identity) -> String {
    match own_account(state, identity).await {
        Ok(account) => account.email,
        Err(_) => identity.subject.to_string(),
    }
}

async fn own_account(state: &AppState, identity: &Identity) -> Result<Account, ApiError> {
    let not_found = || ApiError::not_found("this token names no account");
    if identity.role == Role::User {
        return Err(ApiError::forbidden("end users have no account; this needs an account's token"));
    }
    let id = Uuid::parse_str(identity.subject.as_str()).map_err(|_| not_found())?;
    let tenant = if identity.role == Role::Admin { None } else { Some(identity.creator) };
    let account = state.store.account(tenant, id).await.map_err(store_error)?.ok_or_else(not_found)?;
    if accounts::token_role(account.role) == identity.role { Ok(account) } else { Err(not_found()) }
}

/// The caller's own account, and the failed logins its owner should know about.
#[utoipa::path(
    get,
    path = "/v1/auth/me",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = MeResponse),
        (status = 401, description = "Missing, expired or invalid token"),
        (status = 404, description = "The token names no account (e.g. one minted by `twin token`)"),
    )
)]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<MeResponse>, ApiError> {
    let account = own_account(&state, caller.identity()).await?;
    Ok(Json(MeResponse {
        account: AccountView::from(&account),
        failed_attempts_since_last_login: FailedAttempts::from(&account.failures),
        failed_attempts_before_last_login: FailedAttempts::from(&account.failures_before_last_login),
    }))
}

fn create_error(error: CreateError) -> ApiError {
    match error {
        CreateError::InvalidEmail(_) | CreateError::Password(_) | CreateError::UnknownCreator(_) => {
            ApiError::bad_request(error.to_string())
        }
        CreateError::EmailTaken => ApiError::conflict(error.to_string()),
        CreateError::Failed(cause) => store_error(cause),
    }
}

/// The creator a path names, for its creator or an admin; agents get 403 (they may not manage
/// agents or read the audit log), other tenants the 404 of an unknown creator.
fn managed_creator(caller: &Caller, slug: &str) -> Result<CreatorId, ApiError> {
    let creator = caller.scope(slug)?;
    caller.require(&[Role::Admin, Role::Creator])?;
    Ok(creator)
}

/// Creates an agent account for the creator.
#[utoipa::path(
    post,
    path = "/v1/creators/{slug}/agents",
    tag = "accounts",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The creator")),
    request_body = NewAgentRequest,
    responses(
        (status = 201, description = "The agent's account", body = AccountView),
        (status = 400, description = "Invalid email or password (12 characters at least, 1024 bytes at most)"),
        (status = 403, description = "Not the creator or an admin"),
        (status = 404, description = "No such creator (or another tenant's)"),
        (status = 409, description = "The email is taken"),
    )
)]
pub async fn create_agent(
    State(state): State<AppState>,
    caller: Caller,
    address: ClientAddress,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody<NewAgentRequest>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    managed_creator(&caller, &slug)?;
    // `scope` has parsed the slug already.
    let slug = Slug::parse(&slug).map_err(|_| ApiError::not_found(format!("no creator {slug:?}")))?;
    let request =
        AccountRequest { email: body.email, password: body.password, role: AccountRole::Agent, creator: Some(slug) };
    let actor = Actor { name: caller.identity().subject.to_string(), client_address: Some(address.text()) };
    let account = accounts::create(&state.store, request, &actor, state.clock.now()).await.map_err(create_error)?;
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

/// The creator's agents, oldest first, disabled ones included.
#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/agents",
    tag = "accounts",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The creator")),
    responses(
        (status = 200, description = "The agents", body = AgentList),
        (status = 403, description = "Not the creator or an admin"),
        (status = 404, description = "No such creator (or another tenant's)"),
    )
)]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<AgentList>, ApiError> {
    let creator = managed_creator(&caller, &slug)?;
    let agents = state.store.agents(creator).await.map_err(store_error)?;
    Ok(Json(AgentList { agents: agents.iter().map(AccountView::from).collect() }))
}

/// Disables an agent and revokes its refresh tokens; its access tokens expire within 15 minutes.
#[utoipa::path(
    delete,
    path = "/v1/creators/{slug}/agents/{id}",
    tag = "accounts",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The agent's account id")),
    responses(
        (status = 204, description = "Disabled (also when it was already)"),
        (status = 403, description = "Not the creator or an admin"),
        (status = 404, description = "No such creator or agent (or another tenant's)"),
    )
)]
pub async fn disable_agent(
    State(state): State<AppState>,
    caller: Caller,
    address: ClientAddress,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let creator = managed_creator(&caller, &slug)?;
    let not_found = || ApiError::not_found(format!("no agent {id:?}"));
    let agent = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let now = state.clock.now();
    if !state.store.disable_agent(creator, agent, now).await.map_err(store_error)? {
        return Err(not_found());
    }
    let entry = Audit {
        creator: Some(creator),
        actor: caller.identity().subject.to_string(),
        action: "account.disabled",
        target: Some(agent.to_string()),
        address: &address,
        detail: json!({ "role": "agent" }),
    };
    audit(&state, now, entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The creator's audit log, newest first, in pages.
#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/audit",
    tag = "accounts",
    security(("bearer" = [])),
    params(("slug" = String, Path, description = "The creator"), AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 403, description = "Not the creator or an admin"),
        (status = 404, description = "No such creator (or another tenant's)"),
    )
)]
pub async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let creator = managed_creator(&caller, &slug)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_AUDIT_PAGE).clamp(1, MAX_AUDIT_PAGE);
    let records = state.store.audit_entries(creator, query.before, limit).await.map_err(store_error)?;
    let full = records.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next_before = if full { records.last().map(|r| r.id) } else { None };
    Ok(Json(AuditPage { entries: records.into_iter().map(AuditView::from).collect(), next_before }))
}

/// Creates a creator or admin account (admins only).
#[utoipa::path(
    post,
    path = "/v1/accounts",
    tag = "accounts",
    security(("bearer" = [])),
    request_body = NewAccountRequest,
    responses(
        (status = 201, description = "The account", body = AccountView),
        (status = 400, description = "Invalid email, password, role or creator"),
        (status = 403, description = "Not an admin"),
        (status = 409, description = "The email is taken"),
    )
)]
pub async fn create_account(
    State(state): State<AppState>,
    caller: Caller,
    address: ClientAddress,
    JsonBody(body): JsonBody<NewAccountRequest>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    caller.require(&[Role::Admin])?;
    let (role, creator) = match (body.role.as_str(), body.creator) {
        ("admin", None) => (AccountRole::Admin, None),
        ("creator", Some(slug)) => {
            let slug = Slug::parse(&slug).map_err(|_| ApiError::bad_request(format!("there is no creator {slug}")))?;
            (AccountRole::Creator, Some(slug))
        }
        ("admin", Some(_)) => return Err(ApiError::bad_request("an admin account belongs to no creator")),
        ("creator", None) => return Err(ApiError::bad_request("a creator account needs `creator` (a slug)")),
        (other, _) => {
            return Err(ApiError::bad_request(format!(
                "role must be `creator` or `admin`, not {other:?} (agents: POST /v1/creators/{{slug}}/agents)"
            )));
        }
    };
    let request = AccountRequest { email: body.email, password: body.password, role, creator };
    let actor = Actor { name: caller.identity().subject.to_string(), client_address: Some(address.text()) };
    let account = accounts::create(&state.store, request, &actor, state.clock.now()).await.map_err(create_error)?;
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[derive(OpenApi)]
    #[openapi(paths(
        super::login,
        super::refresh,
        super::logout,
        super::me,
        super::create_agent,
        super::list_agents,
        super::disable_agent,
        super::audit_log,
        super::create_account
    ))]
    struct AccountsApi;

    #[test]
    fn every_route_is_in_the_openapi_document_with_its_schemas() {
        let doc = serde_json::to_value(AccountsApi::openapi()).unwrap_or_default();
        for (path, method) in [
            ("/v1/auth/login", "post"),
            ("/v1/auth/refresh", "post"),
            ("/v1/auth/logout", "post"),
            ("/v1/auth/me", "get"),
            ("/v1/accounts", "post"),
            ("/v1/creators/{slug}/agents", "post"),
            ("/v1/creators/{slug}/agents", "get"),
            ("/v1/creators/{slug}/agents/{id}", "delete"),
            ("/v1/creators/{slug}/audit", "get"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path} is missing");
        }
        for schema in ["LoginRequest", "LoginResponse", "AccountView", "AuditPage", "MeResponse"] {
            assert!(doc["components"]["schemas"][schema].is_object(), "schema {schema} is missing");
        }
        let query = &doc["paths"]["/v1/creators/{slug}/audit"]["get"]["parameters"];
        let names: Vec<&str> = query.as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(names, vec!["slug", "before", "limit"]);
    }
}
