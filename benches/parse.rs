//! Criterion benchmark of manifest parsing: image manifests, indexes and
//! schema 1 manifests of realistic size.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use regsweep::manifest;

fn digest(i: u64) -> String {
    format!("sha256:{:064x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn image(layers: u64) -> String {
    let ls: Vec<String> = (0..layers)
        .map(|i| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}"#,
                digest(i + 1),
                1000 + i
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":1234}},"layers":[{}],"annotations":{{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}}}}"#,
        digest(0),
        ls.join(",")
    )
}

fn index(children: u64) -> String {
    let ms: Vec<String> = (0..children)
        .map(|i| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"architecture":"arch{i}","os":"linux"}}}}"#,
                digest(i + 100),
                500 + i
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        ms.join(",")
    )
}

fn schema1(layers: u64) -> String {
    let ls: Vec<String> = (0..layers)
        .map(|i| format!(r#"{{"blobSum":"{}"}}"#, digest(i)))
        .collect();
    let hist: Vec<String> = (0..layers)
        .map(|i| format!(r#"{{"v1Compatibility":"{{\"id\":\"{i:064x}\",\"created\":\"2016-01-01T00:00:00Z\"}}"}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":1,"name":"library/x","tag":"latest","architecture":"amd64","fsLayers":[{}],"history":[{}]}}"#,
        ls.join(","),
        hist.join(",")
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, doc) in [
        ("oci_image_8_layers", image(8)),
        ("oci_index_6_children", index(6)),
        ("schema1_8_layers", schema1(8)),
    ] {
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| manifest::parse(std::hint::black_box(doc.as_bytes())).unwrap())
        });
    }
    let garbage = image(8).replace("\"layers\"", "\"lay");
    g.bench_function("conservative_refs_corrupt", |b| {
        b.iter_batched(
            || garbage.clone(),
            |d| manifest::conservative_refs(d.as_bytes()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
