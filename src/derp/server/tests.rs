use super::*;
use crate::derp::client::{self, Client};
use crate::derp::frame::{DISCO_MAGIC, FrameType, KEY_LEN, NONCE_LEN, encode_raw};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;

const STEP: Duration = Duration::from_secs(5);

struct DenyAll;
impl ClientVerifier for DenyAll {
    fn is_allowed(&self, _: &[u8; 32]) -> bool {
        false
    }
}

fn server() -> Server {
    Server::new(key::generate(), Arc::new(AllowAll))
}

fn spawn_conn(server: &Server, buf: usize) -> (DuplexStream, JoinHandle<Result<(), Error>>) {
    let (client_end, server_end) = tokio::io::duplex(buf);
    let s = server.clone();
    (
        client_end,
        tokio::spawn(async move { s.serve_conn(server_end).await }),
    )
}

async fn connect_as(
    server: &Server,
    private: [u8; 32],
) -> (Client<DuplexStream>, JoinHandle<Result<(), Error>>) {
    let (io, task) = spawn_conn(server, 256 << 10);
    let c = tokio::time::timeout(STEP, Client::handshake(io, private))
        .await
        .expect("handshake in time")
        .expect("handshake");
    (c, task)
}

async fn connect(server: &Server) -> (Client<DuplexStream>, JoinHandle<Result<(), Error>>) {
    connect_as(server, key::generate()).await
}

async fn recv(c: &mut Client<DuplexStream>) -> Frame {
    tokio::time::timeout(STEP, c.recv())
        .await
        .expect("frame in time")
        .expect("frame")
}

async fn recv_packet(c: &mut Client<DuplexStream>) -> (Key, Bytes) {
    tokio::time::timeout(STEP, c.recv_packet())
        .await
        .expect("packet in time")
        .expect("packet")
}

/// Nothing arrives within a short while.
async fn assert_silent(c: &mut Client<DuplexStream>) {
    let r = tokio::time::timeout(Duration::from_millis(200), c.recv()).await;
    assert!(r.is_err(), "unexpected frame: {r:?}");
}

/// Round-trips a ping, proving the server has processed everything sent before.
async fn sync(c: &mut Client<DuplexStream>, tag: u8) {
    c.send_frame(&Frame::Ping([tag; 8])).await.expect("ping");
    assert_eq!(recv(c).await, Frame::Pong([tag; 8]));
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "condition not reached in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn disco_packet() -> Vec<u8> {
    let mut p = DISCO_MAGIC.to_vec();
    p.extend_from_slice(&[0u8; KEY_LEN + NONCE_LEN + 8]);
    p
}

#[tokio::test]
async fn handshake_with_crypto_box_client() {
    let s = server();
    let (c, _task) = connect(&s).await;
    assert_eq!(c.server_key(), s.public_key());
    assert_eq!(c.server_info(), &serde_json::json!({ "version": 2 }));
    assert!(s.is_client_connected(&c.public_key()));
    assert_eq!(s.stats().clients_connected, 1);
}

#[tokio::test]
async fn relays_packets_both_ways() {
    let s = server();
    let (mut a, _ta) = connect(&s).await;
    let (mut b, _tb) = connect(&s).await;
    let (ka, kb) = (a.public_key(), b.public_key());

    a.send(kb, b"hello b").await.expect("send");
    assert_eq!(
        recv_packet(&mut b).await,
        (ka, Bytes::from_static(b"hello b"))
    );
    b.send(ka, b"hi a!").await.expect("send");
    assert_eq!(
        recv_packet(&mut a).await,
        (kb, Bytes::from_static(b"hi a!"))
    );

    // Per-sender order is preserved.
    for i in 0..20u8 {
        a.send(kb, &[i; 100]).await.expect("send");
    }
    for i in 0..20u8 {
        assert_eq!(recv_packet(&mut b).await.1, Bytes::from(vec![i; 100]));
    }
    wait_until(|| s.stats().packets_relayed == 22).await;
    let st = s.stats();
    assert_eq!(st.bytes_relayed, 7 + 5 + 2000);
    assert_eq!(st.packets_dropped, 0);
}

