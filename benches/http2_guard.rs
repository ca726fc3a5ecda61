//! The HTTP/2 frame guard on the listener's read and write paths (every byte of every HTTP/2
//! connection passes it): a read of 100 small request frames, a read of 16 KiB DATA frames, and
//! a write of answer frames. Run: `cargo bench --bench http2_guard`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard::server::http2_guard::FrameGuard;

fn frame(kind: u8, flags: u8, stream: u32, payload: usize) -> Vec<u8> {
    let len = u32::try_from(payload).expect("small").to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend(std::iter::repeat_n(0u8, payload));
    out
}

fn connected() -> FrameGuard {
    let mut guard = FrameGuard::new();
    guard.received(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").expect("preface");
    guard.received(&frame(0x4, 0, 0, 0)).expect("settings");
    guard
}

fn http2_guard(c: &mut Criterion) {
    let mut group = c.benchmark_group("http2_guard");
    // 100 requests: HEADERS (40 bytes) + a 25-byte DATA frame ending the stream, each.
    let requests: Vec<u8> =
        (0..100u32).flat_map(|i| [frame(0x1, 0x4, 2 * i + 1, 40), frame(0x0, 0x1, 2 * i + 1, 25)].concat()).collect();
    group.throughput(Throughput::Elements(200));
    group.bench_function("read_100_small_requests", |b| {
        b.iter_batched_ref(
            connected,
            |guard| guard.received(black_box(&requests)).expect("allowed"),
            criterion::BatchSize::SmallInput,
        )
    });
    let bulk: Vec<u8> = (0..4).flat_map(|_| frame(0x0, 0, 1, 16_384)).collect();
    group.throughput(Throughput::Bytes(bulk.len() as u64));
    group.bench_function("read_64k_of_data_frames", |b| {
        b.iter_batched_ref(
            connected,
            |guard| guard.received(black_box(&bulk)).expect("allowed"),
            criterion::BatchSize::SmallInput,
        )
    });
    let answers: Vec<u8> =
        (0..100u32).flat_map(|i| [frame(0x1, 0x4, 2 * i + 1, 30), frame(0x0, 0x1, 2 * i + 1, 120)].concat()).collect();
    group.throughput(Throughput::Elements(200));
    group.bench_function("write_100_answers", |b| {
        b.iter_batched_ref(connected, |guard| guard.sent(black_box(&answers)), criterion::BatchSize::SmallInput)
    });
    group.finish();
}

criterion_group!(benches, http2_guard);
criterion_main!(benches);
