-- Knowledge ingestion: where each document's embedding stands, and the vectors of the embedded
-- index (a Qdrant server, when configured, holds them instead and this table stays empty).
-- Both reference the document, so removing a document from the creator removes them too.

CREATE TABLE knowledge_ingestion (
    creator_id   uuid    NOT NULL,
    document     text    NOT NULL,
    -- the document content the status is about (hex sha-256 of its body)
    content_hash text    NOT NULL,
    -- EmbedderId::key(): vectors of different embedders are never compared
    embedder     text    NOT NULL,
    chunker      bigint  NOT NULL,
    state        text    NOT NULL CHECK (state IN ('embedding', 'ready', 'failed')),
    chunks_done  bigint  NOT NULL CHECK (chunks_done >= 0),
    chunks_total bigint  NOT NULL CHECK (chunks_total >= 0),
    error        text,
    -- milliseconds since the Unix epoch
    updated_at   bigint  NOT NULL,
    PRIMARY KEY (creator_id, document),
    FOREIGN KEY (creator_id, document) REFERENCES knowledge_documents (creator_id, path) ON DELETE CASCADE
);

CREATE TABLE knowledge_vectors (
    creator_id   uuid    NOT NULL,
    document     text    NOT NULL,
    content_hash text    NOT NULL,
    embedder     text    NOT NULL,
    ordinal      integer NOT NULL CHECK (ordinal >= 0),
    -- little-endian f32s, L2-normalised
    vector       bytea   NOT NULL,
    PRIMARY KEY (creator_id, embedder, document, ordinal),
    FOREIGN KEY (creator_id, document) REFERENCES knowledge_documents (creator_id, path) ON DELETE CASCADE
);

ALTER TABLE knowledge_ingestion ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge_ingestion FORCE ROW LEVEL SECURITY;
ALTER TABLE knowledge_vectors   ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge_vectors   FORCE ROW LEVEL SECURITY;

CREATE POLICY knowledge_ingestion_tenant ON knowledge_ingestion TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

CREATE POLICY knowledge_vectors_tenant ON knowledge_vectors TO twin_app
    USING (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid)
    WITH CHECK (creator_id = nullif(current_setting('app.creator_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON knowledge_ingestion TO twin_app;
GRANT SELECT, INSERT, DELETE ON knowledge_vectors TO twin_app;

-- The consistency score of a twin reply against the creator's persona, in thousandths (0..1000);
-- NULL for every other message.
ALTER TABLE messages ADD COLUMN consistency smallint CHECK (consistency BETWEEN 0 AND 1000);
