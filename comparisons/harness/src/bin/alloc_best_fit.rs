//! Runner with the `best-fit` allocator of the table as its global allocator.
comparisons::runner!("best-fit");
