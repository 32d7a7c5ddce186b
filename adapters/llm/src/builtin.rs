//! The built-in responder: answers in the persona's voice from the knowledge passages the engine
//! retrieved, and never pretends to be a language model. It quotes the sentences of the passages
//! that best answer the question (not whole passages) and names their sources, opens with a lead-in
//! chosen by the voice numbers, uses a signature phrase now and then, never an avoid word, emoji only
//! for a persona that uses them, steers toward the program step's goal, declines boundary topics as
//! the creator said, and says the persona's fallback when the material has nothing.
//!
//! Deterministic: a request always gets the same reply (variation comes from the stream id), so
//! tests and benchmarks use it; the api wires it in when no model server is configured.

use std::time::Duration;

use futures::StreamExt as _;
use futures::stream;
use twin_engine::knowledge::{Passage, tokens};
use twin_engine::persona::{Boundary, BoundaryAction, EmojiUse, Persona};
use twin_engine::ports::{Llm, LlmError, ReplyStream};
use twin_engine::prompt::{ReplyRequest, Role};

/// Words per streamed delta: small enough to look live, large enough not to flood a socket.
const WORDS_PER_DELTA: usize = 4;

/// Most sentences an answer quotes, and the most bytes they may add up to (at least one sentence
/// is always kept): a chat reply, not the whole document.
const MAX_SENTENCES: usize = 3;
const MAX_ANSWER_BYTES: usize = 500;
/// A single quoted sentence shorter than this many words brings the next one along, for context.
const SHORT_SENTENCE_WORDS: usize = 12;

/// A sentence is quoted only when it scores at least this share of the best sentence.
const RELATIVE_FLOOR: f32 = 0.5;

/// Words of a question that say nothing about its subject ("what now?", "any tips?").
const QUESTION_FILLER: &[&str] = &[
    "advice", "also", "any", "best", "get", "good", "got", "help", "here", "just", "know", "like", "need", "now",
    "really", "some", "then", "there", "thing", "things", "tips", "want", "way",
];

/// Openings in the first person, by voice; one is picked per reply from the stream id.
const LEAD_INS_WARM: &[&str] =
    &["Good question.", "I'm glad you asked.", "Happy to help with this.", "Let's look at this together."];
const LEAD_INS_FORMAL: &[&str] =
    &["Here is how I approach this.", "In my work, this is what I recommend.", "This is what my experience suggests."];
const LEAD_INS_BRISK: &[&str] = &["Here's the short version.", "Straight to it.", "Here's what works."];
const LEAD_INS_NEUTRAL: &[&str] = &[
    "Good question. Here's how I approach it.",
    "Here's what I teach on this.",
    "Let me share what I tell my clients about this.",
    "This is the short version of how I see it.",
];
/// Emoji the responder may add for a persona that uses them: friendly, never loud.
const EMOJI: &[&str] = &["🙂", "✨", "🌱"];

const DEFAULT_FALLBACK: &str = "I don't have anything on that in my material, and I'd rather not guess. \
     Could you ask me something more specific, or put it another way?";

/// Said when even the fallback is scrubbed away by the creator's avoid words: a reply is never empty.
const LAST_RESORT: &str = "…";

/// Words that make a message small talk when it contains nothing else.
const HELLO_WORDS: &[&str] = &["hi", "hello", "hey", "hiya", "morning", "evening", "afternoon", "good", "there"];
const THANKS_WORDS: &[&str] =
    &["thanks", "thank", "thx", "you", "so", "very", "much", "a", "lot", "ok", "okay", "cool", "great", "got", "it"];

/// Answers from the creator's material, streamed a few words at a time.
#[derive(Debug, Clone, Default)]
pub struct BuiltinResponder {
    /// Pause between two deltas; zero streams everything at once (tests, benchmarks).
    chunk_delay: Duration,
}

impl BuiltinResponder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Paces the deltas, so a demo shows a reply being "typed".
    pub fn with_chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// The full reply to `request`: what the streamed deltas add up to.
    pub fn compose(&self, request: &ReplyRequest) -> String {
        compose(request)
    }
}

#[async_trait::async_trait]
impl Llm for BuiltinResponder {
    async fn reply(&self, request: ReplyRequest) -> Result<ReplyStream, LlmError> {
        let deltas = split_into_deltas(&compose(&request));
        let delay = self.chunk_delay;
        if delay.is_zero() {
            return Ok(stream::iter(deltas.into_iter().map(Ok)).boxed());
        }
        let paced = stream::iter(deltas).enumerate().then(move |(i, delta)| async move {
            if i > 0 {
                tokio::time::sleep(delay).await;
            }
            Ok(delta)
        });
        Ok(paced.boxed())
    }
}

