//! The model parts chosen from the configuration: which language model writes replies, which
//! embedder turns knowledge into vectors, and which index holds them. Each has an embedded default
//! that needs nothing (the built-in responder, the hashed n-gram embedder, the embedded index in
//! the store), so `twin serve` runs with no setup.

use std::sync::Arc;

use anyhow::Context;
use twin_actors::KnowledgePorts;
use twin_engine::knowledge::HashedEmbedder;
use twin_engine::ports::{Embedder, Llm, VectorIndex};
use twin_llm::{ApiKey, BuiltinResponder, EmbedConfig, OpenAiChat, OpenAiConfig, OpenAiEmbedder};
use twin_store::{EmbeddedIndex, Store};

use crate::settings::Settings;

/// The chat model: an OpenAI-compatible server when `TWIN_LLM_BASE_URL` is set, else the built-in
/// responder.
pub fn chat_model(settings: &Settings) -> anyhow::Result<Arc<dyn Llm>> {
    let Some(base_url) = &settings.llm.base_url else {
        tracing::info!("replies: the built-in responder (set TWIN_LLM_BASE_URL for a model server)");
        return Ok(Arc::new(BuiltinResponder::new()));
    };
    let model =
        settings.llm.model.clone().context("TWIN_LLM_MODEL must name the model when TWIN_LLM_BASE_URL is set")?;
    let mut config = OpenAiConfig::new(base_url.clone(), model.clone());
    config.api_key = settings.llm.api_key.as_ref().map(|k| ApiKey::new(k.expose()));
    let chat = OpenAiChat::new(config).map_err(|e| anyhow::anyhow!("cannot set up the chat model: {e}"))?;
    tracing::info!(%base_url, %model, "replies: an OpenAI-compatible chat server");
    Ok(Arc::new(chat))
}

/// The embedder: an OpenAI-compatible embeddings server (`TWIN_EMBED_BASE_URL`), a local
/// sentence-transformers folder (`TWIN_EMBED_MODEL_PATH`), else the built-in hashed n-grams.
pub async fn embedder(settings: &Settings) -> anyhow::Result<Arc<dyn Embedder>> {
    if let Some(base_url) = &settings.embed.base_url {
        let model = settings
            .embed
            .model
            .clone()
            .context("TWIN_EMBED_MODEL must name the model when TWIN_EMBED_BASE_URL is set")?;
        let mut config = EmbedConfig::new(base_url.clone(), model);
        config.api_key = settings.embed.api_key.as_ref().map(|k| ApiKey::new(k.expose()));
        let embedder = OpenAiEmbedder::connect(config)
            .await
            .with_context(|| format!("cannot reach the embeddings server at {base_url}"))?;
        tracing::info!(embedder = %embedder.id().key(), "knowledge: an OpenAI-compatible embeddings server");
        return Ok(Arc::new(embedder));
    }
    if let Some(path) = &settings.embed_model_path {
        let path = path.clone();
        let embedder = tokio::task::spawn_blocking(move || twin_embed::SentenceBertEmbedder::load(&path))
            .await
            .context("the model loader stopped")?
            .context("cannot load the model named by TWIN_EMBED_MODEL_PATH")?;
        tracing::info!(embedder = %embedder.id().key(), "knowledge: a local sentence-transformers model");
        return Ok(Arc::new(embedder));
    }
    let embedder = HashedEmbedder::default();
    tracing::info!(embedder = %embedder.id().key(), "knowledge: the built-in hashed n-gram embedder");
    Ok(Arc::new(embedder))
}

/// The vector index: a Qdrant server (`TWIN_QDRANT_URL`), else the embedded index in the store.
pub async fn vector_index(settings: &Settings, store: &Store) -> anyhow::Result<Arc<dyn VectorIndex>> {
    if let Some(url) = &settings.qdrant_url {
        let index = twin_vector::QdrantIndex::connect(url, None, "twin_")
            .await
            .with_context(|| format!("cannot reach Qdrant at {url}"))?;
        tracing::info!(%url, "knowledge: vectors in Qdrant");
        return Ok(Arc::new(index));
    }
    Ok(Arc::new(EmbeddedIndex::new(Arc::new(store.clone()))))
}

/// Embedder, index and the store's ingestion status, together.
pub async fn knowledge_ports(settings: &Settings, store: &Store) -> anyhow::Result<KnowledgePorts> {
    Ok(KnowledgePorts {
        embedder: embedder(settings).await?,
        index: vector_index(settings, store).await?,
        store: Arc::new(store.clone()),
    })
}
