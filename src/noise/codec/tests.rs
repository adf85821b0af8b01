//! Tests for [`super`]: nonce encoding, frame limits, truncation, poisoning.

use super::*;
use chacha20poly1305::aead::Aead;

fn key(b: u8) -> [u8; 32] {
    [b; 32]
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn sealed(sealer: &mut Sealer, pt: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    sealer.seal(pt, &mut out).unwrap();
    out
}

#[test]
fn nonce_is_big_endian_after_four_zero_bytes() {
    assert_eq!(nonce(0), [0; 12]);
    assert_eq!(nonce(1), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(
        nonce(0x0102_0304_0506_0708),
        [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    );
}

#[test]
fn known_answer_records_from_independent_implementation() {
    // Keys and records from the Python reference used in handshake tests
    // (client→server key k1, server→client key k2).
    let c2s = hex32("d9811dd6a320dc8484bb37ea989640c99f99a8582f50b829e347bd75da510717");
    let s2c = hex32("8561e3fd4551ed82ee22220925e41e923d64b1c04b856f8ec1eaa544a511a427");
    let mut tx = Sealer::new(&c2s);
    assert_eq!(
        hex::encode(sealed(&mut tx, b"hello")),
        "0400153eb7c70f517b459ce906fe831d0a1cc7d9d8bf3725"
    );
    assert_eq!(
        hex::encode(sealed(&mut tx, b"hello")),
        "04001506247a9f9b8d4f68a2fe2e148d0b8612cfd0d21146"
    );
    let mut tx2 = Sealer::new(&s2c);
    assert_eq!(
        hex::encode(sealed(&mut tx2, b"world")),
        "0400158e61318d0317e6dc26969582d51ff70119aac792d4"
    );
}

#[test]
fn counter_one_uses_big_endian_not_little_endian() {
    let k = key(9);
    let mut tx = Sealer::new(&k);
    let _ = sealed(&mut tx, b"first");
    let rec1 = sealed(&mut tx, b"second");
    let ct = &rec1[HEADER_LEN..];

    let aead = ChaCha20Poly1305::new((&k).into());
    let be = aead
        .encrypt(&Nonce::from(nonce(1)), b"second".as_slice())
        .unwrap();
    let mut le_nonce = [0u8; 12];
    le_nonce[4..].copy_from_slice(&1u64.to_le_bytes());
    let le = aead
        .encrypt(&Nonce::from(le_nonce), b"second".as_slice())
        .unwrap();
    assert_eq!(ct, be.as_slice());
    assert_ne!(ct, le.as_slice());
    assert!(aead.decrypt(&Nonce::from(le_nonce), ct).is_err());
    assert_eq!(aead.decrypt(&Nonce::from(nonce(1)), ct).unwrap(), b"second");
}

#[test]
fn records_round_trip_in_order_including_empty() {
    let k = key(1);
    let mut tx = Sealer::new(&k);
    let mut wire = BytesMut::new();
    tx.seal(b"a", &mut wire).unwrap();
    tx.seal(b"", &mut wire).unwrap();
    tx.seal(b"ccc", &mut wire).unwrap();
    assert_eq!(tx.counter(), 3);
    assert_eq!(wire.len(), 3 * (HEADER_LEN + TAG_LEN) + 4);

    let mut rx = Opener::new(&k);
    assert_eq!(&rx.open(&mut wire).unwrap().unwrap()[..], b"a");
    assert_eq!(&rx.open(&mut wire).unwrap().unwrap()[..], b"");
    assert_eq!(&rx.open(&mut wire).unwrap().unwrap()[..], b"ccc");
    assert!(rx.open(&mut wire).unwrap().is_none());
    assert!(wire.is_empty());
}

#[test]
fn reordered_records_fail_because_counters_differ() {
    let k = key(2);
    let mut tx = Sealer::new(&k);
    let r0 = sealed(&mut tx, b"zero");
    let mut r1 = sealed(&mut tx, b"one");
    let mut rx = Opener::new(&k);
    assert!(matches!(rx.open(&mut r1), Err(Error::RecordAuth)));
    let mut r0 = r0;
    assert!(matches!(rx.open(&mut r0), Err(Error::Poisoned)));
}

#[test]
fn max_plaintext_fits_one_4096_byte_frame_and_one_more_splits() {
    let mut tx = Sealer::new(&key(3));
    let mut out = BytesMut::new();
    tx.seal_chunked(&[7u8; MAX_PLAINTEXT_LEN], &mut out)
        .unwrap();
    assert_eq!(MAX_PLAINTEXT_LEN, 4077);
    assert_eq!(out.len(), 4096);
    assert_eq!(&out[..3], &[4, 0x0f, 0xfd]);
    assert_eq!(tx.counter(), 1);

    let mut out = BytesMut::new();
    tx.seal_chunked(&[7u8; MAX_PLAINTEXT_LEN + 1], &mut out)
        .unwrap();
    assert_eq!(tx.counter(), 3);
    assert_eq!(out.len(), 4096 + HEADER_LEN + 1 + TAG_LEN);

    assert!(matches!(
        tx.seal(&[0u8; MAX_PLAINTEXT_LEN + 1], &mut BytesMut::new()),
        Err(Error::PlaintextTooLarge(4078))
    ));
    let mut none = BytesMut::new();
    tx.seal_chunked(&[], &mut none).unwrap();
    assert!(none.is_empty());
}

#[test]
fn large_chunked_write_round_trips() {
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut tx = Sealer::new(&key(4));
    let mut wire = BytesMut::new();
    tx.seal_chunked(&data, &mut wire).unwrap();
    let mut rx = Opener::new(&key(4));
    let mut got = Vec::new();
    while let Some(pt) = rx.open(&mut wire).unwrap() {
        assert!(pt.len() <= MAX_PLAINTEXT_LEN);
        got.extend_from_slice(&pt);
    }
    assert_eq!(got, data);
}

#[test]
fn oversize_frame_is_rejected_from_its_header_alone() {
    let mut rx = Opener::new(&key(5));
    // 4094 bytes of ciphertext: one more than fits in 4096.
    let mut buf = BytesMut::from(&[4u8, 0x0f, 0xfe][..]);
    assert!(matches!(rx.open(&mut buf), Err(Error::FrameTooLarge(4097))));
    assert!(rx.is_poisoned());
    let mut buf = BytesMut::from(&[4u8, 0xff, 0xff][..]);
    assert!(matches!(rx.open(&mut buf), Err(Error::Poisoned)));
    assert!(matches!(frame_len([4, 0x0f, 0xfd]), Ok(MAX_FRAME_LEN)));
}

#[test]
fn wrong_type_and_short_frames_are_rejected() {
    for (hdr, want) in [
        ([3u8, 0, 16], "type"),
        ([1u8, 0, 16], "type"),
        ([4u8, 0, 15], "short"),
        ([4u8, 0, 0], "short"),
    ] {
        let mut rx = Opener::new(&key(6));
        let mut buf = BytesMut::from(&hdr[..]);
        buf.extend_from_slice(&[0u8; 16]);
        let err = rx.open(&mut buf).unwrap_err();
        match want {
            "type" => assert!(matches!(err, Error::FrameType(t) if t == hdr[0])),
            _ => assert!(matches!(err, Error::FrameTooShort(_))),
        }
    }
}

#[test]
fn truncated_frames_wait_for_more_and_fail_at_eof() {
    let k = key(7);
    let mut tx = Sealer::new(&k);
    let wire = sealed(&mut tx, b"partial delivery");
    let mut rx = Opener::new(&k);
    for cut in 0..wire.len() {
        let mut buf = BytesMut::from(&wire[..cut]);
        assert!(rx.open(&mut buf).unwrap().is_none(), "cut {cut}");
        assert_eq!(buf.len(), cut, "nothing consumed while incomplete");
        assert_eq!(
            check_eof(&buf).is_err(),
            cut > 0,
            "partial frame at EOF is an error"
        );
    }
    let mut buf = wire.clone();
    assert_eq!(
        &rx.open(&mut buf).unwrap().unwrap()[..],
        b"partial delivery"
    );
    assert!(check_eof(&buf).is_ok());
}

#[test]
fn failed_decrypt_poisons_the_receiver() {
    let k = key(8);
    let mut tx = Sealer::new(&k);
    let mut bad = sealed(&mut tx, b"tampered");
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut good = sealed(&mut tx, b"fine");
    let mut rx = Opener::new(&k);
    assert!(matches!(rx.open(&mut bad), Err(Error::RecordAuth)));
    assert!(rx.is_poisoned());
    assert!(matches!(rx.open(&mut good), Err(Error::Poisoned)));
}

#[test]
fn nonce_space_ends_before_u64_max() {
    let k = key(10);
    let mut tx = Sealer::new(&k);
    tx.counter = u64::MAX - 1;
    let mut rec = sealed(&mut tx, b"last");
    assert!(matches!(
        tx.seal(b"one too many", &mut BytesMut::new()),
        Err(Error::NonceExhausted)
    ));
    let mut rx = Opener::new(&k);
    rx.counter = u64::MAX - 1;
    assert_eq!(&rx.open(&mut rec).unwrap().unwrap()[..], b"last");
    let mut more = rec.clone();
    more.extend_from_slice(&[4, 0, 16]);
    more.extend_from_slice(&[0; 16]);
    assert!(matches!(rx.open(&mut more), Err(Error::NonceExhausted)));
}
