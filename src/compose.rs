//! Compositions chosen at run time: the grammar of strategy names, its parse tree ([`Spec`])
//! and the static node pool that holds the inner strategies of an
//! [`AnyStrategy`] composition.
//!
//! # Grammar
// ANCHOR: grammar
//! ```text
//! strategy := base | "tcache(" strategy ")" | "arenas(" strategy ")"
//!           | "segregate(" LIMIT "," strategy "," strategy ")"
//! base     := "first-fit" | "next-fit" | "best-fit" | "segregated-fit" | "tiered"
//! LIMIT    := decimal bytes, at least 1
//! ```
// ANCHOR_END: grammar
//! with one restriction: no `arenas(...)` inside another (see [`AnyInner`]).
//! Case and whitespace do not matter; [`Spec`]'s `Display` writes the canonical form (lower
//! case, no spaces), the names of the allocator table: `tcache(arenas(best-fit))`,
//! `segregate(1024,segregated-fit,best-fit)`. `arenas(...)` has
//! [`DEFAULT_ARENAS`](crate::strategies::layers::DEFAULT_ARENAS) arenas.
//!
//! # Why a node pool
//! Strategy methods are generic over the page source, so a strategy cannot be a trait
//! object, and an enum cannot hold itself by value. A composed [`AnyStrategy`] therefore
//! holds its inner strategies by `&'static` reference (`Strategy` is implemented for
//! `&'static S`), and they live in [`POOL_NODES`] const-initialised slots of a `static`
//! (one pool of [`AnyStrategy`], one of [`AnyInner`]):
//! no global allocator, nothing to do before a composition is built, usable in `no_std` and
//! in the preload library. A slot is taken for good: compositions are chosen once, when a
//! program starts (an `arenas(...)` takes one slot per arena). A slot is as large as the
//! largest strategy value (the first- and next-fit indexes keep their summary tree inline),
//! and a composition is built by value, level by level: call [`AnyStrategy::from_name`] on a
//! thread with a main-thread-sized stack.

use core::cell::UnsafeCell;
use core::fmt;
use core::mem::MaybeUninit;
use core::str::FromStr;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::any::{AnyInner, AnyStrategy, StrategyKind, UnknownStrategy};

/// Most nodes of one [`Spec`].
pub const MAX_SPEC_NODES: usize = 16;
/// Slots of the static node pool.
pub const POOL_NODES: usize = 24;

/// One node of a parsed name.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SpecNode {
    /// A base strategy.
    Base(StrategyKind),
    /// `tcache(inner)`, the index of `inner`.
    ThreadCache(u8),
    /// `arenas(inner)`.
    Arenas(u8),
    /// `segregate(limit, small, large)`.
    Segregate {
        /// Requests up to this many bytes go to `small`.
        limit: usize,
        /// The small side.
        small: u8,
        /// The large side.
        large: u8,
    },
}

/// A parsed strategy name: a tree of at most [`MAX_SPEC_NODES`] nodes, children before
/// parents, the last node the root. No allocation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    nodes: [SpecNode; MAX_SPEC_NODES],
    len: u8,
}

impl Spec {
    /// The spec of one base strategy.
    pub const fn base(kind: StrategyKind) -> Spec {
        Spec { nodes: [SpecNode::Base(kind); MAX_SPEC_NODES], len: 1 }
    }

    /// The root node's index.
    fn root(&self) -> u8 {
        self.len - 1
    }

    /// Nodes in the tree (at least 1).
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Never: a spec has at least one node.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Node `i`.
    pub fn node(&self, i: u8) -> SpecNode {
        self.nodes[usize::from(i)]
    }

    /// The base strategy, if the spec is one (no layer).
    pub fn as_base(&self) -> Option<StrategyKind> {
        match self.node(self.root()) {
            SpecNode::Base(k) => Some(k),
            _ => None,
        }
    }

    /// Pool slots building this spec takes.
    pub fn pool_nodes(&self) -> usize {
        self.count(self.root(), false)
    }

    fn count(&self, i: u8, held: bool) -> usize {
        let here = usize::from(held);
        match self.node(i) {
            SpecNode::Base(_) => here,
            SpecNode::ThreadCache(c) => here + self.count(c, true),
            SpecNode::Arenas(c) => here + crate::strategies::layers::DEFAULT_ARENAS * self.count(c, true),
            SpecNode::Segregate { small, large, .. } => {
                here + self.count(small, true) + self.count(large, true)
            }
        }
    }

    fn push(&mut self, n: SpecNode) -> Result<u8, UnknownStrategy> {
        let i = usize::from(self.len);
        if i == MAX_SPEC_NODES {
            return Err(UnknownStrategy);
        }
        self.nodes[i] = n;
        self.len += 1;
        Ok(i as u8)
    }

