//! What a conversation needs to know about its creator's twin, shared read-only by all of them.

use serde::{Deserialize, Serialize};

use crate::ids::{CreatorId, Slug};
use crate::knowledge::{KnowledgeDocument, KnowledgeIndex};
use crate::persona::Persona;

/// The creator as stored: persona, settings and knowledge documents, one version at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatorProfile {
    pub slug: Slug,
    pub persona: Persona,
    #[serde(default)]
    pub replies: ReplySettings,
    /// Web origins allowed to open chat sockets (browsers send `Origin`); empty allows any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// How replies are produced and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplySettings {
    /// Send `delta` previews while a reply is generated.
    pub stream_previews: bool,
    /// How many recent messages go into a reply's context.
    pub history_window: usize,
    /// How many knowledge passages a reply may draw on.
    pub passages: usize,
}

impl Default for ReplySettings {
    fn default() -> Self {
        Self { stream_previews: true, history_window: 20, passages: 3 }
    }
}

/// An immutable view of one creator's twin, built when the twin loads or changes.
#[derive(Debug, Clone)]
pub struct TwinSnapshot {
    pub creator: CreatorId,
    pub profile: CreatorProfile,
    pub knowledge: KnowledgeIndex,
    /// Text the system prompt is built from; assembled once per snapshot.
    pub system_prompt: String,
}

impl TwinSnapshot {
    pub fn new(profile: CreatorProfile, documents: &[KnowledgeDocument]) -> Self {
        let system_prompt = crate::prompt::system_prompt(&profile.persona);
        Self { creator: profile.slug.creator_id(), knowledge: KnowledgeIndex::build(documents), profile, system_prompt }
    }
}
