//! Changing a creator from the API the way an import changes it: the stored profile becomes a new
//! version (knowledge and programs carried over as they are), then the running twin reloads, so
//! its conversations use the change from their next event on.

use twin_engine::CreatorId;
use twin_engine::ports::{CreatorStore, ProgramSource};
use twin_engine::twin::CreatorProfile;

use crate::problem::ApiError;
use crate::routes::AppState;

/// Applies `change` to the creator's profile and stores the result; returns the new profile.
/// `change` may refuse with an error, and nothing is written.
///
/// Two changes of one creator at the same moment both read the same version; the later write wins
/// whole (the store keeps no compare-and-set on profiles yet).
pub async fn update_profile(
    state: &AppState,
    slug: &str,
    creator: CreatorId,
    change: impl FnOnce(&mut CreatorProfile) -> Result<(), ApiError>,
) -> Result<CreatorProfile, ApiError> {
    let stored =
        state.store.creator(creator).await.map_err(ApiError::internal)?.ok_or_else(|| crate::auth::no_creator(slug))?;
    let mut profile = stored.profile.clone();
    change(&mut profile)?;
    if profile == stored.profile {
        return Ok(profile);
    }
    // The latest version of each program (they come by id, then version).
    let mut programs: Vec<ProgramSource> = Vec::new();
    for program in stored.programs {
        match programs.last_mut() {
            Some(last) if last.id == program.id => last.source = program.source,
            _ => programs.push(ProgramSource { id: program.id, source: program.source }),
        }
    }
    state.store.put_creator(&profile, &stored.documents, &programs).await.map_err(ApiError::internal)?;
    state.engine.reload_twin(creator).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    tracing::info!(creator = %profile.slug, "creator profile changed through the API");
    Ok(profile)
}