    fn write_node(&self, i: u8, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node(i) {
            SpecNode::Base(k) => f.write_str(k.name()),
            SpecNode::ThreadCache(c) => {
                f.write_str("tcache(")?;
                self.write_node(c, f)?;
                f.write_str(")")
            }
            SpecNode::Arenas(c) => {
                f.write_str("arenas(")?;
                self.write_node(c, f)?;
                f.write_str(")")
            }
            SpecNode::Segregate { limit, small, large } => {
                write!(f, "segregate({limit},")?;
                self.write_node(small, f)?;
                f.write_str(",")?;
                self.write_node(large, f)?;
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_node(self.root(), f)
    }
}

/// A cursor over the name, skipping whitespace.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    /// Inside an `arenas(...)`: another one is refused (see [`AnyInner`]).
    in_arenas: bool,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    /// The next word: letters, digits and '-'.
    fn word(&mut self) -> &[u8] {
        self.skip_space();
        let start = self.at;
        while self.s.get(self.at).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'-') {
            self.at += 1;
        }
        &self.s[start..self.at]
    }

    fn expect(&mut self, c: u8) -> Result<(), UnknownStrategy> {
        self.skip_space();
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            Ok(())
        } else {
            Err(UnknownStrategy)
        }
    }

    fn strategy(&mut self, spec: &mut Spec) -> Result<u8, UnknownStrategy> {
        let w = self.word();
        let is = |name: &str| w.eq_ignore_ascii_case(name.as_bytes());
        if is("tcache") || is("arenas") {
            let tcache = is("tcache");
            if !tcache && self.in_arenas {
                return Err(UnknownStrategy);
            }
            self.expect(b'(')?;
            let outer = self.in_arenas;
            self.in_arenas = outer || !tcache;
            let inner = self.strategy(spec)?;
            self.in_arenas = outer;
            self.expect(b')')?;
            return spec.push(if tcache { SpecNode::ThreadCache(inner) } else { SpecNode::Arenas(inner) });
        }
        if is("segregate") {
            self.expect(b'(')?;
            let limit = parse_limit(self.word())?;
            self.expect(b',')?;
            let small = self.strategy(spec)?;
            self.expect(b',')?;
            let large = self.strategy(spec)?;
            self.expect(b')')?;
            return spec.push(SpecNode::Segregate { limit, small, large });
        }
        let k = StrategyKind::ALL.into_iter().find(|k| is(k.name())).ok_or(UnknownStrategy)?;
        spec.push(SpecNode::Base(k))
    }
}

/// A decimal byte count of at least 1.
fn parse_limit(w: &[u8]) -> Result<usize, UnknownStrategy> {
    let s = core::str::from_utf8(w).map_err(|_| UnknownStrategy)?;
    s.parse::<usize>().ok().filter(|&n| n >= 1).ok_or(UnknownStrategy)
}

impl FromStr for Spec {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = Spec { nodes: [SpecNode::Base(StrategyKind::FirstFit); MAX_SPEC_NODES], len: 0 };
        let mut p = Parser { s: s.as_bytes(), at: 0, in_arenas: false };
        p.strategy(&mut spec)?;
        p.skip_space();
        if p.at != p.s.len() {
            return Err(UnknownStrategy);
        }
        Ok(spec)
    }
}

/// One slot of a pool: written once, then shared for the rest of the program.
struct Node<T> {
    taken: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A node pool. Invariant: a slot's value is initialised by the one thread that won its
/// `taken` flag, before the `&'static` it returns exists; it is never written again, so
/// shared references to it are sound.
pub struct Pool<T>([Node<T>; POOL_NODES]);

// SAFETY: a slot is written only by the one thread that won its `taken` flag, before any
// reference to it exists; afterwards it is only read, through `&T`, which `T: Sync` allows
// on any thread (and `T: Send` lets the value be written by one thread and used by others).
unsafe impl<T: Send + Sync> Sync for Pool<T> {}

impl<T> Pool<T> {
    const fn new() -> Self {
        Pool(
            [const { Node { taken: AtomicBool::new(false), value: UnsafeCell::new(MaybeUninit::uninit()) } };
                POOL_NODES],
        )
    }

    /// Moves `value` into a free slot, for the rest of the program.
    pub(crate) fn place(&'static self, value: T) -> Result<&'static T, PoolFull> {
        let node = self.0.iter().find(|n| !n.taken.swap(true, Ordering::AcqRel)).ok_or(PoolFull)?;
        // SAFETY: this thread won the slot's flag, so no one else writes it and no reference
        // to it exists yet (invariant on `Pool`); once written it is never written again.
        unsafe { Ok((*node.value.get()).write(value)) }
    }
}

/// The slots of the strategies a composition holds outside `arenas(...)`.
pub(crate) static POOL: Pool<AnyStrategy> = Pool::new();
/// The slots of the strategies inside `arenas(...)`.
pub(crate) static INNER_POOL: Pool<AnyInner> = Pool::new();

/// The pool has no free slot for a composition.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PoolFull;

impl fmt::Display for PoolFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the composition needs more than the {POOL_NODES} strategy slots of the node pool")
    }
}
