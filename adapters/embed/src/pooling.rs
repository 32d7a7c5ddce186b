//! Turning a batch of per-token hidden states into one unit vector per text, as sentence-transformers'
//! `Pooling(mean)` and `Normalize` modules do. Called by the embedder after the transformer runs.

use candle_core::{D, DType, Result, Tensor};

/// The mean of each text's token vectors, counting only tokens the attention mask keeps (padding is
/// left out), then scaled to unit length.
///
/// `hidden` is (texts, tokens, hidden size); `mask` is (texts, tokens) with 1 for a real token and 0
/// for padding. Returns (texts, hidden size).
pub(crate) fn mean_pool_normalised(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?;
    let summed = hidden.broadcast_mul(&mask.unsqueeze(D::Minus1)?)?.sum(1)?;
    // A text always keeps its [CLS] and [SEP]; the floor only guards against division by zero, as
    // sentence-transformers' `clamp(min=1e-9)` does.
    let counts = mask.sum_keepdim(1)?.maximum(1e-9)?;
    let mean = summed.broadcast_div(&counts)?;
    normalise(&mean)
}

/// Each row scaled to unit L2 length (torch's `F.normalize`, with the same 1e-12 floor so a zero
/// row stays zero instead of becoming NaN).
fn normalise(rows: &Tensor) -> Result<Tensor> {
    let norms = rows.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
    rows.broadcast_div(&norms)?.to_dtype(DType::F32)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn padding_is_left_out_of_the_mean_and_rows_have_unit_length() {
        // Two texts of three token slots with a hidden size of 2; the second text has one pad
        // token whose (huge) hidden state must not count.
        let hidden = Tensor::new(&[[[1f32, 0.], [3., 0.], [2., 0.]], [[0., 1.], [0., 3.], [100., 100.]]], &Device::Cpu)
            .expect("hidden states");
        let mask = Tensor::new(&[[1u32, 1, 1], [1, 1, 0]], &Device::Cpu).expect("mask");
        let pooled = mean_pool_normalised(&hidden, &mask).expect("pooled").to_vec2::<f32>().expect("rows");
        assert_eq!(pooled, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
    }

    #[test]
    fn a_zero_vector_stays_zero() {
        let hidden = Tensor::zeros((1, 2, 3), DType::F32, &Device::Cpu).expect("hidden states");
        let mask = Tensor::new(&[[1u32, 1]], &Device::Cpu).expect("mask");
        let pooled = mean_pool_normalised(&hidden, &mask).expect("pooled").to_vec2::<f32>().expect("rows");
        assert_eq!(pooled, vec![vec![0.0, 0.0, 0.0]]);
    }
}
