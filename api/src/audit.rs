//! Recording security-relevant actions of REST callers in the audit log (`twin_store::AuditEntry`):
//! who (the token's subject and role), what, on which target, from which address — never secrets,
//! passwords or message text.

use serde_json::Value;

use crate::auth::Identity;
use crate::limits::ClientAddress;
use crate::problem::ApiError;
use crate::routes::AppState;

/// Records `action` on `target` by `caller` in `creator`'s log (the tenant acted on: an admin's
/// action lands in the log of the creator it changed).
pub async fn record(
    state: &AppState,
    creator: twin_engine::CreatorId,
    caller: &Identity,
    address: &ClientAddress,
    action: &str,
    target: Option<String>,
    detail: Value,
) -> Result<(), ApiError> {
    let entry = twin_store::AuditEntry {
        creator: Some(creator),
        at: state.clock.now(),
        actor: format!("{}:{}", caller.role.as_str(), caller.subject),
        action: action.to_owned(),
        target,
        client_address: address.0.map(|ip| ip.to_string()),
        detail,
    };
    state.store.audit(&entry).await.map_err(ApiError::internal)
}
