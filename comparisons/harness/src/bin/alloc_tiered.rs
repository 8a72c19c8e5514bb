//! Runner with the `tiered` allocator of the table as its global allocator.
comparisons::runner!("tiered");
