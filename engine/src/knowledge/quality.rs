//! Measuring retrieval: a dataset of knowledge documents and questions (each naming the chunk that
//! answers it, or off-topic), and [`evaluate`], which runs any retriever over it. The same
//! dataset judges the hashed embedder here and neural embedders in their own crates.
//!
//! Layout of a dataset folder: `knowledge/*.md|*.txt` and `questions.toml` with `[[question]]`
//! (`text`, `document`, optional `heading` — the last part of the heading path — and optional
//! `phrase` the answering chunk contains) and `[[off_topic]]` (`text`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::chunk::{Chunk, HEADING_SEPARATOR};
use super::fuse::Retrieved;
use super::{KnowledgeDocument, chunk};

#[derive(Debug, Clone)]
pub struct Dataset {
    /// The documents, by path order.
    pub documents: Vec<KnowledgeDocument>,
    pub questions: Vec<Question>,
    pub off_topic: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub text: String,
    /// The answering document's path.
    pub document: String,
    /// The last part of the answering chunk's heading path.
    pub heading: Option<String>,
    /// Text the answering chunk contains (case and whitespace ignored).
    pub phrase: Option<String>,
}

impl Question {
    pub fn answered_by(&self, chunk: &Chunk) -> bool {
        chunk.document == self.document
            && self.heading.as_deref().is_none_or(|want| {
                chunk.heading.as_deref().and_then(|h| h.rsplit(HEADING_SEPARATOR).next()) == Some(want)
            })
            && self.phrase.as_deref().is_none_or(|phrase| {
                let fold = |s: &str| chunk::normalize_whitespace(s).replace('\n', " ").to_lowercase();
                fold(&chunk.text).contains(&fold(phrase))
            })
    }

    fn expected(&self) -> String {
        let mut out = self.document.clone();
        if let Some(heading) = &self.heading {
            out.push_str(" § ");
            out.push_str(heading);
        }
        if let Some(phrase) = &self.phrase {
            out.push_str(&format!(" “{phrase}”"));
        }
        out
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuestionsFile {
    #[serde(default)]
    question: Vec<Question>,
    #[serde(default)]
    off_topic: Vec<OffTopic>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OffTopic {
    text: String,
}

/// The dataset folder is broken: fix the files.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid questions file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("question {question:?} names {document}, which is not in knowledge/")]
    UnknownDocument { question: String, document: String },
}

impl Dataset {
    pub fn load(dir: &Path) -> Result<Self, DatasetError> {
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path).map_err(|source| DatasetError::Read { path: path.clone(), source })
        };
        let knowledge = dir.join("knowledge");
        let entries =
            std::fs::read_dir(&knowledge).map_err(|source| DatasetError::Read { path: knowledge.clone(), source })?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| DatasetError::Read { path: knowledge.clone(), source })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".md") || name.ends_with(".txt") {
                paths.push(name);
            }
        }
        paths.sort();
        let mut documents = Vec::new();
        for name in paths {
            let body = read(knowledge.join(&name))?;
            documents.push(KnowledgeDocument { path: name, body });
        }
        let questions_path = dir.join("questions.toml");
        let file: QuestionsFile = toml::from_str(&read(questions_path.clone())?)
            .map_err(|source| DatasetError::Parse { path: questions_path, source })?;
        if let Some(q) = file.question.iter().find(|q| !documents.iter().any(|d| d.path == q.document)) {
            return Err(DatasetError::UnknownDocument { question: q.text.clone(), document: q.document.clone() });
        }
        Ok(Self {
            documents,
            questions: file.question,
            off_topic: file.off_topic.into_iter().map(|o| o.text).collect(),
        })
    }
}

/// How a retriever did on a [`Dataset`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Share of answerable questions whose first result answers them.
    pub hit_at_1: f32,
    /// Share with an answering chunk among the first three.
    pub hit_at_3: f32,
    /// Mean of 1 / (rank of the first answering chunk), 0 when none was returned.
    pub mrr: f32,
    /// Answerable questions not answered by the first result.
    pub misses: Vec<Miss>,
    /// Best cosine and BM25 among the results, per answerable question (dataset order).
    pub answerable: Vec<Best>,
    /// The same for off-topic questions: what a relevance rule must reject.
    pub off_topic: Vec<Best>,
}

#[derive(Debug, Clone)]
pub struct Miss {
    pub question: String,
    pub expected: String,
    /// 1-based rank of the first answering result, if any was returned.
    pub rank: Option<usize>,
    /// The first three results, as `document § heading`.
    pub got: Vec<String>,
}

