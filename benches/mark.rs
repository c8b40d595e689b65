//! Criterion benchmark of the mark phase over a synthetic registry graph of
//! the size the README's benchmark tree has: 2,000 repositories, 100,000
//! manifests, shared base layers, multi-arch indexes and untagged manifests.

use criterion::{criterion_group, criterion_main, Criterion};
use regsweep::graph::Node;
use regsweep::manifest::Kind;
use regsweep::mark::{mark, Mode, RepoRoots};
use std::collections::HashMap;

/// Ids: 0..100_000 manifests, then blobs.
fn graph(repos: u32, per_repo: u32) -> (Vec<RepoRoots>, HashMap<u32, Node>) {
    let manifests = repos * per_repo;
    let base_layers = 500;
    let mut next_blob = manifests + base_layers;
    let mut nodes = HashMap::with_capacity(manifests as usize);
    let mut roots = Vec::with_capacity(repos as usize);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for r in 0..repos {
        let first = r * per_repo;
        let mut tag_targets = Vec::new();
        let mut i = 0;
        while i < per_repo {
            let id = first + i;
            if rnd() % 10 == 0 && i + 3 < per_repo {
                // multi-arch: index + 2 children
                nodes.insert(
                    id,
                    Node {
                        kind: Some(Kind::Index),
                        children: vec![id + 1, id + 2],
                        ..Default::default()
                    },
                );
                tag_targets.push(id);
                for c in [id + 1, id + 2] {
                    let blobs = vec![
                        next_blob,
                        next_blob + 1,
                        manifests + (rnd() % base_layers as u64) as u32,
                    ];
                    next_blob += 2;
                    nodes.insert(
                        c,
                        Node {
                            kind: Some(Kind::Image),
                            blobs,
                            ..Default::default()
                        },
                    );
                }
                i += 3;
                continue;
            }
            let mut blobs = vec![next_blob, manifests + (rnd() % base_layers as u64) as u32];
            next_blob += 1;
            for _ in 0..(rnd() % 5) {
                blobs.push(next_blob);
                next_blob += 1;
            }
            nodes.insert(
                id,
                Node {
                    kind: Some(Kind::Image),
                    blobs,
                    ..Default::default()
                },
            );
            if rnd() % 3 != 0 {
                tag_targets.push(id);
            }
            i += 1;
        }
        roots.push(RepoRoots {
            revisions: (first..first + per_repo).collect(),
            tag_targets,
        });
    }
    (roots, nodes)
}

fn bench(c: &mut Criterion) {
    let (roots, nodes) = graph(2_000, 50);
    let mut g = c.benchmark_group("mark_2000_repos_100k_manifests");
    g.sample_size(10);
    g.bench_function("keep_untagged", |b| {
        b.iter(|| mark(&roots, &nodes, Mode::KeepUntagged))
    });
    g.bench_function("delete_untagged", |b| {
        b.iter(|| mark(&roots, &nodes, Mode::DeleteUntagged))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
