//! Real Rust programs: std collections and serde_json doing ordinary work, checked against
//! values computed independently of the allocator.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::{Ctx, Outcome};
use crate::check::{Check, FNV0, fnv, mix};
use crate::rng::Rng;

const WORDS: [&str; 8] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];

/// One generated record: nested objects, arrays, strings, integers, booleans, nulls.
pub(crate) fn record(r: &mut Rng, i: usize) -> Value {
    let tags: Vec<Value> = (0..r.below(6)).map(|_| json!(WORDS[r.below(8)])).collect();
    let nums: Vec<i64> = (0..r.below(12)).map(|_| r.below(1_000_000) as i64 - 500_000).collect();
    json!({
        "id": i,
        "name": format!("user-{i}-{}", r.next_u64() % 10_000),
        "active": r.below(2) == 0,
        "tags": tags,
        "stats": { "scores": nums, "note": WORDS[i % 8].repeat(1 + r.below(4)) },
        "parent": if i.is_multiple_of(5) { Value::Null } else { json!(i / 5) },
    })
}

/// serde_json: generate a document, serialise it, parse it back, compare, serialise again.
pub fn json(c: &Ctx) -> Check<Outcome> {
    let mut r = Rng::new(c.seed, 31);
    let doc = Value::Array((0..c.n(4000)).map(|i| record(&mut r, i)).collect());
    let text = serde_json::to_string(&doc).map_err(|e| e.to_string())?;
    let back: Value = serde_json::from_str(&text).map_err(|e| format!("json parse: {e}"))?;
    if back != doc {
        return Err("json: the parsed document differs from the generated one".into());
    }
    let pretty = serde_json::to_string_pretty(&back).map_err(|e| e.to_string())?;
    let again: Value = serde_json::from_str(&pretty).map_err(|e| format!("json parse: {e}"))?;
    if again != doc {
        return Err("json: the pretty document differs".into());
    }
    Outcome::sum(fnv(fnv(FNV0, text.as_bytes()), pretty.as_bytes()))
}

/// BTreeMap<u64, Vec<u8>> and HashMap<String, u64> churn.
pub fn btree_hash(c: &Ctx) -> Check<Outcome> {
    let mut r = Rng::new(c.seed, 32);
    let mut tree: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut map: HashMap<String, u64> = HashMap::new();
    for _ in 0..c.n(100_000) {
        let key = r.below(50_000) as u64;
        if r.below(3) == 0 {
            tree.remove(&key);
        } else {
            tree.insert(key, vec![key as u8; r.below(64)]);
        }
        let name = format!("key-{}", r.below(20_000));
        if r.below(4) == 0 {
            map.remove(&name);
        } else {
            *map.entry(name).or_default() += key;
        }
    }
    let mut h = FNV0;
    for (k, v) in &tree {
        if v.iter().any(|&b| b != *k as u8) {
            return Err(format!("btree: value of key {k} corrupted"));
        }
        h = fnv(h, &k.to_le_bytes());
        h = fnv(h, &(v.len() as u64).to_le_bytes());
    }
    let unordered = map.iter().fold(0u64, |s, (k, v)| s.wrapping_add(mix(fnv(FNV0, k.as_bytes()) ^ v)));
    Outcome::sum(h ^ unordered)
}

/// String building: format!, push_str, upper-casing, replace, split and join.
pub fn strings(c: &Ctx) -> Check<Outcome> {
    let mut r = Rng::new(c.seed, 33);
    let mut lines: Vec<String> = Vec::new();
    let mut h = FNV0;
    for i in 0..c.n(60_000) {
        let mut s = format!("{i}:{}", WORDS[r.below(8)]);
        for _ in 0..r.below(6) {
            s.push('-');
            s.push_str(WORDS[r.below(8)]);
        }
        if i % 7 == 0 {
            s = s.to_uppercase();
        }
        if i % 5 == 0 {
            s = s.replace("a", "<a>");
        }
        lines.push(s);
        if lines.len() == 512 {
            let joined = lines.join("\n");
            let split: Vec<&str> = joined.split('\n').collect();
            if split.len() != lines.len() || split.iter().zip(&lines).any(|(a, b)| a != b) {
                return Err("strings: split(join(lines)) != lines".into());
            }
            h = fnv(h, joined.as_bytes());
            lines.clear();
        }
    }
    Outcome::sum(fnv(h, lines.concat().as_bytes()))
}