fn compose(request: &ReplyRequest) -> String {
    let persona = &request.persona;
    let avoid = AvoidWords::new(&persona.voice.avoid_words);
    let seed = seed_of(request.stream.as_str().as_bytes());
    let question = request.turns.iter().rev().find(|t| t.role == Role::User).map(|t| t.text.as_str());
    let goal = request.goal.as_deref().map(str::trim).filter(|g| !g.is_empty());

    let mut parts = Vec::new();
    let greeted = request.first_contact && push(&mut parts, &avoid, &persona.voice.greeting);
    let mut steer = false;
    match question {
        // Nothing asked yet: the greeting (if any) is the whole reply.
        None => {}
        Some(question) => {
            if let Some(boundary) = boundary_touched(persona, question) {
                push(&mut parts, &avoid, &refusal(persona, boundary));
            } else if let Some(small_talk) = small_talk(question) {
                if !greeted {
                    push(&mut parts, &avoid, small_talk);
                }
                steer = true;
            } else if answer(&mut parts, &avoid, seed, request, question) {
                steer = true;
            } else {
                if !push(&mut parts, &avoid, &persona.voice.fallback) {
                    push(&mut parts, &avoid, DEFAULT_FALLBACK);
                }
                steer = true;
            }
        }
    }
    if steer && let Some(goal) = goal {
        push(&mut parts, &avoid, &steering_question(goal));
    }
    if parts.is_empty() && !push(&mut parts, &avoid, &persona.voice.fallback) {
        push(&mut parts, &avoid, DEFAULT_FALLBACK);
    }
    if parts.is_empty() {
        parts.push(LAST_RESORT.to_owned());
    }
    parts.join("\n\n")
}

/// A lead-in in the persona's voice, the sentences of the passages that best answer the question
/// (each group followed by its source), and sometimes a signature phrase. False, adding nothing,
/// when the passages hold nothing usable (none, or all scrubbed by the avoid words).
fn answer(parts: &mut Vec<String>, avoid: &AvoidWords, seed: u64, request: &ReplyRequest, question: &str) -> bool {
    let persona = &request.persona;
    let chosen = choose_sentences(&request.passages, question, request.goal.as_deref(), avoid);
    if chosen.is_empty() {
        return false;
    }
    let mut quotes: Vec<String> = Vec::new();
    let mut sources: Vec<&str> = Vec::new();
    for pick in &chosen {
        let source = request.passages[pick.passage].source.as_str();
        match sources.iter().position(|s| *s == source) {
            Some(i) => {
                quotes[i].push(' ');
                quotes[i].push_str(pick.text);
            }
            None => {
                sources.push(source);
                quotes.push(pick.text.to_owned());
            }
        }
    }
    let voice = &persona.voice;
    let lead_ins = match (voice.warmth(), voice.formality()) {
        (_, f) if f >= 0.65 => LEAD_INS_FORMAL,
        (w, f) if w >= 0.65 && f < 0.5 => LEAD_INS_WARM,
        (w, _) if w < 0.35 => LEAD_INS_BRISK,
        _ => LEAD_INS_NEUTRAL,
    };
    let lead_ins: Vec<&str> = lead_ins.iter().copied().filter(|l| !avoid.touches(l)).collect();
    if !lead_ins.is_empty() {
        let mut lead_in = lead_ins[(seed % lead_ins.len() as u64) as usize].to_owned();
        if voice.energy() >= 0.7 && lead_in.ends_with('.') {
            lead_in.pop();
            lead_in.push('!');
        }
        let emoji = match voice.emoji() {
            EmojiUse::Often => true,
            EmojiUse::Rare => (seed >> 40).is_multiple_of(4),
            EmojiUse::None => false,
        };
        if emoji {
            lead_in.push(' ');
            lead_in.push_str(EMOJI[((seed >> 48) % EMOJI.len() as u64) as usize]);
        }
        parts.push(lead_in);
    }
    for (quote, source) in quotes.iter().zip(&sources) {
        parts.push(format!("{quote} (from {source})"));
    }
    let said = parts.join(" ").to_lowercase();
    let phrases: Vec<&String> = voice
        .signature_phrases
        .iter()
        .filter(|p| !avoid.touches(p) && !said.contains(p.trim_end_matches('.').to_lowercase().as_str()))
        .collect();
    // Sparingly: about every other reply, decided by a different part of the seed than the lead-in.
    if !phrases.is_empty() && (seed >> 17) & 1 == 0 {
        push(parts, avoid, phrases[((seed >> 32) % phrases.len() as u64) as usize]);
    }
    true
}

