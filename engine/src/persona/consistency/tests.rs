//! The score ranks the creator's own held-out writing above generic text and above other personas.

use super::*;
use crate::persona::{Persona, Voice};

const FOCUS_BLOCKS: &str = include_str!("../../../../creators/demo/knowledge/focus-blocks.md");
const HABIT_STACKING: &str = include_str!("../../../../creators/demo/knowledge/habit-stacking.md");
const MORNING_ROUTINE: &str = include_str!("../../../../creators/demo/knowledge/morning-routine.md");
const SETBACKS: &str = include_str!("../../../../creators/demo/knowledge/setbacks.md");
const SLEEP_BASICS: &str = include_str!("../../../../creators/demo/knowledge/sleep-basics.md");

/// Generic corporate and encyclopedic prose: nobody's voice in particular.
const GENERIC: &[&str] = &[
    "Our organization is committed to delivering best-in-class solutions that empower stakeholders across \
     the enterprise. By leveraging cross-functional synergies and data-driven insights, the company aims to \
     optimize operational efficiency and maximize long-term shareholder value. Key initiatives include \
     digital transformation, talent development and strategic partnerships in emerging markets.",
    "The quarterly performance review indicated that revenue increased by 4.2 percent year over year, \
     primarily driven by growth in the subscription segment. Management anticipates continued momentum in \
     the second half, subject to prevailing macroeconomic conditions. Further details are provided in the \
     accompanying financial statements and the management discussion section.",
    "Productivity is commonly defined as the ratio of output to input in a production process. In economics, \
     labour productivity is measured as the amount of goods and services produced per hour of work. The \
     concept was first formalised in the eighteenth century and has since been applied to industries, \
     regions and entire national economies.",
    "The circadian rhythm is an internal process that regulates the sleep-wake cycle and repeats roughly \
     every twenty-four hours. It is influenced by external cues such as sunlight and temperature. The term \
     derives from the Latin circa, meaning around, and diem, meaning day. Disruption of the rhythm has been \
     associated with various metabolic conditions.",
];

/// A drill sergeant and a formal academic: clearly other personas.
const OTHER_PERSONAS: &[&str] = &[
    "LISTEN UP, RECRUIT! You think discipline is optional? It is NOT! You will be up at 0500, you will make \
     your bunk, and you will be on that field before the sun! No excuses! Quit whining and GRIND! Pain is \
     weakness leaving the body! MOVE IT! MOVE IT! MOVE IT!",
    "Drop and give me twenty! Did I say stop? I did NOT say stop! Lazy soldiers get left behind, and I do \
     not leave soldiers behind because I do not TOLERATE lazy soldiers! Failure is not an option on my watch! \
     Now get back in formation and crush it, maggot!",
    "The present study examines the extent to which implementation intentions moderate the relationship \
     between behavioural intentions and subsequent habitual performance. Drawing upon a longitudinal dataset \
     of undergraduate participants, we demonstrate that contextual stability constitutes a necessary, albeit \
     insufficient, condition for the automaticity of goal-directed behaviour.",
    "It has been argued, notably by several theorists within the cognitive tradition, that attentional \
     control represents a finite resource whose depletion manifests in diminished executive functioning. \
     Nevertheless, subsequent replication efforts have yielded inconsistent findings, thereby necessitating \
     a more nuanced theoretical account of self-regulatory capacity and its measurement.",
];

fn document(path: &str, body: &str) -> KnowledgeDocument {
    KnowledgeDocument { path: path.into(), body: body.into() }
}

fn maya() -> Persona {
    Persona {
        name: "Maya Chen".into(),
        voice: Voice {
            signature_phrases: vec!["Never miss twice.".into(), "Protect your first hour.".into()],
            avoid_words: ["hustle", "grind", "crush it", "lazy", "failure"].map(String::from).to_vec(),
            formality: Some(0.3),
            warmth: Some(0.8),
            energy: Some(0.4),
            emoji: Some(EmojiUse::None),
            sentence_length: Some(14),
            ..Voice::default()
        },
        ..Persona::default()
    }
}

/// Paragraph groups of the held-out documents, each at least [`MIN_SAMPLE_WORDS`] words.
fn held_out_samples() -> Vec<String> {
    let mut samples = Vec::new();
    for doc in [document("setbacks.md", SETBACKS), document("sleep-basics.md", SLEEP_BASICS)] {
        let mut sample = String::new();
        for passage in split_document(&doc) {
            sample.push_str(&passage.text);
            sample.push('\n');
            if raw_words(&sample).count() >= MIN_SAMPLE_WORDS {
                samples.push(std::mem::take(&mut sample));
            }
        }
    }
    samples
}

fn reference() -> StyleReference {
    let documents = [
        document("focus-blocks.md", FOCUS_BLOCKS),
        document("habit-stacking.md", HABIT_STACKING),
        document("morning-routine.md", MORNING_ROUTINE),
    ];
    StyleReference::new(&maya(), &documents)
}

fn mean(scores: &[f32]) -> f32 {
    scores.iter().sum::<f32>() / scores.len() as f32
}

#[test]
fn held_out_creator_writing_scores_above_generic_text_and_other_personas() {
    let reference = reference();
    let own: Vec<f32> = held_out_samples().iter().map(|t| consistency(t, &reference)).collect();
    let generic: Vec<f32> = GENERIC.iter().map(|t| consistency(t, &reference)).collect();
    let other: Vec<f32> = OTHER_PERSONAS.iter().map(|t| consistency(t, &reference)).collect();
    eprintln!("own {own:.2?} mean {:.2}", mean(&own));
    eprintln!("generic {generic:.2?} mean {:.2}", mean(&generic));
    eprintln!("other personas {other:.2?} mean {:.2}", mean(&other));
    assert!(own.len() >= 5, "{} held-out samples", own.len());

    // Every held-out paragraph beats every generic and every other-persona text, not just on average.
    let worst_own = own.iter().copied().fold(f32::INFINITY, f32::min);
    let best_generic = generic.iter().copied().fold(0.0, f32::max);
    let best_other = other.iter().copied().fold(0.0, f32::max);
    assert!(worst_own > best_generic, "worst own {worst_own} vs best generic {best_generic}");
    assert!(worst_own > best_other, "worst own {worst_own} vs best other persona {best_other}");
    assert!(mean(&own) > mean(&generic) + 0.15 && mean(&own) > mean(&other) + 0.15);
}

#[test]
fn an_avoid_word_costs_and_a_signature_phrase_helps() {
    let reference = reference();
    let plain = "Missed a day? Make the next one easy. Do the two-minute version and keep going.";
    let avoided = "Missed a day? That's failure. Make the next one easy and grind through the two-minute version.";
    let signed = "Missed a day? Never miss twice. Make the next one easy and do the two-minute version.";
    let (plain, avoided, signed) = (reference.score(plain), reference.score(avoided), reference.score(signed));
    assert_eq!(avoided.avoid_words, 2);
    assert!(avoided.score < plain.score * 0.5, "{avoided:?} vs {plain:?}");
    assert!(signed.signature_phrase && signed.score > plain.score, "{signed:?} vs {plain:?}");
}

#[test]
fn without_any_reference_the_score_is_neutral_and_in_range() {
    let reference = StyleReference::new(&Persona::default(), &[]);
    let score = consistency("Anything at all.", &reference);
    assert!((0.0..=1.0).contains(&score), "{score}");
    assert_eq!(reference.score("").voice, None);
}