#[derive(Debug, PartialEq)]
enum Token {
    Num(i64),
    Op(char),
    Open,
    Close,
}

enum Expr {
    Num(i64),
    Bin(char, Box<Expr>, Box<Expr>),
}

fn gen_expr(r: &mut Rng, depth: usize, out: &mut String) -> i64 {
    if depth == 0 || r.below(4) == 0 {
        let v = r.below(1000) as i64;
        out.push_str(&v.to_string());
        return v;
    }
    let op = ['+', '-', '*'][r.below(3)];
    out.push('(');
    let a = gen_expr(r, depth - 1, out);
    out.push(' ');
    out.push(op);
    out.push(' ');
    let b = gen_expr(r, depth - 1, out);
    out.push(')');
    apply(op, a, b)
}

fn apply(op: char, a: i64, b: i64) -> i64 {
    match op {
        '+' => a.wrapping_add(b),
        '-' => a.wrapping_sub(b),
        _ => a.wrapping_mul(b),
    }
}

fn tokenize(s: &str) -> Check<Vec<Token>> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(ch) = it.next() {
        match ch {
            ' ' => {}
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            '+' | '-' | '*' => out.push(Token::Op(ch)),
            '0'..='9' => {
                let mut digits = String::from(ch);
                while let Some(d) = it.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                out.push(Token::Num(digits.parse().map_err(|e| format!("parser: {e}"))?));
            }
            _ => return Err(format!("parser: unexpected {ch:?}")),
        }
    }
    Ok(out)
}

fn parse(tokens: &[Token], pos: &mut usize) -> Check<Box<Expr>> {
    let t = tokens.get(*pos).ok_or("parser: unexpected end")?;
    *pos += 1;
    match t {
        Token::Num(v) => Ok(Box::new(Expr::Num(*v))),
        Token::Open => {
            let a = parse(tokens, pos)?;
            let Some(Token::Op(op)) = tokens.get(*pos) else {
                return Err("parser: operator expected".into());
            };
            *pos += 1;
            let b = parse(tokens, pos)?;
            if tokens.get(*pos) != Some(&Token::Close) {
                return Err("parser: ')' expected".into());
            }
            *pos += 1;
            Ok(Box::new(Expr::Bin(*op, a, b)))
        }
        other => Err(format!("parser: unexpected token {other:?}")),
    }
}

fn eval(e: &Expr) -> i64 {
    match e {
        Expr::Num(v) => *v,
        Expr::Bin(op, a, b) => apply(*op, eval(a), eval(b)),
    }
}

fn print(e: &Expr, out: &mut String) {
    match e {
        Expr::Num(v) => out.push_str(&v.to_string()),
        Expr::Bin(op, a, b) => {
            out.push('(');
            print(a, out);
            out.push_str(&format!(" {op} "));
            print(b, out);
            out.push(')');
        }
    }
}

/// A parser: generated expressions are tokenised, parsed into a boxed AST, evaluated and
/// printed back; the value and the text must match what the generator made.
pub fn parser(c: &Ctx) -> Check<Outcome> {
    let mut r = Rng::new(c.seed, 34);
    let mut h = FNV0;
    for _ in 0..c.n(1500) {
        let mut src = String::new();
        let want = gen_expr(&mut r, 10, &mut src);
        let tokens = tokenize(&src)?;
        let mut pos = 0;
        let ast = parse(&tokens, &mut pos)?;
        let got = eval(&ast);
        let mut back = String::new();
        print(&ast, &mut back);
        if got != want || back != src || pos != tokens.len() {
            return Err(format!("parser: evaluated {got}, generated {want}"));
        }
        h = fnv(h, &got.to_le_bytes());
    }
    Outcome::sum(h)
}