/// A sentence picked from a passage.
#[derive(Debug, Clone, Copy)]
struct Pick<'a> {
    passage: usize,
    /// Position of the sentence in its passage.
    index: usize,
    text: &'a str,
    score: f32,
}

/// The sentences of the passages that best answer `question`, in passage rank and then reading
/// order. A sentence scores by the question words it holds, rarer words counting more (a word in
/// every sentence says nothing), plus half as much for words of its passage's heading, a little for
/// the goal's words and for the passage's rank. Sentences touching an avoid word are never picked.
/// When no sentence holds a question word but the retriever still returned passages (they matched
/// on the heading), the best passage's opening is used.
fn choose_sentences<'a>(
    passages: &'a [Passage],
    question: &str,
    goal: Option<&str>,
    avoid: &AvoidWords,
) -> Vec<Pick<'a>> {
    let mut asked = distinct_tokens(question);
    asked.retain(|w| !QUESTION_FILLER.contains(&w.as_str()));
    let goal_words = goal.map(distinct_tokens).unwrap_or_default();
    let mut candidates: Vec<(Pick<'a>, Vec<String>)> = Vec::new();
    for (p, passage) in passages.iter().enumerate() {
        for (index, text) in sentences(&passage.text).into_iter().enumerate() {
            if !avoid.touches(text) {
                let words = distinct_tokens(text);
                candidates.push((Pick { passage: p, index, text, score: 0.0 }, words));
            }
        }
    }
    if candidates.is_empty() {
        return Vec::new();
    }
    let n = candidates.len() as f32;
    let weight = |word: &str| -> f32 {
        let holders = candidates.iter().filter(|(_, words)| contains(words, word)).count().max(1) as f32;
        (1.0 + n / holders).ln()
    };
    let asked_weights: Vec<(String, f32)> = asked.iter().map(|w| (w.clone(), weight(w))).collect();
    let headings: Vec<Vec<String>> =
        passages.iter().map(|p| p.heading.as_deref().map(distinct_tokens).unwrap_or_default()).collect();
    let mut scored: Vec<Pick<'a>> = Vec::new();
    for (pick, words) in &candidates {
        let text_score: f32 = asked_weights.iter().filter(|(w, _)| contains(words, w)).map(|(_, x)| x).sum();
        let heading_score: f32 =
            asked_weights.iter().filter(|(w, _)| contains(&headings[pick.passage], w)).map(|(_, x)| x * 0.5).sum();
        let goal_score = goal_words.iter().filter(|w| contains(words, w)).count() as f32 * 0.2;
        if text_score > 0.0 {
            let prior = 0.3 / (1.0 + pick.passage as f32) + if pick.index == 0 { 0.1 } else { 0.0 };
            scored.push(Pick { score: text_score + heading_score + goal_score + prior, ..*pick });
        }
    }
    if scored.is_empty() {
        // Retrieved on the heading only: the opening of the best passage that has usable sentences.
        let best = candidates[0].0.passage;
        scored = candidates.iter().filter(|(p, _)| p.passage == best).take(2).map(|(p, _)| *p).collect();
        return scored;
    }
    scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.passage.cmp(&b.passage)).then(a.index.cmp(&b.index)));
    // A sentence far weaker than the best one shares a word by chance, not the question's subject.
    let floor = scored[0].score * RELATIVE_FLOOR;
    scored.retain(|p| p.score >= floor);
    let mut chosen: Vec<Pick<'a>> = Vec::new();
    let mut bytes = 0;
    for pick in scored {
        if chosen.len() == MAX_SENTENCES || (!chosen.is_empty() && bytes + pick.text.len() > MAX_ANSWER_BYTES) {
            break;
        }
        bytes += pick.text.len();
        chosen.push(pick);
    }
    if let [only] = chosen.as_slice()
        && only.text.split_whitespace().count() < SHORT_SENTENCE_WORDS
        && let Some((next, _)) = candidates.iter().find(|(c, _)| c.passage == only.passage && c.index == only.index + 1)
    {
        chosen.push(*next);
    }
    chosen.sort_by(|a, b| a.passage.cmp(&b.passage).then(a.index.cmp(&b.index)));
    chosen
}