#[tokio::test]
async fn disallowed_key_is_closed() {
    let s = Server::new(key::generate(), Arc::new(DenyAll));
    let (io, task) = spawn_conn(&s, 64 << 10);
    let r = tokio::time::timeout(STEP, Client::handshake(io, key::generate()))
        .await
        .expect("in time");
    assert!(r.is_err(), "handshake must fail");
    let served = task.await.expect("join");
    assert!(matches!(served, Err(Error::NotAllowed(_))), "{served:?}");
    assert_eq!(s.stats().clients_connected, 0);
}

#[tokio::test]
async fn client_info_for_a_key_the_client_does_not_own_is_rejected() {
    let s = server();
    let (mut io, task) = spawn_conn(&s, 64 << 10);
    let Frame::ServerKey { key: server_key } = frame::read_frame(&mut io).await.expect("greeting")
    else {
        panic!("no server key");
    };
    // Sealed with one key, claiming another.
    let real = key::generate();
    let claimed = key::public_key(&key::generate());
    let mut out = Vec::new();
    Frame::ClientInfo {
        key: claimed,
        sealed: key::seal_to(&real, &server_key, b"{\"version\":2}").into(),
    }
    .encode(&mut out);
    io.write_all(&out).await.expect("write");
    let served = task.await.expect("join");
    assert!(matches!(served, Err(Error::ClientInfoBox)), "{served:?}");
    assert!(!s.is_client_connected(&claimed));
}

#[tokio::test]
async fn first_frame_must_be_client_info() {
    let s = server();
    let (mut io, task) = spawn_conn(&s, 64 << 10);
    frame::read_frame(&mut io).await.expect("greeting");
    let mut out = Vec::new();
    Frame::Ping([0; 8]).encode(&mut out);
    io.write_all(&out).await.expect("write");
    let served = task.await.expect("join");
    assert!(
        matches!(served, Err(Error::ExpectedClientInfo(0x12))),
        "{served:?}"
    );
}

#[tokio::test]
async fn handshake_step_times_out() {
    let timing = Timing {
        handshake_step: Duration::from_millis(100),
        ..Timing::default()
    };
    let s = Server::with_timing(key::generate(), Arc::new(AllowAll), timing);
    let (_io, task) = spawn_conn(&s, 64 << 10);
    let served = tokio::time::timeout(STEP, task)
        .await
        .expect("in time")
        .expect("join");
    assert!(matches!(served, Err(Error::HandshakeTimeout)), "{served:?}");
}

#[tokio::test]
async fn newer_connection_takes_over() {
    let s = server();
    let a_key = key::generate();
    let (mut a1, _t1) = connect_as(&s, a_key).await;
    let (mut a2, _t2) = connect_as(&s, a_key).await;
    let (mut b, _tb) = connect(&s).await;
    let ka = a1.public_key();
    assert_eq!(s.stats().clients_connected, 3);

    b.send(ka, b"one").await.expect("send");
    assert_eq!(recv_packet(&mut a2).await.1, Bytes::from_static(b"one"));
    assert_silent(&mut a1).await;

    // The old connection speaks again: it becomes the active one (last writer wins).
    a1.send_frame(&Frame::NotePreferred { preferred: true })
        .await
        .expect("note");
    sync(&mut a1, 1).await;
    b.send(ka, b"two").await.expect("send");
    assert_eq!(recv_packet(&mut a1).await.1, Bytes::from_static(b"two"));
    assert_silent(&mut a2).await;

    // When it goes away, the remaining connection gets the traffic, and no
    // PeerGone is sent for a key that is still connected.
    drop(a1);
    wait_until(|| s.stats().clients_connected == 2).await;
    b.send(ka, b"three").await.expect("send");
    assert_eq!(recv_packet(&mut a2).await.1, Bytes::from_static(b"three"));
    a2.send(b.public_key(), b"back").await.expect("send");
    assert_eq!(recv_packet(&mut b).await.1, Bytes::from_static(b"back"));
}

