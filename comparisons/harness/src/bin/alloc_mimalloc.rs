//! Runner with the `mimalloc` allocator of the table as its global allocator.
comparisons::runner!("mimalloc");
