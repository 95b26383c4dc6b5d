//! The exposition of many accounts, kept as parts so that publishing one account's poll costs
//! what that account costs, not what all accounts cost.
//!
//! Families must stay contiguous (each `# HELP`/`# TYPE` once, its samples under it), so an
//! account's samples cannot be one contiguous block of the exposition: they are one slice per
//! family. The accounts are cut into groups of [`GROUP`] consecutive slots; a *unit* is one
//! family's samples of one group. The served body is, family after family, the family's header
//! and then its units in order, which is byte for byte what one whole-registry encode writes.
//!
//! Publishing an account re-encodes that account alone, rebuilds the units of its group (a copy
//! of [`GROUP`] accounts' bytes, which costs little beside compressing) and compresses again only
//! the pieces whose bytes changed.
//!
//! gzip: the body is one gzip member whose deflate stream is the concatenation of independently
//! compressed segments, one per header and per *piece* (a unit is cut into pieces of [`PIECE`]
//! slots), each ended by a sync flush (so it ends on a byte boundary and is not final), then a
//! final empty block. A piece is compressed with the piece before it in the same family (or the
//! family's header) as preset dictionary: those bytes are exactly what precedes it in the body,
//! so back-references into them are valid, and the accounts' near-identical lines compress
//! almost as well as one whole stream would. When a piece changes, the piece after it is
//! compressed again, since its dictionary changed. The CRC-32 of the whole is combined from the
//! pieces' own CRCs, through a cached CRC per unit and per family, so that only what changed is
//! combined again.
//!
//! Compressing is what a publish mostly costs (deflate runs at ~100 MB/s, a copy at GB/s), so
//! the compressed pieces are smaller than the plain units: the plain body stays a few hundred
//! chunks (thousands of small ones served a 12 MB body at tens of requests per second), and a
//! publish compresses two pieces of [`PIECE`] accounts per changed family. Pieces rather than
//! single accounts: one segment per account and family costs ~15 bytes of flush and block
//! overhead, which at 1,000 accounts is half the compressed size again (zlib level 6 on a
//! 1,000-account exposition: 611 KB with one account per segment, 434 KB with 8, 402 KB with
//! 32, 405 KB as one whole stream).

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress};

use super::body::Chunks;
use super::collector::{FAMILIES, family_index};

/// Consecutive slots (accounts) per unit. Larger units compress better and make fewer, larger
/// chunks for the plain body (each chunk is a frame handed to the connection: thousands of
/// small ones served a 12 MB body at tens of requests per second); smaller units make a publish
/// copy and compress less. At 64, a publish copies and compresses the changed families of 64
/// accounts (a few tens of KB when the users did not change) and 1,000 accounts make ~350 chunks.
pub(super) const GROUP: usize = 64;

/// Consecutive slots per compressed piece (a divisor of [`GROUP`]).
pub(super) const PIECE: usize = 16;
const _: () = assert!(GROUP.is_multiple_of(PIECE));

/// The window of deflate: a dictionary longer than this is useless.
const WINDOW: usize = 32 * 1024;

/// Fixed gzip header: no name, no mtime (the bytes depend only on the content), unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A final, empty, fixed-Huffman deflate block: ends the stream after the sync-flushed segments.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// A run of uncompressed bytes with its deflate segment and CRC-32.
#[derive(Debug, Clone, Default)]
struct Segment {
    plain: Bytes,
    deflated: Bytes,
    crc: u32,
}

/// The CRC-32 and length of a run of bytes, which combine into those of a longer run.
#[derive(Debug, Clone, Copy, Default)]
struct Crc {
    crc: u32,
    len: u64,
}

impl Crc {
    fn of(segment: &Segment) -> Crc {
        Crc { crc: segment.crc, len: segment.plain.len() as u64 }
    }

    fn then(self, next: Crc) -> Crc {
        let mut hasher = crc32fast::Hasher::new_with_initial_len(self.crc, self.len);
        hasher.combine(&crc32fast::Hasher::new_with_initial_len(next.crc, next.len));
        Crc { crc: hasher.clone().finalize(), len: self.len + next.len }
    }
}

/// One compressed piece of a unit. Its plain bytes are not kept here: a slice of the unit's
/// would keep the unit's previous buffer alive after an update for as long as this piece is not
/// compressed again (measured: peak RSS 58 → 102 MiB at 1,000 accounts).
#[derive(Debug, Clone, Default)]
struct Piece {
    deflated: Bytes,
    crc: Crc,
}

/// One family's samples of one group of slots: one plain chunk, compressed as pieces.
#[derive(Debug, Clone, Default)]
struct Unit {
    plain: Bytes,
    /// Where each slot's samples end in `plain` (slots of the group in order).
    ends: Vec<usize>,
    /// The unit's pieces of [`PIECE`] slots.
    pieces: Vec<Piece>,
    /// Of the pieces together.
    crc: Crc,
}

impl Unit {
    fn new(slots: usize) -> Unit {
        Unit { ends: vec![0; slots], pieces: vec![Piece::default(); slots.div_ceil(PIECE)], ..Unit::default() }
    }