#[tokio::test]
async fn peer_gone_sent_to_receivers_on_disconnect() {
    let s = server();
    let (mut a, ta) = connect(&s).await;
    let (mut b, _tb) = connect(&s).await;
    let (mut c, _tc) = connect(&s).await;
    let ka = a.public_key();
    a.send(b.public_key(), b"x").await.expect("send");
    recv_packet(&mut b).await;

    drop(a);
    ta.await.expect("join").expect("clean close");
    assert_eq!(
        recv(&mut b).await,
        Frame::PeerGone {
            key: ka,
            reason: frame::PeerGoneReason::Disconnected
        }
    );
    // C never heard from A, so it is not told.
    assert_silent(&mut c).await;
}

#[tokio::test]
async fn peer_gone_not_here_for_disco_only_and_rate_limited() {
    let s = server();
    let (mut a, _ta) = connect(&s).await;
    let nobody = key::public_key(&key::generate());

    a.send(nobody, b"wireguard data").await.expect("send");
    sync(&mut a, 1).await; // no PeerGone before the Pong: data gets none

    for _ in 0..5 {
        a.send(nobody, &disco_packet()).await.expect("send");
    }
    a.send_frame(&Frame::Ping([2; 8])).await.expect("ping");
    // Exactly three PeerGone (the burst), before or after the Pong depending on
    // how the writer batched them, then nothing more.
    let mut gone = 0;
    let mut ponged = false;
    loop {
        match tokio::time::timeout(Duration::from_millis(200), a.recv()).await {
            Ok(Ok(Frame::PeerGone { key, reason })) => {
                assert_eq!((key, reason), (nobody, frame::PeerGoneReason::NotHere));
                gone += 1;
            }
            Ok(Ok(Frame::Pong(d))) if d == [2; 8] && !ponged => ponged = true,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => break,
        }
    }
    assert!(ponged);
    assert_eq!(gone, 3);
    assert_eq!(s.stats().packets_dropped, 6);
}

#[test]
fn token_bucket_refills() {
    let start = Instant::now();
    let mut tb = TokenBucket::new(3.0, Duration::from_secs(1));
    tb.last = start;
    assert!((0..3).all(|_| tb.allow(start)));
    assert!(!tb.allow(start));
    assert!(!tb.allow(start + Duration::from_millis(500)));
    assert!(tb.allow(start + Duration::from_millis(1000)));
    assert!(!tb.allow(start + Duration::from_millis(1000)));
}

#[tokio::test]
async fn ping_pong_and_ignored_frames() {
    let s = server();
    let (mut a, _ta) = connect(&s).await;
    let (mut b, _tb) = connect(&s).await;
    // Unknown frame types, NotePreferred, Pong and KeepAlive from a client are skipped.
    let mut raw = Vec::new();
    encode_raw(0x7f, b"future frame", &mut raw);
    Frame::NotePreferred { preferred: false }.encode(&mut raw);
    Frame::Pong([1; 8]).encode(&mut raw);
    Frame::KeepAlive.encode(&mut raw);
    a.send_raw(&raw).await.expect("raw");
    a.send(b.public_key(), b"after").await.expect("send");
    assert_eq!(recv_packet(&mut b).await.1, Bytes::from_static(b"after"));
    sync(&mut a, 9).await;
}

#[tokio::test]
async fn keepalive_is_sent() {
    let timing = Timing {
        keepalive: Duration::from_millis(50),
        ..Timing::default()
    };
    let s = Server::with_timing(key::generate(), Arc::new(AllowAll), timing);
    let (io, _task) = spawn_conn(&s, 64 << 10);
    let mut c = Client::handshake(io, key::generate())
        .await
        .expect("handshake");
    assert_eq!(recv(&mut c).await, Frame::KeepAlive);
    assert_eq!(recv(&mut c).await, Frame::KeepAlive);
}

