//! `Heap<Tiered>` as the global allocator of a std-heavy program: collections, strings,
//! formatting, 8 threads handing objects to each other through channels, every byte checked,
//! then the heap's checker. Runs without the test harness (its own `main`), so that the
//! checker runs when no other thread allocates.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc;
use std::thread;

use stratalloc::{Heap, Tiered};

#[global_allocator]
static GLOBAL: Heap<Tiered> = Heap::new();

fn word(i: usize) -> String {
    format!("w{i:x}-{}", "z".repeat(i % 40))
}

fn check_word(i: usize, s: &str) {
    assert_eq!(s, word(i), "string {i} corrupted");
}

fn collections(seed: usize) {
    let mut map: HashMap<String, Vec<u32>> = HashMap::new();
    let mut tree = BTreeMap::new();
    let mut queue = VecDeque::new();
    for i in 0..20_000 {
        let k = word(seed + i);
        map.entry(k.clone()).or_default().extend((0..(i % 17) as u32).map(|x| x ^ i as u32));
        tree.insert(i, k);
        queue.push_back(vec![i as u8; i % 300]);
        if queue.len() > 500 {
            let v = queue.pop_front().unwrap();
            assert!(v.iter().all(|&b| b == v.first().copied().unwrap_or(0)));
        }
        if i % 3 == 0 {
            tree.remove(&(i / 2));
        }
    }
    for (i, k) in &tree {
        check_word(seed + i, k);
        let v = &map[k];
        assert_eq!(v.len(), i % 17);
        assert!(v.iter().enumerate().all(|(x, &y)| y == x as u32 ^ *i as u32));
    }
}

fn cross_thread() {
    const THREADS: usize = 8;
    let mut txs = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..THREADS {
        let (tx, rx) = mpsc::channel::<(usize, Vec<String>, Box<[u64]>)>();
        txs.push(tx);
        rxs.push(rx);
    }
    let handles: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let next = txs[(t + 1) % THREADS].clone();
            thread::spawn(move || {
                // Send batches to the next thread, check and drop what the previous one sent.
                for round in 0..200 {
                    let base = t * 1_000_000 + round * 1000;
                    let strings: Vec<String> = (0..50).map(|i| word(base + i)).collect();
                    let nums: Box<[u64]> = (0..(round % 64) * 100).map(|x| (x ^ base) as u64).collect();
                    next.send((base, strings, nums)).unwrap();
                    if round >= 1 {
                        let (b, s, n) = rx.recv().unwrap();
                        s.iter().enumerate().for_each(|(i, w)| check_word(b + i, w));
                        assert!(n.iter().enumerate().all(|(x, &y)| y == (x ^ b) as u64));
                    }
                }
                collections(t * 7);
                drop(next);
                // Drain the rest.
                for (b, s, n) in rx.iter().take(1) {
                    s.iter().enumerate().for_each(|(i, w)| check_word(b + i, w));
                    assert!(n.iter().enumerate().all(|(x, &y)| y == (x ^ b) as u64));
                }
            })
        })
        .collect();
    drop(txs);
    for h in handles {
        h.join().unwrap();
    }
}

fn main() {
    let before = GLOBAL.stats().live_objects;
    collections(0);
    cross_thread();
    let big: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; (i + 1) * 100_000]).collect();
    for (i, v) in big.iter().enumerate() {
        assert!(v.iter().all(|&b| b == i as u8));
    }
    drop(big);
    // SAFETY: every thread this program started has been joined.
    unsafe { GLOBAL.check() }.unwrap_or_else(|e| panic!("heap check failed: {e}"));
    let st = GLOBAL.stats();
    println!(
        "global_tiered: ok; live objects before {before}, now {} ({} bytes); {st:?}",
        st.live_objects, st.live_bytes
    );
}
