//! Reader for CTranslate2 `model.bin` files (offline-speech spec, "CT2 model.bin layout"): the
//! variables of a Whisper export with their shapes, types and raw little-endian data.

use super::ModelError;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_code(c: u8) -> Result<Self, ModelError> {
        Ok(match c {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::Bf16,
            other => return Err(ModelError::Format(format!("unknown CT2 dtype {other}"))),
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::Bf16 | DType::I16 => 2,
            DType::I8 => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variable<'a> {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Variable<'_> {
    /// The value of a rank-0 integer variable (e.g. `encoder/num_heads`).
    pub fn scalar(&self) -> Option<i64> {
        if !self.dims.is_empty() {
            return None;
        }
        Some(match self.dtype {
            DType::I8 => self.data.first().map(|&b| b as i8 as i64)?,
            DType::I16 => i16::from_le_bytes(self.data.get(..2)?.try_into().ok()?) as i64,
            DType::I32 => i32::from_le_bytes(self.data.get(..4)?.try_into().ok()?) as i64,
            _ => return None,
        })
    }

    /// The values as f32, whatever the stored float type.
    pub fn to_f32(&self) -> Result<Vec<f32>, ModelError> {
        match self.dtype {
            DType::F32 => Ok(self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            DType::F16 => Ok(self
                .data
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect()),
            DType::Bf16 => Ok(self
                .data
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect()),
            other => Err(ModelError::Format(format!("{other:?} is not a float type"))),
        }
    }

    pub fn elements(&self) -> usize {
        self.dims.iter().product::<usize>().max(1)
    }
}

/// IEEE 754 half → single precision (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1F) as u32;
    let mant = (h & 0x3FF) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3FF;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1F, m) => sign | 0x7F80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[derive(Debug)]
pub struct Model<'a> {
    pub spec: String,
    pub variables: BTreeMap<String, Variable<'a>>,
    pub aliases: BTreeMap<String, String>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                ModelError::Format(format!("truncated CT2 file at byte {}", self.pos))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ModelError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, ModelError> {
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| ModelError::Format("non-UTF-8 name".into()))
    }
}

/// Parses a whole `model.bin`. Data slices borrow from `buf`.
pub fn parse(buf: &[u8]) -> Result<Model<'_>, ModelError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.u32()?;
    if !(5..=6).contains(&version) {
        return Err(ModelError::Format(format!(
            "unsupported CT2 binary version {version}"
        )));
    }
    let spec = r.string()?;
    let _revision = r.u32()?;
    let count = r.u32()? as usize;
    let mut variables = BTreeMap::new();
    for _ in 0..count {
        let name = r.string()?;
        let rank = r.u8()? as usize;
        let dims = (0..rank)
            .map(|_| r.u32().map(|d| d as usize))
            .collect::<Result<Vec<_>, _>>()?;
        let dtype = DType::from_code(r.u8()?)?;
        let bytes = r.u32()? as usize;
        let data = r.take(bytes)?;
        let var = Variable { dims, dtype, data };
        if var.elements() * dtype.size() != bytes {
            return Err(ModelError::Format(format!(
                "{name}: {bytes} bytes do not match its shape"
            )));
        }
        variables.insert(name, var);
    }
    let mut aliases = BTreeMap::new();
    if r.pos < buf.len() {
        let n = r.u32()?;
        for _ in 0..n {
            let alias = r.string()?;
            let target = r.string()?;
            aliases.insert(alias, target);
        }
    }
    Ok(Model {
        spec,
        variables,
        aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values() {
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x7BFF), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!(f16_to_f32(0x7C00).is_infinite());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }
}