/// The question's (or sentence's) retrieval tokens, each once.
fn distinct_tokens(text: &str) -> Vec<String> {
    let mut words: Vec<String> = tokens(text).collect();
    words.sort();
    words.dedup();
    words
}

fn contains(words: &[String], word: &str) -> bool {
    words.iter().any(|w| same_word(w, word))
}

/// The goal (creator-authored, usually an instruction like "Help the user reflect on …") turned
/// into an invitation to the client: "Let's reflect on your …. What comes to mind?"
fn steering_question(goal: &str) -> String {
    let first = sentences(goal).into_iter().next().unwrap_or(goal);
    let first = first.trim_end_matches(['.', '!', '?', ';', ':']).trim();
    let lower = first.to_lowercase();
    for prefix in ["help the user ", "help the client ", "help them ", "help users ", "guide the user to "] {
        if lower.starts_with(prefix) {
            return format!("Let's {}. What comes to mind?", to_second_person(&first[prefix.len()..]));
        }
    }
    format!("Coming back to what we're working on: {}. Where are you with that?", to_second_person(first))
}

/// "their first task" → "your first task", "the user" → "you", for a goal read out to the client.
fn to_second_person(text: &str) -> String {
    let mut out = Vec::new();
    let words: Vec<&str> = text.split(' ').collect();
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        let lower = word.to_lowercase();
        let next = words.get(i + 1).map(|w| w.to_lowercase());
        if lower == "the" && next.as_deref().is_some_and(|n| n.starts_with("user") || n.starts_with("client")) {
            let next = next.unwrap_or_default();
            let tail: String = next.chars().skip_while(|c| c.is_alphanumeric()).collect();
            let possessive = tail.starts_with("'s");
            let rest = if possessive { &tail[2..] } else { tail.as_str() };
            out.push(format!("{}{rest}", if possessive { "your" } else { "you" }));
            i += 2;
            continue;
        }
        let replaced = match lower.trim_end_matches(|c: char| !c.is_alphanumeric()) {
            "their" => Some("your"),
            "theirs" => Some("yours"),
            "them" => Some("you"),
            "they" => Some("you"),
            "themselves" => Some("yourself"),
            _ => None,
        };
        match replaced {
            Some(r) => {
                let tail: String = word.chars().skip_while(|c| c.is_alphanumeric()).collect();
                out.push(format!("{r}{tail}"));
            }
            None => out.push(word.to_owned()),
        }
        i += 1;
    }
    out.join(" ")
}

/// The first boundary whose words appear, in order, in the user's message.
fn boundary_touched<'p>(persona: &'p Persona, text: &str) -> Option<&'p Boundary> {
    let said = words(text);
    persona.boundaries.iter().find(|boundary| {
        let topic = words(boundary.topic.trim());
        !topic.is_empty() && said.windows(topic.len()).any(|w| w.iter().zip(&topic).all(|(a, b)| same_word(a, b)))
    })
}

/// The creator's own words for the boundary when they wrote some; else a hand-off to the creator
/// or a plain refusal, as the boundary's action says.
fn refusal(persona: &Persona, boundary: &Boundary) -> String {
    if let Some(message) = boundary.message.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        return message.to_owned();
    }
    let topic = boundary.topic.trim();
    match boundary.action {
        BoundaryAction::HandOff => {
            let name = if persona.name.trim().is_empty() { "the creator" } else { persona.name.trim() };
            format!(
                "I'm sorry, but I can't advise on {topic} here. It deserves more care than I can give it in this \
                 chat, so please ask {name} directly."
            )
        }
        BoundaryAction::Refuse => format!("I'm sorry, but I can't advise on {topic} here. It isn't something I cover."),
    }
}

fn small_talk(text: &str) -> Option<&'static str> {
    let said = words(text);
    if said.is_empty() {
        return None;
    }
    if said.iter().all(|w| HELLO_WORDS.contains(&w.as_str())) {
        return Some("Hi! What would you like to work on today?");
    }
    if said.iter().any(|w| w.starts_with("thank") || w == "thx")
        && said.iter().all(|w| THANKS_WORDS.contains(&w.as_str()))
    {
        return Some("You're welcome. What would you like to work on next?");
    }
    None
}

/// Lowercased words, split on anything that is not a letter or digit.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Equal up to a common English ending: plurals ("medications"), "-ing", "-ed", "-er", "-est"
/// ("focusing", "longest"), so a question and a sentence meet on the word, not its form.
fn same_word(a: &str, b: &str) -> bool {
    a == b || stem(a) == stem(b)
}

