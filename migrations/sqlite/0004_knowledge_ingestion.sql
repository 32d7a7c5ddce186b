-- Knowledge ingestion status and the embedded index's vectors, as in PostgreSQL's 0006.

CREATE TABLE knowledge_ingestion (
    creator_id   TEXT    NOT NULL,
    document     TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    embedder     TEXT    NOT NULL,
    chunker      INTEGER NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('embedding', 'ready', 'failed')),
    chunks_done  INTEGER NOT NULL CHECK (chunks_done >= 0),
    chunks_total INTEGER NOT NULL CHECK (chunks_total >= 0),
    error        TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (creator_id, document),
    FOREIGN KEY (creator_id, document) REFERENCES knowledge_documents (creator_id, path) ON DELETE CASCADE
);

CREATE TABLE knowledge_vectors (
    creator_id   TEXT    NOT NULL,
    document     TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    embedder     TEXT    NOT NULL,
    ordinal      INTEGER NOT NULL CHECK (ordinal >= 0),
    vector       BLOB    NOT NULL,
    PRIMARY KEY (creator_id, embedder, document, ordinal),
    FOREIGN KEY (creator_id, document) REFERENCES knowledge_documents (creator_id, path) ON DELETE CASCADE
);

-- The consistency score of a twin reply, in thousandths (0..1000); NULL for other messages.
ALTER TABLE messages ADD COLUMN consistency INTEGER CHECK (consistency BETWEEN 0 AND 1000);
