//! Passthrough of a large deflated entry: its deflate stream is stored as it comes, framed as
//! zlib, while inflating it alongside checks it.

use std::io::{self, BufReader, Read};

use dos_core::ObjectKey;
use dos_core::codec::deflate::{RawInflater, ZLIB_HEADER, adler32};
use dos_core::read::PackRangeReader;
use dos_core::write::{EncodedStream, Rejection};
use sha2::Digest;

use super::entry::EntryProblem;
use crate::zip::{Entry, ZipArchive};

/// The zlib stream of a large deflated entry, produced piece by piece: the header, the entry's
/// raw deflate bytes as read, then the Adler-32 trailer. Inflating alongside computes the key,
/// checks size and CRC-32, and bounds the output by the declared size.
pub(super) struct Passthrough {
    raw: BufReader<PackRangeReader>,
    inflater: RawInflater,
    scratch: Vec<u8>,
    sha: sha2::Sha256,
    crc: crc32fast::Hasher,
    adler: u32,
    expected: u64,
    declared_crc: u32,
    csize: u64,
    state: PassState,
}

#[derive(PartialEq, Eq)]
enum PassState {
    Header,
    Body,
    Done,
}

impl Passthrough {
    pub(super) fn new(z: &ZipArchive, e: &Entry) -> crate::Result<Self> {
        Ok(Self {
            raw: BufReader::with_capacity(1 << 20, z.raw_reader(e)?),
            inflater: RawInflater::new(),
            scratch: vec![0u8; 1 << 20],
            sha: sha2::Sha256::new(),
            crc: crc32fast::Hasher::new(),
            adler: 1,
            expected: e.usize,
            declared_crc: e.crc32,
            csize: e.csize,
            state: PassState::Header,
        })
    }

    /// Inflate `input` completely (for the hash and checks), discarding the output.
    fn inflate(&mut self, mut input: &[u8]) -> io::Result<()> {
        while !input.is_empty() {
            let step = self
                .inflater
                .step(input, &mut self.scratch, false)
                .map_err(|_| invalid(EntryProblem::CorruptDeflate))?;
            let out = &self.scratch[..step.produced];
            self.sha.update(out);
            self.crc.update(out);
            self.adler = adler32(self.adler, out);
            if self.inflater.total_out() > self.expected {
                return Err(invalid(EntryProblem::TooLong {
                    declared: self.expected,
                }));
            }
            input = &input[step.consumed..];
            if step.ended {
                if !input.is_empty() || self.inflater.total_in() != self.csize {
                    return Err(invalid(EntryProblem::TrailingBytes));
                }
                return Ok(());
            }
            if step.consumed == 0 && step.produced == 0 {
                return Ok(());
            }
        }
        Ok(())
    }
}

impl EncodedStream for Passthrough {
    fn compressed(&self) -> bool {
        true
    }

    fn read_stored(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.state {
            PassState::Header => {
                buf[..2].copy_from_slice(&ZLIB_HEADER);
                self.state = PassState::Body;
                Ok(2)
            }
            PassState::Body => {
                let n = self.raw.read(buf)?;
                if n == 0 {
                    // Flush the inflater: everything must be out now.
                    let mut probe = [0u8; 1];
                    let step = self
                        .inflater
                        .step(&[], &mut probe, true)
                        .map_err(|_| invalid(EntryProblem::CorruptDeflate))?;
                    if !step.ended {
                        return Err(invalid(EntryProblem::Truncated {
                            produced: self.inflater.total_out(),
                            declared: self.expected,
                        }));
                    }
                    let trailer = self.adler.to_be_bytes();
                    buf[..4].copy_from_slice(&trailer);
                    self.state = PassState::Done;
                    return Ok(4);
                }
                self.inflate(&buf[..n])?;
                Ok(n)
            }
            PassState::Done => Ok(0),
        }
    }

    fn finish(self: Box<Self>) -> std::result::Result<(ObjectKey, u64), Rejection> {
        let produced = self.inflater.total_out();
        if self.state != PassState::Done {
            return Err(Box::new(EntryProblem::Truncated {
                produced,
                declared: self.expected,
            }));
        }
        if produced != self.expected {
            return Err(Box::new(EntryProblem::WrongSize {
                produced,
                declared: self.expected,
            }));
        }
        let computed = self.crc.finalize();
        if computed != self.declared_crc {
            return Err(Box::new(EntryProblem::Crc {
                computed,
                declared: self.declared_crc,
            }));
        }
        Ok((ObjectKey::sha256(self.sha.finalize().into()), produced))
    }
}

/// An entry's problem as the error of a read of its stream.
fn invalid(problem: EntryProblem) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, problem)
}
