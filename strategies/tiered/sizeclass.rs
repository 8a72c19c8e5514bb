//! Size classes, generated at compile time by Go's algorithm.
//!
//! Go original: `runtime/_mkmalloc/mksizeclasses.go`, which writes
//! `internal/runtime/gc/sizeclasses.go`. Here the same algorithm runs as a `const fn`, so the
//! tables below are computed by the compiler, never typed in by hand; a test holds them to the
//! values Go publishes.
//!
//! # Glossary
//! - *size class*: one of [`CLASS_COUNT`] = 68 object sizes; class 0 stands for large objects
//!   (over [`MAX_SMALL_BYTES`]), which get whole page runs instead.
//! - *span class*: `class << 1 | noscan`, 136 of them. Go keeps pointer-free (noscan) objects
//!   apart so that the GC can skip their spans. Rust has no GC: every ordinary object lives in
//!   the noscan span class of its size class; the "scan" halves (even span classes but 0,
//!   the large objects) are unused since the tiny allocator went (issue 22, see the module
//!   docs of mod.rs).
//! - *runtime page*: [`PAGE_BYTES`] = 8 KiB; a span is `CLASS_PAGES[c]` runtime pages.
//!
//! # The algorithm (mksizeclasses.go)
//! 1. Walk `size` from 8 to 32768 in steps of `align`; `align` starts at 8 and, when `size`
//!    reaches a power of two, becomes 16 (from 32 B), `size / 8` (from 128 B) or 256 (from
//!    2048 B).
//! 2. Grow the span from one page until the tail waste `span % size` is at most `span / 8`.
//! 3. If the previous class has the same page count and object count, it takes this larger
//!    size instead of a new class being added.
//! 4. Widen every class to the largest multiple of 128 B that keeps its object count.
//! 5. Per class, `div_mul = ceil(2^32 / size)`, so that
//!    `offset / size == (offset * div_mul) >> 32` for every offset inside a span (checked by
//!    a test): pointer → object index without a division.
//!
//! # Go's table (printed by the test `sizeclass::tests::print_table`; `cargo test
//! print_table -- --nocapture`)
//! ```text
//! class  bytes/obj  bytes/span  objects  tail waste  max waste  min align
//!     1          8        8192     1024           0     87.50%          8
//!     2         16        8192      512           0     43.75%         16
//!     3         24        8192      341           8     29.24%          8
//!     4         32        8192      256           0     21.88%         32
//!     5         48        8192      170          32     31.52%         16
//!     6         64        8192      128           0     23.44%         64
//!     7         80        8192      102          32     19.07%         16
//!     8         96        8192       85          32     15.95%         32
//!     9        112        8192       73          16     13.56%         16
//!    10        128        8192       64           0     11.72%        128
//!    11        144        8192       56         128     11.82%         16
//!    12        160        8192       51          32      9.73%         32
//!    13        176        8192       46          96      9.59%         16
//!    14        192        8192       42         128      9.25%         64
//!    15        208        8192       39          80      8.12%         16
//!    16        224        8192       36         128      8.15%         32
//!    17        240        8192       34          32      6.62%         16
//!    18        256        8192       32           0      5.86%        256
//!    19        288        8192       28         128     12.16%         32
//!    20        320        8192       25         192     11.80%         64
//!    21        352        8192       23          96      9.88%         32
//!    22        384        8192       21         128      9.51%        128
//!    23        416        8192       19         288     10.71%         32
//!    24        448        8192       18         128      8.37%         64
//!    25        480        8192       17          32      6.82%         32
//!    26        512        8192       16           0      6.05%        512
//!    27        576        8192       14         128     12.33%         64
//!    28        640        8192       12         512     15.48%        128
//!    29        704        8192       11         448     13.93%         64
//!    30        768        8192       10         512     13.94%        256
//!    31        896        8192        9         128     15.52%        128
//!    32       1024        8192        8           0     12.40%       1024
//!    33       1152        8192        7         128     12.41%        128
//!    34       1280        8192        6         512     15.55%        256
//!    35       1408       16384       11         896     14.00%        128
//!    36       1536        8192        5         512     14.00%        512
//!    37       1792       16384        9         256     15.57%        256
//!    38       2048        8192        4           0     12.45%       2048
//!    39       2304       16384        7         256     12.46%        256
//!    40       2688        8192        3         128     15.59%        128
//!    41       3072       24576        8           0     12.47%       1024
//!    42       3200       16384        5         384      6.22%        128
//!    43       3456       24576        7         384      8.83%        128
//!    44       4096        8192        2           0     15.60%       4096
//!    45       4864       24576        5         256     16.65%        256
//!    46       5376       16384        3         256     10.92%        256
//!    47       6144       24576        4           0     12.48%       2048
//!    48       6528       32768        5         128      6.23%        128
//!    49       6784       40960        6         256      4.36%        128
//!    50       6912       49152        7         768      3.37%        256
//!    51       8192        8192        1           0     15.61%       8192
//!    52       9472       57344        6         512     14.28%        256
//!    53       9728       49152        5         512      3.64%        512
//!    54      10240       40960        4           0      4.99%       2048
//!    55      10880       32768        3         128      6.24%        128
//!    56      12288       24576        2           0     11.45%       4096
//!    57      13568       40960        3         256      9.99%        256
//!    58      14336       57344        4           0      5.35%       2048
//!    59      16384       16384        1           0     12.49%       8192
//!    60      18432       73728        4           0     11.11%       2048
//!    61      19072       57344        3         128      3.57%        128
//!    62      20480       40960        2           0      6.87%       4096
//!    63      21760       65536        3         256      6.25%        256
//!    64      24576       24576        1           0     11.45%       8192
//!    65      27264       81920        3         128     10.00%        128
//!    66      28672       57344        2           0      4.91%       4096
//!    67      32768       32768        1           0     12.50%       8192
//! ```
//! "max waste" is Go's worst case: every object one byte larger than the previous class, plus
//! the tail, over the span.

