//! Route matching cost with 10 and 1,000 routes: the trie should make both about the same.
//! Run: `cargo bench --bench route_match`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::Method;
use std::hint::black_box;
use switchyard::transcode::route_table::RouteTable;
use switchyard::transcode::template::PathTemplate;

fn table(services: usize) -> RouteTable<usize> {
    let mut table = RouteTable::default();
    let mut n = 0;
    for s in 0..services {
        let templates = [
            (Method::GET, format!("/v1/svc{s}/{{name=shelves/*/books/*}}")),
            (Method::GET, format!("/v1/svc{s}/{{parent=shelves/*}}/books")),
            (Method::POST, format!("/v1/svc{s}/{{parent=shelves/*}}/books")),
            (Method::PATCH, format!("/v1/svc{s}/{{book.name=shelves/*/books/*}}")),
            (Method::POST, format!("/v1/svc{s}/books:import")),
        ];
        for (method, template) in templates {
            table.insert(method, PathTemplate::parse(&template).expect("valid"), n).expect("no conflict");
            n += 1;
        }
    }
    table
}

fn route_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_match");
    for routes in [10usize, 1000] {
        let table = table(routes / 5);
        let last = routes / 5 - 1;
        let get = format!("/v1/svc{last}/shelves/12/books/345");
        let verb = format!("/v1/svc{last}/books:import");
        group.bench_with_input(BenchmarkId::new("get_book", routes), &get, |b, path| {
            b.iter(|| table.find(black_box(&Method::GET), black_box(path)).expect("matches").variables.len())
        });
        group.bench_with_input(BenchmarkId::new("custom_verb", routes), &verb, |b, path| {
            b.iter(|| table.find(black_box(&Method::POST), black_box(path)).expect("matches").variables.len())
        });
        group.bench_with_input(BenchmarkId::new("not_found", routes), &"/v2/nothing/here", |b, path| {
            b.iter(|| table.find(black_box(&Method::GET), black_box(path)).is_err())
        });
    }
    group.finish();
}

criterion_group!(benches, route_match);
criterion_main!(benches);
