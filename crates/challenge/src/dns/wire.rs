//! DNS over UDP, falling back to TCP when the answer is truncated.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A query message.
pub(crate) fn query(name: &Name, rtype: RecordType, recursion_desired: bool) -> Message {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = recursion_desired;
    m.add_query(Query::query(name.clone(), rtype));
    m
}

/// The owner of the SOA in an answer: the apex of the zone holding the name asked about
/// (in the answer section at the apex, in the authority section below it).
pub(crate) fn soa_owner(answer: &Message) -> Option<Name> {
    answer
        .answers
        .iter()
        .chain(answer.authorities.iter())
        .find(|r| matches!(r.data, RData::SOA(_)))
        .map(|r| r.name.clone())
}

/// Sends `msg` (already signed if it needs to be) and returns the answer.
pub(crate) async fn exchange(
    server: SocketAddr,
    msg: &Message,
    timeout: Duration,
) -> Result<Message, String> {
    let bytes = msg.to_vec().map_err(|e| format!("cannot encode the DNS message: {e}"))?;
    let id = msg.metadata.id;
    let mut last = String::new();
    for _ in 0..2 {
        match tokio::time::timeout(timeout, udp(server, &bytes, id)).await {
            Ok(Ok(answer)) if answer.metadata.truncation => {
                return tokio::time::timeout(timeout, tcp(server, &bytes))
                    .await
                    .map_err(|_| format!("{server} did not answer over TCP within {timeout:?}"))?;
            }
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("{server} did not answer within {timeout:?}"),
        }
    }
    Err(last)
}

async fn udp(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let local: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .map_err(|e| format!("{e}"))?;
    let socket = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket.connect(server).await.map_err(|e| format!("cannot reach {server}: {e}"))?;
    socket.send(bytes).await.map_err(|e| format!("cannot send to {server}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| format!("no answer from {server}: {e}"))?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id => return Ok(m),
            // A stray or forged datagram: keep waiting for ours.
            _ => continue,
        }
    }
}

async fn tcp(server: SocketAddr, bytes: &[u8]) -> Result<Message, String> {
    let mut stream = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| format!("cannot connect to {server}: {e}"))?;
    let len = u16::try_from(bytes.len()).map_err(|_| "the DNS message is too long".to_string())?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    stream.write_all(&out).await.map_err(|e| format!("cannot send to {server}: {e}"))?;
    let len = stream.read_u16().await.map_err(|e| format!("no answer from {server}: {e}"))?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.map_err(|e| format!("short answer from {server}: {e}"))?;
    Message::from_vec(&buf).map_err(|e| format!("{server} sent an unreadable answer: {e}"))
}
