//! The knowledge side of the store on both backends: ingestion status per document and the
//! embedded index's vectors (little-endian f32 bytes).

use sqlx::{QueryBuilder, Sqlite};
use twin_engine::CreatorId;
use twin_engine::ports::{ChunkKey, DocumentStatus, IngestState, StoreError};

use crate::error::{from_sqlx, out_of_range};
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;

/// Vectors per INSERT statement (each row binds six values).
const VECTORS_PER_INSERT: usize = 500;

type StatusTuple = (String, String, String, i64, String, i64, i64, Option<String>, i64);

const STATUS_COLUMNS: &str =
    "document, content_hash, embedder, chunker, state, chunks_done, chunks_total, error, updated_at";

pub(crate) fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt(format!("a stored vector has {} bytes, not a multiple of 4", bytes.len())));
    }
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

fn status_of(
    (document, content_hash, embedder, chunker, state, done, total, error, updated_at): StatusTuple,
) -> Result<DocumentStatus, StoreError> {
    let count = |what: &str, v: i64| u32::try_from(v).map_err(|_| out_of_range(what, v));
    Ok(DocumentStatus {
        state: IngestState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown ingestion state {state:?}")))?,
        chunker: count("chunker", chunker)?,
        chunks_done: count("chunks_done", done)?,
        chunks_total: count("chunks_total", total)?,
        document,
        content_hash,
        embedder,
        error,
        updated_at,
    })
}

fn ordinal_of(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| out_of_range("ordinal", v))
}

impl PgStore {
    pub(crate) async fn ingestion(&self, creator: CreatorId) -> Result<Vec<DocumentStatus>, StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN READ ONLY").await?;
        let rows: Vec<StatusTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {STATUS_COLUMNS} FROM knowledge_ingestion WHERE creator_id = $1 ORDER BY document COLLATE \"C\""
        )))
        .bind(creator.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        rows.into_iter().map(status_of).collect()
    }

    pub(crate) async fn set_ingestion(&self, creator: CreatorId, s: &DocumentStatus) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO knowledge_ingestion (creator_id, {STATUS_COLUMNS}) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
             WHERE EXISTS (SELECT 1 FROM knowledge_documents WHERE creator_id = $1 AND path = $2) \
             ON CONFLICT (creator_id, document) DO UPDATE SET content_hash = excluded.content_hash, \
                 embedder = excluded.embedder, chunker = excluded.chunker, state = excluded.state, \
                 chunks_done = excluded.chunks_done, chunks_total = excluded.chunks_total, \
                 error = excluded.error, updated_at = excluded.updated_at"
        )))
        .bind(creator.0)
        .bind(&s.document)
        .bind(&s.content_hash)
        .bind(&s.embedder)
        .bind(i64::from(s.chunker))
        .bind(s.state.as_str())
        .bind(i64::from(s.chunks_done))
        .bind(i64::from(s.chunks_total))
        .bind(&s.error)
        .bind(s.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)
    }

    pub(crate) async fn vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
    ) -> Result<Vec<(ChunkKey, Vec<f32>)>, StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN READ ONLY").await?;
        let rows: Vec<(String, String, i32, Vec<u8>)> = sqlx::query_as(
            "SELECT document, content_hash, ordinal, vector FROM knowledge_vectors \
             WHERE creator_id = $1 AND embedder = $2 ORDER BY document COLLATE \"C\", ordinal",
        )
        .bind(creator.0)
        .bind(embedder)
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        rows.into_iter()
            .map(|(document, content_hash, ordinal, bytes)| {
                Ok((ChunkKey { document, content_hash, ordinal: ordinal_of(i64::from(ordinal))? }, decode(&bytes)?))
            })
            .collect()
    }

    pub(crate) async fn replace_vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
        document: &str,
        content_hash: &str,
        vectors: &[(u32, Vec<f32>)],
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        sqlx::query("DELETE FROM knowledge_vectors WHERE creator_id = $1 AND document = $2")
            .bind(creator.0)
            .bind(document)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        for batch in vectors.chunks(VECTORS_PER_INSERT) {
            let ordinals = batch
                .iter()
                .map(|(o, _)| i32::try_from(*o).map_err(|_| out_of_range("ordinal", i64::from(*o))))
                .collect::<Result<Vec<i32>, _>>()?;
            let bytes: Vec<Vec<u8>> = batch.iter().map(|(_, v)| encode(v)).collect();
            sqlx::query(
                "INSERT INTO knowledge_vectors (creator_id, document, content_hash, embedder, ordinal, vector) \
                 SELECT $1, $2, $3, $4, u.ordinal, u.vector FROM UNNEST($5::integer[], $6::bytea[]) AS u(ordinal, vector)",
            )
            .bind(creator.0)
            .bind(document)
            .bind(content_hash)
            .bind(embedder)
            .bind(&ordinals)
            .bind(&bytes)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)
    }

    pub(crate) async fn retain_vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
        keep: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        sqlx::query(
            "DELETE FROM knowledge_vectors WHERE creator_id = $1 AND (embedder <> $2 OR NOT (document = ANY($3::text[])))",
        )
        .bind(creator.0)
        .bind(embedder)
        .bind(keep)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)
    }
}