/// Runtime page: the unit of spans and of the page heap (Go's `pageSize`, 8 KiB).
pub const PAGE_BYTES: usize = 8192;
/// log2 of [`PAGE_BYTES`].
pub const PAGE_SHIFT: usize = 13;
/// Largest small object; larger requests are page runs (Go's `maxSmallSize`).
pub const MAX_SMALL_BYTES: usize = 32768;
/// Number of size classes including class 0 (Go's `NumSizeClasses`).
pub const CLASS_COUNT: usize = 68;
/// Number of span classes: `CLASS_COUNT << 1` (Go's `numSpanClasses`).
pub const SPAN_CLASS_COUNT: usize = CLASS_COUNT << 1;
/// Requests up to this size use the 8-byte-step table (Go's `smallSizeMax - 8`).
pub const SMALL_SIZE_MAX: usize = 1024;
/// Step of the first lookup table (Go's `smallSizeDiv`).
pub const SMALL_SIZE_DIV: usize = 8;
/// Step of the second lookup table (Go's `largeSizeDiv`).
pub const LARGE_SIZE_DIV: usize = 128;
/// Most objects one span holds (class 1: 8192 / 8).
pub const MAX_OBJECTS_PER_SPAN: usize = 1024;

/// One generated class.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ClassInfo {
    /// Object size in bytes (0 for class 0).
    pub size: u32,
    /// Runtime pages per span.
    pub pages: u32,
}

/// The whole generated table set.
pub struct Tables {
    /// Per class: size and pages.
    pub classes: [ClassInfo; CLASS_COUNT],
    /// `class_of(size)` for `size <= 1016`, indexed by `ceil(size / 8)`.
    pub size_to_class8: [u8; SMALL_SIZE_MAX / SMALL_SIZE_DIV + 1],
    /// `class_of(size)` for larger sizes, indexed by `ceil((size - 1024) / 128)`.
    pub size_to_class128: [u8; (MAX_SMALL_BYTES - SMALL_SIZE_MAX) / LARGE_SIZE_DIV + 1],
    /// Per class: `ceil(2^32 / size)`, Go's `divMul`.
    pub div_mul: [u32; CLASS_COUNT],
}

