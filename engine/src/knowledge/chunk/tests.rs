use proptest::prelude::*;

use super::*;

fn doc(path: &str, body: &str) -> KnowledgeDocument {
    KnowledgeDocument { path: path.into(), body: body.into() }
}

fn cut(path: &str, body: &str) -> Vec<(Option<String>, String)> {
    chunk_document(&doc(path, body), &ChunkOptions::default()).into_iter().map(|c| (c.heading, c.text)).collect()
}

#[test]
fn headings_start_chunks_and_name_them_with_their_parents() {
    let got =
        cut("a.md", "Intro line.\n# Sleep\nGo to bed\nat ten.\n\nNo screens.\n## Phones\n- One.\n- Two.\n# Food\nEat.");
    let want = vec![
        (None, "Intro line."),
        (Some("Sleep"), "Go to bed at ten.\nNo screens."),
        (Some("Sleep › Phones"), "- One.\n- Two."),
        (Some("Food"), "Eat."),
    ];
    let want: Vec<(Option<String>, String)> = want.into_iter().map(|(h, t)| (h.map(str::to_owned), t.into())).collect();
    assert_eq!(got, want);
}

#[test]
fn plain_text_has_paragraphs_only() {
    let got = cut("notes.txt", "# not a heading\nstill text\n\n- not a list");
    assert_eq!(got, vec![(None, "# not a heading still text\n- not a list".to_owned())]);
}

#[test]
fn sentences_survive_abbreviations_decimals_and_ellipses() {
    let text = "Use e.g. a timer. It costs 3.5 dollars... or less. Dr. Who agrees! Then J. Smith said \"Stop.\" Done";
    let got: Vec<&str> = sentences(text).into_iter().map(|r| &text[r]).collect();
    assert_eq!(
        got,
        vec![
            "Use e.g. a timer.",
            "It costs 3.5 dollars... or less.",
            "Dr. Who agrees!",
            "Then J. Smith said \"Stop.\"",
            "Done"
        ]
    );
}

#[test]
fn a_long_section_is_split_at_sentences_with_one_sentence_of_overlap() {
    let sentence = |i: usize| format!("Sentence number {i} says something about focus and rest.");
    let body = format!("# Long\n{}", (0..40).map(sentence).collect::<Vec<_>>().join(" "));
    let chunks = chunk_document(&doc("long.md", &body), &ChunkOptions::default());
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    for pair in chunks.windows(2) {
        let last_of_first = sentences(&pair[0].text).last().map(|r| pair[0].text[r.clone()].to_owned());
        assert_eq!(sentences(&pair[1].text).first().map(|r| pair[1].text[r.clone()].to_owned()), last_of_first);
        assert!(pair[1].start < pair[0].end, "the ranges overlap");
    }
    assert!(chunks.iter().all(|c| c.text.len() <= 700 && c.heading.as_deref() == Some("Long")));
}

#[test]
fn a_word_longer_than_the_maximum_is_cut_inside() {
    let body = "x".repeat(3000);
    let chunks = chunk_document(&doc("x.md", &body), &ChunkOptions::default());
    assert_eq!(chunks.iter().map(|c| c.text.len()).sum::<usize>(), 3000);
    assert!(chunks.iter().all(|c| c.end - c.start <= 700));
}

#[test]
fn an_empty_document_has_no_chunks() {
    assert!(cut("e.md", "  \n\n# Only a heading\n").is_empty());
}

/// Byte ranges of heading lines (which chunks carry in `heading`, not in their ranges).
fn heading_lines(body: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        if heading(line.trim()).is_some() {
            out.push(offset..offset + line.len());
        }
        offset += line.len();
    }
    out
}

fn body_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[A-Za-z]{1,9}".prop_map(|w| format!("{w} ")),
        2 => "[A-Z][a-z]{0,6}\\. ".prop_map(String::from),
        1 => Just("e.g. ".to_owned()),
        1 => Just("3.5 ".to_owned()),
        1 => Just("wait... ".to_owned()),
        1 => Just("Why? ".to_owned()),
        1 => Just("\n\n".to_owned()),
        1 => Just("\n".to_owned()),
        1 => "\n#{1,3} [A-Z][a-z]{0,5}\n".prop_map(String::from),
        1 => Just("\n- ".to_owned()),
        1 => Just("\n1. ".to_owned()),
        1 => "[a-z]{20,90}".prop_map(|w| format!("{w} ")),
        1 => Just("é€ ".to_owned()),
    ];
    proptest::collection::vec(piece, 0..120).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn chunks_cover_the_body_stay_within_bounds_and_invent_nothing(
        body in body_strategy(),
        target in 20usize..200,
        extra in 0usize..200,
        txt in any::<bool>(),
    ) {
        let options = ChunkOptions { target_bytes: target, max_bytes: target + extra };
        let path = if txt { "d.txt" } else { "d.md" };
        let document = doc(path, &body);
        let chunks = chunk_document(&document, &options);
        prop_assert_eq!(&chunks, &chunk_document(&document, &options), "deterministic");
        let headings = if txt { Vec::new() } else { heading_lines(&body) };
        for (i, byte) in body.bytes().enumerate() {
            if byte.is_ascii_whitespace() || headings.iter().any(|h| h.contains(&i)) {
                continue;
            }
            prop_assert!(chunks.iter().any(|c| (c.start..c.end).contains(&i)), "byte {} ({:?}) in no chunk", i, byte as char);
        }
        for (i, chunk) in chunks.iter().enumerate() {
            prop_assert_eq!(chunk.ordinal as usize, i);
            prop_assert!(chunk.end - chunk.start <= options.max_bytes, "{} bytes", chunk.end - chunk.start);
            prop_assert!(chunk.text.len() <= options.max_bytes);
            prop_assert!(!chunk.text.is_empty());
            prop_assert_eq!(&chunk.text, &normalize_whitespace(&body[chunk.start..chunk.end]));
            prop_assert_eq!(&chunk.content_hash, &document.content_hash());
        }
    }
}
