//! HTTP/2 abuse limits, enforced on the connection's bytes below hyper: frames that cost the
//! server work without being requests. The h2 crate already ends rapid reset of streams it has
//! not yet handed out, "made you reset" (its local error-reset budget), oversized header lists
//! built from CONTINUATION frames and floods of small DATA frames; what it does not bound, and
//! Envoy and gRPC servers do, is bounded here:
//!
//! - **PING and SETTINGS**: the gRPC rule. A PING or SETTINGS frame is free when the server has
//!   sent HEADERS or DATA since the last one (keepalive and BDP pings); otherwise it is a strike,
//!   and strikes are refilled at [`CONTROL_REFILL_PER_SECOND`] up to [`CONTROL_BURST`].
//! - **Empty frames**: at most [`MAX_CONSECUTIVE_EMPTY`] frames in a row with no payload and no
//!   end of stream (DATA, HEADERS, CONTINUATION), as Envoy's
//!   `max_consecutive_inbound_frames_with_empty_payload`.
//! - **WINDOW_UPDATE**: at most `WINDOW_UPDATE_BASE + streams opened + 10 × DATA frames sent`,
//!   Envoy's `max_inbound_window_update_frames_per_data_frame_sent` rule.
//! - **Cancelled streams**: once a client has reset [`MIN_RESETS`] streams, it may not have reset
//!   more than half of the streams it opened (Envoy's premature-reset rule; rapid reset paced so
//!   that each stream is accepted before its RST_STREAM arrives).
//!
//! A client past a limit has its connection closed: the read side fails with the reason, which
//! hyper ends the connection with. Parsing is the 9-byte frame headers only; payloads are
//! skipped by length, so the cost is per frame, not per byte.

use tokio::time::Instant;

/// Strikes a client may have in hand (PING or SETTINGS frames with nothing sent in between).
pub const CONTROL_BURST: u32 = 100;
/// Strikes given back per second.
pub const CONTROL_REFILL_PER_SECOND: u32 = 10;
/// Frames in a row without payload or end of stream.
pub const MAX_CONSECUTIVE_EMPTY: u32 = 16;
/// WINDOW_UPDATE frames allowed before any DATA was sent.
pub const WINDOW_UPDATE_BASE: u64 = 100;
/// WINDOW_UPDATE frames allowed per DATA frame sent.
pub const WINDOW_UPDATES_PER_DATA_SENT: u64 = 10;
/// Resets a client may send before the half-of-its-streams rule applies.
pub const MIN_RESETS: u64 = 100;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;

/// The limit a client went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Abuse {
    /// PING or SETTINGS frames faster than the server sends anything.
    #[error("HTTP/2 flood: too many PING or SETTINGS frames")]
    ControlFlood,
    /// Frames without payload, one after another.
    #[error("HTTP/2 flood: too many frames in a row without payload")]
    EmptyFrames,
    /// WINDOW_UPDATE frames out of proportion to the data sent.
    #[error("HTTP/2 flood: too many WINDOW_UPDATE frames")]
    WindowUpdateFlood,
    /// More than half of the client's streams cancelled by the client.
    #[error("HTTP/2 flood: too many streams reset by the client")]
    ResetFlood,
}

/// Where a direction's frame parser is.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// Reading the 24-byte client preface (inbound only); `matched` bytes so far.
    Preface { matched: usize },
    /// Collecting a frame header; `have` of its 9 bytes are in `header`.
    Header { have: usize },
    /// Skipping `left` bytes of payload.
    Payload { left: usize },
    /// Not HTTP/2 (an HTTP/1 connection): nothing is checked.
    Off,
}

/// One direction's frame-header reader.
#[derive(Debug)]
struct FrameReader {
    framing: Framing,
    header: [u8; 9],
}

/// A frame header: type, flags, stream, payload length.
#[derive(Debug, Clone, Copy)]
struct Head {
    kind: u8,
    flags: u8,
    stream: u32,
    len: usize,
}