const fn is_pow2(x: usize) -> bool {
    x & (x - 1) == 0
}

// ANCHOR: gen_classes
/// Steps 1-4 of the algorithm in the module docs.
const fn gen_classes() -> [ClassInfo; CLASS_COUNT] {
    let mut out = [ClassInfo { size: 0, pages: 0 }; CLASS_COUNT];
    let mut n = 1; // class 0 is the large-object class
    let mut align = 8;
    let mut size = align;
    while size <= MAX_SMALL_BYTES {
        if is_pow2(size) {
            if size >= 2048 {
                align = 256;
            } else if size >= 128 {
                align = size / 8;
            } else if size >= 32 {
                align = 16;
            }
        }
        let mut span = PAGE_BYTES;
        while span % size > span / 8 {
            span += PAGE_BYTES;
        }
        let pages = span / PAGE_BYTES;
        let prev = out[n - 1];
        let merge = n > 1 && pages == prev.pages as usize && span / size == span / prev.size as usize;
        if merge {
            out[n - 1].size = size as u32;
        } else {
            assert!(n < CLASS_COUNT, "the algorithm must yield exactly 68 classes");
            out[n] = ClassInfo { size: size as u32, pages: pages as u32 };
            n += 1;
        }
        size += align;
    }
    assert!(n == CLASS_COUNT, "the algorithm must yield exactly 68 classes");
    let mut i = 1;
    while i < CLASS_COUNT {
        let span = out[i].pages as usize * PAGE_BYTES;
        let widened = (span / (span / out[i].size as usize)) & !(LARGE_SIZE_DIV - 1);
        if widened > out[i].size as usize {
            out[i].size = widened as u32;
        }
        i += 1;
    }
    out
}
// ANCHOR_END: gen_classes

/// The first class whose size is at least `size`.
const fn first_class_at_least(classes: &[ClassInfo; CLASS_COUNT], size: usize) -> u8 {
    let mut c = 1;
    while (classes[c].size as usize) < size {
        c += 1;
    }
    c as u8
}

const fn gen_tables() -> Tables {
    let classes = gen_classes();
    let mut size_to_class8 = [0u8; SMALL_SIZE_MAX / SMALL_SIZE_DIV + 1];
    let mut i = 0;
    while i < size_to_class8.len() {
        size_to_class8[i] = first_class_at_least(&classes, i * SMALL_SIZE_DIV);
        i += 1;
    }
    let mut size_to_class128 = [0u8; (MAX_SMALL_BYTES - SMALL_SIZE_MAX) / LARGE_SIZE_DIV + 1];
    let mut i = 0;
    while i < size_to_class128.len() {
        size_to_class128[i] = first_class_at_least(&classes, SMALL_SIZE_MAX + i * LARGE_SIZE_DIV);
        i += 1;
    }
    let mut div_mul = [0u32; CLASS_COUNT];
    let mut c = 1;
    while c < CLASS_COUNT {
        let s = classes[c].size as u64;
        div_mul[c] = ((1u64 << 32).div_ceil(s)) as u32;
        c += 1;
    }
    Tables { classes, size_to_class8, size_to_class128, div_mul }
}

/// The generated tables. A `const`, not a `static`: each crate that inlines a fast path
/// indexes its own copy in its read-only data, so a shared library (the preload) reads it
/// PC-relative rather than through its global offset table.
pub const TABLES: Tables = gen_tables();

/// Object size of each class, as a flat array (the fast path reads this; a `const` as
/// [`TABLES`]).
pub const CLASS_BYTES: [u32; CLASS_COUNT] = {
    let mut a = [0u32; CLASS_COUNT];
    let mut c = 0;
    while c < CLASS_COUNT {
        a[c] = TABLES.classes[c].size;
        c += 1;
    }
    a
};

/// [`CLASS_BYTES`] indexed by any `u8` (0 past the last class): the free path looks a
/// span's size up by its `u8` class with no bounds check.
pub const CLASS_BYTES_BY_U8: [u32; 256] = {
    let mut a = [0u32; 256];
    let mut c = 0;
    while c < CLASS_COUNT {
        a[c] = CLASS_BYTES[c];
        c += 1;
    }
    a
};