/// The strongest evidence a retriever returned for one question (max over its results, so ask for
/// enough results — e.g. every chunk — when calibrating a relevance rule).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Best {
    pub cosine: f32,
    pub lexical: f32,
}

/// Runs `retrieve` (question → results, best first) over every question of `dataset`.
pub fn evaluate<'k>(dataset: &Dataset, mut retrieve: impl FnMut(&str) -> Vec<Retrieved<'k>>) -> Report {
    let mut report = Report::default();
    let (mut hits1, mut hits3, mut reciprocal) = (0usize, 0usize, 0.0f32);
    for question in &dataset.questions {
        let results = retrieve(&question.text);
        report.answerable.push(best(&results));
        let rank = results.iter().position(|r| question.answered_by(r.chunk)).map(|p| p + 1);
        match rank {
            Some(1) => hits1 += 1,
            _ => report.misses.push(Miss {
                question: question.text.clone(),
                expected: question.expected(),
                rank,
                got: results.iter().take(3).map(|r| describe(r.chunk)).collect(),
            }),
        }
        if rank.is_some_and(|r| r <= 3) {
            hits3 += 1;
        }
        reciprocal += rank.map_or(0.0, |r| 1.0 / r as f32);
    }
    for question in &dataset.off_topic {
        report.off_topic.push(best(&retrieve(question)));
    }
    let n = dataset.questions.len().max(1) as f32;
    report.hit_at_1 = hits1 as f32 / n;
    report.hit_at_3 = hits3 as f32 / n;
    report.mrr = reciprocal / n;
    report
}

fn best(results: &[Retrieved<'_>]) -> Best {
    results
        .iter()
        .fold(Best::default(), |b, r| Best { cosine: b.cosine.max(r.score), lexical: b.lexical.max(r.lexical) })
}

fn describe(chunk: &Chunk) -> String {
    match &chunk.heading {
        Some(h) => format!("{} § {h}", chunk.document),
        None => chunk.document.clone(),
    }
}

/// Sorted values, for printing a distribution.
fn sorted(values: impl Iterator<Item = f32>) -> Vec<f32> {
    let mut v: Vec<f32> = values.collect();
    v.sort_by(f32::total_cmp);
    v
}

impl Report {
    /// The best single threshold on the best cosine separating answerable (≥) from off-topic (<)
    /// questions: (threshold, share of all questions classified right). Midway between neighbours.
    pub fn cosine_threshold(&self) -> (f32, f32) {
        threshold(
            &self.answerable.iter().map(|b| b.cosine).collect::<Vec<_>>(),
            &self.off_topic.iter().map(|b| b.cosine).collect::<Vec<_>>(),
        )
    }
}

/// The cut maximising correct classification of `positives` (≥ cut) and `negatives` (< cut).
pub fn threshold(positives: &[f32], negatives: &[f32]) -> (f32, f32) {
    let mut candidates = sorted(positives.iter().chain(negatives).copied());
    candidates.dedup();
    let total = (positives.len() + negatives.len()).max(1) as f32;
    let mut best = (0.0, 0.0);
    for pair in candidates.windows(2).map(|w| (w[0] + w[1]) / 2.0).chain(candidates.first().copied()) {
        let right = positives.iter().filter(|&&p| p >= pair).count() + negatives.iter().filter(|&&n| n < pair).count();
        let accuracy = right as f32 / total;
        if accuracy > best.1 {
            best = (pair, accuracy);
        }
    }
    best
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "hit@1 {:.3}  hit@3 {:.3}  MRR {:.3}", self.hit_at_1, self.hit_at_3, self.mrr)?;
        let show = |values: Vec<f32>| values.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(" ");
        writeln!(f, "  best cosine, answerable: {}", show(sorted(self.answerable.iter().map(|b| b.cosine))))?;
        writeln!(f, "  best cosine, off-topic:  {}", show(sorted(self.off_topic.iter().map(|b| b.cosine))))?;
        writeln!(f, "  best BM25, answerable:   {}", show(sorted(self.answerable.iter().map(|b| b.lexical))))?;
        writeln!(f, "  best BM25, off-topic:    {}", show(sorted(self.off_topic.iter().map(|b| b.lexical))))?;
        for miss in &self.misses {
            let rank = miss.rank.map_or("-".to_owned(), |r| r.to_string());
            writeln!(
                f,
                "  miss (rank {rank}): {:?} wants {}; got {}",
                miss.question,
                miss.expected,
                miss.got.join(" | ")
            )?;
        }
        Ok(())
    }
}