    /// The plain bytes of piece `p`.
    fn piece_plain(&self, p: usize) -> Bytes {
        let start = if p == 0 { 0 } else { self.ends[p * PIECE - 1] };
        let end = self.ends[((p + 1) * PIECE).min(self.ends.len()) - 1];
        self.plain.slice(start..end)
    }
}

/// The body of one format: plain chunks (served without copying) and the gzip member.
#[derive(Debug, Clone)]
pub(super) struct Assembled {
    pub plain: Chunks,
    pub gzip: Bytes,
}

/// The parts of one exposition format (text or OpenMetrics).
#[derive(Debug)]
pub(super) struct Assembler {
    slots: usize,
    /// `# HELP`/`# TYPE`/`# UNIT` lines per family, once seen (they never change).
    headers: Vec<Option<Segment>>,
    /// `[family][group]`.
    units: Vec<Vec<Unit>>,
    /// `[family][piece]` (pieces of every group in order): changed since the last flush, or
    /// the piece before it did, so its compressed segment is stale.
    dirty: Vec<Vec<bool>>,
    /// `[family]`: of the header and every unit, while no piece of the family is dirty.
    family_crc: Vec<Crc>,
    /// Written after the families (OpenMetrics' `# EOF`).
    trailer: Option<Segment>,
    compressor: Compress,
}

impl Assembler {
    /// `slots` parts, all empty; `trailer` ends the body (e.g. `# EOF\n`).
    pub fn new(slots: usize, trailer: Option<&'static str>) -> Self {
        let groups = slots.div_ceil(GROUP).max(1);
        let unit = |g: usize| Unit::new((slots - g * GROUP).min(GROUP));
        let mut compressor = Compress::new(Compression::default(), false);
        let trailer = trailer.map(|t| compress(&mut compressor, Bytes::from_static(t.as_bytes()), &[]));
        Assembler {
            slots,
            headers: vec![None; FAMILIES.len()],
            units: (0..FAMILIES.len()).map(|_| (0..groups).map(unit).collect()).collect(),
            dirty: vec![vec![false; slots.div_ceil(PIECE)]; FAMILIES.len()],
            family_crc: vec![Crc::default(); FAMILIES.len()],
            trailer,
            compressor,
        }
    }

    /// Replaces the part of `slot` with `encoded`: what an encoder wrote for that slot alone
    /// (its own headers included, which are checked and dropped). The changed units are only
    /// marked: [`Assembler::flush`] compresses each of them once, however many slots changed.
    pub fn update(&mut self, slot: usize, encoded: &str) {
        assert!(slot < self.slots, "slot {slot} of {}", self.slots);
        let samples = self.split(encoded);
        let (group, within) = (slot / GROUP, slot % GROUP);
        for (family, new) in samples.into_iter().enumerate() {
            let unit = &mut self.units[family][group];
            let start = if within == 0 { 0 } else { unit.ends[within - 1] };
            let old = &unit.plain[start..unit.ends[within]];
            if old == new.as_bytes() {
                continue;
            }
            let delta = new.len() as isize - old.len() as isize;
            let mut plain = BytesMut::with_capacity((unit.plain.len() as isize + delta) as usize);
            plain.extend_from_slice(&unit.plain[..start]);
            plain.extend_from_slice(new.as_bytes());
            plain.extend_from_slice(&unit.plain[unit.ends[within]..]);
            unit.plain = plain.freeze();
            unit.ends[within..].iter_mut().for_each(|e| *e = (*e as isize + delta) as usize);
            // The piece of the slot, and the next one, which was compressed against the bytes
            // that just changed.
            let piece = slot / PIECE;
            let dirty = &mut self.dirty[family];
            dirty[piece] = true;
            if piece + 1 < dirty.len() {
                dirty[piece + 1] = true;
            }
        }
    }

    /// Compresses every piece changed since the last flush, each against the bytes before it,
    /// and combines the CRCs of what changed.
    pub fn flush(&mut self) {
        let per_group = GROUP / PIECE;
        for family in 0..self.units.len() {
            if !self.dirty[family].contains(&true) {
                continue;
            }
            for group in 0..self.units[family].len() {
                let pieces = group * per_group..(group * per_group + self.units[family][group].pieces.len());
                if !self.dirty[family][pieces.clone()].contains(&true) {
                    continue;
                }
                for piece in pieces {
                    if !std::mem::take(&mut self.dirty[family][piece]) {
                        continue;
                    }
                    let dictionary = self.dictionary(family, piece);
                    let unit = &mut self.units[family][group];
                    let p = piece - group * per_group;
                    let segment = compress(&mut self.compressor, unit.piece_plain(p), &dictionary);
                    unit.pieces[p] = Piece { crc: Crc::of(&segment), deflated: segment.deflated };
                }
                let unit = &mut self.units[family][group];
                unit.crc = unit.pieces.iter().fold(Crc::default(), |crc, piece| crc.then(piece.crc));
            }
            let header = self.headers[family].as_ref().map(Crc::of).unwrap_or_default();
            self.family_crc[family] = self.units[family].iter().fold(header, |crc, unit| crc.then(unit.crc));
        }
    }