impl FrameReader {
    fn new(framing: Framing) -> FrameReader {
        FrameReader { framing, header: [0; 9] }
    }

    /// Feeds `bytes`, calling `on_frame` for each complete frame header. Returns false when the
    /// connection turned out not to be HTTP/2.
    fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(Head) -> Result<(), Abuse>) -> Result<(), Abuse> {
        while !bytes.is_empty() {
            match self.framing {
                Framing::Off => return Ok(()),
                Framing::Preface { matched } => {
                    let take = (PREFACE.len() - matched).min(bytes.len());
                    if bytes[..take] != PREFACE[matched..matched + take] {
                        self.framing = Framing::Off;
                        return Ok(());
                    }
                    bytes = &bytes[take..];
                    self.framing = if matched + take == PREFACE.len() {
                        Framing::Header { have: 0 }
                    } else {
                        Framing::Preface { matched: matched + take }
                    };
                }
                Framing::Payload { left } => {
                    let take = left.min(bytes.len());
                    bytes = &bytes[take..];
                    self.framing =
                        if take == left { Framing::Header { have: 0 } } else { Framing::Payload { left: left - take } };
                }
                Framing::Header { have } => {
                    let take = (9 - have).min(bytes.len());
                    self.header[have..have + take].copy_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if have + take < 9 {
                        self.framing = Framing::Header { have: have + take };
                        continue;
                    }
                    let h = &self.header;
                    let head = Head {
                        len: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
                        kind: h[3],
                        flags: h[4],
                        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                    };
                    self.framing =
                        if head.len == 0 { Framing::Header { have: 0 } } else { Framing::Payload { left: head.len } };
                    on_frame(head)?;
                }
            }
        }
        Ok(())
    }

    fn is_http2(&self) -> bool {
        !matches!(self.framing, Framing::Off | Framing::Preface { .. })
    }
}

/// What one connection's client has sent and been sent, against the limits.
#[derive(Debug)]
pub struct FrameGuard {
    inbound: FrameReader,
    outbound: FrameReader,
    /// The server sent HEADERS or DATA since the client's last PING or SETTINGS.
    answered: bool,
    strikes_left: u32,
    refilled_at: Instant,
    consecutive_empty: u32,
    window_updates: u64,
    streams_opened: u64,
    data_frames_sent: u64,
    resets: u64,
    tripped: Option<Abuse>,
}

impl Default for FrameGuard {
    fn default() -> Self {
        FrameGuard::new()
    }
}

impl FrameGuard {
    /// A guard for a new connection, which may turn out to be HTTP/1 (then it checks nothing).
    pub fn new() -> FrameGuard {
        FrameGuard {
            inbound: FrameReader::new(Framing::Preface { matched: 0 }),
            outbound: FrameReader::new(Framing::Header { have: 0 }),
            answered: true,
            strikes_left: CONTROL_BURST,
            refilled_at: Instant::now(),
            consecutive_empty: 0,
            window_updates: 0,
            streams_opened: 0,
            data_frames_sent: 0,
            resets: 0,
            tripped: None,
        }
    }

    /// Bytes the client sent. Once a limit is passed, every later call answers the same abuse.
    pub fn received(&mut self, bytes: &[u8]) -> Result<(), Abuse> {
        if let Some(abuse) = self.tripped {
            return Err(abuse);
        }
        let mut inbound = std::mem::replace(&mut self.inbound, FrameReader::new(Framing::Off));
        let result = inbound.feed(bytes, |head| self.inbound_frame(head));
        self.inbound = inbound;
        if let Err(abuse) = result {
            self.tripped = Some(abuse);
        }
        result
    }

    /// Bytes the server wrote to the client.
    pub fn sent(&mut self, bytes: &[u8]) {
        if !self.inbound.is_http2() {
            return;
        }
        let mut outbound = std::mem::replace(&mut self.outbound, FrameReader::new(Framing::Off));
        let _ = outbound.feed(bytes, |head| {
            if head.kind == DATA || head.kind == HEADERS {
                self.answered = true;
            }
            if head.kind == DATA {
                self.data_frames_sent += 1;
            }
            Ok(())
        });
        self.outbound = outbound;
    }

