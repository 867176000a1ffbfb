//! CT2 Whisper → whisper.cpp ggml conversion (offline-speech spec: ggml layout and the tensor name
//! mapping): hyper-parameters, Slaney mel filters, the GPT-2 byte-level vocabulary, and the tensors
//! with fused attention projections split and key biases dropped.

use super::ModelError;
use super::ct2::{self, DType, Variable};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

const MAGIC: u32 = 0x6767_6d6c;
const N_FFT_BINS: usize = 201;

/// One output tensor: ggml name, shape outermost first (as in numpy), f16 or f32 data.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    /// Raw little-endian f16 bytes.
    F16(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HParams {
    pub n_vocab: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_mels: usize,
}

fn var<'m, 'a>(m: &'m ct2::Model<'a>, name: &str) -> Result<&'m Variable<'a>, ModelError> {
    m.variables
        .get(name)
        .or_else(|| m.aliases.get(name).and_then(|t| m.variables.get(t)))
        .ok_or_else(|| ModelError::Format(format!("missing CT2 variable {name}")))
}

fn layers(m: &ct2::Model<'_>, prefix: &str) -> usize {
    m.variables
        .keys()
        .filter_map(|k| {
            k.strip_prefix(prefix)?
                .strip_prefix("/layer_")?
                .split('/')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .map(|i| i + 1)
        .max()
        .unwrap_or(0)
}

fn dim(v: &Variable<'_>, i: usize, what: &str) -> Result<usize, ModelError> {
    v.dims
        .get(i)
        .copied()
        .ok_or_else(|| ModelError::Format(format!("{what}: unexpected shape {:?}", v.dims)))
}

pub fn hparams(m: &ct2::Model<'_>) -> Result<HParams, ModelError> {
    let heads = |name: &str| {
        var(m, name)?
            .scalar()
            .and_then(|h| usize::try_from(h).ok())
            .ok_or_else(|| ModelError::Format(format!("{name} is not an integer")))
    };
    let enc_pos = var(m, "encoder/position_encodings/encodings")?;
    let dec_pos = var(m, "decoder/position_encodings/encodings")?;
    let emb = var(m, "decoder/embeddings/weight")?;
    let conv1 = var(m, "encoder/conv1/weight")?;
    Ok(HParams {
        n_vocab: dim(emb, 0, "embeddings")?,
        n_audio_ctx: dim(enc_pos, 0, "encoder positions")?,
        n_audio_state: dim(enc_pos, 1, "encoder positions")?,
        n_audio_head: heads("encoder/num_heads")?,
        n_audio_layer: layers(m, "encoder"),
        n_text_ctx: dim(dec_pos, 0, "decoder positions")?,
        n_text_state: dim(dec_pos, 1, "decoder positions")?,
        n_text_head: heads("decoder/num_heads")?,
        n_text_layer: layers(m, "decoder"),
        n_mels: dim(conv1, 1, "conv1")?,
    })
}

/// Rows `[from, to)` of a 2-D (or 1-D) variable, as raw bytes of its type.
fn rows<'a>(v: &Variable<'a>, from: usize, to: usize) -> &'a [u8] {
    let row = v.dims.iter().skip(1).product::<usize>().max(1) * v.dtype.size();
    &v.data[from * row..to * row]
}

fn to_f16_bytes(v: &Variable<'_>, raw: &[u8]) -> Result<Vec<u8>, ModelError> {
    match v.dtype {
        DType::F16 => Ok(raw.to_vec()),
        _ => {
            let part = Variable {
                dims: vec![raw.len() / v.dtype.size()],
                dtype: v.dtype,
                data: raw,
            };
            Ok(part
                .to_f32()?
                .into_iter()
                .flat_map(|x| f32_to_f16(x).to_le_bytes())
                .collect())
        }
    }
}

fn to_f32(v: &Variable<'_>, raw: &[u8]) -> Result<Vec<f32>, ModelError> {
    Variable {
        dims: vec![raw.len() / v.dtype.size()],
        dtype: v.dtype,
        data: raw,
    }
    .to_f32()
}

/// f32 → f16, round to nearest even (only used when a CT2 export is f32).
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xFF) as i32;
    let mant = bits & 0x7F_FFFF;
    if exp == 0xFF {
        return sign | 0x7C00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1F {
        return sign | 0x7C00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rounded = (m + half - 1 + ((m >> shift) & 1)) >> shift;
        return sign | rounded as u16;
    }
    let rounded = mant + 0xFFF + ((mant >> 13) & 1);
    let (e, rounded) = if rounded & 0x80_0000 != 0 {
        (e + 1, 0)
    } else {
        (e, rounded)
    };
    if e >= 0x1F {
        return sign | 0x7C00;
    }
    sign | ((e as u16) << 10) | (rounded >> 13) as u16
}

