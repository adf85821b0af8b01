//! Map stream framing (control.md §4.3): each MapResponse is JSON, compressed
//! as one self-contained zstd frame when the client asked for `zstd`, and
//! prefixed with its length as a **little-endian** u32 (the only little-endian
//! length in the protocol).

use std::cell::RefCell;

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

thread_local! {
    /// One zstd context per thread, reused: creating one per frame (what
    /// `zstd::bulk::compress` does) was the server's largest single cost in
    /// the enrollment bench. Each frame is still self-contained.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

fn compress(json: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        let compressor = match c.as_mut() {
            Some(compressor) => compressor,
            None => c.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        compressor.compress(json)
    })
}

pub fn encode(resp: &MapResponse, compression: Compression) -> std::io::Result<Bytes> {
    let json = serde_json::to_vec(resp).map_err(std::io::Error::other)?;
    let body = match compression {
        Compression::None => json,
        Compression::Zstd => compress(&json)?,
    };
    let len = u32::try_from(body.len())
        .map_err(|_| std::io::Error::other("map response larger than 4 GiB"))?;
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_u32_le(len);
    out.put_slice(&body);
    Ok(out.freeze())
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

    #[test]
    fn uncompressed_frame_is_plain_json() {
        let f = encode(&MapResponse::keep_alive(), Compression::None).unwrap();
        assert_eq!(&f[..4], &18u32.to_le_bytes());
        assert_eq!(&f[4..], br#"{"KeepAlive":true}"#);
    }
}
