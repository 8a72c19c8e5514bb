//! The churn: `CHURN_LIVE` live objects of the churn mix, replaced at random, one thread.
//!
//! Kept as lean as an allocator benchmark needs: a replacement frees one object and
//! allocates another, writing and later checking one tag byte at its head (the line the
//! allocator touches anyway), so a block handed out twice is caught without a stamp's second
//! cache line. [`Churn`] precomputes the replacements, so a benchmark times no generator.

use core::alloc::Layout;

use crate::check::{Alloc, Check};
use crate::rng::{CHURN_LIVE, Rng, churn_size};

/// A precomputed churn: `CHURN_LIVE` initial sizes, then replacement steps (slot, new size).
pub struct Churn {
    /// Sizes of the initial objects.
    pub initial: Vec<usize>,
    /// Replacements: the slot to free and the size of its new object.
    pub steps: Vec<(u32, usize)>,
}

impl Churn {
    /// `steps` replacements drawn from `seed`.
    pub fn new(seed: u64, steps: usize) -> Self {
        let mut rng = Rng::seeded(seed);
        let initial = (0..CHURN_LIVE).map(|_| churn_size(&mut rng)).collect();
        let steps = (0..steps).map(|_| (rng.below(CHURN_LIVE) as u32, churn_size(&mut rng))).collect();
        Churn { initial, steps }
    }
}

/// One live object: address, layout, and the tag byte written at its head.
#[derive(Clone, Copy)]
struct Slot {
    ptr: *mut u8,
    layout: Layout,
    tag: u8,
}

/// The live set of a churn in allocator `A`.
pub struct Live<A: Alloc> {
    alloc: A,
    slots: Vec<Slot>,
    /// Bytes requested by the live objects.
    pub live_bytes: usize,
    made: u8,
}

impl<A: Alloc> Live<A> {
    /// Allocates objects of the given sizes in `alloc`.
    pub fn fill(alloc: A, sizes: &[usize]) -> Check<Self> {
        let mut me = Live { alloc, slots: Vec::with_capacity(sizes.len()), live_bytes: 0, made: 0 };
        for &size in sizes {
            let slot = me.make(size)?;
            me.slots.push(slot);
            me.live_bytes += size;
        }
        Ok(me)
    }

    /// Live objects.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no object is live.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    #[inline]
    fn make(&mut self, size: usize) -> Check<Slot> {
        let layout = Layout::from_size_align(size, 8).map_err(|e| e.to_string())?;
        // SAFETY: the churn's sizes are non-zero.
        let ptr = unsafe { self.alloc.alloc(layout) };
        if ptr.is_null() {
            return Err(format!("allocation of {size} B failed in the churn"));
        }
        self.made = self.made.wrapping_add(1);
        // SAFETY: the block holds at least one byte.
        unsafe { ptr.write_volatile(self.made) };
        Ok(Slot { ptr, layout, tag: self.made })
    }

    #[inline]
    fn unmake(&self, s: Slot) -> Check {
        // SAFETY: `s` is a live block of at least one byte.
        let tag = unsafe { s.ptr.read_volatile() };
        if tag != s.tag {
            return Err(overwritten(s, tag));
        }
        // SAFETY: `s` is a live block of `alloc` with its layout, freed once.
        unsafe { self.alloc.dealloc(s.ptr, s.layout) };
        Ok(())
    }

    /// One replacement: frees the object in `slot`, allocates one of `size` bytes there.
    #[inline]
    pub fn replace(&mut self, slot: u32, size: usize) -> Check {
        let old = self.slots[slot as usize];
        self.unmake(old)?;
        self.slots[slot as usize] = self.make(size)?;
        self.live_bytes = self.live_bytes - old.layout.size() + size;
        Ok(())
    }

    /// Frees the object in the last slot (the live set shrinks by one).
    pub fn pop(&mut self) -> Check {
        let Some(s) = self.slots.pop() else { return Ok(()) };
        self.live_bytes -= s.layout.size();
        self.unmake(s)
    }

    /// Adds an object of `size` bytes (the live set grows by one).
    pub fn push(&mut self, size: usize) -> Check {
        let s = self.make(size)?;
        self.slots.push(s);
        self.live_bytes += size;
        Ok(())
    }

    /// Frees every object, checking each tag.
    pub fn free_all(mut self) -> Check {
        while !self.slots.is_empty() {
            self.pop()?;
        }
        Ok(())
    }
}

#[cold]
fn overwritten(s: Slot, found: u8) -> String {
    format!(
        "churn block {:p} ({} B) holds tag {found}, not {}: overwritten while live",
        s.ptr,
        s.layout.size(),
        s.tag
    )
}

impl<A: Alloc> Drop for Live<A> {
    fn drop(&mut self) {
        for s in self.slots.drain(..) {
            // SAFETY: every slot holds a live block of `alloc` with its layout.
            unsafe { self.alloc.dealloc(s.ptr, s.layout) };
        }
    }
}
