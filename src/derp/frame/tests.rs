use super::*;

async fn read_all(bytes: &[u8]) -> Vec<Result<Frame, Error>> {
    let mut r = bytes;
    let mut out = Vec::new();
    while !r.is_empty() {
        let res = read_frame(&mut r).await;
        let stop = res.is_err();
        out.push(res);
        if stop {
            break;
        }
    }
    out
}

fn key(b: u8) -> Key {
    [b; KEY_LEN]
}

#[tokio::test]
async fn every_frame_round_trips() {
    let frames = vec![
        Frame::ServerKey { key: key(1) },
        Frame::ClientInfo {
            key: key(2),
            sealed: Bytes::from(vec![7u8; NONCE_LEN + 40]),
        },
        Frame::ServerInfo {
            sealed: Bytes::from(vec![8u8; NONCE_LEN + 16]),
        },
        Frame::SendPacket {
            dst: key(3),
            packet: Bytes::from_static(b"hello"),
        },
        Frame::RecvPacket {
            src: key(4),
            packet: Bytes::new(),
        },
        Frame::KeepAlive,
        Frame::NotePreferred { preferred: true },
        Frame::NotePreferred { preferred: false },
        Frame::PeerGone {
            key: key(5),
            reason: PeerGoneReason::NotHere,
        },
        Frame::PeerGone {
            key: key(6),
            reason: PeerGoneReason::Disconnected,
        },
        Frame::Ping(*b"12345678"),
        Frame::Pong(*b"abcdefgh"),
        Frame::Health {
            problem: "duplicate".into(),
        },
        Frame::Restarting {
            reconnect_in_ms: 1500,
            try_for_ms: 60_000,
        },
    ];
    let mut wire = Vec::new();
    for f in &frames {
        f.encode(&mut wire);
    }
    let got: Vec<Frame> = read_all(&wire)
        .await
        .into_iter()
        .map(|r| r.expect("decodes"))
        .collect();
    assert_eq!(got, frames);
    // frame_type() names the byte each frame went out with.
    let mut at = 0;
    for f in &frames {
        assert_eq!(wire[at], f.frame_type(), "{f:?}");
        let len = u32::from_be_bytes([wire[at + 1], wire[at + 2], wire[at + 3], wire[at + 4]]);
        at += HEADER_LEN + len as usize;
    }
    assert_eq!(at, wire.len());
}

