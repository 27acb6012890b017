//! NumPy `.npy` files (read and atomic write) and `.npz` archives (read).
//!
//! The `.npy` format (numpy's `lib/format.py` documents it): the magic `\x93NUMPY`, a
//! major/minor version byte, a little-endian header length (2 bytes in version 1, 4 in
//! versions 2 and 3), then an ASCII (UTF-8 in v3) Python dict literal with `descr`,
//! `fortran_order` and `shape`, padded with spaces and a newline, then the raw elements.
//!
//! We accept little-endian (`<`) or byte-order-free (`|`) descriptors for the element types
//! in [`DType`] (bfloat16 has no NumPy type, so it is not read or written here), C order only.
//! Fortran order, big-endian data, object arrays and unknown descriptors are refused with an
//! error naming the file. The element count implied by the header is checked against the
//! bytes actually present before anything is decoded, so a hostile header cannot make us
//! allocate gigabytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{element_count, format_shape, DType, Tensor};
use crate::artifact;
use crate::error::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";
/// Largest header we accept; numpy itself refuses headers over 10 000 bytes by default.
const MAX_HEADER_BYTES: usize = 1 << 16;

/// The `.npy` descriptor for a type, or `None` (bfloat16).
pub fn descr(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::F64 => "<f8",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::I32 => "<i4",
        DType::U32 => "<u4",
        DType::I64 => "<i8",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
        DType::BF16 => return None,
    })
}

fn dtype_from_descr(d: &str) -> std::result::Result<DType, String> {
    let (order, code) = match d.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &d[1..]),
        _ => ('|', d),
    };
    let dtype = match code {
        "f4" => DType::F32,
        "f2" | "e" => DType::F16,
        "f8" | "d" => DType::F64,
        "i1" | "b" => DType::I8,
        "u1" | "B" => DType::U8,
        "i2" => DType::I16,
        "u2" => DType::U16,
        "i4" => DType::I32,
        "u4" => DType::U32,
        "i8" => DType::I64,
        "u8" => DType::U64,
        "b1" | "?" => DType::Bool,
        _ => {
            return Err(format!(
                "unsupported .npy element type '{d}' (supported: float16/32/64, int8-64, uint8-64, bool)"
            ))
        }
    };
    if order == '>' && dtype.size_bytes() > 1 {
        return Err(format!(
            "big-endian data ('{d}') is not supported; save it little-endian (arr.astype(arr.dtype.newbyteorder('<')))"
        ));
    }
    if order == '=' && cfg!(target_endian = "big") && dtype.size_bytes() > 1 {
        return Err(format!("native-order data ('{d}') on a big-endian host"));
    }
    Ok(dtype)
}

/// A parsed `.npy` header.
#[derive(Debug, PartialEq)]
struct Header {
    dtype: DType,
    shape: Vec<usize>,
}

/// A tiny scanner for the Python dict literal numpy writes. It understands exactly what the
/// format allows: quoted strings, `True`/`False`, integers and tuples of integers.
struct Lit<'a> {
    s: &'a [u8],
    i: usize,
}

#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

impl<'a> Lit<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "malformed .npy header: expected '{}' at byte {}",
                c as char, self.i
            ))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        self.ws();
        let q = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "malformed .npy header: expected a string at byte {}",
                    self.i
                ))
            }
        };
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err("malformed .npy header: unterminated string".into());
        }
        let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(out)
    }
    fn int(&mut self) -> std::result::Result<u64, String> {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        // numpy may write `3L` in files made by Python 2.
        let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        if self.s.get(self.i) == Some(&b'L') {
            self.i += 1;
        }
        digits
            .parse()
            .map_err(|_| format!("malformed .npy header: bad dimension at byte {start}"))
    }
    fn value(&mut self) -> std::result::Result<Value, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'\'' | b'"') => Ok(Value::Str(self.string()?)),
            Some(b'[' | b'{') => Err(
                "structured (record) arrays are not supported: 'descr' is not a plain type".into(),
            ),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                loop {
                    if self.eat(b')') {
                        break;
                    }
                    dims.push(self.int()?);
                    if !self.eat(b',') {
                        self.expect(b')')?;
                        break;
                    }
                }
                Ok(Value::Tuple(dims))
            }
            _ => {
                let rest = &self.s[self.i..];
                if rest.starts_with(b"True") {
                    self.i += 4;
                    Ok(Value::Bool(true))
                } else if rest.starts_with(b"False") {
                    self.i += 5;
                    Ok(Value::Bool(false))
                } else {
                    Err(format!(
                        "malformed .npy header: unexpected value at byte {}",
                        self.i
                    ))
                }
            }
        }
    }
}

