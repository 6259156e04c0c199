//! Content of each kind: Quantum ESPRESSO-like text, JSON attribute dictionaries, `.npy` float
//! arrays and random bytes, rendered from an object's description to exactly its size.

use super::{Desc, Kind, Rng};

pub(super) fn render(d: &Desc, buf: &mut Vec<u8>) {
    buf.clear();
    let size = usize::try_from(d.size).unwrap_or(usize::MAX);
    if size == 0 {
        return;
    }
    buf.reserve(size + 4096);
    let mut rng = Rng::new(d.content_seed);
    match d.kind {
        Kind::Text => text(&mut rng, buf, size),
        Kind::Json => json(&mut rng, buf, size),
        Kind::Numpy => numpy(&mut rng, buf, size),
        Kind::Random => {
            buf.resize(size, 0);
            rng.fill(buf);
        }
    }
    buf.truncate(size);
}

/// Append `n` decimal digits of a random number below `10^n` (with leading zeros).
fn digits(rng: &mut Rng, buf: &mut Vec<u8>, n: usize) {
    let mut r = rng.next_u64();
    for k in 0..n {
        if k > 0 && k % 18 == 0 {
            r = rng.next_u64();
        }
        buf.push(b'0' + (r % 10) as u8);
        r /= 10;
    }
}

/// Append a fixed-point number with up to `int` integer digits and `frac` decimals, right-aligned
/// in `width` characters (like Fortran `F` formats).
fn fixed(rng: &mut Rng, buf: &mut Vec<u8>, width: usize, int: u32, frac: usize, signed: bool) {
    let r = rng.next_u64();
    let neg = signed && r & 1 == 1;
    let ip = (r >> 1) % 10u64.pow(int);
    let mut tmp = [0u8; 24];
    let mut p = tmp.len();
    let mut v = ip;
    loop {
        p -= 1;
        tmp[p] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        p -= 1;
        tmp[p] = b'-';
    }
    let len = tmp.len() - p + 1 + frac;
    for _ in len..width {
        buf.push(b' ');
    }
    buf.extend_from_slice(&tmp[p..]);
    buf.push(b'.');
    digits(rng, buf, frac);
}

fn int(rng: &mut Rng, buf: &mut Vec<u8>, width: usize, max: u64) {
    let s = rng.below(max).to_string();
    for _ in s.len()..width {
        buf.push(b' ');
    }
    buf.extend_from_slice(s.as_bytes());
}

const ELEMENTS: [&str; 12] = [
    "Si", "O", "H", "C", "N", "Fe", "Ba", "Ti", "Al", "Cu", "Li", "Zn",
];

fn text(rng: &mut Rng, buf: &mut Vec<u8>, size: usize) {
    let mut iteration = 1;
    while buf.len() < size {
        let pick = rng.below(100);
        match pick {
            0..45 => {
                // Eigenvalues block.
                buf.extend_from_slice(b"  ");
                for _ in 0..8 {
                    fixed(rng, buf, 9, 2, 4, true);
                }
                buf.push(b'\n');
            }
            45..52 => {
                buf.extend_from_slice(b"\n          k =");
                for _ in 0..3 {
                    fixed(rng, buf, 7, 1, 4, true);
                }
                buf.extend_from_slice(b" (");
                int(rng, buf, 6, 99_999);
                buf.extend_from_slice(b" PWs)   bands (ev):\n\n");
            }
            52..62 => {
                buf.extend_from_slice(b"     iteration #");
                int(rng, buf, 3, iteration);
                iteration += 1;
                buf.extend_from_slice(b"     ecut=");
                fixed(rng, buf, 9, 3, 2, false);
                buf.extend_from_slice(b" Ry     beta= 0.70\n");
                buf.extend_from_slice(b"     Davidson diagonalization with overlap\n");
                buf.extend_from_slice(b"     ethr =  ");
                digits(rng, buf, 1);
                buf.push(b'.');
                digits(rng, buf, 2);
                buf.extend_from_slice(b"E-0");
                int(rng, buf, 1, 10);
                buf.extend_from_slice(b",  avg # of iterations =");
                fixed(rng, buf, 5, 1, 1, false);
                buf.push(b'\n');
            }
            62..72 => {
                buf.extend_from_slice(b"     total energy              =");
                fixed(rng, buf, 18, 4, 8, true);
                buf.extend_from_slice(b" Ry\n     estimated scf accuracy    <");
                fixed(rng, buf, 18, 1, 8, false);
                buf.extend_from_slice(b" Ry\n\n");
            }
            72..90 => {
                buf.extend_from_slice(b"     atom ");
                int(rng, buf, 4, 256);
                buf.extend_from_slice(b" type ");
                int(rng, buf, 2, 8);
                buf.extend_from_slice(b"   force = ");
                for _ in 0..3 {
                    fixed(rng, buf, 14, 1, 8, true);
                }
                buf.push(b'\n');
            }
            90..95 => {
                let el = ELEMENTS[rng.below(ELEMENTS.len() as u64) as usize];
                buf.extend_from_slice(el.as_bytes());
                for _ in el.len()..6 {
                    buf.push(b' ');
                }
                for _ in 0..3 {
                    fixed(rng, buf, 16, 2, 10, true);
                }
                buf.push(b'\n');
            }
            _ => {
                buf.extend_from_slice(
                    b"\n     Writing output data file ./out/aiida.save/\n     \
                      init_run     :      0.42s CPU      0.45s WALL (       1 calls)\n",
                );
            }
        }
    }
}