    /// The bytes that precede piece `piece` (counted over every group) of `family` in the body.
    fn dictionary(&self, family: usize, piece: usize) -> Bytes {
        let per_group = GROUP / PIECE;
        match piece {
            0 => self.headers[family].as_ref().map(|h| h.plain.clone()).unwrap_or_default(),
            p => self.units[family][(p - 1) / per_group].piece_plain((p - 1) % per_group),
        }
    }

    /// Cuts one slot's encoding into its samples per family, learning the headers.
    fn split<'a>(&mut self, encoded: &'a str) -> Vec<&'a str> {
        let mut samples = vec![""; FAMILIES.len()];
        let mut rest = encoded;
        while let Some(help) = rest.strip_prefix("# HELP ") {
            let name = help.split(' ').next().unwrap_or_default();
            let family = family_index(name).unwrap_or_else(|| panic!("family {name:?} is not in FAMILIES"));
            // The header is the lines starting with '#'; the samples run to the next header. An
            // encoder writes no family without samples, so a header is always followed by some.
            let mut header_end = 0;
            while rest[header_end..].starts_with('#') {
                header_end += rest[header_end..].find('\n').map_or(rest.len() - header_end, |i| i + 1);
            }
            let samples_end = rest[header_end..].find("\n#").map_or(rest.len(), |i| header_end + i + 1);
            let header = &rest[..header_end];
            match &self.headers[family] {
                Some(known) => debug_assert_eq!(known.plain, header.as_bytes(), "the header of a family changed"),
                None => {
                    let plain = Bytes::copy_from_slice(header.as_bytes());
                    self.headers[family] = Some(compress(&mut self.compressor, plain, &[]));
                }
            }
            samples[family] = &rest[header_end..samples_end];
            rest = &rest[samples_end..];
        }
        debug_assert!(rest.is_empty() || rest == "# EOF\n", "unexpected encoding: {rest:?}");
        samples
    }

    /// The whole body as it stands (after [`Assembler::flush`]): a list of references for the
    /// plain body, one copy of the compressed segments for the gzip body.
    pub fn assemble(&self) -> Assembled {
        let mut plain = Vec::new();
        let mut deflated: Vec<&Bytes> = Vec::new();
        let mut crc = Crc::default();
        for (family, units) in self.units.iter().enumerate() {
            if units.iter().all(|u| u.plain.is_empty()) {
                continue;
            }
            let header = self.headers[family].as_ref().expect("a family with samples has a header");
            plain.push(header.plain.clone());
            deflated.push(&header.deflated);
            for unit in units.iter().filter(|u| !u.plain.is_empty()) {
                plain.push(unit.plain.clone());
                deflated.extend(unit.pieces.iter().map(|p| &p.deflated));
            }
            crc = crc.then(self.family_crc[family]);
        }
        if let Some(trailer) = &self.trailer {
            plain.push(trailer.plain.clone());
            deflated.push(&trailer.deflated);
            crc = crc.then(Crc::of(trailer));
        }
        let deflated_len: usize = deflated.iter().map(|d| d.len()).sum();
        let mut gzip = Vec::with_capacity(GZIP_HEADER.len() + deflated_len + FINAL_BLOCK.len() + 8);
        gzip.extend_from_slice(&GZIP_HEADER);
        deflated.iter().for_each(|d| gzip.extend_from_slice(d));
        gzip.extend_from_slice(&FINAL_BLOCK);
        gzip.extend_from_slice(&crc.crc.to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952).
        gzip.extend_from_slice(&(crc.len as u32).to_le_bytes());
        Assembled { plain: Chunks::new(plain), gzip: Bytes::from(gzip) }
    }
}

/// Compresses `plain` as a non-final, byte-aligned run of deflate blocks that may refer back
/// into `dictionary` (the bytes that precede it in the body).
fn compress(compressor: &mut Compress, plain: Bytes, dictionary: &[u8]) -> Segment {
    let crc = crc32fast::hash(&plain);
    if plain.is_empty() {
        return Segment { plain, deflated: Bytes::new(), crc };
    }
    compressor.reset();
    if !dictionary.is_empty() {
        let tail = &dictionary[dictionary.len().saturating_sub(WINDOW)..];
        compressor.set_dictionary(tail).expect("a raw deflate stream accepts a dictionary before any input");
    }
    let mut out = Vec::with_capacity(plain.len() / 8 + 64);
    let start = compressor.total_in();
    loop {
        let consumed = (compressor.total_in() - start) as usize;
        compressor
            .compress_vec(&plain[consumed..], &mut out, FlushCompress::Sync)
            .expect("deflate into memory does not fail");
        // Done when all input is in and the flush did not stop for want of room.
        if (compressor.total_in() - start) as usize == plain.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(256));
    }
    Segment { plain, deflated: Bytes::from(out), crc }
}