// ANCHOR: class_recip
/// `ceil(2^64 / size)` of each class's object size, indexed by any `u8` (0 for class 0 and
/// past the last class): the owner's free finds an object's index and checks that the
/// address starts it with one 64 × 64 → 128-bit multiply (`Span::small_object_start`), in
/// place of the index by `div_mul`, a multiply by the size and a compare. For every size
/// `d >= 2`, `u64::MAX / d + 1` is that ceiling (`d` a power of two: `2^64 / d` exactly).
pub const CLASS_RECIP_BY_U8: [u64; 256] = {
    let mut a = [0u64; 256];
    let mut c = 1;
    while c < CLASS_COUNT {
        a[c] = u64::MAX / CLASS_BYTES[c] as u64 + 1;
        c += 1;
    }
    a
};

/// The object index at byte offset `off` of a span of objects of `size` bytes (`recip` =
/// `ceil(2^64 / size)`, [`CLASS_RECIP_BY_U8`]) holding `nelems` of them, if `off` is the
/// start of one of them; `None` for any other offset (inside an object, past the last one,
/// or any wrapped difference: `off` may be any `usize`). `recip` 0 (class 0) answers `None`.
///
/// Why it is exact, for `size = d` in `2..=2^15` and `nelems <= 1024` (asserted below): let
/// `m = recip`, so `m d = 2^64 + e` with `0 <= e < d`, and split `off m` into its high and
/// low 64 bits `(hi, lo)`. If `hi < nelems` then `off m < nelems 2^64`, so `off < nelems d`
/// (as `2^64 / m <= d`); write `off = q d + r` (`q < nelems`, `r < d`), so `off m = q 2^64 +
/// q e + r m`, where `q e < 2^10 2^15` while `m >= 2^49`, hence `q e + r m < 2^64` (it is
/// at most `2^25 + 2^64 + e - m` when `r <= d - 1`). So `hi = q` and `lo = q e + r m`,
/// which is below `m` exactly when `r = 0`: the answer is `q` when `off = q d` with `q <
/// nelems`, else `None` (checked over every class and offset in the tests).
#[inline(always)]
pub fn exact_index(off: usize, recip: u64, nelems: u32) -> Option<usize> {
    let prod = off as u128 * recip as u128;
    let (hi, lo) = ((prod >> 64) as u64, prod as u64);
    (lo < recip && hi < u64::from(nelems)).then_some(hi as usize)
}

// `exact_index`'s argument holds for every class.
const _: () = {
    let mut c = 1;
    while c < CLASS_COUNT {
        assert!(CLASS_BYTES[c] >= 2 && CLASS_BYTES[c] <= 1 << 15);
        c += 1;
    }
    assert!(MAX_OBJECTS_PER_SPAN <= 1 << 10);
};
// ANCHOR_END: class_recip

// Every multiple of the page up to `MAX_SMALL_BYTES` is a class's size, so the smallest
// class that holds a size is never larger than that size rounded up to whole pages: what a
// large object of that size would hold. `Tiered::realloc` relies on it (its in-place test
// reads the class off the layout; see `realloc_looked_up` in malloc.rs).
const _: () = {
    let mut m = PAGE_BYTES;
    while m <= MAX_SMALL_BYTES {
        let mut c = 1;
        while c < CLASS_COUNT && CLASS_BYTES[c] as usize != m {
            c += 1;
        }
        assert!(c < CLASS_COUNT, "a multiple of the page that is no class");
        m += PAGE_BYTES;
    }
};

/// The alignment every object of each class has (0 for class 0): the largest power of two
/// dividing its size. Objects sit at `span base + i * size`; the span base is page-aligned,
/// and aligned to the object size for the classes whose size is a power of two above a page
/// (16 KiB and 32 KiB: [`class_span_align_pages`], issue 17), so this is what the class
/// guarantees. The fast paths serve a request aligned up to it from the class without the
/// search of `class_for_aligned`: every alignment up to 32 KiB of a size up to the alignment.
pub const CLASS_ALIGN: [u32; CLASS_COUNT] = {
    let mut a = [0u32; CLASS_COUNT];
    let mut c = 1;
    while c < CLASS_COUNT {
        a[c] = 1u32 << CLASS_BYTES[c].trailing_zeros();
        c += 1;
    }
    a
};

