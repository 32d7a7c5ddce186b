//! Words as retrieval sees them: tokenising, stop words and a light English stemmer, shared by the
//! BM25 index and the hashed embedder (and the built-in LLM's overlap count, through [`tokens`]).

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does", "for", "from", "how", "i", "if", "in",
    "is", "it", "its", "me", "my", "of", "on", "or", "so", "that", "the", "this", "to", "was", "what", "when", "where",
    "which", "who", "why", "will", "with", "you", "your", "we", "our", "should", "would", "could", "about", "have",
    "has", "am", "not", "no", "there", "any", "just", "all", "get", "i'm", "it's", "don't", "there's", "what's",
    "been", "into", "than", "then", "them", "they", "their", "these", "those", "too", "very", "some", "also", "way",
    "one",
];

pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

/// Lowercased words (letters, digits, inner apostrophes), stop words included.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '’')
        .map(|w| w.trim_matches(['\'', '’']).replace('’', "'").to_lowercase())
        .filter(|w| !w.is_empty())
}

/// Lowercased word tokens without stop words; very short tokens are dropped.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    words(text).filter(|w| w.chars().count() > 1 && !is_stop_word(w))
}

/// [`tokens`], stemmed: the terms BM25 indexes.
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    tokens(text).map(|w| stem(&w))
}

/// A light English stemmer: strips plural, possessive, `-ing`, `-ed`, `-ly`, `-ness` and a final
/// `e`, so `habits`/`habit`, `sleeping`/`sleep`, `worries`/`worried`/`worry` meet. Crude on purpose
/// (deterministic, no tables); a wrong stem only costs recall when both sides stem differently.
pub fn stem(word: &str) -> String {
    let mut w: String = word.strip_suffix("'s").unwrap_or(word).to_owned();
    if w.chars().count() <= 3 || !w.is_ascii() {
        return w;
    }
    let mut stripped_verb = false;
    for (suffix, replacement) in
        [("ies", "y"), ("ied", "y"), ("sses", "ss"), ("ness", ""), ("ing", ""), ("ed", ""), ("ly", "")]
    {
        if let Some(base) = w.strip_suffix(suffix)
            && base.len() >= 3
        {
            stripped_verb = matches!(suffix, "ing" | "ed");
            w = format!("{base}{replacement}");
            break;
        }
    }
    if !stripped_verb
        && w.len() > 3
        && w.ends_with('s')
        && !w.ends_with("ss")
        && !w.ends_with("us")
        && !w.ends_with("is")
    {
        w.pop();
    }
    let bytes = w.as_bytes();
    let n = bytes.len();
    if stripped_verb && n >= 2 && bytes[n - 1] == bytes[n - 2] && !matches!(bytes[n - 1], b'l' | b's' | b'z' | b'e') {
        // running → runn → run, stopped → stopp → stop
        w.pop();
    }
    if w.len() >= 4 && w.ends_with('e') {
        w.pop();
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_forms_stem_alike() {
        for group in [
            &["habit", "habits"][..],
            &["sleep", "sleeping", "sleeps"],
            &["worry", "worries", "worried"],
            &["run", "running"],
            &["stop", "stopped", "stops"],
            &["make", "making", "makes"],
            &["note", "notes"],
        ] {
            let stems: Vec<String> = group.iter().map(|w| stem(w)).collect();
            assert!(stems.windows(2).all(|p| p[0] == p[1]), "{group:?} → {stems:?}");
        }
        assert_eq!(stem("focus"), "focus");
        assert_eq!(stem("stress"), "stress");
    }

    #[test]
    fn tokens_drop_stop_words_and_single_letters() {
        let got: Vec<String> = tokens("What's the X-ray of my phone’s screen?").collect();
        assert_eq!(got, vec!["ray", "phone's", "screen"]);
    }
}
