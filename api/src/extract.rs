//! Text out of knowledge files that are not text: PDF, through `pdf-extract` (over `lopdf`).
//!
//! A creator's PDF is untrusted input: extraction runs with a size limit and a panic guard (a
//! malformed file must refuse the file, not take the import down), and a PDF without a text layer
//! (a scan) is refused with a clear sentence rather than imported as an empty document.

use std::panic::AssertUnwindSafe;

/// The largest PDF accepted (PDFs carry fonts and images besides their text).
pub const MAX_PDF_BYTES: u64 = 20 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("is not a readable PDF: {0}")]
    Unreadable(String),
    #[error("has no text layer (a scanned PDF?); export it with text or convert it to Markdown")]
    NoText,
}

/// The text of a PDF, page by page, with runs of blank lines collapsed to paragraph breaks.
pub fn pdf_text(bytes: &[u8]) -> Result<String, ExtractError> {
    let extracted = std::panic::catch_unwind(AssertUnwindSafe(|| pdf_extract::extract_text_from_mem(bytes)))
        .map_err(|_| ExtractError::Unreadable("the PDF reader failed on this file".to_owned()))?
        .map_err(|e| ExtractError::Unreadable(e.to_string()))?;
    let text = tidy(&extracted);
    if text.split_whitespace().next().is_none() {
        return Err(ExtractError::NoText);
    }
    Ok(text)
}

/// Trims trailing spaces, turns form feeds (page breaks) into paragraph breaks and keeps at most
/// one blank line in a row.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.replace('\u{c}', "\n\n").lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal one-page PDF with a text layer, written by hand (offsets computed below).
    pub(crate) fn tiny_pdf(text: &str) -> Vec<u8> {
        let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
            format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
        ];
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = pdf.len();
        pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
        for offset in offsets {
            pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        pdf.extend_from_slice(
            format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
        );
        pdf
    }

    #[test]
    fn the_text_of_a_pdf_comes_out() {
        let text = pdf_text(&tiny_pdf("Protect your first hour.")).expect("a valid PDF");
        assert!(text.contains("Protect your first hour."), "{text:?}");
    }

    #[test]
    fn a_broken_pdf_is_refused_not_a_panic() {
        assert!(matches!(pdf_text(b"%PDF-1.4\nthis is not a pdf"), Err(ExtractError::Unreadable(_))));
        assert!(matches!(pdf_text(b""), Err(ExtractError::Unreadable(_))));
    }

    #[test]
    fn a_pdf_without_text_is_refused() {
        assert_eq!(pdf_text(&tiny_pdf("")), Err(ExtractError::NoText));
    }

    #[test]
    fn blank_runs_collapse_to_paragraph_breaks() {
        assert_eq!(tidy("a  \n\n\n\nb\nc\u{c}d"), "a\n\nb\nc\n\nd");
    }
}