fn parse_header(text: &[u8]) -> std::result::Result<Header, String> {
    let mut p = Lit { s: text, i: 0 };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        let v = p.value()?;
        match (key.as_str(), v) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("descr", _) => {
                return Err(
                    "structured (record) arrays are not supported: 'descr' is not a plain type"
                        .into(),
                )
            }
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            (k @ ("fortran_order" | "shape"), v) => {
                return Err(format!("malformed .npy header: bad value for '{k}': {v:?}"))
            }
            // Unknown keys are tolerated, as numpy itself does for forward compatibility.
            _ => {}
        }
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    let descr = descr.ok_or("malformed .npy header: no 'descr'")?;
    let fortran = fortran.ok_or("malformed .npy header: no 'fortran_order'")?;
    let shape = shape.ok_or("malformed .npy header: no 'shape'")?;
    if fortran {
        return Err(
            "Fortran-order arrays are not supported; save a C-order array (np.ascontiguousarray)"
                .into(),
        );
    }
    let dtype = dtype_from_descr(&descr)?;
    let shape = shape
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| "dimension too large".to_string()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Header { dtype, shape })
}

/// Decode `.npy` bytes; `origin` names the file in errors.
pub fn parse_npy(bytes: &[u8], origin: &Path) -> Result<Tensor> {
    let err = |m: String| Error::file(origin, m);
    if bytes.is_empty() {
        return Err(err("empty file, not a .npy array".into()));
    }
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("not a .npy file (bad magic bytes)".into()));
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("truncated .npy header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(err(format!("unsupported .npy format version {v}"))),
    };
    if hlen > MAX_HEADER_BYTES {
        return Err(err(format!("implausible .npy header length {hlen}")));
    }
    let end = start + hlen;
    if bytes.len() < end {
        return Err(err("truncated .npy header".into()));
    }
    let header = parse_header(&bytes[start..end]).map_err(err)?;
    let data = &bytes[end..];
    let need = element_count(&header.shape)
        .and_then(|n| n.checked_mul(header.dtype.size_bytes()))
        .ok_or_else(|| {
            err(format!(
                "shape {} is too large",
                format_shape(&header.shape)
            ))
        })?;
    if data.len() < need {
        return Err(err(format!(
            "truncated: {} shape {} needs {need} bytes of data but the file has {}",
            header.dtype,
            format_shape(&header.shape),
            data.len()
        )));
    }
    if data.len() > need {
        return Err(err(format!(
            "{} bytes of trailing data after the {} {} array",
            data.len() - need,
            header.dtype,
            format_shape(&header.shape)
        )));
    }
    Tensor::from_le_bytes(header.dtype, header.shape, data, origin)
}

/// Read a `.npy` file.
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes, path)
}

/// Encode a tensor as `.npy` (format version 1.0). Fails for bfloat16, which NumPy lacks.
pub fn to_npy_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let d = descr(t.dtype()).ok_or_else(|| {
        Error::usage(
            "npy",
            "bfloat16 tensors have no .npy type; convert to float32 first",
        )
    })?;
    let shape = match t.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{d}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so the data starts on a 64-byte boundary, header ends with '\n' (format spec).
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let hlen = u16::try_from(header.len())
        .map_err(|_| Error::usage("npy", "tensor rank too large for a .npy v1 header"))?;
    let mut out = Vec::with_capacity(10 + header.len() + t.size_bytes());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&hlen.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.to_le_bytes());
    Ok(out)
}

/// Write a tensor as a `.npy` file, atomically.
pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let bytes = to_npy_bytes(t).map_err(|e| Error::file(path, e.to_string()))?;
    artifact::write_atomic(path, &bytes)
}