/// Collects ggml tensors from CT2 variables.
struct Builder<'m, 'a> {
    m: &'m ct2::Model<'a>,
    out: Vec<Tensor>,
}

impl Builder<'_, '_> {
    /// `f32` for 1-D tensors, conv biases and positional embeddings; f16 for the rest.
    fn push(
        &mut self,
        name: String,
        v: &Variable<'_>,
        raw: &[u8],
        shape: Vec<usize>,
        force_f32: bool,
    ) -> Result<(), ModelError> {
        let data = if force_f32 || shape.len() < 2 {
            TensorData::F32(to_f32(v, raw)?)
        } else {
            TensorData::F16(to_f16_bytes(v, raw)?)
        };
        self.out.push(Tensor { name, shape, data });
        Ok(())
    }

    fn copy(&mut self, src: &str, dst: &str, force_f32: bool) -> Result<(), ModelError> {
        let v = var(self.m, src)?.clone();
        let shape = v.dims.clone();
        self.push(dst.to_owned(), &v, v.data, shape, force_f32)
    }

    fn linear(&mut self, src: &str, dst: &str) -> Result<(), ModelError> {
        self.copy(&format!("{src}/weight"), &format!("{dst}.weight"), false)?;
        self.copy(&format!("{src}/bias"), &format!("{dst}.bias"), false)
    }

    fn norm(&mut self, src: &str, dst: &str) -> Result<(), ModelError> {
        self.copy(&format!("{src}/gamma"), &format!("{dst}.weight"), false)?;
        self.copy(&format!("{src}/beta"), &format!("{dst}.bias"), false)
    }

    /// A fused projection split into `dsts.len()` parts along the rows; the key part
    /// (`key_index`) has a zero bias in CT2 and none in ggml.
    fn split(&mut self, src: &str, dsts: &[String], key_index: usize) -> Result<(), ModelError> {
        let w = var(self.m, &format!("{src}/weight"))?.clone();
        let b = var(self.m, &format!("{src}/bias"))?.clone();
        let total = dim(&w, 0, src)?;
        let n = total / dsts.len();
        if n * dsts.len() != total || dim(&b, 0, src)? != total {
            return Err(ModelError::Format(format!(
                "{src}: cannot split {:?} in {}",
                w.dims,
                dsts.len()
            )));
        }
        for (i, dst) in dsts.iter().enumerate() {
            let mut shape = w.dims.clone();
            shape[0] = n;
            self.push(
                format!("{dst}.weight"),
                &w,
                rows(&w, i * n, (i + 1) * n),
                shape,
                false,
            )?;
            if i != key_index {
                self.push(
                    format!("{dst}.bias"),
                    &b,
                    rows(&b, i * n, (i + 1) * n),
                    vec![n],
                    false,
                )?;
            }
        }
        Ok(())
    }

