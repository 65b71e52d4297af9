//! A browser stand-in on the signaling WebSocket.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use retrofarm_proto::browser::{ClientMsg, PingTarget, ServerMsg};
use retrofarm_proto::ids::WorkerId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A signaling connection.
pub struct Browser {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Browser {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.with_context(|| format!("connecting {url}"))?;
        Ok(Self { ws })
    }

    /// Sends a message.
    pub async fn send(&mut self, msg: &ClientMsg) -> Result<()> {
        self.send_raw(&msg.encode()).await
    }

    /// Sends arbitrary text.
    pub async fn send_raw(&mut self, text: &str) -> Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// The next server message.
    pub async fn recv(&mut self, timeout: Duration) -> Result<ServerMsg> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.ws.next())
                .await
                .map_err(|_| anyhow!("no message within {timeout:?}"))?
                .ok_or_else(|| anyhow!("WebSocket closed"))??;
            if let Message::Text(t) = msg {
                return ServerMsg::decode(&t).map_err(|e| anyhow!("bad server message {t}: {e}"));
            }
        }
    }

    /// Waits for the server's close frame, skipping messages; returns its code and reason.
    pub async fn closed(&mut self, timeout: Duration) -> Result<(u16, String)> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.ws.next())
                .await
                .map_err(|_| anyhow!("not closed within {timeout:?}"))?
                .ok_or_else(|| anyhow!("closed without a close frame"))??;
            if let Message::Close(frame) = msg {
                let frame = frame.ok_or_else(|| anyhow!("a close frame without a code"))?;
                return Ok((frame.code.into(), frame.reason.to_string()));
            }
        }
    }

    /// Receives until `pick` accepts a message, skipping others.
    pub async fn recv_until<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&ServerMsg) -> Option<T>,
    ) -> Result<T> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("expected message not received within {timeout:?}");
            }
            let m = self.recv(left).await?;
            if let Some(t) = pick(&m) {
                return Ok(t);
            }
        }
    }

    /// Pings each target like the web client does and answers with the results. Returns them.
    pub async fn answer_latency(&mut self, workers: &[PingTarget]) -> Result<BTreeMap<WorkerId, u32>> {
        let mut results = BTreeMap::new();
        for w in workers {
            if let Ok(ms) = http_ping(&w.ping_url).await {
                results.insert(w.id.clone(), ms);
            }
        }
        self.send(&ClientMsg::Latency { results: results.clone() }).await?;
        Ok(results)
    }
}

/// `GET url` over plain HTTP/1.1; returns the status and the body.
pub async fn http_get(url: &str) -> Result<(u16, String)> {
    let rest = url.strip_prefix("http://").context("only http:// URLs")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = TcpStream::connect(host).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no HTTP status")?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET url`; returns the round trip in ms (the worker's ping endpoint answers 204).
pub async fn http_ping(url: &str) -> Result<u32> {
    let start = Instant::now();
    let (status, _) = http_get(url).await?;
    if status != 204 {
        bail!("ping {url}: HTTP {status}");
    }
    Ok(start.elapsed().as_millis().max(1) as u32)
}
