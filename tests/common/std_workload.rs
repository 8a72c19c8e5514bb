//! Std-heavy code that a global allocator must run with every byte intact.
//!
//! Each `tests/global_<strategy>.rs` installs one `Heap<...>` as the `#[global_allocator]` and
//! calls `global_allocator_tests!(GLOBAL)`, which turns every workload below into a test (the
//! test harness runs them on several threads at once, on the same heap). Every workload
//! checks its own results against values computed another way (closed forms, a second data
//! structure, a round trip), so a corrupted byte fails the test.
#![allow(dead_code)]

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, realloc};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use workloads::Rng;

// ---------------------------------------------------------------------------------------------
// Collections.

/// Vec growth, HashMap and BTreeMap churn, VecDeque, HashSet; results cross-checked.
pub fn collections() {
    // Vec growth by push, with a closed-form sum.
    let n = 300_000u64;
    let v: Vec<u64> = (0..n).collect();
    assert_eq!(v.iter().sum::<u64>(), n * (n - 1) / 2);

    // HashMap and BTreeMap fed the same churn must agree at every checkpoint.
    let mut rng = Rng::seeded(1);
    let mut h: HashMap<u64, String> = HashMap::new();
    let mut b: BTreeMap<u64, String> = BTreeMap::new();
    for step in 0..120_000u64 {
        let k = rng.below(20_000) as u64;
        if rng.below(3) == 0 {
            assert_eq!(h.remove(&k), b.remove(&k), "step {step}: remove {k}");
        } else {
            let val = format!("value-{k}-{step}-{}", "x".repeat((k % 40) as usize));
            assert_eq!(h.insert(k, val.clone()), b.insert(k, val), "step {step}: insert {k}");
        }
        if step % 30_000 == 0 {
            h.shrink_to_fit();
        }
    }
    assert_eq!(h.len(), b.len());
    for (k, val) in &b {
        assert_eq!(h.get(k), Some(val), "key {k}");
        assert!(val.starts_with(&format!("value-{k}-")), "{val}");
        assert_eq!(val.matches('x').count(), (k % 40) as usize);
    }

    // A queue of boxed slices rotated many times.
    let mut q: VecDeque<Box<[u32]>> =
        (0..1000u32).map(|i| vec![i; (i % 50) as usize + 1].into_boxed_slice()).collect();
    for _ in 0..20_000 {
        let x = q.pop_front().unwrap();
        q.push_back(x);
    }
    for x in &q {
        assert!(x.iter().all(|&e| e == x[0]) && x.len() == (x[0] % 50) as usize + 1);
    }

    // A set of strings, rebuilt.
    let set: HashSet<String> = (0..50_000).map(|i| format!("{i:08x}")).collect();
    let mut sorted: Vec<&String> = set.iter().collect();
    sorted.sort();
    assert_eq!(sorted.len(), 50_000);
    assert!(sorted.iter().enumerate().all(|(i, s)| **s == format!("{i:08x}")));
}

// ---------------------------------------------------------------------------------------------
// Strings and formatting.

/// String building, formatting, splitting, replacing; lengths and contents checked.
pub fn strings_and_formatting() {
    let mut s = String::new();
    for i in 0..100_000u32 {
        write!(s, "{i},").unwrap();
    }
    let parsed: Vec<u32> = s.trim_end_matches(',').split(',').map(|x| x.parse().unwrap()).collect();
    assert_eq!(parsed.len(), 100_000);
    assert!(parsed.iter().enumerate().all(|(i, &x)| x as usize == i));

    let words: Vec<String> = (0..20_000).map(|i| format!("w{:x}é{}", i * 7919, "ß".repeat(i % 5))).collect();
    let joined = words.join(" ");
    let upper = joined.to_uppercase();
    assert_eq!(upper.split(' ').count(), words.len());
    let back: Vec<String> = upper.split(' ').map(|w| w.to_lowercase().replace("ss", "ß")).collect();
    // "ß".to_uppercase() is "SS"; lower-casing and replacing restores the words.
    assert_eq!(back, words);

    let mut total = 0usize;
    for i in 0..5000 {
        let f = format!("{:>10}|{:<8.3}|{:#x}|{:?}", i, i as f64 / 7.0, i, Some(i));
        total += f.len();
        assert!(f.contains(&format!("{i:#x}")));
    }
    let expected: usize = (0..5000)
        .map(|i| {
            10 + 1
                + 8.max(format!("{:.3}", i as f64 / 7.0).len())
                + 1
                + format!("{i:#x}").len()
                + 1
                + format!("Some({i})").len()
        })
        .sum();
    assert_eq!(total, expected);
}