impl SqliteStore {
    pub(crate) async fn ingestion(&self, creator: CreatorId) -> Result<Vec<DocumentStatus>, StoreError> {
        let rows: Vec<StatusTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {STATUS_COLUMNS} FROM knowledge_ingestion WHERE creator_id = ? ORDER BY document"
        )))
        .bind(creator.0.hyphenated())
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.into_iter().map(status_of).collect()
    }

    pub(crate) async fn set_ingestion(&self, creator: CreatorId, s: &DocumentStatus) -> Result<(), StoreError> {
        let id = creator.0.hyphenated();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO knowledge_ingestion (creator_id, {STATUS_COLUMNS}) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 \
             WHERE EXISTS (SELECT 1 FROM knowledge_documents WHERE creator_id = ?1 AND path = ?2) \
             ON CONFLICT (creator_id, document) DO UPDATE SET content_hash = excluded.content_hash, \
                 embedder = excluded.embedder, chunker = excluded.chunker, state = excluded.state, \
                 chunks_done = excluded.chunks_done, chunks_total = excluded.chunks_total, \
                 error = excluded.error, updated_at = excluded.updated_at"
        )))
        .bind(id)
        .bind(&s.document)
        .bind(&s.content_hash)
        .bind(&s.embedder)
        .bind(i64::from(s.chunker))
        .bind(s.state.as_str())
        .bind(i64::from(s.chunks_done))
        .bind(i64::from(s.chunks_total))
        .bind(&s.error)
        .bind(s.updated_at)
        .execute(&self.writer)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    pub(crate) async fn vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
    ) -> Result<Vec<(ChunkKey, Vec<f32>)>, StoreError> {
        let rows: Vec<(String, String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT document, content_hash, ordinal, vector FROM knowledge_vectors \
             WHERE creator_id = ? AND embedder = ? ORDER BY document, ordinal",
        )
        .bind(creator.0.hyphenated())
        .bind(embedder)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.into_iter()
            .map(|(document, content_hash, ordinal, bytes)| {
                Ok((ChunkKey { document, content_hash, ordinal: ordinal_of(ordinal)? }, decode(&bytes)?))
            })
            .collect()
    }

    pub(crate) async fn replace_vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
        document: &str,
        content_hash: &str,
        vectors: &[(u32, Vec<f32>)],
    ) -> Result<(), StoreError> {
        let id = creator.0.hyphenated();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(from_sqlx)?;
        sqlx::query("DELETE FROM knowledge_vectors WHERE creator_id = ? AND document = ?")
            .bind(id)
            .bind(document)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        for batch in vectors.chunks(VECTORS_PER_INSERT / 4) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO knowledge_vectors (creator_id, document, content_hash, embedder, ordinal, vector) ",
            );
            insert.push_values(batch, |mut row, (ordinal, vector)| {
                row.push_bind(id)
                    .push_bind(document.to_owned())
                    .push_bind(content_hash.to_owned())
                    .push_bind(embedder.to_owned())
                    .push_bind(i64::from(*ordinal))
                    .push_bind(encode(vector));
            });
            insert.build().execute(&mut *tx).await.map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)
    }

    pub(crate) async fn retain_vectors(
        &self,
        creator: CreatorId,
        embedder: &str,
        keep: &[String],
    ) -> Result<(), StoreError> {
        let keep = serde_json::to_string(keep).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "DELETE FROM knowledge_vectors WHERE creator_id = ? AND \
             (embedder <> ? OR document NOT IN (SELECT value FROM json_each(?)))",
        )
        .bind(creator.0.hyphenated())
        .bind(embedder)
        .bind(keep)
        .execute(&self.writer)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_their_bytes() {
        let v = vec![0.0, -1.5, f32::MIN_POSITIVE, 3.25e7];
        assert_eq!(decode(&encode(&v)).expect("valid bytes"), v);
        assert!(decode(&[1, 2, 3]).is_err(), "a length that is not a multiple of 4 is corrupt");
    }
}
