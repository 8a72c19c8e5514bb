//! The shared harness over every layer, each over at least two inner strategies: the
//! reference `PagePerBlock` and the free lists (and `Tiered` where it is built).

#[macro_use]
mod harness;

mod segregate_reference {
    use super::harness::reference::PagePerBlock;
    use stratalloc::{BestFit, Segregate};
    strategy_suites!(Segregate<256, PagePerBlock, BestFit>);
}

mod segregate_freelists {
    use stratalloc::{BestFit, Segregate, SegregatedFit};
    strategy_suites!(Segregate<1024, SegregatedFit, BestFit>);
}

mod arenas_reference {
    use super::harness::reference::PagePerBlock;
    use stratalloc::Arenas;
    strategy_suites!(Arenas<PagePerBlock, 4>);
}

mod arenas_best_fit {
    use stratalloc::{Arenas, BestFit};
    strategy_suites!(Arenas<BestFit>);
}

mod arenas_first_fit {
    use stratalloc::{Arenas, FirstFit};
    strategy_suites!(Arenas<FirstFit, 3>);
}

mod tcache_reference {
    use super::harness::reference::PagePerBlock;
    use stratalloc::ThreadCache;
    strategy_suites!(ThreadCache<PagePerBlock>);
}

mod tcache_segregated_fit {
    use stratalloc::{SegregatedFit, ThreadCache};
    strategy_suites!(ThreadCache<SegregatedFit>);
}

mod tcache_arenas_best_fit {
    use stratalloc::{Arenas, BestFit, ThreadCache};
    strategy_suites!(ThreadCache<Arenas<BestFit>>);
}

mod identity_next_fit {
    use stratalloc::{Identity, NextFit};
    strategy_suites!(Identity<NextFit>);
}

/// `Tiered` reserves 64 MiB arenas, more than the harness's `Fixed` region: over the OS only.
mod over_tiered {
    use stratalloc::{Arenas, BestFit, Segregate, ThreadCache, Tiered};
    strategy_suite!(tcache_mmap, ThreadCache<Tiered>, mmap);
    strategy_suite!(tcache_tracked, ThreadCache<Tiered>, tracked);
    strategy_suite!(segregate_mmap, Segregate<1024, Tiered, BestFit>, mmap);
    strategy_suite!(arenas_mmap, Arenas<Tiered, 2>, mmap);
}
