//! The content hash that tells an unchanged creator import from a changed one.

use sha2::{Digest, Sha256};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::ports::StoreError;
use twin_engine::twin::CreatorProfile;

/// A creator's import, validated and in canonical order.
pub(crate) struct CreatorContent<'a> {
    /// serde_json of the profile (struct field order, so stable for the same profile).
    pub profile_json: String,
    /// Sorted by path, byte-wise; paths are unique.
    pub documents: Vec<&'a KnowledgeDocument>,
    /// Hex sha-256 over the profile JSON and the sorted documents.
    pub hash: String,
}

impl<'a> CreatorContent<'a> {
    pub(crate) fn new(profile: &CreatorProfile, documents: &'a [KnowledgeDocument]) -> Result<Self, StoreError> {
        let profile_json = serde_json::to_string(profile)
            .map_err(|e| StoreError::Corrupt(format!("creator profile cannot be serialized: {e}")))?;
        let mut sorted: Vec<&KnowledgeDocument> = documents.iter().collect();
        sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0].path == pair[1].path) {
            return Err(StoreError::Corrupt(format!("two knowledge documents share the path {:?}", pair[0].path)));
        }
        let mut hasher = Sha256::new();
        hasher.update(b"twin-creator-v1\0");
        field(&mut hasher, profile_json.as_bytes());
        for doc in &sorted {
            field(&mut hasher, doc.path.as_bytes());
            field(&mut hasher, doc.body.as_bytes());
        }
        Ok(Self { hash: hex(&hasher.finalize()), profile_json, documents: sorted })
    }
}

/// Hex sha-256 of one stored text (a document body, a program source), stored per row: the
/// engine's definition, so ingestion's hashes match the rows.
pub(crate) fn body_hash(body: &str) -> String {
    twin_engine::knowledge::content_hash(body)
}

/// Length-prefixed, so moving bytes between fields changes the hash.
fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}
