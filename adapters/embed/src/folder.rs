//! A sentence-transformers model folder on disk: which files it must hold, and the few settings read
//! from it before the model is built. Used by [`crate::SentenceBertEmbedder::load`].

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Word pieces per text when the folder has no `sentence_bert_config.json` (all-MiniLM-L6-v2's
/// own setting).
pub(crate) const DEFAULT_MAX_SEQ_LENGTH: usize = 256;

/// Why a model folder could not be loaded. Every variant is a deployment mistake: fix the folder
/// (or the path to it) and start again; retrying the same folder will not help.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the embedding model folder {0} does not exist or is not a directory")]
    NotAFolder(PathBuf),
    #[error("the embedding model folder {dir} has no {file} (expected a sentence-transformers folder)")]
    MissingFile { dir: PathBuf, file: &'static str },
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid model setting file")]
    BadSettings {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("could not load the tokenizer {path}")]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: tokenizers::Error,
    },
    #[error("the weights in {path} do not fit the model's config.json")]
    Weights {
        path: PathBuf,
        #[source]
        source: candle_core::Error,
    },
    /// The folder holds a model this embedder does not run (another architecture or pooling).
    #[error("unsupported model in {dir}: {reason}")]
    Unsupported { dir: PathBuf, reason: String },
}

/// The files of a folder, checked to exist, and the settings the embedder needs besides the
/// weights.
#[derive(Debug)]
pub(crate) struct ModelFolder {
    /// The folder's own name (`all-MiniLM-L6-v2`), used in the embedder's id.
    pub name: String,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    pub weights: PathBuf,
    /// Word pieces per text, special tokens included; longer texts are cut.
    pub max_seq_length: usize,
}

/// `sentence_bert_config.json`.
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// `1_Pooling/config.json`; only mean pooling is implemented.
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

impl ModelFolder {
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        if !dir.is_dir() {
            return Err(LoadError::NotAFolder(dir.to_path_buf()));
        }
        let required = |file: &'static str| {
            let path = dir.join(file);
            if path.is_file() { Ok(path) } else { Err(LoadError::MissingFile { dir: dir.to_path_buf(), file }) }
        };
        let config = required("config.json")?;
        let tokenizer = required("tokenizer.json")?;
        let weights = required("model.safetensors")?;

        let max_seq_length = match read_optional_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))? {
            Some(SentenceBertConfig { max_seq_length: Some(length) }) => length,
            _ => DEFAULT_MAX_SEQ_LENGTH,
        };
        if let Some(pooling) = read_optional_json::<PoolingConfig>(&dir.join("1_Pooling").join("config.json"))?
            && !pooling.pooling_mode_mean_tokens
        {
            return Err(LoadError::Unsupported {
                dir: dir.to_path_buf(),
                reason: "1_Pooling/config.json asks for a pooling other than the mean of the tokens".into(),
            });
        }

        // `canonicalize` so that `.` or a trailing slash still yields the folder's real name.
        let name = fs::canonicalize(dir)
            .ok()
            .and_then(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unnamed".into());
        Ok(Self { name, config, tokenizer, weights, max_seq_length })
    }
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, LoadError> {
    let text = fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|source| LoadError::BadSettings { path: path.to_path_buf(), source })
}

fn read_optional_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, LoadError> {
    if path.is_file() { read_json(path).map(Some) } else { Ok(None) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary folder");
        for (name, text) in files {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().expect("a file inside the folder")).expect("create the parent");
            fs::write(path, text).expect("write a file");
        }
        dir
    }

    const COMPLETE: [(&str, &str); 3] = [("config.json", "{}"), ("tokenizer.json", "{}"), ("model.safetensors", "")];

    #[test]
    fn a_missing_folder_is_named() {
        let err = ModelFolder::open(Path::new("/nonexistent/all-MiniLM-L6-v2")).expect_err("no folder");
        assert!(matches!(err, LoadError::NotAFolder(_)));
        assert!(err.to_string().contains("/nonexistent/all-MiniLM-L6-v2"), "{err}");
    }

    #[test]
    fn each_missing_file_is_named() {
        for missing in ["config.json", "tokenizer.json", "model.safetensors"] {
            let files: Vec<_> = COMPLETE.iter().copied().filter(|(name, _)| *name != missing).collect();
            let dir = folder_with(&files);
            let err = ModelFolder::open(dir.path()).expect_err("a file is missing");
            assert!(matches!(err, LoadError::MissingFile { file, .. } if file == missing), "{err}");
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn the_max_length_comes_from_sentence_bert_config_or_defaults_to_256() {
        let dir = folder_with(&COMPLETE);
        assert_eq!(ModelFolder::open(dir.path()).expect("complete").max_seq_length, 256);

        let mut files = COMPLETE.to_vec();
        files.push(("sentence_bert_config.json", r#"{"max_seq_length": 128, "do_lower_case": false}"#));
        let dir = folder_with(&files);
        assert_eq!(ModelFolder::open(dir.path()).expect("complete").max_seq_length, 128);
    }

    #[test]
    fn a_pooling_other_than_mean_is_refused() {
        let mut files = COMPLETE.to_vec();
        files.push(("1_Pooling/config.json", r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#));
        let dir = folder_with(&files);
        let err = ModelFolder::open(dir.path()).expect_err("CLS pooling");
        assert!(matches!(err, LoadError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn the_name_is_the_folders_own_name() {
        let parent = tempfile::tempdir().expect("a temporary folder");
        let dir = parent.path().join("all-MiniLM-L6-v2");
        fs::create_dir(&dir).expect("create the model folder");
        for (name, text) in COMPLETE {
            fs::write(dir.join(name), text).expect("write a file");
        }
        let with_dot = dir.join(".");
        assert_eq!(ModelFolder::open(&with_dot).expect("complete").name, "all-MiniLM-L6-v2");
    }
}
