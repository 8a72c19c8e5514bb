//! Runner with the `talc` allocator of the table as its global allocator.
comparisons::runner!("talc");