// ---------------------------------------------------------------------------------------------
// A JSON parser and serializer.

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Serializes compactly.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => write!(out, "{n:?}").unwrap(),
            Json::Str(s) => write_str(s, out),
            Json::Arr(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Obj(o) => {
                out.push('{');
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// Counts nodes (a checksum of the shape).
    pub fn nodes(&self) -> usize {
        match self {
            Json::Arr(a) => 1 + a.iter().map(Json::nodes).sum::<usize>(),
            Json::Obj(o) => 1 + o.iter().map(|(_, v)| v.nodes()).sum::<usize>(),
            _ => 1,
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A recursive-descent JSON parser.
pub struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    pub fn parse(text: &'a str) -> Result<Json, String> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at {}", p.i));
        }
        Ok(v)
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\t' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", c as char, self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'n') => self.word("null", Json::Null),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(a));
                        }
                        _ => return Err(format!("bad array at {}", self.i)),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut o = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(o));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    o.push((k, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(o));
                        }
                        _ => return Err(format!("bad object at {}", self.i)),
                    }
                }
            }
            Some(_) => self.number(),
            None => Err("unexpected end".to_string()),
        }
    }

    fn word(&mut self, w: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(v)
        } else {
            Err(format!("bad literal at {}", self.i))
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        {
            self.i += 1;
        }
        let t = std::str::from_utf8(&self.s[start..self.i]).unwrap();
        t.parse().map(Json::Num).map_err(|e| format!("bad number {t:?} at {start}: {e}"))
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(format!("expected string at {}", self.i));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match *self.s.get(self.i).ok_or("unterminated string")? {
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|e| e.to_string());
                }
                b'\\' => {
                    let esc = *self.s.get(self.i + 1).ok_or("bad escape")?;
                    self.i += 2;
                    match esc {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 4])
                                .map_err(|e| e.to_string())?;
                            let c = char::from_u32(u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?)
                                .ok_or("bad code point")?;
                            self.i += 4;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(format!("bad escape at {}", self.i)),
                    }
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

/// A random document of about `budget` nodes.
pub fn random_json(rng: &mut Rng, depth: u32, budget: &mut i64) -> Json {
    *budget -= 1;
    let pick = if depth == 0 || *budget <= 0 { rng.below(4) } else { rng.below(7) };
    match pick {
        0 => Json::Null,
        1 => Json::Bool(rng.below(2) == 0),
        2 => Json::Num(match rng.below(3) {
            0 => rng.below(1 << 40) as f64,
            1 => -(rng.below(100_000) as f64) / 64.0,
            _ => (rng.next_u64() >> 11) as f64 * 1e-3,
        }),
        3 => {
            const CHARS: [char; 12] = ['a', 'Z', '7', ' ', '"', '\\', '\n', '\t', 'é', '→', '\u{1}', '字'];
            Json::Str((0..rng.below(24)).map(|_| CHARS[rng.below(CHARS.len())]).collect())
        }
        4 | 5 => Json::Arr((0..rng.below(12)).map(|_| random_json(rng, depth - 1, budget)).collect()),
        _ => Json::Obj(
            (0..rng.below(10))
                .map(|i| (format!("key{i}_{}", rng.below(1000)), random_json(rng, depth - 1, budget)))
                .collect(),
        ),
    }
}

