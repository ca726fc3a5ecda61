//! Federation entity fetches: building one `_entities` batch (representations with a compound
//! key and required fields, equal ones sent once) for 100 parents, and merging the answer back.
//! Run: `cargo bench --bench federation`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use switchyard::plan::entities::EntityBatch;
use switchyard::schema::FieldSet;

fn federation(c: &mut Criterion) {
    let key = FieldSet::parse("sku variant { id }").expect("key");
    let requires = FieldSet::parse("price weight").expect("requires");
    // 100 parents, 50 distinct products.
    let parents: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            let n = i % 50;
            json!({"sku": format!("s{n}"), "variant": {"id": format!("v{n}")}, "price": n * 10, "weight": n, "name": "x"})
        })
        .collect();
    c.bench_function("federation/batch_100_parents", |b| {
        b.iter(|| {
            let objects = black_box(&parents).iter().filter_map(serde_json::Value::as_object);
            EntityBatch::new(objects, "Product", &key, Some(&requires), "")
        })
    });
}

criterion_group!(benches, federation);
criterion_main!(benches);
