//! A chunk as a Qdrant point: its deterministic id and its payload, and the way back from a scored
//! point's payload to the chunk's key.

use std::collections::HashMap;

use qdrant_client::Payload;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::{PointId, Value};
use twin_engine::ids::CreatorId;
use twin_engine::ports::{ChunkKey, IndexError};
use uuid::Uuid;

/// The tenant key, a keyword with a tenant payload index: the creator's uuid as text.
pub(super) const PAYLOAD_CREATOR: &str = "creator_id";
pub(super) const PAYLOAD_DOCUMENT: &str = "document";
pub(super) const PAYLOAD_CONTENT_HASH: &str = "content_hash";
pub(super) const PAYLOAD_ORDINAL: &str = "ordinal";

/// A UUIDv5 of (creator, document, ordinal): upserting a chunk again replaces its point.
pub(super) fn point_id(creator: CreatorId, document: &str, ordinal: u32) -> PointId {
    // The document path cannot contain NUL, so the name is unambiguous.
    let name = format!("{document}\0{ordinal}");
    PointId::from(Uuid::new_v5(&creator.as_uuid(), name.as_bytes()).to_string())
}

pub(super) fn point_payload(creator: CreatorId, document: &str, content_hash: &str, ordinal: u32) -> Payload {
    let mut payload = Payload::new();
    payload.insert(PAYLOAD_CREATOR, creator.to_string());
    payload.insert(PAYLOAD_DOCUMENT, document);
    payload.insert(PAYLOAD_CONTENT_HASH, content_hash);
    payload.insert(PAYLOAD_ORDINAL, i64::from(ordinal));
    payload
}

/// The creator a point belongs to, if its payload says.
pub(super) fn point_creator(payload: &HashMap<String, Value>) -> Option<&str> {
    text(payload, PAYLOAD_CREATOR)
}

/// The chunk a scored point stands for. A point without our payload was not written by this
/// adapter: `Invalid`.
pub(super) fn chunk_key(payload: &HashMap<String, Value>) -> Result<ChunkKey, IndexError> {
    let missing = |field: &str| IndexError::Invalid(format!("a Qdrant point without a valid `{field}` payload"));
    let document = text(payload, PAYLOAD_DOCUMENT).ok_or_else(|| missing(PAYLOAD_DOCUMENT))?;
    let content_hash = text(payload, PAYLOAD_CONTENT_HASH).ok_or_else(|| missing(PAYLOAD_CONTENT_HASH))?;
    let ordinal = match payload.get(PAYLOAD_ORDINAL).and_then(|v| v.kind.as_ref()) {
        Some(Kind::IntegerValue(n)) => u32::try_from(*n).ok(),
        // Qdrant may hand back a JSON number as a double.
        Some(Kind::DoubleValue(n)) if n.fract() == 0.0 && *n >= 0.0 && *n <= f64::from(u32::MAX) => Some(*n as u32),
        _ => None,
    }
    .ok_or_else(|| missing(PAYLOAD_ORDINAL))?;
    Ok(ChunkKey { document: document.to_owned(), content_hash: content_hash.to_owned(), ordinal })
}

fn text<'a>(payload: &'a HashMap<String, Value>, field: &str) -> Option<&'a str> {
    match payload.get(field).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creator(n: u128) -> CreatorId {
        CreatorId(Uuid::from_u128(n))
    }

    #[test]
    fn a_point_id_depends_on_creator_document_and_ordinal_only() {
        assert_eq!(point_id(creator(1), "a.md", 0), point_id(creator(1), "a.md", 0));
        assert_ne!(point_id(creator(1), "a.md", 0), point_id(creator(2), "a.md", 0));
        assert_ne!(point_id(creator(1), "a.md", 0), point_id(creator(1), "b.md", 0));
        assert_ne!(point_id(creator(1), "a.md", 0), point_id(creator(1), "a.md", 1));
        assert_ne!(point_id(creator(1), "a.md1", 0), point_id(creator(1), "a.md", 10));
    }

    #[test]
    fn a_payload_gives_back_its_chunk_key() {
        let payload: HashMap<String, Value> = point_payload(creator(1), "faq/pricing.md", "h1", 7).into();
        assert_eq!(point_creator(&payload), Some(creator(1).to_string().as_str()));
        assert_eq!(
            chunk_key(&payload).expect("our own payload"),
            ChunkKey { document: "faq/pricing.md".into(), content_hash: "h1".into(), ordinal: 7 }
        );
    }
}