#[tokio::test]
async fn mesh_frames_close_the_connection() {
    let s = server();
    let (mut a, ta) = connect(&s).await;
    let mut raw = Vec::new();
    encode_raw(FrameType::WatchConns as u8, &[], &mut raw);
    a.send_raw(&raw).await.expect("raw");
    let served = tokio::time::timeout(STEP, ta)
        .await
        .expect("in time")
        .expect("join");
    assert!(
        matches!(served, Err(Error::MeshNotPermitted(FrameType::WatchConns))),
        "{served:?}"
    );
    wait_until(|| s.stats().clients_connected == 0).await;
}

#[tokio::test]
async fn oversized_packet_closes_only_that_connection() {
    let s = server();
    let (mut a, ta) = connect(&s).await;
    let (mut b, _tb) = connect(&s).await;
    let (mut c, _tc) = connect(&s).await;
    let mut raw = Vec::new();
    encode_raw(
        FrameType::SendPacket as u8,
        &vec![0u8; KEY_LEN + frame::MAX_PACKET_SIZE + 1],
        &mut raw,
    );
    a.send_raw(&raw).await.expect("raw");
    let served = tokio::time::timeout(STEP, ta)
        .await
        .expect("in time")
        .expect("join");
    assert!(
        matches!(served, Err(Error::Frame(frame::Error::TooLarge { .. }))),
        "{served:?}"
    );
    b.send(c.public_key(), b"still fine").await.expect("send");
    assert_eq!(
        recv_packet(&mut c).await.1,
        Bytes::from_static(b"still fine")
    );
}

#[tokio::test]
async fn slow_receiver_does_not_block_others() {
    let timing = Timing {
        write: Duration::from_millis(200),
        ..Timing::default()
    };
    let s = Server::with_timing(key::generate(), Arc::new(AllowAll), timing);
    let (mut a, _ta) = connect(&s).await;
    // B's pipe holds only 4 KiB and B never reads.
    let (b_io, tb) = spawn_conn(&s, 4 << 10);
    let b = Client::handshake(b_io, key::generate())
        .await
        .expect("handshake");
    let (mut c, _tc) = connect(&s).await;

    for _ in 0..200 {
        a.send(b.public_key(), &[7u8; 1000])
            .await
            .expect("send never blocks");
    }
    a.send(c.public_key(), b"urgent").await.expect("send");
    assert_eq!(recv_packet(&mut c).await.1, Bytes::from_static(b"urgent"));

    // B's writer gives up on the stuck pipe; the queue overflowed meanwhile.
    let served = tokio::time::timeout(STEP, tb)
        .await
        .expect("in time")
        .expect("join");
    assert!(matches!(served, Err(Error::WriteTimeout)), "{served:?}");
    let st = s.stats();
    assert!(st.packets_dropped >= 200 - 32 - 4, "{st:?}");
    assert_eq!(st.packets_relayed + st.packets_dropped, 201, "{st:?}");
    drop(b);
}

#[tokio::test]
async fn client_rejects_a_server_info_it_cannot_open() {
    // Independent check of the client: a server that seals ServerInfo with the
    // wrong key must fail the handshake.
    let (client_io, mut server_io) = tokio::io::duplex(64 << 10);
    let server_private = key::generate();
    let fake = tokio::spawn(async move {
        let mut out = Vec::new();
        Frame::ServerKey {
            key: key::public_key(&server_private),
        }
        .encode(&mut out);
        server_io.write_all(&out).await.expect("write");
        let Frame::ClientInfo { key: ck, .. } =
            frame::read_frame(&mut server_io).await.expect("ci")
        else {
            panic!("no client info");
        };
        out.clear();
        Frame::ServerInfo {
            sealed: key::seal_to(&key::generate(), &ck, b"{}").into(),
        }
        .encode(&mut out);
        server_io.write_all(&out).await.expect("write");
        server_io
    });
    let r = Client::handshake(client_io, key::generate()).await;
    assert!(matches!(r, Err(client::Error::ServerInfoBox)), "{r:?}");
    drop(fake.await);
}
