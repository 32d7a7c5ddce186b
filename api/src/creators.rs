//! Changing a creator from the API the way an import changes it: the stored profile becomes a new
//! version (knowledge and programs carried over as they are), then the running twin reloads, so
//! its conversations use the change from their next event on.

use twin_engine::CreatorId;
use twin_engine::ports::CreatorStore;
use twin_engine::twin::CreatorProfile;

use crate::problem::ApiError;
use crate::routes::AppState;

/// Applies `change` to the creator's profile and stores the result; returns the new profile.
/// `change` may refuse with an error, and nothing is written.
///
/// Writes of this process are serialised (`creator_write_lock`), so two read-modify-write cycles
/// cannot lose a change; across several nodes the store keeps no compare-and-set on profiles yet.
pub async fn update_profile(
    state: &AppState,
    slug: &str,
    creator: CreatorId,
    change: impl FnOnce(&mut CreatorProfile) -> Result<(), ApiError>,
) -> Result<CreatorProfile, ApiError> {
    let _writing = crate::routes::rest::creator_write_lock().await;
    let stored =
        state.store.creator(creator).await.map_err(ApiError::internal)?.ok_or_else(|| crate::auth::no_creator(slug))?;
    let mut profile = stored.profile.clone();
    change(&mut profile)?;
    if profile == stored.profile {
        return Ok(profile);
    }
    crate::routes::rest::creators::store_profile(state, slug, &profile, &stored).await?;
    tracing::info!(creator = %profile.slug, "creator profile changed through the API");
    Ok(profile)
}
