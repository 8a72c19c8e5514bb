//! Runner with the `next-fit` allocator of the table as its global allocator.
comparisons::runner!("next-fit");
