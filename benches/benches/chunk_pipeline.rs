//! Chunk + hash + compress throughput per core: FastCDC cutting, BLAKE3 naming and the
//! sealing step's compression (a probe, then zstd when the probe says it pays), on random
//! data (database pages that do not compress) and on text. One thread; criterion reports
//! bytes per second.

use avocet_transfer::chunk::ChunkId;
use avocet_transfer::chunk::{ChunkSizes, Chunker, chunks};
use avocet_transfer::seal::{Key, compress, seal};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn noise(len: usize) -> Vec<u8> {
    avocet_transfer::testing::noise(len, 0x2545_f491_4f6c_dd1d)
}

fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("{i},customer-{},order {} shipped to zone {}\n", i * 7 % 1000, i * 13, i % 17)
                .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

fn pipeline(c: &mut Criterion) {
    let len = 64 * 1024 * 1024;
    let key = Key::derive(&[7; 32]).expect("key");
    let mut group = c.benchmark_group("chunk_pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(len as u64));
    for (name, data) in [("random", noise(len)), ("text", text(len))] {
        group.bench_function(format!("chunk+hash/{name}"), |b| {
            b.iter(|| {
                chunks(&data[..], ChunkSizes::default())
                    .map(|c| c.map_or(0, |c| c.data.len()))
                    .sum::<usize>()
            })
        });
        group.bench_function(format!("cut/{name}"), |b| {
            b.iter(|| {
                let sizes = ChunkSizes::default();
                fastcdc::v2020::FastCDC::new(&data[..], sizes.min, sizes.avg, sizes.max)
                    .map(|c| c.length)
                    .sum::<usize>()
            })
        });
        group.bench_function(format!("hash/{name}"), |b| {
            b.iter(|| data.chunks(16 * 1024).map(|c| ChunkId::of(c).as_str().len()).sum::<usize>())
        });
        group.bench_function(format!("chunk+hash+compress/{name}"), |b| {
            b.iter(|| {
                let mut chunker = Chunker::new(&data[..], ChunkSizes::default());
                let mut total = 0;
                while let Some(Ok((_, chunk))) = chunker.next_chunk() {
                    let id = ChunkId::of(chunk);
                    total += id.as_str().len();
                    total += compress(chunk).ok().flatten().map_or(chunk.len(), |z| z.len());
                }
                total
            })
        });
        group.bench_function(format!("chunk+hash+seal/{name}"), |b| {
            b.iter(|| {
                chunks(&data[..], ChunkSizes::default())
                    .map(|c| {
                        let c = c.expect("in memory");
                        seal(&key, &c.id, &c.data).map(|s| s.len()).unwrap_or(0)
                    })
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
