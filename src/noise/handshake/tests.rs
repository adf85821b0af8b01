//! Tests for [`super`]: known-answer vector, round trips, tampering.

use super::*;

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

// Produced by an independent Python implementation (cryptography + hashlib)
// of the steps in control.md §2.4, with fixed scalars 0x11.., 0x22..,
// 0x33.., 0x44.. for machine static, machine ephemeral, server static and
// server ephemeral, at version 133.
const KAT_MACHINE_PUB: &str = "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13";
const KAT_SERVER_PUB: &str = "7b0d47d93427f8311160781c7c733fd89f88970aef490d8aa0ee19a4cb8a1b14";
const KAT_INIT: &str = "00850100600faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f2061d2949213e755bc180b5d5dbbd8c50a2a1beb69f8940d24cab4606a34cd5d41d508832063cdab8eb322a57af9f2844824b54c976cbb159e27ceaa70d6147c2a";
const KAT_RESP: &str = "020030ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6babcaadc63925c89481ae4ec38564aae6";
const KAT_C2S: &str = "d9811dd6a320dc8484bb37ea989640c99f99a8582f50b829e347bd75da510717";
const KAT_S2C: &str = "8561e3fd4551ed82ee22220925e41e923d64b1c04b856f8ec1eaa544a511a427";
const KAT_HASH: &str = "0ced70d6910c498372508a2dd22911d6833e631bb602d42dfbbe94310cd046a2";

fn kat_secrets() -> (StaticSecret, StaticSecret, StaticSecret, StaticSecret) {
    (
        StaticSecret::from([0x11; 32]),
        StaticSecret::from([0x22; 32]),
        StaticSecret::from([0x33; 32]),
        StaticSecret::from([0x44; 32]),
    )
}

/// A fresh valid initiation plus everything needed to finish it.
fn fresh() -> (StaticSecret, StaticSecret, Initiator, [u8; INITIATION_LEN]) {
    let server = StaticSecret::random();
    let machine = StaticSecret::random();
    let server_pub = *PublicKey::from(&server).as_bytes();
    let (ini, init) = Initiator::new(&machine, &server_pub, 133).unwrap();
    (server, machine, ini, init)
}

#[test]
fn known_answer_vector_matches_independent_implementation() {
    let (m_static, m_eph, s_static, s_eph) = kat_secrets();
    assert_eq!(
        PublicKey::from(&m_static).as_bytes(),
        &hex32(KAT_MACHINE_PUB)
    );
    let server_pub = *PublicKey::from(&s_static).as_bytes();
    assert_eq!(server_pub, hex32(KAT_SERVER_PUB));

    let (ini, init) = Initiator::with_ephemeral(&m_static, &server_pub, 133, m_eph).unwrap();
    assert_eq!(hex::encode(init), KAT_INIT);

    let r = respond_with_ephemeral(&s_static, &init, s_eph).unwrap();
    assert_eq!(hex::encode(r.response), KAT_RESP);
    assert_eq!(r.version, 133);
    assert_eq!(r.client_machine_key, hex32(KAT_MACHINE_PUB));
    assert_eq!(r.keys.recv, hex32(KAT_C2S));
    assert_eq!(r.keys.send, hex32(KAT_S2C));
    assert_eq!(r.handshake_hash, hex32(KAT_HASH));

    let est = ini.finish(&r.response).unwrap();
    assert_eq!(est.keys.send, hex32(KAT_C2S));
    assert_eq!(est.keys.recv, hex32(KAT_S2C));
    assert_eq!(est.handshake_hash, hex32(KAT_HASH));
}

#[test]
fn initiation_layout() {
    let (_, _, _, init) = fresh();
    assert_eq!(&init[..5], &[0x00, 0x85, 0x01, 0x00, 0x60]);
}

#[test]
fn round_trip_with_random_keys() {
    let (server, machine, ini, init) = fresh();
    let r = respond(&server, &init).unwrap();
    assert_eq!(&r.client_machine_key, PublicKey::from(&machine).as_bytes());
    assert_eq!(r.response[..3], [0x02, 0x00, 0x30]);
    let est = ini.finish(&r.response).unwrap();
    assert_eq!(est.keys.send, r.keys.recv);
    assert_eq!(est.keys.recv, r.keys.send);
    assert_ne!(est.keys.send, est.keys.recv);
    assert_eq!(est.handshake_hash, r.handshake_hash);
}

