//! Long texts split for providers with a length limit: at paragraph breaks first, then at sentence
//! ends, then between words, and only as a last resort inside a word; never inside a character.

/// Splits `text` into pieces of at most `max_chars` characters (Unicode scalar values), in order.
/// Whitespace at a split point is dropped; nothing else is. An empty or blank text gives no piece.
pub fn split_text(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.chars().count() <= max_chars {
            pieces.push(rest.to_owned());
            break;
        }
        // Byte index just after the first `max_chars` characters.
        let limit = rest.char_indices().nth(max_chars).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let cut = last_break(window, "\n\n")
            .or_else(|| last_sentence_end(window))
            .or_else(|| last_break(window, "\n"))
            .or_else(|| window.rfind(char::is_whitespace).filter(|&i| i > 0))
            .unwrap_or(limit);
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece.trim_end().to_owned());
        rest = tail.trim_start();
    }
    pieces
}

/// The end of the last `separator` in `window` that leaves something before it.
fn last_break(window: &str, separator: &str) -> Option<usize> {
    window.rfind(separator).filter(|&i| !window[..i].trim().is_empty())
}

/// Just after the last sentence end (`.`, `!`, `?`, `…` followed by whitespace) in `window`.
fn last_sentence_end(window: &str) -> Option<usize> {
    let mut found = None;
    let mut chars = window.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?' | '…')
            && let Some(&(_, next)) = chars.peek()
            && next.is_whitespace()
        {
            found = Some(i + c.len_utf8());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_short_text_is_one_piece_and_a_blank_one_none() {
        assert_eq!(split_text("Hello there.", 100), vec!["Hello there."]);
        assert!(split_text("  \n ", 100).is_empty());
    }

    #[test]
    fn long_texts_split_at_paragraphs_then_sentences_then_words() {
        let text = "First paragraph here.\n\nSecond one is a bit longer. It has two sentences.";
        assert_eq!(
            split_text(text, 30),
            vec!["First paragraph here.", "Second one is a bit longer.", "It has two sentences."]
        );
        assert_eq!(split_text("one two three four", 9), vec!["one two", "three", "four"]);
        assert_eq!(split_text("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    }

    #[test]
    fn characters_are_never_cut() {
        let pieces = split_text("ééééé", 2);
        assert_eq!(pieces, vec!["éé", "éé", "é"]);
    }

    proptest! {
        #[test]
        fn pieces_fit_and_keep_every_non_space_character_in_order(text in "[a-zé .!?\n]{0,300}", max in 1usize..60) {
            let pieces = split_text(&text, max);
            for piece in &pieces {
                prop_assert!(piece.chars().count() <= max);
                prop_assert!(!piece.trim().is_empty());
            }
            let kept: String = pieces.concat().chars().filter(|c| !c.is_whitespace()).collect();
            let original: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            prop_assert_eq!(kept, original);
        }
    }
}