#[test]
fn wire_layout_matches_protocol() {
    let mut out = Vec::new();
    Frame::ServerKey { key: key(0xAA) }.encode(&mut out);
    assert_eq!(&out[..5], &[0x01, 0, 0, 0, 40]);
    assert_eq!(&out[5..13], b"DERP\xF0\x9F\x94\x91");
    assert_eq!(&out[13..], &[0xAA; 32]);

    out.clear();
    Frame::PeerGone {
        key: key(9),
        reason: PeerGoneReason::NotHere,
    }
    .encode(&mut out);
    assert_eq!(&out[..5], &[0x08, 0, 0, 0, 33]);
    assert_eq!(out[37], 0x01);

    out.clear();
    Frame::Restarting {
        reconnect_in_ms: 0x01020304,
        try_for_ms: 0x05060708,
    }
    .encode(&mut out);
    assert_eq!(out, [0x15, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
}

#[tokio::test]
async fn packet_size_limit_is_64k() {
    let mut wire = Vec::new();
    Frame::SendPacket {
        dst: key(1),
        packet: Bytes::from(vec![0u8; MAX_PACKET_SIZE]),
    }
    .encode(&mut wire);
    let got = read_all(&wire).await;
    assert!(
        matches!(&got[0], Ok(Frame::SendPacket { packet, .. }) if packet.len() == MAX_PACKET_SIZE)
    );

    let mut wire = Vec::new();
    Frame::SendPacket {
        dst: key(1),
        packet: Bytes::from(vec![0u8; MAX_PACKET_SIZE + 1]),
    }
    .encode(&mut wire);
    let got = read_all(&wire).await;
    assert!(matches!(
        got[0],
        Err(Error::TooLarge { frame_type: 0x04, len, .. }) if len == KEY_LEN + MAX_PACKET_SIZE + 1
    ));
}

#[tokio::test]
async fn oversized_frames_fail_before_reading_payload() {
    // Only a header claiming 1 MiB + 1 of an unknown type: must fail without
    // waiting for (or allocating) the payload.
    let header = [0x7f, 0x00, 0x10, 0x00, 0x01];
    let got = read_all(&header).await;
    assert!(matches!(
        got[0],
        Err(Error::TooLarge {
            frame_type: 0x7f,
            ..
        })
    ));

    let header = [0x02, 0x00, 0x04, 0x00, 0x01]; // ClientInfo of 256 KiB + 1
    let got = read_all(&header).await;
    assert!(matches!(
        got[0],
        Err(Error::TooLarge {
            frame_type: 0x02,
            ..
        })
    ));

    let header = [0x12, 0x00, 0x00, 0x03, 0xE9]; // Ping of 1001 bytes
    let got = read_all(&header).await;
    assert!(matches!(
        got[0],
        Err(Error::TooLarge {
            frame_type: 0x12,
            ..
        })
    ));
}

#[tokio::test]
async fn unknown_and_mesh_frames_are_skipped() {
    let mut wire = Vec::new();
    encode_raw(0x7e, &[1, 2, 3, 4, 5], &mut wire);
    encode_raw(FrameType::ForwardPacket as u8, &[0u8; 70], &mut wire);
    Frame::Ping(*b"pingpong").encode(&mut wire);
    let got: Vec<Frame> = read_all(&wire)
        .await
        .into_iter()
        .map(|r| r.expect("decodes"))
        .collect();
    assert_eq!(
        got,
        vec![
            Frame::Unknown { frame_type: 0x7e },
            Frame::Mesh {
                frame_type: FrameType::ForwardPacket
            },
            Frame::Ping(*b"pingpong"),
        ]
    );
}

#[test]
fn server_key_magic_and_trailing_bytes() {
    let mut payload = MAGIC.to_vec();
    payload.extend_from_slice(&key(3));
    payload.extend_from_slice(b"future");
    let f = Frame::decode(0x01, Bytes::from(payload.clone())).expect("trailing bytes tolerated");
    assert_eq!(f, Frame::ServerKey { key: key(3) });

    payload[0] = b'X';
    assert!(matches!(
        Frame::decode(0x01, Bytes::from(payload)),
        Err(Error::BadMagic)
    ));
    assert!(matches!(
        Frame::decode(0x01, Bytes::from_static(&MAGIC)),
        Err(Error::Malformed(FrameType::ServerKey))
    ));
}

#[test]
fn short_or_wrong_sized_payloads_are_malformed() {
    let cases: &[(u8, usize)] = &[
        (0x02, KEY_LEN + NONCE_LEN - 1),
        (0x03, NONCE_LEN - 1),
        (0x04, KEY_LEN - 1),
        (0x05, 0),
        (0x07, 0),
        (0x07, 2),
        (0x08, KEY_LEN - 1),
        (0x12, 7),
        (0x13, 0),
        (0x15, 4),
    ];
    for &(t, len) in cases {
        let res = Frame::decode(t, Bytes::from(vec![0u8; len]));
        assert!(
            matches!(res, Err(Error::Malformed(_))),
            "type {t:#x} len {len}: {res:?}"
        );
    }
    // A ping may carry extra bytes (future use); only the first 8 are echoed.
    let f = Frame::decode(0x12, Bytes::from(b"12345678extra".to_vec())).expect("ping");
    assert_eq!(f, Frame::Ping(*b"12345678"));
    // PeerGone without the reason byte is an old server's "disconnected".
    let f = Frame::decode(0x08, Bytes::from(vec![4u8; KEY_LEN])).expect("peer gone");
    assert_eq!(
        f,
        Frame::PeerGone {
            key: key(4),
            reason: PeerGoneReason::Disconnected
        }
    );
}

#[tokio::test]
async fn truncated_frame_is_an_io_error() {
    let mut wire = Vec::new();
    Frame::SendPacket {
        dst: key(1),
        packet: Bytes::from_static(b"abcdef"),
    }
    .encode(&mut wire);
    wire.truncate(wire.len() - 2);
    let got = read_all(&wire).await;
    assert!(matches!(got[0], Err(Error::Io(_))));

    // A skipped unknown frame that is cut short is an error too.
    let mut wire = Vec::new();
    encode_raw(0x70, &[0u8; 10], &mut wire);
    wire.truncate(8);
    let got = read_all(&wire).await;
    assert!(matches!(got[0], Err(Error::Io(_))));
}

#[test]
fn disco_detection_needs_magic_and_minimum_length() {
    let mut p = DISCO_MAGIC.to_vec();
    p.extend_from_slice(&[0u8; KEY_LEN + NONCE_LEN]);
    assert!(looks_like_disco(&p));
    assert!(!looks_like_disco(&p[..p.len() - 1]));
    p[0] = 0;
    assert!(!looks_like_disco(&p));
}