#[test]
fn version_is_taken_from_the_header_and_bound_into_the_prologue() {
    let server = StaticSecret::random();
    let server_pub = *PublicKey::from(&server).as_bytes();
    for v in [1u16, 49, 133, u16::MAX] {
        let (ini, init) = Initiator::new(&StaticSecret::random(), &server_pub, v).unwrap();
        let r = respond(&server, &init).unwrap();
        assert_eq!(r.version, v);
        ini.finish(&r.response).unwrap();
    }
    assert_eq!(prologue(133), "Tailscale Control Protocol v133");
    assert_eq!(prologue(7), "Tailscale Control Protocol v7");
}

#[test]
fn every_tampered_initiation_byte_is_rejected() {
    let (server, _, _, init) = fresh();
    for i in 0..INITIATION_LEN {
        let mut bad = init;
        bad[i] ^= 0x01;
        let err = respond(&server, &bad).expect_err(&format!("flip at byte {i} accepted"));
        match i {
            2 => assert!(matches!(err, Error::MessageType { got: 0, want: 1 })),
            3 | 4 => assert!(matches!(err, Error::MessageLength { .. })),
            // Version bytes change the prologue, so authentication fails.
            _ => assert!(
                matches!(err, Error::HandshakeAuth | Error::WeakKey),
                "byte {i}: {err}"
            ),
        }
    }
}

#[test]
fn initiation_for_another_server_key_is_rejected() {
    let (_, _, _, init) = fresh();
    let other = StaticSecret::random();
    assert!(matches!(respond(&other, &init), Err(Error::HandshakeAuth)));
}

#[test]
fn wrong_initiation_sizes_are_rejected() {
    let (server, _, _, init) = fresh();
    for len in [0usize, 5, 100] {
        assert!(matches!(
            respond(&server, &init[..len]),
            Err(Error::InitiationSize(n)) if n == len
        ));
    }
    let mut long = init.to_vec();
    long.push(0);
    assert!(matches!(
        respond(&server, &long),
        Err(Error::InitiationSize(102))
    ));
}

#[test]
fn low_order_ephemeral_is_rejected() {
    let (server, _, _, mut init) = fresh();
    init[5..37].fill(0);
    assert!(matches!(respond(&server, &init), Err(Error::WeakKey)));
}

#[test]
fn tampered_response_is_rejected() {
    let (server, machine, _, _) = fresh();
    let server_pub = *PublicKey::from(&server).as_bytes();
    for i in 0..RESPONSE_LEN {
        let (ini, init) = Initiator::new(&machine, &server_pub, 133).unwrap();
        let mut resp = respond(&server, &init).unwrap().response;
        resp[i] ^= 0x80;
        assert!(ini.finish(&resp).is_err(), "flip at byte {i} accepted");
    }
    let (ini, init) = Initiator::new(&machine, &server_pub, 133).unwrap();
    let resp = respond(&server, &init).unwrap().response;
    assert!(matches!(
        ini.finish(&resp[..50]),
        Err(Error::MessageLength { got: 50, .. })
    ));
}

#[test]
fn response_from_an_impostor_is_rejected() {
    // Someone without the server key cannot answer: they can't compute es/ss,
    // so a response they make for a different key fails at the initiator.
    let (server, machine, _, _) = fresh();
    let server_pub = *PublicKey::from(&server).as_bytes();
    let (ini, _) = Initiator::new(&machine, &server_pub, 133).unwrap();
    let impostor = StaticSecret::random();
    let impostor_pub = *PublicKey::from(&impostor).as_bytes();
    let (_, init2) = Initiator::new(&machine, &impostor_pub, 133).unwrap();
    let resp = respond(&impostor, &init2).unwrap().response;
    assert!(matches!(ini.finish(&resp), Err(Error::HandshakeAuth)));
}

#[test]
fn error_message_layout_and_truncation() {
    assert_eq!(error_message("no"), vec![3, 0, 2, b'n', b'o']);
    let long = "é".repeat(40_000); // 80 000 bytes, 2 per char
    let m = error_message(&long);
    let len = usize::from(u16::from_be_bytes([m[1], m[2]]));
    assert_eq!(len, 65_534, "cut at a char boundary below 65 535");
    assert_eq!(m.len(), 3 + len);
    assert!(std::str::from_utf8(&m[3..]).is_ok());
}