/// Largest uncompressed member we read from a `.npz` archive (guards against zip bombs).
pub const MAX_NPZ_MEMBER_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Read every array in a `.npz` archive, in archive order, named as numpy names them
/// (member name without `.npy`).
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| Error::file(path, format!("not a readable .npz (zip) archive: {e}")))?;
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| Error::file(path, format!("bad archive entry {i}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let member = entry.name().to_string();
        let name = member.strip_suffix(".npy").unwrap_or(&member).to_string();
        let origin = PathBuf::from(format!("{}[{member}]", path.display()));
        if entry.size() > MAX_NPZ_MEMBER_BYTES {
            return Err(Error::file(
                &origin,
                format!("member declares {} bytes, over the limit", entry.size()),
            ));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        // `take` bounds the read even if the declared size lies.
        (&mut entry)
            .take(MAX_NPZ_MEMBER_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::file(&origin, format!("cannot decompress: {e}")))?;
        out.push((name, parse_npy(&bytes, &origin)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy_with_header(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut h = dict.to_string();
        h.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn write_then_read_round_trips_every_npy_dtype() {
        let dir = tempfile::tempdir().unwrap();
        for d in DType::ALL {
            if d == DType::BF16 {
                continue;
            }
            for shape in [vec![], vec![5], vec![2, 3, 4], vec![0, 3]] {
                let t = Tensor::random(d, &shape, 11);
                let p = dir.path().join("t.npy");
                write_npy(&p, &t).unwrap();
                let bytes = std::fs::read(&p).unwrap();
                // Data starts on a 64-byte boundary, as numpy writes it.
                assert_eq!((bytes.len() - t.size_bytes()) % 64, 0);
                assert_eq!(read_npy(&p).unwrap(), t, "{d} {shape:?}");
            }
        }
    }

    #[test]
    fn reads_header_written_by_numpy() {
        // Byte-for-byte what numpy 2.x writes for np.arange(6, dtype='<i8').reshape(2, 3).
        let mut data = Vec::new();
        for i in 0..6i64 {
            data.extend_from_slice(&i.to_le_bytes());
        }
        let bytes = npy_with_header(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }                                                         ",
            &data,
        );
        let t = parse_npy(&bytes, Path::new("a.npy")).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.dtype(), DType::I64);
        assert_eq!(t.to_f32_vec(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn rejects_fortran_order() {
        let b = npy_with_header(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
            &[0; 4],
        );
        let e = parse_npy(&b, Path::new("f.npy")).unwrap_err().to_string();
        assert!(e.starts_with("f.npy: Fortran-order"), "{e}");
    }

    #[test]
    fn rejects_big_endian() {
        let b = npy_with_header(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
        );
        let e = parse_npy(&b, Path::new("be.npy")).unwrap_err().to_string();
        assert!(e.starts_with("be.npy: big-endian"), "{e}");
    }

    #[test]
    fn rejects_unknown_dtype_naming_the_file() {
        for descr in ["<c8", "|O", "<U5", "<M8[s]"] {
            let b = npy_with_header(
                &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}"),
                &[0; 8],
            );
            let e = parse_npy(&b, Path::new("odd.npy")).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("odd.npy: unsupported .npy element type '{descr}'")),
                "{e}"
            );
        }
        let b = npy_with_header(
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
        );
        let e = parse_npy(&b, Path::new("rec.npy")).unwrap_err().to_string();
        assert!(e.contains("'descr'") || e.contains("structured"), "{e}");
    }

    #[test]
    fn rejects_truncated_and_oversized_data_before_allocating() {
        let b = npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
            &[0; 12],
        );
        let e = parse_npy(&b, Path::new("t.npy")).unwrap_err().to_string();
        assert!(
            e.contains("truncated") && e.contains("needs 16 bytes"),
            "{e}"
        );
        // A header claiming an absurd shape must fail on the size check, not on allocation.
        let b = npy_with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 100000000000), }",
            &[0; 8],
        );
        let e = parse_npy(&b, Path::new("huge.npy"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large"), "{e}");
        let b = npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8],
        );
        let e = parse_npy(&b, Path::new("t.npy")).unwrap_err().to_string();
        assert!(e.contains("trailing"), "{e}");
    }

    #[test]
    fn rejects_garbage_and_empty() {
        let e = parse_npy(b"", Path::new("e.npy")).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = parse_npy(b"hello world, not numpy", Path::new("g.npy"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad magic"), "{e}");
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[1, 0, 200, 0, b'{']);
        let e = parse_npy(&b, Path::new("h.npy")).unwrap_err().to_string();
        assert!(e.contains("truncated .npy header"), "{e}");
        let b = npy_with_header("{'descr': '<f4', 'shape': (1,) }", &[0; 4]);
        let e = parse_npy(&b, Path::new("m.npy")).unwrap_err().to_string();
        assert!(e.contains("no 'fortran_order'"), "{e}");
    }

    #[test]
    fn bfloat16_cannot_be_written_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.npy");
        let t = Tensor::random(DType::BF16, &[2], 0);
        let e = write_npy(&p, &t).unwrap_err().to_string();
        assert!(e.contains("bfloat16"), "{e}");
        assert!(!p.exists());
    }

    #[test]
    fn reads_npz_members_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npz");
        let a = Tensor::random(DType::F32, &[2, 2], 1);
        let b = Tensor::random(DType::I64, &[3], 2);
        let f = std::fs::File::create(&p).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        use std::io::Write;
        z.start_file("images.npy", opts).unwrap();
        z.write_all(&to_npy_bytes(&a).unwrap()).unwrap();
        z.start_file("lengths.npy", opts).unwrap();
        z.write_all(&to_npy_bytes(&b).unwrap()).unwrap();
        z.finish().unwrap();
        let got = read_npz(&p).unwrap();
        assert_eq!(got, vec![("images".into(), a), ("lengths".into(), b)]);
    }

    #[test]
    fn rejects_bad_npz_naming_the_member() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npz");
        std::fs::write(&p, b"not a zip").unwrap();
        let e = read_npz(&p).unwrap_err().to_string();
        assert!(e.contains("bad.npz") && e.contains("not a readable"), "{e}");
        let f = std::fs::File::create(&p).unwrap();
        let mut z = zip::ZipWriter::new(f);
        use std::io::Write;
        z.start_file("x.npy", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"\x93NUMPYjunk").unwrap();
        z.finish().unwrap();
        let e = read_npz(&p).unwrap_err().to_string();
        assert!(e.contains("bad.npz[x.npy]"), "{e}");
    }
}