    fn block(&mut self, s: &str, d: &str, cross: bool) -> Result<(), ModelError> {
        self.norm(
            &format!("{s}/self_attention/layer_norm"),
            &format!("{d}.attn_ln"),
        )?;
        let qkv = ["query", "key", "value"].map(|p| format!("{d}.attn.{p}"));
        self.split(&format!("{s}/self_attention/linear_0"), &qkv, 1)?;
        self.linear(
            &format!("{s}/self_attention/linear_1"),
            &format!("{d}.attn.out"),
        )?;
        if cross {
            self.norm(
                &format!("{s}/attention/layer_norm"),
                &format!("{d}.cross_attn_ln"),
            )?;
            self.linear(
                &format!("{s}/attention/linear_0"),
                &format!("{d}.cross_attn.query"),
            )?;
            let kv = ["key", "value"].map(|p| format!("{d}.cross_attn.{p}"));
            self.split(&format!("{s}/attention/linear_1"), &kv, 0)?;
            self.linear(
                &format!("{s}/attention/linear_2"),
                &format!("{d}.cross_attn.out"),
            )?;
        }
        self.norm(&format!("{s}/ffn/layer_norm"), &format!("{d}.mlp_ln"))?;
        self.linear(&format!("{s}/ffn/linear_0"), &format!("{d}.mlp.0"))?;
        self.linear(&format!("{s}/ffn/linear_1"), &format!("{d}.mlp.2"))
    }
}

/// Builds the ggml tensors from the CT2 variables.
pub fn tensors(m: &ct2::Model<'_>, hp: &HParams) -> Result<Vec<Tensor>, ModelError> {
    let mut b = Builder { m, out: Vec::new() };
    b.copy(
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding",
        true,
    )?;
    for c in ["conv1", "conv2"] {
        b.copy(
            &format!("encoder/{c}/weight"),
            &format!("encoder.{c}.weight"),
            false,
        )?;
        let bias = var(m, &format!("encoder/{c}/bias"))?.clone();
        let n = dim(&bias, 0, c)?;
        b.push(
            format!("encoder.{c}.bias"),
            &bias,
            bias.data,
            vec![n, 1],
            true,
        )?;
    }
    for i in 0..hp.n_audio_layer {
        b.block(
            &format!("encoder/layer_{i}"),
            &format!("encoder.blocks.{i}"),
            false,
        )?;
    }
    b.norm("encoder/layer_norm", "encoder.ln_post")?;
    b.copy(
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding",
        true,
    )?;
    b.copy(
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight",
        false,
    )?;
    for i in 0..hp.n_text_layer {
        b.block(
            &format!("decoder/layer_{i}"),
            &format!("decoder.blocks.{i}"),
            true,
        )?;
    }
    b.norm("decoder/layer_norm", "decoder.ln")?;
    Ok(b.out)
}

/// Slaney-style mel filter bank (80 × 201 for Whisper), matching openai-whisper's shipped filters.
pub fn mel_filters(n_mels: usize, sample_rate: f64, n_fft: usize) -> Vec<f32> {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    let hz_to_mel = |f: f64| {
        if f >= min_log_hz {
            min_log_mel + (f / min_log_hz).ln() / logstep
        } else {
            f / f_sp
        }
    };
    let mel_to_hz = |m: f64| {
        if m >= min_log_mel {
            min_log_hz * (logstep * (m - min_log_mel)).exp()
        } else {
            f_sp * m
        }
    };
    let bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * sample_rate / n_fft as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut w = vec![0f32; n_mels * bins];
    for i in 0..n_mels {
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (j, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - mel_f[i]) / (mel_f[i + 1] - mel_f[i]);
            let upper = (mel_f[i + 2] - f) / (mel_f[i + 2] - mel_f[i + 1]);
            w[i * bins + j] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    w
}

/// GPT-2's byte ↔ printable-character table, inverted: character → byte.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .filter_map(|(b, c)| Some((char::from_u32(c)?, b as u8)))
        .collect()
}

/// The vocabulary ggml wants: raw bytes of every token below `<|endoftext|>`, in id order.
pub fn vocabulary(tokenizer_json: &[u8]) -> Result<Vec<Vec<u8>>, ModelError> {
    #[derive(serde::Deserialize)]
    struct Tok {
        model: Bpe,
    }
    #[derive(serde::Deserialize)]
    struct Bpe {
        vocab: BTreeMap<String, usize>,
    }
    let t: Tok = serde_json::from_slice(tokenizer_json)
        .map_err(|e| ModelError::Format(format!("tokenizer.json: {e}")))?;
    let eot = *t
        .model
        .vocab
        .get("<|endoftext|>")
        .ok_or_else(|| ModelError::Format("tokenizer.json has no <|endoftext|>".into()))?;
    let table = unicode_to_byte();
    let mut tokens = vec![None; eot];
    for (tok, id) in &t.model.vocab {
        if *id < eot {
            let bytes = tok
                .chars()
                .map(|c| table.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| {
                    ModelError::Format(format!("token {tok:?} is not byte-level BPE"))
                })?;
            tokens[*id] = Some(bytes);
        }
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.ok_or_else(|| ModelError::Format(format!("token id {i} missing"))))
        .collect()
}