/// The largest alignment a size class serves (32 KiB); above it, requests are large.
pub const MAX_CLASS_ALIGN: usize = MAX_SMALL_BYTES;
const _: () = assert!(CLASS_ALIGN[CLASS_COUNT - 1] as usize == MAX_CLASS_ALIGN);

/// Alignment, in pages, of the spans of `class` (class > 0): its objects' alignment
/// ([`CLASS_ALIGN`]) in pages, at least 1. Above 1 only for the power-of-two classes larger
/// than a page (16 KiB and 32 KiB, one object per span), so that a request aligned to 16 KiB
/// or 32 KiB is a small object of the fast path rather than a page run of the page heap
/// under its lock (issue 17). The page allocator pays for it with up to `align - 1` pages
/// of search slack per span, which smaller spans fill.
#[inline]
pub fn class_span_align_pages(class: usize) -> usize {
    (CLASS_ALIGN[class] as usize / PAGE_BYTES).max(1)
}

/// Pages per span of each class.
#[inline]
pub fn class_pages(class: usize) -> usize {
    TABLES.classes[class].pages as usize
}

/// Objects per span of each class (0 for class 0).
#[inline]
pub fn class_objects(class: usize) -> usize {
    if class == 0 {
        return 0;
    }
    let c = TABLES.classes[class];
    c.pages as usize * PAGE_BYTES / c.size as usize
}

// ANCHOR: class_of
/// The size class of a small request (`1 <= size <= MAX_SMALL_BYTES`), Go's `size_to_class`
/// answer from one flat table ([`SIZE_TO_CLASS`]): one load, no branch between Go's two
/// tables (the allocation fast path's class lookup).
#[inline]
pub fn class_of(size: usize) -> usize {
    debug_assert!(size > 0 && size <= MAX_SMALL_BYTES);
    // `% len` only spares a bounds check: `size <= MAX_SMALL_BYTES` gives an index below it.
    SIZE_TO_CLASS[size.div_ceil(SMALL_SIZE_DIV) % SIZE_TO_CLASS.len()] as usize
}

/// Go's `size_to_class` with its two tables (`size_to_class8` up to 1024 bytes,
/// `size_to_class128` above), which [`SIZE_TO_CLASS`] flattens; the tests hold the two to
/// the same answers.
pub fn class_of_two_tables(size: usize) -> usize {
    debug_assert!(size > 0 && size <= MAX_SMALL_BYTES);
    if size <= SMALL_SIZE_MAX - 8 {
        TABLES.size_to_class8[size.div_ceil(SMALL_SIZE_DIV)] as usize
    } else {
        // Sizes 1017..=1024 give index 0, as Go's wrapping `divRoundUp(size - 1024, 128)` does.
        TABLES.size_to_class128[(size + LARGE_SIZE_DIV - 1 - SMALL_SIZE_MAX) / LARGE_SIZE_DIV] as usize
    }
}

/// The class of every small size, by `ceil(size / 8)` (4 KiB): every class size is a multiple
/// of 8, so all sizes with one `ceil(size / 8)` share the smallest class that holds them.
pub const SIZE_TO_CLASS: [u8; MAX_SMALL_BYTES / SMALL_SIZE_DIV + 1] = {
    let classes = &TABLES.classes;
    let mut a = [0u8; MAX_SMALL_BYTES / SMALL_SIZE_DIV + 1];
    let mut i = 1;
    while i < a.len() {
        a[i] = first_class_at_least(classes, i * SMALL_SIZE_DIV);
        i += 1;
    }
    // Index 0 (size 0, never asked for) answers the smallest class.
    a[0] = 1;
    a
};
// ANCHOR_END: class_of

