//! `Balancer::pick` for every algorithm with 3 and 100 endpoints, from 4 threads at once (the
//! contention a busy gateway puts on one cluster's balancer). Each pick also starts and ends a
//! call on the chosen endpoint, as the gateway does, so the load counters are contended too.
//! Run: `cargo bench --bench balancer`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard::upstream::pool::{Algorithm, Balancer, EndpointLoad, Member};

const THREADS: u64 = 4;

fn balancer(c: &mut Criterion) {
    let algorithms = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastOutstanding,
        Algorithm::WeightedLeastOutstanding,
        Algorithm::PeakEwma,
        Algorithm::Random,
        Algorithm::RingHash,
        Algorithm::Maglev,
    ];
    let mut group = c.benchmark_group("balancer_pick");
    for endpoints in [3usize, 100] {
        for algorithm in algorithms {
            let members = (0..endpoints)
                .map(|i| Member {
                    id: format!("http://10.0.{}.{}:50051", i / 256, i % 256),
                    weight: 1 + (i % 3) as u32,
                    priority: 0,
                    load: Arc::new(EndpointLoad::default()),
                })
                .collect();
            let balancer = Arc::new(Balancer::new(algorithm, members));
            let keys: Arc<Vec<Vec<u8>>> = Arc::new((0..1024).map(|i| format!("client-{i}").into_bytes()).collect());
            group.bench_function(BenchmarkId::new(format!("{algorithm:?}"), endpoints), |b| {
                b.iter_custom(|iters| {
                    let per_thread = iters.div_ceil(THREADS);
                    let started = Instant::now();
                    let threads: Vec<_> = (0..THREADS)
                        .map(|t| {
                            let balancer = balancer.clone();
                            let keys = keys.clone();
                            std::thread::spawn(move || {
                                for i in 0..per_thread {
                                    let key = &keys[((i + t) % 1024) as usize];
                                    let picked = balancer.pick(Some(key)).expect("a member");
                                    let call = balancer.members()[picked].load.start();
                                    black_box(&call);
                                }
                            })
                        })
                        .collect();
                    for thread in threads {
                        thread.join().expect("thread");
                    }
                    // Wall time for all the picks: criterion reports it per pick, so the figure is
                    // the gateway-wide cost of one pick under this contention.
                    started.elapsed().max(Duration::from_nanos(1))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, balancer);
criterion_main!(benches);