/// A light suffix stripper (not Porter): one ending off, then a final `e`, keeping three letters.
fn stem(word: &str) -> &str {
    let keep = |s: &&str| s.chars().count() >= 3;
    let word = ["ing", "est", "ed", "er", "es", "s"]
        .iter()
        .find_map(|end| word.strip_suffix(end).filter(keep))
        .unwrap_or(word);
    word.strip_suffix('e').filter(keep).unwrap_or(word)
}

/// The creator's avoid words; text touching one is dropped sentence by sentence.
struct AvoidWords(Vec<String>);

impl AvoidWords {
    fn new(words: &[String]) -> Self {
        Self(words.iter().map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()).collect())
    }

    /// Case-insensitive substring match, so "hustle" also rules out "Hustler": stricter than a
    /// word match, which is the safe side.
    fn touches(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        self.0.iter().any(|w| lower.contains(w.as_str()))
    }

    /// `text` without the sentences that touch an avoid word.
    fn scrub(&self, text: &str) -> String {
        let text = text.trim();
        if !self.touches(text) {
            return text.to_owned();
        }
        sentences(text).into_iter().filter(|s| !self.touches(s)).collect::<Vec<_>>().join(" ")
    }
}

/// Appends the scrubbed `text` as a paragraph when anything is left of it; says whether it did.
fn push(parts: &mut Vec<String>, avoid: &AvoidWords, text: &str) -> bool {
    let clean = avoid.scrub(text);
    if clean.is_empty() {
        return false;
    }
    parts.push(clean);
    true
}

/// Sentences of `text`, each with its closing punctuation, without the whitespace between them.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at_end = chars.peek().is_none_or(|&(_, next)| next.is_whitespace());
        if matches!(c, '.' | '!' | '?' | '…') && at_end {
            let end = i + c.len_utf8();
            let sentence = text[start..end].trim();
            if !sentence.is_empty() {
                out.push(sentence);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Cuts `text` into deltas of a few words; each delta carries the whitespace after its last word,
/// so the deltas concatenate to exactly `text`.
fn split_into_deltas(text: &str) -> Vec<String> {
    let mut deltas = Vec::new();
    let (mut start, mut words, mut in_word) = (0, 0, false);
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                words += 1;
                in_word = false;
            }
        } else if !in_word {
            if words == WORDS_PER_DELTA {
                deltas.push(text[start..i].to_owned());
                start = i;
                words = 0;
            }
            in_word = true;
        }
    }
    if start < text.len() {
        deltas.push(text[start..].to_owned());
    }
    deltas
}