/// The class of a small request aligned to 16 (C's `malloc`, `u128`; `1 <= size <=
/// MAX_SMALL_BYTES`): the smallest class that holds `size` and whose objects are 16-aligned
/// ([`CLASS_ALIGN`]), what [`class_for`] answers for alignment 16, from one table
/// ([`SIZE_TO_CLASS_16`]) as [`class_of`] answers for 8.
#[inline]
pub fn class_of_16(size: usize) -> usize {
    debug_assert!(size > 0 && size <= MAX_SMALL_BYTES);
    // `% len` only spares a bounds check, as in `class_of`.
    SIZE_TO_CLASS_16[size.div_ceil(SMALL_SIZE_DIV) % SIZE_TO_CLASS_16.len()] as usize
}

/// [`SIZE_TO_CLASS`] for alignment 16: the class of every small size by `ceil(size / 8)`,
/// the first from the smallest that holds it whose objects are 16-aligned (a class of a
/// multiple of 16 B; the last class, 32 KiB, always is).
pub const SIZE_TO_CLASS_16: [u8; MAX_SMALL_BYTES / SMALL_SIZE_DIV + 1] = {
    let mut a = [0u8; MAX_SMALL_BYTES / SMALL_SIZE_DIV + 1];
    let mut i = 0;
    while i < a.len() {
        let mut c = SIZE_TO_CLASS[i] as usize;
        while CLASS_ALIGN[c] < 16 {
            c += 1;
        }
        a[i] = c as u8;
        i += 1;
    }
    a
};

// ANCHOR: class_for
/// The class for a request of `size` bytes aligned to `align`, or `None` when it must take
/// the large path. Objects of a class of size `s` sit at `span base + i * s` with the span
/// base page-aligned, so they are `align`-aligned when `s % align == 0` and `align` divides
/// the page.
#[inline]
pub fn class_for(size: usize, align: usize) -> Option<usize> {
    if align <= 8 {
        return if size <= MAX_SMALL_BYTES { Some(class_of(size)) } else { None };
    }
    class_for_aligned(size, align)
}
// ANCHOR_END: class_for

#[cold]
fn class_for_aligned(size: usize, align: usize) -> Option<usize> {
    if align > MAX_CLASS_ALIGN {
        return None;
    }
    let size = size.checked_next_multiple_of(align)?;
    if size > MAX_SMALL_BYTES {
        return None;
    }
    let mut c = class_of(size);
    while c < CLASS_COUNT {
        if CLASS_ALIGN[c] as usize >= align {
            return Some(c);
        }
        c += 1;
    }
    None
}

/// Span class of an ordinary object of `class` (the noscan half, see the glossary).
#[inline]
pub const fn span_class(class: usize) -> usize {
    class << 1 | 1
}

/// The size class of a span class.
#[inline]
pub const fn class_of_span_class(spc: usize) -> usize {
    spc >> 1
}

// ANCHOR: object_index
/// Object index of a byte offset inside a span of `class`, by multiply and shift.
#[inline]
pub fn object_index(offset: usize, class: usize) -> usize {
    div_by_mul(offset, TABLES.div_mul[class])
}

/// `offset / size` given `div_mul` of the size's class (see step 5 above), for offsets
/// inside a span. The product wraps for larger ones (a pointer the free path checks may lie
/// anywhere), giving an index its callers then find out of range or off an object start.
#[inline(always)]
pub fn div_by_mul(offset: usize, div_mul: u32) -> usize {
    ((offset as u64).wrapping_mul(div_mul as u64) >> 32) as usize
}
// ANCHOR_END: object_index

/// `div_mul` of `class` (spans copy it, as Go's `mspan.divMul`).
pub fn div_mul(class: usize) -> u32 {
    TABLES.div_mul[class]
}

/// One row of Go's comment table.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Row {
    /// Class number.
    pub class: usize,
    /// Bytes per object.
    pub bytes: usize,
    /// Bytes per span.
    pub span_bytes: usize,
    /// Objects per span.
    pub objects: usize,
    /// Bytes left over at the end of the span.
    pub tail_waste: usize,
    /// Worst-case waste in percent (objects one byte over the previous class).
    pub max_waste_pct: f64,
    /// Largest power of two that divides the size (capped at a page).
    pub min_align: usize,
}

