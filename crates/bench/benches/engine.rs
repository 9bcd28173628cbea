//! Engine benchmarks: slice + decide, one entity change, re-parenting a
//! group of 1,000 members, and a batch of 100 decisions, at 10k, 100k and
//! 1M stored entities of generated data (`cedar_sidecar_bench::gen`).
//!
//! `CEDAR_BENCH_SIZES=10000,100000` limits the sizes (default: all three).
//! Each size's data is built once and shared by every benchmark of that size.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The allocator the `cedar-sidecar` binary uses, so figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cedar_sidecar::engine::{decide, PackSources, PolicyPack, RequestEntityPolicy};
use cedar_sidecar::entities::{parse_entity_str, EntityChange, EntityMap};
use cedar_sidecar_bench::gen::{env_id, generate, group_id, Dataset, GenValue};
use criterion::{BenchmarkId, Criterion, Throughput};

const SEED: u64 = 42;

fn sizes() -> Vec<usize> {
    std::env::var("CEDAR_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
}

fn pack() -> PolicyPack {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    PolicyPack::load(&PackSources {
        policies: root.join("policies"),
        schema: root.join("schema"),
    })
    .unwrap_or_else(|problems| panic!("{}", problems.render()))
}

struct Fixture {
    size: usize,
    data: Dataset,
    store: EntityMap,
}

fn fixture(size: usize) -> Fixture {
    let data = generate(size, SEED);
    let store = EntityMap::from_entities(data.to_stored().unwrap(), 1);
    Fixture { size, data, store }
}

/// Benchmarked requests carry no entities: the default rules.
const TRUST: RequestEntityPolicy = RequestEntityPolicy::DEFAULT;

fn bench_decide(c: &mut Criterion, pack: &PolicyPack, f: &Fixture) {
    let requests = f.data.requests(1_000, SEED + 1);
    let mut group = c.benchmark_group("decide");
    let mut next = 0;
    group.bench_with_input(BenchmarkId::from_parameter(f.size), &f.store, |b, store| {
        b.iter(|| {
            let request = &requests[next % requests.len()];
            next += 1;
            black_box(decide(pack, store, request, &TRUST).unwrap())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("batch_100");
    group.throughput(Throughput::Elements(100));
    let batch = f.data.requests(100, SEED + 2);
    group.bench_with_input(BenchmarkId::from_parameter(f.size), &f.store, |b, store| {
        b.iter(|| {
            for request in &batch {
                black_box(decide(pack, store, request, &TRUST).unwrap());
            }
        })
    });
    group.finish();
}

fn bench_changes(c: &mut Criterion, pack: &PolicyPack, f: &Fixture) {
    // One user gets a new email: a full entity, as a sync source delivers it.
    let mut user = f.data.find("User", "org0-user-500").unwrap().clone();
    user.attrs.retain(|(name, _)| *name != "email");
    user.attrs
        .push(("email", GenValue::Str("changed@example.com".into())));
    let change = EntityChange::Upsert(Arc::new(user.to_stored().unwrap()));
    let user_json = user.to_json().to_string();

    let mut group = c.benchmark_group("apply_one_change");
    group.bench_with_input(BenchmarkId::new("stored", f.size), &f.store, |b, store| {
        b.iter(|| {
            let mut next = store.clone();
            next.apply([change.clone()], 2);
            next
        })
    });
    // The same change as the change stream delivers it, entity JSON text:
    // parse + schema check + apply.
    group.bench_with_input(
        BenchmarkId::new("from_json", f.size),
        &f.store,
        |b, store| {
            b.iter(|| {
                let entity =
                    parse_entity_str(&user_json, &pack.schema, &pack.entity_shapes).unwrap();
                let mut next = store.clone();
                next.apply([EntityChange::Upsert(Arc::new(entity))], 2);
                next
            })
        },
    );
    group.finish();

    // Re-parenting a group of 1,000 members: every member of org 0's group 0
    // moves to group 1 (1,000 upserts), or group 0 itself moves to another
    // environment (one upsert; ancestry of its members follows for free).
    let moved: Vec<EntityChange> = f
        .data
        .big_group_members(0)
        .map(|member| {
            let mut member = member.clone();
            for parent in &mut member.parents {
                if parent.0 == "Group" && parent.1 == group_id(0, 0) {
                    parent.1 = group_id(0, 1);
                }
            }
            EntityChange::Upsert(Arc::new(member.to_stored().unwrap()))
        })
        .collect();
    assert_eq!(moved.len(), 1_000);
    let mut group0 = f.data.find("Group", &group_id(0, 0)).unwrap().clone();
    group0.parents = vec![("Environment", env_id(0, 5))];
    let regroup = EntityChange::Upsert(Arc::new(group0.to_stored().unwrap()));

    let mut group = c.benchmark_group("reparent_group_of_1000");
    group.bench_with_input(
        BenchmarkId::new("move_members", f.size),
        &f.store,
        |b, store| {
            b.iter(|| {
                let mut next = store.clone();
                next.apply(moved.iter().cloned(), 2);
                next
            })
        },
    );
    group.bench_with_input(
        BenchmarkId::new("move_group", f.size),
        &f.store,
        |b, store| {
            b.iter(|| {
                let mut next = store.clone();
                next.apply([regroup.clone()], 2);
                next
            })
        },
    );
    group.finish();
}

fn main() {
    let pack = pack();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in sizes() {
        let f = fixture(size);
        bench_decide(&mut c, &pack, &f);
        bench_changes(&mut c, &pack, &f);
        drop(f);
    }
    c.final_summary();
}
