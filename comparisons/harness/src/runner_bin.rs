//! Every runner bin (`alloc_NN` in Cargo.toml): the allocator in row NN of the table as the
//! global allocator, chosen at compile time by the bin's name; a spare slot (no such row)
//! runs nothing.

use workloads::allocators::{kind_of, slot_name};

const NAME: &str = slot_name(env!("CARGO_BIN_NAME"));

workloads::table_static! {
    #[global_allocator]
    static GLOBAL = NAME;
}

fn main() {
    let name = if NAME.is_empty() { env!("CARGO_BIN_NAME") } else { NAME };
    comparisons::runner::main(name, kind_of(NAME))
}