/// Writes the whole ggml file.
pub fn write(
    out: &mut impl Write,
    hp: &HParams,
    vocab: &[Vec<u8>],
    tensors: &[Tensor],
) -> std::io::Result<()> {
    let i32le = |out: &mut dyn Write, v: usize| out.write_all(&(v as i32).to_le_bytes());
    out.write_all(&MAGIC.to_le_bytes())?;
    for v in [
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_audio_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_text_state,
        hp.n_text_head,
        hp.n_text_layer,
        hp.n_mels,
        1,
    ] {
        i32le(out, v)?;
    }
    i32le(out, hp.n_mels)?;
    i32le(out, N_FFT_BINS)?;
    for x in mel_filters(hp.n_mels, 16000.0, 400) {
        out.write_all(&x.to_le_bytes())?;
    }
    i32le(out, vocab.len())?;
    for t in vocab {
        i32le(out, t.len())?;
        out.write_all(t)?;
    }
    for t in tensors {
        let ftype = match t.data {
            TensorData::F32(_) => 0,
            TensorData::F16(_) => 1,
        };
        i32le(out, t.shape.len())?;
        i32le(out, t.name.len())?;
        i32le(out, ftype)?;
        for d in t.shape.iter().rev() {
            i32le(out, *d)?;
        }
        out.write_all(t.name.as_bytes())?;
        match &t.data {
            TensorData::F32(v) => {
                for x in v {
                    out.write_all(&x.to_le_bytes())?;
                }
            }
            TensorData::F16(b) => out.write_all(b)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_match_whisper() {
        let w = mel_filters(80, 16000.0, 400);
        assert_eq!(w.len(), 80 * 201);
        // Reference values read from openai-whisper's `assets/mel_filters.npz` (`mel_80`).
        for (i, want) in [
            (1, 0.024_862_595_f32),
            (201 + 1, 0.001_990_822),
            (201 + 2, 0.022_871_772),
            (79 * 201 + 195, 0.002_243_795_2),
            (79 * 201 + 199, 0.000_448_759),
        ] {
            assert!((w[i] - want).abs() < 1e-8, "bin {i}: {} vs {want}", w[i]);
        }
        assert_eq!(w[0], 0.0);
        assert_eq!(w[79 * 201 + 200], 0.0);
        let last: f32 = w[79 * 201..].iter().sum();
        assert!(last > 0.0);
        // Filters are triangles: non-negative, one contiguous run of non-zero bins each.
        for i in 0..80 {
            let row = &w[i * 201..(i + 1) * 201];
            assert!(row.iter().all(|&x| x >= 0.0));
            let nz: Vec<usize> = row
                .iter()
                .enumerate()
                .filter(|(_, x)| **x > 0.0)
                .map(|(j, _)| j)
                .collect();
            assert!(!nz.is_empty(), "filter {i} empty");
            assert_eq!(
                nz.last().unwrap() - nz[0] + 1,
                nz.len(),
                "filter {i} not contiguous"
            );
        }
    }

    #[test]
    fn byte_level_table_covers_all_bytes() {
        let t = unicode_to_byte();
        assert_eq!(t.len(), 256);
        assert_eq!(t[&'Ġ'], b' ');
        assert_eq!(t[&'Ċ'], b'\n');
        assert_eq!(t[&'a'], b'a');
    }

    #[test]
    fn f16_round_trip() {
        for x in [
            0.0f32,
            1.0,
            -2.5,
            0.333_251_95,
            65504.0,
            6.1035156e-5,
            5.9604645e-8,
        ] {
            assert_eq!(ct2::f16_to_f32(f32_to_f16(x)), x, "{x}");
        }
        assert_eq!(f32_to_f16(1e6), 0x7C00);
    }
}