/// FNV-1a with a final mix (MurmurHash3's `fmix64`): the same on every platform and Rust version,
/// unlike `DefaultHasher`, and every bit depends on every byte, so near ids ("r1", "r3") differ.
fn seed_of(bytes: &[u8]) -> u64 {
    let mut h =
        bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt as _;
    use twin_engine::ids::{ConversationId, Slug, StreamId, UserId};
    use twin_engine::persona::Voice;
    use twin_engine::prompt::Turn;

    use super::*;

    fn persona() -> Persona {
        Persona {
            name: "Maya Chen".into(),
            role: "habit and focus coach".into(),
            voice: Voice {
                greeting: "Hi, I'm Maya. Let's make your days a little calmer.".into(),
                signature_phrases: vec!["Small steps, every day.".into(), "Protect the first hour.".into()],
                avoid_words: vec!["hustle".into()],
                fallback: "That isn't something my material covers yet. Ask me about focus, habits or sleep.".into(),
                ..Voice::default()
            },
            boundaries: vec!["medication".into(), "eating disorders".into()],
            ..Persona::default()
        }
    }

    fn passage(heading: &str, text: &str) -> Passage {
        Passage { source: "focus.md".into(), heading: Some(heading.into()), text: text.into() }
    }

    fn request(question: &str, passages: Vec<Passage>, first_contact: bool) -> ReplyRequest {
        let creator = Slug::parse("maya").expect("valid slug").creator_id();
        let user = UserId::parse("u1").expect("valid user id");
        ReplyRequest {
            creator,
            conversation: ConversationId::of(creator, &user),
            stream: StreamId::parse("r7").expect("valid stream id"),
            persona: persona(),
            system_prompt: String::new(),
            turns: vec![Turn { role: Role::User, text: question.into() }],
            passages,
            first_contact,
            goal: None,
            model: Default::default(),
        }
    }

    async fn streamed(request: ReplyRequest) -> Vec<String> {
        let stream = BuiltinResponder::new().reply(request).await.expect("the built-in responder never fails");
        stream.try_collect().await.expect("no delta fails")
    }

    fn focus_blocks() -> Passage {
        passage(
            "Focus blocks",
            "Work in blocks of fifty minutes on one task. Put the phone in another room before you start.",
        )
    }

    #[tokio::test]
    async fn the_greeting_opens_the_first_reply_only() {
        let first = streamed(request("How do I focus?", vec![focus_blocks()], true)).await.concat();
        let later = streamed(request("How do I focus?", vec![focus_blocks()], false)).await.concat();
        assert!(first.starts_with("Hi, I'm Maya. Let's make your days a little calmer.\n\n"), "{first}");
        assert!(!later.contains("Hi, I'm Maya"), "{later}");
    }

    // v2: the answer quotes the sentences that answer the question, not the whole passage with its
    // heading, and names the source it used.
    #[tokio::test]
    async fn the_most_relevant_sentences_are_quoted_with_their_source() {
        let reply = streamed(request("How do I focus on one task?", vec![focus_blocks()], false)).await.concat();
        assert!(reply.contains("Work in blocks of fifty minutes on one task."), "{reply}");
        assert!(reply.contains("(from focus.md)"), "{reply}");
        assert!(!reply.contains("my material covers"), "{reply}");

        let long = passage(
            "Focus blocks",
            "A focus block is a stretch of time with one task and no notifications. Most people can do two \
             good blocks a day at first. Put your phone in another room, not face down on the desk. Take a real \
             break of ten minutes after each block. Scrolling is not a break.",
        );
        let reply = streamed(request("Where should my phone be?", vec![long], false)).await.concat();
        assert!(reply.contains("Put your phone in another room, not face down on the desk."), "{reply}");
        assert!(!reply.contains("Scrolling is not a break"), "only the sentences about the question: {reply}");
    }

    #[tokio::test]
    async fn a_second_passage_is_used_only_when_it_is_about_the_question_too() {
        let mut phone =
            passage("Phone rules", "Keep the phone out of the bedroom so the focus of the evening is rest.");
        phone.source = "sleep.md".into();
        let food = passage("Breakfast", "Eat protein at breakfast to keep energy steady through the morning.");
        let with_phone = streamed(request("How do I focus with my phone around?", vec![focus_blocks(), phone], false))
            .await
            .concat();
        assert!(with_phone.contains("Keep the phone out of the bedroom"), "{with_phone}");
        assert!(with_phone.contains("(from focus.md)") && with_phone.contains("(from sleep.md)"), "{with_phone}");
        let with_food =
            streamed(request("How do I focus with my phone around?", vec![focus_blocks(), food], false)).await.concat();
        assert!(!with_food.contains("protein"), "{with_food}");
    }

    #[tokio::test]
    async fn without_passages_the_twin_says_its_fallback() {
        let reply = streamed(request("What's the best crypto to buy?", vec![], false)).await.concat();
        assert_eq!(reply, "That isn't something my material covers yet. Ask me about focus, habits or sleep.");

        let mut plain = request("What's the best crypto to buy?", vec![], false);
        plain.persona.voice.fallback = String::new();
        let reply = streamed(plain).await.concat();
        assert!(reply.starts_with("I don't have anything on that in my material"), "{reply}");
    }

    #[tokio::test]
    async fn a_boundary_topic_is_handed_back_to_the_creator() {
        let reply = streamed(request("Should I change my medications to focus better?", vec![focus_blocks()], false))
            .await
            .concat();
        assert!(reply.contains("I can't advise on medication here."), "{reply}");
        assert!(reply.contains("please ask Maya Chen directly"), "{reply}");
        assert!(!reply.contains("Work in blocks"), "{reply}");

        let phrase = streamed(request("Can you help with eating disorders?", vec![], false)).await.concat();
        assert!(phrase.contains("I can't advise on eating disorders here."), "{phrase}");
        let apart =
            streamed(request("I keep eating late; what about disorders of sleep?", vec![], false)).await.concat();
        assert!(!apart.contains("can't advise"), "{apart}");
    }

    #[tokio::test]
    async fn avoid_words_never_appear_even_when_the_material_uses_them() {
        let mut persona = persona();
        persona.voice.avoid_words = vec!["hustle".into(), "GRIND".into()];
        persona.voice.greeting = "Hi, I'm Maya. No hustle here.".into();
        persona.voice.signature_phrases = vec!["Less grind, more rhythm.".into(), "Hustle smarter.".into()];
        let material = passage(
            "Focus blocks",
            "Work in blocks of fifty minutes. Forget the hustle culture! Rest between blocks, not grinding through.",
        );
        for stream in ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"] {
            let mut req = request("How long should a focus block be?", vec![material.clone()], true);
            req.persona = persona.clone();
            req.stream = StreamId::parse(stream).expect("valid stream id");
            let reply = streamed(req).await.concat();
            let lower = reply.to_lowercase();
            assert!(!lower.contains("hustle") && !lower.contains("grind"), "{reply}");
            assert!(reply.contains("Work in blocks of fifty minutes. (from focus.md)"), "{reply}");
            assert!(reply.starts_with("Hi, I'm Maya.\n\n"), "{reply}");
        }
    }

    #[tokio::test]
    async fn the_deltas_are_a_few_words_each_and_add_up_to_the_full_reply() {
        let req = request("How do I focus on one task?", vec![focus_blocks()], true);
        let full = BuiltinResponder::new().compose(&req);
        let deltas = streamed(req).await;
        assert!(deltas.len() > 5, "{deltas:?}");
        assert!(deltas.iter().all(|d| !d.is_empty() && d.split_whitespace().count() <= WORDS_PER_DELTA));
        assert_eq!(deltas.concat(), full);
    }

    #[tokio::test]
    async fn the_same_request_gets_the_same_reply() {
        let req = request("How do I focus on one task?", vec![focus_blocks()], false);
        assert_eq!(streamed(req.clone()).await, streamed(req).await);
    }

    #[tokio::test]
    async fn small_talk_gets_a_short_answer_instead_of_the_fallback() {
        let hello = streamed(request("Hi there!", vec![], true)).await.concat();
        assert_eq!(hello, "Hi, I'm Maya. Let's make your days a little calmer.");
        let thanks = streamed(request("Thanks a lot!", vec![], false)).await.concat();
        assert_eq!(thanks, "You're welcome. What would you like to work on next?");
    }

    #[tokio::test]
    async fn signature_phrases_come_sparingly_and_the_lead_in_varies_by_stream() {
        let (mut signed, mut lead_ins) = (0, std::collections::BTreeSet::new());
        for n in 1..=20 {
            let mut req = request("How do I focus on one task?", vec![focus_blocks()], false);
            req.stream = StreamId::parse(&format!("r{n}")).expect("valid stream id");
            let reply = streamed(req).await.concat();
            if reply.ends_with("\n\nSmall steps, every day.") || reply.ends_with("\n\nProtect the first hour.") {
                signed += 1;
            }
            lead_ins.insert(reply.split("\n\n").next().map(str::to_owned));
        }
        assert!((3..=17).contains(&signed), "{signed} of 20 replies carry a signature phrase");
        assert!(lead_ins.len() > 1, "{lead_ins:?}");
    }

    #[tokio::test]
    async fn the_lead_in_follows_the_voice_and_emoji_come_only_when_the_creator_uses_them() {
        let lead_in = |formality: f64, warmth: f64, energy: f64, emoji: EmojiUse, stream: &str| {
            let mut req = request("How do I focus on one task?", vec![focus_blocks()], false);
            req.persona.voice.formality = Some(formality);
            req.persona.voice.warmth = Some(warmth);
            req.persona.voice.energy = Some(energy);
            req.persona.voice.emoji = Some(emoji);
            req.stream = StreamId::parse(stream).expect("valid stream id");
            compose(&req).split("\n\n").next().map(str::to_owned).unwrap_or_default()
        };
        let streams: Vec<String> = (1..=12).map(|n| format!("r{n}")).collect();
        for stream in &streams {
            let warm = lead_in(0.2, 0.9, 0.4, EmojiUse::None, stream);
            assert!(LEAD_INS_WARM.contains(&warm.as_str()), "{warm}");
            let formal = lead_in(0.9, 0.5, 0.4, EmojiUse::None, stream);
            assert!(LEAD_INS_FORMAL.contains(&formal.as_str()), "{formal}");
            let lively = lead_in(0.2, 0.9, 0.9, EmojiUse::Often, stream);
            assert!(lively.contains('!') && EMOJI.iter().any(|e| lively.ends_with(e)), "{lively}");
        }
        let rare =
            streams.iter().filter(|s| EMOJI.iter().any(|e| lead_in(0.2, 0.9, 0.4, EmojiUse::Rare, s).contains(e)));
        assert!(rare.count() < streams.len(), "rare means not every reply");
    }

    #[tokio::test]
    async fn a_program_goal_ends_the_reply_with_a_question_toward_it() {
        let mut req = request("How do I focus on one task?", vec![focus_blocks()], false);
        req.goal = Some(
            "Help the user reflect on their first task: what helped and what got in the way. Keep it short.".into(),
        );
        let reply = compose(&req);
        assert!(reply.contains("Work in blocks of fifty minutes on one task."), "{reply}");
        assert!(
            reply.ends_with(
                "Let's reflect on your first task: what helped and what got in the way. What comes to mind?"
            ),
            "{reply}"
        );
        req.goal = Some("Pick one block length for tomorrow".into());
        assert!(compose(&req).ends_with("Pick one block length for tomorrow. Where are you with that?"));
        req.passages.clear();
        let fallback = compose(&req);
        assert!(fallback.starts_with("That isn't something my material covers yet."), "{fallback}");
        assert!(fallback.ends_with("Where are you with that?"), "even without material it steers back: {fallback}");
    }

    #[tokio::test]
    async fn a_refused_boundary_is_declined_in_the_creators_words_when_they_wrote_some() {
        let mut req = request("Can you diagnose my ADHD?", vec![focus_blocks()], false);
        req.persona.boundaries = vec![Boundary::refuse("diagnose")];
        let plain = compose(&req);
        assert!(plain.starts_with("I'm sorry, but I can't advise on diagnose here."), "{plain}");
        assert!(!plain.contains("ask Maya Chen"), "a refusal does not hand off: {plain}");
        req.persona.boundaries[0].message = Some("I can't diagnose anything; a doctor can.".into());
        assert_eq!(compose(&req), "I can't diagnose anything; a doctor can.");
    }

    #[tokio::test]
    async fn replies_from_the_demo_material_read_like_the_creator() {
        use twin_engine::knowledge::{Knowledge, KnowledgeDocument, Retrieved};
        use twin_engine::persona::{StyleReference, consistency};
        let documents: Vec<KnowledgeDocument> = [
            ("focus-blocks.md", include_str!("../../../creators/demo/knowledge/focus-blocks.md")),
            ("habit-stacking.md", include_str!("../../../creators/demo/knowledge/habit-stacking.md")),
            ("morning-routine.md", include_str!("../../../creators/demo/knowledge/morning-routine.md")),
            ("setbacks.md", include_str!("../../../creators/demo/knowledge/setbacks.md")),
            ("sleep-basics.md", include_str!("../../../creators/demo/knowledge/sleep-basics.md")),
        ]
        .map(|(path, body)| KnowledgeDocument { path: path.into(), body: body.into() })
        .to_vec();
        let index = Knowledge::build(&documents);
        let reference = StyleReference::new(&persona(), &documents);
        let generic = "Our organization is committed to delivering best-in-class solutions that empower \
                       stakeholders and maximize long-term shareholder value through strategic partnerships.";
        for question in [
            "How long should a focus block be?",
            "I missed two days of my habit, what now?",
            "What should I do in the first hour of my morning?",
        ] {
            let passages = index.search(question, 3).iter().map(Retrieved::passage).collect();
            let reply = compose(&request(question, passages, false));
            let score = consistency(&reply, &reference);
            assert!(reply.contains("(from "), "{reply}");
            assert!(score > consistency(generic, &reference) + 0.15, "{score}: {reply}");
            eprintln!("{score:.2} {question}\n{reply}\n");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_chunk_delay_paces_the_deltas() {
        let delay = Duration::from_millis(40);
        let req = request("How do I focus on one task?", vec![focus_blocks()], false);
        let started = tokio::time::Instant::now();
        let deltas: Vec<String> = BuiltinResponder::new()
            .with_chunk_delay(delay)
            .reply(req)
            .await
            .expect("the built-in responder never fails")
            .try_collect()
            .await
            .expect("no delta fails");
        assert_eq!(started.elapsed(), delay * (deltas.len() as u32 - 1));
    }

    #[test]
    fn deltas_keep_every_whitespace_character() {
        for text in ["", "one", "  leading and trailing  ", "a b c d e f g h i", "para one.\n\npara two\tand\u{a0}more"]
        {
            let deltas = split_into_deltas(text);
            assert_eq!(deltas.concat(), text);
            assert!(deltas.iter().all(|d| !d.is_empty()));
        }
    }
}
