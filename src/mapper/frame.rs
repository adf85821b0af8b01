//! Map stream framing (control.md §4.3): each MapResponse is JSON, compressed
//! as one self-contained zstd frame when the client asked for `zstd`, and
//! prefixed with its length as a **little-endian** u32 (the only little-endian
//! length in the protocol).

use std::cell::RefCell;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};

use crate::tailcfg::MapResponse;

/// How the client wants frames compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
}

impl Compression {
    pub fn from_request(compress: Option<&str>) -> Self {
        match compress {
            Some("zstd") => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// zstd level 1 is the "fastest" setting reference servers use: map frames
/// are built per session, so CPU matters more than a few bytes.
const ZSTD_LEVEL: i32 = 1;

/// Scratch buffers larger than this are dropped after use rather than
/// kept for the next frame: a full map of 1,000 peers is about 1 MiB of
/// JSON; larger ones are rare and should not pin memory per thread.
const SCRATCH_MAX: usize = 2 * 1024 * 1024;

/// One zstd context per thread, reused, and the buffer it compresses into.
/// Creating a context per frame (what `zstd::bulk::compress` does) was the
/// server's largest single cost in the enrollment bench. Each frame is
/// still self-contained.
struct Zstd {
    ctx: zstd::bulk::Compressor<'static>,
    out: Vec<u8>,
}

thread_local! {
    static ZSTD: RefCell<Option<Zstd>> = const { RefCell::new(None) };
    /// The JSON of the frame being encoded. Serialising each map into a
    /// fresh `Vec` (grown by doubling) and compressing into another made
    /// the kernel clear new pages for every full map (page clearing was
    /// 8.8 % of server samples at 1,000 nodes in the enrollment bench,
    /// 5.6 % with these buffers reused).
    static JSON: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `json` compressed as one zstd frame, behind its length.
fn compress_framed(json: &[u8]) -> std::io::Result<Bytes> {
    ZSTD.with(|z| {
        let mut z = z.borrow_mut();
        let z = match z.as_mut() {
            Some(z) => z,
            None => z.insert(Zstd {
                ctx: zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
                out: Vec::new(),
            }),
        };
        z.out.clear();
        z.out.reserve(zstd::zstd_safe::compress_bound(json.len()));
        z.ctx.compress_to_buffer(json, &mut z.out)?;
        let frame = framed(&z.out);
        if z.out.capacity() > SCRATCH_MAX {
            z.out = Vec::new();
        }
        frame
    })
}

pub fn encode(resp: &MapResponse, compression: Compression) -> std::io::Result<Bytes> {
    // Taken out of the thread's slot while in use, so nothing below can
    // find it borrowed.
    let mut json = JSON.with(RefCell::take);
    json.clear();
    serde_json::to_writer(&mut json, resp).map_err(std::io::Error::other)?;
    let frame = match compression {
        Compression::None => framed(&json),
        Compression::Zstd => RECENT.get_or_compress(&json),
    };
    if json.capacity() <= SCRATCH_MAX {
        JSON.with(|slot| slot.replace(json));
    }
    frame
}

/// `body` behind its little-endian length.
fn framed(body: &[u8]) -> std::io::Result<Bytes> {
    let len = u32::try_from(body.len())
        .map_err(|_| std::io::Error::other("map response larger than 4 GiB"))?;
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_u32_le(len);
    out.put_slice(body);
    Ok(out.freeze())
}

/// Slots of [`RECENT`].
const SLOTS: usize = 64;
/// Larger JSON is compressed and not kept: full maps are one node's own,
/// and this bounds what the slots hold to 2 MiB. A delta with a few dozen
/// new peers fits.
const KEEP_MAX: usize = 16 * 1024;

/// The zstd frames compressed last, by their JSON. A join reaches every
/// stream that sees the newcomer in the same batch, and where it changes
/// no stream's filter (no policy, tag-based rules) they are all sent the
/// same delta: it is compressed once and the frame's bytes are shared.
static RECENT: Recent = Recent::new();

struct Recent {
    /// Direct-mapped by a hash of the JSON, compared in full on a hit.
    slots: [Mutex<Option<Arc<Kept>>>; SLOTS],
}

struct Kept {
    json: Vec<u8>,
    frame: Bytes,
}

impl Recent {
    const fn new() -> Recent {
        Recent {
            slots: [const { Mutex::new(None) }; SLOTS],
        }
    }

    /// The zstd frame of `json`: one compressed earlier, or a new one.
    fn get_or_compress(&self, json: &[u8]) -> std::io::Result<Bytes> {
        if json.len() > KEEP_MAX {
            return compress_framed(json);
        }
        let mut h = DefaultHasher::new();
        json.hash(&mut h);
        let slot = &self.slots[(h.finish() % SLOTS as u64) as usize];
        let lock = || slot.lock().unwrap_or_else(|e| e.into_inner());
        let kept = lock().clone();
        if let Some(k) = kept.filter(|k| k.json == json) {
            return Ok(k.frame.clone());
        }
        let frame = compress_framed(json)?;
        *lock() = Some(Arc::new(Kept {
            json: json.to_vec(),
            frame: frame.clone(),
        }));
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_frame_has_le_length_and_decodes() {
        let f = encode(&MapResponse::keep_alive(), Compression::Zstd).unwrap();
        let len = u32::from_le_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(len, f.len() - 4);
        // A zstd frame starts with the magic 28 B5 2F FD.
        assert_eq!(&f[4..8], &[0x28, 0xb5, 0x2f, 0xfd]);
        let json = zstd::bulk::decompress(&f[4..], 1 << 20).unwrap();
        assert_eq!(json, br#"{"KeepAlive":true}"#);
        // The reused context still makes self-contained frames.
        let again = encode(&MapResponse::keep_alive(), Compression::Zstd).unwrap();
        assert_eq!(again, f);
    }

    /// Streams sent the same delta share one compressed frame; a delta
    /// that differs (even in the same slot) gets its own.
    #[test]
    fn the_same_json_is_compressed_once_and_shared() {
        // A cache of its own: other tests encode through the shared one.
        let recent = Recent::new();
        let json = |name: &str| format!(r#"{{"Domain":"{name}"}}"#).into_bytes();
        let a = recent.get_or_compress(&json("team-a")).unwrap();
        let again = recent.get_or_compress(&json("team-a")).unwrap();
        assert_eq!(a.as_ptr(), again.as_ptr(), "compressed again");
        let decoded = |f: &Bytes| zstd::bulk::decompress(&f[4..], 1 << 10).unwrap();
        assert_eq!(decoded(&a), json("team-a"));

        // Every slot holding team-a's frame: a miss must compress anew,
        // never hand out the frame that sits there.
        let kept = recent.slots.iter().find_map(|s| s.lock().unwrap().clone());
        for s in &recent.slots {
            *s.lock().unwrap() = kept.clone();
        }
        let b = recent.get_or_compress(&json("team-b")).unwrap();
        assert_eq!(decoded(&b), json("team-b"));
        assert_eq!(
            u32::from_le_bytes(b[..4].try_into().unwrap()) as usize,
            b.len() - 4
        );
    }

    /// The per-thread buffers are reused: a small frame after a large one
    /// carries nothing of it, compressed or not.
    #[test]
    fn a_frame_after_a_larger_one_holds_only_its_own_json() {
        let large = MapResponse {
            domain: "x".repeat(100_000),
            ..MapResponse::default()
        };
        for compression in [Compression::Zstd, Compression::None] {
            encode(&large, compression).unwrap();
            let f = encode(&MapResponse::keep_alive(), compression).unwrap();
            let len = u32::from_le_bytes(f[..4].try_into().unwrap()) as usize;
            assert_eq!(len, f.len() - 4);
            let json = match compression {
                Compression::Zstd => zstd::bulk::decompress(&f[4..], 1 << 20).unwrap(),
                Compression::None => f[4..].to_vec(),
            };
            assert_eq!(json, br#"{"KeepAlive":true}"#);
        }
    }

    #[test]
    fn uncompressed_frame_is_plain_json() {
        let f = encode(&MapResponse::keep_alive(), Compression::None).unwrap();
        assert_eq!(&f[..4], &18u32.to_le_bytes());
        assert_eq!(&f[4..], br#"{"KeepAlive":true}"#);
    }
}