fn json_value(rng: &mut Rng, buf: &mut Vec<u8>, depth: u32) {
    match rng.below(if depth > 1 { 5 } else { 8 }) {
        0 | 1 => fixed(rng, buf, 0, 3, 8, true),
        2 => int(rng, buf, 0, 100_000),
        3 => {
            buf.push(b'"');
            buf.extend_from_slice(ELEMENTS[rng.below(ELEMENTS.len() as u64) as usize].as_bytes());
            buf.push(b'"');
        }
        4 => buf.extend_from_slice(if rng.below(2) == 0 { b"true" } else { b"null" }),
        5 | 6 => {
            buf.push(b'[');
            let n = rng.range(1, 24);
            for k in 0..n {
                if k > 0 {
                    buf.extend_from_slice(b", ");
                }
                json_value(rng, buf, depth + 1);
            }
            buf.push(b']');
        }
        _ => {
            buf.push(b'{');
            let n = rng.range(1, 6);
            for k in 0..n {
                if k > 0 {
                    buf.extend_from_slice(b", ");
                }
                json_key(rng, buf);
                json_value(rng, buf, depth + 1);
            }
            buf.push(b'}');
        }
    }
}

const KEYS: [&str; 16] = [
    "energy",
    "energy_units",
    "forces",
    "cell",
    "kinds",
    "sites",
    "symbols",
    "array|positions",
    "number_of_bands",
    "fermi_energy",
    "wall_time_seconds",
    "creation_parser_version",
    "lattice_symmetries",
    "occupations",
    "parser_warnings",
    "total_magnetization",
];

fn json_key(rng: &mut Rng, buf: &mut Vec<u8>) {
    buf.push(b'"');
    buf.extend_from_slice(KEYS[rng.below(KEYS.len() as u64) as usize].as_bytes());
    buf.push(b'_');
    int(rng, buf, 0, 1000);
    buf.extend_from_slice(b"\": ");
}

fn json(rng: &mut Rng, buf: &mut Vec<u8>, size: usize) {
    buf.extend_from_slice(b"{\"uuid\": \"");
    let mut uuid = [0u8; 16];
    rng.fill(&mut uuid);
    for b in uuid {
        buf.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    buf.extend_from_slice(b"\", \"attributes\": {");
    // Closing is "}}": entries are added while they fit, then spaces pad to the exact size.
    if buf.len() + 2 > size {
        buf.clear();
        let n = size.saturating_sub(9);
        buf.extend_from_slice(b"{\"a\": \"");
        for _ in 0..n {
            buf.push(b'x');
        }
        buf.extend_from_slice(b"\"}");
        return;
    }
    let mut scratch = Vec::new();
    let mut first = true;
    let mut misses = 0;
    while misses < 4 {
        scratch.clear();
        if !first {
            scratch.extend_from_slice(b", ");
        }
        json_key(rng, &mut scratch);
        if misses == 0 {
            json_value(rng, &mut scratch, 0);
        } else {
            fixed(rng, &mut scratch, 0, 2, 4, false);
        }
        if buf.len() + scratch.len() + 2 <= size {
            buf.extend_from_slice(&scratch);
            first = false;
        } else {
            misses += 1;
        }
    }
    while buf.len() + 2 < size {
        buf.push(b' ');
    }
    buf.extend_from_slice(b"}}");
}

fn numpy(rng: &mut Rng, buf: &mut Vec<u8>, size: usize) {
    // A version 1.0 `.npy` header for a 1-d little-endian float64 array, padded to 64 bytes.
    let count = size.saturating_sub(128) / 8 + 1;
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({count},), }}");
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let header_len = total - 10;
    buf.extend_from_slice(b"\x93NUMPY\x01\x00");
    buf.extend_from_slice(&(header_len as u16).to_le_bytes());
    buf.extend_from_slice(dict.as_bytes());
    while buf.len() < total - 1 {
        buf.push(b' ');
    }
    buf.push(b'\n');
    if rng.below(2) == 0 {
        // A smooth quantised series (bands, DOS): few significant bits, very compressible.
        let mut x: i64 = rng.below(1 << 20) as i64 - (1 << 19);
        while buf.len() < size {
            x += rng.below(129) as i64 - 64;
            buf.extend_from_slice(&(x as f64 / 4096.0).to_le_bytes());
        }
    } else {
        // float32-precision values stored as float64 (positions, forces): half the bits are zero.
        while buf.len() < size {
            let m = rng.next_u64();
            let mantissa = (m & 0x7f_ffff) << 29;
            let exp = 1023 - 4 + (m >> 23) % 8;
            let sign = (m >> 40) & 1;
            buf.extend_from_slice(&((sign << 63) | (exp << 52) | mantissa).to_le_bytes());
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Data set on disk
