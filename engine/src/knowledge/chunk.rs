//! Cutting a document into chunks: the unit that is embedded, indexed and quoted.
//!
//! Chunks follow the document's structure. In Markdown a heading always starts a new chunk (and
//! names it, with its parents: `Focus › Phones`); paragraphs and list items are packed together up
//! to [`ChunkOptions::target_bytes`]; a block larger than that is cut at sentence ends (or, for a
//! sentence that is itself too long, at spaces). When a section spills over into a next chunk, that
//! chunk starts again at the last sentence of the previous one, so a thought cut in two is still
//! whole in one of them. Plain text (`.txt`) has paragraphs only.
//!
//! Heading lines are carried by [`Chunk::heading`], not by any chunk's byte range; every other
//! non-blank byte of the body lies in at least one chunk. Chunking is deterministic: the same body
//! and options give the same chunks, which is what lets a [`ChunkKey`] name a vector.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::{KnowledgeDocument, Passage};
use crate::ports::ChunkKey;

/// Bumped whenever the same document could be cut differently: stored vectors of an older
/// chunker are then re-embedded.
pub const CHUNKER_VERSION: u32 = 1;

/// Separates the parts of a heading path.
pub const HEADING_SEPARATOR: &str = " › ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Blocks are packed into one chunk while its byte range stays within this.
    pub target_bytes: usize,
    /// No chunk's byte range is ever longer (the overlap included).
    pub max_bytes: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        Self { target_bytes: 700, max_bytes: 1200 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The document's path in the bundle.
    pub document: String,
    /// The content hash of the body this chunk was cut from ([`KnowledgeDocument::content_hash`]).
    pub content_hash: String,
    /// Position in the document: 0, 1, 2… with no gaps.
    pub ordinal: u32,
    /// The heading path above the chunk, outermost first, joined by [`HEADING_SEPARATOR`].
    pub heading: Option<String>,
    /// `body[start..end]` with whitespace normalised ([`normalize_whitespace`]).
    pub text: String,
    /// Byte range in the body; starts and ends on a non-whitespace character. Ranges of
    /// consecutive chunks of one section overlap by one sentence.
    pub start: usize,
    pub end: usize,
}

impl Chunk {
    pub fn key(&self) -> ChunkKey {
        ChunkKey { document: self.document.clone(), content_hash: self.content_hash.clone(), ordinal: self.ordinal }
    }

    pub fn passage(&self) -> Passage {
        Passage { source: self.document.clone(), heading: self.heading.clone(), text: self.text.clone() }
    }

    /// What an embedder should see: the heading path, then the text.
    pub fn embedding_text(&self) -> String {
        match &self.heading {
            Some(heading) => format!("{heading}\n{}", self.text),
            None => self.text.clone(),
        }
    }
}

/// Cuts `doc` into chunks (see the module documentation for the rules).
pub fn chunk_document(doc: &KnowledgeDocument, options: &ChunkOptions) -> Vec<Chunk> {
    let body = doc.body.as_str();
    let target = options.target_bytes.max(1);
    let max = options.max_bytes.max(target);
    let markdown = !doc.path.to_ascii_lowercase().ends_with(".txt");
    let content_hash = doc.content_hash();
    let mut chunks = Vec::new();
    for section in sections(body, markdown) {
        let units: Vec<Range<usize>> =
            section.blocks.iter().flat_map(|block| split_block(body, block.clone(), target)).collect();
        for range in pack(body, &units, target, max) {
            chunks.push(Chunk {
                document: doc.path.clone(),
                content_hash: content_hash.clone(),
                ordinal: chunks.len() as u32,
                heading: section.heading.clone(),
                text: normalize_whitespace(&body[range.clone()]),
                start: range.start,
                end: range.end,
            });
        }
    }
    chunks
}

/// Collapses each run of whitespace to one space, or to a line break where the run holds a blank
/// line or precedes a list item, and trims the ends.
pub fn normalize_whitespace(text: &str) -> String {
    let text = text.trim();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(char::is_whitespace) {
        out.push_str(&rest[..at]);
        let run_end = rest[at..].find(|c: char| !c.is_whitespace()).map_or(rest.len(), |n| at + n);
        let run = &rest[at..run_end];
        let next = &rest[run_end..];
        let breaks = run.matches('\n').count();
        out.push(if breaks >= 2 || (breaks == 1 && is_list_item(next)) { '\n' } else { ' ' });
        rest = next;
    }
    out.push_str(rest);
    out
}

/// A run of blocks under one heading path.
struct Section {
    heading: Option<String>,
    /// Paragraphs, list items and fenced blocks, as trimmed byte ranges.
    blocks: Vec<Range<usize>>,
}

fn sections(body: &str, markdown: bool) -> Vec<Section> {
    let mut sections = vec![Section { heading: None, blocks: Vec::new() }];
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut block: Option<Range<usize>> = None;
    let mut in_fence = false;
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if trimmed.is_empty() {
            if !in_fence {
                close(&mut sections, &mut block);
            }
            continue;
        }
        let lead = line.len() - line.trim_start().len();
        let range = line_start + lead..line_start + lead + trimmed.len();
        if markdown && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            if in_fence {
                extend(&mut block, range);
                close(&mut sections, &mut block);
            } else {
                close(&mut sections, &mut block);
                block = Some(range);
            }
            in_fence = !in_fence;
            continue;
        }
        if markdown && !in_fence {
            if let Some((level, title)) = heading(trimmed) {
                close(&mut sections, &mut block);
                path.retain(|(l, _)| *l < level);
                if !title.is_empty() {
                    path.push((level, title.to_owned()));
                }
                let names: Vec<&str> = path.iter().map(|(_, t)| t.as_str()).collect();
                let heading = (!names.is_empty()).then(|| names.join(HEADING_SEPARATOR));
                sections.push(Section { heading, blocks: Vec::new() });
                continue;
            }
            if is_list_item(trimmed) {
                close(&mut sections, &mut block);
            }
        }
        extend(&mut block, range);
    }
    close(&mut sections, &mut block);
    sections.retain(|s| !s.blocks.is_empty());
    sections
}