/// Builds a document, serializes it, parses it back, and serializes again: all equal.
pub fn json_roundtrip() {
    let mut rng = Rng::seeded(2024);
    for round in 0..4 {
        let mut budget = 60_000;
        let doc = Json::Arr((0..200).map(|_| random_json(&mut rng, 8, &mut budget)).collect());
        let mut text = String::new();
        doc.write(&mut text);
        let parsed = Parser::parse(&text).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(parsed.nodes(), doc.nodes());
        assert!(parsed == doc, "round {round}: the parsed document differs from the original");
        let mut again = String::new();
        parsed.write(&mut again);
        assert_eq!(again, text);
    }
}

// ---------------------------------------------------------------------------------------------
// Large alignments.

#[repr(C, align(4096))]
struct PageSized([u64; 512]);

/// `#[repr(align(4096))]` values in Box and Vec, and raw layouts aligned to 64 KiB and 1 MiB.
pub fn large_alignments() {
    let pages: Vec<Box<PageSized>> = (0..64u64).map(|i| Box::new(PageSized([i; 512]))).collect();
    for (i, p) in pages.iter().enumerate() {
        assert!((&**p as *const PageSized as usize).is_multiple_of(4096));
        assert!(p.0.iter().all(|&x| x == i as u64));
    }
    let mut v: Vec<PageSized> = Vec::new();
    for i in 0..40u64 {
        v.push(PageSized([i * 3; 512]));
        assert!((v.as_ptr() as usize).is_multiple_of(4096));
    }
    assert!(v.iter().enumerate().all(|(i, p)| p.0[511] == i as u64 * 3));

    for (size, align) in [(3 << 20, 1 << 20), (100, 1 << 20), (5000, 1 << 16), (1, 1 << 13)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size; the block is checked non-null before use and freed with its
        // layout; realloc keeps the alignment and is given a non-zero size.
        unsafe {
            let p = alloc(layout);
            assert!(!p.is_null(), "alloc {layout:?}");
            assert!((p as usize).is_multiple_of(align), "{p:p} not aligned to {align}");
            for i in (0..size).step_by(997) {
                *p.add(i) = i as u8;
            }
            let q = realloc(p, layout, size * 2);
            assert!(!q.is_null() && (q as usize).is_multiple_of(align));
            for i in (0..size).step_by(997) {
                assert_eq!(*q.add(i), i as u8, "realloc of {layout:?} lost byte {i}");
            }
            dealloc(q, Layout::from_size_align(size * 2, align).unwrap());
            let z = alloc_zeroed(layout);
            assert!(!z.is_null() && (z as usize).is_multiple_of(align));
            assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0), "alloc_zeroed {layout:?}");
            dealloc(z, layout);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Growing vectors.

/// A byte vector grown to 100 MB in chunks, and a vector of u64 grown by push; checksummed.
pub fn vec_growth_100mb() {
    const TARGET: usize = 100 * 1000 * 1000;
    let chunk: Vec<u8> = (0..4096u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let chunk_sum: u64 = chunk.iter().map(|&b| b as u64).sum();
    let mut v: Vec<u8> = Vec::new();
    while v.len() + chunk.len() <= TARGET {
        v.extend_from_slice(&chunk);
    }
    let chunks = v.len() / chunk.len();
    assert_eq!(v.len(), chunks * 4096);
    let sum: u64 = v.iter().map(|&b| b as u64).sum();
    assert_eq!(sum, chunk_sum * chunks as u64);
    assert!(v.chunks(4096).all(|c| c == &chunk[..]));
    drop(v);

    let mut w: Vec<u64> = Vec::new();
    for i in 0..4_000_000u64 {
        w.push(i ^ 0xABCD);
    }
    w.shrink_to_fit();
    assert!(w.iter().enumerate().all(|(i, &x)| x == i as u64 ^ 0xABCD));
}

// ---------------------------------------------------------------------------------------------
// Threads.

/// 8 threads in a ring: each builds data, sends it to the next thread, which checks and drops
/// it (so every block is freed by a thread other than the one that allocated it).
pub fn threads_drop_each_others_data() {
    const THREADS: usize = 8;
    const ROUNDS: u64 = 400;
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<(usize, u64, Vec<String>, Box<[u64]>)>()).unzip();
    let checked = Arc::new(Mutex::new(0u64));
    let mut handles = Vec::new();
    for (t, rx) in receivers.into_iter().enumerate() {
        let tx = senders[(t + 1) % THREADS].clone();
        let checked = Arc::clone(&checked);
        handles.push(thread::spawn(move || {
            let mut rng = Rng::seeded(t as u64 + 100);
            for round in 0..ROUNDS {
                let n = rng.below(50) + 1;
                let strings: Vec<String> =
                    (0..n).map(|i| format!("t{t}-r{round}-i{i}-{}", "#".repeat(i))).collect();
                let nums: Box<[u64]> = (0..rng.below(2000) as u64 + 1).map(|i| i * (t as u64 + 1)).collect();
                tx.send((t, round, strings, nums)).unwrap();
                let (from, r, s, b) = rx.recv().unwrap();
                assert_eq!(from, (t + THREADS - 1) % THREADS);
                assert_eq!(r, round);
                for (i, x) in s.iter().enumerate() {
                    assert_eq!(*x, format!("t{from}-r{r}-i{i}-{}", "#".repeat(i)));
                }
                assert!(b.iter().enumerate().all(|(i, &x)| x == i as u64 * (from as u64 + 1)));
                *checked.lock().unwrap() += 1;
            }
        }));
    }
    drop(senders);
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(*checked.lock().unwrap(), THREADS as u64 * ROUNDS);
}

/// A 64-byte message.
struct Msg {
    seq: u64,
    producer: u64,
    payload: [u64; 6],
}

/// Two producers send boxed 64-byte messages through a bounded channel to one consumer,
/// which checks every message and the per-producer sequence.
pub fn producer_consumer() {
    const PER_PRODUCER: u64 = 100_000;
    let (tx, rx) = mpsc::sync_channel::<Box<Msg>>(1024);
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || {
                for seq in 0..PER_PRODUCER {
                    let payload = [seq ^ p, seq * 3, !seq, p, seq.rotate_left(7), 42];
                    tx.send(Box::new(Msg { seq, producer: p, payload })).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut next = [0u64; 2];
    let mut count = 0u64;
    for m in rx {
        let (p, seq) = (m.producer, m.seq);
        assert_eq!(seq, next[p as usize], "producer {p} out of order");
        assert_eq!(m.payload, [seq ^ p, seq * 3, !seq, p, seq.rotate_left(7), 42]);
        next[p as usize] += 1;
        count += 1;
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(count, 2 * PER_PRODUCER);
}

/// Turns every workload into a `#[test]` for the global allocator `$g` (a `Heap`), plus a
/// test that shows the heap really serves the process's allocations.
macro_rules! global_allocator_tests {
    ($g:ident) => {
        #[test]
        fn collections() {
            std_workload::collections();
        }
        #[test]
        fn strings_and_formatting() {
            std_workload::strings_and_formatting();
        }
        #[test]
        fn json_roundtrip() {
            std_workload::json_roundtrip();
        }
        #[test]
        fn large_alignments() {
            std_workload::large_alignments();
        }
        #[test]
        fn vec_growth_100mb() {
            std_workload::vec_growth_100mb();
        }
        #[test]
        fn threads_drop_each_others_data() {
            std_workload::threads_drop_each_others_data();
        }
        #[test]
        fn producer_consumer() {
            std_workload::producer_consumer();
        }
        #[test]
        fn the_heap_serves_the_process() {
            let before = $g.stats();
            let v: Vec<u64> = (0..100_000).collect();
            let during = $g.stats();
            assert!(during.live_objects > 0 && during.live_bytes >= 800_000, "{during:?}");
            assert!(during.source.total() > 0, "no page-source calls: {during:?}");
            assert!(during.peak_live_bytes >= during.live_bytes);
            assert_eq!(v.iter().sum::<u64>(), 100_000 * 99_999 / 2);
            drop(v);
            let after = $g.stats();
            eprintln!("heap stats before: {before:?}\n  during: {during:?}\n  after: {after:?}");
        }
    };
}