    fn inbound_frame(&mut self, head: Head) -> Result<(), Abuse> {
        let empty = head.len == 0 && head.flags & END_STREAM == 0;
        match head.kind {
            DATA | HEADERS | CONTINUATION if empty => {
                self.consecutive_empty += 1;
                if self.consecutive_empty > MAX_CONSECUTIVE_EMPTY {
                    return Err(Abuse::EmptyFrames);
                }
            }
            _ => self.consecutive_empty = 0,
        }
        match head.kind {
            HEADERS if head.stream % 2 == 1 => self.streams_opened += 1,
            PING | SETTINGS if head.flags & ACK == 0 => self.control_frame()?,
            WINDOW_UPDATE => {
                self.window_updates += 1;
                let allowed =
                    WINDOW_UPDATE_BASE + self.streams_opened + WINDOW_UPDATES_PER_DATA_SENT * self.data_frames_sent;
                if self.window_updates > allowed {
                    return Err(Abuse::WindowUpdateFlood);
                }
            }
            RST_STREAM => {
                self.resets += 1;
                if self.resets >= MIN_RESETS && self.resets * 2 > self.streams_opened {
                    return Err(Abuse::ResetFlood);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn control_frame(&mut self) -> Result<(), Abuse> {
        if std::mem::replace(&mut self.answered, false) {
            return Ok(());
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.refilled_at);
        let refill = elapsed.as_millis().saturating_mul(u128::from(CONTROL_REFILL_PER_SECOND)) / 1000;
        if refill > 0 {
            let refill = u32::try_from(refill).unwrap_or(u32::MAX);
            self.strikes_left = self.strikes_left.saturating_add(refill).min(CONTROL_BURST);
            self.refilled_at = now;
        }
        match self.strikes_left.checked_sub(1) {
            Some(left) => {
                self.strikes_left = left;
                Ok(())
            }
            None => Err(Abuse::ControlFlood),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload_len: usize) -> Vec<u8> {
        let len = u32::try_from(payload_len).expect("small").to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend(std::iter::repeat_n(0u8, payload_len));
        out
    }

    fn connected() -> FrameGuard {
        let mut guard = FrameGuard::new();
        guard.received(PREFACE).expect("preface");
        guard.received(&frame(SETTINGS, 0, 0, 0)).expect("settings");
        guard
    }

    /// Feeds `count` copies of `bytes`, a byte at a time for the first, and returns the index of
    /// the first refused frame.
    fn first_refused(guard: &mut FrameGuard, bytes: &[u8], count: usize) -> Option<(usize, Abuse)> {
        for i in 0..count {
            let result = if i == 0 {
                bytes.iter().try_for_each(|b| guard.received(std::slice::from_ref(b)))
            } else {
                guard.received(bytes)
            };
            if let Err(abuse) = result {
                return Some((i, abuse));
            }
        }
        None
    }

    #[tokio::test(start_paused = true)]
    async fn each_limit_trips_at_its_count_and_not_before() {
        // (what, frames, how many, first refused)
        let headers = |stream| frame(HEADERS, 0x4 | END_STREAM, stream, 20);
        type Row = (&'static str, Vec<u8>, usize, Option<(usize, Abuse)>);
        let table: Vec<Row> = vec![
            // The client's first SETTINGS used the free pass: a hundred strikes, then refused.
            ("pings with nothing sent", frame(PING, 0, 0, 8), 500, Some((100, Abuse::ControlFlood))),
            ("settings with nothing sent", frame(SETTINGS, 0, 0, 6), 500, Some((100, Abuse::ControlFlood))),
            ("ping acks are free", frame(PING, ACK, 0, 8), 500, None),
            ("settings acks are free", frame(SETTINGS, ACK, 0, 0), 500, None),
            ("empty DATA", frame(DATA, 0, 1, 0), 100, Some((MAX_CONSECUTIVE_EMPTY as usize, Abuse::EmptyFrames))),
            ("empty DATA ending streams", frame(DATA, END_STREAM, 1, 0), 100, None),
            ("empty CONTINUATION", frame(CONTINUATION, 0, 1, 0), 100, Some((16, Abuse::EmptyFrames))),
            ("window updates", frame(WINDOW_UPDATE, 0, 0, 4), 500, Some((100, Abuse::WindowUpdateFlood))),
            ("requests", headers(1), 10_000, None),
        ];
        for (what, bytes, count, expected) in table {
            let mut guard = connected();
            assert_eq!(first_refused(&mut guard, &bytes, count), expected, "{what}");
            if let Some((_, abuse)) = expected {
                assert_eq!(guard.received(&frame(HEADERS, 0x4, 1, 3)), Err(abuse), "{what}: stays refused");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pings_answered_by_data_are_free_and_strikes_refill_with_time() {
        let mut guard = connected();
        for _ in 0..1000 {
            guard.received(&frame(PING, 0, 0, 8)).expect("a ping after data is free");
            guard.sent(&frame(DATA, 0, 1, 100));
        }
        for _ in 0..CONTROL_BURST {
            guard.received(&frame(PING, 0, 0, 8)).expect("within the burst");
        }
        assert_eq!(guard.received(&frame(PING, 0, 0, 8)), Err(Abuse::ControlFlood));

        let mut guard = connected();
        for _ in 0..CONTROL_BURST {
            guard.received(&frame(PING, 0, 0, 8)).expect("within the burst");
        }
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        for _ in 0..CONTROL_REFILL_PER_SECOND {
            guard.received(&frame(PING, 0, 0, 8)).expect("refilled");
        }
        assert_eq!(guard.received(&frame(PING, 0, 0, 8)), Err(Abuse::ControlFlood));
    }

    #[tokio::test(start_paused = true)]
    async fn window_updates_grow_with_data_sent_and_resets_with_streams_opened() {
        let mut guard = connected();
        for _ in 0..50 {
            guard.sent(&frame(DATA, 0, 1, 16_384));
        }
        for i in 0..(WINDOW_UPDATE_BASE + 500) {
            guard.received(&frame(WINDOW_UPDATE, 0, 0, 4)).unwrap_or_else(|e| panic!("update {i}: {e}"));
        }
        assert_eq!(guard.received(&frame(WINDOW_UPDATE, 0, 0, 4)), Err(Abuse::WindowUpdateFlood));

        // Cancelling a third of the streams is allowed however many there are.
        let mut guard = connected();
        for stream in (1..2000u32).step_by(2) {
            guard.received(&frame(HEADERS, 0x4, stream, 20)).expect("headers");
            if stream % 6 == 1 {
                guard.received(&frame(RST_STREAM, 0, stream, 4)).expect("a cancel now and then");
            }
        }
        // Open-and-cancel: refused at the hundredth reset.
        let mut guard = connected();
        let refused = (1..2000u32).step_by(2).position(|stream| {
            guard.received(&frame(HEADERS, 0x4, stream, 20)).expect("headers");
            guard.received(&frame(RST_STREAM, 0, stream, 4)).is_err()
        });
        assert_eq!(refused, Some(usize::try_from(MIN_RESETS).expect("small") - 1), "open-then-cancel");
        let mut guard = connected();
        guard.received(&frame(HEADERS, 0x4, 1, 20)).expect("headers");
        let refused = (0..500).position(|_| guard.received(&frame(RST_STREAM, 0, 1, 4)).is_err());
        assert_eq!(refused, Some(99), "resets beyond the streams opened");
    }

    #[test]
    fn http1_connections_are_not_parsed() {
        let mut guard = FrameGuard::new();
        guard.received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").expect("http/1");
        for _ in 0..1000 {
            guard.received(&frame(PING, 0, 0, 8)).expect("not frames");
        }
        assert!(!guard.inbound.is_http2());
    }
}