/// Go's comment table, row of `class` (1..68).
pub fn row(class: usize) -> Row {
    let c = TABLES.classes[class];
    let bytes = c.size as usize;
    let span_bytes = c.pages as usize * PAGE_BYTES;
    let objects = span_bytes / bytes;
    let tail_waste = span_bytes % bytes;
    let prev = TABLES.classes[class - 1].size as usize;
    let max_waste_pct = ((bytes - prev - 1) * objects + tail_waste) as f64 * 100.0 / span_bytes as f64;
    let min_align = (1usize << bytes.trailing_zeros()).min(PAGE_BYTES);
    Row { class, bytes, span_bytes, objects, tail_waste, max_waste_pct, min_align }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::println;

    /// `exact_index` against its definition: for every class, every offset up to two
    /// objects past the span's end (past `nelems`, inside the tail waste, in the next span)
    /// and offsets that wrap (an address below the span's base) or lie far away.
    #[test]
    fn exact_index_is_index_and_start_check() {
        for class in 1..CLASS_COUNT {
            let (size, recip) = (CLASS_BYTES[class] as usize, CLASS_RECIP_BY_U8[class]);
            let nelems = class_objects(class) as u32;
            let span_bytes = class_pages(class) * PAGE_BYTES;
            let want =
                |off: usize| (off.is_multiple_of(size) && off / size < nelems as usize).then_some(off / size);
            for off in 0..span_bytes + 2 * size {
                assert_eq!(exact_index(off, recip, nelems), want(off), "class {class}, offset {off}");
            }
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            for k in 0..100_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Multiples of the size (and of the span's bytes) far out, near the top,
                // and anything.
                for off in
                    [x as usize, (x as usize / size) * size, usize::MAX - k as usize, (k as usize) << 40]
                {
                    assert_eq!(exact_index(off, recip, nelems), want(off), "class {class}, offset {off:#x}");
                }
            }
        }
        for c in [0, CLASS_COUNT, 255] {
            assert_eq!(exact_index(0, CLASS_RECIP_BY_U8[c], 1024), None, "class {c} has no objects");
        }
    }

    const GO_SIZES: [u32; 68] = [
        0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352,
        384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304,
        2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
        12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768,
    ];
    const GO_PAGES: [u32; 68] = [
        0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3, 4, 5, 6, 1, 7, 6, 5, 4, 3, 5, 7, 2, 9, 7, 5, 8, 3, 10, 7,
        4,
    ];
    /// Go's published objects per span, from its generated comment table.
    const GO_OBJECTS: [usize; 68] = [
        0, 1024, 512, 341, 256, 170, 128, 102, 85, 73, 64, 56, 51, 46, 42, 39, 36, 34, 32, 28, 25, 23, 21,
        19, 18, 17, 16, 14, 12, 11, 10, 9, 8, 7, 6, 11, 5, 9, 4, 7, 3, 8, 5, 7, 2, 5, 3, 4, 5, 6, 7, 1, 6, 5,
        4, 3, 2, 3, 4, 1, 4, 3, 2, 3, 1, 3, 2, 1,
    ];
    /// Go's published tail waste, from its generated comment table.
    const GO_TAIL: [usize; 68] = [
        0, 0, 0, 8, 0, 32, 0, 32, 32, 16, 0, 128, 32, 96, 128, 80, 128, 32, 0, 128, 192, 96, 128, 288, 128,
        32, 0, 128, 512, 448, 512, 128, 0, 128, 512, 896, 512, 256, 0, 256, 128, 0, 384, 384, 0, 256, 256, 0,
        128, 256, 768, 0, 512, 512, 0, 128, 0, 256, 0, 0, 0, 128, 0, 256, 0, 128, 0, 0,
    ];

    #[test]
    fn sizes_and_pages_match_go() {
        for c in 0..CLASS_COUNT {
            assert_eq!(TABLES.classes[c].size, GO_SIZES[c], "size of class {c}");
            assert_eq!(TABLES.classes[c].pages, GO_PAGES[c], "pages of class {c}");
        }
        assert_eq!(SPAN_CLASS_COUNT, 136);
    }

    #[test]
    fn objects_and_tail_waste_match_go() {
        for c in 1..CLASS_COUNT {
            let r = row(c);
            assert_eq!(r.objects, GO_OBJECTS[c], "objects of class {c}");
            assert_eq!(r.tail_waste, GO_TAIL[c], "tail waste of class {c}");
            assert_eq!(class_objects(c), GO_OBJECTS[c]);
            assert!(r.objects <= MAX_OBJECTS_PER_SPAN);
        }
        assert_eq!(format_pct(row(3).max_waste_pct), "29.24%");
        assert_eq!(format_pct(row(67).max_waste_pct), "12.50%");
    }

    fn format_pct(p: f64) -> std::string::String {
        std::format!("{p:.2}%")
    }

    #[test]
    fn lookup_tables_give_the_smallest_fitting_class() {
        for size in 1..=MAX_SMALL_BYTES {
            let c = class_of(size);
            assert!(CLASS_BYTES[c] as usize >= size, "class {c} too small for {size}");
            assert!(c == 1 || (CLASS_BYTES[c - 1] as usize) < size, "class {c} not the smallest for {size}");
        }
    }

    #[test]
    fn table_for_16_agrees_with_class_for() {
        for size in 1..=MAX_SMALL_BYTES {
            assert_eq!(Some(class_of_16(size)), class_for(size, 16), "size {size}");
            assert!(CLASS_ALIGN[class_of_16(size)] >= 16, "size {size}");
        }
    }

    #[test]
    fn flat_table_agrees_with_go_two_tables() {
        for size in 1..=MAX_SMALL_BYTES {
            assert_eq!(class_of(size), class_of_two_tables(size), "size {size}");
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn div_mul_equals_division_for_every_offset() {
        for c in 1..CLASS_COUNT {
            let span = class_pages(c) * PAGE_BYTES;
            let size = CLASS_BYTES[c] as usize;
            for off in 0..span {
                assert_eq!(object_index(off, c), off / size, "class {c} offset {off}");
            }
        }
    }

    #[test]
    fn aligned_classes_are_aligned() {
        for shift in 3..=15 {
            let align = 1usize << shift;
            for size in [1, 7, 8, 9, 100, 1000, 4000, 8192, 16384, 20000, 32768] {
                if let Some(c) = class_for(size, align) {
                    assert!(
                        CLASS_BYTES[c] as usize >= size && (CLASS_BYTES[c] as usize).is_multiple_of(align)
                    );
                    // Objects at multiples of the size from a base aligned to the span's
                    // alignment have the alignment.
                    assert!(class_span_align_pages(c) * PAGE_BYTES >= align.min(CLASS_BYTES[c] as usize));
                    assert!(CLASS_ALIGN[c] as usize >= align);
                }
            }
            // A size up to the alignment always has a class, up to `MAX_CLASS_ALIGN`.
            assert!(class_for(align, align).is_some());
        }
        assert_eq!(class_for(1, 16384), Some(class_of(16384)));
        assert_eq!(class_for(1, 32768), Some(class_of(32768)));
        assert_eq!(class_for(1, 65536), None);
        assert_eq!(class_for(32769, 8), None);
        for (c, &bytes) in CLASS_BYTES.iter().enumerate().skip(1) {
            let pages = class_span_align_pages(c);
            assert!(pages == 1 || bytes as usize == pages * PAGE_BYTES, "class {c}");
        }
    }

    /// Prints Go's comment table (`cargo test print_table -- --nocapture`).
    #[test]
    fn print_table() {
        println!("class  bytes/obj  bytes/span  objects  tail waste  max waste  min align");
        for c in 1..CLASS_COUNT {
            let r = row(c);
            println!(
                "{:5}  {:9}  {:10}  {:7}  {:10}  {:>9}  {:9}",
                r.class,
                r.bytes,
                r.span_bytes,
                r.objects,
                r.tail_waste,
                format_pct(r.max_waste_pct),
                r.min_align
            );
        }
    }
}
