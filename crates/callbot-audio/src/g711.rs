//! G.711 μ-law (PCMU) codec, table-driven: the Reese/Campbell encoder (spec §5.1, no zerotrap) and
//! decoder (§5.2). Both tables are built at compile time; a frame costs one lookup per sample.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// μ-law silence (positive zero).
pub const SILENCE: u8 = 0xFF;

const fn encode_one(sample: i16) -> u8 {
    let s = sample as i32;
    let sign = if s < 0 { 0x80 } else { 0 };
    let mut mag = if s < 0 { -s } else { s };
    if mag > CLIP {
        mag = CLIP;
    }
    mag += BIAS;
    // Exponent: highest set bit of the biased magnitude, minus 7.
    let bits = 32 - (mag as u32).leading_zeros() as i32;
    let exponent = bits - 8;
    let mantissa = (mag >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

const fn decode_one(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 7) as i32;
    let mantissa = (u & 0x0F) as i32;
    let mag = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if sign != 0 { -mag } else { mag }) as i16
}

/// Encoder table indexed by the sample's upper 14 bits would lose precision at segment 0, so the
/// encoder table covers all 65,536 inputs (64 KiB, built at compile time).
static ENCODE: [u8; 65536] = {
    let mut t = [0u8; 65536];
    let mut i = 0;
    while i < 65536 {
        t[i] = encode_one((i as u16) as i16);
        i += 1;
    }
    t
};

static DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = decode_one(i as u8);
        i += 1;
    }
    t
};

#[inline]
pub fn encode_sample(s: i16) -> u8 {
    ENCODE[s as u16 as usize]
}

#[inline]
pub fn decode_sample(b: u8) -> i16 {
    DECODE[b as usize]
}

/// Encodes `pcm` into `out` (cleared first; no allocation when `out` has room).
pub fn encode(pcm: &[i16], out: &mut Vec<u8>) {
    out.clear();
    out.extend(pcm.iter().map(|&s| encode_sample(s)));
}

/// Decodes `ulaw` into `out` (cleared first; no allocation when `out` has room).
pub fn decode(ulaw: &[u8], out: &mut Vec<i16>) {
    out.clear();
    out.extend(ulaw.iter().map(|&b| decode_sample(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        let cases: [(i16, u8, i16); 15] = [
            (0, 0xFF, 0),
            (1, 0xFF, 0),
            (2, 0xFF, 0),
            (3, 0xFF, 0),
            (4, 0xFE, 8),
            (100, 0xF2, 104),
            (-100, 0x72, -104),
            (1000, 0xCE, 988),
            (-1000, 0x4E, -988),
            (12345, 0x97, 12412),
            (-12345, 0x17, -12412),
            (32124, 0x80, 32124),
            (32635, 0x80, 32124),
            (32767, 0x80, 32124),
            (-32768, 0x00, -32124),
        ];
        for (pcm, byte, back) in cases {
            assert_eq!(encode_sample(pcm), byte, "encode {pcm}");
            assert_eq!(decode_sample(byte), back, "decode {byte:#04x}");
        }
        let decode_only: [(u8, i16); 12] = [
            (0x00, -32124),
            (0x01, -31100),
            (0x0F, -16764),
            (0x10, -15996),
            (0x70, -120),
            (0x7E, -8),
            (0x7F, 0),
            (0x80, 32124),
            (0xEF, 132),
            (0xF0, 120),
            (0xFE, 8),
            (0xFF, 0),
        ];
        for (byte, pcm) in decode_only {
            assert_eq!(decode_sample(byte), pcm, "decode {byte:#04x}");
        }
    }

    #[test]
    fn every_code_round_trips() {
        for b in 0..=255u8 {
            let pcm = decode_sample(b);
            let again = encode_sample(pcm);
            // 0x7F (negative zero) re-encodes as 0xFF (positive zero); all others are exact.
            if b == 0x7F {
                assert_eq!(again, 0xFF);
            } else {
                assert_eq!(again, b, "{b:#04x} -> {pcm} -> {again:#04x}");
            }
        }
    }

    #[test]
    fn buffers_are_reused() {
        let mut out = Vec::with_capacity(160);
        let ptr = out.as_ptr();
        encode(&[0i16; 160], &mut out);
        assert_eq!(out, vec![SILENCE; 160]);
        assert_eq!(out.as_ptr(), ptr);
        let mut pcm = Vec::with_capacity(160);
        decode(&out, &mut pcm);
        assert_eq!(pcm, vec![0i16; 160]);
    }
}