fn extend(block: &mut Option<Range<usize>>, range: Range<usize>) {
    match block {
        Some(b) => b.end = range.end,
        None => *block = Some(range),
    }
}

fn close(sections: &mut [Section], block: &mut Option<Range<usize>>) {
    if let Some(b) = block.take() {
        sections.last_mut().expect("there is always a first section").blocks.push(b);
    }
}

/// An ATX heading (`## Title`): its level and title.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[level..];
    if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim_end()))
}

fn is_list_item(line: &str) -> bool {
    if line.starts_with("- ") || line.starts_with("* ") || line.starts_with("+ ") {
        return true;
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    (1..=9).contains(&digits) && (line[digits..].starts_with(". ") || line[digits..].starts_with(") "))
}

/// A block small enough stays whole; a larger one becomes its sentences, and a sentence larger than
/// `target` becomes word-aligned pieces.
fn split_block(body: &str, block: Range<usize>, target: usize) -> Vec<Range<usize>> {
    if block.len() <= target {
        return vec![block];
    }
    sentences(&body[block.clone()])
        .into_iter()
        .map(|s| block.start + s.start..block.start + s.end)
        .flat_map(|s| if s.len() <= target { vec![s] } else { split_words(body, s, target) })
        .collect()
}

/// Greedy pieces of at most `target` bytes, cut at whitespace (or at a character boundary for a
/// word longer than `target`).
fn split_words(body: &str, range: Range<usize>, target: usize) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut start = range.start;
    while start < range.end {
        if range.end - start <= target {
            pieces.push(start..range.end);
            break;
        }
        let mut window_end = (start + target + 1).min(range.end);
        while !body.is_char_boundary(window_end) {
            window_end -= 1;
        }
        let window = &body[start..window_end];
        let cut = match window.rfind(char::is_whitespace) {
            // `start` is never whitespace, so the piece before the space is not empty.
            Some(space) if space > 0 => start + window[..space].trim_end().len(),
            _ => {
                // One word longer than the target: cut inside it (at least one character).
                let mut cut = start + target;
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                if cut == start {
                    cut += body[start..].chars().next().map_or(1, char::len_utf8);
                }
                cut
            }
        };
        pieces.push(start..cut);
        start = cut + body[cut..range.end].len() - body[cut..range.end].trim_start().len();
    }
    pieces
}

/// Packs a section's units into chunk ranges: greedily up to `target`, each new chunk starting with
/// the previous chunk's last sentence when that still fits in `max`.
fn pack(body: &str, units: &[Range<usize>], target: usize, max: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut current: Option<(Range<usize>, Range<usize>)> = None; // (chunk so far, its last unit)
    for unit in units {
        current = Some(match current.take() {
            None => (unit.clone(), unit.clone()),
            Some((chunk, _)) if unit.end - chunk.start <= target => (chunk.start..unit.end, unit.clone()),
            Some((chunk, last)) => {
                let overlap = sentences(&body[last.clone()]).last().map_or(last.start, |s| last.start + s.start);
                out.push(chunk.clone());
                let start = if overlap > chunk.start && unit.end - overlap <= max { overlap } else { unit.start };
                (start..unit.end, unit.clone())
            }
        });
    }
    out.extend(current.map(|(chunk, _)| chunk));
    out
}

/// Words that end with a full stop without ending a sentence.
const ABBREVIATIONS: &[&str] =
    &["e.g", "i.e", "vs", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "fig", "approx", "cf", "al", "u.s", "u.k"];

/// Sentences of `text` as trimmed byte ranges. A sentence ends at `.`, `!`, `?` or `…` (with any
/// closing quotes or brackets) followed by whitespace and a capital, digit or opening quote — not
/// after an abbreviation or an initial; decimals (`3.5`) never end one, an ellipsis before a
/// lowercase word neither.
pub fn sentences(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let Some(mut start) = text.find(|c: char| !c.is_whitespace()) else { return out };
    let mut i = start;
    while i < text.len() {
        let c = text[i..].chars().next().expect("i is a char boundary inside text");
        i += c.len_utf8();
        if !matches!(c, '.' | '!' | '?' | '…') {
            continue;
        }
        let terminal = i - c.len_utf8();
        let mut j = i;
        while let Some(n) = text[j..].chars().next().filter(|n| ".!?…\"'”’)]".contains(*n)) {
            j += n.len_utf8();
        }
        i = j;
        if !text[j..].starts_with(char::is_whitespace) {
            continue;
        }
        let k = j + text[j..].len() - text[j..].trim_start().len();
        let Some(next) = text[k..].chars().next() else { break };
        if !(next.is_uppercase() || next.is_ascii_digit() || "\"'“‘([-*".contains(next)) {
            continue;
        }
        if c == '.' && !text[terminal + 1..j].contains('.') {
            let word: String = text[..terminal]
                .chars()
                .rev()
                .take_while(|ch| ch.is_alphanumeric() || *ch == '.')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<String>()
                .to_lowercase();
            let single_letter = word.chars().count() == 1 && word.chars().all(char::is_alphabetic);
            if single_letter || ABBREVIATIONS.contains(&word.as_str()) {
                continue;
            }
        }
        out.push(start..j);
        start = k;
        i = k;
    }
    let end = start + text[start..].trim_end().len();
    if end > start {
        out.push(start..end);
    }
    out
}

#[cfg(test)]
mod tests;
